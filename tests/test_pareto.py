"""Multi-objective search: Pareto sorting, NSGA-II, Pareto-aware promotions, and picking a front member."""

from __future__ import annotations

import math

import pytest

from nasforge.api import choose_trial
from nasforge.config import from_dict
from nasforge.errors import ConfigError, NasforgeError
from nasforge.loop import run_search
from nasforge.pareto import crowding, dominates, non_dominated_sort, pareto_front, rank
from nasforge.schedule import ASHA
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.testing import TOY_SHAPE, toy_objective, toy_space
from nasforge.types import Budget, Cost, EvalResult, Trial, TrialState


def test_non_dominated_sort_and_crowding():
    pts = [(0, 5), (1, 1), (5, 0), (2, 2), (3, 3), (1, 6)]
    assert dominates((1, 1), (2, 2)) and not dominates((0, 5), (5, 0)) and not dominates((1, 1), (1, 1))
    assert non_dominated_sort(pts) == [[0, 1, 2], [3, 5], [4]]
    cd = crowding(pts, [0, 1, 2])
    assert cd[0] == cd[2] == math.inf and 0 < cd[1] < math.inf
    assert rank(pts)[:3] == [0, 2, 1] and rank(pts)[-1] == 4


def trial(n, score, params, state=TrialState.COMPLETE):
    return Trial(number=n, key=str(n), sample={}, state=state, score=score, cost=Cost(params=params, flops=1))


def test_pareto_front_is_the_undominated_trials_cheapest_first():
    ts = [trial(0, 0.90, 500), trial(1, 0.85, 100), trial(2, 0.80, 300), trial(3, 0.92, 900),
          trial(4, None, 10, TrialState.FAILED)]
    assert [t.number for t in pareto_front(ts, ("accuracy", "params"))] == [1, 0, 3]
    assert [t.number for t in pareto_front(ts, ("accuracy",))] == [3]


class CostlyToy:
    """The toy objective, with a real parameter count from the sample (wider and deeper costs more)."""

    def __init__(self, space):
        self.space = space

    def evaluate(self, sample, budget, report=None, checkpoint=None):
        v = toy_objective(self.space, sample)
        params = sum(b.get("width") ** 2 for b in self.space.blocks(sample) if b.type in ("conv", "dense"))
        return EvalResult(score=v, metrics={"accuracy": v}, cost=Cost(params=params + 1, flops=1))


def run(tmp_path, strategy, n=60, scheduler=None, **opts):
    space = toy_space()
    with Store(tmp_path / f"{strategy}.db") as st:
        exp = st.create_experiment("mo", {}, "fp")
        return run_search(store=st, experiment=exp, space=space,
                          strategy=make_strategy(strategy, space, seed=0, **opts), evaluator=CostlyToy(space),
                          input_shape=TOY_SHAPE, budget=Budget(epochs=1), max_trials=n, scheduler=scheduler).trials


def test_nsga2_spreads_along_the_front_and_beats_random_on_it(tmp_path):
    obj = ("accuracy", "params")
    mo = pareto_front(run(tmp_path, "nsga2", population_size=12, objectives=list(obj)), obj)
    rnd = pareto_front(run(tmp_path, "random"), obj)
    assert len(mo) >= 4
    assert min(t.cost.params for t in mo) < 100 < max(t.cost.params for t in mo)

    def dominated_share(a, b):  # how much of front a some member of front b dominates
        return sum(any(dominates((-y.score, y.cost.params), (-x.score, x.cost.params)) for y in b) for x in a) / len(a)

    assert dominated_share(rnd, mo) > dominated_share(mo, rnd)


def test_multi_objective_asha_promotes_cheap_trials_too():
    sched = ASHA(Budget(epochs=9), eta=3, min_epochs=1)
    ts = [trial(i, s, p).with_(rungs=(s,), budget=Budget(epochs=1))
          for i, (s, p) in enumerate([(0.9, 1000), (0.89, 900), (0.5, 10), (0.6, 800), (0.7, 700), (0.4, 600)])]
    assert sched.promotion(ts).trial.number == 0  # accuracy alone: the most accurate
    sched.objectives = ("accuracy", "params")
    first = sched.order(ts, 0)[:2]
    assert {t.number for t in first} == {0, 2}  # the front's two ends: most accurate and cheapest


def test_choose_trial_for_retrain():
    ts = [trial(0, 0.90, 500_000), trial(1, 0.85, 90_000), trial(2, 0.95, 2_000_000)]
    assert choose_trial(ts).number == 2
    assert choose_trial(ts, max_params=100_000).number == 1
    assert choose_trial(ts, trial=0).number == 0
    assert choose_trial(ts, trial=1, max_params=100_000).number == 1
    with pytest.raises(NasforgeError, match="trial 0 has 500,000 parameters, over the limit of 100,000"):
        choose_trial(ts, trial=0, max_params=100_000)  # a given trial is held to the limit, as the reference is
    with pytest.raises(NasforgeError, match="trial 7"):
        choose_trial(ts, trial=7)
    with pytest.raises(NasforgeError, match="at most 10 parameters"):
        choose_trial(ts, max_params=10)


def test_objectives_are_checked_in_the_config():
    assert from_dict({"search": {"objectives": ["accuracy", "params"]}}).search.objectives == ("accuracy", "params")
    for bad, msg in ((["params"], "start with accuracy"), (["accuracy", "size"], "unknown objective"),
                     (["accuracy", "params", "params"], "twice"), ("accuracy params", "start with accuracy")):
        with pytest.raises(ConfigError, match=msg):
            from_dict({"search": {"objectives": bad}})
