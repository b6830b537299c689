"""Which screen keeps the best networks: keep rules replayed on recorded proxy scores, no training.

Reads a proxies.py result (each candidate's proxy scores, trained validation accuracy, train seconds,
parameters, FLOPs), draws ``--rounds`` random pools of ``--pool`` candidates and keeps ``--keep`` of
each by: the proxy alone, the proxy and cost rank-summed (equal or 2:1 weight), the best proxy in the
cheaper half, and at random. Records the mean best accuracy kept and the train seconds it cost.

    .venv/bin/python benchmarks/keep_rules.py   # reads benchmarks/results/proxies.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import RESULTS, write_result


def ranks(vals: list[float], best_high: bool) -> list[int]:
    order = sorted(range(len(vals)), key=lambda i: vals[i], reverse=best_high)
    out = [0] * len(vals)
    for r, i in enumerate(order):
        out[i] = r
    return out


def kept(rule: str, pool: list[dict[str, Any]], proxy: str, cost: str, k: int, rng: random.Random) -> list[int]:
    p = [r["proxies"][proxy] if r["proxies"][proxy] is not None and math.isfinite(r["proxies"][proxy])
         else -math.inf for r in pool]
    c = [float(r[cost]) for r in pool]
    pr, cr = ranks(p, True), ranks(c, False)
    n = len(pool)
    if rule == "random":
        return rng.sample(range(n), k)
    if rule == "proxy":
        return sorted(range(n), key=lambda i: -p[i])[:k]
    if rule == "cheap_half":
        med = sorted(c)[n // 2]
        return sorted((i for i in range(n) if c[i] <= med), key=lambda i: -p[i])[:k]
    w = 2 if rule == "ranksum_2to1" else 1
    return sorted(range(n), key=lambda i: w * pr[i] + cr[i])[:k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", default=str(RESULTS / "proxies.json"))
    ap.add_argument("--pool", type=int, default=30)
    ap.add_argument("--keep", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    if not Path(args.proxies).is_file():
        ap.error(f"--proxies {args.proxies}: no such file; run benchmarks/proxies.py first")
    spaces = json.loads(Path(args.proxies).read_text())["spaces"]
    rules = ("random", "proxy", "ranksum", "ranksum_2to1", "cheap_half")
    out: dict[str, Any] = {}
    for name, space in spaces.items():
        rows = [r for r in space["rows"] if r.get("val_accuracy") is not None]
        for proxy in space["summary"]["proxy_seconds_per_candidate"]:
            for cost in ("params", "flops", "train_seconds"):
                rng = random.Random(0)
                acc: dict[str, list[float]] = {r: [] for r in rules}
                secs: dict[str, list[float]] = {r: [] for r in rules}
                for _ in range(args.rounds):
                    pool = rng.sample(rows, min(args.pool, len(rows)))
                    for rule in rules:
                        got = [pool[i] for i in kept(rule, pool, proxy, cost, args.keep, rng)]
                        acc[rule].append(max(r["val_accuracy"] for r in got))
                        secs[rule].append(sum(r["train_seconds"] for r in got))
                out.setdefault(name, {}).setdefault(proxy, {})[cost] = {
                    r: {"best_kept_accuracy": round(statistics.fmean(acc[r]), 4),
                        "kept_train_seconds": round(statistics.fmean(secs[r]), 1)} for r in rules}
    print("wrote", write_result("keep_rules", __doc__.splitlines()[0],
                                "python " + " ".join(map(shlex.quote, sys.argv)),
                                {"source": args.proxies, "pool": args.pool, "keep": args.keep,
                                 "rounds": args.rounds, "spaces": out}))


if __name__ == "__main__":
    main()
