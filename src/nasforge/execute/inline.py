"""The default executor: one trial at a time, in the driver's own process and thread.

Trials run in exactly the order the driver submits them, so a seeded search is reproducible trial
for trial. A ``trial_timeout`` interrupts the trial with a timer signal (SIGALRM) when the driver
runs in the main thread of a Unix process; elsewhere the limit is checked after every epoch.

The driver's own work between epochs (``on_beat``: heartbeats, the lease check) is not the trial's:
when it fails (say the driver lost its lease), the trial stops and that error ends ``wait``, rather
than being recorded as the trial's failure. The lease itself is renewed by a timer in the store, not
per epoch, so an epoch of any length keeps it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

from nasforge.execute.base import Evaluator, EvaluatorFactory, Job, Outcome, TrialTimeout, run_job, timeout_reason
from nasforge.types import TrialState


class _DriverStop(BaseException):
    """Carries an error of the driver's ``on_beat`` through the trial (``run_job`` catches Exception)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class InlineExecutor:
    capacity = 1
    remote = False

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._job: Job | None = None
        self._seen = 0.0
        self._row: Mapping[str, float] | None = None  # the running job's latest epoch (progress_row)

    @classmethod
    def from_factory(cls, factory: EvaluatorFactory, **_: object) -> InlineExecutor:
        return cls(factory())

    def submit(self, job: Job) -> None:
        if self._job is not None:
            raise RuntimeError("the inline executor runs one trial at a time")
        self._job, self._seen, self._row = job, time.time(), None

    def last_seen(self) -> dict[int, float]:
        return {} if self._job is None else {self._job.number: self._seen}

    def progress(self) -> dict[int, Mapping[str, float]]:
        return {} if self._job is None or self._row is None else {self._job.number: self._row}

    def wait(self, timeout: float | None = None, on_beat: Callable[[], None] | None = None) -> list[Outcome]:
        job = self._job
        if job is None:
            return []
        limit = job.timeout
        use_alarm = (limit is not None and hasattr(signal, "setitimer")
                     and threading.current_thread() is threading.main_thread())
        deadline = None if limit is None else time.time() + limit

        def on_progress(row: Mapping[str, float]) -> None:
            self._row = row  # before on_beat, which stores it

        def on_epoch(_: int) -> None:
            self._seen = time.time()
            if on_beat is not None:
                try:
                    on_beat()
                except Exception as e:
                    raise _DriverStop(e) from e
            if deadline is not None and not use_alarm and time.time() > deadline:
                raise TrialTimeout

        def alarm(signum: int, frame: FrameType | None) -> None:
            raise TrialTimeout

        previous = None
        try:
            if use_alarm and limit is not None:
                previous = signal.signal(signal.SIGALRM, alarm)
                signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                out = run_job(self.evaluator, job, on_epoch, on_progress)
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
        except TrialTimeout:  # the alarm went off between the end of the trial and the timer's reset
            out = Outcome(job.number, TrialState.FAILED, reason=timeout_reason(limit))
        except _DriverStop as stop:
            raise stop.error from None
        finally:
            self._job, self._row = None, None
        return [out]

    def shutdown(self) -> None:
        self._job, self._row = None, None
