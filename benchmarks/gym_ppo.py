"""An off-the-shelf RL agent on nasforge's Gymnasium environment: Stable-Baselines3's PPO against `reinforce`.

Both search the NAS-Bench-201 cell space on CIFAR-10's 12-epoch validation accuracy (tabular: no
training) for 100 queries, a query being a network not evaluated before in that run (repeats are
answered from the env's memory, as ``nasforge bench`` skips them), and report the 200-epoch test
accuracy of the best-scored network, per query, mean over seeds. PPO sees
:class:`nasforge.gym.NASEnv`: one step per edge (6), the reward at the end. A run that stops finding
new networks (the policy collapsed) by ``--max-steps`` keeps its last best for the remaining queries,
and the result says how many runs did.

    .venv/bin/pip install 'stable-baselines3>=2.3'      # or: pip install -e '.[rl]'
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/gym_ppo.py --seeds 10

Writes ``benchmarks/results/gym_ppo_nb201.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import write_result

from nasforge.bench import run_bench
from nasforge.evaluate.tabular import NB201Table, TabularEvaluator
from nasforge.gym import NASEnv
from nasforge.space import make_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TABLE = ROOT.parent / "shared" / "benchmarks" / "nasbench201" / "nb201_table.csv.gz"


def ppo_run(table: NB201Table, seed: int, queries: int, max_steps: int) -> dict[str, Any]:
    """One PPO search: the best-so-far test accuracy (percent) after each new query."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    space = make_space({"kind": "nb201"})
    env = NASEnv(space, TabularEvaluator(table, space), input_shape=(3, 32, 32))

    class Enough(BaseCallback):
        def _on_step(self) -> bool:
            return len(env.trials) < queries

    # 6 steps an episode, the reward at its end: no discount; 10 episodes an update, so the first update
    # comes after ~10 queries, as reinforce's controller updates after each one
    model = PPO("MultiInputPolicy", env, n_steps=60, batch_size=60, n_epochs=4, gamma=1.0, gae_lambda=1.0,
                learning_rate=3e-3, ent_coef=0.01, seed=seed, policy_kwargs={"net_arch": [64]}, verbose=0,
                device="cpu")
    model.learn(total_timesteps=max_steps, callback=Enough())
    curve, best_score, best_test = [], -np.inf, np.nan
    for t in env.trials[:queries]:
        if t.score is not None and t.score > best_score:
            best_score, best_test = t.score, t.hidden["test_200"] * 100
        curve.append(best_test)
    used = len(curve)
    curve += [curve[-1]] * (queries - used)  # a collapsed policy finds nothing new: its best stays
    return {"curve": curve, "queries_found": used}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=30_000, help="env steps before a PPO run gives up")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = NB201Table(args.table)
    t0 = time.perf_counter()
    runs = [ppo_run(table, seed, args.queries, args.max_steps) for seed in range(args.seeds)]
    ppo_s = time.perf_counter() - t0
    curves = np.array([r["curve"] for r in runs])
    finals = curves[:, -1]
    ref = run_bench(table.path, "cifar10", ["random", "reinforce"],
                    args.queries, args.seeds, out_json=None)["strategies"]
    ppo = {"final_test_mean": float(finals.mean()), "final_test_std": float(finals.std()),
           "curve_test_mean": [round(float(v), 4) for v in curves.mean(axis=0)],
           "collapsed_runs": sum(r["queries_found"] < args.queries for r in runs),
           "queries_found": [r["queries_found"] for r in runs], "seconds": round(ppo_s, 1)}
    print(f"PPO (SB3) {ppo['final_test_mean']:.2f} ± {ppo['final_test_std']:.2f}  "
          f"reinforce {ref['reinforce']['final_test_mean']:.2f} ± {ref['reinforce']['final_test_std']:.2f}  "
          f"random {ref['random']['final_test_mean']:.2f}  ({args.seeds} seeds, {args.queries} queries)")
    keep = ("final_test_mean", "final_test_std", "curve_test_mean", "seconds")
    out = write_result("gym_ppo_nb201", "SB3 PPO on nasforge.gym.NASEnv against nasforge's reinforce and random "
                       "on tabular NB201 CIFAR-10, best-so-far 200-epoch test accuracy (percent) per query",
                       "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/gym_ppo.py " + " ".join(sys.argv[1:]),
                       {"queries": args.queries, "seeds": args.seeds, "ppo": ppo,
                        **{k: {f: v[f] for f in keep} for k, v in ref.items()}})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
