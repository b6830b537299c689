"""Executors: inline reproducibility, a real process pool, a real local Ray cluster with 2 workers, and a
three-node Ray cluster on this machine that loses a node mid-search."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import threading
import time

import pytest

from nasforge.config import from_dict
from nasforge.errors import ConfigError
from nasforge.execute import EXECUTORS, InlineExecutor, Job, make_executor
from nasforge.execute.factories import TorchEvaluatorFactory
from nasforge.loop import run_search
from nasforge.schedule import ASHA, make_stopping
from nasforge.space.chain import ChainSpace
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.testing import TOY_SHAPE, FunctionEvaluator, ToyFactory, toy_objective, toy_space
from nasforge.types import Budget, TrialState

HAVE_RAY = importlib.util.find_spec("ray") is not None


def search(db, n, *, executor=None, evaluator=None, strategy="random", space=None, shape=TOY_SHAPE, **kw):
    space = space or toy_space()
    if executor is None and evaluator is None:
        evaluator = FunctionEvaluator(lambda s: toy_objective(space, s))
    with Store(db) as st:
        exp = st.experiment("toy") or st.create_experiment("toy", {}, "fp")
        return run_search(store=st, experiment=exp, space=space, strategy=make_strategy(strategy, space, seed=0),
                          evaluator=evaluator, executor=executor, input_shape=shape, budget=kw.pop("budget", Budget()),
                          max_trials=n, **kw)


def max_overlap(trials):
    """The most trials that were running at one moment, from their start and finish times."""
    events = sorted([(t.started, 1) for t in trials] + [(t.finished, -1) for t in trials])
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def test_registry_and_config_errors():
    assert set(EXECUTORS) == {"inline", "pool", "ray"}
    with pytest.raises(ConfigError, match="unknown executor kind 'dask'"):
        make_executor("dask", ToyFactory())
    with pytest.raises(ConfigError, match="inline runs one trial at a time"):
        make_executor("inline", ToyFactory(), workers=2)
    assert isinstance(make_executor("inline", ToyFactory()), InlineExecutor)
    cfg = from_dict({"executor": {"kind": "pool", "workers": 2, "threads_per_worker": 1}})
    assert cfg.executor.options() == {"workers": 2, "threads_per_worker": 1, "stale_after": 60.0}
    # where trials run never changes what they mean: resuming on another executor is allowed
    assert cfg.fingerprint() == from_dict({}).fingerprint()
    assert from_dict({"search": {"max_memory_mb": 100}}).fingerprint() != from_dict({}).fingerprint()
    assert from_dict({"search": {"max_retries": 2, "trial_timeout": "5m"}}).fingerprint() == from_dict({}).fingerprint()


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_inline_runs_are_reproducible_trial_for_trial(tmp_path, strategy):
    a = search(tmp_path / "a.db", 12, strategy=strategy)
    b = search(tmp_path / "b.db", 12, strategy=strategy, executor=make_executor("inline", ToyFactory()))
    assert [(t.number, t.key, t.score) for t in a.trials] == [(t.number, t.key, t.score) for t in b.trials]


def test_inline_torch_trials_repeat_exactly(tmp_path, digits):
    space = ChainSpace(max_blocks=3, widths=(8, 16), kernels=(3,), types=("conv", "pool", "dense"))
    factory = TorchEvaluatorFactory(digits, space, from_dict({}).train, seed=0, measure_latency=False)
    runs = [search(tmp_path / f"{i}.db", 2, executor=make_executor("inline", factory), space=space,
                   shape=digits.input_shape) for i in range(2)]
    assert [(t.key, t.score, t.curve) for t in runs[0].trials] == [(t.key, t.score, t.curve) for t in runs[1].trials]


def test_pool_runs_two_trials_at_once_and_builds_each_worker_once(tmp_path):
    log = tmp_path / "builds.log"
    with make_executor("pool", ToyFactory(delay=0.4, log=str(log)), workers=2, threads_per_worker=1) as ex:
        out = search(tmp_path / "a.db", 10, executor=ex)
        pids = ex.pids()
    assert [t.state for t in out.trials] == [TrialState.COMPLETE] * 10
    assert len({t.key for t in out.trials}) == 10
    builds = log.read_text().split()
    assert sorted(map(int, builds)) == sorted(pids) and len(builds) == 2  # the data once per worker, not per trial
    assert max_overlap(out.trials) == 2  # two at a time, never more
    inline = search(tmp_path / "b.db", 10)  # the random strategy proposes the same trials whatever runs them
    assert {(t.key, t.score) for t in out.trials} == {(t.key, t.score) for t in inline.trials}
    with Store(tmp_path / "a.db") as st:
        assert st.integrity_ok() and st.experiment("toy").strategy_state


def test_pool_workers_get_a_copy_of_the_data_where_memory_cannot_be_shared(tmp_path):
    log = tmp_path / "builds.log"
    with make_executor("pool", ToyFactory(log=str(log)), workers=2, share_memory=False) as ex:
        out = search(tmp_path / "a.db", 4, executor=ex)
    assert all(t.ok for t in out.trials) and len(log.read_text().split()) == 2


def test_pool_promotes_from_checkpoints_and_prunes_in_the_workers(tmp_path):
    full = Budget(epochs=9)
    with make_executor("pool", ToyFactory(curves=True), workers=2) as ex:
        out = search(tmp_path / "a.db", 18, executor=ex, budget=full, scheduler=ASHA(full, eta=3, min_epochs=1),
                     checkpoint_dir=tmp_path / "ckpt")
    promoted = [t for t in out.trials if len(t.rungs) >= 2]
    assert promoted and all(t.state is TrialState.COMPLETE for t in out.trials)
    assert all([r["epoch"] for r in t.curve] == list(range(1, int(t.budget.epochs) + 1)) for t in promoted)
    with make_executor("pool", ToyFactory(curves=True), workers=2) as ex:
        out = search(tmp_path / "b.db", 16, executor=ex, budget=Budget(epochs=4),
                     stopping=make_stopping("median", warmup_epochs=1, min_trials=3))
    pruned = [t for t in out.trials if t.state is TrialState.PRUNED]
    assert pruned and all("median rule" in t.reason and 1 < len(t.curve) < 4 for t in pruned)


def test_pool_trains_real_networks_on_digits(tmp_path, digits):
    space = ChainSpace(max_blocks=3, widths=(8, 16), kernels=(3,), types=("conv", "pool", "dense"))
    factory = TorchEvaluatorFactory(digits, space, from_dict({}).train, seed=0, measure_latency=False)
    with make_executor("pool", factory, workers=2) as ex:
        out = search(tmp_path / "a.db", 4, executor=ex, space=space, shape=digits.input_shape)
    assert all(t.ok and t.cost.params > 0 and len(t.curve) == 1 for t in out.trials)
    inline = search(tmp_path / "b.db", 4, executor=make_executor("inline", factory), space=space,
                    shape=digits.input_shape)
    # the same networks, trained with the same per-architecture seeds (1 thread vs 2: rounding may differ)
    assert {t.key: pytest.approx(t.score, abs=0.02) for t in inline.trials} == {t.key: t.score for t in out.trials}


def poll_progress(db, seen, stop):
    """A reader of the database beside the search (as the dashboard is): every running trial's latest epoch."""
    with Store(db, readonly=True) as reader:
        exp_id = reader.experiment("toy").id
        while not stop.is_set():
            seen.extend(reader.progress(exp_id).items())
            time.sleep(0.02)


def test_pool_workers_send_the_latest_epoch_with_their_heartbeats(tmp_path, digits):
    space = ChainSpace(max_blocks=3, widths=(8, 16), kernels=(3,), types=("conv", "pool", "dense"))
    factory = TorchEvaluatorFactory(digits, space, from_dict({}).train, seed=0, measure_latency=False)
    db = tmp_path / "a.db"
    with Store(db) as st:
        st.create_experiment("toy", {}, "fp")
    seen: list = []
    stop = threading.Event()
    with make_executor("pool", factory, workers=1, heartbeat_interval=0.01) as ex:  # digits' epochs take ~20 ms
        reader = threading.Thread(target=poll_progress, args=(db, seen, stop), daemon=True)
        reader.start()
        try:
            out = search(db, 2, executor=ex, space=space, shape=digits.input_shape, budget=Budget(epochs=8),
                         heartbeat_every=0.01)
        finally:
            stop.set()
            reader.join()
    assert all(t.ok and [r["epoch"] for r in t.curve] == [float(e) for e in range(1, 9)] for t in out.trials)
    assert seen, "no reader saw a running trial's epoch"
    assert all(n in (0, 1) and r["epochs"] == 8.0 and r["epoch"] in range(1, 9) and 0 <= r["val_accuracy"] <= 1
               for n, r in seen)
    assert len({(n, r["epoch"]) for n, r in seen}) >= 2  # it advanced as the trials trained
    with Store(db, readonly=True) as st:
        assert st.progress(st.experiment("toy").id) == {}  # nothing left running, nothing left over


def test_a_job_runs_the_same_on_every_executor():
    job = Job(0, toy_space().sample(__import__("numpy").random.default_rng(3)), Budget())
    outs = []
    for kind in ("inline", "pool"):
        ex = make_executor(kind, ToyFactory(), **({"workers": 1} if kind == "pool" else {}))
        try:
            ex.submit(job)
            got = []
            while not got:
                got = ex.wait(5)
            outs.append(got[0])
        finally:
            ex.shutdown()
    assert outs[0].result == outs[1].result and outs[1].extra["pid"] != outs[0].extra.get("pid")


def _stat(pid):
    """(state, parent pid, start time) of a process from /proc, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _tree(roots):
    """These processes and all their descendants, as (pid, start time): who they are, even after a pid is reused."""
    import os

    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(p)) is not None}
    found, todo = set(), [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        found.add((pid, stats[pid][2]))
        todo += [p for p, s in stats.items() if s[1] == pid and (p, s[2]) not in found]
    return found


def _running(procs):
    """Those of ``procs`` (from :func:`_tree`) still running; a zombie has ended."""
    return {(pid, start) for pid, start in procs if (s := _stat(pid)) is not None and s[2] == start and s[0] != "Z"}


def _open_files(pid):
    import os

    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


@pytest.fixture
def ray_three_nodes():
    """A Ray cluster of three nodes on this machine: a head and two worker nodes of one CPU each; the driver joins it.

    Yields the cluster, its two worker nodes and ``remove(node)``, which takes a worker node away (its
    raylet and every process it started, workers included). Runs before the module's ``ray_cluster``
    (a driver is in one Ray at a time). Afterwards not one of the cluster's processes is left running.
    """
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'nasforge[ray]')")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to see where processes run and what they open")
    import ray
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "this test must run before the tests that share ray_cluster"
    small = {"num_cpus": 1, "object_store_memory": 80 << 20}  # the smallest store Ray accepts is 75 MiB
    cluster = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
    procs: set[tuple[int, int]] = set()

    def daemons(*nodes):
        return [p.process.pid for n in nodes for ps in n.all_processes.values() for p in ps]

    def remove(node):
        procs.update(_tree(daemons(node)))
        cluster.remove_node(node)

    try:
        workers = [cluster.add_node(**small) for _ in range(2)]
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        yield cluster, workers, remove
    finally:
        procs.update(_tree(daemons(*cluster.list_all_nodes())))
        ray.shutdown()
        cluster.shutdown()
        deadline = time.time() + 15
        while _running(procs) and time.time() < deadline:
            time.sleep(0.1)
    assert procs and not _running(procs), f"Ray processes left behind: {sorted(_running(procs))}"


def test_a_removed_ray_node_has_its_trials_retried_on_the_others_and_the_driver_keeps_the_database(
        tmp_path, digits, ray_three_nodes):
    _, workers, remove = ray_three_nodes
    space = ChainSpace(max_blocks=3, widths=(8, 16), kernels=(3,), types=("conv", "pool", "dense"))
    factory = TorchEvaluatorFactory(digits, space, from_dict({}).train, seed=0, measure_latency=False)
    db = tmp_path / "a.db"
    raylets = {n.all_processes["raylet"][0].process.pid: n for n in workers}
    jobs, outcomes, removed = [], [], {}

    def watch(ex):
        """Once a trial runs on a worker node's actor, remove that node (its raylet, its workers) mid-trial."""
        deadline = time.time() + 60
        while time.time() < deadline:
            for number, pid in ex.running().items():
                stat = _stat(pid) if pid is not None else None
                if stat is not None and stat[1] in raylets:
                    time.sleep(0.3)  # trials here take seconds: it is still running
                    removed.update(trial=number, pid=pid, raylet=stat[1], files=_open_files(pid),
                                   driver_files=_open_files(os.getpid()))
                    remove(raylets[stat[1]])
                    return
            time.sleep(0.02)

    with make_executor("ray", factory, workers=2) as ex:
        submit, wait = ex.submit, ex.wait

        def record_submit(job):  # what travels to the workers
            jobs.append(job)
            submit(job)

        def record_wait(timeout=None, on_beat=None):  # what comes back, and from which node
            got = wait(timeout, on_beat)
            outcomes.extend((o, _stat(o.extra["pid"])) for o in got)
            return got

        ex.submit, ex.wait = record_submit, record_wait
        th = threading.Thread(target=watch, args=(ex,), daemon=True)
        th.start()
        out = search(db, 6, executor=ex, space=space, shape=digits.input_shape, budget=Budget(epochs=120),
                     max_retries=1)
        th.join()
        survivors = ex.pids()
        worker_files = [_open_files(p) for p in survivors]
    assert removed, "no trial ran on a worker node"
    # every asked trial finished once, under its own number
    assert [t.number for t in out.trials] == list(range(6)), [t.number for t in out.trials]
    assert [t.state for t in out.trials] == [TrialState.COMPLETE] * 6, [(t.number, t.reason) for t in out.trials]
    # the trial on the removed node was lost there (and only it), run again, and completed on another node
    lost = [o for o, _ in outcomes if o.lost]
    assert [(o.number, o.extra["pid"]) for o in lost] == [(removed["trial"], removed["pid"])], lost
    done = [(o, stat) for o, stat in outcomes if not o.lost]
    assert sorted(o.number for o, _ in done) == list(range(6))  # one answer per trial: nothing ran twice
    assert all(o.state is TrialState.COMPLETE for o, _ in done)
    again = next(stat for o, stat in done if o.number == removed["trial"])
    assert again is not None and again[1] != removed["raylet"]
    assert removed["pid"] not in survivors and (_stat(removed["pid"]) or ("Z",))[0] == "Z"  # gone with its node
    assert sorted(j.number for j in jobs) == sorted([*range(6), removed["trial"]])  # submitted twice: it alone
    with Store(db) as st:
        attempts = dict(st.conn.execute("SELECT number, attempts FROM trials").fetchall())
        assert attempts == {n: int(n == removed["trial"]) for n in range(6)}
        assert st.integrity_ok()
    # the database is the driver's alone: no path of it travels, no worker opens it, no copy appears
    assert all(j.checkpoint is None for j in jobs) and str(tmp_path) not in repr(jobs)
    assert str(tmp_path).encode() not in pickle.dumps(factory)
    assert str(db) in removed["driver_files"] and not any(str(db) in f for f in removed["files"])
    assert not any(str(db) in f for files in worker_files for f in files)
    assert {p.name for p in tmp_path.iterdir()} <= {"a.db", "a.db-wal", "a.db-shm"}


@pytest.fixture(scope="module")
def ray_cluster():
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'nasforge[ray]')")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_runs_the_search_on_two_workers_with_the_data_once_each(tmp_path, ray_cluster):
    log = tmp_path / "builds.log"
    with make_executor("ray", ToyFactory(delay=0.3, log=str(log)), workers=2) as ex:
        out = search(tmp_path / "a.db", 8, executor=ex)
        pids = ex.pids()
    assert [t.state for t in out.trials] == [TrialState.COMPLETE] * 8 and max_overlap(out.trials) == 2
    assert len(set(pids)) == 2 and sorted(map(int, log.read_text().split())) == sorted(pids)
    inline = search(tmp_path / "b.db", 8)
    assert {(t.key, t.score) for t in out.trials} == {(t.key, t.score) for t in inline.trials}
    assert ray_cluster.is_initialized()  # a cluster the executor joined is left running


def test_a_killed_ray_worker_is_replaced_and_its_trial_retried(tmp_path, ray_cluster):
    from .test_faults import kill9, on_first_running

    with make_executor("ray", ToyFactory(delay=1.0), workers=2) as ex:
        killed, th = on_first_running(ex, kill9)
        out = search(tmp_path / "a.db", 5, executor=ex, max_retries=1)
        th.join()
        assert killed["pid"] not in ex.pids()  # replaced (the new one may still be starting)
    assert [t.state for t in out.trials] == [TrialState.COMPLETE] * 5
    with Store(tmp_path / "a.db") as st:
        assert st.conn.execute("SELECT attempts FROM trials WHERE number=?", (killed["trial"],)).fetchone()[0] == 1
        assert st.integrity_ok()


def test_a_stopped_ray_worker_misses_its_pings_and_is_replaced(tmp_path, ray_cluster):
    import os
    import signal

    from .test_faults import on_first_running

    with make_executor("ray", ToyFactory(delay=0.5), workers=2, heartbeat_interval=0.2, stale_after=2.0) as ex:
        stopped, th = on_first_running(ex, lambda pid: os.kill(pid, signal.SIGSTOP), after=0.1)
        out = search(tmp_path / "a.db", 4, executor=ex)
        th.join()
    victim = next(t for t in out.trials if t.number == stopped["trial"])
    assert victim.state is TrialState.FAILED and "stopped answering" in victim.reason
    assert sum(t.ok for t in out.trials) == 3


def test_ray_pings_bring_back_the_latest_epoch(tmp_path, ray_cluster):
    db = tmp_path / "a.db"
    with Store(db) as st:
        st.create_experiment("toy", {}, "fp")
    seen: list = []
    stop = threading.Event()
    with make_executor("ray", ToyFactory(curves=True, delay=0.1), workers=2, heartbeat_interval=0.05) as ex:
        reader = threading.Thread(target=poll_progress, args=(db, seen, stop), daemon=True)
        reader.start()
        try:
            out = search(db, 4, executor=ex, budget=Budget(epochs=6), heartbeat_every=0.05)
        finally:
            stop.set()
            reader.join()
    assert all(t.ok for t in out.trials) and seen
    assert all(r["epochs"] == 6.0 and r["epoch"] in range(1, 7) and "val_accuracy" in r for _, r in seen)
    assert len({(n, r["epoch"]) for n, r in seen}) >= 4  # each trial runs 0.6 s, pinged every 0.05 s
    with Store(db, readonly=True) as st:
        assert st.progress(st.experiment("toy").id) == {}
