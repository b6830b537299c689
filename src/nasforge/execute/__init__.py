"""Executors: where trials run. The driver (strategy, scheduler, store) stays in one process.

``EXECUTORS`` is the registry: ``inline`` (the default; one trial at a time in the driver, trial-for-
trial reproducible), ``pool`` (local worker processes) and ``ray`` (Ray actors, local or on a
cluster). Each takes an evaluator factory, builds one evaluator per worker, and implements
:class:`~nasforge.execute.base.Executor`: ``submit(job)``, ``wait(timeout) -> outcomes``,
``last_seen()``, ``progress()`` (each running trial's latest epoch; optional) and ``shutdown()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nasforge.errors import ConfigError
from nasforge.execute.base import (
    Evaluator,
    EvaluatorFactory,
    Executor,
    ExecutorError,
    Job,
    Outcome,
    TrialTimeout,
    run_job,
)
from nasforge.execute.inline import InlineExecutor


def _pool(factory: EvaluatorFactory, **options: Any) -> Executor:
    from nasforge.execute.pool import PoolExecutor

    return PoolExecutor(factory, **options)


def _ray(factory: EvaluatorFactory, **options: Any) -> Executor:
    from nasforge.execute.ray_executor import RayExecutor

    return RayExecutor(factory, **options)


def _inline(factory: EvaluatorFactory, **options: Any) -> Executor:
    workers = options.pop("workers", 1)
    if workers != 1:
        raise ConfigError(f"executor kind inline runs one trial at a time, not workers={workers!r}; "
                          "use kind: pool for more")
    options.pop("threads_per_worker", None)  # inline leaves torch's thread count alone unless told
    options.pop("heartbeat_interval", None)
    options.pop("stale_after", None)
    if options:
        raise ConfigError(f"executor kind inline takes no {', '.join(map(repr, options))}")
    return InlineExecutor(factory())


EXECUTORS: dict[str, Callable[..., Executor]] = {"inline": _inline, "pool": _pool, "ray": _ray}


def make_executor(kind: str, factory: EvaluatorFactory, **options: Any) -> Executor:
    """An executor by registry name; ``options`` are its keyword arguments (workers, threads_per_worker, ...)."""
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor kind {kind!r}: choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[kind](factory, **options)


__all__ = ["EXECUTORS", "Evaluator", "EvaluatorFactory", "Executor", "ExecutorError", "InlineExecutor", "Job",
           "Outcome", "TrialTimeout", "make_executor", "run_job"]
