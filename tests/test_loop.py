"""The search loop over a real SQLite store: budgets, resume, failures, exhaustion, invalid spaces."""

from __future__ import annotations

import time

import pytest

from nasforge.errors import NasforgeError
from nasforge.evaluate.trainer import TrainingFailed
from nasforge.loop import preflight, run_search
from nasforge.space.chain import ChainSpace
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.testing import TOY_SHAPE, FunctionEvaluator, toy_objective, toy_space
from nasforge.types import Budget, TrialState


def search(db, n, *, strategy="evolution", seed=0, evaluator=None, space=None, name="toy", resume=False, **kw):
    space = space or toy_space()
    ev = evaluator or FunctionEvaluator(lambda s: toy_objective(space, s))
    with Store(db) as st:
        exp = st.experiment(name) if resume else st.create_experiment(name, {}, "fp")
        opts = {"evolution": {"population_size": 6, "sample_size": 2}, "genetic": {"population_size": 6}}
        strat = make_strategy(strategy, space, seed=seed, **opts.get(strategy, {}))
        return run_search(store=st, experiment=exp, space=space, strategy=strat, evaluator=ev,
                          input_shape=TOY_SHAPE, budget=Budget(epochs=1), max_trials=n, **kw)


@pytest.mark.parametrize("strategy", ["random", "evolution", "genetic"])
def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path, strategy):
    straight = search(tmp_path / "a.db", 16, strategy=strategy)
    search(tmp_path / "b.db", 7, strategy=strategy)
    resumed = search(tmp_path / "b.db", 16, strategy=strategy, resume=True)
    assert [t.key for t in resumed.trials] == [t.key for t in straight.trials]
    assert [t.number for t in resumed.trials] == list(range(16))


def test_an_interrupted_trial_runs_again_and_nothing_completed_reruns(tmp_path):
    db = tmp_path / "a.db"
    first = search(db, 5)
    with Store(db) as st:  # what a kill -9 mid-trial leaves behind: one RUNNING row
        exp = st.experiment("toy")
        t = first.trials[-1]
        st.update_trial(exp.id, t.with_(state=TrialState.RUNNING, score=None, finished=None))
    space = toy_space()
    ev = FunctionEvaluator(lambda s: toy_objective(space, s))
    out = search(db, 8, evaluator=ev, space=space, resume=True)
    assert out.resumed_pending == 1
    assert ev.calls == 4  # the interrupted trial 4, then 5, 6, 7
    assert [t.finished for t in out.trials[:4]] == [t.finished for t in first.trials[:4]]
    assert all(t.state is TrialState.COMPLETE for t in out.trials)


def test_a_trial_left_running_with_an_epoch_starts_again_without_it(tmp_path):
    db = tmp_path / "a.db"
    first = search(db, 3)
    with Store(db) as st:  # what a kill -9 mid-trial leaves behind: RUNNING, with its latest epoch stored
        exp = st.experiment("toy")
        t = first.trials[-1]
        st.update_trial(exp.id, t.with_(state=TrialState.RUNNING, score=None, finished=None))
        st.heartbeat(exp.id, {t.number: time.time()}, {t.number: {"epoch": 7.0, "epochs": 9.0}})
    space = toy_space()
    seen: list[dict[int, dict[str, float]]] = []

    class Looking(FunctionEvaluator):  # a reader of the database before and after each epoch is reported
        def evaluate(self, sample, budget, report=None, checkpoint=None):
            def heard(epoch, row):
                with Store(db, readonly=True) as reader:
                    seen.append(reader.progress(exp.id))
                    report(epoch, row)
                    seen.append(reader.progress(exp.id))

            return super().evaluate(sample, budget, heard, checkpoint)

    out = search(db, 4, evaluator=Looking(lambda s: toy_objective(space, s), curves=True), space=space,
                 resume=True, heartbeat_every=0)
    assert out.resumed_pending == 1 and all(x.state is TrialState.COMPLETE for x in out.trials)
    assert seen[:2] == [{}, {2: {"epoch": 1.0, "epochs": 1.0, "val_accuracy": out.trials[2].score}}]
    with Store(db) as st:
        assert st.progress(exp.id) == {} and st.trials(exp.id)[2].curve == out.trials[2].curve


def test_failures_are_recorded_and_the_search_goes_on(tmp_path):
    space = toy_space()
    calls = {"n": 0}

    class Flaky:
        def evaluate(self, sample, budget, report=None, checkpoint=None):
            calls["n"] += 1
            if calls["n"] == 2:
                raise TrainingFailed("non-finite training loss in epoch 1; lower the learning rate")
            if calls["n"] == 3:
                raise IndexError("a bug in some candidate")
            return FunctionEvaluator(lambda s: toy_objective(space, s)).evaluate(sample, budget)

    out = search(tmp_path / "a.db", 5, evaluator=Flaky(), space=space)
    states = [t.state for t in out.trials]
    assert states.count(TrialState.FAILED) == 2 and states.count(TrialState.COMPLETE) == 3
    assert "non-finite" in out.trials[1].reason and "IndexError" in out.trials[2].reason


def test_a_small_space_is_exhausted_without_repeats(tmp_path):
    space = ChainSpace(min_blocks=1, max_blocks=1, types=("batchnorm", "dropout"), dropout_rates=(0.1,))
    out = search(tmp_path / "a.db", 50, strategy="random", space=space)
    assert out.stopped == "exhausted"
    assert len({t.key for t in out.trials}) == len(out.trials) == 4  # 2 types x 2 heads


def test_time_budget_stops_the_search(tmp_path):
    out = search(tmp_path / "a.db", 10_000, time_budget=0.5)
    assert out.stopped == "time" and 0 < len(out.trials) < 10_000


def test_rejections_are_stored_with_reasons(tmp_path):
    out = search(tmp_path / "a.db", 20, strategy="random")
    assert out.rejected > 0
    with Store(tmp_path / "a.db") as st:
        reasons = [r for _, r in st.rejections(st.experiment("toy").id)]
    assert all("block" in r or "collapses" in r for r in reasons)


def test_a_space_with_no_valid_candidate_is_refused_up_front():
    space = ChainSpace(min_blocks=4, max_blocks=4, types=("conv",), kernels=(7,), paddings=("valid",),
                       strides=(2,))
    with pytest.raises(NasforgeError, match=r"no valid candidate among .* relax the space"):
        preflight(space, (1, 8, 8))
