"""Do wider networks that train as fast as ResNet-20 on this CPU beat it in the same time on Fashion-MNIST?

``nasforge auto`` caps image candidates at the reference's FLOPs, because a costlier network gets fewer epochs in
the same final-training time. But time is not FLOPs: on 2 CPU cores wide layers at low resolution do more FLOPs a
millisecond than ResNet-20's 16-channel layers (measured by this script's timing, printed), so networks with
more FLOPs and more parameters than ResNet-20 train as fast. Are they better in the same time? Each network
below trains with auto's image recipe on train+validation for the same wall-clock time (the schedule sized
from a timing, then held to the time as auto's final training is), and is tested once.

    .venv/bin/python benchmarks/equal_time_nets.py --minutes 18     # 3 networks, ~1 hour on 2 cores

Writes ``benchmarks/results/equal_time_nets.json`` (or ``--name``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch
from _common import write_result

from nasforge.autoplan import SAFETY, recipe_for
from nasforge.data.registry import load_dataset
from nasforge.evaluate.cost import count_flops, count_params
from nasforge.evaluate.recipe import Recipe
from nasforge.evaluate.timing import time_steps
from nasforge.evaluate.trainer import evaluate_split
from nasforge.final.retrain import fit_final
from nasforge.space.stage import StageSpace, stage_sample


def networks(space: StageSpace) -> dict[str, dict[str, Any]]:
    def basic(depth: int, width: int, down: str = "stride") -> dict[str, Any]:
        return {"depth": depth, "width": width, "block": "basic", "kernel": 3, "down": down}

    return {"resnet20": space.resnet20(),
            "wide_16-64-128_d1-1-2": stage_sample(space, [basic(1, 16), basic(1, 64), basic(2, 128)], stem=16),
            "wide_16-32-128_d1-2-2_pool": stage_sample(space, [basic(1, 16), basic(2, 32, "pool"),
                                                               basic(2, 128, "pool")], stem=16)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=18.0)
    ap.add_argument("--only", default="", help="comma-separated network names (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="equal_time_nets")
    args = ap.parse_args()
    data = load_dataset("fashion_mnist", None, val_fraction=0.1, seed=args.seed)
    recipe = Recipe(**recipe_for("image"))
    space = StageSpace(max_stages=4)
    n = len(data.x_train) + len(data.x_val)
    seconds = 60 * args.minutes
    rows: dict[str, Any] = {}
    wanted = [w for w in args.only.split(",") if w]
    for name, sample in networks(space).items():
        if wanted and name not in wanted:
            continue
        torch.manual_seed(args.seed)
        model = space.build(sample, data.input_shape, data.n_classes)
        timing = time_steps(model, data, recipe)  # times a copy: the model keeps its seeded initial weights
        epochs = max(1.0, seconds / (timing.epoch_seconds(n, recipe.batch_size) * SAFETY))
        t0 = time.time()
        fitted = fit_final(model, data, epochs=int(epochs), recipe=recipe, seed=args.seed, time_limit=seconds,
                           fill_time=True)
        x_test, y_test = data.open_test()
        test = evaluate_split(model, x_test, y_test, data.n_classes, channels_last=recipe.channels_last)
        rows[name] = {"architecture": space.describe(sample), "params": count_params(model),
                      "flops": count_flops(model, data.input_shape),
                      "ms_a_step": round(1000 * timing.seconds_per_step, 1), "epochs_planned": int(epochs),
                      "epochs": len(fitted.curve), "train_seconds": round(fitted.seconds, 1),
                      "wall_seconds": round(time.time() - t0, 1), "test_accuracy": round(float(test["accuracy"]), 4)}
        print(name, rows[name], flush=True)
    out = write_result(args.name, f"Fashion-MNIST: networks trained for the same {args.minutes:g} minutes with auto's "
                       "image recipe, tested once", "benchmarks/equal_time_nets.py " + " ".join(sys.argv[1:]),
                       {"minutes": args.minutes, "seed": args.seed, "recipe": recipe_for("image"), "networks": rows})
    print(out)


if __name__ == "__main__":
    main()
