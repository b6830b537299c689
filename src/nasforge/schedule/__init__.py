"""How much each trial gets: schedulers (rungs and promotions) and early stopping."""

from __future__ import annotations

from nasforge.schedule.schedulers import (
    ASHA,
    FIFO,
    SCHEDULERS,
    Hyperband,
    Promotion,
    Scheduler,
    SuccessiveHalving,
    make_scheduler,
)
from nasforge.schedule.stopping import STOPPING, CurveRule, MedianRule, StoppingRule, TrialPruned, make_stopping

__all__ = ["ASHA", "FIFO", "SCHEDULERS", "STOPPING", "CurveRule", "Hyperband", "MedianRule", "Promotion", "Scheduler",
           "StoppingRule", "SuccessiveHalving", "TrialPruned", "make_scheduler", "make_stopping"]
