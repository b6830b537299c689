"""Strategy benchmark on tabular NAS-Bench-201: many seeds of the real ask/tell loop, in memory.

Each run asks a strategy for candidates on the NB201 cell space and answers them from the table
(:class:`~nasforge.evaluate.tabular.TabularEvaluator`): the score is the 12-epoch validation
accuracy, and a run's final result is the 200-epoch test accuracy of the architecture with the best
score it found, as in the NB201 paper's Table 5. The loop is a :class:`~nasforge.study.Study`'s ask
and tell, as in :func:`nasforge.loop.run_search`: a proposal whose key was already tried (an
isomorphic cell counts as tried, since the space's key is NB201's ``unique_str``) or that
``space.check`` rejects is not a query and costs nothing. The NB201 space's check rejects cells
whose output is disconnected from the input; NB201's own baselines would spend a query on those
(they score about 10%), so random search gains a little here.

Each dataset is searched on its own 12-epoch validation accuracy (NATS-Bench's protocol; NB201's
Table 5 searched on CIFAR-10 only). Accuracies in the output are percentages, to compare with
published numbers.

``nasforge bench`` (in :mod:`nasforge.cli`, which owns the console) calls :func:`run_bench`; this
module knows nothing of the command line.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasforge import atomic

log = logging.getLogger("nasforge")

# What `nasforge bench` compares unless told (--strategies): the ask/tell strategies NB201's Table 5 has a
# counterpart of, and local search; genetic and nsga2 (multi-objective) are left out.
DEFAULT_STRATEGIES = ("random", "evolution", "reinforce", "tpe", "bananas", "local_search")
# NB201's settings for the strategies that have published ones (REA: population 10, tournament 3).
NB201_OPTIONS: dict[str, dict[str, Any]] = {"evolution": {"population_size": 10, "sample_size": 3}}
INPUT_SHAPE = (3, 32, 32)


def run_one(strategy: Any, space: Any, evaluator: Any, queries: int, *, max_duplicates: int = 50,
            max_rejections: int = 2000) -> dict[str, Any]:
    """One search of ``queries`` scored queries; returns the per-query best-so-far score and hidden test value.

    Duplicates and rejected proposals are skipped without counting, as in the real loop; a search
    that proposes ``max_duplicates`` tried networks in a row stops early (the space looks exhausted).
    """
    from nasforge.study import Study

    study = Study(space, strategy, input_shape=INPUT_SHAPE, n_out=10, max_rejections=max_rejections,
                  max_duplicates=max_duplicates)
    best_score, best_test = -math.inf, math.nan
    curve_score: list[float] = []
    curve_test: list[float] = []
    while len(study.trials) < queries:
        trial = study.ask()
        if trial is None:
            log.warning("%s stopped after %d queries: it proposed only tried networks", strategy.name,
                        len(study.trials))
            break
        res = evaluator.evaluate(trial.sample, trial.budget)
        # The hidden test accuracy stays here: the strategy's trials never carry it.
        study.tell(trial, res.score, metrics=res.metrics, cost=res.cost)
        if res.score > best_score:  # ties keep the earlier trial, as Study.best does
            best_score, best_test = res.score, res.hidden[evaluator.report]
        curve_score.append(best_score)
        curve_test.append(best_test)
    history = study.trials
    return {"curve_score": curve_score, "curve_test": curve_test, "queries": len(history)}


def run_bench(table_path: str | Path, dataset: str, strategies: Sequence[str], queries: int, seeds: int, *,
              out_json: str | Path | None, out_png: str | Path | None = None,
              options: Mapping[str, Mapping[str, Any]] | None = None,
              on_done: Any = None) -> dict[str, Any]:
    """Run every strategy for ``seeds`` seeds (0..seeds-1) of ``queries`` queries; write JSON (and a PNG).

    ``options`` maps a strategy name to keyword arguments for :func:`~nasforge.strategy.make_strategy`;
    strategies without an entry use :data:`NB201_OPTIONS`, then their own defaults. ``on_done`` is
    called as ``on_done(name, summary)`` after each strategy, for progress output.
    """
    import numpy as np

    from nasforge.evaluate.tabular import NB201Table, TabularEvaluator
    from nasforge.space import make_space
    from nasforge.strategy import make_strategy

    table = NB201Table(table_path)
    space = make_space({"kind": "nb201"})
    all_opts = {**NB201_OPTIONS, **dict(options or {})}
    optimum = float(table.columns[f"{dataset}_test_200"].max())
    for name in strategies:  # fail fast on a bad name or options, before any run
        make_strategy(name, space, seed=0, **all_opts.get(name, {}))
    results: dict[str, Any] = {}
    for name in strategies:
        opts = dict(all_opts.get(name, {}))
        t0 = time.perf_counter()
        finals, tests, scores, used = [], [], [], []
        for seed in range(seeds):
            ev = TabularEvaluator(table, space, dataset=dataset)
            run = run_one(make_strategy(name, space, seed=seed, **opts), space, ev, queries)
            curve_t = np.full(queries, np.nan)
            curve_s = np.full(queries, np.nan)
            curve_t[: run["queries"]] = run["curve_test"]
            curve_s[: run["queries"]] = run["curve_score"]
            tests.append(curve_t * 100)
            scores.append(curve_s * 100)
            finals.append(100 * run["curve_test"][-1])
            used.append(run["queries"])
        seconds = time.perf_counter() - t0
        t_arr, s_arr = np.array(tests), np.array(scores)
        results[name] = {
            "final_test_mean": float(np.mean(finals)), "final_test_std": float(np.std(finals)),
            "final_valid_mean": float(np.nanmean(s_arr[:, -1])), "final_valid_std": float(np.nanstd(s_arr[:, -1])),
            "queries": queries, "seeds": seeds, "min_queries_used": int(min(used)), "options": opts,
            "seconds": seconds, "seconds_per_query": seconds / max(1, sum(used)),
            "curve_test_mean": [round(float(v), 4) for v in np.nanmean(t_arr, axis=0)],
            "curve_test_std": [round(float(v), 4) for v in np.nanstd(t_arr, axis=0)],
            "curve_valid_mean": [round(float(v), 4) for v in np.nanmean(s_arr, axis=0)],
        }
        if on_done is not None:
            on_done(name, results[name])
    doc: dict[str, Any] = {
        "benchmark": "nasbench201", "dataset": dataset, "search_metric": f"{dataset}_valid_12",
        "report_metric": f"{dataset}_test_200", "units": "percent", "optimum_test": optimum,
        "queries": queries, "seeds": seeds, "strategies": results,
    }
    if out_json is not None:
        atomic.write_text(out_json, json.dumps(doc, indent=1) + "\n")
    if out_png is not None:
        plot_bench(doc, out_png)
    return doc


def plot_bench(doc: Mapping[str, Any], out_png: str | Path) -> bool:
    """Mean best-so-far test accuracy with a ±std band per strategy; False if matplotlib is missing."""
    import numpy as np

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot written (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in doc["strategies"].items():
        mean, std = np.array(r["curve_test_mean"]), np.array(r["curve_test_std"])
        q = np.arange(1, len(mean) + 1)
        ax.plot(q, mean, label=f"{name} ({r['final_test_mean']:.2f}±{r['final_test_std']:.2f})")
        ax.fill_between(q, mean - std, mean + std, alpha=0.15)
    ax.axhline(doc["optimum_test"], color="k", ls=":", lw=1, label=f"optimum {doc['optimum_test']:.2f}")
    ax.set_xlabel("queries")
    ax.set_ylabel(f"test accuracy of best-valid arch (%), {doc['dataset']}")
    top = doc["optimum_test"]
    ax.set_ylim(top - 3 if doc["dataset"] == "cifar10" else top - 6, top + 0.5)
    ax.set_title(f"NAS-Bench-201 {doc['dataset']}: {doc['seeds']} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic.replace(out_png, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return True
