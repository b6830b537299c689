"""Behaviour of the learning strategies beyond the shared contract suite (which test_strategies.py runs)."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

from nasforge.errors import ConfigError
from nasforge.strategy import make_strategy
from nasforge.testing import simulate, toy_objective, toy_space
from nasforge.types import Trial, TrialState


def _fn(space):
    return lambda s: toy_objective(space, s)


def test_tpe_without_optuna_is_a_config_error(monkeypatch):
    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ConfigError, match=r"pip install 'nasforge\[optuna\]'"):
        make_strategy("tpe", toy_space())


def test_reinforce_learns_once_per_trial_and_catches_up_from_history():
    space = toy_space()
    strat = make_strategy("reinforce", space, seed=0)
    hist = simulate(strat, space, _fn(space), 15)
    state = json.dumps(strat.state_dict())
    for t in hist:  # telling again changes nothing: tell is idempotent
        strat.tell(t)
    assert json.dumps(strat.state_dict()) == state
    assert any(np.abs(np.array(v)).max() > 0 for v in strat.state_dict()["logits"].values())
    # A strategy that missed the tells (a crash after the trial finished) learns them in ask.
    late = make_strategy("reinforce", space, seed=0)
    late.load_state_dict(json.loads(state))
    fresh = make_strategy("reinforce", space, seed=0)
    fresh.ask(hist, 1)
    assert fresh.state_dict()["logits"] == late.state_dict()["logits"]


def test_reinforce_moves_only_active_dimensions():
    space = toy_space()
    strat = make_strategy("reinforce", space, seed=0)
    s = space.sample(np.random.default_rng(1))
    strat.tell(Trial(number=0, key=space.key(s), sample=s, state=TrialState.COMPLETE, score=0.5))
    strat.tell(Trial(number=1, key=space.key(s) + "x", sample=s, state=TrialState.COMPLETE, score=0.9))
    active = set(space.active(s))
    moved = {n for n, v in strat.state_dict()["logits"].items() if np.abs(np.array(v)).max() > 0}
    assert moved and moved <= active


def test_local_search_climbs_from_the_best_and_restarts_at_local_optima():
    space = toy_space()
    strat = make_strategy("local_search", space, seed=0)
    hist = simulate(strat, space, _fn(space), 40)
    cur = strat.current(hist)  # type: ignore[attr-defined]
    assert cur is not None
    nxt = strat.ask(hist, 1)[0].sample
    names = set(space.active(cur.sample)) | set(space.active(nxt))
    is_neighbour = sum(cur.sample[n] != nxt[n] for n in names) == 1
    assert is_neighbour or space.key(nxt) in strat.restarts  # type: ignore[attr-defined]
    # Every non-restart trial after the first is a neighbour of some earlier trial.
    for t in hist[1:]:
        if t.key in strat.restarts:  # type: ignore[attr-defined]
            continue
        assert any(sum(t.sample[n] != u.sample[n] for n in set(space.active(t.sample)) | set(space.active(u.sample)))
                   <= 1 for u in hist[: t.number])


@pytest.mark.parametrize("name", ["local_search", "bananas", "tpe"])
def test_a_rejected_proposal_is_not_offered_again(name):
    """The loop's check rejects some proposals; a deterministic ranking must not keep offering them."""
    space = toy_space()
    strat = make_strategy(name, space, seed=0)
    hist = simulate(strat, space, _fn(space), 15)
    first = space.key(strat.ask(hist, 1)[0].sample)  # pretend the loop rejected it
    later = {space.key(strat.ask(hist, 1)[0].sample) for _ in range(5)}
    assert first not in later
    rejected = json.loads(json.dumps(strat.state_dict()))["rejected"]  # remembered across a resume
    assert first in {r if isinstance(r, str) else space.key(r[1]) for r in rejected}


def test_bananas_predictor_fits_a_simple_function():
    from nasforge.strategy.bananas import MLPEnsemble

    rng = np.random.default_rng(0)
    x = (rng.random((80, 12)) < 0.4).astype(float)
    y = x @ rng.normal(size=12)
    y = (y - y.mean()) / y.std()
    net = MLPEnsemble(12, rng)
    net.fit(x, y, steps=300, lr=0.02)
    pred = net.predict(x).mean(axis=0)
    assert np.corrcoef(pred, y)[0, 1] > 0.95


@pytest.mark.parametrize("name", ["reinforce", "tpe", "bananas", "local_search"])
def test_resume_through_the_real_loop_continues_exactly(tmp_path, name):
    """The loop saves the state when it proposes a trial, before the trial is told; resuming must not drift."""
    from tests.test_loop import search

    straight = search(tmp_path / "a.db", 16, strategy=name)
    search(tmp_path / "b.db", 12, strategy=name)
    resumed = search(tmp_path / "b.db", 16, strategy=name, resume=True)
    assert [t.key for t in resumed.trials] == [t.key for t in straight.trials]
