"""Evolution with ASHA against evolution at a fixed full budget, same wall clock, on Fashion-MNIST.

Runs examples/fashion_mnist.yaml twice with the same seed and time budget: once as written (ASHA,
2 -> 6 epochs) and once with every trial at the full 6 epochs; records the best validation accuracy
at the full budget and how many architectures each evaluated. One run after the other, never together.

    .venv/bin/python benchmarks/asha_vs_fixed.py --time-budget 20m
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections import Counter
from pathlib import Path

from _common import write_result

import nasforge
from nasforge.config import from_dict, load_config
from nasforge.store import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/fashion_mnist.yaml")
    ap.add_argument("--time-budget", default="20m")
    ap.add_argument("--out-dir", default="runs/asha_vs_fixed")
    ap.add_argument("--only", choices=["asha", "fixed"], help="run one arm (e.g. after a crash)")
    args = ap.parse_args()
    base = load_config(args.config)
    out: dict[str, dict[str, object]] = {}
    for arm in ("asha", "fixed"):
        raw = copy.deepcopy(dict(base.raw))
        raw["search"] = {**raw["search"], "time_budget": args.time_budget, "db": f"{args.out_dir}/{arm}.db"}
        if arm == "fixed":
            raw["search"].pop("scheduler", None)
        cfg = from_dict(raw)
        if args.only in (None, arm):
            nasforge.search(cfg, resume=Path(cfg.search.db).exists())
        if not Path(cfg.search.db).exists():
            continue
        with Store(cfg.search.db, create=False) as st:
            exp = st.experiment(cfg.name)
            assert exp is not None
            trials = st.trials(exp.id)
        full = [t for t in trials if t.ok and t.budget == cfg.search.budget]
        best = max(full, key=lambda t: t.score or 0.0, default=None)
        out[arm] = {
            "db": cfg.search.db, "scheduler": cfg.search.make_scheduler().describe(),
            "architectures_evaluated": len(trials), "trials_at_full_budget": len(full),
            "states": dict(Counter(t.state.value for t in trials)),
            "epochs_trained": round(sum(t.curve[-1]["epoch"] if t.curve else 0 for t in trials), 1),
            "best_full_budget_val_accuracy": None if best is None else best.score,
            "best_trial": None if best is None else best.number,
            "search_seconds": round(exp.elapsed, 1),
        }
        print(arm, out[arm], file=sys.stderr, flush=True)
    if len(out) == 2:
        n_a, n_f = (int(str(out[a]["architectures_evaluated"])) for a in ("asha", "fixed"))
        payload: dict[str, object] = {**out, "ratio_architectures_asha_over_fixed": n_a / max(1, n_f)}
        print("wrote", write_result("asha_vs_fixed", __doc__.splitlines()[0],
                                    f"python benchmarks/asha_vs_fixed.py --time-budget {args.time_budget}", payload))


if __name__ == "__main__":
    main()
