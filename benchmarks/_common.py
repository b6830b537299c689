"""Helpers shared by the benchmark scripts: result files and machine facts."""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "platform": platform.platform()}


def write_result(name: str, purpose: str, command: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    doc = {"purpose": purpose, "command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": machine(), **payload}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), read from /proc."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        got = kids.get(todo.pop(), [])
        out += got
        todo += got
    return out


def search_arm(base: Any, arm: str, db: str, time_budget: str, *, run: bool = True,
               changes: dict[str, Any] | None = None, drop: tuple[str, ...] = (),
               seed: int | None = None) -> dict[str, Any] | None:
    """One arm of a side-by-side search benchmark: ``base`` (a Config) with its ``search`` section
    changed (and its ``seed``, if given), run (or resumed) into ``db`` unless ``run`` is false, then
    summarised (None: no db)."""
    import nasforge
    from nasforge.config import from_dict

    raw = copy.deepcopy(dict(base.raw))
    search = {**raw["search"], "time_budget": time_budget, "db": db, **(changes or {})}
    raw["search"] = {k: v for k, v in search.items() if k not in drop}
    if seed is not None:
        raw["seed"] = seed
    cfg = from_dict(raw)
    if run:
        nasforge.search(cfg, resume=Path(db).exists())
    if not Path(db).exists():
        return None
    scheduler = cfg.search.make_scheduler()
    out = {"seed": cfg.seed, "scheduler": scheduler.describe(), "screen": raw["search"].get("screen"),
           "interim_validation": cfg.search.interim,
           **arm_summary(db, cfg.name, cfg.search.budget, scheduler)}
    print(arm, {k: v for k, v in out.items() if k != "best_so_far"}, file=sys.stderr, flush=True)
    return out


def training_done(t: Any, scheduler: Any) -> float:
    """The training a trial had, in full-budget trainings (epochs x data share): its curve, plus the
    lower rungs it trained afresh before when the rungs are data fractions (a continued trial's curve
    already holds its earlier epochs)."""
    full = scheduler.full.epochs * scheduler.full.fraction
    now = (t.curve[-1]["epoch"] if t.curve else 0) * t.budget.fraction
    if scheduler.continues or t.budget not in scheduler.ladder:
        return now / full
    i = scheduler.ladder.index(t.budget)
    before = len(t.rungs) - (1 if t.ok else 0)  # rungs finished below the current one
    return (now + sum(b.epochs * b.fraction for b in scheduler.ladder[max(0, i - before):i])) / full


def arm_summary(db: str, name: str, full_budget: Any, scheduler: Any = None) -> dict[str, Any]:
    """One search arm read back from its store: what it evaluated, its best at the full budget, and
    its best-so-far at the full budget against seconds since the first trial started; with the arm's
    ``scheduler``, also the training it did in full-budget trainings (``epochs_trained`` counts only
    each trial's last curve, which undercounts retrained data-fraction rungs)."""
    from nasforge.store import Store

    with Store(db, create=False) as st:
        exp = st.experiment(name)
        if exp is None:
            raise SystemExit(f"{db} holds no experiment {name!r}")
        trials = st.trials(exp.id)
    t0 = min((t.started for t in trials if t.started is not None), default=0.0)
    full = sorted((t for t in trials if t.ok and t.budget == full_budget and t.finished is not None),
                  key=lambda t: t.finished or 0.0)
    timeline, best = [], None
    for t in full:
        if best is None or (t.score or 0.0) > (best.score or 0.0):
            best = t
            timeline.append({"seconds": round((t.finished or 0.0) - t0, 1), "val_accuracy": t.score,
                             "trial": t.number})
    return {
        "db": db, "architectures_evaluated": len(trials), "trials_at_full_budget": len(full),
        "states": dict(Counter(t.state.value for t in trials)),
        "epochs_trained": round(sum(t.curve[-1]["epoch"] if t.curve else 0 for t in trials), 1),
        **({} if scheduler is None else
           {"full_budget_trainings": round(sum(training_done(t, scheduler) for t in trials), 2)}),
        "best_full_budget_val_accuracy": None if best is None else best.score,
        "best_trial": None if best is None else best.number,
        "best_architecture_key": None if best is None else best.key,
        "search_seconds": round(exp.elapsed, 1), "best_so_far": timeline,
    }


def best_by(timeline: list[dict[str, Any]], seconds: float) -> float | None:
    """The best-so-far a timeline had reached by ``seconds`` (None: nothing yet). A time budget lets
    a trial started before it finish after it; this is the score of what finished inside the budget."""
    return max((p["val_accuracy"] for p in timeline if p["seconds"] <= seconds), default=None)


def seconds_to_reach(timeline: list[dict[str, Any]], target: float) -> float | None:
    """When a best-so-far timeline first reached ``target`` (None: never)."""
    return next((p["seconds"] for p in timeline if p["val_accuracy"] >= target), None)
