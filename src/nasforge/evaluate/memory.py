"""Training memory of a candidate, estimated before training from its parameters and activations.

The estimate (in bytes, float32) is

    parameters * 4 * (1 weights + 1 gradients + optimiser states: 2 for Adam/AdamW, 1 for SGD)
  + batch_size * activations * 4 * 2   (every layer's output, kept for backward, and its gradient)
  + batch_size * input * 4             (the batch itself)

or, if larger, the evaluation pass: 1024 examples without gradients, the two largest consecutive
layer outputs alive at once. ``activations`` sums the output sizes of every leaf module for one
example, measured on the meta device (no memory is touched). It leaves out the allocator's slack and
the process's fixed cost (torch itself, the data): set ``search.max_memory_mb`` with room for those.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import nn

from nasforge.space.base import SearchSpace
from nasforge.types import Sample

EVAL_BATCH = 1024  # predict()'s batch size


def activation_sizes(model: nn.Module, input_shape: tuple[int, ...]) -> list[int]:
    """Elements of each leaf module's output for one example, in call order (meta device: no memory)."""
    sizes: list[int] = []

    def hook(_: nn.Module, __: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return sizes


def estimate_bytes(build: Callable[[], nn.Module], input_shape: tuple[int, ...], *, batch_size: int,
                   optimizer: str = "adam") -> int:
    """The estimate described in the module docstring."""
    with torch.device("meta"):
        model = build()
    params = sum(p.numel() for p in model.parameters())
    states = 1 if optimizer == "sgd" else 2
    acts = activation_sizes(model, input_shape)
    inp = math.prod(input_shape)
    train = 4 * (params * (2 + states) + batch_size * (2 * sum(acts) + inp))
    pairs = max((a + b for a, b in itertools.pairwise(acts)), default=sum(acts))
    evaluate = 4 * (params + EVAL_BATCH * (pairs + inp))
    return int(max(train, evaluate))


def memory_limit(space: SearchSpace, input_shape: tuple[int, ...], n_out: int, limit_mb: float, *,
                 batch_size: int, optimizer: str = "adam") -> Callable[[Sample], str | None]:
    """A check for the loop: why a candidate's estimated training memory is over ``limit_mb``, or None."""

    def check(s: Sample) -> str | None:
        mb = estimate_bytes(lambda: space.build(s, input_shape, n_out), input_shape, batch_size=batch_size,
                            optimizer=optimizer) / 2 ** 20
        if mb > limit_mb:
            return f"estimated training memory {mb:,.0f} MB exceeds search.max_memory_mb {limit_mb:g}"
        return None

    return check
