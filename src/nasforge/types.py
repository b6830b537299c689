"""Typed records that flow through the search: samples, budgets, costs, results and trials.

Everything here is frozen and JSON-serialisable through ``to_json``/``from_json`` so the store,
the strategies and remote workers all see the same shapes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

Sample = Mapping[str, Any]
"""A flat, JSON-serialisable point of a search space: one entry per named dimension."""


class TrialState(str, enum.Enum):
    """Explicit lifecycle of a trial; only COMPLETE trials carry a score."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


@dataclass(frozen=True)
class Budget:
    """How much training a trial gets: epochs over a fraction of the training split.

    For tabular benchmarks one query is one unit and both fields are ignored.
    """

    epochs: float = 1.0
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"budget epochs must be a positive number, got {self.epochs!r}")
        if not (0 < self.fraction <= 1):
            raise ValueError(f"budget fraction must be in (0, 1], got {self.fraction!r}")

    def to_json(self) -> dict[str, float]:
        return {"epochs": self.epochs, "fraction": self.fraction}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Budget:
        return cls(epochs=float(d.get("epochs", 1.0)), fraction=float(d.get("fraction", 1.0)))


@dataclass(frozen=True)
class Cost:
    """What a network costs to deploy: parameters, FLOPs per example and measured latency."""

    params: int
    flops: int
    latency_ms: float | None = None
    latency_device: str | None = None  # where the latency was measured (cpu, cuda:0); None in older records
    latency_int8_ms: float | None = None  # its int8 version's CPU latency (objective latency_int8); None: unmeasured

    def to_json(self) -> dict[str, Any]:
        return {"params": self.params, "flops": self.flops, "latency_ms": self.latency_ms,
                **({"latency_device": self.latency_device} if self.latency_device is not None else {}),
                **({"latency_int8_ms": self.latency_int8_ms} if self.latency_int8_ms is not None else {})}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Cost:
        lat, dev, int8 = d.get("latency_ms"), d.get("latency_device"), d.get("latency_int8_ms")
        return cls(params=int(d["params"]), flops=int(d["flops"]), latency_ms=None if lat is None else float(lat),
                   latency_device=None if dev is None else str(dev),
                   latency_int8_ms=None if int8 is None else float(int8))


@dataclass(frozen=True)
class EvalResult:
    """What an evaluator returns for one trained candidate.

    ``score`` is the search signal (higher is better, validation accuracy by default);
    ``curve`` holds one metrics mapping per epoch; ``hidden`` holds numbers that must never reach a
    strategy (for example a tabular benchmark's final test accuracy), kept for reporting only.
    """

    score: float
    metrics: Mapping[str, float]
    curve: tuple[Mapping[str, float], ...] = ()
    cost: Cost | None = None
    hidden: Mapping[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


@dataclass(frozen=True)
class Suggestion:
    """A strategy's answer to ``ask``: what to try, and optionally a budget it asks for."""

    sample: Sample
    budget: Budget | None = None
    screen: bool = True  # False: the user asked for it (a warm start), so no proxy screen may drop it


@dataclass(frozen=True)
class Trial:
    """One candidate's whole record. Replace, never mutate: ``trial.with_(state=...)``."""

    number: int
    key: str
    sample: Sample
    state: TrialState
    budget: Budget = field(default_factory=Budget)
    score: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    curve: tuple[Mapping[str, float], ...] = ()
    cost: Cost | None = None
    hidden: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None
    started: float | None = None
    finished: float | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    rungs: tuple[float, ...] = ()  # the score reached on each rung of a scheduler's ladder, lowest first

    def with_(self, **changes: Any) -> Trial:
        return replace(self, **changes)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def ok(self) -> bool:
        return self.state is TrialState.COMPLETE and self.score is not None

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = ("auto", CLASSIFICATION, REGRESSION)  # auto: regression where the labels are numbers but not whole ones


# what a classification search can rank by (``search.metric``): accuracy counts every
# example alike; balanced accuracy (the mean recall over the classes, scikit-learn's ``balanced_accuracy_score``)
# and macro F1 count every class alike, so a network that never predicts a rare class is not ranked first
METRICS = ("accuracy", "balanced_accuracy", "f1")
# each metric in words (captions, the best trial's line) and short (table columns, progress lines)
METRIC_WORDS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "f1": "macro F1"}
METRIC_SHORT = {"accuracy": "acc", "balanced_accuracy": "bacc", "f1": "f1"}


def score_metric(score: float | None, metrics: Mapping[str, Any], metric: str = "accuracy") -> str:
    """Which metric a classification trial's score is, to name it: ``metric`` (what the search ranks by) where the
    trial's metrics hold it at that value, else the first of :data:`METRICS` that does (so a caller that does not
    know the ranking still names the figure truthfully), else ``metric`` (a table benchmark's score, say)."""
    for name in dict.fromkeys((metric, *METRICS)):
        if name in metrics and metrics[name] == score:
            return name
    return metric


def check_metric(metric: Any, where: str = "search.metric") -> str:
    """``metric`` where it is one of :data:`METRICS`, else a one-line ConfigError naming them (torch-free)."""
    if isinstance(metric, str) and metric in METRICS:
        return metric
    import difflib

    from nasforge.errors import ConfigError

    close = difflib.get_close_matches(str(metric), METRICS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"{where} must be {', '.join(METRICS)}, got {metric!r}{hint}")


def check_task(task: Any, where: str = "data.task", error: type[Exception] | None = None) -> str:
    """``task`` when it is one of :data:`TASKS`, else a one-line error (``error``, DataError by default) naming
    the choices; torch-free, so the config checks it with the same words as the data loader."""
    if isinstance(task, str) and task in TASKS:
        return task
    import difflib

    from nasforge.errors import DataError

    close = difflib.get_close_matches(str(task), TASKS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise (error or DataError)(f"{where} must be auto (regression for labels that are not whole numbers), "
                               f"classification or regression, got {task!r}{hint}")
