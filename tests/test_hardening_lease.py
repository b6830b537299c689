"""Hardening of the experiment lease and the driver's surroundings (issue items 2, 10, 11 and 13).

- 2: a private local Ray instance listens on 127.0.0.1 only (every Ray process, the driver included);
- 10: a retrain holds the experiment's lease, so a second retrain (or a search) of it is refused;
- 11: SIGTERM takes Ctrl-C's path: a message, the lease released, in-flight trials back to PENDING, exit 143;
- 13: the lease is renewed from a timer (a long inline epoch keeps it), never renewed once another process
  holds it, and a driver that lost it stops with one StoreError line and writes nothing more.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from nasforge import api
from nasforge.errors import StoreError
from nasforge.execute import make_executor
from nasforge.store import Store, process_token
from nasforge.testing import FunctionEvaluator, ToyFactory, toy_objective, toy_space
from nasforge.types import Budget, EvalResult, Sample

from .test_faults import search

HAVE_RAY = importlib.util.find_spec("ray") is not None
OTHER = "elsewhere:4242:77"  # a driver on another machine

DIGITS: dict[str, Any] = {
    "name": "digits",
    "seed": 0,
    "data": {"source": "digits"},
    "space": {"kind": "chain", "max_blocks": 3, "widths": [8, 16], "kernels": [3], "types": ["conv", "pool", "dense"]},
    "strategy": {"name": "random"},
    "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False},
    "retrain": {"epochs": 1, "baseline": False},
}


def rows(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every trial row and every experiment row, as stored."""
    con = sqlite3.connect(db, timeout=30)
    try:
        return (con.execute("SELECT * FROM trials ORDER BY experiment_id, number").fetchall(),
                con.execute("SELECT * FROM experiments ORDER BY id").fetchall())
    finally:
        con.close()


def take_over(db: Path, token: str = OTHER) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Another driver takes the lease (as one whose beat check found ours stale would); returns the rows then."""
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE experiments SET driver=?, driver_beat=?", (token, time.time()))
        snapshot = (con.execute("SELECT * FROM trials ORDER BY experiment_id, number").fetchall(),
                    con.execute("SELECT * FROM experiments ORDER BY id").fetchall())
        con.execute("COMMIT")
        return snapshot
    finally:
        con.close()


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------------------ 13: the lease


def test_heartbeat_never_renews_a_lease_another_process_took(tmp_path):
    db = tmp_path / "a.db"
    with Store(db) as st:
        exp = st.create_experiment("toy", {}, "fp")
        st.acquire(exp.id, process_token())
        con = sqlite3.connect(db)
        con.execute("UPDATE experiments SET driver=?, driver_beat=?", (OTHER, 1000.0))
        con.commit()
        con.close()
        with pytest.raises(StoreError, match="taken over by process 4242 on elsewhere") as err:
            st.heartbeat(exp.id, {})
        one_line(err.value)
        with pytest.raises(StoreError, match="taken over"):  # and so is every other write
            st.add_rejection(exp.id, "k", "why")
        assert tuple(st.conn.execute("SELECT driver, driver_beat FROM experiments").fetchone()) == (OTHER, 1000.0)
        assert st.rejections(exp.id) == []
        st.release(exp.id, process_token())  # not ours any more: left alone
        assert st.conn.execute("SELECT driver FROM experiments").fetchone()[0] == OTHER


class _TakenOverDuring:
    """Trains trials epoch by epoch; during trial ``at`` another driver takes the lease (once)."""

    def __init__(self, db: Path, at: int, epochs_after: int = 3) -> None:
        self.db, self.at, self.epochs_after = db, at, epochs_after
        self.calls = 0
        self.snapshot: Any = None
        self.epochs_run_after = 0
        self.space = toy_space()

    def evaluate(self, sample: Sample, budget: Budget, report: Any = None, checkpoint: Path | None = None,
                 ) -> EvalResult:
        self.calls += 1
        v = toy_objective(self.space, sample)
        if self.calls == self.at + 1:
            self.snapshot = take_over(self.db)
            for e in range(1, self.epochs_after + 1):
                time.sleep(0.3)  # the lease timer (every 0.1 s) finds the lease gone meanwhile
                self.epochs_run_after += 1
                if report is not None:
                    report(e, {"epoch": float(e), "val_accuracy": v})
        return EvalResult(score=v, metrics={"accuracy": v})


def test_an_inline_driver_that_lost_its_lease_stops_at_once_and_writes_nothing_more(tmp_path):
    db = tmp_path / "a.db"
    ev = _TakenOverDuring(db, at=2)
    with pytest.raises(StoreError, match="taken over by process 4242 on elsewhere") as err:
        search(db, 10, evaluator=ev, heartbeat_every=0.1)
    one_line(err.value)
    assert ev.calls == 3 and ev.epochs_run_after == 1  # the trial stopped at its first epoch after the loss
    assert rows(db) == ev.snapshot  # not one row written after the takeover (trial 2 stays RUNNING for the other)
    trials, _ = ev.snapshot
    assert len(trials) == 3


def test_a_pool_driver_that_lost_its_lease_stops_and_writes_nothing_more(tmp_path):
    db = tmp_path / "a.db"
    snap: dict[str, Any] = {}

    def thief() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                done, _ = rows(db) if db.exists() else ([], [])
            except sqlite3.OperationalError:  # the file exists, its tables not yet: the store is being created
                done = []
            if sum(r[4] == "COMPLETE" for r in done) >= 2:
                snap["rows"] = take_over(db)
                return
            time.sleep(0.05)

    th = threading.Thread(target=thief, daemon=True)
    th.start()
    with make_executor("pool", ToyFactory(delay=0.4), workers=2, heartbeat_interval=0.1) as ex, \
            pytest.raises(StoreError, match="taken over by process 4242") as err:
        search(db, 40, executor=ex, heartbeat_every=0.1)
    th.join()
    one_line(err.value)
    assert rows(db) == snap["rows"]


def test_the_lease_is_renewed_by_a_timer_during_a_long_inline_epoch(tmp_path):
    db = tmp_path / "a.db"
    seen: list[tuple[float, float, float]] = []

    class LongEpoch(FunctionEvaluator):
        def evaluate(self, sample: Sample, budget: Budget, report: Any = None,
                     checkpoint: Path | None = None) -> EvalResult:
            t0 = time.time()
            time.sleep(1.5)  # one epoch, no report while it runs (as a long real epoch)
            con = sqlite3.connect(db, timeout=30)
            (beat,) = con.execute("SELECT driver_beat FROM experiments").fetchone()
            con.close()
            seen.append((t0, beat, time.time()))
            return super().evaluate(sample, budget, report, checkpoint)

    space = toy_space()
    search(db, 2, evaluator=LongEpoch(lambda s: toy_objective(space, s)), heartbeat_every=0.2)
    assert len(seen) == 2
    for t0, beat, now in seen:
        # renewed while the epoch ran, not only at its start: even a 1 s staleness rule (another host's) sees it live
        assert beat > t0 + 1.0 and now - beat < 0.6
    with Store(db) as st:
        assert st.conn.execute("SELECT driver FROM experiments").fetchone()[0] is None  # released at the end


# ------------------------------------------------------------------------------------------ 10: retrain


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("searched") / "s.db"
    api.search({**DIGITS, "search": {**DIGITS["search"], "db": str(db)}})
    return db


def test_a_retrain_holds_the_lease_and_a_second_one_is_refused(searched, tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a retrain running now
    out = tmp_path / "models"
    try:
        with Store(searched) as st:
            st.acquire(st.experiment("digits").id, process_token(other.pid))
        with pytest.raises(StoreError, match=f"being run by process {other.pid} .*then run the retrain again$") as e:
            api.retrain(searched, out_dir=out)
        one_line(e.value)
        assert not out.exists()  # refused before anything was written
    finally:
        other.kill()
        other.wait()
    held: list[Any] = []

    def on_epoch(name: str, epoch: int, row: Mapping[str, float]) -> None:
        con = sqlite3.connect(searched)
        held.append(con.execute("SELECT driver FROM experiments").fetchone()[0])
        con.close()

    api.retrain(searched, out_dir=out, on_epoch=on_epoch)  # the holder is gone: its lease is taken over
    assert held and set(held) == {process_token()}  # this retrain held the lease while it trained
    with Store(searched) as st:
        assert st.conn.execute("SELECT driver FROM experiments").fetchone()[0] is None  # and gave it back


# ------------------------------------------------------------------------------------------ 11: SIGTERM


def completed(db: Path) -> int:
    """COMPLETE trials in ``db``, read through a read-only connection (0 before the schema exists)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return int(con.execute("SELECT COUNT(*) FROM trials WHERE state='COMPLETE'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def descendants(pid: int) -> list[int]:
    import psutil  # installed with Ray, which this check needs anyway

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def start_search(tmp_path: Path, executor: dict[str, Any], trials: int = 40) -> tuple[subprocess.Popen[str], Path]:
    db = tmp_path / "s.db"
    cfg = {**DIGITS, "executor": executor, "search": {**DIGITS["search"], "db": str(db), "trials": trials}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "search", str(p)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, db


def wait_for_trials(proc: subprocess.Popen[str], db: Path, n: int, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and completed(db) < n and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None and completed(db) >= n, "the search did not get going"


def assert_stopped_like_ctrl_c(proc: subprocess.Popen[str], db: Path) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "nasforge: interrupted; everything finished so far is stored, continue with --resume" in err
    con = sqlite3.connect(db, timeout=30)
    try:
        assert con.execute("SELECT driver FROM experiments").fetchone()[0] is None  # the lease is released
        assert con.execute("SELECT COUNT(*) FROM trials WHERE state='RUNNING'").fetchone()[0] == 0
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path):
    proc, db = start_search(tmp_path, {"kind": "inline"})
    try:
        wait_for_trials(proc, db, 1)
        proc.send_signal(signal.SIGTERM)
        assert_stopped_like_ctrl_c(proc, db)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_handler_is_only_installed_while_the_cli_runs(tmp_path):
    from nasforge.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["status", str(tmp_path / "missing.db")]) == 2
    assert signal.getsignal(signal.SIGTERM) == before


# ------------------------------------------------------------------------------------------ 2: Ray binds loopback

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def listening(pids: list[int]) -> dict[tuple[int, str], set[tuple[str, int]]]:
    """(pid, process name) -> the TCP/UDP addresses it listens on (TCP LISTEN; UDP sockets are bound ones)."""
    import psutil  # ships with Ray (on sys.path once ray is imported)

    out: dict[tuple[int, str], set[tuple[str, int]]] = {}
    for pid in pids:
        try:
            p = psutil.Process(pid)
            socks = {(c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet")
                     if c.laddr and (c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr))}
            out[(pid, p.name())] = socks
        except psutil.Error:
            continue
    return out


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'nasforge[ray]')")
def test_a_local_ray_search_listens_on_loopback_only_and_sigterm_stops_it(tmp_path):
    import ray  # noqa: F401  (puts Ray's bundled psutil on sys.path)

    proc, db = start_search(tmp_path, {"kind": "ray", "workers": 1}, trials=60)
    family: list[int] = []
    try:
        wait_for_trials(proc, db, 1, seconds=120)  # a trial has finished: GCS, raylet, agents, a worker are up
        family = [proc.pid, *descendants(proc.pid)]
        socks = listening(family)
        print({f"{pid} {name}": sorted(s) for (pid, name), s in socks.items() if s})  # the measured addresses
        names = {name for (_, name), s in socks.items() if s}
        assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names)
        assert any(s for (pid, _), s in socks.items() if pid == proc.pid), "the driver's own gRPC server"
        exposed = {f"{pid} {name}": sorted(a for a in s if a[0] not in LOOPBACK)
                   for (pid, name), s in socks.items()}
        assert not any(exposed.values()), exposed
        proc.send_signal(signal.SIGTERM)  # Ray's ray.init replaces SIGTERM's handler; the CLI's is put back
        assert_stopped_like_ctrl_c(proc, db)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in family[1:]:  # what a driver's Ray shutdown left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
