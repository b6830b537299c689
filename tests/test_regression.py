"""Regression tasks: inferred or set, standardised targets, MSE training, RMSE / MAE / R², the references,
status, the record, export in the original units, and one-line errors for what cannot be a regression.

Real training on a generated table (a few hundred rows, a sum of features plus noise), kept small: the file
runs in well under a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nasforge import api
from nasforge.cli import main
from nasforge.data import load_dataset
from nasforge.data.base import infer_task
from nasforge.errors import DataError
from nasforge.evaluate.metrics import regression_metrics

FEATURES = 5
OFFSET, SCALE = 120.0, 15.0  # targets far from 0 and 1: un-standardising is visible in every figure


def write_table(folder: Path, n: int = 320, seed: int = 0) -> Path:
    """train.csv and test.csv (a quarter as many rows): y = 120 + 15 (x0 + 2 x1 - x2) + noise, in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", n), ("test.csv", n // 4)):
        x = rng.normal(size=(rows, FEATURES))
        y = OFFSET + SCALE * (x[:, 0] + 2 * x[:, 1] - x[:, 2] + 0.3 * rng.normal(size=rows))
        lines = [",".join([*(f"f{i}" for i in range(FEATURES)), "target"])]
        lines += [",".join([*(f"{v:.4f}" for v in r), f"{t:.3f}"]) for r, t in zip(x, y, strict=True)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def config(tmp: Path, data: Path, **over: object) -> dict:
    cfg: dict = {
        "name": "reg", "seed": 0, "data": {"source": "csv", "path": str(data)},
        "space": {"kind": "mlp", "max_depth": 2, "widths": [32, 64], "norms": ["none"]},
        "strategy": {"name": "random"},
        "search": {"trials": 3, "db": str(tmp / "r.db"), "measure_latency": False, "budget": {"epochs": 25}},
        "train": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 1e-4, "batch_size": 64},
        "retrain": {"epochs": 25, "optimizer": "adamw", "lr": 0.01, "weight_decay": 1e-4, "augment": False,
                    "batch_size": 64, "baseline": "auto"},
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def searched(tmp_path_factory, one_thread):
    """One search and one retrain on the generated table, shared by the tests that read them."""
    tmp = tmp_path_factory.mktemp("reg")
    data = write_table(tmp / "table")
    cfg = config(tmp, data)
    result = api.search(cfg)
    models = api.retrain(tmp / "r.db")
    return tmp, data, result, models


# ------------------------------------------------------------------------------------------ data


def test_float_labels_are_inferred_as_regression_and_standardised(tmp_path):
    data = write_table(tmp_path / "t", n=200)
    ds = load_dataset("csv", data)
    assert ds.regression and ds.task == "regression" and ds.n_classes == 1 and ds.classes == ("target",)
    assert ds.y_train.dtype == torch.float32 and abs(float(ds.y_train.mean())) < 1e-4  # standardised on train
    mean, std = ds.target
    assert mean == pytest.approx(OFFSET, abs=6) and std == pytest.approx(SCALE * 6 ** 0.5, rel=0.25)
    assert ds.preprocess is not None and ds.preprocess.to_json()["target"] == {"mean": mean, "std": std}
    _, y_test = ds.open_test()
    raw = np.loadtxt(data / "test.csv", delimiter=",", skiprows=1)[:, -1]
    assert np.allclose(y_test.double().numpy() * std + mean, raw, atol=1e-3)  # the test split on the same scale
    # integer labels stay classes; so do float labels that are whole numbers
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "c.npz", x_train=rng.normal(size=(60, 3)), y_train=(np.arange(60) % 3).astype(float))
    assert load_dataset("npz", tmp_path / "c.npz").task == "classification"
    np.savez(tmp_path / "r.npz", x_train=rng.normal(size=(60, 3)), y_train=rng.normal(size=60))
    assert load_dataset("npz", tmp_path / "r.npz").regression
    # whole numbers too many and too rare to be classes (diabetes: 214 values over 442 patients) are targets
    assert infer_task(np.arange(300) % 150) == "regression" and infer_task(np.arange(3000) % 150) == "classification"
    assert load_dataset("diabetes").regression


def test_an_explicit_task_overrides_the_labels(tmp_path):
    rows = ["a,b,label", *(f"{i},{i % 7},{i % 2}" for i in range(40))]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    assert load_dataset("csv", tmp_path / "c.csv").task == "classification"
    ds = load_dataset("csv", tmp_path / "c.csv", task="regression")  # 0/1 as numbers: a regression on them
    assert ds.regression and ds.n_classes == 1 and ds.classes == ("label",)
    data = write_table(tmp_path / "t", n=80)
    with pytest.raises(DataError, match=r"not a whole number.* data.task: regression") as err:
        load_dataset("csv", data, task="classification")
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"did you mean 'regression'"):
        load_dataset("csv", data, task="regresion")
    with pytest.raises(DataError, match=r"digits source holds classes, not numeric targets"):
        load_dataset("digits", task="regression")


def test_regression_metrics_are_in_the_units_given():
    m = regression_metrics(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 3.0]))
    assert m["rmse"] == pytest.approx((2 / 3) ** 0.5) and m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 2 / (8 / 3))
    assert regression_metrics(torch.ones(3), torch.ones(3))["r2"] == 1.0


# ------------------------------------------------------------------------------------------ search, retrain


def test_a_short_search_fits_the_table(searched):
    _, _, result, _ = searched
    best = result.best
    assert best is not None and set(best.metrics) >= {"rmse", "mae", "r2", "loss"} and "accuracy" not in best.metrics
    assert best.score == -best.metrics["rmse"]  # the score is -RMSE: higher is better
    assert best.metrics["r2"] > 0.5
    assert best.metrics["rmse"] < SCALE * 6 ** 0.5  # better than predicting the mean, in the target's units
    assert best.curve[-1]["val_score"] == best.score and "train_rmse" in best.curve[-1]


def test_retrain_scores_rmse_mae_r2_and_the_scikit_learn_references(searched):
    tmp, _, _, models = searched
    assert [m.name for m in models] == ["searched", "baseline"] and models[1].reference == "mlp"
    for m in models:
        assert set(m.test) >= {"rmse", "mae", "r2"} and m.test["r2"] > 0.5
    store, exp, _ = api.stored(tmp / "r.db", None)
    with store:
        rec = store.results(exp.id, "retrain")[-1]
    assert set(rec["others"]) == {"ridge", "gradient_boosting"}
    for o in rec["others"].values():
        assert set(o) >= {"rmse", "mae", "r2", "seconds", "description"} and o["r2"] > 0.5
    assert rec["others"]["ridge"]["rmse"] < 0.5 * SCALE  # a linear truth: ridge comes near the noise (4.5)
    assert rec["preprocess"]["target"]["std"] > 1 and set(rec["summary"]["searched"]) >= {"rmse_mean", "r2_mean"}


def test_status_and_the_record_show_rmse(searched, capsys):
    tmp = searched[0]
    assert main(["status", str(tmp / "r.db")]) == 0
    out = capsys.readouterr().out
    assert "val_rmse" in out and "test_rmse" in out and "test_r2" in out and "ridge" in out
    assert "val_acc" not in out and "test_acc" not in out
    assert main(["status", str(tmp / "r.db"), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["task"] == "regression" and rec["searched"]["test_rmse"] > 0 and "test_accuracy" not in rec["searched"]
    assert rec["reference"]["name"] == "mlp" and rec["searched"]["val_rmse"] > 0


def test_the_exported_network_predicts_in_the_original_units(searched):
    from nasforge.final.export import load_python, model_from_genotype

    tmp, data, _, models = searched
    r = api.load_retrained(tmp / "r.db")
    raw = np.loadtxt(data / "test.csv", delimiter=",", skiprows=1)
    x, y = torch.tensor(raw[:, :FEATURES], dtype=torch.float32), raw[:, -1]
    files = api.export(tmp / "r.db", format="python", out_dir=tmp / "exp")
    pre = r.info.preprocess
    assert pre is not None and pre.target is not None
    norm = (x - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    with torch.no_grad():
        mean, std = pre.target
        expected = r.model.eval()(norm)[:, 0] * std + mean  # the retrained network, un-standardised by hand
        net = load_python(files[0])
        import importlib.util

        spec = importlib.util.spec_from_file_location("exported_reg", files[0])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        got = net(module.preprocess(raw[:, :FEATURES]))[:, 0]
    assert torch.allclose(got, expected, atol=1e-3)
    rmse = float(np.sqrt(np.mean((got.numpy() - y) ** 2)))
    assert rmse == pytest.approx(models[0].test["rmse"], rel=1e-3)  # the test RMSE the retrain stored
    api.export(tmp / "r.db", format="json", out_dir=tmp / "exp")
    with torch.no_grad():
        again = model_from_genotype(tmp / "exp" / "model.json")(norm)[:, 0]
    assert torch.allclose(again, expected, atol=1e-3)


def test_the_report_labels_the_score(searched):
    tmp = searched[0]
    page = api.report(tmp / "r.db").read_text()
    assert "validation RMSE" in page and "test RMSE" in page and "ridge" in page
    assert "validation score (-RMSE" in page


# ------------------------------------------------------------------------------------------ pieces


def test_cross_validation_and_subsets_shuffle_without_classes(tmp_path, one_thread):
    from nasforge.evaluate.torch_eval import TorchEvaluator
    from nasforge.schedule.stopping import value_at
    from nasforge.space import make_space
    from nasforge.types import Budget

    ds = load_dataset("csv", write_table(tmp_path / "t", n=120)).search_view()
    space = make_space({"kind": "mlp", "max_depth": 0}, ds.input_shape)
    sample = space.sample(np.random.default_rng(0))
    ev = TorchEvaluator(ds, space, seed=0, measure_latency=False, folds=3)
    res = ev.evaluate(sample, Budget(epochs=3))
    assert res.score == pytest.approx(-res.metrics["rmse"]) and res.curve[-1]["folds"] == 3.0
    sizes = [len(e.data.y_val) for e in ev._fold_evaluators or []]
    assert sum(sizes) == len(ds.y_train) + len(ds.y_val) and max(sizes) - min(sizes) <= 1
    _, y = TorchEvaluator(ds, space, seed=0, measure_latency=False).training_split(0.5)
    assert len(y) == round(0.5 * len(ds.y_train))
    # stopping rules read the score where a regression's curve has no accuracy
    assert value_at(res.curve, int(res.curve[-1]["epoch"]), "val_accuracy") == res.curve[-1]["val_score"]


def test_the_auto_plan_says_regression_not_classes():
    from nasforge.autoplan import make_plan, validation_for
    from nasforge.data.base import Dataset
    from nasforge.evaluate.timing import Timing
    from nasforge.evaluate.trainer import Recipe

    n = 400
    ds = Dataset("t", torch.zeros(n, 6), torch.zeros(n), torch.zeros(100, 6), torch.zeros(100), ("target",),
                 task="regression")
    plan = make_plan(raw={"data": {"source": "csv"}}, data=ds, time_budget=300, spent=2.0, reference="mlp",
                     timing=Timing(0.002, 40, 68_000), recipe=Recipe(optimizer="adamw"), reference_flops=130_000,
                     folds=5)
    text = "\n".join(plan.lines())
    assert plan.task == "regression" and "regression (scored by RMSE)" in text
    assert "accura" not in text and "classes" not in text and "tie at 100%" not in text
    assert "RMSE" in validation_for(400, regression=True)[2]


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("change", "says"), [
    ({"task": "regresion"}, "did you mean 'regression'"),
    ({"source": "digits", "path": None, "task": "regression"}, "holds classes, not numeric targets"),
    ({"task": "classification"}, "not a whole number"),
])
def test_bad_tasks_are_one_line_and_write_nothing(tmp_path, capsys, change, says):
    data = write_table(tmp_path / "t", n=60)
    cfg = config(tmp_path, data)
    cfg["data"] = {k: v for k, v in {**cfg["data"], **change}.items() if v is not None}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["search", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nasforge: error:") and says in err and "\n" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no database, nothing else
