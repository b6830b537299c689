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
    assert any(one_mutation(space, child, t.sample) for t in hist[-6:])


def one_mutation(space, a, b) -> bool:
    """Whether ``a`` is one mutation away from ``b``: one setting changed, or one block inserted or removed with
    the others kept in order."""
    ba, bb = space.blocks(a), space.blocks(b)
    if len(ba) == len(bb):
        return sum(a[n] != b[n] for n in set(space.active(a)) | set(space.active(b))) <= 2
    short, long_ = sorted((ba, bb), key=len)
    return len(long_) - len(short) == 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_evolution_init_mutants_starts_near_the_warm_start():
    """init: mutants fills the first population with mutations of the best scored trial (the warm start):
    on the toy landscape, where one mutation changes the score a little, those first trials score higher
    than random draws, and they are one mutation from it; init: random (the default) stays as it was."""
    from nasforge.strategy.warm import WarmStart
    from nasforge.testing import simulate, toy_objective

    space = toy_space()
    fn = lambda s: toy_objective(space, s)  # noqa: E731
    rng = np.random.default_rng(0)
    good = max((space.sample(rng) for _ in range(300)), key=fn)
    firsts = {}
    for init in ("random", "mutants"):
        scores = []
        for seed in range(5):
            inner = make_strategy("evolution", space, seed=seed, population_size=8, sample_size=2, init=init)
            hist = simulate(WarmStart(inner, [good]), space, fn, 8)
            assert hist[0].key == space.key(good)
            scores += [t.score for t in hist[1:]]
        firsts[init] = np.mean(scores)
    assert firsts["mutants"] > firsts["random"]
    # trials at once (a process pool): asked while the warm start still trains, no trial is scored yet; the
    # candidates are still its mutations, not random draws (a pool search on digits drew three at random)
    from nasforge.types import Trial, TrialState

    running = [Trial(0, space.key(good), good, TrialState.RUNNING)]
    for seed in range(3):
        kids = make_strategy("evolution", space, seed=seed, population_size=8, sample_size=2,
                             init="mutants").ask(running, 2)
        assert all(one_mutation(space, k.sample, good) for k in kids)
    # two warm starts training (the covering network beside the reference): mutants of both, drawn alike
    other = min((space.sample(rng) for _ in range(300)), key=fn)
    two = [*running, Trial(1, space.key(other), other, TrialState.RUNNING)]
    kids = make_strategy("evolution", space, seed=0, population_size=20, sample_size=2, init="mutants").ask(two, 8)
    near = [(one_mutation(space, k.sample, good), one_mutation(space, k.sample, other)) for k in kids]
    assert all(a or b for a, b in near) and any(a for a, _ in near) and any(b for _, b in near)
    with pytest.raises(ConfigError, match="init must be random or mutants"):
        make_strategy("evolution", space, population_size=8, sample_size=2, init="best")


def test_unknown_strategy_and_bad_options_are_config_errors():
    space = toy_space()
    with pytest.raises(ConfigError, match="unknown strategy 'anneal': choose one of"):
        make_strategy("anneal", space)
    with pytest.raises(ConfigError, match="does not take those options"):
        make_strategy("evolution", space, popsize=3)
    with pytest.raises(ConfigError, match="population_size"):
        make_strategy("evolution", space, population_size=1)
