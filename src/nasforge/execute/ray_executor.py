"""The Ray executor: trials on Ray actors, one trial per actor at a time, on one machine or a cluster.

``executor: {kind: ray}`` starts a private local Ray instance with ``workers * threads_per_worker``
CPUs; ``address: auto`` (or ``ray://head:10001``, or ``host:port``) joins an existing cluster
instead, and leaves it running afterwards. Install with ``pip install 'nasforge[ray]'``.
``gpus_per_worker`` (above 0) asks Ray for that many GPUs an actor (``num_gpus``); Ray then sets each
actor's ``CUDA_VISIBLE_DEVICES``, and an actor waits until a GPU is free.

Ray has no authentication by default, so the private instance listens on 127.0.0.1 only (see
:func:`_loopback_only`): its GCS, raylet, object manager, agents and every worker's and the driver's
gRPC server. Joining a cluster leaves its listeners to the cluster's own settings: there this
driver's gRPC server and the workers' listen on the node's network address, reachable from the
cluster's network. Ray's ``ray.init`` replaces the SIGTERM handler; one the program had set (the
CLI's) is put back.

The factory (and the data it holds) is put in Ray's object store once; each actor reads it once
when it starts and builds its evaluator there, so data reach each worker once, not once per trial.
Actors are threaded (two calls at once): while one thread trains, the driver pings the other every
``heartbeat_interval`` seconds (the answer carries the trial's latest epoch, for the live view), and
an actor that stops answering for ``stale_after`` seconds is killed and replaced, its trial reported
lost. A dead actor (its process killed, its node gone) fails its call, which reports the trial lost too.

Cluster caveat: the store and the checkpoints of scheduler promotions stay on the driver's file
system (checkpoints beside the database). On a multi-node cluster, put the database directory on a
file system every node mounts at the same path, or use no scheduler that continues from
checkpoints (fraction rungs retrain from scratch); nasforge must be installed on every node.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nasforge.execute.base import (
    EvaluatorFactory,
    ExecutorError,
    Job,
    Outcome,
    check_workers,
    run_job,
    timeout_reason,
)
from nasforge.types import TrialState

log = logging.getLogger("nasforge")
LOOPBACK = "127.0.0.1"
_CLUSTER_MODE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch between a loopback node and a networked one


@contextlib.contextmanager
def _loopback_only() -> Iterator[dict[str, Any]]:
    """While a local Ray instance starts: its node address is 127.0.0.1, so nothing listens elsewhere.

    Ray binds its gRPC servers and agents by the node's address. On Linux it takes the address that
    reaches the network even when told ``_node_ip_address="127.0.0.1"`` (it "resolves" loopback
    away), unless its cluster mode is off, as it is by default on macOS and Windows. Turning it off
    here (Ray's flag for this process; its variable for the processes it starts, which inherit the
    environment) makes the node address 127.0.0.1: GCS, raylet, object manager, core workers and the
    driver bind 127.0.0.1 only. Both are put back afterwards: joining a cluster later needs them.
    Yields ``ray.init``'s extra keywords.
    """
    constants: Any = None
    with contextlib.suppress(ImportError):  # a Ray without it: the check after ray.init warns
        constants = importlib.import_module("ray._private.ray_constants")
    had_flag = hasattr(constants, "ENABLE_RAY_CLUSTER")
    flag = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    env = os.environ.get(_CLUSTER_MODE)
    os.environ[_CLUSTER_MODE] = "0"
    if had_flag:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield {"_node_ip_address": LOOPBACK}
    finally:
        if had_flag:
            constants.ENABLE_RAY_CLUSTER = flag
        if env is None:
            os.environ.pop(_CLUSTER_MODE, None)
        else:
            os.environ[_CLUSTER_MODE] = env


@contextlib.contextmanager
def _keep_sigterm() -> Iterator[None]:
    """Put back a SIGTERM handler the program had set (the CLI's: Ctrl-C's path) after ``ray.init`` replaced it.

    Ray's own handler (exit at once) stays only where the program had none.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None and previous != signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


class _RayWorker:
    """The actor body: builds the evaluator once, then runs jobs."""

    def __init__(self, factory: EvaluatorFactory, threads: int) -> None:
        import torch

        from nasforge.execute.pool import warm_up

        warm_up()
        torch.set_num_threads(threads)
        self.evaluator = factory()
        self.latest: tuple[int, Mapping[str, float] | None] | None = None  # (trial, its latest progress_row)

    def ready(self) -> int:
        return os.getpid()

    def ping(self) -> tuple[int, int | None, Mapping[str, float] | None]:
        """pid, and the running trial with its latest epoch (answered from the actor's second thread)."""
        latest = self.latest
        return (os.getpid(), *latest) if latest is not None else (os.getpid(), None, None)

    def run(self, job: Job) -> Outcome:
        self.latest = (job.number, None)

        def on_progress(row: Mapping[str, float]) -> None:
            self.latest = (job.number, row)

        try:
            out = run_job(self.evaluator, job, on_progress=on_progress)
        finally:
            self.latest = None
        return replace(out, extra={**out.extra, "pid": os.getpid()})


@dataclass
class _Actor:
    handle: Any
    ready_ref: Any
    ready: bool = False
    pid: int | None = None
    job: Job | None = None
    run_ref: Any = None
    ping_ref: Any = None
    ping_sent: float = 0.0
    started: float = 0.0
    seen: float = field(default_factory=time.time)
    row: Mapping[str, float] | None = None  # its job's latest epoch (progress_row), as its last ping said


class RayExecutor:
    """Runs up to ``workers`` trials at once on Ray actors of ``threads_per_worker`` CPUs each."""

    remote = True

    def __init__(self, factory: EvaluatorFactory, *, workers: int = 2, threads_per_worker: int = 1,
                 address: str | None = None, heartbeat_interval: float = 2.0, stale_after: float = 60.0,
                 max_start_failures: int | None = None, startup_timeout: float = 300.0,
                 gpus_per_worker: float = 0.0) -> None:
        check_workers(workers, threads_per_worker, "executor")
        try:
            import ray
        except ImportError:
            raise ExecutorError("executor kind ray needs Ray: pip install 'nasforge[ray]' "
                                "(or choose executor.kind: pool)") from None
        self.ray = ray
        self.capacity = workers
        self.threads = threads_per_worker
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self._owns = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.ERROR}
            try:
                with _keep_sigterm():
                    if address:
                        ray.init(address=address, **kw)
                    else:
                        with _loopback_only() as local:
                            ray.init(address="local", num_cpus=workers * threads_per_worker, **kw, **local)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ExecutorError(f"cannot start or join {where} ({str(e).splitlines()[0][:200]}); "
                                    "check executor.address, or leave it out to start a local one") from None
            self._owns = True
            if not address and (node := ray.util.get_node_ip_address()) != LOOPBACK:
                log.warning("the local Ray instance runs on %s, not only on %s: Ray has no authentication by "
                            "default, so anyone who reaches this machine may reach it", node, LOOPBACK)
        self._factory_ref = ray.put(factory)
        remote: Any = ray.remote
        gpu = {"num_gpus": gpus_per_worker} if gpus_per_worker else {}  # none asked: as before GPUs were
        self._cls = remote(num_cpus=threads_per_worker, max_concurrency=2, max_restarts=0, **gpu)(_RayWorker)
        self._actors: list[_Actor] = []
        self._queue: list[Job] = []
        self._done: list[Outcome] = []
        self._start_failures = 0
        self._max_start_failures = max_start_failures if max_start_failures is not None else 2 * workers + 2
        for _ in range(workers):
            self._spawn()
        try:
            self._await_ready(startup_timeout)
        except BaseException:
            self.shutdown()
            raise

    def _await_ready(self, timeout: float) -> None:
        """Block until every actor has built its evaluator, so a broken factory fails before any trial starts."""
        deadline = time.time() + timeout
        while not all(a.ready for a in self._actors):
            left = deadline - time.time()
            if left <= 0:
                raise ExecutorError(f"Ray workers did not start within {timeout:.0f} s; check the cluster's free CPUs "
                                    "(each worker needs threads_per_worker of them)")
            refs = {a.ready_ref: a for a in self._actors if not a.ready}
            ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=min(left, 1.0))
            for ref in ready:
                if refs[ref] in self._actors:
                    self._collect(refs[ref], "ready", ref, None)
            while len(self._actors) < self.capacity:
                self._spawn()

    def _spawn(self) -> None:
        handle = self._cls.remote(self._factory_ref, self.threads)
        self._actors.append(_Actor(handle, handle.ready.remote()))

    def _kill(self, a: _Actor) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(a.handle, no_restart=True)
        if a in self._actors:
            self._actors.remove(a)

    def shutdown(self) -> None:
        for a in list(self._actors):
            self._kill(a)
        self._queue.clear()
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
            self._owns = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def pids(self) -> list[int]:
        return [a.pid for a in self._actors if a.pid is not None]

    def running(self) -> dict[int, int | None]:
        return {a.job.number: a.pid for a in self._actors if a.job is not None}

    def submit(self, job: Job) -> None:
        self._queue.append(job)
        self._dispatch()

    def last_seen(self) -> dict[int, float]:
        return {a.job.number: a.seen for a in self._actors if a.job is not None}

    def progress(self) -> dict[int, Mapping[str, float]]:
        return {a.job.number: a.row for a in self._actors if a.job is not None and a.row is not None}

    def _dispatch(self) -> None:
        while len(self._actors) < self.capacity:
            self._spawn()
        for a in self._actors:
            if not self._queue:
                return
            if a.ready and a.job is None:
                job = self._queue.pop(0)
                a.job, a.started, a.seen, a.row = job, time.time(), time.time(), None
                a.run_ref = a.handle.run.remote(job)

    def wait(self, timeout: float | None = None, on_beat: Callable[[], None] | None = None) -> list[Outcome]:
        ray = self.ray
        deadline = None if timeout is None else time.time() + timeout
        while True:
            self._dispatch()
            if self._done or (not self._queue and all(a.job is None for a in self._actors)):
                out, self._done = self._done, []
                return out
            now = time.time()
            for a in self._actors:
                if a.job is not None and a.ping_ref is None and now - a.ping_sent >= self.heartbeat_interval:
                    a.ping_ref, a.ping_sent = a.handle.ping.remote(), now
            refs: dict[Any, tuple[_Actor, str]] = {}
            for a in self._actors:
                if not a.ready:
                    refs[a.ready_ref] = (a, "ready")
                if a.run_ref is not None:
                    refs[a.run_ref] = (a, "run")
                if a.ping_ref is not None:
                    refs[a.ping_ref] = (a, "ping")
            step = min(self.heartbeat_interval, 1.0)
            if deadline is not None:
                if now >= deadline:
                    return []
                step = min(step, deadline - now)
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=step) if refs else ([], [])
            if ready:  # collect everything else that is ready too
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
            for ref in ready:
                a, what = refs[ref]
                if a in self._actors:
                    self._collect(a, what, ref, on_beat)
            self._watch()

    def _collect(self, a: _Actor, what: str, ref: Any, on_beat: Callable[[], None] | None) -> None:
        ray = self.ray
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            detail = type(e).__name__ if a.ready else str(e).strip().splitlines()[-1][:300]
            self._lost(a, f"Ray worker {a.pid or '?'} died ({detail})")
            return
        except ray.exceptions.RayError as e:
            if what == "run" and a.job is not None:
                self._done.append(Outcome(a.job.number, TrialState.FAILED,
                                          reason=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"))
                a.job, a.run_ref = None, None
            elif what == "ready":
                self._lost(a, f"Ray worker failed to start ({str(e).splitlines()[0][:300]})")
            return
        a.seen = time.time()
        if what == "ready":
            a.ready, a.pid = True, int(value)
            self._start_failures = 0
        elif what == "ping":
            a.ping_ref = None
            if isinstance(value, tuple) and len(value) == 3 and value[2] is not None and a.job is not None \
                    and value[1] == a.job.number:
                a.row = value[2]
            if on_beat is not None:
                on_beat()
        elif what == "run":
            if a.job is not None and value.number == a.job.number:
                self._done.append(value)
            a.job, a.run_ref = None, None

    def _lost(self, a: _Actor, why: str) -> None:
        if a.job is not None:
            log.warning("%s while running trial %d", why, a.job.number)
            self._done.append(Outcome(a.job.number, TrialState.FAILED, lost=True, reason=why,
                                      extra={"pid": a.pid}))
        elif not a.ready:
            self._start_failures += 1
            if self._start_failures > self._max_start_failures:
                self._kill(a)
                raise ExecutorError(f"Ray workers keep failing to start ({why}); check that nasforge and its "
                                    "data are reachable on the cluster, or run with executor.kind: pool")
        self._kill(a)

    def _watch(self) -> None:
        now = time.time()
        for a in list(self._actors):
            job = a.job
            if job is None:
                continue
            if job.timeout is not None and now - a.started > job.timeout:
                log.warning("trial %d timed out after %.0f s; killing its Ray worker", job.number, now - a.started)
                self._done.append(Outcome(job.number, TrialState.FAILED, reason=timeout_reason(job.timeout)))
                a.job = None
                self._kill(a)
            elif now - a.seen > self.stale_after:
                self._lost(a, f"Ray worker {a.pid or '?'} stopped answering (no heartbeat for {now - a.seen:.0f} s)")
