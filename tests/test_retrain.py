"""Final retraining over several seeds: mean and std, the test split read once per seed after its
training, per-epoch checkpoints, and a resumed retrain that ends with an uninterrupted one's numbers."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
import torch
from torch import nn

from nasforge import api
from nasforge.cli import main
from nasforge.data import load_dataset
from nasforge.data.base import Dataset
from nasforge.evaluate.trainer import Recipe
from nasforge.final import retrain as rt
from nasforge.paths import MARKER
from nasforge.store import Store

DIGITS = {
    "name": "digits",
    "seed": 0,
    "data": {"source": "digits"},
    "space": {"kind": "chain", "max_blocks": 3, "widths": [8, 16], "kernels": [3],
              "types": ["conv", "pool", "dense", "dropout"]},
    "strategy": {"name": "random"},
    "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False},
    "retrain": {"epochs": 2},
}


def searched(tmp_path: Path) -> Path:
    db = tmp_path / "s.db"
    api.search({**DIGITS, "search": {**DIGITS["search"], "db": str(db)}})
    return db


def capture_data(monkeypatch: pytest.MonkeyPatch) -> list[Dataset]:
    """The datasets api.retrain loads, to read their test-split counters afterwards."""
    seen: list[Dataset] = []
    real = api.load_data

    def load(cfg):  # type: ignore[no-untyped-def]
        seen.append(real(cfg))
        return seen[-1]

    monkeypatch.setattr(api, "load_data", load)
    return seen


def test_fit_final_resumes_from_its_checkpoint_to_identical_weights(tmp_path):
    digits = load_dataset("digits", seed=0, limit=400)
    recipe = Recipe(optimizer="sgd", schedule="onecycle", augment=True, batch_size=64)  # augmentation draws RNG

    def model() -> nn.Module:
        torch.manual_seed(1)  # dropout draws from the global RNG, which the checkpoint carries
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout2d(0.3),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * 64, 10))

    whole = model()
    fitted = rt.fit_final(whole, digits, epochs=3, recipe=recipe, seed=5, checkpoint=tmp_path / "a.pt", run="r")
    assert [r["epoch"] for r in fitted.curve] == [1.0, 2.0, 3.0]
    assert all(0 <= r["train_accuracy"] <= 1 and r["train_loss"] > 0 for r in fitted.curve)

    def stop(epoch, row):  # type: ignore[no-untyped-def]
        if epoch == 2:
            raise KeyboardInterrupt

    part = model()
    with pytest.raises(KeyboardInterrupt):
        rt.fit_final(part, digits, epochs=3, recipe=recipe, seed=5, checkpoint=tmp_path / "b.pt", run="r",
                     on_epoch=stop)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 2
    epochs: list[int] = []
    resumed = model()
    again = rt.fit_final(resumed, digits, epochs=3, recipe=recipe, seed=5, checkpoint=tmp_path / "b.pt", run="r",
                         on_epoch=lambda e, row: epochs.append(e))
    assert epochs == [3]  # only the missing epoch was trained
    assert again.curve == fitted.curve  # the epochs before the interruption come from the checkpoint
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # a checkpoint of another run (other settings) is not continued from
    other = model()
    rt.fit_final(other, digits, epochs=3, recipe=recipe, seed=5, checkpoint=tmp_path / "b.pt", run="other",
                 on_epoch=lambda e, row: epochs.append(e))
    assert epochs == [3, 1, 2, 3]


def test_a_schedule_a_time_limit_lengthened_resumes_to_its_lengthened_end(tmp_path):
    """The checkpoint carries the schedule being followed: resumed after the planned epochs, a lengthened
    training goes on to its new end instead of stopping mid-schedule, its rate still high."""
    digits = load_dataset("digits", seed=0, limit=400)
    recipe = Recipe(optimizer="sgd", schedule="onecycle", batch_size=64)

    def stop(epoch, row):  # type: ignore[no-untyped-def]
        if epoch == 11:
            raise KeyboardInterrupt

    torch.manual_seed(1)
    with pytest.raises(KeyboardInterrupt):
        rt.fit_final(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), digits, epochs=10, recipe=recipe, seed=5,
                     checkpoint=tmp_path / "c.pt", run="r", time_limit=3.0, fill_time=True, on_epoch=stop)
    planned = torch.load(tmp_path / "c.pt", weights_only=True)["curve"][-1]["schedule_epochs"]
    assert planned > 11  # lengthened from 10 epochs to fill the 3 s
    epochs: list[int] = []
    torch.manual_seed(1)
    rt.fit_final(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), digits, epochs=10, recipe=recipe, seed=5,
                 checkpoint=tmp_path / "c.pt", run="r", on_epoch=lambda e, row: epochs.append(e))
    assert epochs == list(range(12, math.ceil(planned) + 1))


def test_three_seeds_report_mean_and_std_and_read_test_once_per_seed_after_training(tmp_path, capsys, monkeypatch):
    db = searched(tmp_path)
    events: list[str] = []
    real_open, real_train = Dataset.open_test, rt.train

    def open_test(self):  # type: ignore[no-untyped-def]
        events.append("test")
        return real_open(self)

    def train(*a, **kw):  # type: ignore[no-untyped-def]
        events.append("train")
        return real_train(*a, **kw)

    monkeypatch.setattr(Dataset, "open_test", open_test)
    monkeypatch.setattr(rt, "train", train)
    data = capture_data(monkeypatch)
    capsys.readouterr()
    assert main(["retrain", str(db), "--seeds", "3"]) == 0
    # per seed: the searched model and the baseline train, and only then is the test split read, once
    assert events == ["train", "train", "test"] * 3
    assert data[0].test_reads == 3
    out = capsys.readouterr().out
    assert "test split read once per seed" in out and "test over 3 seeds, mean ± standard deviation" in out
    with Store(db) as st:
        (res,) = st.results(st.experiment("digits").id, "retrain")
    assert res["seeds"] == [0, 1, 2] and len(res["models"]) == 6
    accs = [m["test"]["accuracy"] for m in res["models"] if m["name"] == "searched"]
    s = res["summary"]["searched"]
    assert s["n"] == 3 and s["accuracy_mean"] == pytest.approx(statistics.fmean(accs))
    assert s["accuracy_std"] == pytest.approx(statistics.stdev(accs))
    assert f"{100 * s['accuracy_mean']:.2f}% ± {100 * s['accuracy_std']:.2f}" in out
    models = tmp_path / "s-models" / "digits"
    assert (models / "searched.pt").exists() and (models / "searched-seed2.pt").exists()
    assert not (models / "checkpoints").exists()  # a finished retrain leaves no resume state behind
    assert main(["status", str(db)]) == 0
    status = capsys.readouterr().out
    assert "last retrain (trial" in status and "3 seeds" in status and "± " in status


def test_interrupted_retrain_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    db = searched(tmp_path)
    whole = api.retrain(db, seeds=3, out_dir=tmp_path / "a")

    def stop(name, epoch, row):  # type: ignore[no-untyped-def]
        if name == "baseline/seed1" and epoch == 1:
            raise KeyboardInterrupt

    data = capture_data(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        api.retrain(db, seeds=3, out_dir=tmp_path / "b", on_epoch=stop)
    assert data[-1].test_reads == 1  # seed 0 was scored; seed 1 had not finished training
    work = tmp_path / "b" / "digits" / "checkpoints"
    assert {p.name for p in work.iterdir()} == {"seed0.json", "seed1-searched.pt", "seed1-baseline.pt", MARKER}
    trained: list[tuple[str, int]] = []
    resumed = api.retrain(db, seeds=3, out_dir=tmp_path / "b", on_epoch=lambda n, e, row: trained.append((n, e)))
    assert data[-1].test_reads == 2  # seeds 1 and 2; seed 0 is not tested again
    assert trained == [("baseline/seed1", 2), ("searched/seed2", 1), ("searched/seed2", 2),
                       ("baseline/seed2", 1), ("baseline/seed2", 2)]
    assert [(m.name, m.seed, dict(m.test)) for m in resumed] == [(m.name, m.seed, dict(m.test)) for m in whole]
    assert [m.curve for m in resumed] == [m.curve for m in whole] and all(m.curve for m in whole)
    for m in whole:
        assert m.weights is not None
        a = torch.load(m.weights, weights_only=True)
        b = torch.load(tmp_path / "b" / "digits" / Path(m.weights).name, weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not work.exists()
    # the CLI says how to continue an interrupted retrain
    monkeypatch.setattr(rt, "train", lambda *a, **kw: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["retrain", str(db), "--seeds", "2"]) == 130
    assert "run the same retrain command again" in capsys.readouterr().err


def test_seeds_must_be_positive(tmp_path, capsys):
    db = searched(tmp_path)
    assert main(["retrain", str(db), "--seeds", "0"]) == 2
    assert "seeds must be a positive whole number" in capsys.readouterr().err


def test_the_final_trainings_curves_reach_the_record_and_the_report(tmp_path):
    import json
    import struct

    from nasforge.report.html import write_report

    db = searched(tmp_path)
    models = api.retrain(db, epochs=3)
    assert main(["status", str(db), "--json", str(tmp_path / "r.json")]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())
    for arm, m in (("searched", models[0]), ("reference", models[1])):
        curve = rec[arm]["curve"]
        assert [r["epoch"] for r in curve] == [1.0, 2.0, 3.0] and curve == [dict(r) for r in m.curve]
        assert {"train_loss", "train_accuracy"} <= set(curve[0]) and not any(k.startswith("val_") for k in curve[0])
    with Store(db, readonly=True) as st:
        trials = st.trials(st.experiment().id)
    assert all("train_accuracy" in r for t in trials if t.ok for r in t.curve)  # search trials' curves too
    assert all(0 <= t.metrics["train_accuracy"] <= 1 for t in trials if t.ok)
    page = write_report(db, out=tmp_path / "rep")
    width = struct.unpack(">I", (page.parent / "train_curves.png").read_bytes()[16:20])[0]
    assert width > 2000  # four panels: the best trial's accuracy and loss, then each network's final training

