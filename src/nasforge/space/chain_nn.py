"""The chain space's torch half: its layers and the builder that turns blocks into an ``nn.Sequential``.

Apart from :mod:`nasforge.space.chain` so the space (sampling, keys, descriptions) imports no torch;
:meth:`ChainSpace.build <nasforge.space.chain.ChainSpace.build>` imports this module when it builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasforge.space.chain import ACTIVATION_LAYERS, PARALLEL_KERNELS, Block

ACTIVATIONS: dict[str, type[nn.Module]] = {name: getattr(nn, cls) for name, cls in ACTIVATION_LAYERS.items()}


class Parallel(nn.Module):
    """Branches applied to the same input, then summed or concatenated along channels."""

    def __init__(self, branches: Sequence[nn.Module], merge: str) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        if self.merge == "concat":
            return torch.cat(outs, dim=1)
        total = outs[0]
        for o in outs[1:]:
            total = total + o
        return total


class Residual(nn.Module):
    """``body(x) + shortcut(x)``: the shortcut crops what valid padding removed, then strides and projects
    with a 1x1 convolution only where the shape changes."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, crop: int = 0, stride: int = 1) -> None:
        super().__init__()
        self.body, self.shortcut = body, shortcut
        self.crop, self.stride = crop, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.crop:
            c = self.crop
            y = y[:, :, c:-c] if y.ndim == 3 else y[:, :, c:-c, c:-c]
        if self.stride > 1:
            y = y[:, :, :: self.stride] if y.ndim == 3 else y[:, :, :: self.stride, :: self.stride]
        return self.body(x) + self.shortcut(y)


def build_chain(blocks: Sequence[Block], head: str, input_shape: tuple[int, ...], n_out: int) -> nn.Sequential:
    """Turn blocks into layers, inferring channel counts; rank of ``input_shape`` picks 1-D or 2-D ops."""
    rank = len(input_shape) - 1  # 2 = image, 1 = sequence, 0 = flat
    conv: Any = {2: nn.Conv2d, 1: nn.Conv1d}.get(rank)
    bn_sp: Any = {2: nn.BatchNorm2d, 1: nn.BatchNorm1d}.get(rank)
    maxp: Any = {2: nn.MaxPool2d, 1: nn.MaxPool1d}.get(rank)
    avgp: Any = {2: nn.AvgPool2d, 1: nn.AvgPool1d}.get(rank)
    layers: list[nn.Module] = []
    channels = input_shape[0]
    spatial = list(input_shape[1:])
    flat = rank == 0
    features = input_shape[0] if flat else 0
    learned = False  # whether a conv has made feature maps of its own (before it, channels are the input's)

    def flatten() -> None:
        nonlocal flat, features
        if not flat:
            layers.append(nn.Flatten())
            features = channels * int(np.prod(spatial)) if spatial else channels
            flat = True

    def conv_bn_act(c_in: int, b: Block, k: int, stride: int, pad: int) -> list[nn.Module]:
        bn = b.get("bn")
        mods: list[nn.Module] = [conv(c_in, b.get("width"), k, stride=stride, padding=pad, bias=not bn)]
        if bn:
            mods.append(bn_sp(b.get("width")))
        mods.append(ACTIVATIONS[b.get("act")]())
        return mods

    def shortcut(c_in: int, c_out: int) -> nn.Module:
        return nn.Identity() if c_in == c_out else conv(c_in, c_out, 1, bias=False)

    for b in blocks:
        if b.type == "conv":
            k, st = b.get("kernel"), b.get("stride")
            pad = k // 2 if b.get("padding") == "same" else 0
            mods = conv_bn_act(channels, b, k, st, pad)
            if b.get("skip"):
                layers.append(Residual(nn.Sequential(*mods), shortcut(channels, b.get("width")),
                                       crop=(k - 1) // 2 if pad == 0 else 0, stride=st))
            else:
                layers.extend(mods)
            channels = b.get("width")
            spatial = [(d + 2 * pad - k) // st + 1 for d in spatial]
            learned = True
        elif b.type == "parallel":
            branches = [nn.Sequential(*conv_bn_act(channels, b, k, 1, k // 2))
                        for k in PARALLEL_KERNELS[: b.get("branches")]]
            out_ch = b.get("width") * (len(branches) if b.get("merge") == "concat" else 1)
            par = Parallel(branches, b.get("merge"))
            layers.append(Residual(par, shortcut(channels, out_ch)) if b.get("skip") else par)
            channels = out_ch
            learned = True
        elif b.type == "pool":
            size = b.get("pool_size")
            pad = size // 2 if size > 2 else 0
            if b.get("pool") == "max":
                layers.append(maxp(size, stride=2, padding=pad))
            else:
                layers.append(avgp(size, stride=2, padding=pad, count_include_pad=False))
            spatial = [(d + 2 * pad - size) // 2 + 1 for d in spatial]
        elif b.type == "dense":
            flatten()
            layers.append(nn.Linear(features, b.get("width")))
            layers.append(ACTIVATIONS[b.get("act")]())
            features = b.get("width")
        elif b.type == "dropout":
            # On feature maps drop whole channels: the usual choice for convolutions, and on a CPU it avoids
            # drawing a random number per activation (bernoulli_ was 22% of a training step, profiled).
            # Before any conv the channels are the input's: dropping one would blank whole images of a
            # 1-channel set, so there (input dropout) each value is dropped on its own.
            drop: Any = nn.Dropout if flat or not learned else {2: nn.Dropout2d, 1: nn.Dropout1d}[rank]
            layers.append(drop(b.get("rate")))
        elif b.type == "batchnorm":
            layers.append(nn.BatchNorm1d(features) if flat else bn_sp(channels))
        else:  # pragma: no cover - guarded by the space
            raise ValueError(f"unknown block type {b.type!r}")
    if not flat:
        if head == "gap":
            layers.append(nn.AdaptiveAvgPool2d(1) if rank == 2 else nn.AdaptiveAvgPool1d(1))
            layers.append(nn.Flatten())
            features = channels
        else:
            flatten()
    layers.append(nn.Linear(features, n_out))
    return nn.Sequential(*layers)
