"""Tabular NAS-Bench-201: the table loader, the evaluator's hidden test accuracy, and a small bench run.

The table is not part of the repository; these tests read ``../shared/benchmarks/nasbench201/
nb201_table.csv.gz`` relative to the repository root and skip when it is absent.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from nasforge.errors import ConfigError, DataError
from nasforge.types import Budget

TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "nasbench201" / "nb201_table.csv.gz"
needs_table = pytest.mark.skipif(not TABLE.is_file(), reason=f"NB201 table not found at {TABLE}")


@pytest.fixture(scope="module")
def table():
    if not TABLE.is_file():
        pytest.skip(f"NB201 table not found at {TABLE}")
    from nasforge.evaluate.tabular import NB201Table

    return NB201Table(TABLE)


@pytest.fixture(scope="module")
def space():
    from nasforge.space import make_space

    return make_space({"kind": "nb201"})


def test_table_loads_every_cell_and_its_keys_match_the_space(table, space):
    assert len(table) == 15625
    assert len(set(table.unique_strs)) == 6466
    best = int(table.columns["cifar10_test_200"].argmax())
    assert table.columns["cifar10_test_200"][best] == pytest.approx(94.3733, abs=1e-3)
    # The space's canonical key is NB201's unique_str, so isomorphic cells are one candidate.
    for i in (0, 1, best, 15624):
        s = space.from_arch_str(table.arch_strs[i])
        assert space.to_arch_str(s) == table.arch_strs[i]
        assert space.key(s) == table.unique_strs[i]


def test_evaluator_scores_validation_and_hides_the_test_accuracy(table, space):
    from nasforge.evaluate.tabular import TabularEvaluator

    ev = TabularEvaluator(table, space, dataset="cifar10")
    arch = table.arch_strs[1]
    res = ev.evaluate(space.from_arch_str(arch), Budget())
    valid, test = table.value(arch, "cifar10_valid_12"), table.value(arch, "cifar10_test_200")
    assert res.score == pytest.approx(valid / 100) and 0 <= res.score <= 1
    assert res.metrics == {"accuracy": res.score}
    assert res.hidden == {"test_200": pytest.approx(test / 100)}
    assert not any(math.isclose(v, test / 100) for v in (res.score, *res.metrics.values()))
    assert res.cost is not None and res.cost.params == round(table.value(arch, "params_cifar10_M") * 1e6)
    assert ev.calls == 1
    with pytest.raises(ConfigError, match="unknown NB201 dataset"):
        TabularEvaluator(table, space, dataset="mnist")
    from nasforge.testing import toy_space

    with pytest.raises(ConfigError, match="NB201 cell space"):
        TabularEvaluator(table, toy_space())


def test_missing_or_malformed_table_is_a_one_line_data_error(tmp_path):
    from nasforge.evaluate.tabular import NB201Table

    with pytest.raises(DataError) as e:
        NB201Table(tmp_path / "nope.csv.gz")
    assert "nope.csv.gz" in str(e.value) and "\n" not in str(e.value) and "pass the path" in str(e.value)
    bad = tmp_path / "bad.csv.gz"
    with gzip.open(bad, "wt") as f:
        f.write("index,arch_str\n0,|none~0|\n")
    with pytest.raises(DataError, match="lacks column"):
        NB201Table(bad)
    (tmp_path / "plain.csv.gz").write_text("not gzip")
    with pytest.raises(DataError, match="unreadable"):
        NB201Table(tmp_path / "plain.csv.gz")


@needs_table
def test_small_bench_writes_valid_json_and_a_plot(tmp_path):
    from nasforge.bench import run_bench

    out, png = tmp_path / "r.json", tmp_path / "r.png"
    doc = run_bench(TABLE, "cifar10", ["random", "evolution", "local_search"], 20, 3, out_json=out, out_png=png)
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(doc))
    for r in on_disk["strategies"].values():
        assert r["queries"] == 20 and r["seeds"] == 3 and r["min_queries_used"] == 20
        assert 80 < r["final_test_mean"] <= on_disk["optimum_test"] + 1e-9
        curve = r["curve_test_mean"]
        assert len(curve) == 20 and curve[-1] == pytest.approx(r["final_test_mean"], abs=1e-3)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.stat().st_size > 1000


@needs_table
def test_bench_refuses_unknown_strategies_before_running_any(tmp_path):
    from nasforge.bench import run_bench

    with pytest.raises(ConfigError, match="unknown strategy 'anneal'"):
        run_bench(TABLE, "cifar10", ["random", "anneal"], 5, 1, out_json=tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


@needs_table
def test_bench_command_prints_a_table(tmp_path, capsys):
    from nasforge.cli import main

    assert main(["bench", "--table", str(TABLE), "--strategies", "random,reinforce", "--queries", "10",
                 "--seeds", "2", "--out", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "random" in out and "reinforce" in out and (tmp_path / "b.json").is_file()
