"""Final training: the best architecture and the hand-designed baseline, same recipe, test read once.

Both models train on train+validation (the search is over, validation has done its job), then the
sealed test split is opened a single time and both are scored on it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.data.base import Dataset
from nasforge.evaluate.cost import measure_cost
from nasforge.evaluate.torch_eval import trial_seed
from nasforge.evaluate.trainer import Recipe, evaluate_split, train
from nasforge.space.base import SearchSpace
from nasforge.space.chain import Block, build_chain
from nasforge.types import Trial

log = logging.getLogger("nasforge")


def _conv(width: int) -> Block:
    return Block("conv", (("width", width), ("kernel", 3), ("stride", 1), ("padding", "same"), ("act", "relu"),
                          ("bn", False), ("skip", False)))


# The classic 2-conv network: conv32 3x3, max-pool, conv64 3x3, max-pool, dense128, output.
BASELINE_BLOCKS = (
    _conv(32),
    Block("pool", (("pool", "max"), ("pool_size", 2))),
    _conv(64),
    Block("pool", (("pool", "max"), ("pool_size", 2))),
    Block("dense", (("width", 128), ("act", "relu"))),
)
BASELINE_NAME = "baseline: conv32 3x3 > maxpool2 > conv64 3x3 > maxpool2 > dense128 relu"


def baseline_model(input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """The hand-designed reference; on flat inputs only its dense part applies."""
    blocks = BASELINE_BLOCKS if len(input_shape) > 1 else BASELINE_BLOCKS[-1:]
    return build_chain(blocks, "flatten", input_shape, n_out)


@dataclass(frozen=True)
class FinalModel:
    name: str
    description: str
    test: Mapping[str, float]
    params: int
    flops: int
    latency_ms: float | None
    train_seconds: float
    weights: str | None


def fit_final(model: nn.Module, data: Dataset, *, epochs: float, recipe: Recipe, seed: int,
              on_epoch: Callable[[int, Mapping[str, float]], None] | None = None) -> float:
    """Train on train+validation; returns training seconds. No validation: the search is over."""
    x, y = data.train_plus_val()
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    train(model, x, y, epochs=epochs, recipe=recipe, seed=seed, n_classes=data.n_classes, on_epoch=on_epoch)
    return time.perf_counter() - t0


def retrain_best(
    *,
    best: Trial,
    space: SearchSpace,
    data: Dataset,
    epochs: float,
    recipe: Recipe,
    seed: int,
    baseline: bool = True,
    out_dir: Path | None = None,
    on_epoch: Callable[[str, int, Mapping[str, float]], None] | None = None,
) -> list[FinalModel]:
    """Train the best searched network (and the baseline) with one recipe; score both on test once."""
    shape, k = data.input_shape, data.n_classes
    models: list[tuple[str, str, nn.Module]] = []
    torch.manual_seed(trial_seed(seed, best.key))
    models.append(("searched", space.describe(best.sample), space.build(best.sample, shape, k)))
    if baseline:
        torch.manual_seed(seed)
        models.append(("baseline", BASELINE_NAME.split(": ", 1)[1], baseline_model(shape, k)))
    seconds: dict[str, float] = {}
    for name, _, model in models:
        cb = (lambda e, row, n=name: on_epoch(n, e, row)) if on_epoch else None
        log.info("retraining %s for %s epochs", name, epochs)
        seconds[name] = fit_final(model, data, epochs=epochs, recipe=recipe, seed=seed, on_epoch=cb)
    x_test, y_test = data.open_test()  # the one read of the test split
    out: list[FinalModel] = []
    for name, desc, model in models:
        test = evaluate_split(model, x_test, y_test, k, channels_last=recipe.channels_last)
        cost = measure_cost(model, shape)
        path = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            p = out_dir / f"{name}.pt"
            torch.save(model.state_dict(), p)
            (out_dir / f"{name}.json").write_text(json.dumps(
                {"name": name, "description": desc, "sample": dict(best.sample) if name == "searched" else None,
                 "input_shape": list(shape), "classes": list(data.classes), "test": test}, indent=2))
            path = str(p)
        out.append(FinalModel(name, desc, test, cost.params, cost.flops, cost.latency_ms, seconds[name], path))
    return out


def final_to_json(m: FinalModel) -> dict[str, Any]:
    return {"name": m.name, "description": m.description, "test": dict(m.test), "params": m.params,
            "flops": m.flops, "latency_ms": m.latency_ms, "train_seconds": m.train_seconds, "weights": m.weights}
