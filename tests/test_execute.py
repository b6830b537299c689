"""Executors: inline reproducibility, a real process pool and a real local Ray cluster with 2 workers."""

from __future__ import annotations

import importlib.util

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
