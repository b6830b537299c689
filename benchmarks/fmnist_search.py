"""Record a finished Fashion-MNIST search and its retrain (searched vs baseline) as a benchmark result.

    nasforge search examples/fashion_mnist.yaml --strategy evolution --time-budget 20m --db runs/evo20.db
    nasforge retrain runs/evo20.db
    .venv/bin/python benchmarks/fmnist_search.py runs/evo20.db fmnist_evolution_20m
"""

from __future__ import annotations

import sys
from collections import Counter

from _common import write_result

from nasforge.pareto import pareto_front
from nasforge.space import make_space
from nasforge.store import Store
from nasforge.study import best_trial


def main() -> None:
    db, name = sys.argv[1], sys.argv[2]
    with Store(db, create=False) as st:
        exp = st.experiment()
        assert exp is not None
        trials = st.trials(exp.id)
        retrains = st.results(exp.id, "retrain")
        n_rej, _ = st.rejection_summary(exp.id)
    space = make_space(exp.config["space"], (1, 28, 28))
    best = best_trial(trials)
    payload = {
        "experiment": exp.name,
        "strategy": exp.config.get("strategy"),
        "search_seconds": round(exp.elapsed, 1),
        "trials": dict(Counter(t.state.value for t in trials)),
        "rejected_before_training": n_rej,
        "best_trial": None if best is None else {"number": best.number, "val_accuracy": best.score,
                                                  "architecture": space.describe(best.sample)},
        "top5_val": [round(t.score or 0.0, 4) for t in sorted((t for t in trials if t.ok),
                                                              key=lambda t: -(t.score or 0.0))[:5]],
        "retrain": retrains[-1] if retrains else None,
    }
    objectives = exp.config.get("search", {}).get("objectives") or ["accuracy"]
    if len(objectives) > 1:  # a multi-objective search: its front, and every retrain (e.g. several members)
        payload["objectives"] = objectives
        payload["pareto_front"] = [
            {"trial": t.number, "val_accuracy": t.score, "params": t.cost.params if t.cost else None,
             "flops": t.cost.flops if t.cost else None, "budget": t.budget.to_json(),
             "architecture": space.describe(t.sample)} for t in pareto_front(trials, objectives)]
        payload["retrains"] = retrains
    print(payload)
    print("wrote", write_result(name, "Fashion-MNIST search + retrain: searched vs baseline on test",
                                f"python benchmarks/fmnist_search.py {db} {name}", payload))


if __name__ == "__main__":
    main()
