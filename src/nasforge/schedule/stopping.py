"""Early stopping of running trials from the learning curves already stored.

A rule sees the running trial's curve after every epoch and the history of other trials; when it
says stop, the trial ends PRUNED with the rule's reason and the search moves on. Rules compare only
curves trained on the same data fraction, epoch by epoch.
"""

from __future__ import annotations

import abc
import itertools
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from nasforge.errors import ConfigError
from nasforge.types import Budget, Trial, TrialState

Curve = Sequence[Mapping[str, float]]


class TrialPruned(Exception):
    """Raised from a training callback to end a trial early; carries the rule's reason."""


def _value(row: Mapping[str, float], metric: str) -> float | None:
    v = row.get(metric)
    if v is None and metric == "val_accuracy":  # the default metric: on a regression, the score (-RMSE)
        v = row.get("val_score")
    return None if v is None else float(v)


def value_at(curve: Curve, epoch: int, metric: str) -> float | None:
    """The metric at a 1-based epoch of a stored curve (None when that epoch was not reached)."""
    for row in curve:
        if int(row.get("epoch", 0)) == epoch:
            return _value(row, metric)
    return None


class StoppingRule(abc.ABC):
    name: ClassVar[str]

    def __init__(self, *, metric: str = "val_accuracy", warmup_epochs: int = 1, min_trials: int = 5) -> None:
        if warmup_epochs < 0 or min_trials < 1:
            raise ConfigError("stopping warmup_epochs must be >= 0 and min_trials >= 1")
        self.metric, self.warmup_epochs, self.min_trials = metric, warmup_epochs, min_trials

    def peers(self, history: Sequence[Trial], budget: Budget, number: int) -> list[Trial]:
        """Other trials whose curves are comparable: same data fraction, with a curve."""
        return [t for t in history if t.number != number and t.curve and t.budget.fraction == budget.fraction
                and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]

    @abc.abstractmethod
    def check(self, number: int, budget: Budget, curve: Curve, history: Sequence[Trial]) -> str | None:
        """Why the trial should stop now, or None to let it go on."""


class MedianRule(StoppingRule):
    """Stop a trial whose best value so far is below the median of other trials at the same epoch.

    The rule of Google Vizier and Optuna's MedianPruner; ``warmup_epochs`` protects slow starters,
    ``min_trials`` waits for a meaningful median.
    """

    name = "median"

    def check(self, number: int, budget: Budget, curve: Curve, history: Sequence[Trial]) -> str | None:
        epoch = len(curve) and int(curve[-1].get("epoch", len(curve)))
        if epoch <= self.warmup_epochs or epoch >= budget.epochs:  # after the last epoch there is nothing to save
            return None
        others = [v for t in self.peers(history, budget, number) if (v := value_at(t.curve, epoch, self.metric))
                  is not None]
        if len(others) < self.min_trials:
            return None
        best = max((v for row in curve if (v := _value(row, self.metric)) is not None), default=None)
        med = statistics.median(others)
        if best is not None and best < med:
            return (f"median rule: best {self.metric} {best:.4f} < median {med:.4f} of {len(others)} trials "
                    f"at epoch {epoch}")
        return None


class CurveRule(StoppingRule):
    """Stop a trial that cannot reach the current top ``top_k`` even on an optimistic extrapolation.

    The projection adds, for every remaining epoch, the largest per-epoch gain seen in the last
    ``window`` epochs (never less than ``min_gain``): generous on purpose, so only clear losers stop.
    """

    name = "curve"

    def __init__(self, *, metric: str = "val_accuracy", warmup_epochs: int = 1, min_trials: int = 5, top_k: int = 3,
                 window: int = 2, min_gain: float = 0.0) -> None:
        super().__init__(metric=metric, warmup_epochs=warmup_epochs, min_trials=min_trials)
        if top_k < 1 or window < 1:
            raise ConfigError("curve stopping needs top_k >= 1 and window >= 1")
        self.top_k, self.window, self.min_gain = top_k, window, min_gain

    def check(self, number: int, budget: Budget, curve: Curve, history: Sequence[Trial]) -> str | None:
        vals = [v for row in curve if (v := _value(row, self.metric)) is not None]
        epoch = len(curve) and int(curve[-1].get("epoch", len(curve)))
        total = round(budget.epochs)
        if epoch <= self.warmup_epochs or epoch >= total or len(vals) < 2:
            return None
        finals = sorted((t.score for t in self.peers(history, budget, number)
                         if t.ok and t.budget == budget and t.score is not None), reverse=True)
        if len(finals) < max(self.min_trials, self.top_k):
            return None
        bar = finals[self.top_k - 1]
        recent = vals[-(self.window + 1):]
        gain = max([b - a for a, b in itertools.pairwise(recent)] + [self.min_gain])
        reach = max(vals) + max(gain, 0.0) * (total - epoch)
        if reach < bar:
            return (f"curve rule: {self.metric} can reach ~{reach:.4f} by epoch {total}, "
                    f"below the top-{self.top_k} bar {bar:.4f}")
        return None


STOPPING: dict[str, type[StoppingRule]] = {"median": MedianRule, "curve": CurveRule}


def make_stopping(rule: str, **options: Any) -> StoppingRule:
    if rule not in STOPPING:
        raise ConfigError(f"unknown stopping rule {rule!r}: choose one of {', '.join(STOPPING)}")
    try:
        return STOPPING[rule](**options)
    except TypeError as e:
        raise ConfigError(f"stopping rule {rule!r} does not take those options ({e})") from None
