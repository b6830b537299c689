"""The stage space's torch half: ResNet and MobileNet blocks and the builder of a stage network.

Apart from :mod:`nasforge.space.stage` so the space (sampling, keys, descriptions) imports no torch;
:meth:`StageSpace.build <nasforge.space.stage.StageSpace.build>` imports this module when it builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nasforge.space.cell_nn import Nd


def build_stages(stages: Sequence[Mapping[str, Any]], stem: int, input_shape: tuple[int, ...],
                 n_out: int) -> nn.Sequential:
    """Stem, one ``nn.Sequential`` per stage (``StageSpace.stages``), global average pooling, linear."""
    rank = len(input_shape) - 1
    if rank not in (1, 2):
        raise ValueError(f"the stage space builds image or sequence networks, not input shape {input_shape}")
    nd = Nd(rank)
    c = stem
    layers: list[nn.Module] = [nd.conv(input_shape[0], c, 3, padding=1, bias=False), nd.bn(c), nn.ReLU()]
    for st in stages:
        mods: list[nn.Module] = []
        stride = 2 if st.get("down") == "stride" else 1
        if st.get("down") == "pool":
            mods.append(nd.max(3, stride=2, padding=1))
        for j in range(st["depth"]):
            mods.append(make_block(st, c, st["width"], stride if j == 0 else 1, nd))
            c = st["width"]
        layers.append(nn.Sequential(*mods))
    layers += [nd.gap(1), nn.Flatten(), nn.Linear(c, n_out)]
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """``act(body(x) + shortcut(x))``: ResNet's basic block (act = ReLU) and MobileNetV2's inverted
    residual (act = identity); the shortcut is the identity or a strided 1x1 conv with batch-norm."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut, self.act = body, shortcut, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): ``x`` times a per-channel gate computed from its global average."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def squeeze_excite(c: int, nd: Nd) -> SqueezeExcite:
    """SE over ``c`` channels, squeezed to a quarter (at least 8), as MobileNetV3 sizes it."""
    mid = max(8, c // 4)
    return SqueezeExcite(nn.Sequential(nd.gap(1), nd.conv(c, mid, 1), nn.ReLU(), nd.conv(mid, c, 1), nn.Sigmoid()))


def make_block(st: Mapping[str, Any], c_in: int, c_out: int, stride: int, nd: Nd) -> nn.Module:
    """One block of a stage: ``basic`` (ResNet) or ``inverted`` (MobileNetV2), SE on its residual branch."""
    k = int(st["kernel"])
    if st["block"] == "basic":
        body: list[nn.Module] = [nd.conv(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nd.bn(c_out),
                                 nn.ReLU(), nd.conv(c_out, c_out, k, padding=k // 2, bias=False), nd.bn(c_out)]
        if st["se"]:
            body.append(squeeze_excite(c_out, nd))
        short: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:  # option B: project only where the shape changes
            short = nn.Sequential(nd.conv(c_in, c_out, 1, stride=stride, bias=False), nd.bn(c_out))
        return ResBlock(nn.Sequential(*body), short, nn.ReLU())
    if st["block"] != "inverted":  # pragma: no cover - guarded by the space
        raise ValueError(f"unknown block type {st['block']!r}")
    hidden = c_in * int(st["expand"])
    body = []
    if hidden != c_in:
        body += [nd.conv(c_in, hidden, 1, bias=False), nd.bn(hidden), nn.ReLU6()]
    body += [nd.conv(hidden, hidden, k, stride=stride, padding=k // 2, groups=hidden, bias=False), nd.bn(hidden),
             nn.ReLU6()]
    if st["se"]:
        body.append(squeeze_excite(hidden, nd))
    body += [nd.conv(hidden, c_out, 1, bias=False), nd.bn(c_out)]
    if stride == 1 and c_in == c_out:
        return ResBlock(nn.Sequential(*body), nn.Identity(), nn.Identity())
    return nn.Sequential(*body)
