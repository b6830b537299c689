"""The search loop: ask, check, store, evaluate, store, tell; until the trial or time budget is spent.

Every state change reaches the store before the next step, so a search killed at any moment
resumes where it stopped: completed trials are kept, the interrupted one runs again, and the
strategy continues from the RNG state saved with the last trial it proposed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.evaluate.trainer import TrainingFailed
from nasforge.space.base import SearchSpace
from nasforge.store import Experiment, Store, reason_kind
from nasforge.strategy.base import Strategy
from nasforge.types import Budget, EvalResult, Sample, Suggestion, Trial, TrialState

log = logging.getLogger("nasforge")


class Evaluator(Protocol):
    def evaluate(self, sample: Sample, budget: Budget) -> EvalResult: ...


@dataclass(frozen=True)
class Progress:
    """What the CLI shows after each event."""

    event: str  # "start" | "trial" | "end"
    trial: Trial | None
    done: int
    max_trials: int
    best: Trial | None
    elapsed: float
    time_budget: float | None
    rejected: int

    @property
    def remaining(self) -> float | None:
        return None if self.time_budget is None else max(0.0, self.time_budget - self.elapsed)


@dataclass
class SearchOutcome:
    experiment: Experiment
    trials: list[Trial]
    stopped: str  # why the loop ended
    rejected: int = 0
    resumed_pending: int = 0
    best: Trial | None = field(default=None)


def best_trial(trials: Sequence[Trial]) -> Trial | None:
    ok = [t for t in trials if t.ok]
    return max(ok, key=lambda t: (t.score, -t.number)) if ok else None


def preflight(space: SearchSpace, input_shape: tuple[int, ...], n_out: int = 10, *, tries: int = 300,
              seed: int = 12345) -> None:
    """Fail before anything is stored if the space seems to hold no valid network for this input."""
    rng = np.random.default_rng(seed)
    reasons: list[str] = []
    for _ in range(tries):
        r = space.check(space.sample(rng), input_shape, n_out)
        if r is None:
            return
        reasons.append(r)
    common = max(set(map(reason_kind, reasons)), key=lambda k: sum(reason_kind(r) == k for r in reasons))
    example = next(r for r in reasons if reason_kind(r) == common)
    raise NasforgeError(f"no valid candidate among {tries} samples of the space for input {input_shape} "
                        f"(e.g. {example}); relax the space: fewer/larger blocks, smaller kernels or higher limits")


def propose(
    strategy: Strategy,
    space: SearchSpace,
    history: Sequence[Trial],
    input_shape: tuple[int, ...],
    n_out: int,
    rejected: dict[str, str],
    *,
    on_reject: Callable[[str, str], None] | None = None,
    max_rejections: int = 2000,
    max_duplicates: int = 50,
) -> Suggestion | None:
    """One new, valid, never-tried suggestion; None when the space looks exhausted.

    Invalid proposals are checked once (``rejected`` caches key -> reason, ``on_reject`` hears of new
    ones) and never count as trials; many invalid proposals in a row mean the space is unusable.
    """
    keys = {t.key for t in history}
    dups = bad = 0
    while True:
        (sug,) = strategy.ask(history, 1)
        key = space.key(sug.sample)
        if key in keys:
            dups += 1
            if dups >= max_duplicates:
                return None
            continue
        reason = rejected.get(key) or space.check(sug.sample, input_shape, n_out)
        if reason is None:
            return sug
        if key not in rejected:
            rejected[key] = reason
            if on_reject is not None:
                on_reject(key, reason)
        bad += 1
        if bad >= max_rejections:
            raise NasforgeError(f"{bad} candidates in a row were invalid (last: {reason}); "
                                "relax the space or the parameter/FLOP limits")


def run_search(
    *,
    store: Store,
    experiment: Experiment,
    space: SearchSpace,
    strategy: Strategy,
    evaluator: Evaluator,
    input_shape: tuple[int, ...],
    n_out: int = 10,
    budget: Budget,
    max_trials: int,
    time_budget: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    max_rejections: int = 2000,
    max_duplicates: int = 50,
) -> SearchOutcome:
    """Run (or resume) a search until ``max_trials`` finished trials or ``time_budget`` seconds in all."""
    exp_id = experiment.id
    resumed = store.reset_interrupted(exp_id)
    history = store.trials(exp_id)
    state = experiment.strategy_state
    if state and state.get("name") == strategy.name:
        strategy.load_state_dict(dict(state))
    rejected = {k: r for k, r in store.rejections(exp_id)}
    elapsed0 = experiment.elapsed
    t_start = mark = time.time()

    def elapsed() -> float:
        return elapsed0 + time.time() - t_start

    def progress(event: str, trial: Trial | None) -> None:
        if on_progress is not None:
            on_progress(Progress(event, trial, sum(t.state.finished for t in history), max_trials,
                                 best_trial(history), elapsed(), time_budget, len(rejected)))

    def reject(key: str, reason: str) -> None:
        store.add_rejection(exp_id, key, reason)
        log.debug("rejected %s: %s", key, reason)

    progress("start", None)
    stopped = "trials"
    while True:
        if sum(t.state.finished for t in history) >= max_trials:
            stopped = "trials"
            break
        if time_budget is not None and elapsed() >= time_budget:
            stopped = "time"
            break
        pending = next((t for t in history if t.state is TrialState.PENDING), None)
        if pending is None:
            sug = propose(strategy, space, history, input_shape, n_out, rejected, on_reject=reject,
                          max_rejections=max_rejections, max_duplicates=max_duplicates)
            if sug is None:
                stopped = "exhausted"
                break
            number = max((t.number for t in history), default=-1) + 1
            pending = Trial(number=number, key=space.key(sug.sample), sample=dict(sug.sample),
                            state=TrialState.PENDING, budget=sug.budget or budget)
            store.add_trial(exp_id, pending, strategy.state_dict())
            history.append(pending)
        trial = _run_one(store, exp_id, pending, evaluator)
        history[history.index(pending)] = trial
        strategy.tell(trial)
        now = time.time()
        store.add_elapsed(exp_id, now - mark)
        mark = now
        progress("trial", trial)
    store.add_elapsed(exp_id, time.time() - mark)
    progress("end", None)
    exp = store.experiment(experiment.name)
    assert exp is not None
    return SearchOutcome(exp, history, stopped, len(rejected), resumed, best_trial(history))


def _run_one(store: Store, exp_id: int, trial: Trial, evaluator: Evaluator) -> Trial:
    running = trial.with_(state=TrialState.RUNNING, started=time.time())
    store.update_trial(exp_id, running)
    try:
        res = evaluator.evaluate(running.sample, running.budget)
    except TrainingFailed as e:
        done = running.with_(state=TrialState.FAILED, reason=str(e), finished=time.time())
    except (KeyboardInterrupt, SystemExit):
        store.update_trial(exp_id, trial.with_(state=TrialState.PENDING, started=None))
        raise
    except Exception as e:  # a bug in a candidate or evaluator must not end the search
        log.warning("trial %d failed unexpectedly: %s", trial.number, e, exc_info=log.isEnabledFor(logging.DEBUG))
        done = running.with_(state=TrialState.FAILED, reason=f"{type(e).__name__}: {e}", finished=time.time())
    else:
        done = running.with_(state=TrialState.COMPLETE, score=res.score, metrics=dict(res.metrics), curve=res.curve,
                             cost=res.cost, hidden=dict(res.hidden), finished=time.time(),
                             train_seconds=res.train_seconds, eval_seconds=res.eval_seconds)
    store.update_trial(exp_id, done)
    return done
