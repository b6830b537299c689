"""The HTML report and the Python API's Result: a real (small) search on digits, stored edge cases, and the
page rendered in headless Chromium with a screenshot kept under tests/artifacts/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nasforge
from nasforge.cli import main
from nasforge.config import from_dict, from_keywords
from nasforge.errors import ConfigError
from nasforge.report.browser import find_chromium, plots_in, plots_loaded, remote_refs, render
from nasforge.report.frame import load
from nasforge.report.html import FIGURES, csv_text, write_report
from nasforge.report.importance import analyse
from nasforge.result import Result
from nasforge.space import CellSpace, ChainSpace
from nasforge.space.chain import chain_sample
from nasforge.store import Store
from nasforge.types import Budget, Cost, Trial, TrialState

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PLOTS = [f.id for f in FIGURES]


@pytest.fixture(scope="module")
def digits_result(tmp_path_factory):
    """A real search in the keyword form: 8 one-epoch trials on digits (about 10 s on 2 cores)."""
    db = tmp_path_factory.mktemp("search") / "runs" / "digits.db"
    return nasforge.search(
        data="digits",
        space={"kind": "chain", "max_blocks": 4, "widths": [8, 16], "kernels": [3, 5], "skips": [False, True]},
        strategy={"name": "evolution", "population_size": 4, "sample_size": 2},
        budget={"trials": 8, "epochs": 1},
        db=db, name="digits",
    )


# ---------------------------------------------------------------------- the Python API
def test_search_keywords_give_a_result(digits_result):
    r = digits_result
    assert r.stopped == "trials" and len(r.trial_list) == 8
    assert r.best is not None and r.best.ok and r.pareto == [r.best]  # one objective: the front is the best
    df = r.trials
    assert list(df["number"]) == list(range(8)) and set(df["state"]) == {"COMPLETE"}
    assert {"score", "budget", "params", "flops", "latency_ms", "architecture", "n_blocks", "b0.type"} <= set(df)
    best_row = df.loc[df["number"] == r.best.number].iloc[0]
    assert best_row["score"] == r.best.score and best_row["architecture"] == r.describe()
    # dimensions that do not shape a trial's network are missing: here block slots past n_blocks
    for _, row in df.iterrows():
        assert all(pd.isna(row[f"b{i}.type"]) for i in range(int(row["n_blocks"]), 4))
        assert not pd.isna(row["b0.type"])
    again = nasforge.load(r.db)
    assert [t.number for t in again.trial_list] == list(range(8)) and again.best == r.best


def test_keyword_config_mapping():
    cfg = from_keywords(data="digits", space="cell", strategy={"name": "evolution", "population_size": 6},
                        budget={"trials": 3, "time_budget": "5m", "epochs": 1, "fraction": 0.5}, db="x.db", seed=3)
    assert cfg.data.source == "digits" and cfg.space["kind"] == "cell" and cfg.seed == 3
    assert cfg.strategy.name == "evolution" and cfg.strategy.options == {"population_size": 6}
    assert (cfg.search.trials, cfg.search.time_budget, cfg.search.budget) == (3, 300.0, Budget(1.0, 0.5))
    assert from_keywords(budget=7).search.trials == 7 and from_keywords(budget="90s").search.time_budget == 90
    base = from_keywords(budget={"epochs": 3}).raw  # keywords override a config section by section
    assert from_keywords(base, budget={"trials": 2}).search.budget.epochs == 3
    with pytest.raises(ConfigError, match="unknown key 'epoch' in budget: did you mean 'epochs'"):
        from_keywords(budget={"epoch": 2})
    with pytest.raises(ConfigError, match="needs a config"):
        nasforge.search()


# ---------------------------------------------------------------------- the page
def test_report_has_every_plot_and_nothing_remote(digits_result):
    page_path = digits_result.report()
    assert page_path == digits_result.db.parent / "digits-report" / "index.html"
    page = page_path.read_text()
    plots = plots_in(page)
    assert sorted(plots) == sorted(PLOTS) and all(len(b) > 1000 for b in plots.values())
    assert all((page_path.parent / f"{p}.png").stat().st_size > 1000 for p in PLOTS)
    assert remote_refs(page) == [] and "<script src" not in page and "@import" not in page
    assert page.count("<tr class=") == 8  # one table row per trial
    assert "random forest" in page  # the importance method is stated


def test_report_renders_in_chromium(digits_result, tmp_path):
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make setup installs Debian's chromium)")
    page = digits_result.report(tmp_path / "report.html")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    dom = render(page, shot)
    assert plots_loaded(dom) == len(PLOTS)  # every figure decoded, and the page's script ran
    assert sorted(plots_in(dom)) == sorted(PLOTS)
    assert shot.stat().st_size > 50_000
    print(f"report screenshot: {shot}")


def test_cli_report(digits_result, tmp_path, capsys):
    assert main(["report", str(digits_result.db), "--name", "digits", "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists() and "report: " in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasforge: error: no database at") and err.count("\n") == 1
    assert main(["report", str(digits_result.db), "--name", "nope"]) == 2
    assert "has no experiment 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------- stored edge cases (no training)
def stored_experiment(db: Path, raw: dict, trials: list[Trial]) -> None:
    cfg = from_dict(raw)
    with Store(db) as st:
        exp = st.create_experiment(cfg.name, cfg.to_json(), cfg.fingerprint())
        for t in trials:
            st.add_trial(exp.id, t)


def curve(*vals: float) -> tuple[dict[str, float], ...]:
    return tuple({"epoch": float(i + 1), "val_accuracy": v} for i, v in enumerate(vals))


def test_report_of_a_scheduler_and_multi_objective_cell_search(tmp_path):
    """Rungs, pruned, failed and running trials, a Pareto front and the cell drawing, from a stored experiment."""
    space = CellSpace(n_nodes=4)
    rng = np.random.default_rng(0)
    raw = {"name": "cells", "data": {"source": "digits"}, "space": {"kind": "cell"},
           "search": {"budget": {"epochs": 9}, "scheduler": {"name": "asha", "eta": 3, "min_epochs": 1},
                      "objectives": ["accuracy", "params"]}}
    trials = []
    for n in range(40):
        s = space.sample(rng)
        good = 0.2 * (s["edge_3_0"] == "nor_conv_3x3")
        rungs = tuple(0.5 + good + 0.05 * k + 0.01 * rng.random() for k in range(1 + (n % 3)))
        budget = Budget(epochs=[1, 3, 9][len(rungs) - 1])
        state = TrialState.COMPLETE
        t = Trial(n, space.key(s), s, state, budget=budget, score=rungs[-1], rungs=rungs, curve=curve(*rungs),
                  cost=Cost(params=1000 + int(rng.integers(5000)), flops=10_000 + n), started=100.0 + n,
                  finished=101.0 + n)
        trials.append(t)
    s = space.sample(rng)
    trials.append(Trial(40, space.key(s), s, TrialState.PRUNED, curve=curve(0.3, 0.31), reason="median rule",
                        started=141.0, finished=142.0))
    trials.append(Trial(41, "f", s, TrialState.FAILED, reason="loss is not finite", started=142.0, finished=143.0))
    trials.append(Trial(42, "r", s, TrialState.RUNNING, started=143.0))
    stored_experiment(tmp_path / "c.db", raw, trials)

    data = load(tmp_path / "c.db")
    a = analyse(data)
    assert "after 1ep@100%" in a.target and a.n == 40  # the rung every trial finished
    edges, ops = a.panels
    assert edges.names[0] == "edge 3←0" and ops.names[0] == "conv 3x3 edges" and ops.direction[0] > 0
    page = write_report(tmp_path / "c.db").read_text()
    assert sorted(plots_in(page)) == sorted(PLOTS) and "Pareto" in page and "median rule" in page
    assert "loss is not finite" in page and "1 running" in page


def test_report_of_an_empty_and_a_tiny_experiment(tmp_path):
    raw = {"name": "e", "data": {"source": "digits"}, "space": {"kind": "chain", "max_blocks": 3}}
    stored_experiment(tmp_path / "e.db", raw, [])
    page = write_report(tmp_path / "e.db", out=tmp_path / "e.html").read_text()
    assert sorted(plots_in(page)) == sorted(PLOTS) and "No trials yet" in page

    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, [{"type": "conv", "width": 32}, {"type": "pool"}])
    one = Trial(0, space.key(s), s, TrialState.COMPLETE, score=0.8, curve=curve(0.7, 0.8), cost=Cost(500, 9000))
    stored_experiment(tmp_path / "t.db", {**raw, "name": "t"}, [one])
    page = write_report(tmp_path / "t.db").read_text()
    assert "needs at least 8" in page and sorted(plots_in(page)) == sorted(PLOTS)


def test_a_search_ranked_by_balanced_accuracy_is_named_so_in_status_and_report(tmp_path, capsys):
    """The score is the metric the search ranks by: status columns, captions, the trials table and its CSV say
    which; the per-epoch curves stay accuracy, and say so."""
    raw = {"name": "b", "data": {"source": "digits"}, "space": {"kind": "chain", "max_blocks": 3},
           "search": {"metric": "balanced_accuracy"}}
    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, [{"type": "conv", "width": 32}, {"type": "pool"}])
    one = Trial(0, space.key(s), s, TrialState.COMPLETE, score=0.8, curve=curve(0.7, 0.9), cost=Cost(500, 9000),
                metrics={"accuracy": 0.9, "balanced_accuracy": 0.8, "f1": 0.7})
    stored_experiment(tmp_path / "b.db", raw, [one])
    assert main(["status", str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert "val_bacc  val_f1" in out and "0.8000  0.7000" in out
    page = write_report(tmp_path / "b.db").read_text()
    assert "The best validation balanced accuracy found so far" in page and "<th>val bacc</th>" in page
    assert "training and validation accuracy" in page  # the curves are accuracy whatever the ranking
    assert "validation accuracy" not in page.replace("training and validation accuracy", "")
    header = csv_text(Result.load(tmp_path / "b.db")).splitlines()[0]  # the CSV of a study past the page's rows
    assert header.startswith("trial,state,val_balanced_accuracy,")


def test_importance_finds_the_family_that_decides_the_score(tmp_path):
    space = ChainSpace(max_blocks=5, types=("conv", "pool", "dropout"))
    rng = np.random.default_rng(1)
    trials = []
    for n in range(40):
        s = space.sample(rng)
        convs = sum(b.type == "conv" for b in space.blocks(s))
        trials.append(Trial(n, space.key(s), s, TrialState.COMPLETE, score=0.6 + 0.06 * convs + 0.005 * rng.random(),
                            cost=Cost(100, 100)))
    stored_experiment(tmp_path / "i.db", {"name": "i", "space": {"kind": "chain", "max_blocks": 5,
                                                                  "types": ["conv", "pool", "dropout"]}}, trials)
    a = analyse(load(tmp_path / "i.db"))
    families, features = a.panels
    assert families.names[0] == "block types" and families.r2 > 0.5
    assert features.names[0] == "conv blocks" and features.direction[0] > 0


def test_a_large_study_reads_light_and_its_report_pages_samples_and_shades(tmp_path, monkeypatch):
    """Past the limits (lowered here: a 100,000-trial study is benchmarks/scale.py's), the report reads no sample
    it does not show: the table holds the best-ranked rows and every trial goes to trials.csv, the figures shade
    a density, and the importance analysis samples the trials."""
    import csv

    from nasforge.report import html, importance, plots
    from nasforge.result import Result
    from nasforge.testing import toy_objective

    space = ChainSpace(max_blocks=4, widths=(8, 16, 32), kernels=(3, 5), activations=("relu", "tanh"))
    db = tmp_path / "big.db"
    with nasforge.open_study(db, name="big", space=space, strategy="random", seed=1,
                             input_shape=(1, 12, 12)) as study:
        for _ in range(120):
            trial = study.ask()
            cost = Cost(params=1000 + trial.number, flops=2000 + 7 * trial.number)
            study.tell(trial, toy_objective(space, trial.sample), cost=cost)
    full, light = Result.load(db), Result.load(db, detail=False)
    assert [t.number for t in light.trial_list] == list(range(120)) and light.best == full.best
    assert all(not t.sample for t in light.trial_list) and all(t.sample for t in full.trial_list)
    assert light.detailed(light.trial_list[5:9]) == full.trial_list[5:9]
    assert light.describe(light.trial_list[7]) == full.describe(full.trial_list[7])
    monkeypatch.setattr(html, "TABLE_ROWS", 30)
    monkeypatch.setattr(plots, "MAX_POINTS", 50)
    monkeypatch.setattr(importance, "MAX_ANALYSED", 40)
    page = write_report(db, out=tmp_path / "rep")
    text = page.read_text()
    assert text.count("<tr class=") == 30 and "The 30 best-ranked of 120 trials" in text
    assert "seeded random sample of 40 of the 120 trials" in text
    with open(page.parent / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == list(range(120))
    assert [r["key"] for r in rows] == [t.key for t in full.trial_list]
    best_row = text[text.index("<tr class='best'>"):].split("</tr>")[0]
    assert html.esc(full.describe(full.best)) in best_row  # the rows shown have their architecture, read on demand
    # a large study's analysis runs in a forked process (where torch is not loaded): the same Analysis
    script = ("import sys; from nasforge.report import importance as i; from nasforge.report.frame import load; "
              f"d = load({str(db)!r}); i.BESIDE_OVER = 0; got = i.analyse_beside(d)(); "
              "assert 'torch' not in sys.modules and i.analyse(d) == got and got.panels, got; print('same')")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "same", out.stderr
