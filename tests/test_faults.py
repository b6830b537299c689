"""Faults with real processes: killed and stopped workers, killed drivers, timeouts, memory, a busy store.

After every fault the database passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from nasforge.errors import StoreError
from nasforge.evaluate.memory import estimate_bytes, memory_limit
from nasforge.execute import make_executor
from nasforge.loop import run_search
from nasforge.space.chain import ChainSpace, chain_sample
from nasforge.store import Store, process_token
from nasforge.strategy import make_strategy
from nasforge.testing import TOY_SHAPE, FunctionEvaluator, ToyFactory, toy_objective, toy_space
from nasforge.types import Budget, TrialState

HAVE_RAY = importlib.util.find_spec("ray") is not None


def search(db, n, *, executor=None, evaluator=None, **kw):
    space = toy_space()
    if executor is None and evaluator is None:
        evaluator = FunctionEvaluator(lambda s: toy_objective(space, s))
    with Store(db) as st:
        exp = st.experiment("toy") or st.create_experiment("toy", {}, "fp")
        return run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=0),
                          evaluator=evaluator, executor=executor, input_shape=TOY_SHAPE, budget=Budget(),
                          max_trials=n, **kw)


def clean(db) -> bool:
    with Store(db) as st:
        return st.integrity_ok()


def on_first_running(ex, action, *, after: float = 0.3):
    """In a thread: once a trial runs (for ``after`` seconds), do ``action(pid)`` to its worker, once."""
    done: dict[str, int] = {}

    def watch():
        deadline = time.time() + 60
        while time.time() < deadline:
            running = dict(ex.running())
            if running and all(p is not None for p in running.values()):
                time.sleep(after)
                number, pid = next(iter(running.items()))
                done["trial"], done["pid"] = number, pid
                action(pid)
                return
            time.sleep(0.02)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    return done, th


def kill9(pid):
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_worker_killed_mid_trial_fails_or_retries_that_trial_and_the_search_goes_on(tmp_path, retries):
    db = tmp_path / "a.db"
    with make_executor("pool", ToyFactory(delay=1.0), workers=2) as ex:
        killed, th = on_first_running(ex, kill9)
        out = search(db, 6, executor=ex, max_retries=retries)
        th.join()
    victim = next(t for t in out.trials if t.number == killed["trial"])
    assert len(out.trials) == 6
    if retries == 0:
        assert victim.state is TrialState.FAILED and "SIGKILL" in victim.reason and "max_retries is 0" in victim.reason
        assert sum(t.state is TrialState.COMPLETE for t in out.trials) == 5
    else:
        assert all(t.state is TrialState.COMPLETE for t in out.trials)
        with Store(db) as st:
            attempts = st.conn.execute("SELECT attempts FROM trials WHERE number=?", (victim.number,)).fetchone()[0]
        assert attempts == 1
    assert clean(db)


def test_a_stopped_worker_is_found_by_its_heartbeat_killed_and_replaced(tmp_path):
    db = tmp_path / "a.db"
    with make_executor("pool", ToyFactory(delay=0.5), workers=2, heartbeat_interval=0.2, stale_after=1.5) as ex:
        stopped, th = on_first_running(ex, lambda pid: os.kill(pid, signal.SIGSTOP), after=0.1)
        out = search(db, 5, executor=ex)
        th.join()
        assert stopped["pid"] not in ex.pids()
    victim = next(t for t in out.trials if t.number == stopped["trial"])
    assert victim.state is TrialState.FAILED and "stopped answering" in victim.reason
    assert sum(t.ok for t in out.trials) == 4 and clean(db)
    with pytest.raises(ProcessLookupError):
        os.kill(stopped["pid"], 0)


def test_trial_timeout_inline_and_in_the_pool(tmp_path):
    slow = FunctionEvaluator(lambda s: 0.5, delay=3.0)
    t0 = time.time()
    out = search(tmp_path / "a.db", 2, evaluator=slow, trial_timeout=0.3)
    assert time.time() - t0 < 3
    assert all(t.state is TrialState.FAILED and "timed out after 0.3 s" in t.reason for t in out.trials)
    with make_executor("pool", ToyFactory(delay=20.0), workers=2) as ex:
        t0 = time.time()
        out = search(tmp_path / "b.db", 2, executor=ex, trial_timeout=0.5)
        assert time.time() - t0 < 20
    assert all(t.state is TrialState.FAILED and "trial_timeout" in t.reason for t in out.trials)
    assert clean(tmp_path / "a.db") and clean(tmp_path / "b.db")


def test_a_candidate_that_runs_out_of_memory_fails_alone(tmp_path):
    with make_executor("pool", ToyFactory(oom_every=3), workers=2) as ex:
        pids = set(ex.pids())
        out = search(tmp_path / "a.db", 9, executor=ex)
        assert set(ex.pids()) == pids  # no worker died
    failed = [t for t in out.trials if t.state is TrialState.FAILED]
    assert failed and all("can't allocate memory" in t.reason for t in failed)
    assert len(out.trials) == 9 and sum(t.ok for t in out.trials) == 9 - len(failed)
    assert clean(tmp_path / "a.db")


def test_estimated_memory_rejects_big_candidates_before_training():
    space = ChainSpace(max_blocks=3, widths=(8, 512), kernels=(3,))
    conv = {"type": "conv", "kernel": 3, "stride": 1, "padding": "same", "act": "relu", "bn": False}
    small = chain_sample(space, [{**conv, "width": 8}], head="gap")
    big = chain_sample(space, [{**conv, "width": 512}, {**conv, "width": 512}], head="flatten")
    shape = (1, 28, 28)
    b_small = estimate_bytes(lambda: space.build(small, shape, 10), shape, batch_size=128)
    b_big = estimate_bytes(lambda: space.build(big, shape, 10), shape, batch_size=128)
    # 2 x 512 channels of 28x28 per example, kept for backward and its gradient, at batch 128: > 1.5 GB
    assert b_big > 1.5e9 > 1e8 > b_small
    check = memory_limit(space, shape, 10, 100, batch_size=128)
    assert check(small) is None
    assert "exceeds search.max_memory_mb 100" in check(big)


def test_a_live_driver_keeps_its_lease_and_a_dead_one_loses_it(tmp_path):
    db = tmp_path / "a.db"
    search(db, 2)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store(db) as st:
            exp = st.experiment("toy")
            st.acquire(exp.id, process_token(other.pid))
        with pytest.raises(StoreError, match=f"being run by process {other.pid}"):
            search(db, 4)
    finally:
        other.kill()
        other.wait()
    out = search(db, 4)  # the holder is gone: its lease is taken over at once
    assert len(out.trials) == 4 and clean(db)


def test_a_lease_of_another_host_expires_with_its_heartbeat(tmp_path):
    db = tmp_path / "a.db"
    search(db, 2)
    with Store(db) as st:
        st.acquire(st.experiment("toy").id, "elsewhere:123:456")  # a driver on another machine, beating now
    with pytest.raises(StoreError, match="being run by process 123 on elsewhere"):
        search(db, 4)
    con = sqlite3.connect(db)
    con.execute("UPDATE experiments SET driver_beat=?", (time.time() - 3600,))  # silent for an hour
    con.commit()
    con.close()
    assert len(search(db, 4).trials) == 4 and clean(db)


def test_running_trials_carry_fresh_heartbeats(tmp_path):
    db = tmp_path / "a.db"
    seen: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                con = sqlite3.connect(db, timeout=5)
                seen.extend(con.execute("SELECT started, heartbeat FROM trials WHERE state='RUNNING' "
                                        "AND heartbeat IS NOT NULL").fetchall())
                con.close()
            except sqlite3.OperationalError:
                pass
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    with make_executor("pool", ToyFactory(delay=1.5), workers=2, heartbeat_interval=0.1) as ex:
        search(db, 4, executor=ex, heartbeat_every=0.2)
    stop.set()
    th.join()
    assert any(beat - started > 0.5 for started, beat in seen)  # renewed while the trial ran, not only at its start
    with Store(db) as st:
        assert st.heartbeats(st.experiment("toy").id) == {}  # nothing left running
        assert st.conn.execute("SELECT driver FROM experiments").fetchone()[0] is None  # lease released
        assert st.integrity_ok()


def test_a_busy_database_is_retried(tmp_path, monkeypatch):
    db = tmp_path / "a.db"
    search(db, 1)
    locked, release = threading.Event(), threading.Event()

    def hold(seconds):  # another program holds the write lock for a while
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(seconds)
        con.execute("COMMIT")
        con.close()

    th = threading.Thread(target=hold, args=(0.6,))
    th.start()
    locked.wait()
    t0 = time.time()
    with Store(db, timeout=0.05) as st:  # opening writes too (the schema check)
        exp = st.experiment("toy")
        st.add_rejection(exp.id, "k", "why")  # waits, retries with backoff, then writes
        assert time.time() - t0 >= 0.5 and st.rejections(exp.id)[-1] == ("k", "why")
    th.join()
    locked.clear()
    th = threading.Thread(target=hold, args=(30,))
    th.start()
    locked.wait()
    monkeypatch.setattr("nasforge.store.BUSY_RETRIES", 2)
    with pytest.raises(StoreError, match="stayed busy"), Store(db, timeout=0.05) as st:
        st.add_rejection(exp.id, "k2", "why")
    release.set()
    th.join()
    assert clean(db)


# ---------------------------------------------------------------------------------- killing the driver

DIGITS = {
    "name": "digits",
    "data": {"source": "digits"},
    "space": {"kind": "chain", "max_blocks": 3, "widths": [8, 16], "kernels": [3], "types": ["conv", "pool", "dense"]},
    "strategy": {"name": "random"},
    "search": {"trials": 8, "budget": {"epochs": 1}, "measure_latency": False},
}


def completed(db: Path) -> list[tuple[int, str, float]]:
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute("SELECT number, key, finished FROM trials WHERE state='COMPLETE' "
                               "ORDER BY number").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return []


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_and_resume(tmp_path, executor: dict, at_least: int = 2, n: int = 24) -> None:
    # enough trials that the kill lands mid-search even when a quiet machine runs them fast
    cfg = {**DIGITS, "executor": executor, "search": {**DIGITS["search"], "db": str(tmp_path / "s.db"), "trials": n}}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    db = tmp_path / "s.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "search", str(p)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 150
    while time.time() < deadline and len(completed(db)) < at_least:
        time.sleep(0.1)
    workers = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = completed(db)
    assert at_least <= len(before) < n
    try:
        if executor["kind"] == "pool":  # workers die with the driver
            end = time.time() + 20
            while time.time() < end and any(alive(w) for w in workers):
                time.sleep(0.1)
            assert not any(alive(w) for w in workers)
        r = subprocess.run([sys.executable, "-m", "nasforge", "search", str(p), "--resume"], capture_output=True,
                           text=True, timeout=240, env=env)
    finally:  # a local Ray instance's node agents outlive a driver killed with -9; end those we started
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)
    assert r.returncode == 0, r.stderr
    after = completed(db)
    assert len(after) == n and [i for i, _, _ in after] == list(range(n))
    assert set(before) <= set(after)  # nothing lost, nothing re-run: same rows, same finish times
    assert len({k for _, k, _ in after}) == n
    assert clean(db)


def test_kill_minus_9_of_a_pool_driver_then_resume(tmp_path):
    kill_and_resume(tmp_path, {"kind": "pool", "workers": 2})


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'nasforge[ray]')")
def test_kill_minus_9_of_a_ray_driver_then_resume(tmp_path):
    kill_and_resume(tmp_path, {"kind": "ray", "workers": 2})
