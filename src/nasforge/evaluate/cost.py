"""What a network costs: parameters, FLOPs (torch's own counter) and measured CPU latency."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.types import Cost


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: nn.Module, input_shape: tuple[int, ...], device: str | torch.device = "cpu") -> int:
    """FLOPs of one forward pass of one example, as torch.utils.flop_counter counts them.

    Counted ops are matrix multiplications and convolutions (2 FLOPs per multiply-add); on the meta
    device no memory is touched, so the check is cheap even for large candidates.
    """
    was_training = model.training
    model.eval()
    x = torch.zeros((1, *input_shape), device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


def measure_latency_ms(
    model: nn.Module, input_shape: tuple[int, ...], *, batch: int = 1, repeats: int = 15, warmup: int = 3
) -> float:
    """Median wall-clock milliseconds per example of CPU inference at ``batch`` (1 = online serving)."""
    was_training = model.training
    model.eval()
    x = torch.randn((batch, *input_shape))
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    model.train(was_training)
    return 1000.0 * statistics.median(times) / batch


def measure_cost(model: nn.Module, input_shape: tuple[int, ...], *, latency: bool = True) -> Cost:
    """Params, FLOPs and (optionally) latency of a CPU model, in one record."""
    params = count_params(model)
    flops = count_flops(model, input_shape, device=next(model.parameters()).device if params else "cpu")
    lat = measure_latency_ms(model, input_shape) if latency else None
    return Cost(params=params, flops=flops, latency_ms=lat)
