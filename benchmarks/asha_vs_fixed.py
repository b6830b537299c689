"""Evolution with ASHA against evolution at a fixed full budget, same wall clock, on Fashion-MNIST.

Runs examples/fashion_mnist.yaml twice with the same seed and time budget: once as written (ASHA,
2 -> 6 epochs) and once with every trial at the full 6 epochs; records the best validation accuracy
at the full budget and how many architectures each evaluated. One run after the other, never together.

    .venv/bin/python benchmarks/asha_vs_fixed.py --time-budget 20m
    .venv/bin/python benchmarks/asha_vs_fixed.py --asha-db runs/evo20.db   # reuse a finished ASHA search
    .venv/bin/python benchmarks/asha_vs_fixed.py --scheduler '{"name": "asha", "eta": 3, "min_epochs": 1}'
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from _common import search_arm, write_result

from nasforge.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/fashion_mnist.yaml")
    ap.add_argument("--time-budget", default="20m")
    ap.add_argument("--out-dir", default="runs/asha_vs_fixed")
    ap.add_argument("--only", choices=["asha", "fixed"], help="run one arm (e.g. after a crash)")
    ap.add_argument("--asha-db", help="read the ASHA arm from this finished search of the same config and "
                    "budget (e.g. `nasforge search CONFIG --time-budget 20m`) instead of running it")
    ap.add_argument("--fixed-db", help="read the fixed arm from this finished search instead of running it")
    ap.add_argument("--name", default="asha_vs_fixed", help="result file benchmarks/results/NAME.json")
    ap.add_argument("--scheduler", type=json.loads, help="the ASHA arm's search.scheduler as JSON, in place of "
                    "the config's (the fixed arm has none either way)")
    args = ap.parse_args()
    base = load_config(args.config)
    out: dict[str, dict[str, Any]] = {}
    for arm in ("asha", "fixed"):
        given = args.asha_db if arm == "asha" else args.fixed_db  # a finished arm to read, not run
        got = search_arm(base, arm, given or f"{args.out_dir}/{arm}.db", args.time_budget,
                         run=args.only in (None, arm) and not given, drop=("scheduler",) if arm == "fixed" else (),
                         changes={"scheduler": args.scheduler} if arm == "asha" and args.scheduler else None)
        if got is not None:
            out[arm] = got
    if len(out) == 2:
        n_a, n_f = (out[a]["architectures_evaluated"] for a in ("asha", "fixed"))
        payload: dict[str, object] = {**out, "ratio_architectures_asha_over_fixed": n_a / max(1, n_f)}
        print("wrote", write_result(args.name, __doc__.splitlines()[0],
                                    "python " + " ".join(map(shlex.quote, sys.argv)), payload))


if __name__ == "__main__":
    main()
