"""How long must a trial train before it ranks networks as their long training does? (`auto`'s MIN_TRIAL_STEPS)

Four points of `nasforge auto`'s stage space (ResNet-20; one stage of three basic blocks at width 16; two
stages, the second pooled, with squeeze-excitation; two wide stages) train with auto's recipe for each
horizon in ``--epochs`` on one stratified 80/20 split (seed 0), each from scratch with its one-cycle
schedule, as a search trial of that budget would. The ranking after the shortest horizons against the
longest says how many optimizer steps a trial needs before its score means something.

    .venv/bin/python benchmarks/rank_horizon.py [--data digits] [--epochs 2,6,18,54] [--name N]
    .venv/bin/python benchmarks/rank_horizon.py --data sequence --epochs 1.36,4,12,36

``--data sequence`` is auto_small.py's generated set (4,000 signals, 10 classes).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    from nasforge.autoplan import recipe_for, stage_options
    from nasforge.data import load_dataset
    from nasforge.data.synthetic import make_sequences
    from nasforge.evaluate.recipe import Recipe
    from nasforge.evaluate.torch_eval import TorchEvaluator
    from nasforge.space.stage import StageSpace, stage_sample
    from nasforge.types import Budget

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits", choices=("digits", "sequence"))
    p.add_argument("--epochs", default="2,6,18,54")
    p.add_argument("--name", default=None)
    args = p.parse_args()
    horizons = [float(e) for e in args.epochs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.data == "sequence":
            x, y = make_sequences(4000, seed=0)
            xt, yt = make_sequences(1000, seed=1)
            np.savez(Path(tmp) / "s.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
            data = load_dataset("npz", Path(tmp) / "s.npz", seed=0, val_fraction=0.2, layout="sequence")
        else:
            data = load_dataset("digits", None, seed=0, val_fraction=0.2)
    opts = stage_options(tuple(data.input_shape))
    space = StageSpace(**{k: v for k, v in opts.items() if k != "kind"})
    recipe = Recipe(**recipe_for("image" if len(data.input_shape) == 3 else "sequence"))
    basic = {"block": "basic", "depth": 3, "kernel": 3, "se": False, "down": "stride"}
    nets = {"resnet20": space.resnet20(),
            "one_stage16": stage_sample(space, [{**basic, "width": 16}], stem=16),
            "two_stage_se_pool": stage_sample(space, [{**basic, "width": 16, "se": True},
                                                      {**basic, "width": 32, "down": "pool"}], stem=24),
            "two_wide_stages": stage_sample(space, [{**basic, "width": 32}, {**basic, "width": 64}], stem=32)}
    steps_per_epoch = math.ceil(len(data.x_train) / recipe.batch_size)
    scores: dict[str, dict[str, float]] = {n: {} for n in nets}
    seconds: dict[str, dict[str, float]] = {n: {} for n in nets}
    for e in horizons:
        for n, s in nets.items():
            t = time.time()
            r = TorchEvaluator(data, space, recipe=recipe, seed=0, measure_latency=False).evaluate(s, Budget(epochs=e))
            scores[n][f"{e:g}"], seconds[n][f"{e:g}"] = round(r.score, 4), round(time.time() - t, 1)
            print(f"{e:>6g} epochs ({math.ceil(e * steps_per_epoch)} steps) {n:>18}: val {r.score:.4f}", flush=True)
    last = f"{horizons[-1]:g}"
    rank: dict[str, Any] = {f"{e:g}": {"steps": math.ceil(e * steps_per_epoch),
                                       "spearman_with_longest": round(spearman([scores[n][f"{e:g}"] for n in nets],
                                                                               [scores[n][last] for n in nets]), 2),
                                       "best": max(nets, key=lambda n: scores[n][f"{e:g}"])}
                            for e in horizons}
    name = args.name or f"rank_horizon_{args.data}"
    out = write_result(name, __doc__.splitlines()[0], "python benchmarks/rank_horizon.py " + " ".join(sys.argv[1:]),
                       {"data": args.data, "train_examples": len(data.x_train), "steps_per_epoch": steps_per_epoch,
                        "val_accuracy": scores, "seconds": seconds, "ranking": rank})
    print(out)


if __name__ == "__main__":
    main()
