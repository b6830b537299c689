"""Budgeted training of one candidate on the search splits (train / validation, never test)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping

import numpy as np
import torch

from nasforge.data.base import Dataset, stratified_split
from nasforge.evaluate.cost import measure_cost
from nasforge.evaluate.trainer import Recipe, TrainingFailed, train
from nasforge.space.base import SearchSpace
from nasforge.types import Budget, EvalResult, Sample

log = logging.getLogger("nasforge")
Reporter = Callable[[int, Mapping[str, float]], None]


def trial_seed(seed: int, key: str) -> int:
    """A per-architecture seed: the same network trains the same way in any run with this seed."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little")


class TorchEvaluator:
    """Trains a candidate for its budget and reports validation metrics per epoch and its cost.

    A budget fraction below 1 trains on a stratified subset of the training split that is fixed for
    the whole experiment, so every candidate is compared on the same examples.
    """

    def __init__(self, data: Dataset, space: SearchSpace, *, recipe: Recipe | None = None, seed: int = 0,
                 measure_latency: bool = True) -> None:
        if data.has_test:
            data = data.search_view()  # the search never holds the test split
        self.data, self.space = data, space
        self.recipe = recipe or Recipe()
        self.seed = seed
        self.measure_latency = measure_latency
        self._subsets: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def training_split(self, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        if fraction >= 1.0:
            return self.data.x_train, self.data.y_train
        if fraction not in self._subsets:
            _, keep = stratified_split(self.data.y_train.numpy(), fraction, self.seed + 7919)
            idx = torch.from_numpy(np.asarray(keep, dtype=np.int64))
            self._subsets[fraction] = (self.data.x_train[idx], self.data.y_train[idx])
        return self._subsets[fraction]

    def evaluate(self, sample: Sample, budget: Budget, report: Reporter | None = None) -> EvalResult:
        key = self.space.key(sample)
        seed = trial_seed(self.seed, key)
        torch.manual_seed(seed)
        shape, k = self.data.input_shape, self.data.n_classes
        try:
            model = self.space.build(sample, shape, k)
            cost = measure_cost(model, shape, latency=self.measure_latency)
            x, y = self.training_split(budget.fraction)
            stats = train(model, x, y, epochs=budget.epochs, recipe=self.recipe, seed=seed, n_classes=k,
                          x_val=self.data.x_val, y_val=self.data.y_val, on_epoch=report)
        except TrainingFailed:
            raise
        except (RuntimeError, ValueError) as e:  # shape errors, OOM: this candidate fails alone
            raise TrainingFailed(f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
        last = stats.curve[-1]
        metrics = {m: float(last[f"val_{m}"]) for m in ("accuracy", "loss", "precision", "recall", "f1")}
        metrics["train_loss"] = float(last["train_loss"])
        return EvalResult(score=metrics["accuracy"], metrics=metrics, curve=stats.curve, cost=cost,
                          train_seconds=stats.train_seconds, eval_seconds=stats.eval_seconds)
