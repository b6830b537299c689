"""A local process pool: N worker processes, one trial each at a time, each with its share of threads.

Workers are forked from a fork server that imported torch and nasforge once (no OpenMP state of the
driver is forked, and a replacement worker starts in a fraction of a second). Each builds its
evaluator, data included, once from the factory it is started with; torch's multiprocessing
reductions put the data tensors in shared memory, so N workers do not hold N copies (where shared
memory is too small, as in a container's default /dev/shm, each worker gets a pickled copy instead).
Each worker runs ``torch.set_num_threads(threads_per_worker)``: two 1-thread workers on a 2-core
machine use both cores without oversubscribing them. With ``gpus`` (the CUDA GPUs trials train on) each
worker slot gets its own ``CUDA_VISIBLE_DEVICES`` (round-robin, ``gpus_per_worker`` each, or a share of
one), set before the worker touches CUDA; a replacement worker takes the slot, and the GPU, of the one it replaces.

The driver talks to each worker over its own pipe and watches its process sentinel, so it knows at
once which trial a dying worker was running. While a trial runs, a worker thread sends a heartbeat
every ``heartbeat_interval`` seconds, with the trial's latest epoch (for the live view); a trial not
heard from for ``stale_after`` seconds (a hung or stopped worker) is treated like a dead worker: the
worker is killed and replaced, and the trial is reported lost (the driver retries or fails it). A
trial past its timeout is killed the same way and fails. Workers die with the driver
(PR_SET_PDEATHSIG on Linux, and a driver check in the heartbeat thread), and ask the kernel to pick
them first when memory runs out (oom_score_adj), so an out-of-memory kill takes a worker, not the search.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from nasforge.errors import NasforgeError
from nasforge.execute.base import (
    EvaluatorFactory,
    ExecutorError,
    Job,
    Outcome,
    check_workers,
    describe_exit,
    run_job,
    timeout_reason,
    worker_gpus,
)
from nasforge.types import TrialState

log = logging.getLogger("nasforge")


@dataclass
class _Worker:
    process: Any
    conn: Connection
    ready: bool = False
    pid: int | None = None
    job: Job | None = None
    started: float = 0.0
    seen: float = field(default_factory=time.time)
    slot: int = 0  # which GPUs it was given (worker_gpus)
    row: Mapping[str, float] | None = None  # its job's latest epoch (progress_row), as its last heartbeat said


class PoolExecutor:
    """Runs up to ``workers`` trials at once in local worker processes."""

    remote = True

    def __init__(self, factory: EvaluatorFactory, *, workers: int = 2, threads_per_worker: int = 1,
                 heartbeat_interval: float = 1.0, stale_after: float = 60.0, start_method: str = "forkserver",
                 max_start_failures: int | None = None, startup_timeout: float = 300.0,
                 share_memory: bool = True, gpus: int = 0, gpus_per_worker: float = 0.0) -> None:
        check_workers(workers, threads_per_worker, "executor")
        import torch.multiprocessing as tmp

        self.factory = factory
        self.capacity = workers
        self.threads = threads_per_worker
        self.gpus, self.gpus_per_worker = gpus, gpus_per_worker
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self._ctx: Any = tmp.get_context(start_method)
        if start_method == "forkserver":  # the server imports torch and nasforge once; workers fork from it
            self._ctx.set_forkserver_preload(["nasforge.execute.pool", *WARM_UP])
        self._workers: list[_Worker] = []
        self._queue: deque[Job] = deque()
        self._done: list[Outcome] = []
        self._start_failures = 0
        # the pickled factory, sent to each worker when shared memory is unavailable (or not wanted)
        self._copy: bytes | None = None if share_memory else pickle.dumps(factory)
        self._max_start_failures = max_start_failures if max_start_failures is not None else 2 * workers + 2
        for _ in range(workers):
            self._spawn()
        self._await_ready(startup_timeout)

    # ------------------------------------------------------------------ lifecycle
    def _await_ready(self, timeout: float) -> None:
        """Block until every worker has built its evaluator, so a broken factory fails before any trial starts."""
        deadline = time.time() + timeout
        while not all(w.ready for w in self._workers):
            left = deadline - time.time()
            if left <= 0:
                self.shutdown()
                raise ExecutorError(f"pool workers did not start within {timeout:.0f} s; the machine may be "
                                    "out of memory or overloaded")
            by_key: dict[Any, _Worker] = {}
            for w in self._workers:
                if not w.ready:
                    by_key[w.conn] = w
                    by_key[w.process.sentinel] = w
            for ready in wait(list(by_key), timeout=min(left, 1.0)):
                w = by_key[ready]
                if w in self._workers:
                    try:
                        self._read(w, None)
                    except ExecutorError:
                        self.shutdown()
                        raise
            while len(self._workers) < self.capacity:
                self._spawn()
    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        factory: EvaluatorFactory | bytes = self._copy if self._copy is not None else self.factory
        taken = {w.slot for w in self._workers}
        slot = next(i for i in range(len(self._workers) + 1) if i not in taken)  # a dead worker's slot first
        proc = self._ctx.Process(target=_worker_main, name="nasforge-worker", daemon=True,
                                 args=(child, factory, self.threads, self.heartbeat_interval, os.getpid(),
                                       worker_gpus(slot, self.gpus, self.gpus_per_worker)))
        try:
            proc.start()  # the data tensors go to shared memory here
        except RuntimeError as e:
            parent.close()
            child.close()
            if self._copy is not None:
                raise
            log.warning("cannot share the data with the workers (%s); each worker gets its own copy",
                        str(e).splitlines()[0][:200])
            self._copy = pickle.dumps(self.factory)  # e.g. a container's small /dev/shm
            self._spawn()
            return
        child.close()
        self._workers.append(_Worker(proc, parent, slot=slot))

    def _kill(self, w: _Worker) -> None:
        with contextlib.suppress(Exception):
            w.process.kill()
        w.process.join(5)
        with contextlib.suppress(Exception):
            w.conn.close()
        if w in self._workers:
            self._workers.remove(w)

    def shutdown(self) -> None:
        for w in list(self._workers):
            if w.job is None and w.ready:
                with contextlib.suppress(Exception):
                    w.conn.send(None)
        deadline = time.time() + 2
        for w in list(self._workers):
            if w.job is None and w.ready:
                w.process.join(max(0.0, deadline - time.time()))
            self._kill(w)
        self._queue.clear()

    def __enter__(self) -> PoolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and monitoring)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def running(self) -> dict[int, int]:
        """Trial number -> pid of the worker running it."""
        return {w.job.number: w.process.pid for w in self._workers if w.job is not None}

    # ------------------------------------------------------------------ jobs
    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._dispatch()

    def last_seen(self) -> dict[int, float]:
        return {w.job.number: w.seen for w in self._workers if w.job is not None}

    def progress(self) -> dict[int, Mapping[str, float]]:
        return {w.job.number: w.row for w in self._workers if w.job is not None and w.row is not None}

    def _dispatch(self) -> None:
        while len(self._workers) < self.capacity:
            self._spawn()
        for w in self._workers:
            if not self._queue:
                return
            if w.ready and w.job is None:
                job = self._queue.popleft()
                try:
                    w.conn.send(job)
                except (OSError, ValueError):  # died just now; the sentinel tells the rest
                    self._queue.appendleft(job)
                    continue
                w.job, w.started, w.seen, w.row = job, time.time(), time.time(), None

    def wait(self, timeout: float | None = None, on_beat: Callable[[], None] | None = None) -> list[Outcome]:
        deadline = None if timeout is None else time.time() + timeout
        while True:
            self._dispatch()
            if self._done or (not self._queue and all(w.job is None for w in self._workers)):
                out, self._done = self._done, []
                return out
            now = time.time()
            step = min(self.heartbeat_interval, 1.0)
            if deadline is not None:
                if now >= deadline:
                    return []
                step = min(step, deadline - now)
            by_key: dict[Any, _Worker] = {}
            for w in self._workers:
                by_key[w.conn] = w
                by_key[w.process.sentinel] = w
            for ready in wait(list(by_key), timeout=step):
                w = by_key[ready]
                if w in self._workers:
                    self._read(w, on_beat)
            self._watch()

    def _read(self, w: _Worker, on_beat: Callable[[], None] | None) -> None:
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                w.seen = time.time()
                kind = msg[0]
                if kind == "ready":
                    w.ready, w.pid = True, msg[1]
                    self._start_failures = 0
                elif kind == "beat":
                    if len(msg) > 2 and msg[2] is not None and w.job is not None and msg[1] == w.job.number:
                        w.row = msg[2]
                    if on_beat is not None:
                        on_beat()
                elif kind == "done":
                    out: Outcome = msg[1]
                    if w.job is not None and out.number == w.job.number:
                        self._done.append(out)
                        w.job = None
                elif kind == "error":
                    self._kill(w)
                    raise ExecutorError(f"a pool worker could not start: {msg[1]}")
        except (EOFError, OSError):
            pass
        if not w.process.is_alive():
            self._died(w)

    def _died(self, w: _Worker) -> None:
        w.process.join(5)
        why = describe_exit(w.process.exitcode)
        if w.job is not None:
            log.warning("worker %s died while running trial %d (%s)", w.process.pid, w.job.number, why)
            self._done.append(Outcome(w.job.number, TrialState.FAILED, lost=True,
                                      reason=f"worker process {w.process.pid} died ({why})",
                                      extra={"pid": w.process.pid}))
            w.job = None
        elif not w.ready:
            self._start_failures += 1
            if self._start_failures > self._max_start_failures:
                self._kill(w)
                raise ExecutorError(f"pool workers keep dying before they are ready (last: {why}); a script that "
                                    "runs a pool search must guard its code with `if __name__ == '__main__':`; "
                                    "else check memory, or run with executor.kind: inline to see the error")
        self._kill(w)

    def _watch(self) -> None:
        """Kill workers whose trial ran past its timeout or whose heartbeat went stale."""
        now = time.time()
        for w in list(self._workers):
            job = w.job
            if job is None:
                continue
            if job.timeout is not None and now - w.started > job.timeout:
                log.warning("trial %d timed out after %.0f s; killing worker %s", job.number, now - w.started,
                            w.process.pid)
                self._done.append(Outcome(job.number, TrialState.FAILED, reason=timeout_reason(job.timeout)))
                w.job = None
                self._kill(w)
            elif now - w.seen > self.stale_after:
                log.warning("no heartbeat from worker %s (trial %d) for %.0f s; killing it", w.process.pid,
                            job.number, now - w.seen)
                self._done.append(Outcome(job.number, TrialState.FAILED, lost=True,
                                          reason=f"worker process {w.process.pid} stopped answering "
                                                 f"(no heartbeat for {now - w.seen:.0f} s)"))
                w.job = None
                self._kill(w)


# ---------------------------------------------------------------------------------------- the worker


# Imported once before a worker is ready: torch's FLOP counter imports torch._dynamo on first use, which
# takes seconds and would be charged to the worker's first trial. In the pool the fork server has them.
WARM_UP = ("torch._dynamo",)


def warm_up() -> None:
    import importlib

    for name in WARM_UP:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the driver dies (kill -9 included)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the heartbeat thread's parent check remains
        pass
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")


def _worker_main(conn: Connection, factory: EvaluatorFactory | bytes, threads: int, interval: float,
                 parent: int, gpus: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if gpus is not None:  # before anything starts CUDA in this process: CUDA reads it once
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    _die_with_parent()  # the parent is the driver (spawn) or the fork server, which ends with the driver
    start_ppid = os.getppid()

    def orphaned() -> bool:
        if os.getppid() != start_ppid:
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    if orphaned():
        os._exit(1)
    import torch

    warm_up()
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    lock = threading.Lock()
    current: list[int | None] = [None]
    latest: list[tuple[int, Mapping[str, float]] | None] = [None]  # (trial, its latest epoch's progress_row)

    def send(msg: Any) -> None:
        with lock:
            conn.send(msg)

    def beat() -> None:
        while True:
            time.sleep(interval)
            if orphaned():
                os._exit(1)
            n, last = current[0], latest[0]
            if n is not None:
                try:  # the latest epoch rides on the beat: nothing more is sent per epoch
                    send(("beat", n, last[1] if last is not None and last[0] == n else None))
                except OSError:
                    os._exit(1)

    try:
        evaluator = (pickle.loads(factory) if isinstance(factory, bytes) else factory)()
    except Exception as e:
        msg = str(e) if isinstance(e, NasforgeError) else f"{type(e).__name__}: {e}"
        with contextlib.suppress(OSError):
            send(("error", msg))
        os._exit(1)
    threading.Thread(target=beat, name="nasforge-heartbeat", daemon=True).start()
    send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            break
        if job is None:
            break
        current[0], latest[0] = job.number, None

        def on_progress(row: Mapping[str, float], n: int = job.number) -> None:
            latest[0] = (n, row)

        out = run_job(evaluator, job, on_progress=on_progress)
        current[0], latest[0] = None, None
        try:
            send(("done", replace(out, extra={**out.extra, "pid": os.getpid()})))
        except OSError:
            break
    os._exit(0)
