"""Evolution with ASHA against evolution at a fixed full budget, same wall clock, on Fashion-MNIST.

Runs examples/fashion_mnist.yaml twice per seed with the same time budget: once as written (ASHA,
2 -> 6 epochs, or ``--scheduler``) and once with every trial at the full 6 epochs; records the best
validation accuracy at the full budget and how many architectures each evaluated, per seed and
averaged over the seeds. A time budget lets a trial that started before it finish after it, so each
arm also records ``best_within_time_budget``, the best of the trials that finished inside it. One
run after the other, never together. With ``--seeds``, each seed's arms go to
OUT_DIR/seedN/{asha,fixed}.db; a database that is already there is read, not run again.

    .venv/bin/python benchmarks/asha_vs_fixed.py --time-budget 20m
    .venv/bin/python benchmarks/asha_vs_fixed.py --asha-db runs/evo20.db   # reuse a finished ASHA search
    .venv/bin/python benchmarks/asha_vs_fixed.py --scheduler '{"name": "asha", "eta": 3, "min_epochs": 1}'
    .venv/bin/python benchmarks/asha_vs_fixed.py --seeds 0 1 2 --name asha_vs_fixed_seeds
    .venv/bin/python benchmarks/asha_vs_fixed.py --budget '{"epochs": 6, "fraction": 1.0}' \
        --scheduler '{"name": "asha", "eta": 3, "min_fraction": 0.1111111111111111}'   # both arms on all the data
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import best_by, search_arm, write_result

from nasforge.config import load_config, parse_duration
from nasforge.errors import NasforgeError

ARMS = ("asha", "fixed")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/fashion_mnist.yaml")
    ap.add_argument("--time-budget", default="20m")
    ap.add_argument("--out-dir", default="runs/asha_vs_fixed")
    ap.add_argument("--only", choices=ARMS, help="run one arm (e.g. after a crash)")
    ap.add_argument("--asha-db", help="read the ASHA arm from this finished search of the same config and "
                    "budget (e.g. `nasforge search CONFIG --time-budget 20m`) instead of running it")
    ap.add_argument("--fixed-db", help="read the fixed arm from this finished search instead of running it")
    ap.add_argument("--seeds", type=int, nargs="+", help="run both arms once per seed (the config's seed "
                    "replaced); each seed's databases go to OUT_DIR/seedN/")
    ap.add_argument("--name", default="asha_vs_fixed", help="result file benchmarks/results/NAME.json")
    ap.add_argument("--budget", type=json.loads, help="the full budget of both arms as JSON (search.budget), in "
                    "place of the config's")
    ap.add_argument("--scheduler", type=json.loads, help="the ASHA arm's search.scheduler as JSON, in place of "
                    "the config's (the fixed arm has none either way)")
    args = ap.parse_args()
    if args.seeds and (args.asha_db or args.fixed_db):
        raise SystemExit("--seeds reads existing databases from OUT_DIR/seedN/; give it without --asha-db/--fixed-db")
    base = load_config(args.config)
    deadline = parse_duration(args.time_budget, "--time-budget") or float("inf")
    both = {"budget": args.budget} if args.budget else {}
    changes = {**both, **({"scheduler": args.scheduler} if args.scheduler else {})}
    per_seed: dict[str, dict[str, Any]] = {}
    for seed in args.seeds or [None]:
        out: dict[str, Any] = {}
        for arm in ARMS:
            given = args.asha_db if arm == "asha" else args.fixed_db  # a finished arm to read, not run
            db = given or (f"{args.out_dir}/seed{seed}/{arm}.db" if seed is not None else f"{args.out_dir}/{arm}.db")
            run = args.only in (None, arm) and not given and not (seed is not None and Path(db).exists())
            got = search_arm(base, arm, db, args.time_budget, run=run, seed=seed,
                             drop=("scheduler",) if arm == "fixed" else (), changes=changes if arm == "asha" else both)
            if got is not None:
                out[arm] = got
        for arm in out:
            out[arm]["best_within_time_budget"] = best_by(out[arm]["best_so_far"], deadline)
        if len(out) == 2:
            n_a, n_f = (out[a]["architectures_evaluated"] for a in ARMS)
            out["ratio_architectures_asha_over_fixed"] = n_a / max(1, n_f)
            per_seed[str(base.seed if seed is None else seed)] = out
    if not per_seed:
        return
    if args.seeds is None:  # one seed: the flat layout of the earlier results
        payload: dict[str, Any] = next(iter(per_seed.values()))
    else:
        def per_arm(key: str) -> dict[str, list[float]]:
            return {a: [r[a][key] or 0.0 for r in per_seed.values()] for a in ARMS}

        def tally(key: str, suffix: str = "") -> dict[str, int]:
            arm = per_arm(key)
            pairs = list(zip(arm["asha"], arm["fixed"], strict=True))
            return {f"asha_wins{suffix}": sum(a > f for a, f in pairs),
                    f"asha_ties{suffix}": sum(a == f for a, f in pairs)}

        best = per_arm("best_full_budget_val_accuracy")
        payload = {"seeds": per_seed, "mean": {
            **{f"{a}_best_full_budget_val_accuracy": statistics.fmean(best[a]) for a in ARMS},
            **tally("best_full_budget_val_accuracy"), **tally("best_within_time_budget", "_within_time_budget"),
            "n_seeds": len(per_seed),
            "ratio_architectures_asha_over_fixed":
                statistics.fmean(r["ratio_architectures_asha_over_fixed"] for r in per_seed.values())}}
    print("wrote", write_result(args.name, __doc__.splitlines()[0],
                                "python " + " ".join(map(shlex.quote, sys.argv)), payload))


if __name__ == "__main__":
    try:
        main()
    except NasforgeError as e:  # a bad --config, --budget or --scheduler: one line, nothing stored yet
        raise SystemExit(f"asha_vs_fixed: {e}") from None
