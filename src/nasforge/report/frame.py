"""What the report reads from an experiment (a :class:`~nasforge.result.Result`), and its trials as a DataFrame.

Everything here works from the database alone (no data set is loaded), so a report of a finished
search takes seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.fmt import fmt_budget
from nasforge.result import Result
from nasforge.space.base import SearchSpace
from nasforge.study import rank_key
from nasforge.types import Budget, Trial, TrialState

if TYPE_CHECKING:
    import pandas as pd


def load(db: str | Path, name: str | None = None) -> Result:
    """An experiment as the report reads it (the latest one unless named): trials without samples and curves,
    the records it shows read whole on demand (:meth:`Result.detailed`); the database is not changed."""
    return Result.load(db, name, detail=False)


def scores_by_budget(t: Trial, ladder: Sequence[Budget],
                     pos: Mapping[Budget, int] | None = None) -> dict[Budget, float]:
    """The trial's score at every budget of the ladder it finished (``Trial.rungs`` counts from its first rung).

    ``pos`` (``{b: i for i, b in enumerate(ladder)}``) spares a caller looping over many trials rebuilding it."""
    pos = pos if pos is not None else {b: i for i, b in enumerate(ladder)}
    out: dict[Budget, float] = {}
    if t.rungs and t.budget in pos:
        start = pos[t.budget] - len(t.rungs) + 1
        if start >= 0:
            out = {ladder[start + i]: float(s) for i, s in enumerate(t.rungs)}
    if t.ok and t.score is not None:
        out[t.budget] = float(t.score)
    return out


def best_seen(t: Trial) -> float | None:
    """The score a trial reached, or for a pruned trial the best validation accuracy (a regression's -RMSE,
    ``val_score``) of its partial curve."""
    if t.ok:
        return t.score
    key = "val_score" if any("val_score" in r for r in t.curve) else "val_accuracy"
    vals = [float(r[key]) for r in t.curve if isinstance(r.get(key), int | float)]
    vals = [v for v in vals if math.isfinite(v)]
    return max(vals) if vals else None


def ranked(trials: Sequence[Trial]) -> list[Trial]:
    """Scored trials in order of merit, as `nasforge status` ranks them (longest-trained first)."""
    return sorted((t for t in trials if t.ok), key=rank_key)


def trials_frame(trials: Sequence[Trial], space: SearchSpace | None = None) -> pd.DataFrame:
    """One row per trial: state, score, budget, cost, timings, metrics, architecture, then one column per
    dimension of the sample. Dimensions that do not shape that trial's network (a dormant block slot,
    a setting its block type does not use) are missing (None/NaN), so group-bys compare like with like."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    dims: list[str] = list(space.dims()) if space is not None else []
    for t in trials:
        row: dict[str, Any] = {
            "number": t.number, "state": t.state.value, "score": t.score,
            "epochs": t.budget.epochs, "fraction": t.budget.fraction, "budget": fmt_budget(t.budget),
            "params": t.cost.params if t.cost else None, "flops": t.cost.flops if t.cost else None,
            "latency_ms": t.cost.latency_ms if t.cost else None,
            "seconds": t.train_seconds + t.eval_seconds, "duration": t.duration,
        }
        for k, v in t.metrics.items():
            if k != "accuracy":
                row[k if k.startswith("train_") else f"val_{k}"] = v
        row["rungs"] = list(t.rungs)
        active: set[str] | None = None
        arch = "?"
        if space is not None:
            try:
                arch = str(space.describe(t.sample))
                active = set(space.active(t.sample))
            except (KeyError, ValueError, TypeError):
                pass
        row["architecture"] = arch
        row["reason"] = t.reason
        row["key"] = t.key
        for d in dims or list(t.sample):
            row[d] = t.sample.get(d) if active is None or d in active else None
        rows.append(row)
    base = ["number", "state", "score", "epochs", "fraction", "budget", "params", "flops", "latency_ms", "seconds",
            "duration", "architecture", "reason", "key", "rungs"]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=base + dims)
    dim_cols = [c for c in (dims or []) if c in df.columns]
    others = [c for c in df.columns if c not in base and c not in dim_cols]
    return df[[c for c in base if c in df.columns] + others + dim_cols]


def state_counts(trials: Sequence[Trial]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in TrialState:
        n = sum(t.state is s for t in trials)
        if n:
            out[s.value.lower()] = n
    return out
