"""A search screened by a zero-cost proxy against the same search unscreened, same wall clock.

Runs the config twice with the same seed and time budget, one after the other: as written, and with
``search.screen: {proxy, sample, keep}`` added. Records for each arm the best validation accuracy at the
full budget, its best-so-far against seconds, and when the screened arm first reached the plain arm's
final best (``seconds_to_reach_plain_best``; null if it never did). Pick the proxy from
``benchmarks/results/proxies.json``.

    .venv/bin/python benchmarks/screen_vs_plain.py --time-budget 20m --proxy synflow
    .venv/bin/python benchmarks/screen_vs_plain.py --plain-db runs/evo20.db --proxy synflow   # reuse a plain run
    .venv/bin/python benchmarks/screen_vs_plain.py --proxy naswot --cost flops --sample 30   # cost-aware screen
    .venv/bin/python benchmarks/screen_vs_plain.py --proxy synflow --sample 30 --name screen_vs_plain_synflow
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from _common import search_arm, seconds_to_reach, write_result

from nasforge.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/fashion_mnist.yaml")
    ap.add_argument("--time-budget", default="20m")
    ap.add_argument("--proxy", default="synflow")
    ap.add_argument("--sample", type=int, default=30, help="candidates drawn per screening round")
    ap.add_argument("--keep", type=float, default=0.1, help="share of each round that is trained")
    ap.add_argument("--cost", choices=["params", "flops", "latency"],
                    help="keep the best proxy at each cost, not the best overall")
    ap.add_argument("--out-dir", default="runs/screen_vs_plain")
    ap.add_argument("--plain-db", help="read the plain arm from this finished search of the same config and budget")
    ap.add_argument("--seed", type=int, help="both arms' seed, in place of the config's")
    ap.add_argument("--name", default="screen_vs_plain", help="result file benchmarks/results/NAME.json")
    ap.add_argument("--scheduler", type=json.loads,
                    help="both arms' search.scheduler as JSON, in place of the config's")
    args = ap.parse_args()
    base = load_config(args.config)
    out: dict[str, dict[str, Any]] = {}
    screen = {"proxy": args.proxy, "sample": args.sample, "keep": args.keep}
    if args.cost:
        screen["cost"] = args.cost
    sched = {"scheduler": args.scheduler} if args.scheduler else {}
    for arm in ("plain", "screened"):
        reuse = bool(arm == "plain" and args.plain_db)
        got = search_arm(base, arm, args.plain_db if reuse else f"{args.out_dir}/{arm}.db", args.time_budget,
                         run=not reuse, seed=args.seed,
                         changes={**sched, "screen": screen} if arm == "screened" else sched)
        if got is None:
            raise SystemExit(f"no database for the {arm} arm")
        out[arm] = got
    target = out["plain"]["best_full_budget_val_accuracy"]
    timelines: dict[str, Any] = {arm: out[arm]["best_so_far"] for arm in out}
    payload: dict[str, object] = {
        **out, "plain_best": target,
        "plain_seconds_to_its_best": None if target is None else seconds_to_reach(timelines["plain"], float(target)),
        "screened_seconds_to_reach_plain_best":
            None if target is None else seconds_to_reach(timelines["screened"], float(target)),
    }
    print("wrote", write_result(args.name, __doc__.splitlines()[0],
                                "python " + " ".join(map(shlex.quote, sys.argv)), payload))


if __name__ == "__main__":
    main()
