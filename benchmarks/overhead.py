"""Framework overhead per trial: everything a search does besides training and validating (target < 2%).

Runs a real search (loop, SQLite store, strategy, shape checks, cost measurement) at 1-epoch budgets
on the default example's space and data subset, then splits each trial's wall time into training,
validation and the rest.

    .venv/bin/python benchmarks/overhead.py              # writes benchmarks/results/overhead.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import write_result

from nasforge import api
from nasforge.config import load_config, with_overrides

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fashion_mnist.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--fraction", type=float, default=0.2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "overhead.db")
        cfg = with_overrides(load_config(EXAMPLE), trials=args.trials, db=db, name="overhead")
        raw = dict(cfg.raw)
        raw["search"] = {**raw["search"], "budget": {"epochs": 1, "fraction": args.fraction}, "time_budget": None}
        from nasforge.config import from_dict

        cfg = from_dict(raw)
        marks: list[float] = []
        t0 = time.perf_counter()
        outcome = api.search(cfg, on_progress=lambda p: marks.append(time.perf_counter()))
        total = time.perf_counter() - t0
    trials = [t for t in outcome.trial_list if t.ok]
    loop_wall = marks[-1] - marks[0]  # from the loop's start event to its end event
    train_s = sum(t.train_seconds for t in trials)
    eval_s = sum(t.eval_seconds for t in trials)
    per_trial_wall = [t.duration or 0.0 for t in trials]
    in_trial_other = [(t.duration or 0.0) - t.train_seconds - t.eval_seconds for t in trials]
    overhead = loop_wall - train_s - eval_s
    payload = {
        "trials": len(trials),
        "budget": {"epochs": 1, "fraction": args.fraction},
        "setup_seconds_once": round(total - loop_wall, 3),
        "loop_seconds": round(loop_wall, 3),
        "train_seconds": round(train_s, 3),
        "validation_seconds": round(eval_s, 3),
        "overhead_seconds": round(overhead, 3),
        "overhead_fraction_of_loop": round(overhead / loop_wall, 4),
        "overhead_fraction_with_validation_counted_as_overhead": round((overhead + eval_s) / loop_wall, 4),
        "median_trial_seconds": round(statistics.median(per_trial_wall), 3),
        "median_in_trial_overhead_seconds": round(statistics.median(in_trial_other), 4),
        "note": "overhead = loop wall time - training - validation: strategy, checks, model build, "
                "params/FLOPs/latency measurement and SQLite writes; setup (data load, preflight) is once per search",
    }
    print(payload)
    print("wrote", write_result("overhead", "framework overhead per trial at 1-epoch budgets (target < 2%)",
                                "python benchmarks/overhead.py", payload))


if __name__ == "__main__":
    main()
