"""Evaluator factories: what a worker is started with, to build its evaluator (and hold the data) once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nasforge.data.base import Dataset
from nasforge.evaluate.torch_eval import TorchEvaluator, metric_for
from nasforge.evaluate.trainer import Recipe
from nasforge.space.base import SearchSpace


@dataclass(frozen=True)
class TorchEvaluatorFactory:
    """Builds a :class:`TorchEvaluator` over ``data`` (its search view: the test split never travels)."""

    data: Dataset
    space: SearchSpace
    recipe: Recipe
    seed: int = 0
    measure_latency: bool = True
    schedule_epochs: float | None = None  # the scheduler's, with lr_cycle: full
    interim_validation: int | str = "full"  # what epochs before a budget's last are scored on
    folds: int = 1  # more than one: each trial is scored by cross-validation over train+validation
    equal_time: float | Callable[[], nn.Module] | None = None  # the reference (a builder): budgets in its time
    int8_latency: bool = False  # the latency_int8 objective: each candidate's int8 version is timed too
    metric: str = "accuracy"  # what a classification is ranked by (search.metric)

    def __post_init__(self) -> None:
        if self.data.has_test:
            object.__setattr__(self, "data", self.data.search_view())
        metric_for(self.data, self.metric)  # refused here, in the driver, not in each worker

    def __call__(self) -> TorchEvaluator:
        return TorchEvaluator(self.data, self.space, recipe=self.recipe, seed=self.seed,
                              measure_latency=self.measure_latency, schedule_epochs=self.schedule_epochs,
                              interim_validation=self.interim_validation, folds=self.folds,
                              equal_time=self.equal_time, int8_latency=self.int8_latency,
                              metric=self.metric)
