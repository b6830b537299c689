"""The search loop over a :class:`~nasforge.study.Study`: ask, run on an executor, tell; until the trial or
time budget is spent.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasforge.errors import NasforgeError
from nasforge.execute.base import Evaluator, Executor, Job, Outcome, Reporter, progress_of, stopping_view
from nasforge.execute.inline import InlineExecutor
from nasforge.schedule.schedulers import FIFO, Scheduler
from nasforge.schedule.stopping import StoppingRule
from nasforge.space.base import SearchSpace
from nasforge.store import Experiment, Lease, Store, reason_kind
from nasforge.strategy.base import Strategy
from nasforge.study import QUEUE, Screener, Study, best_trial, propose, rank_key
from nasforge.types import Budget, Sample, Trial, TrialState

log = logging.getLogger("nasforge")

__all__ = ["QUEUE", "Deadline", "Evaluator", "Progress", "Reporter", "Screener", "SearchOutcome", "Study", "best_trial",
           "preflight", "propose", "rank_key", "run_search"]


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
    seconds (so an inline epoch of any length keeps it), and records heartbeats of running trials (with
    their latest epoch, for the live view) as often. With a ``deadline`` no trial starts that is not
    expected to end before it, and none runs past it. A loop whose lease another process took over stops
    with a StoreError and writes nothing more.
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
    study = Study(space, strategy, budget=budget, scheduler=scheduler, store=store, experiment=experiment,
                  input_shape=input_shape, n_out=n_out, max_rejections=max_rejections,
                  max_duplicates=max_duplicates, extra_check=extra_check, screener=screener)
    elapsed0 = experiment.elapsed
    t_start = last_beat = time.time()
    inflight: dict[int, tuple[Trial, Path | None]] = {}  # number -> (the trial before it started, its checkpoint)
    stopped = "trials"
    closed = False  # no more trials start: out of time, or the space is exhausted

    def elapsed() -> float:
        return elapsed0 + time.time() - t_start

    def progress(event: str, trial: Trial | None) -> None:
        if on_progress is not None:
            on_progress(Progress(event, trial, study.finished, max_trials, study.best, elapsed(), time_budget,
                                 len(study.rejected)))

    def next_trial() -> Trial | None:
        """The next trial to start (stored PENDING): a waiting one, a promotion or a new proposal."""
        nonlocal stopped, closed
        if time_budget is not None and elapsed() >= time_budget:
            stopped, closed = "time", True
            return None
        # every trial made so far finishes: with none in flight, all are finished
        trial = study.ask(fits=deadline.fits if deadline is not None else None,
                          new=len(study.trials) < max_trials)
        if trial is None:
            stopped = study.stopped or "trials"
            closed = stopped in ("time", "exhausted")
        return trial

    def start(trial: Trial) -> None:
        ckpt = None
        if checkpoint_dir is not None and scheduler.continues:
            ckpt = checkpoint_dir / f"trial{trial.number}.pt"
        study.start(trial)
        history = study.trials
        if stopping is None:
            peers: tuple[Trial, ...] = ()
        else:  # inline, the history cannot change while the trial runs: the snapshot is what the rule sees
            peers = stopping_view(history, stopping.metric) if executor.remote else tuple(history)
        inflight[trial.number] = (trial, ckpt)
        executor.submit(Job(trial.number, dict(trial.sample), trial.budget, str(ckpt) if ckpt else None,
                            tuple(trial.curve), stopping, peers,
                            deadline.timeout(trial_timeout) if deadline is not None else trial_timeout))

    def finish(out: Outcome) -> None:
        if out.number not in inflight:  # a late answer about a trial already settled (timed out, lost)
            log.debug("ignoring a late outcome for trial %d", out.number)
            return
        before, ckpt = inflight.pop(out.number)
        if out.lost:
            attempts = store.count_attempt(exp_id, out.number)
            if attempts <= max_retries:
                log.warning("trial %d: %s; running it again (retry %d of %d)", out.number, out.reason, attempts,
                            max_retries)
                study.requeue(before)
                return
            done = study.tell(out.number, state=TrialState.FAILED,
                              reason=f"{out.reason}; lost {attempts} time(s), search.max_retries is {max_retries}")
        elif out.state is TrialState.COMPLETE and out.result is not None:
            done = study.tell(out.number, result=out.result)
        elif out.state is TrialState.PRUNED:
            done = study.tell(out.number, state=TrialState.PRUNED, reason=out.reason, curve=out.curve)
        else:
            done = study.tell(out.number, state=TrialState.FAILED, reason=out.reason or "failed")
        if ckpt is not None and (scheduler.level(done) == len(scheduler.ladder) - 1 or not done.ok):
            spent.append(ckpt)  # never promoted again: deleted once the record that says so is committed
        told.append(done)

    def beat() -> None:
        nonlocal last_beat
        lease.check()  # the timer found the lease taken over: stop here, the trial in flight included
        if time.time() - last_beat >= heartbeat_every:
            last_beat = time.time()
            store.heartbeat(exp_id, executor.last_seen(), progress_of(executor))  # with each one's latest epoch

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
            outs = executor.wait(heartbeat_every, beat)
            spent: list[Path] = []
            told: list[Trial] = []
            with store.batch():  # trials that finished together: one commit
                for out in outs:
                    finish(out)
            for ckpt in spent:
                ckpt.unlink(missing_ok=True)
            for done in told:  # heard of once stored: a callback that raises loses nothing
                progress("trial", done)
            beat()
    except BaseException:
        with contextlib.suppress(Exception):  # what was in flight runs again on resume
            for before, _ in inflight.values():
                study.requeue(before)
        raise
    study.add_elapsed()
    progress("end", None)
    exp = store.experiment(experiment.name)
    assert exp is not None
    return SearchOutcome(exp, list(study.trials), stopped, len(study.rejected), study.resumed, study.best)
