"""The benchmark helpers' accounting of training done, which the side-by-side results quote."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nasforge.schedule import ASHA, Hyperband, make_scheduler
from nasforge.types import Budget, Trial, TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import best_by, training_done

FULL = Budget(epochs=6, fraction=0.5)


def trial(budget: Budget, rungs: tuple[float, ...], epochs: int, state: TrialState = TrialState.COMPLETE) -> Trial:
    return Trial(number=0, key="k", sample={}, state=state, budget=budget, score=rungs[-1] if rungs else None,
                 curve=tuple({"epoch": e} for e in range(1, epochs + 1)), rungs=rungs)


def test_retrained_fraction_rungs_count_every_rung_trained():
    sched = ASHA(FULL, eta=3, min_fraction=0.5 / 9)
    low, mid, top = sched.ladder
    assert training_done(trial(low, (0.8,), 6), sched) == pytest.approx(1 / 9)
    assert training_done(trial(mid, (0.8, 0.85), 6), sched) == pytest.approx(1 / 9 + 1 / 3)
    assert training_done(trial(top, (0.8, 0.85, 0.9), 6), sched) == pytest.approx(1 / 9 + 1 / 3 + 1)
    # pruned after 3 of its 6 epochs on the top rung, having finished the two below
    pruned = trial(top, (0.8, 0.85), 3, TrialState.PRUNED)
    assert training_done(pruned, sched) == pytest.approx(1 / 9 + 1 / 3 + 1 / 2)


def test_continued_epoch_rungs_count_the_curve_once():
    sched = ASHA(FULL, eta=3, min_epochs=1)
    assert training_done(trial(sched.ladder[-1], (0.8, 0.85, 0.9), 6), sched) == pytest.approx(1.0)
    assert training_done(trial(sched.ladder[0], (0.8,), 1), sched) == pytest.approx(1 / 6)
    assert training_done(trial(FULL, (0.9,), 6), make_scheduler("fifo", FULL)) == pytest.approx(1.0)


def test_a_hyperband_trial_counts_only_the_rungs_it_started_from():
    sched = Hyperband(FULL, eta=3, min_fraction=0.5 / 9)
    # started on the middle rung, promoted to the top: the lowest rung was never trained
    assert training_done(trial(sched.ladder[2], (0.85, 0.9), 6), sched) == pytest.approx(1 / 3 + 1)


def test_best_by_counts_only_what_finished_inside_the_time_budget():
    timeline = [{"seconds": 300.0, "val_accuracy": 0.90}, {"seconds": 1200.0, "val_accuracy": 0.91},
                {"seconds": 1209.0, "val_accuracy": 0.92}]
    assert best_by(timeline, 1200) == 0.91
    assert best_by(timeline, 100) is None
    assert best_by(timeline, float("inf")) == 0.92
