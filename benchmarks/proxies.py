"""How well does each zero-cost proxy rank Fashion-MNIST candidates by their trained validation accuracy?

Samples about 50 valid, distinct candidates from each space: the chain space of
examples/fashion_mnist.yaml and a small cell space (kind cell, C = 8 in the first stage and 16 in the
second, one cell per stage). Trains each with nasforge's TorchEvaluator (2 epochs on a fixed 20% subset,
the example's train recipe; --epochs, --fraction) for its validation accuracy, scores it
with every proxy in nasforge.screen.proxies.PROXIES at the very initialisation it is trained from
(one fixed training minibatch of 64), and records per space and proxy the Spearman rank correlation
with validation accuracy, the best accuracy inside the proxy's top 10% and 20% (what a screen with
``keep: 0.1`` or ``0.2`` would have trained), the proxy seconds per candidate, and every raw score.
Parameters and FLOPs are recorded as baselines. The test split is never opened.

    .venv/bin/python benchmarks/proxies.py                          # the full run (about an hour on 2 cores)
    .venv/bin/python benchmarks/proxies.py --n 3 --epochs 0.1 --name proxies_smoke   # a quick check
    .venv/bin/python benchmarks/proxies.py --reuse benchmarks/results/proxies.json  # train only new candidates

``--reuse`` takes the trained accuracy (and cost) of every candidate an earlier result holds for the
same space, budget and seed instead of training it again: the candidates are drawn in the same order
for any ``--n``, and training is seeded per architecture (deterministic on the CPU), so a larger
``--n`` adds candidates to the earlier run's. Proxy scores are always computed afresh; reused rows
are marked ``"reused": true``. The first reusable candidate is trained again as a check, and both
accuracies are recorded in its ``reuse_check``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_result
from scipy.stats import spearmanr

from nasforge.config import load_config
from nasforge.data import load_dataset
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.evaluate.trainer import TrainingFailed
from nasforge.screen.proxies import PROXIES, score_samples
from nasforge.space import make_space
from nasforge.space.base import SearchSpace
from nasforge.types import Budget, Sample

ROOT = Path(__file__).resolve().parent.parent
CELL_SPACE = {"kind": "cell", "channels": 8, "n_stages": 2, "cells_per_stage": 1}
KEEPS = (0.1, 0.2)


def distinct_valid(space: SearchSpace, n: int, shape: tuple[int, ...], n_out: int, seed: int) -> list[Sample]:
    """``n`` samples that pass ``space.check``, with distinct keys, in the order drawn."""
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    seen: set[str] = set()
    for _ in range(200 * n):
        s = space.sample(rng)
        key = space.key(s)
        if key not in seen and space.check(s, shape, n_out) is None:
            seen.add(key)
            out.append(s)
            if len(out) == n:
                break
    return out


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho; -inf scores (a failed proxy) tie below every finite one. None if undefined."""
    if len(a) < 3:
        return None
    finite = [v for v in a if math.isfinite(v)]
    floor = (min(finite) - 1.0) if finite else 0.0
    rho = spearmanr([v if math.isfinite(v) else floor for v in a], b)[0]
    return None if rho is None or not math.isfinite(float(rho)) else round(float(rho), 4)


def kept_best(scores: list[float], acc: list[float], keep: float) -> float | None:
    """Best validation accuracy among the top ``keep`` share by ``scores`` (as screen() keeps them)."""
    if not acc:
        return None
    order = sorted(range(len(acc)), key=lambda i: -scores[i])
    n_keep = max(1, math.ceil(keep * len(acc) - 1e-9))
    return round(max(acc[i] for i in order[:n_keep]), 4)


def run_space(name: str, space: SearchSpace, data: Any, cfg: Any, args: argparse.Namespace,
              earlier: dict[str, dict[str, Any]]) -> dict[str, Any]:
    shape, k = data.input_shape, data.n_classes
    samples = distinct_valid(space, args.n, shape, k, args.seed)
    evaluator = TorchEvaluator(data, space, recipe=cfg.train, seed=cfg.seed, measure_latency=False)
    budget = Budget(epochs=args.epochs, fraction=args.fraction)
    rows: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        row: dict[str, Any] = {"key": space.key(s), "describe": space.describe(s), "proxies": {}, "proxy_seconds": {}}
        for p in PROXIES:
            t0 = time.perf_counter()
            (value,) = score_samples(space, [s], data, p, batch_size=args.batch_size, seed=cfg.seed)
            row["proxy_seconds"][p] = round(time.perf_counter() - t0, 4)
            row["proxies"][p] = value if math.isfinite(value) else None  # JSON has no -inf: None = ranked last
        old = earlier.get(row["key"])
        if old is not None and old.get("val_accuracy") is not None and any(r.get("reused") for r in rows):
            row.update({k: old.get(k) for k in ("val_accuracy", "params", "flops", "train_seconds")}, reused=True)
            rows.append(row)
            continue
        t0 = time.perf_counter()
        try:
            res = evaluator.evaluate(s, budget)
            row["val_accuracy"] = res.score
            row["params"] = res.cost.params if res.cost else None
            row["flops"] = res.cost.flops if res.cost else None
        except TrainingFailed as e:
            row["val_accuracy"], row["failed"] = None, str(e)
        row["train_seconds"] = round(time.perf_counter() - t0, 2)
        if old is not None and old.get("val_accuracy") is not None:  # the first reusable one is retrained
            row.update(reused=True, reuse_check={"earlier": old["val_accuracy"], "now": row["val_accuracy"]})
            print(f"{name}: reuse check, earlier {old['val_accuracy']} now {row['val_accuracy']}", file=sys.stderr)
        rows.append(row)
        print(f"{name} {i + 1}/{len(samples)} acc={row['val_accuracy']} "
              + " ".join(f"{p}={v:.4g}" if v is not None else f"{p}=-inf" for p, v in row["proxies"].items())
              + f"  {row['describe']}", file=sys.stderr, flush=True)

    ok = [r for r in rows if r["val_accuracy"] is not None]
    acc = [float(r["val_accuracy"]) for r in ok]
    summary: dict[str, Any] = {"spearman": {}, "kept_best_accuracy": {}, "proxy_seconds_per_candidate": {},
                               "minus_inf": {}}
    for p in PROXIES:
        sc = [-math.inf if r["proxies"][p] is None else float(r["proxies"][p]) for r in ok]
        summary["spearman"][p] = spearman(sc, acc)
        summary["kept_best_accuracy"][p] = {str(kp): kept_best(sc, acc, kp) for kp in KEEPS}
        summary["proxy_seconds_per_candidate"][p] = round(float(np.mean([r["proxy_seconds"][p] for r in rows])), 4)
        summary["minus_inf"][p] = sum(1 for r in rows if r["proxies"][p] is None)
    for base in ("params", "flops"):  # the baselines a proxy must beat (Abdelfattah et al. 2021)
        summary["spearman"][base] = spearman([float(r.get(base) or 0) for r in ok], acc)
        summary["kept_best_accuracy"][base] = {str(kp): kept_best([float(r.get(base) or 0) for r in ok], acc, kp)
                                               for kp in KEEPS}
    summary.update(candidates=len(rows), trained=len(ok), failed=len(rows) - len(ok),
                   best_accuracy=round(max(acc), 4) if acc else None,
                   median_accuracy=round(float(np.median(acc)), 4) if acc else None,
                   train_seconds_per_candidate=round(float(np.mean([r["train_seconds"] for r in rows])), 2)
                   if rows else None)
    return {"summary": summary, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "fashion_mnist.yaml"))
    ap.add_argument("--n", type=int, default=50, help="candidates per space")
    ap.add_argument("--epochs", type=float, default=2.0, help="training epochs per candidate")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of the training split per candidate")
    ap.add_argument("--spaces", default="chain,cell", help="comma-separated: chain, cell")
    ap.add_argument("--batch-size", type=int, default=64, help="the proxies' minibatch")
    ap.add_argument("--seed", type=int, default=0, help="which candidates are sampled")
    ap.add_argument("--name", default="proxies", help="result file benchmarks/results/NAME.json")
    ap.add_argument("--reuse", help="an earlier result of this benchmark: its trained candidates are not retrained")
    args = ap.parse_args()
    cfg = load_config(args.config)
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    unknown = [s for s in spaces if s not in ("chain", "cell")]
    if unknown:
        ap.error(f"unknown space(s) {unknown}: use chain and/or cell")

    d = cfg.data
    data = load_dataset(d.source, d.path, val_fraction=d.val_fraction, seed=cfg.seed, layout=d.layout,
                        label_column=d.label_column, limit=d.limit).search_view()
    options = {"chain": dict(cfg.space), "cell": CELL_SPACE}
    command = " ".join(["python benchmarks/proxies.py", *(shlex.quote(a) for a in sys.argv[1:])])
    cfg_path = Path(args.config).resolve()
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    if args.reuse and not Path(args.reuse).is_file():
        ap.error(f"--reuse {args.reuse}: no such file; give an earlier benchmarks/results/*.json of this script")
    before = json.loads(Path(args.reuse).read_text()) if args.reuse else None
    if before is not None and (before["budget"] != {"epochs": args.epochs, "fraction": args.fraction}
                               or before["sample_seed"] != args.seed):
        ap.error(f"{args.reuse} was run with another budget or seed; it cannot be reused")
    if before is not None and before["recipe"] != json.loads(json.dumps(dataclasses.asdict(cfg.train))):
        ap.error(f"{args.reuse} was trained with another recipe; it cannot be reused")
    for name in spaces:
        space = make_space(options[name], data.input_shape)
        earlier: dict[str, dict[str, Any]] = {}
        old = (before or {}).get("spaces", {}).get(name)
        if old is not None and old["space"] == options[name]:  # the same space, so the same keys mean the same nets
            earlier = {r["key"]: r for r in old["rows"]}
        results[name] = {"space": options[name], **run_space(name, space, data, cfg, args, earlier)}
        print(name, results[name]["summary"]["spearman"], file=sys.stderr, flush=True)
        # written after every space, so a long run interrupted in the second space keeps the first
        out = write_result(args.name, __doc__.splitlines()[0], command, {
            "config": str(cfg_path.relative_to(ROOT)) if cfg_path.is_relative_to(ROOT) else args.config,
            "budget": {"epochs": args.epochs, "fraction": args.fraction}, "recipe": dataclasses.asdict(cfg.train),
            "proxy_batch_size": args.batch_size, "sample_seed": args.seed, "proxies": list(PROXIES),
            "total_seconds": round(time.perf_counter() - t0, 1), "spaces": results})
        print(out, file=sys.stderr)


if __name__ == "__main__":
    main()
