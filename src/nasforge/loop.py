"""The search loop: ask, check, store, evaluate, store, tell; until the trial or time budget is spent.

Every state change reaches the store before the next step, so a search killed at any moment
resumes where it stopped: completed trials are kept, the interrupted ones run again, and the
strategy continues from the RNG state saved with the last trial it proposed. The strategy, the
scheduler and the store stay in this (the driver's) process; an executor runs the trials, inline or
on workers, up to its capacity at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.execute.base import Evaluator, Executor, Job, Outcome, Reporter, stopping_view
from nasforge.execute.inline import InlineExecutor
from nasforge.schedule.schedulers import FIFO, Scheduler
from nasforge.schedule.stopping import StoppingRule
from nasforge.space.base import SearchSpace
from nasforge.store import Experiment, Lease, Store, reason_kind
from nasforge.strategy.base import Strategy
from nasforge.types import Budget, Sample, Suggestion, Trial, TrialState

log = logging.getLogger("nasforge")
QUEUE = "_screened_queue"  # key of the screened-candidate queue inside the saved strategy state

__all__ = ["Deadline", "Evaluator", "Progress", "Reporter", "SearchOutcome", "best_trial", "preflight", "propose",
           "run_search"]


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


@dataclass(frozen=True)
class Deadline:
    """A wall-clock end (``time.time()``) that no trial may run past, for a search that must end on time.

    A trial starts only if ``estimate(budget)`` seconds fit before ``at``, and it runs with the time
    left as its timeout (within ``search.trial_timeout``): ``nasforge auto`` plans phases that must end
    when planned, where the search's ``time_budget`` alone lets trials in flight finish late.
    """

    at: float
    estimate: Callable[[Budget], float] = field(default=lambda b: 0.0)

    def fits(self, budget: Budget) -> bool:
        return time.time() + self.estimate(budget) <= self.at

    def timeout(self, limit: float | None) -> float:
        left = max(1.0, self.at - time.time())
        return left if limit is None else min(limit, left)


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
    evaluator: Evaluator | None = None,
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
    executor: Executor | None = None,
    max_retries: int = 0,
    trial_timeout: float | None = None,
    heartbeat_every: float = 5.0,
    deadline: Deadline | None = None,
) -> SearchOutcome:
    """Run (or resume) a search until ``max_trials`` finished trials or ``time_budget`` seconds in all.

    ``budget`` is the full budget; a ``scheduler`` hands out less to new trials and promotes the best
    (promotions go before new trials and may finish after ``max_trials`` is reached); ``stopping``
    ends hopeless trials early. Promotions continue from checkpoints in ``checkpoint_dir``. A
    ``screener`` draws many valid candidates at once and queues only the share it keeps; the queue is
    saved with the strategy state, so a resumed search trains the same queue.

    Trials run on ``executor`` (default: inline, one at a time, on ``evaluator``), which keeps up to
    its ``capacity`` trials in flight: whenever fewer run, the loop starts the next pending trial,
    promotion or new proposal (strategies see running trials in the history and avoid their keys).
    A trial whose worker is lost (killed, or silent for too long) runs again up to ``max_retries``
    times, then fails; one running past ``trial_timeout`` seconds fails. The loop holds the
    experiment's lease in the store while it runs, renewed from a timer every ``heartbeat_every``
    seconds (so an inline epoch of any length keeps it), and records heartbeats of running trials as
    often. With a ``deadline`` no trial starts that is not expected to end before it, and none runs past it.
    often. A loop whose lease another process took over stops with a StoreError and writes nothing more.
    """
    if executor is None:
        if evaluator is None:
            raise TypeError("run_search needs an evaluator or an executor")
        executor = InlineExecutor(evaluator)
    with store.lease(experiment.id, every=heartbeat_every) as lease:
        return _search(store, experiment, space, strategy, executor, input_shape, n_out, budget, max_trials,
                       time_budget, on_progress, max_rejections, max_duplicates, scheduler or FIFO(budget), stopping,
                       checkpoint_dir, screener, extra_check, max_retries, trial_timeout, heartbeat_every, lease,
                       deadline)


def _search(store: Store, experiment: Experiment, space: SearchSpace, strategy: Strategy, executor: Executor,
            input_shape: tuple[int, ...], n_out: int, budget: Budget, max_trials: int, time_budget: float | None,
            on_progress: Callable[[Progress], None] | None, max_rejections: int, max_duplicates: int,
            scheduler: Scheduler, stopping: StoppingRule | None, checkpoint_dir: Path | None,
            screener: Screener | None, extra_check: Callable[[Sample], str | None] | None, max_retries: int,
            trial_timeout: float | None, heartbeat_every: float, lease: Lease,
            deadline: Deadline | None) -> SearchOutcome:
    exp_id = experiment.id
    resumed = store.reset_interrupted(exp_id)
    history = store.trials(exp_id)
    state = dict(experiment.strategy_state or {})
    queue: list[dict[str, Any]] = list(state.pop(QUEUE, []))
    if state and state.get("name") == strategy.name:
        strategy.load_state_dict(state)
    rejected = {k: r for k, r in store.rejections(exp_id)}
    elapsed0 = experiment.elapsed
    t_start = mark = last_beat = time.time()
    inflight: dict[int, tuple[Trial, Path | None]] = {}  # number -> (the trial before it started, its checkpoint)
    stopped = "trials"
    closed = False  # no more trials start: out of time, or the space is exhausted

    def elapsed() -> float:
        return elapsed0 + time.time() - t_start

    def progress(event: str, trial: Trial | None) -> None:
        if on_progress is not None:
            on_progress(Progress(event, trial, sum(t.state.finished for t in history), max_trials,
                                 best_trial(history), elapsed(), time_budget, len(rejected)))

    def reject(key: str, reason: str) -> None:
        store.add_rejection(exp_id, key, reason)
        log.debug("rejected %s: %s", key, reason)

    def put(trial: Trial) -> None:
        history[next(i for i, t in enumerate(history) if t.number == trial.number)] = trial

    def one(taken: set[str] | None = None) -> Suggestion | None:
        return propose(strategy, space, history, input_shape, n_out, rejected, on_reject=reject,
                       max_rejections=max_rejections, max_duplicates=max_duplicates, extra_check=extra_check,
                       taken=taken)

    def fits(trial: Trial) -> bool:
        """Whether a waiting trial or promotion can end before the deadline; if not, nothing more starts."""
        nonlocal stopped, closed
        if deadline is None or deadline.fits(trial.budget):
            return True
        stopped, closed = "time", True
        return False

    def next_trial() -> Trial | None:
        """The next trial to start (stored PENDING): a waiting one, a promotion or a new proposal."""
        nonlocal stopped, closed, queue
        if time_budget is not None and elapsed() >= time_budget:
            stopped, closed = "time", True
            return None
        pending = next((t for t in history if t.state is TrialState.PENDING), None)
        promo = scheduler.promotion(history) if pending is None else None
        if promo is not None and (deadline is None or deadline.fits(promo.budget)):  # else a cheaper new trial
            pending = promo.trial.with_(state=TrialState.PENDING, budget=promo.budget)
            store.update_trial(exp_id, pending)
            put(pending)
            log.debug("promoting trial %d to %s", pending.number, promo.budget)
        if pending is not None:
            return pending if fits(pending) else None
        if len(history) >= max_trials:  # every trial made so far finishes: with none in flight, all are finished
            stopped = "trials"
            return None
        if screener is not None and not queue:
            queue = _screened(one, screener, space.key)
        sug = Suggestion(queue.pop(0)) if screener is not None and queue else one()
        if sug is None:
            stopped, closed = "exhausted", True
            return None
        number = max((t.number for t in history), default=-1) + 1
        budget_new = sug.budget or scheduler.new_budget(history)
        if deadline is not None and not deadline.fits(budget_new):
            stopped, closed = "time", True
            return None
        pending = Trial(number=number, key=space.key(sug.sample), sample=dict(sug.sample),
                        state=TrialState.PENDING, budget=budget_new)
        saved = strategy.state_dict()
        store.add_trial(exp_id, pending, {**saved, QUEUE: queue} if screener is not None else saved)
        history.append(pending)
        return pending

    def start(trial: Trial) -> None:
        ckpt = None
        if checkpoint_dir is not None and scheduler.continues:
            ckpt = checkpoint_dir / f"trial{trial.number}.pt"
        running = trial.with_(state=TrialState.RUNNING, started=time.time())
        store.start_trial(exp_id, running)
        put(running)
        if stopping is None:
            peers: tuple[Trial, ...] = ()
        else:  # inline, the history cannot change while the trial runs: the snapshot is what the rule sees
            peers = stopping_view(history, stopping.metric) if executor.remote else tuple(history)
        inflight[trial.number] = (trial, ckpt)
        executor.submit(Job(trial.number, dict(trial.sample), trial.budget, str(ckpt) if ckpt else None,
                            tuple(trial.curve), stopping, peers,
                            deadline.timeout(trial_timeout) if deadline is not None else trial_timeout))

    def finish(out: Outcome) -> None:
        nonlocal mark
        if out.number not in inflight:  # a late answer about a trial already settled (timed out, lost)
            log.debug("ignoring a late outcome for trial %d", out.number)
            return
        before, ckpt = inflight.pop(out.number)
        running = next(t for t in history if t.number == out.number)
        now = time.time()
        if out.lost:
            attempts = store.count_attempt(exp_id, out.number)
            if attempts <= max_retries:
                log.warning("trial %d: %s; running it again (retry %d of %d)", out.number, out.reason, attempts,
                            max_retries)
                again = before.with_(state=TrialState.PENDING, started=None)
                store.update_trial(exp_id, again)
                put(again)
                return
            reason = f"{out.reason}; lost {attempts} time(s), search.max_retries is {max_retries}"
            done = running.with_(state=TrialState.FAILED, score=None, reason=reason, finished=now)
        elif out.state is TrialState.COMPLETE and out.result is not None:
            res = out.result
            done = running.with_(state=TrialState.COMPLETE, score=res.score, metrics=dict(res.metrics),
                                 curve=res.curve, cost=res.cost, hidden=dict(res.hidden), finished=now,
                                 train_seconds=before.train_seconds + res.train_seconds,
                                 eval_seconds=before.eval_seconds + res.eval_seconds, rungs=(*before.rungs, res.score))
        elif out.state is TrialState.PRUNED:
            done = running.with_(state=TrialState.PRUNED, score=None, reason=out.reason, curve=out.curve,
                                 finished=now)
        else:
            done = running.with_(state=TrialState.FAILED, score=None, reason=out.reason or "failed", finished=now)
        store.update_trial(exp_id, done)
        put(done)
        if ckpt is not None and (scheduler.level(done) == len(scheduler.ladder) - 1 or not done.ok):
            ckpt.unlink(missing_ok=True)  # never promoted again
        strategy.tell(done)
        now = time.time()
        store.add_elapsed(exp_id, now - mark)
        mark = now
        progress("trial", done)

    def beat() -> None:
        nonlocal last_beat
        lease.check()  # the timer found the lease taken over: stop here, the trial in flight included
        if time.time() - last_beat >= heartbeat_every:
            last_beat = time.time()
            store.heartbeat(exp_id, executor.last_seen())

    progress("start", None)
    try:
        while True:
            while not closed and len(inflight) < executor.capacity:
                trial = next_trial()
                if trial is None:
                    break
                start(trial)
            if not inflight:
                break
            for out in executor.wait(heartbeat_every, beat):
                finish(out)
            beat()
    except BaseException:
        with contextlib.suppress(Exception):  # what was in flight runs again on resume
            for before, _ in inflight.values():
                store.update_trial(exp_id, before.with_(state=TrialState.PENDING, started=None))
        raise
    store.add_elapsed(exp_id, time.time() - mark)
    progress("end", None)
    exp = store.experiment(experiment.name)
    assert exp is not None
    return SearchOutcome(exp, history, stopped, len(rejected), resumed, best_trial(history))


def _screened(one: Callable[[set[str]], Suggestion | None], screener: Screener,
              key: Callable[[Sample], str]) -> list[dict[str, Any]]:
    """Draw up to ``screener.sample`` distinct valid candidates and keep the screener's choice, best first.

    Suggestions marked ``screen=False`` (networks the user queued) are kept unscreened, ahead of the rest.
    """
    pool: list[Sample] = []
    exempt: list[Sample] = []
    taken: set[str] = set()
    for _ in range(screener.sample):
        sug = one(taken)
        if sug is None:
            break
        (pool if sug.screen else exempt).append(sug.sample)
        taken.add(key(sug.sample))
    return [dict(s) for s in exempt] + ([dict(s) for s in screener(pool)] if pool else [])
