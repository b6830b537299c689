"""The public ask/tell API: a user's own loop over ``nasforge.open_study``, on SQLite and in memory."""

from __future__ import annotations

import random

import pytest
import torch

import nasforge
from nasforge.errors import NasforgeError, StoreError
from nasforge.loop import best_trial
from nasforge.schedule.schedulers import ASHA
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.study import Study
from nasforge.testing import TOY_SHAPE, simulate, toy_objective, toy_space
from nasforge.types import Budget, TrialState

SPACE = {"kind": "chain", "max_blocks": 4, "widths": [8, 16], "kernels": [3], "strides": [1, 2]}


def user_loop(study, n, fn):
    for _ in range(n):
        trial = study.ask()
        study.tell(trial, fn(trial.sample))


def objective(space):
    return lambda s: toy_objective(space, s) if hasattr(space, "blocks") else len(str(s)) / 1000


def test_a_users_own_loop_is_stored_and_resumes_exactly_where_it_stopped(tmp_path):
    space = toy_space()
    db, fn = tmp_path / "s.db", (lambda s: toy_objective(space, s))
    with nasforge.open_study(tmp_path / "straight.db", name="mine", space=space, strategy="evolution",
                             seed=3, input_shape=TOY_SHAPE) as straight:
        user_loop(straight, 12, fn)
        expected = [t.key for t in straight.trials]
    with nasforge.open_study(db, name="mine", space=space, strategy="evolution", seed=3,
                             input_shape=TOY_SHAPE) as first:
        user_loop(first, 5, fn)
    with nasforge.open_study(db, name="mine", space=space, strategy="evolution", seed=3,
                             input_shape=TOY_SHAPE) as again:
        assert len(again.trials) == 5 and again.finished == 5
        user_loop(again, 7, fn)
        assert [t.key for t in again.trials] == expected
        best = again.best
    with Store(db, readonly=True) as st:
        exp = st.experiment("mine")
        stored = st.trials(exp.id)
    assert [t.key for t in stored] == expected and all(t.state is TrialState.COMPLETE for t in stored)
    assert best is not None and best == best_trial(stored)


def test_space_from_config_strategy_with_options_and_a_pytorch_model_to_train(tmp_path):
    strategy = {"name": "evolution", "options": {"population_size": 4, "sample_size": 2}}
    with nasforge.open_study(tmp_path / "s.db", name="net", space=SPACE, input_shape=(1, 8, 8), n_out=3,
                             strategy=strategy) as study:
        trial = study.ask()
        assert trial.state is TrialState.RUNNING and trial.budget == Budget()
        model = study.build(trial)  # the user's own training code: a few real steps on generated data
        x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = float((model(x).argmax(1) == y).float().mean())
        done = study.tell(trial, acc, metrics={"loss": loss.item()})
        assert done.state is TrialState.COMPLETE and done.score == acc and done.rungs == (acc,)
        assert study.best == done and study.pareto(("accuracy",)) == [done]


def test_in_memory_study_pruned_and_failed_trials():
    study = nasforge.open_study(space=toy_space(), strategy="random", input_shape=TOY_SHAPE)
    a, b, c = study.ask(), None, None
    study.tell(a, state="PRUNED", reason="early stop")
    b = study.ask()
    study.tell(b, state=TrialState.FAILED, reason="out of memory")
    c = study.ask()
    study.tell(c)  # no score: FAILED
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.FAILED, TrialState.FAILED]
    assert study.best is None and study.finished == 3


def test_misuse_is_a_one_line_error(tmp_path):
    space = toy_space()
    with nasforge.open_study(tmp_path / "s.db", name="x", space=space, input_shape=TOY_SHAPE) as study:
        t = study.ask()
        with pytest.raises(NasforgeError, match="never asked"):
            study.tell(99, 0.5)
        study.tell(t, 0.5)
        with pytest.raises(NasforgeError, match="already COMPLETE"):
            study.tell(t, 0.6)
        with pytest.raises(StoreError, match="is being run by process"):  # a second driver while this one holds it
            nasforge.open_study(tmp_path / "s.db", name="x", space=space, input_shape=TOY_SHAPE)
    with pytest.raises(StoreError, match="another space, strategy"):
        nasforge.open_study(tmp_path / "s.db", name="x", space=space, strategy="evolution", input_shape=TOY_SHAPE)
    with pytest.raises(NasforgeError, match="strategy"):
        nasforge.open_study(space=space, strategy=42)


def test_best_is_kept_by_index_and_matches_a_scan_under_promotions():
    """The incremental best equals best_trial over the whole history at every step, with ASHA promotions
    (a promoted trial leaves the ranking while it waits, and may score lower on its higher rung)."""
    space, rng = toy_space(), random.Random(0)
    study = Study(space, make_strategy("random", space, seed=1), scheduler=ASHA(Budget(epochs=9), eta=3, min_epochs=1),
                  input_shape=TOY_SHAPE)
    for _ in range(150):
        trial = study.ask()
        assert trial is not None and study.best == best_trial(study.trials)  # a promoted best waits unranked
        study.tell(trial, rng.random()) if rng.random() < 0.8 else study.tell(trial, state="FAILED")
        assert study.best == best_trial(study.trials)
        assert study.finished == sum(t.state.finished for t in study.trials)
    assert any(t.budget.epochs == 9 for t in study.trials)  # promotions happened


def test_simulate_and_the_study_give_the_same_trials_as_before():
    """testing.simulate is a loop over Study: same seed, same trials; another seed, others."""
    space = toy_space()
    fn = objective(space)
    a = [t.key for t in simulate(make_strategy("evolution", space, seed=5), space, fn, 20)]
    b = [t.key for t in simulate(make_strategy("evolution", space, seed=5), space, fn, 20)]
    assert a == b and len(set(a)) == 20


def test_the_history_indexes_match_a_plain_pass_over_the_trials():
    """Strategies read the study's History through completed/recent_completed/seen_view: the same answers
    as a pass over a plain list, and what an ask adds to the view stays out of the history's index."""
    from nasforge.strategy.base import History, completed, recent_completed, seen_keys, seen_view

    rng = random.Random(1)
    space = toy_space()
    study = Study(space, make_strategy("random", space, seed=2), scheduler=ASHA(Budget(epochs=9), eta=3,
                                                                                 min_epochs=1), input_shape=TOY_SHAPE)
    for _ in range(80):
        t = study.ask()
        study.tell(t, rng.random()) if rng.random() < 0.7 else study.tell(t, state="PRUNED")
        hist, plain = study.trials, list(study.trials)
        assert isinstance(hist, History)
        assert completed(hist) == completed(plain)
        assert recent_completed(hist, 5) == completed(plain)[-5:] and recent_completed(hist, 0) == []
        assert seen_keys(hist) == seen_keys(plain)
    view = seen_view(study.trials)
    view.add("not-a-key")
    assert "not-a-key" in view and "not-a-key" not in study.trials.keys and len(view) == len(study.trials) + 1


def test_status_reads_the_top_trials_sorted_in_sql_as_the_ranking_does(tmp_path, capsys):
    from nasforge.cli import main
    from nasforge.study import rank_key

    rng = random.Random(3)
    db = tmp_path / "s.db"
    with nasforge.open_study(db, name="ranked", space=toy_space(), input_shape=TOY_SHAPE, budget=Budget(epochs=9),
                             scheduler={"name": "asha", "min_epochs": 1}) as study:
        for _ in range(60):
            t = study.ask()
            study.tell(t, round(rng.random(), 2)) if rng.random() < 0.9 else study.tell(t, reason="boom")
        trials = list(study.trials)
    with Store(db, readonly=True) as st:
        exp = st.experiment("ranked")
        assert st.top_trials(exp.id, 15) == sorted((t for t in trials if t.ok), key=rank_key)[:15]
        assert st.top_trials(exp.id, 5, "FAILED") == [t for t in trials if t.state is TrialState.FAILED][:5]
        assert st.state_counts(exp.id) == {s.value: sum(t.state is s for t in trials)
                                           for s in TrialState if any(t.state is s for t in trials)}
    assert main(["status", str(db), "--name", "ranked", "--top", "3"]) == 0
    out = capsys.readouterr().out
    best = sorted((t for t in trials if t.ok), key=rank_key)[0]
    assert f"   1  {best.number:5d}" in out and "failed trial" in out and "boom" in out


def test_ask_hands_a_trial_out_so_asking_again_gives_another_and_a_crash_hands_it_out_again(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "s.db"
    worker = f"""
import os, nasforge
from nasforge.testing import TOY_SHAPE, toy_space
study = nasforge.open_study({str(db)!r}, name="w", space=toy_space(), input_shape=TOY_SHAPE)
a, b = study.ask(), study.ask()  # two workers, neither has told yet
assert a.number != b.number and a.state.value == b.state.value == "RUNNING"
study.tell(b, 0.4)
print(a.number, a.key)
os._exit(0)  # the process dies with trial a handed out: no tell, no close
"""
    out = subprocess.run([sys.executable, "-c", worker], capture_output=True, text=True, check=True).stdout.split()
    with nasforge.open_study(db, name="w", space=toy_space(), input_shape=TOY_SHAPE) as again:
        assert again.resumed == 1
        c = again.ask()
        assert [str(c.number), c.key] == out  # handed out again
        again.tell(c, 0.6)
        assert again.best.number == c.number and again.finished == 2
