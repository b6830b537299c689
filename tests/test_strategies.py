"""Every registered strategy runs the shared contract suite; adding one to STRATEGIES tests it."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge.errors import ConfigError
from nasforge.strategy import STRATEGIES, make_strategy
from nasforge.testing import StrategySuite, run_toy, toy_space


class TestEveryStrategy(StrategySuite):
    @pytest.fixture(params=sorted(STRATEGIES))
    def make(self, request):
        return lambda space, seed: make_strategy(request.param, space, seed=seed)


def test_evolution_beats_random_on_the_toy_landscape():
    rand = run_toy("random", seeds=8, trials=80)
    evo = run_toy("evolution", seeds=8, trials=80, population_size=10, sample_size=3)
    ga = run_toy("genetic", seeds=8, trials=80, population_size=10)
    assert np.mean(evo) > np.mean(rand)
    assert np.mean(ga) > np.mean(rand)


def test_regularized_evolution_mutates_members_of_the_recent_population():
    from nasforge.testing import simulate, toy_objective

    space = toy_space()
    strat = make_strategy("evolution", space, seed=0, population_size=6, sample_size=2)
    hist = simulate(strat, space, lambda s: toy_objective(space, s), 20)
    child = strat.ask(hist, 1)[0].sample
    # A child is one mutation away from a member of the last 6 trials: one setting changed, or one block
    # inserted or removed with the others kept in order.
    def one_step(a, b):
        ba, bb = space.blocks(a), space.blocks(b)
        if len(ba) == len(bb):
            return sum(a[n] != b[n] for n in set(space.active(a)) | set(space.active(b))) <= 2
        short, long_ = sorted((ba, bb), key=len)
        return len(long_) - len(short) == 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))
    assert any(one_step(child, t.sample) for t in hist[-6:])


def test_unknown_strategy_and_bad_options_are_config_errors():
    space = toy_space()
    with pytest.raises(ConfigError, match="unknown strategy 'anneal': choose one of"):
        make_strategy("anneal", space)
    with pytest.raises(ConfigError, match="does not take those options"):
        make_strategy("evolution", space, popsize=3)
    with pytest.raises(ConfigError, match="population_size"):
        make_strategy("evolution", space, population_size=1)
