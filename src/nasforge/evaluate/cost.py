"""What a network costs: parameters, FLOPs (torch's own counter) and latency, measured on the model's device."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasforge.evaluate.device import model_device, synchronize
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
    """Median wall-clock milliseconds per example of inference at ``batch`` (1 = online serving), on the device
    the model is on (a GPU's queue is drained before and after each pass, so the time is the pass's own)."""
    was_training = model.training
    model.eval()
    dev = model_device(model)
    x = torch.randn((batch, *input_shape)).to(dev)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            synchronize(dev)
            t0 = time.perf_counter()
            model(x)
            synchronize(dev)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    model.train(was_training)
    return 1000.0 * statistics.median(times) / batch


def measure_cost(model: nn.Module, input_shape: tuple[int, ...], *, latency: bool = True) -> Cost:
    """Params, FLOPs and (optionally) latency of a model on its device, in one record that names the device."""
    params = count_params(model)
    dev = model_device(model)
    flops = count_flops(model, input_shape, device=dev)
    lat = measure_latency_ms(model, input_shape) if latency else None
    return Cost(params=params, flops=flops, latency_ms=lat, latency_device=str(dev) if latency else None)
