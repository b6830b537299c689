"""search.initial: trusted networks are tried first, then the strategy; the contract suite holds for the wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from nasforge import api
from nasforge.cli import main
from nasforge.errors import ConfigError
from nasforge.space import make_space
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.strategy.warm import WarmStart, initial_samples
from nasforge.testing import TOY_SHAPE, StrategySuite, simulate, toy_objective, toy_space


class TestWarmStartedEvolution(StrategySuite):
    @pytest.fixture
    def make(self):
        def factory(space, seed):
            queued = [space.sample(np.random.default_rng(100 + i)) for i in range(3)]
            return WarmStart(make_strategy("evolution", space, seed=seed, population_size=8, sample_size=3), queued)
        return factory


def test_queued_networks_come_first_once_each_then_the_strategy():
    space = toy_space()
    queued = [space.sample(np.random.default_rng(i)) for i in range(3)]
    strat = WarmStart(make_strategy("random", space, seed=0), queued)
    first = strat.ask([], 2)
    assert [space.key(s.sample) for s in first] == [space.key(q) for q in queued[:2]]
    hist = simulate(WarmStart(make_strategy("random", space, seed=0), queued), space,
                    lambda s: toy_objective(space, s), 10)
    keys = [t.key for t in sorted(hist, key=lambda t: t.number)]
    assert keys[:3] == [space.key(q) for q in queued]
    assert len(set(keys)) == len(keys)  # queued networks are not proposed again by the strategy's turn
    # resuming: a fresh wrapper over the same history skips what was tried and asks the strategy
    again = WarmStart(make_strategy("random", space, seed=0), queued).ask(hist, 1)
    assert space.key(again[0].sample) not in keys


def test_chain_blocks_spec_becomes_a_checked_sample():
    space = make_space({"kind": "chain", "max_blocks": 5, "widths": [16, 32, 64], "kernels": [3, 5]}, (1, 28, 28))
    spec = {"blocks": [{"type": "conv", "width": 32, "kernel": 3, "bn": True}, {"type": "pool", "pool_size": 2},
                       {"type": "conv", "width": 64}], "head": "flatten"}
    (s,) = initial_samples([spec], space, (1, 28, 28), 10)
    assert space.describe(s).startswith("conv32 3x3") and "maxpool2 > conv64" in space.describe(s)
    assert space.check(s, (1, 28, 28), 10) is None


@pytest.mark.parametrize(("spec", "words"), [
    ({"blocks": [{"type": "conv", "width": 999}]}, "search.initial[0]"),
    ({"blocks": [{"type": "conv", "colour": "red"}]}, "unknown block setting"),
    ({"blocks": [{"type": "pool"}] * 9}, "max_blocks"),
    ({"blocks": [{"type": "conv", "kernel": 5, "padding": "valid"}] * 5}, "not a valid candidate"),
    ({"n_blocks": 2}, "not a valid candidate"),
])
def test_a_bad_initial_network_is_one_clear_line(spec, words):
    space = make_space({"kind": "chain", "max_blocks": 5, "widths": [16, 32], "kernels": [3, 5]}, TOY_SHAPE)
    with pytest.raises(ConfigError) as e:
        initial_samples([spec], space, TOY_SHAPE, 10)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_search_tries_the_initial_network_first_and_the_cli_rejects_a_bad_one(tmp_path, capsys):
    net = {"blocks": [{"type": "conv", "width": 16, "kernel": 3}, {"type": "pool", "pool_size": 2}]}
    cfg = {"name": "warm", "seed": 0, "data": {"source": "digits"},
           "space": {"kind": "chain", "max_blocks": 3, "widths": [8, 16], "kernels": [3], "types": ["conv", "pool"]},
           "strategy": {"name": "evolution", "options": {"population_size": 2, "sample_size": 1}},
           "search": {"trials": 3, "budget": {"epochs": 1}, "measure_latency": False, "initial": [net],
                      "db": str(tmp_path / "w.db")}}
    res = api.search(cfg)
    first = min(res.trial_list, key=lambda t: t.number)
    assert res.space.key(first.sample) == res.space.key(initial_samples([net], res.space, (1, 8, 8), 10)[0])
    with Store(tmp_path / "w.db") as st:
        n = len(st.trials(st.experiment("warm").id))
    # a bad entry: one line, exit 2, the stored experiment untouched
    import yaml
    bad = dict(cfg, search={**cfg["search"], "initial": [{"blocks": [{"type": "conv", "width": 64}]}]})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["search", str(path), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "search.initial[0]" in err.splitlines()[-1] and "Traceback" not in err
    with Store(tmp_path / "w.db") as st:
        assert len(st.trials(st.experiment("warm").id)) == n


def test_initial_must_be_a_list_of_mappings():
    from nasforge.config import from_dict
    with pytest.raises(ConfigError, match=r"search\.initial must be a list"):
        from_dict({"search": {"initial": {"blocks": []}}})


def test_a_proxy_screen_never_drops_a_queued_network(tmp_path):
    net = {"blocks": [{"type": "pool", "pool_size": 2}, {"type": "conv", "width": 8, "kernel": 3}]}  # tiny: low synflow
    cfg = {"name": "warm-screen", "seed": 0, "data": {"source": "digits"},
           "space": {"kind": "chain", "max_blocks": 4, "widths": [8, 16, 32], "kernels": [3],
                     "types": ["conv", "pool"]},
           "strategy": {"name": "random"},
           "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False, "initial": [net],
                      "screen": {"proxy": "synflow", "sample": 10, "keep": 0.1}, "db": str(tmp_path / "s.db")}}
    res = api.search(cfg)
    queued = initial_samples([net], res.space, (1, 8, 8), 10)[0]
    assert min(res.trial_list, key=lambda t: t.number).key == res.space.key(queued)
