"""Measured training speed: seconds per optimizer step of a network on this machine and this data.

Cost is not FLOPs on a CPU (a depthwise conv does a tenth of a dense one's work and takes as long),
so ``nasforge auto`` plans from these timings, and ``search.equal_time`` gives each candidate the
epochs it would get in the reference's time.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch

from nasforge.data.base import Dataset
from nasforge.evaluate.cost import count_params
from nasforge.evaluate.device import place, resolve_device
from nasforge.evaluate.trainer import Recipe, train


@dataclass(frozen=True)
class Timing:
    """Measured seconds per optimizer step of one network at one batch size, on this machine."""

    seconds_per_step: float
    steps: int
    params: int
    parts: tuple[float, ...] = ()  # seconds per step of each timed part; seconds_per_step is their median

    def epoch_seconds(self, n: int, batch: int) -> float:
        return self.seconds_per_step * math.ceil(n / min(batch, n))


def probe_window(seconds: float) -> float:
    """Seconds to time a network over, for a phase of ``seconds``: 0.3% of it, 2..10 s. Short windows are
    noisy both ways on a shared machine (a 2 s window read ResNet-20 on Fashion-MNIST at 77 s an epoch
    where an hour of training then ran at ~97 s), so fixed-time trainings also watch their own pace
    (:func:`~nasforge.evaluate.trainer.train`'s ``deadline``)."""
    return min(10.0, max(2.0, 0.003 * seconds))


def time_steps(model: torch.nn.Module, data: Dataset, recipe: Recipe, *, window: float = 2.0,
               max_steps: int | None = None, parts: int = 3) -> Timing:
    """Seconds per training step of ``model`` with ``recipe``, over a sustained window after two warm-up steps.

    Trains a copy on real batches of the training split (with its augmentation), so the figure is
    what the search and the final training will pay per step, not a FLOP estimate. The window is
    timed in ``parts`` parts (the first the whole window, the others half of it) and the median part
    kept: on a 2-core machine a few seconds of another process slow two-thread training several times
    over (a 1h plan once read ResNet-20 at 13 minutes an epoch instead of 1.5 and refused to run), and
    one disturbed part must not become the plan. ``parts=1``: the window alone (equal_time's quick
    timing of each candidate). It trains on the recipe's device and precision, as the real training will.
    """
    max_steps = max_steps or int(30 * window)
    model = copy.deepcopy(model)
    x, y = place((data.x_train, data.y_train), resolve_device(recipe.device))  # once, not once a timed part
    bs = min(recipe.batch_size, len(x))
    common: dict[str, Any] = {"recipe": recipe, "n_classes": data.n_classes, "flip_invariant": data.flip_invariant,
                              "target": data.target}
    train(model, x[: 2 * bs], y[: 2 * bs], epochs=1, **common)  # warm-up: allocator, kernels, threads
    # one step first, to size the window: where a step outlasts the window (5 s a step of ResNet-1d on 4096-step
    # sequences) four steps, then two parts of two, took 51 s of a 1-minute budget; one step a part takes half
    steps = 1
    while True:  # grow the window until it lasts ``window`` seconds (small data: several epochs of it)
        n = min(len(x), steps * bs)
        stats = train(model, x[:n], y[:n], epochs=steps / math.ceil(n / bs), **common)
        seconds = stats.train_seconds
        if seconds >= window or steps >= max_steps:
            steps = stats.steps
            break
        steps = min(max_steps, max(steps * 2, int(steps * window / max(seconds, 1e-3)) + 1))
    paces = [seconds / max(steps, 1)]
    half = max(1, steps // 2)
    n = min(len(x), half * bs)
    for _ in range(parts - 1):
        stats = train(model, x[:n], y[:n], epochs=half / math.ceil(n / bs), **common)
        paces.append(stats.train_seconds / max(stats.steps, 1))
        steps += stats.steps
    return Timing(statistics.median(paces), steps, count_params(model), tuple(paces))
