"""One machine-readable record of an experiment: search, final retrain and references, accuracies as fractions.

A regression experiment's record says ``"task": "regression"`` and holds ``test_rmse``, ``test_mae``,
``test_r2`` (and ``test_rmse_std``) and ``val_rmse`` (in the target's units) where a classification's holds
accuracy and F1; the scikit-learn ``others`` are then ridge regression and gradient boosting.

``nasforge status --json``, ``nasforge retrain --json`` and ``nasforge auto`` all write this record,
so a script or a results table reads one shape whichever command made it. It is built from what the
store holds (the experiment, its trials and its last retrain result), never from the console text.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nasforge.final.models import summarize
from nasforge.store import Experiment
from nasforge.study import best_trial, rank_key
from nasforge.types import Sample, Trial, TrialState


def result_record(experiment: Experiment, trials: Sequence[Trial], retrain: Mapping[str, Any] | None, *,
                  data: str, describe: Callable[[Sample], str] | None = None) -> dict[str, Any]:
    """The record of an experiment and its last stored retrain result (None: not retrained yet).

    Keys: ``data`` (the retrain's stored dataset name, else ``data``), ``experiment``, ``seconds``
    (``search``: the experiment's elapsed time; ``final``: every final training and fit, summed),
    ``searched`` (test accuracy and macro F1, the mean over seeds, with its cost, architecture and
    trial), ``reference`` (the baseline: which reference, its test accuracy, F1, params and
    architecture; None without one), ``others`` (scikit-learn references on flat data), ``seeds``,
    ``trials`` (complete, pruned, failed) and ``leaderboard`` (:func:`leaderboard`). Before a retrain the
    test fields are None and ``searched`` describes the best trial (with ``describe``, its architecture).
    """
    states = [t.state for t in trials]
    search_cfg = experiment.config.get("search") or {}
    record: dict[str, Any] = {
        "data": data, "experiment": experiment.name,
        # what the search ranked networks by (a regression: RMSE, whatever this says)
        "metric": search_cfg.get("metric", "accuracy") if isinstance(search_cfg, Mapping) else "accuracy",
        "seconds": {"search": experiment.elapsed, "final": None},
        "searched": None, "reference": None, "others": {}, "seeds": 0,
        "trials": {"complete": states.count(TrialState.COMPLETE), "pruned": states.count(TrialState.PRUNED),
                   "failed": states.count(TrialState.FAILED)},
        "leaderboard": leaderboard(trials, describe),
    }
    if retrain is None:
        best = best_trial(list(trials))
        if best is not None:
            figures: dict[str, Any] = {"test_accuracy": None, "test_f1": None, "val_accuracy": best.score}
            if "rmse" in best.metrics:  # regression: the score is -RMSE
                record["task"] = "regression"
                figures = {"test_rmse": None, "test_mae": None, "test_r2": None, "val_rmse": best.metrics["rmse"]}
            record["searched"] = {
                **figures, "params": best.cost.params if best.cost else None,
                "flops": best.cost.flops if best.cost else None,
                "latency_ms": best.cost.latency_ms if best.cost else None,
                "latency_device": best.cost.latency_device if best.cost else None,
                "architecture": describe(best.sample) if describe is not None else None, "trial": best.number}
        return record
    models = list(retrain["models"])
    summary = summarize(models)
    others = {k: dict(v) for k, v in (retrain.get("others") or {}).items()}
    record["data"] = retrain.get("data") or data
    record["others"] = others
    record["seeds"] = len({m.get("seed", 0) for m in models})
    record["seconds"]["final"] = (sum(float(m["train_seconds"]) for m in models)
                                  + sum(float(v.get("seconds", 0.0)) for v in others.values()))
    scores = {t.number: t.score for t in trials}
    regression = any("rmse" in m["test"] for m in models)
    if regression:
        record["task"] = "regression"
    searched = next((m for m in models if m["name"] == "searched"), None)
    if searched is not None:
        s = summary["searched"]
        val = scores.get(int(retrain["trial"]))
        if regression:
            figures = {**_regression_fields(s), "val_rmse": None if val is None else -val}
        else:
            figures = {**class_fields(s), "val_accuracy": val}
        record["searched"] = {
            **figures, "params": searched["params"],
            "flops": searched["flops"], "latency_ms": searched["latency_ms"],
            "latency_device": searched.get("latency_device"),  # None in records from before devices
            "architecture": searched["description"], "trial": retrain["trial"],
            "members": int(searched.get("members", 1)),  # trainings averaged (final.ensemble)
            "curve": list(searched.get("curve") or [])}  # the final training's, per epoch (its first seed's)
    base = next((m for m in models if m["name"] == "baseline"), None)
    if base is not None:
        b = summary["baseline"]
        record["reference"] = {
            "name": base.get("reference", "classic"),  # stored before references were named: the classic one
            **(_regression_fields(b) if regression else class_fields(b)),
            "params": base["params"], "flops": base["flops"], "architecture": base["description"],
            "members": int(base.get("members", 1)),
            "curve": list(base.get("curve") or [])}
    return record


LEADERBOARD = 10  # the trials a record lists


def leaderboard(trials: Sequence[Trial], describe: Callable[[Sample], str] | None = None,
                n: int = LEADERBOARD) -> list[dict[str, Any]]:
    """The ``n`` best completed trials in the order the final pick ranks them (:func:`~nasforge.study.rank_key`:
    the top rung first), each with its score on every rung it reached (``rungs``, lowest first): whether a pick
    led from its lowest rung or overtook late is what a short trial's ranking can be judged by, and a record is
    all a benchmark keeps once its database is gone. ``score`` and ``rungs`` are as the search ranked (a
    regression's: -RMSE); ``architecture`` where ``describe`` is given."""
    done = heapq.nsmallest(n, (t for t in trials if t.ok), key=rank_key)  # no sort of 100,000 trials for ten
    return [{"trial": t.number, "score": t.score, "epochs": round(t.budget.epochs * t.budget.fraction, 4),
             "rungs": list(t.rungs), "params": t.cost.params if t.cost else None,
             "flops": t.cost.flops if t.cost else None,
             "architecture": describe(t.sample) if describe is not None else None} for t in done]


def class_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A classifier's test figures in the record: the means over seeds, and accuracy's standard deviation; balanced
    accuracy where the tests recorded it (None in records from before)."""
    return {"test_accuracy": summary["accuracy_mean"], "test_f1": summary["f1_mean"],
            "test_balanced_accuracy": summary.get("balanced_accuracy_mean"),
            "test_accuracy_std": summary["accuracy_std"]}


def _regression_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A regression model's test figures in the record: the means over seeds, and RMSE's standard deviation."""
    return {"test_rmse": summary["rmse_mean"], "test_mae": summary["mae_mean"], "test_r2": summary["r2_mean"],
            "test_rmse_std": summary["rmse_std"]}


def data_name(source: str, path: str | None) -> str:
    """The name the loaders give a dataset (a file's or folder's stem for csv, npz and idx), without loading it."""
    if source in ("csv", "npz", "idx") and path:
        return Path(path).expanduser().stem or source
    return source


def record_json(record: Mapping[str, Any]) -> str:
    """The record as the text the commands write (indented, a final newline)."""
    return json.dumps(record, indent=2) + "\n"
