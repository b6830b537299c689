"""What a final training leaves: each network's record (test figures, cost, curve) and the summary over seeds.

Apart from :mod:`nasforge.final.retrain`, which trains, so that readers of a stored retrain (``nasforge status
--json``, the report) import no torch.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FinalModel:
    name: str
    description: str
    test: Mapping[str, float]
    params: int
    flops: int
    latency_ms: float | None
    train_seconds: float
    weights: str | None
    seed: int = 0
    reference: str | None = None  # the baseline's entry in REFERENCES; None for the searched network
    curve: tuple[Mapping[str, float], ...] = ()  # per epoch: train loss and accuracy (it trains on validation too)
    latency_device: str | None = None  # where latency_ms was measured (cpu, cuda:0); None in older records
    members: int = 1  # trainings averaged into this model (final.ensemble); their seconds summed, the first's curve


@dataclass(frozen=True)
class Fitted:
    """What a final training gives back: its seconds and its curve (a resumed run's includes the epochs before)."""

    seconds: float
    curve: tuple[Mapping[str, float], ...]


def final_to_json(m: FinalModel) -> dict[str, Any]:
    """The stored form; a baseline also says which reference it is (``"reference": "resnet20"``)."""
    return {"name": m.name, "description": m.description, "test": dict(m.test), "params": m.params,
            "flops": m.flops, "latency_ms": m.latency_ms, "train_seconds": m.train_seconds, "weights": m.weights,
            "seed": m.seed, **({"reference": m.reference} if m.reference is not None else {}),
            **({"latency_device": m.latency_device} if m.latency_device is not None else {}),
            **({"members": m.members} if m.members > 1 else {}),
            "curve": [dict(r) for r in m.curve]}


def final_from_json(d: Mapping[str, Any]) -> FinalModel:
    """A stored model; a baseline stored before references were named was the classic one."""
    ref = d.get("reference", "classic" if d["name"] == "baseline" else None)
    return FinalModel(d["name"], d["description"], dict(d["test"]), int(d["params"]), int(d["flops"]),
                      d.get("latency_ms"), float(d["train_seconds"]), d.get("weights"), int(d.get("seed", 0)), ref,
                      tuple(d.get("curve") or ()), d.get("latency_device"), int(d.get("members", 1)))


def summarize(models: Sequence[FinalModel] | Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model name: seeds, and mean and sample standard deviation (None for one seed) of test accuracy, F1 and
    balanced accuracy (where every seed recorded it), or for a regression (test figures with ``rmse``) of test
    RMSE, MAE and R²."""
    rows = [final_to_json(m) if isinstance(m, FinalModel) else m for m in models]
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["name"] for r in rows):
        mine = [r for r in rows if r["name"] == name]
        entry: dict[str, Any] = {"n": len(mine), "seeds": [r.get("seed", 0) for r in mine]}
        names = ("rmse", "mae", "r2") if "rmse" in mine[0]["test"] else (
            "accuracy", "f1", *(("balanced_accuracy",) if all("balanced_accuracy" in r["test"] for r in mine) else ()))
        for metric in names:  # balanced accuracy: tests stored before it was recorded lack it
            vals = [float(r["test"][metric]) for r in mine]
            entry[f"{metric}_mean"] = statistics.fmean(vals)
            entry[f"{metric}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
        out[name] = entry
    return out
