"""Hand-designed references: every registry entry builds and trains on its kind of data, the config and
CLI refuse unknown names in one line, a tabular retrain stores the mlp reference and scikit-learn's two
models from a single read of the test split, and ``--json`` records hold fractions."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from nasforge import api
from nasforge.cli import main
from nasforge.config import from_dict
from nasforge.data import load_dataset
from nasforge.data.base import Dataset
from nasforge.errors import ConfigError, NasforgeError
from nasforge.final import references as refs
from nasforge.final.models import final_from_json
from nasforge.report.record import result_record
from nasforge.store import Experiment, Store
from nasforge.types import Budget, Cost, Trial, TrialState

from .test_retrain import capture_data

RECORD_KEYS = {"data", "experiment", "seconds", "searched", "reference", "others", "trials"}


def digits_csv(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """scikit-learn's digits as a table (64 pixel columns and a label), train.csv and test.csv; read with layout
    tabular, as the layout inferred from its columns is 8x8 images."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join([*(f"p{i}" for i in range(x.shape[1])), "label"])
    for name, rows in (("train.csv", slice(0, n_train)), ("test.csv", slice(n_train, n_train + n_test))):
        lines = [header, *(",".join([*(f"{v:g}" for v in xi), str(int(yi))]) for xi, yi in zip(x[rows], y[rows],
                                                                                           strict=True))]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def sequences_npz(path: Path, n: int = 240, length: int = 32) -> Path:
    """Three classes of noisy sines (frequencies 1, 2, 3 over the window): a small 1-D problem."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    t = np.linspace(0, 2 * np.pi, length)
    x = np.sin((y[:, None] + 1) * t[None, :] + rng.uniform(0, np.pi, (n, 1))) + 0.3 * rng.normal(size=(n, length))
    cut = n * 3 // 4
    np.savez(path, x_train=x[:cut, None, :].astype(np.float32), y_train=y[:cut],
             x_test=x[cut:, None, :].astype(np.float32), y_test=y[cut:])
    return path


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """One small real-shaped dataset per data kind."""
    root = tmp_path_factory.mktemp("kinds")
    return {refs.IMAGE: load_dataset("digits", seed=0, limit=400),
            refs.SEQUENCE: load_dataset("npz", sequences_npz(root / "seq.npz"), layout="sequence"),
            refs.FLAT: load_dataset("csv", digits_csv(root / "tab"), layout="tabular")}


@pytest.mark.parametrize("name", list(refs.REFERENCES))
def test_every_reference_builds_and_trains_a_step_on_each_kind_it_is_for(name: str, kinds: dict[str, Dataset]) -> None:
    ref = refs.REFERENCES[name]
    assert ref.kinds and ref.kinds <= set(refs.KINDS)
    for kind in refs.KINDS:
        data = kinds[kind]
        assert refs.data_kind(data.input_shape) == kind
        if kind not in ref.kinds:
            assert not ref.applies(data.input_shape)
            with pytest.raises(ConfigError, match=rf"reference '{name}' is for .* not {kind} data"):
                refs.make_reference(name, data.input_shape, data.n_classes)
            continue
        torch.manual_seed(0)
        description, model = ref.build(data.input_shape, data.n_classes)
        assert description == refs.make_reference(name, data.input_shape, data.n_classes)[0]
        assert name == "classic" or description.startswith(f"{name}: ")  # says which reference it is
        x, y = data.x_train[:32], data.y_train[:32]
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and model(x).shape == (32, data.n_classes)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_resnet20_is_he_et_al_and_resnet1d_the_same_stages_in_one_dimension() -> None:
    d2, m2 = refs.make_reference("resnet20", (3, 32, 32), 10)
    d1, m1 = refs.make_reference("resnet1d", (3, 64), 10)
    assert d2.removeprefix("resnet20: ") == d1.removeprefix("resnet1d: ")
    assert sum(p.numel() for p in m2.parameters()) == 272_474  # projection shortcuts (option B)
    assert sum(isinstance(m, nn.Conv2d) for m in m2.modules()) == 21  # stem + 18 + two 1x1 projections
    assert sum(isinstance(m, nn.Conv1d) for m in m1.modules()) == 21
    assert not any(isinstance(m, nn.Conv2d) for m in m1.modules())


@pytest.mark.parametrize(("shape", "want"), [((1, 8, 8), "resnet20"), ((3, 32, 32), "resnet20"),
                                              ((2, 50), "resnet1d"), ((1, 12), "resnet1d"), ((7,), "mlp")])
def test_default_reference_follows_the_data_kind(shape: tuple[int, ...], want: str) -> None:
    assert refs.default_reference(shape) == want
    assert refs.resolve_baseline("auto", shape) == want
    assert refs.resolve_baseline(True, shape) == "classic"  # today's meaning of `baseline: true`
    assert refs.resolve_baseline(False, shape) is None and refs.resolve_baseline(None, shape) is None


def test_references_for_other_data_and_odd_shapes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"'resnet20' is for image data, not flat .* use auto or one of classic, mlp"):
        refs.resolve_baseline("resnet20", (7,))
    with pytest.raises(NasforgeError, match=r"neither an image"):
        refs.default_reference((1, 2, 3, 4))
    with pytest.raises(ConfigError, match=r"cannot be built for input shape \(1, 2\)"):
        refs.make_reference("resnet1d", (1, 2), 3)  # two halvings of a 2-step sequence


def base_config(tmp_path: Path, csv: Path) -> dict[str, Any]:
    # layout tabular: auto reads digits' 64 pixel columns as 8x8 images (their neighbours correlate)
    return {"name": "tab", "seed": 0, "data": {"source": "csv", "path": str(csv), "layout": "tabular"},
            "space": {"kind": "chain", "max_blocks": 2, "widths": [16, 32], "types": ["dense", "dropout"]},
            "strategy": {"name": "random"},
            "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False, "db": str(tmp_path / "t.db")},
            "retrain": {"epochs": 2, "batch_size": 64}}


@pytest.mark.parametrize("value", ["resnet50", "Classic", 3, None, ["mlp"]])
def test_the_config_refuses_an_unknown_baseline_in_one_line(value: Any) -> None:
    raw = {"data": {"source": "digits"}, "retrain": {"baseline": value}}
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("retrain.baseline must be true (classic), false, auto")
    assert "classic, resnet20, resnet1d, mlp" in msg
    for ok in (True, False, "auto", *refs.REFERENCES):
        assert from_dict({**raw, "retrain": {"baseline": ok}}).retrain.baseline == ok
    assert from_dict({"data": {"source": "digits"}}).retrain.baseline is True


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A finished two-trial search on the digits table (the retrain tests copy its database)."""
    root = tmp_path_factory.mktemp("tabular")
    cfg = base_config(root, digits_csv(root / "digits-table"))
    api.search(cfg)
    return Path(cfg["search"]["db"]), cfg


def copy_db(tabular: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    db = tmp_path / "t.db"
    with Store(tabular[0]) as st:
        st.conn.execute("VACUUM INTO ?", (str(db),))
    return db


def test_the_cli_refuses_unknown_or_misfitting_baselines_in_one_line_and_writes_nothing(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_db(tabular, tmp_path)
    before = dump(db)
    for args, needle in [(["--baseline", "resnet50"], "--baseline must be true (classic), false, auto (the data kind's "
                                                      "default) or a reference name (classic, resnet20, resnet1d, "
                                                      "mlp, or one narrowed such as resnet20-w8), got 'resnet50'"),
                         (["--baseline", "resnet20"], "reference 'resnet20' is for image data, not flat data"),
                         (["--baseline", "mlp", "--no-baseline"], "give --baseline NAME or --no-baseline, not both")]:
        assert main(["retrain", str(db), *args, "--json", str(tmp_path / "r.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert dump(db) == before  # no lease taken, no result stored
    assert not (tmp_path / "t-models").exists() and not (tmp_path / "r.json").exists()
    assert main(["status", str(db), "--json"]) == 0  # before any retrain: the best trial, no test numbers
    record = json.loads(capsys.readouterr().out)
    assert record["data"] == "digits-table" and record["searched"]["test_accuracy"] is None
    assert record["reference"] is None and record["searched"]["architecture"]
    with pytest.raises(ConfigError, match=r"^baseline must be true \(classic\), false, auto .*resnet20-w8\), got 'x'$"):
        api.retrain(db, baseline="x")
    # a config file naming an unknown reference is refused before a database is made
    cfg = {**tabular[1], "retrain": {"baseline": "resnet"}, "search": {**tabular[1]["search"],
                                                                      "db": str(tmp_path / "new.db")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["search", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "retrain.baseline must be" in err and "resnet20, resnet1d, mlp" in err
    assert not (tmp_path / "new.db").exists()


def dump(db: Path) -> str:
    with closing(sqlite3.connect(db)) as conn:
        return "\n".join(conn.iterdump())


def in_unit(x: Any) -> bool:
    return isinstance(x, float) and 0.0 <= x <= 1.0


def test_tabular_retrain_stores_the_mlp_and_sklearn_references_from_one_test_read(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_db(tabular, tmp_path)
    data = capture_data(monkeypatch)
    capsys.readouterr()
    assert main(["retrain", str(db), "--baseline", "mlp", "--json", str(tmp_path / "r.json")]) == 0
    assert len(data) == 1 and data[0].test_reads == 1  # the networks and scikit-learn's models: one read
    out = capsys.readouterr().out
    for row in ("searched", "baseline", "logistic_regression", "gradient_boosting", "mlp: 256-256 batchnorm relu"):
        assert row in out, row
    assert "searched minus baseline (mlp):" in out and f"record: {tmp_path / 'r.json'}" in out
    assert re.search(r"searched minus baseline \(mlp\): [+-]\d+\.\d\d points of test accuracy\n", out)
    with Store(db) as st:
        (res,) = st.results(st.experiment("tab").id, "retrain")
    base = next(m for m in res["models"] if m["name"] == "baseline")
    assert base["reference"] == "mlp" and base["description"] == "mlp: 256-256 batchnorm relu dropout0.1"
    assert "reference" not in next(m for m in res["models"] if m["name"] == "searched")
    sidecar = json.loads((tmp_path / "t-models" / "tab" / "baseline.json").read_text())
    assert sidecar["reference"] == "mlp"
    assert set(res["others"]) == {"logistic_regression", "gradient_boosting"}
    # scored as scikit-learn scores them, on the data the networks were tested on
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = data[0].train_plus_val()
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x.numpy(), y.numpy())
    want = lr.score(data[0]._x_test.numpy(), data[0]._y_test.numpy())  # the sealed split, read privately
    assert res["others"]["logistic_regression"]["accuracy"] == pytest.approx(want)
    for o in res["others"].values():
        assert in_unit(o["accuracy"]) and in_unit(o["f1"]) and o["seconds"] > 0 and o["description"]
    assert res["others"]["gradient_boosting"]["accuracy"] > 0.8  # digits are easy for boosting
    record = json.loads((tmp_path / "r.json").read_text())
    check_record(record, reference="mlp")
    # status prints the extra rows and writes the same record
    assert main(["status", str(db)]) == 0
    status = capsys.readouterr().out
    assert "logistic_regression" in status and "gradient_boosting" in status
    assert main(["status", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == record


def check_record(record: dict[str, Any], *, reference: str) -> None:
    assert set(record) >= RECORD_KEYS
    assert record["data"] == "digits-table" and record["experiment"] == "tab"
    assert record["seconds"]["search"] > 0 and record["seconds"]["final"] > 0
    s, r = record["searched"], record["reference"]
    assert {"test_accuracy", "test_f1", "params", "flops", "latency_ms", "architecture", "trial"} <= set(s)
    assert {"name", "test_accuracy", "test_f1", "params", "architecture"} <= set(r)
    assert r["name"] == reference and isinstance(s["trial"], int) and s["params"] > 0 and r["params"] > 0
    for v in (s["test_accuracy"], s["test_f1"], r["test_accuracy"], r["test_f1"],
              *(x for o in record["others"].values() for x in (o["accuracy"], o["f1"]))):
        assert in_unit(v), v
    assert set(record["others"]) == {"logistic_regression", "gradient_boosting"}
    assert record["trials"] == {"complete": 2, "pruned": 0, "failed": 0}


def test_retrain_json_on_stdout_is_the_record_alone_and_baseline_true_still_says_classic(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = copy_db(tabular, tmp_path)
    capsys.readouterr()
    assert main(["retrain", str(db), "--json"]) == 0  # the stored config's `baseline: true` (the default)
    out = capsys.readouterr()
    record = json.loads(out.out)  # nothing else on stdout; the tables went to stderr
    assert "test split read once" in out.err and "dense128 relu" in out.err
    check_record(record, reference="classic")
    assert record["reference"]["architecture"] == "dense128 relu"  # described as before references were named
    with Store(db) as st:
        (res,) = st.results(st.experiment("tab").id, "retrain")
    assert next(m for m in res["models"] if m["name"] == "baseline")["reference"] == "classic"
    assert main(["status", str(db), "--json", str(tmp_path / "s.json")]) == 0
    assert "last retrain" in capsys.readouterr().out  # with a PATH, the tables are printed as usual
    assert json.loads((tmp_path / "s.json").read_text()) == record


def test_records_of_older_retrains_and_of_unretrained_experiments() -> None:
    exp = Experiment(1, "old", "f", {}, 0.0, 12.5, None)
    trials = [Trial(0, "a", {}, TrialState.COMPLETE, score=0.9), Trial(1, "b", {}, TrialState.PRUNED),
              Trial(2, "c", {}, TrialState.FAILED, reason="oom")]
    model = {"description": "d", "test": {"accuracy": 0.9, "f1": 0.8}, "params": 10, "flops": 20,
             "latency_ms": None, "train_seconds": 3.0, "weights": None, "seed": 0}
    old = {"trial": 0, "epochs": 1, "models": [{**model, "name": "searched"},
                                               {**model, "name": "baseline", "description": "conv32 3x3 relu"}]}
    rec = result_record(exp, trials, old, data="digits")
    assert rec["reference"]["name"] == "classic"  # a baseline stored before references were named
    assert rec["others"] == {} and rec["seconds"] == {"search": 12.5, "final": 6.0}
    assert rec["trials"] == {"complete": 1, "pruned": 1, "failed": 1} and rec["data"] == "digits"
    assert final_from_json(old["models"][1]).reference == "classic"
    assert final_from_json(old["models"][0]).reference is None
    fresh = result_record(exp, trials, None, data="digits", describe=lambda s: "net")
    assert fresh["searched"]["test_accuracy"] is None and fresh["searched"]["architecture"] == "net"
    assert fresh["reference"] is None and fresh["seconds"]["final"] is None


def test_the_record_lists_the_best_trials_as_the_final_pick_ranks_them_with_their_rung_scores() -> None:
    """The leaderboard ranks as the final pick does (the top rung first, whatever the lower rungs scored), keeps
    each trial's score on every rung it reached, and leaves out trials that did not complete."""
    exp = Experiment(1, "lb", "f", {}, 0.0, 9.0, None)
    top, low = Budget(epochs=2.0), Budget(epochs=0.5)
    trials = [Trial(0, "a", {"w": 1}, TrialState.COMPLETE, budget=top, score=0.90, rungs=(0.80, 0.90),
                    cost=Cost(params=100, flops=1000)),
              Trial(1, "b", {"w": 2}, TrialState.COMPLETE, budget=low, score=0.95, rungs=(0.95,)),
              Trial(2, "c", {"w": 3}, TrialState.COMPLETE, budget=top, score=0.92, rungs=(0.85, 0.92)),
              Trial(3, "d", {"w": 4}, TrialState.PRUNED), Trial(4, "e", {"w": 5}, TrialState.FAILED, reason="oom")]
    rec = result_record(exp, trials, None, data="digits", describe=lambda s: f"net{s['w']}")
    board = rec["leaderboard"]
    assert [row["trial"] for row in board] == [2, 0, 1]  # trial 1 scored highest, on the lower rung only
    assert board[0] == {"trial": 2, "score": 0.92, "epochs": 2.0, "rungs": [0.85, 0.92], "params": None,
                        "flops": None, "architecture": "net3"}
    assert board[1]["params"] == 100 and board[1]["flops"] == 1000 and board[2]["rungs"] == [0.95]
    assert rec["searched"]["trial"] == board[0]["trial"]  # the record's pick heads its leaderboard
    many = [Trial(i, str(i), {"w": i}, TrialState.COMPLETE, score=i / 100) for i in range(15)]
    assert [row["trial"] for row in result_record(exp, many, None, data="d")["leaderboard"]] == list(range(14, 4, -1))


def test_sklearn_references_fit_in_chunks_and_stop_where_their_time_is_spent(kinds: dict[str, Dataset]) -> None:
    """Fitted chunk by chunk (warm starts), the references are the models one fit makes; with no time left they
    stop after a chunk and their description says how far they got."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    data = kinds[refs.FLAT]
    x, y = data.train_plus_val()
    x_test, y_test = x[:50], y[:50]  # any rows: what is compared is two fits' predictions
    full = refs.fit_sklearn(data, seed=0)
    assert [f.name for f in full] == ["logistic_regression", "gradient_boosting"] and not any(f.cut for f in full)
    once = HistGradientBoostingClassifier(random_state=0).fit(x.numpy(), y.numpy())
    assert (full[1].model.predict(x_test.numpy()) == once.predict(x_test.numpy())).all()
    assert full[1].model.n_iter_ == 100
    cut = refs.fit_sklearn(data, seed=0, seconds=0.0)
    assert cut[1].cut == "10 of 100 trees" and cut[1].model.n_iter_ == 10
    rows = refs.score_sklearn(cut, data, x_test, y_test)
    assert rows[1]["description"] == "HistGradientBoostingClassifier (10 of 100 trees: its share of the time budget)"
    assert all(0 <= r["accuracy"] <= 1 for r in rows)


def test_sklearn_references_weigh_classes_as_the_recipe_does(kinds: dict[str, Dataset]) -> None:
    """With the recipe's ``class_weight``, logistic regression and boosting weigh classes as scikit-learn's
    "balanced" does, and say so: the networks' loss is weighted alike, so the comparison stays like with like."""
    data = kinds[refs.FLAT]
    fits = refs.fit_sklearn(data, seed=0, seconds=0.0, class_weight=True)
    assert fits[0].model.steps[-1][1].class_weight == "balanced" and fits[1].model.class_weight == "balanced"
    assert all(f.description.endswith("class_weight=balanced") for f in fits)
    assert refs.fit_sklearn(data, seed=0, seconds=0.0)[1].model.class_weight is None


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_a_size_limit_narrows_the_reference_in_multiples_of_eight() -> None:
    """``--max-params``: the widest narrowing that fits, widths in 8s (ResNet-20 at base width 9 trains at half
    width 8's pace on a CPU); a limit below the narrowest is one line naming its size."""
    assert refs.fit_reference("resnet20", (1, 28, 28), 10, 10**6) == "resnet20"
    assert refs.fit_reference("resnet20", (1, 28, 28), 10, 100_000) == "resnet20-w8"
    assert refs.fit_reference("resnet20", (1, 28, 28), 10, 20_000) == "resnet20-w4"
    assert refs.fit_reference("resnet1d", (1, 128), 10, 100_000) == "resnet1d"  # 93.9K: fits as it is
    assert refs.fit_reference("mlp", (784,), 10, 100_000) == "mlp-w104"
    desc, model = refs.make_reference("resnet20-w8", (1, 28, 28), 10)
    assert desc == "resnet20-w8: stem8 > 3x basic8 k3 > 3x basic16 k3 /2 > 3x basic32 k3 /2 > gap"
    assert n_params(model) == 68_642 and n_params(refs.make_reference("mlp-w104", (784,), 10)[1]) <= 100_000
    with pytest.raises(ConfigError, match=r"^a size limit of 1,000 parameters is below the narrowest resnet20 for "
                                          r"these data \(17,462 parameters at width 4\): raise the limit$"):
        refs.fit_reference("resnet20", (1, 28, 28), 10, 1000)
    with pytest.raises(ConfigError, match="no width to narrow"):
        refs.fit_reference("classic", (1, 28, 28), 10, 1000)
    assert refs.check_baseline("resnet1d-w8") == "resnet1d-w8"
    for bad in ("classic-w8", "resnet20-w0", "resnet20-w", "mlp-w08", "resnet50-w8"):
        with pytest.raises(ConfigError, match="or one narrowed such as resnet20-w8"):
            refs.check_baseline(bad)
    with pytest.raises(ConfigError, match="reference 'resnet1d-w8' is for sequence data, not image data"):
        refs.resolve_baseline("resnet1d-w8", (1, 28, 28))
    assert from_dict({"data": {"source": "digits"}, "search": {"equal_time": "resnet20-w8"}}).search.equal_time


def test_a_retrain_trains_a_narrowed_reference_by_its_name(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    db = copy_db(tabular, tmp_path)
    assert main(["retrain", str(db), "--baseline", "mlp-w16", "--epochs", "1"]) == 0
    with Store(db) as st:
        (res,) = st.results(st.experiment("tab").id, "retrain")
    base = next(m for m in res["models"] if m["name"] == "baseline")
    assert base["reference"] == "mlp-w16" and base["description"] == "mlp: 16-16 batchnorm relu dropout0.1"


def test_retrain_max_params_narrows_the_reference_to_fit_it_too(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """`retrain --max-params N` holds the searched network to N: the reference is narrowed to fit as auto narrows it,
    not trained at full size beside it; without the limit it trains as named."""
    db = copy_db(tabular, tmp_path)
    assert main(["retrain", str(db), "--baseline", "mlp", "--epochs", "1", "--max-params", "20000"]) == 0
    with Store(db) as st:
        (res,) = st.results(st.experiment("tab").id, "retrain")
    base = next(m for m in res["models"] if m["name"] == "baseline")
    assert base["reference"].startswith("mlp-w") and base["params"] <= 20000
    assert base["reference"] == refs.fit_reference("mlp", tuple(res["input_shape"]), len(res["classes"]), 20000)
    assert main(["retrain", str(db), "--baseline", "mlp", "--epochs", "1"]) == 0
    with Store(db) as st:
        last = st.results(st.experiment("tab").id, "retrain")[-1]
    assert next(m for m in last["models"] if m["name"] == "baseline")["reference"] == "mlp"


def test_retrain_max_params_below_the_narrowest_reference_is_one_line_that_offers_no_baseline(
        tabular: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a trial fits the limit but no narrowing of the reference does, retrain says so in one line, names the
    way out retrain has (--no-baseline), and writes nothing."""
    db = copy_db(tabular, tmp_path)
    before = dump(db)

    def too_small(name: str, shape: tuple[int, ...], n_out: int, max_params: int) -> str:
        raise ConfigError(f"a size limit of {max_params:,} parameters is below the narrowest mlp for these data "
                          "(338 parameters at width 4): raise the limit")

    monkeypatch.setattr(api, "fit_reference", too_small)
    assert main(["retrain", str(db), "--baseline", "mlp", "--max-params", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nasforge: error: a size limit of 100,000 parameters is below the narrowest mlp for these data "
                   "(338 parameters at width 4): raise the limit, or retrain with --no-baseline"]
    assert dump(db) == before
