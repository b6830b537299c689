"""What every executor shares: the job a worker runs, the outcome it sends back, and how it runs it.

The driver (strategy, scheduler, store) hands a :class:`Job` to an executor; a worker runs it with
:func:`run_job` against its own evaluator and answers with an :class:`Outcome`. Jobs and outcomes are
plain picklable records, so the same function runs inline, in a process pool and in a Ray actor.

Early stopping in workers: a job carries the stopping rule and a snapshot of the history as it was
when the trial started, and the worker applies the rule after every epoch itself. Inline, only one
trial runs at a time and the history cannot change while it runs, so the snapshot is exactly what
the rule would have seen; with several workers a rule ignores trials that finish while this one
runs (they are seen by every trial started later). Nothing has to travel back per epoch: the latest
epoch's row (:func:`progress_row`, for the live view) rides on the heartbeats the executor has anyway.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nasforge.errors import ConfigError, NasforgeError
from nasforge.evaluate.recipe import TrainingFailed
from nasforge.schedule.stopping import StoppingRule, TrialPruned
from nasforge.types import Budget, EvalResult, Sample, Trial, TrialState

log = logging.getLogger("nasforge")

Reporter = Callable[[int, Mapping[str, float]], None]


class Evaluator(Protocol):
    """Trains (or looks up) one candidate for a budget.

    ``report`` hears every epoch's row and may raise :class:`TrialPruned` to stop early;
    ``checkpoint`` is a file to continue from (when it holds a smaller budget) and to save to.
    """

    def evaluate(self, sample: Sample, budget: Budget, report: Reporter | None = None,
                 checkpoint: Path | None = None) -> EvalResult: ...


class EvaluatorFactory(Protocol):
    """Builds a worker's evaluator once per worker (the data come with it); must pickle."""

    def __call__(self) -> Evaluator: ...


class ExecutorError(NasforgeError):
    """The executor cannot run trials at all (workers cannot start, the cluster is unreachable)."""


class TrialTimeout(Exception):
    """A trial ran past ``search.trial_timeout``."""


@dataclass(frozen=True)
class Job:
    """One trial for a worker: what to train, for how long, from which checkpoint, and when to stop early."""

    number: int
    sample: Mapping[str, Any]
    budget: Budget
    checkpoint: str | None = None
    curve: tuple[Mapping[str, float], ...] = ()  # the stored curve of a promoted trial (its earlier rungs)
    stopping: StoppingRule | None = None
    history: tuple[Trial, ...] = ()  # what the stopping rule compares with, as of the trial's start
    timeout: float | None = None  # seconds


@dataclass(frozen=True)
class Outcome:
    """How a job ended. ``lost``: the worker died or went silent, so the trial itself is not to blame."""

    number: int
    state: TrialState  # COMPLETE, PRUNED or FAILED
    result: EvalResult | None = None
    reason: str | None = None
    curve: tuple[Mapping[str, float], ...] = ()  # the partial curve of a pruned trial
    lost: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. the worker's pid, for tests and logs


class Executor(Protocol):
    """Runs up to ``capacity`` jobs at once; the driver keeps submitting while fewer are in flight."""

    capacity: int
    remote: bool  # workers in other processes: jobs are pickled, the history snapshot is trimmed

    def submit(self, job: Job) -> None: ...

    def wait(self, timeout: float | None = None, on_beat: Callable[[], None] | None = None) -> list[Outcome]:
        """Outcomes of jobs finished since the last call; an empty list when ``timeout`` passes first.

        ``on_beat`` is called whenever a job shows a sign of life while this call waits (inline: every epoch).
        """
        ...

    def last_seen(self) -> dict[int, float]:
        """When each job in flight last showed a sign of life (the driver stores these as heartbeats)."""
        ...

    def progress(self) -> Mapping[int, Mapping[str, float]]:
        """The latest epoch (:func:`progress_row`) of each job in flight that has reported one, as fresh as the
        executor's heartbeats: the driver stores it with them, for the live view. Optional: the driver reads it
        through :func:`progress_of`, which gives {} for an executor without it."""
        return {}

    def shutdown(self) -> None: ...


# what a running trial's latest epoch row keeps for the live view, where present
PROGRESS_KEYS = ("val_accuracy", "val_score", "val_loss")


def progress_row(budget: Budget, epoch: int, row: Mapping[str, float]) -> dict[str, float]:
    """A running trial's latest epoch, small enough to travel with every heartbeat: ``epoch``, ``epochs`` (the
    budget's) and the last validation figures of :data:`PROGRESS_KEYS` the row has."""
    out = {"epoch": float(row.get("epoch", epoch)), "epochs": float(budget.epochs)}
    out.update({k: float(v) for k in PROGRESS_KEYS if isinstance(v := row.get(k), int | float)})
    return out


def progress_of(executor: Executor) -> Mapping[int, Mapping[str, float]]:
    """:meth:`Executor.progress`, or {} for an executor written before it existed."""
    get = getattr(executor, "progress", None)
    return get() if callable(get) else {}


def run_job(evaluator: Evaluator, job: Job, on_epoch: Callable[[int], None] | None = None,
            on_progress: Callable[[Mapping[str, float]], None] | None = None) -> Outcome:
    """Run one job against an evaluator and describe how it ended; never raises for a trial's own failure.

    ``on_progress`` hears each epoch's :func:`progress_row` (before ``on_epoch``). KeyboardInterrupt and SystemExit
    pass through (the trial is then not finished, and runs again).
    """
    curve: list[Mapping[str, float]] = []

    def report(epoch: int, row: Mapping[str, float]) -> None:
        if not curve:  # continuing from a checkpoint: the stored epochs before this one come first
            curve.extend(r for r in job.curve if r.get("epoch", 0) < row.get("epoch", epoch))
        curve.append(dict(row))
        if on_progress is not None:
            on_progress(progress_row(job.budget, epoch, row))
        if on_epoch is not None:
            on_epoch(epoch)
        if job.stopping is not None and (why := job.stopping.check(job.number, job.budget, curve, job.history)):
            raise TrialPruned(why)

    try:
        res = evaluator.evaluate(job.sample, job.budget, report, Path(job.checkpoint) if job.checkpoint else None)
    except TrialPruned as e:
        return Outcome(job.number, TrialState.PRUNED, reason=str(e), curve=tuple(curve))
    except TrainingFailed as e:
        return Outcome(job.number, TrialState.FAILED, reason=str(e))
    except TrialTimeout:
        return Outcome(job.number, TrialState.FAILED, reason=timeout_reason(job.timeout))
    except MemoryError:
        return Outcome(job.number, TrialState.FAILED, reason="out of memory while training; lower "
                                                             "search.max_memory_mb or train.batch_size")
    except Exception as e:  # a bug in a candidate or evaluator must not end the search
        log.warning("trial %d failed unexpectedly: %s", job.number, e, exc_info=log.isEnabledFor(logging.DEBUG))
        return Outcome(job.number, TrialState.FAILED, reason=f"{type(e).__name__}: {str(e)[:500]}")
    return Outcome(job.number, TrialState.COMPLETE, result=res)


def timeout_reason(seconds: float | None) -> str:
    return f"timed out after {seconds:g} s (search.trial_timeout)"


def stopping_view(history: Sequence[Trial], metric: str) -> tuple[Trial, ...]:
    """The part of the history a stopping rule reads, small enough to send with every job.

    Only finished trials with a curve, each curve cut to the epoch and the rule's metric.
    """
    out = []
    for t in history:
        if not t.curve or t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        curve = tuple({k: v for k, v in r.items() if k in ("epoch", metric)} for r in t.curve)
        out.append(Trial(number=t.number, key=t.key, sample={}, state=t.state, budget=t.budget, score=t.score,
                         curve=curve))
    return tuple(out)


def default_workers(cpus: int, threads: int, gpus: int, gpus_per_worker: float) -> int:
    """Workers when ``executor.workers`` is not set: as many as the GPUs hold where trials train on GPUs (one
    each by default), else one per ``threads`` cores."""
    if gpus and gpus_per_worker:
        return max(1, int(gpus / gpus_per_worker))
    return max(1, cpus // max(1, threads))


def worker_gpus(slot: int, gpus: int, gpus_per_worker: float) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` of a pool's worker ``slot`` (0, 1, ...): GPUs dealt round-robin, a whole
    number of them each, or one shared by several workers for a share below 1; None without GPUs."""
    if not gpus or not gpus_per_worker:
        return None
    if gpus_per_worker < 1:
        return str(slot % gpus)
    k = min(int(gpus_per_worker), gpus)
    return ",".join(str((slot * k + j) % gpus) for j in range(k))


def check_workers(workers: Any, threads: Any, where: str) -> None:
    for name, v in (("workers", workers), ("threads_per_worker", threads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{where}.{name} must be a positive whole number, got {v!r}")


def describe_exit(code: int | None) -> str:
    """A worker's exit status in words."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer, or kill -9)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"
