"""Cell space: NB201 arch strings, canonical keys and params checked against the NB201 table; real modules."""

from __future__ import annotations

import collections
import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.config import from_dict
from nasforge.errors import ConfigError
from nasforge.evaluate.cost import count_flops, count_params
from nasforge.space import SearchSpace, make_space
from nasforge.space.cell import NB201_OPS, CellSpace, NasBench201Space, edge_names
from nasforge.strategy import make_strategy
from nasforge.testing import simulate

TABLE = Path(__file__).resolve().parents[1] / "../shared/benchmarks/nasbench201/nb201_table.csv.gz"
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


@pytest.fixture(scope="module")
def table() -> list[dict[str, str]]:
    if not TABLE.exists():
        pytest.skip(f"NB201 table not found at {TABLE} (shared benchmark data is not part of the repo)")
    with gzip.open(TABLE, "rt", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def nb201() -> NasBench201Space:
    return CellSpace.nas_bench_201()


def test_arch_strings_round_trip_for_every_nb201_cell(table, nb201):
    assert len(table) == 15_625
    for row in table:
        s = nb201.from_arch_str(row["arch_str"])
        assert nb201.to_arch_str(s) == row["arch_str"]
        assert [NB201_OPS.index(s[n]) for n in edge_names(4)] == [int(c) for c in row["op_code"]]


def test_keys_group_the_nb201_cells_exactly_like_its_unique_str(table, nb201):
    keys = [nb201.key(nb201.from_arch_str(r["arch_str"])) for r in table]
    assert len(set(keys)) == 6_466
    assert keys == [r["unique_str"] for r in table]  # same text, hence the same partition


def test_function_key_is_coarser_and_merges_whole_key_classes(table, nb201):
    by_fn: dict[str, set[str]] = collections.defaultdict(set)
    for r in table:
        s = nb201.from_arch_str(r["arch_str"])
        by_fn[nb201.function_key(s)].add(nb201.key(s))
    assert len(by_fn) == 4_930
    assert sum(len(v) for v in by_fn.values()) == 6_466  # every key class lies inside one function class


def test_nb201_preset_has_the_benchmark_parameter_counts(table, nb201):
    rows = {r["arch_str"]: r for r in table}
    archs = [BEST_C10, table[0]["arch_str"], table[3]["arch_str"], table[5]["arch_str"]]
    for arch in archs:
        s = nb201.from_arch_str(arch)
        for shape, n_out, col in (((3, 32, 32), 10, "cifar10"), ((3, 32, 32), 100, "cifar100"),
                                  ((3, 16, 16), 120, "imagenet16")):
            with torch.device("meta"):
                model = nb201.build(s, shape, n_out)
            assert count_params(model) / 1e6 == pytest.approx(float(rows[arch][f"params_{col}_M"]), abs=1e-6)


def test_nb201_preset_has_the_benchmark_flops(table, nb201):
    """The table counts multiply-adds of convs and linears plus the linear bias; torch counts 2 per MAC."""
    row = next(r for r in table if r["arch_str"] == BEST_C10)
    with torch.device("meta"):
        model = nb201.build(nb201.from_arch_str(BEST_C10), (3, 32, 32), 10)
    assert (count_flops(model, (3, 32, 32), device="meta") / 2 + 10) / 1e6 == pytest.approx(
        float(row["flops_cifar10_M"]), abs=1e-5)


def test_nb201_preset_is_the_benchmark_space():
    space = make_space({"kind": "nb201"})
    assert isinstance(space, NasBench201Space) and isinstance(space, SearchSpace)
    assert (space.n_nodes, space.ops, space.channels, space.n_stages, space.cells_per_stage) == (
        4, NB201_OPS, 16, 3, 5)
    assert list(space.dims()) == ["edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2"]
    assert make_space({"kind": "nb201", "max_params": 500_000}).max_params == 500_000
    with pytest.raises(ConfigError, match="unknown key 'channels'"):
        make_space({"kind": "nb201", "channels": 8})


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (4, 50)])
@pytest.mark.parametrize("op", NB201_OPS)
def test_every_op_builds_and_runs(op, shape):
    space = CellSpace(channels=8, cells_per_stage=1)
    s = dict.fromkeys(space.dims(), op)
    if op == "none":
        s["edge_3_0"] = "skip_connect"  # otherwise disconnected
    assert space.check(s, shape) is None
    model = space.build(s, shape, 5)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 5)
    out.sum().backward()  # trainable end to end


def test_random_cells_with_other_node_counts_build_and_run():
    rng = np.random.default_rng(0)
    for n_nodes in (2, 3, 5):
        space = CellSpace(n_nodes=n_nodes, channels=4, n_stages=2)
        assert len(space.dims()) == n_nodes * (n_nodes - 1) // 2
        s = next(s for s in (space.sample(rng) for _ in range(100)) if space.check(s, (1, 12, 12)) is None)
        assert space.from_arch_str(space.to_arch_str(s)) == s
        model = space.build(s, (1, 12, 12), 3).eval()
        assert model(torch.randn(2, 1, 12, 12)).shape == (2, 3)


def test_check_gives_reasons():
    space = CellSpace(channels=4)
    disconnected = space.from_arch_str("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    assert space.check(disconnected, (3, 32, 32)) == (
        "cell output is disconnected from its input: every path has a 'none' edge")
    ok = space.from_arch_str(BEST_C10)
    assert space.check(ok, (3, 32, 32)) is None
    assert "too small for 2 stride-2 reductions" in space.check(ok, (3, 2, 2))
    assert space.check(ok, (3, 4, 4)) is None
    assert "flat (tabular)" in space.check(ok, (20,))
    assert "not a point of this space" in space.check({**ok, "edge_1_0": "sep_conv_5x5"}, (3, 32, 32))
    with torch.device("meta"):
        p = count_params(space.build(ok, (3, 32, 32), 10))
    assert CellSpace(channels=4, max_params=p).check(ok, (3, 32, 32)) is None
    assert "parameters exceed" in CellSpace(channels=4, max_params=p - 1).check(ok, (3, 32, 32))
    assert "FLOPs exceed" in CellSpace(channels=4, max_flops=1000).check(ok, (3, 32, 32))


def test_key_ignores_dead_edges_and_sees_through_skip_edges():
    space = CellSpace()
    a = space.from_arch_str("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    assert space.key(a) == space.key(dict(a, edge_2_0="avg_pool_3x3"))  # node 2 does not reach the output
    assert space.key(a) != space.key(dict(a, edge_1_0="nor_conv_1x1"))
    via_skip = space.from_arch_str("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    direct = space.from_arch_str("|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert space.key(via_skip) == space.key(direct)


def test_swapping_unconnected_nodes_keeps_the_function_key_but_not_nb201s_key():
    """NB201's unique_str counts a 'none' edge as a zero term, so the 2<-1 'none' edge is not swapped away."""
    space = CellSpace()
    a = space.from_arch_str("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    b = space.from_arch_str("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    assert space.function_key(a) == space.function_key(b)
    assert space.key(a) != space.key(b)


def test_arch_string_errors_are_clear():
    space = CellSpace(ops=["none", "skip_connect", "nor_conv_3x3"])
    with pytest.raises(ValueError, match="has 1 node groups, this space has 3"):
        space.from_arch_str("|skip_connect~0|")
    with pytest.raises(ValueError, match="not in this space's ops"):
        space.from_arch_str(BEST_C10.replace("skip_connect~0", "avg_pool_3x3~0"))
    with pytest.raises(ValueError, match="each i < 2 once"):
        space.from_arch_str("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|")


def test_mutation_changes_exactly_one_edge_and_crossover_takes_each_edge_from_a_parent():
    space = CellSpace()
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = space.sample(rng)
        m = space.mutate(s, rng)
        assert sum(s[k] != m[k] for k in s) == 1
        b = space.sample(rng)
        c = space.crossover(s, b, rng)
        assert all(c[k] in (s[k], b[k]) for k in s)


def test_evolution_searches_the_cell_space():
    space = CellSpace(channels=4)

    def conv3_on_live_paths(s):  # a cheap stand-in for accuracy: rewards 3x3 convs that reach the output
        return space.function_key(s).count("nor_conv_3x3") / 20

    hist = simulate(make_strategy("evolution", space, seed=0, population_size=8, sample_size=3), space,
                    conv3_on_live_paths, 40)
    assert len({t.key for t in hist}) == 40
    assert all(space.check(t.sample, (1, 16, 16)) is None for t in hist)
    assert max(t.score or 0.0 for t in hist) > np.median([conv3_on_live_paths(t.sample) for t in hist[:8]])


def test_config_and_registry_accept_cell_spaces():
    cfg = from_dict({"space": {"kind": "cell", "ops": ["none", "skip_connect", "nor_conv_3x3"], "channels": 8,
                               "cells_per_stage": 2}})
    space = make_space(cfg.space, (1, 28, 28))
    assert isinstance(space, CellSpace) and space.kind == "cell" and len(space.dims()["edge_1_0"]) == 3
    assert from_dict({"space": {"kind": "nb201"}}).space["kind"] == "nb201"
    with pytest.raises(ConfigError, match="needs image or sequence data"):
        make_space({"kind": "cell"}, (13,))
    with pytest.raises(ConfigError, match="unknown value"):
        make_space({"kind": "cell", "ops": ["sep_conv_3x3"]})
    with pytest.raises(ConfigError, match="n_nodes must be between"):
        make_space({"kind": "cell", "n_nodes": 1})
