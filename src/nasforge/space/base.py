"""The SearchSpace protocol every space implements (chain today, cells next)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import nn

from nasforge.space.params import Choice
from nasforge.types import Sample


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


def limit_reason(build: Callable[[], nn.Module], input_shape: tuple[int, ...], max_params: int | None,
                 max_flops: int | None) -> str | None:
    """Why a candidate exceeds the parameter or FLOP limit, or None; builds it on the meta device (no memory)."""
    if max_params is None and max_flops is None:
        return None
    import torch

    from nasforge.evaluate.cost import count_flops, count_params

    with torch.device("meta"):
        model = build()
    if max_params is not None:
        n = count_params(model)
        if n > max_params:
            return f"{n:,} parameters exceed the limit of {max_params:,}"
    if max_flops is not None:
        f = count_flops(model, input_shape, device="meta")
        if f > max_flops:
            return f"{f:,} FLOPs exceed the limit of {max_flops:,}"
    return None
