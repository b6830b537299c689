"""Transfer across searches on tabular NAS-Bench-201: CIFAR-10 searches help a CIFAR-100 (or ImageNet16) search.

For each seed, an earlier search (``bananas``, 100 queries, stored in SQLite through
``nasforge.open_study``) runs on CIFAR-10's 12-epoch validation accuracy. A search on the target data
set then runs three ways, 100 queries each, side by side: cold (``bananas`` alone), warm-started
(``search.initial: {from: earlier.db, top: 5}``: the earlier best 5 networks are its first queries)
and with a prior (``strategy.options.prior: earlier.db``: the predictor also trains on the earlier
trials, fading as its own arrive). Reported: the best-so-far 200-epoch test accuracy of the target per
query (mean over seeds), and the number of queries each arm needs to reach the cold arm's final
best (the same seed's), as a fraction of the cold arm's 100. Tabular: a query stands for a trained
network, so queries are the time axis. Strategies were tuned on CIFAR-10 only; the targets are held out.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/transfer.py --seeds 10

Writes ``benchmarks/results/transfer_nb201_<target>.json`` and ``.png`` (mean best-so-far curves, ±std).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_result

from nasforge.bench import INPUT_SHAPE, plot_bench, run_one
from nasforge.evaluate.tabular import NB201Table, TabularEvaluator
from nasforge.space import make_space
from nasforge.strategy import make_strategy
from nasforge.strategy.warm import WarmStart
from nasforge.study import open_study
from nasforge.transfer import earlier_best, prior_trials

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TABLE = ROOT.parent / "shared" / "benchmarks" / "nasbench201" / "nb201_table.csv.gz"


def earlier_search(table: NB201Table, db: Path, seed: int, queries: int) -> None:
    """The earlier experiment: bananas on CIFAR-10, every trial stored as a user's own loop would."""
    space = make_space({"kind": "nb201"})
    ev = TabularEvaluator(table, space, dataset="cifar10")
    with open_study(db, name="cifar10", space={"kind": "nb201"}, strategy="bananas", seed=seed,
                    input_shape=INPUT_SHAPE) as study:
        while len(study.trials) < queries:
            trial = study.ask()
            if trial is None:
                break
            res = ev.evaluate(trial.sample, trial.budget)
            study.tell(trial, res.score, metrics=res.metrics, cost=res.cost)


def reach(curve: list[float], target: float) -> int | None:
    """Queries until the best-so-far reaches ``target`` (1-based), None if never."""
    for i, v in enumerate(curve):
        if v >= target - 1e-9:
            return i + 1
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--target", default="cifar100", choices=["cifar100", "imagenet16"])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    table = NB201Table(args.table)
    space = make_space({"kind": "nb201"})
    arms: dict[str, list[list[float]]] = {"cold": [], "initial": [], "prior": []}
    reached: dict[str, list[float]] = {"initial": [], "prior": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            db = Path(tmp) / f"earlier-{seed}.db"
            earlier_search(table, db, seed, args.queries)
            runs: dict[str, Any] = {
                "cold": make_strategy("bananas", space, seed=seed),
                "initial": WarmStart(make_strategy("bananas", space, seed=seed),
                                     earlier_best({"from": str(db), "top": 5}, space, INPUT_SHAPE, 10)),
                "prior": make_strategy("bananas", space, seed=seed,
                                       prior=prior_trials(str(db), space, INPUT_SHAPE, 10)),
            }
            curves = {}
            for arm, strat in runs.items():
                run = run_one(strat, space, TabularEvaluator(table, space, dataset=args.target), args.queries)
                curves[arm] = [100 * v for v in run["curve_test"]]
                arms[arm].append(curves[arm])
            goal = curves["cold"][-1]
            for arm in reached:
                q = reach(curves[arm], goal)
                reached[arm].append(q / args.queries if q is not None else float("nan"))
            print(f"seed {seed}: cold {curves['cold'][-1]:.2f}  initial {curves['initial'][-1]:.2f} "
                  f"(cold's best at query {reach(curves['initial'], goal)})  prior {curves['prior'][-1]:.2f} "
                  f"(at query {reach(curves['prior'], goal)})", flush=True)
    out: dict[str, Any] = {"target": args.target, "source": "cifar10", "queries": args.queries, "seeds": args.seeds,
                           "seconds": round(time.perf_counter() - t0, 1), "arms": {}}
    for arm, cs in arms.items():
        a = np.array(cs)
        out["arms"][arm] = {"final_test_mean": float(a[:, -1].mean()), "final_test_std": float(a[:, -1].std()),
                            "curve_test_mean": [round(float(v), 4) for v in a.mean(axis=0)],
                            "curve_test_std": [round(float(v), 4) for v in a.std(axis=0)]}
        for q in (10, 25, 50):
            out["arms"][arm][f"test_mean_at_{q}"] = float(a[:, q - 1].mean())
        if arm in reached:
            r = np.array(reached[arm])
            out["arms"][arm]["fraction_to_reach_cold_final"] = [None if np.isnan(v) else v for v in r.tolist()]
            out["arms"][arm]["fraction_to_reach_cold_final_median"] = (
                float(np.nanmedian(r)) if np.isfinite(r).any() else None)
            out["arms"][arm]["never_reached"] = int(np.isnan(r).sum())
    for arm, d in out["arms"].items():
        print(f"{arm:8s} final {d['final_test_mean']:.2f} ± {d['final_test_std']:.2f}  at 10: "
              f"{d['test_mean_at_10']:.2f}  at 25: {d['test_mean_at_25']:.2f}"
              + (f"  reaches cold's final at {d['fraction_to_reach_cold_final_median']} of the queries (median), "
                 f"never in {d['never_reached']} seeds" if arm in reached else ""))
    path = write_result(f"transfer_nb201_{args.target}", "bananas on NB201 target, cold vs warm-started from / with "
                        "a prior of an earlier CIFAR-10 search's database (per seed); test_200 percent",
                        "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/transfer.py " + " ".join(sys.argv[1:]),
                        out)
    png = path.with_suffix(".png")
    plot_bench({"strategies": out["arms"], "dataset": args.target, "seeds": args.seeds,
                "optimum_test": float(table.columns[f"{args.target}_test_200"].max())}, png)
    print(f"wrote {path} and {png.name}")


if __name__ == "__main__":
    main()
