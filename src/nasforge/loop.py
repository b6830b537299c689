"""The search loop: ask, check, store, evaluate, store, tell; until the trial or time budget is spent.

Every state change reaches the store before the next step, so a search killed at any moment
resumes where it stopped: completed trials are kept, the interrupted one runs again, and the
strategy continues from the RNG state saved with the last trial it proposed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.evaluate.trainer import TrainingFailed
from nasforge.schedule.schedulers import FIFO, Scheduler
from nasforge.schedule.stopping import StoppingRule, TrialPruned
from nasforge.space.base import SearchSpace
from nasforge.store import Experiment, Store, reason_kind
from nasforge.strategy.base import Strategy
from nasforge.types import Budget, EvalResult, Sample, Suggestion, Trial, TrialState

log = logging.getLogger("nasforge")
QUEUE = "_screened_queue"  # key of the screened-candidate queue inside the saved strategy state


Reporter = Callable[[int, Mapping[str, float]], None]


class Evaluator(Protocol):
    """Trains (or looks up) one candidate for a budget.

    ``report`` hears every epoch's row and may raise :class:`TrialPruned` to stop early;
    ``checkpoint`` is a file to continue from (when it holds a smaller budget) and to save to.
    """

    def evaluate(self, sample: Sample, budget: Budget, report: Reporter | None = None,
                 checkpoint: Path | None = None) -> EvalResult: ...


class Screener(Protocol):
    """Zero-cost screening: of ``sample`` valid candidates, the ones worth training, best first."""

    sample: int

    def __call__(self, samples: Sequence[Sample]) -> list[Sample]: ...


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


def rank_key(t: Trial) -> tuple[float, float, int]:
    """Order of merit, best first when sorted: trained longest (a scheduler's top rung), then score, then oldest."""
    return (-t.budget.epochs * t.budget.fraction, -(t.score or 0.0), t.number)


def best_trial(trials: Sequence[Trial]) -> Trial | None:
    """The best scored trial among those trained the longest (a scheduler's top rung beats lower rungs)."""
    ok = [t for t in trials if t.ok]
    return min(ok, key=rank_key) if ok else None


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
    extra_check: Callable[[Sample], str | None] | None = None,
    taken: set[str] | None = None,
) -> Suggestion | None:
    """One new, valid, never-tried suggestion; None when the space looks exhausted.

    Invalid proposals are checked once (``rejected`` caches key -> reason, ``on_reject`` hears of new
    ones) and never count as trials; many invalid proposals in a row mean the space is unusable.
    ``extra_check`` runs after the space's own (e.g. a measured-latency limit); ``taken`` holds keys
    already proposed but not yet in the history.
    """
    keys = {t.key for t in history} | (taken or set())
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
        if reason is None and extra_check is not None:
            reason = extra_check(sug.sample)
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
    scheduler: Scheduler | None = None,
    stopping: StoppingRule | None = None,
    checkpoint_dir: Path | None = None,
    screener: Screener | None = None,
    extra_check: Callable[[Sample], str | None] | None = None,
) -> SearchOutcome:
    """Run (or resume) a search until ``max_trials`` finished trials or ``time_budget`` seconds in all.

    ``budget`` is the full budget; a ``scheduler`` hands out less to new trials and promotes the best
    (promotions go before new trials and may finish after ``max_trials`` is reached); ``stopping``
    ends hopeless trials early. Promotions continue from checkpoints in ``checkpoint_dir``. A
    ``screener`` draws many valid candidates at once and queues only the share it keeps; the queue is
    saved with the strategy state, so a resumed search trains the same queue.
    """
    scheduler = scheduler or FIFO(budget)
    exp_id = experiment.id
    resumed = store.reset_interrupted(exp_id)
    history = store.trials(exp_id)
    state = dict(experiment.strategy_state or {})
    queue: list[dict[str, Any]] = list(state.pop(QUEUE, []))
    if state and state.get("name") == strategy.name:
        strategy.load_state_dict(state)
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
        if time_budget is not None and elapsed() >= time_budget:
            stopped = "time"
            break
        pending = next((t for t in history if t.state is TrialState.PENDING), None)
        if pending is None and (promo := scheduler.promotion(history)) is not None:
            pending = promo.trial.with_(state=TrialState.PENDING, budget=promo.budget)
            store.update_trial(exp_id, pending)
            history[history.index(promo.trial)] = pending
            log.debug("promoting trial %d to %s", pending.number, promo.budget)
        if pending is None:
            if sum(t.state.finished for t in history) >= max_trials:
                stopped = "trials"
                break
            def one(taken: set[str] | None = None) -> Suggestion | None:
                return propose(strategy, space, history, input_shape, n_out, rejected, on_reject=reject,
                               max_rejections=max_rejections, max_duplicates=max_duplicates,
                               extra_check=extra_check, taken=taken)

            if screener is not None and not queue:
                queue = _screened(one, screener, space.key)
            sug = Suggestion(queue.pop(0)) if screener is not None and queue else one()
            if sug is None:
                stopped = "exhausted"
                break
            number = max((t.number for t in history), default=-1) + 1
            pending = Trial(number=number, key=space.key(sug.sample), sample=dict(sug.sample),
                            state=TrialState.PENDING, budget=sug.budget or scheduler.new_budget(history))
            saved = strategy.state_dict()
            store.add_trial(exp_id, pending, {**saved, QUEUE: queue} if screener is not None else saved)
            history.append(pending)
        ckpt = None
        if checkpoint_dir is not None and scheduler.continues:
            ckpt = checkpoint_dir / f"trial{pending.number}.pt"
        trial = _run_one(store, exp_id, pending, evaluator, history, stopping, ckpt)
        history[history.index(pending)] = trial
        if ckpt is not None and (scheduler.level(trial) == len(scheduler.ladder) - 1 or not trial.ok):
            ckpt.unlink(missing_ok=True)  # never promoted again
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


def _screened(one: Callable[[set[str]], Suggestion | None], screener: Screener,
              key: Callable[[Sample], str]) -> list[dict[str, Any]]:
    """Draw up to ``screener.sample`` distinct valid candidates and keep the screener's choice, best first."""
    pool: list[Sample] = []
    taken: set[str] = set()
    for _ in range(screener.sample):
        sug = one(taken)
        if sug is None:
            break
        pool.append(sug.sample)
        taken.add(key(sug.sample))
    return [dict(s) for s in screener(pool)] if pool else []


def _run_one(store: Store, exp_id: int, trial: Trial, evaluator: Evaluator, history: Sequence[Trial],
             stopping: StoppingRule | None, checkpoint: Path | None) -> Trial:
    running = trial.with_(state=TrialState.RUNNING, started=time.time())
    store.update_trial(exp_id, running)
    curve: list[Mapping[str, float]] = []

    def report(epoch: int, row: Mapping[str, float]) -> None:
        if not curve:  # continuing from a checkpoint: the stored epochs before this one come first
            curve.extend(r for r in trial.curve if r.get("epoch", 0) < row.get("epoch", epoch))
        curve.append(dict(row))
        if stopping is not None and (why := stopping.check(trial.number, running.budget, curve, history)):
            raise TrialPruned(why)

    try:
        res = evaluator.evaluate(running.sample, running.budget, report, checkpoint)
    except TrialPruned as e:
        done = running.with_(state=TrialState.PRUNED, score=None, reason=str(e), curve=tuple(curve),
                             finished=time.time())
    except TrainingFailed as e:
        done = running.with_(state=TrialState.FAILED, score=None, reason=str(e), finished=time.time())
    except (KeyboardInterrupt, SystemExit):
        store.update_trial(exp_id, trial.with_(state=TrialState.PENDING, started=None))
        raise
    except Exception as e:  # a bug in a candidate or evaluator must not end the search
        log.warning("trial %d failed unexpectedly: %s", trial.number, e, exc_info=log.isEnabledFor(logging.DEBUG))
        done = running.with_(state=TrialState.FAILED, score=None, reason=f"{type(e).__name__}: {e}",
                             finished=time.time())
    else:
        done = running.with_(state=TrialState.COMPLETE, score=res.score, metrics=dict(res.metrics), curve=res.curve,
                             cost=res.cost, hidden=dict(res.hidden), finished=time.time(),
                             train_seconds=trial.train_seconds + res.train_seconds,
                             eval_seconds=trial.eval_seconds + res.eval_seconds, rungs=(*trial.rungs, res.score))
    store.update_trial(exp_id, done)
    return done
