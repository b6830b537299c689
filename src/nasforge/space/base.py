"""The SearchSpace protocol every space implements (chain today, cells next).

The spaces import no torch: only ``build`` (and ``check`` under a size limit) loads it, from the
``*_nn`` modules, so reading a database (``nasforge status``) stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from nasforge.space.params import Choice
from nasforge.types import Sample

if TYPE_CHECKING:
    from torch import nn


@runtime_checkable
class SearchSpace(Protocol):
    kind: str

    def dims(self) -> Mapping[str, Choice]: ...
    def active(self, s: Sample) -> list[str]: ...
    def sample(self, rng: np.random.Generator) -> dict[str, Any]: ...
    def mutate(self, s: Sample, rng: np.random.Generator) -> dict[str, Any]: ...
    def crossover(self, a: Sample, b: Sample, rng: np.random.Generator) -> dict[str, Any]: ...
    def key(self, s: Sample) -> str: ...
    def describe(self, s: Sample) -> str: ...
    def check(self, s: Sample, input_shape: tuple[int, ...], n_out: int = 10) -> str | None: ...
    def build(self, s: Sample, input_shape: tuple[int, ...], n_out: int) -> nn.Module: ...


def check_values(dims: Mapping[str, Choice], s: Sample, names: Iterable[str]) -> None:
    """Raise ValueError if ``s`` lacks a dimension of ``dims`` or holds a value outside one of ``names``."""
    missing = [n for n in dims if n not in s]
    if missing:
        raise ValueError(f"sample lacks dimension(s) {missing[:5]}")
    for name in names:
        dims[name].index(s[name])


def option_values(name: str, values: Sequence[Any], kind: type, *, allowed: Sequence[Any] | None = None,
                  lo: float | None = None, hi: float | None = None) -> tuple[Any, ...]:
    """A space option's values as a tuple, or a ValueError naming the option: configs are typed by hand,
    so an empty list, a wrong type, a repeat or an out-of-range value is told at once, not at build time."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"space.{name} must be a list of values, got {values!r}")
    vals = tuple(values)
    if not vals:
        raise ValueError(f"space.{name} is empty: give at least one value")
    for v in vals:
        ok = isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise ValueError(f"space.{name} values must be of type {kind.__name__}, got {v!r}")
    vals = tuple(float(v) for v in vals) if kind is float else vals
    if len(set(vals)) != len(vals):
        raise ValueError(f"space.{name} repeats a value: {list(vals)}")
    if allowed is not None:
        bad = [v for v in vals if v not in allowed]
        if bad:
            raise ValueError(f"space.{name} has unknown value(s) {bad}: choose from {list(allowed)}")
    if (lo is not None and min(vals) < lo) or (hi is not None and max(vals) > hi):
        raise ValueError(f"space.{name} values must be between {lo} and {hi}, got {list(vals)}")
    return vals


def limit_option(name: str, value: float | None) -> int | None:
    """A ``min_params``/``max_params``/``max_flops`` option: None (no limit) or a positive integer (``1e6`` from a
    config is fine)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        raise ValueError(f"space.{name} must be a positive integer or null, got {value!r}")
    return int(value)


def limit_options(min_params: float | None, max_params: float | None,
                  max_flops: float | None) -> tuple[int | None, int | None, int | None]:
    """A space's ``(min_params, max_params, max_flops)``, each checked by :func:`limit_option`, and a floor no
    network can meet (above the cap) refused."""
    lo, hi = limit_option("min_params", min_params), limit_option("max_params", max_params)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"space.min_params ({lo:,}) is above space.max_params ({hi:,}): no network fits; lower "
                         "min_params or raise max_params")
    return lo, hi, limit_option("max_flops", max_flops)


def limit_reason(build: Callable[[], nn.Module], input_shape: tuple[int, ...], max_params: int | None,
                 max_flops: int | None, min_params: int | None = None) -> str | None:
    """Why a candidate is outside the parameter or FLOP limits, or None; builds it on the meta device (no memory)."""
    if max_params is None and max_flops is None and min_params is None:
        return None
    import torch

    from nasforge.evaluate.cost import count_flops, count_params

    with torch.device("meta"):
        model = build()
    if max_params is not None or min_params is not None:
        n = count_params(model)
        if max_params is not None and n > max_params:
            return f"{n:,} parameters exceed the limit of {max_params:,}"
        if min_params is not None and n < min_params:
            return f"{n:,} parameters are below the floor of {min_params:,} (space.min_params)"
    if max_flops is not None:
        f = count_flops(model, input_shape, device="meta")
        if f > max_flops:
            return f"{f:,} FLOPs exceed the limit of {max_flops:,}"
    return None


def mutate_one(dims: Mapping[str, Choice], names: Iterable[str], s: Sample, rng: np.random.Generator) -> dict[str, Any]:
    """``s`` with one of ``names`` (those with another value to take) changed to another value, chosen uniformly."""
    out = dict(s)
    names = [n for n in names if len(dims[n]) > 1]
    if not names:
        return out
    name = names[int(rng.integers(len(names)))]
    out[name] = dims[name].other(s[name], rng)
    return out


def uniform_crossover(dims: Mapping[str, Choice], a: Sample, b: Sample, rng: np.random.Generator) -> dict[str, Any]:
    """Each dimension from one parent, chosen by a fair coin."""
    return {name: a[name] if rng.random() < 0.5 else b[name] for name in dims}

