"""The MLP space's torch half: the builder of a multilayer perceptron.

Apart from :mod:`nasforge.space.mlp` so the space (sampling, keys, descriptions) imports no torch;
:meth:`MlpSpace.build <nasforge.space.mlp.MlpSpace.build>` imports this module when it builds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from nasforge.space.chain_nn import ACTIVATIONS, Residual


def build_mlp(widths: Sequence[int], norm: str, act: str, dropout: float, residual: bool,
              input_shape: tuple[int, ...], n_out: int, *, weight_decay: float | None = None) -> nn.Sequential:
    """Hidden layers of ``widths`` (a skip around each one that keeps the width, where ``residual``), then a
    linear head; a ``weight_decay`` is carried on the network for the optimizer."""
    layers: list[nn.Module] = []
    if len(input_shape) != 1:
        layers.append(nn.Flatten())
    features = math.prod(input_shape)
    layer = ACTIVATIONS[act]
    for i, w in enumerate(widths):
        mods: list[nn.Module] = [nn.Linear(features, w, bias=norm != "batch")]
        if norm == "batch":
            mods.append(nn.BatchNorm1d(w))
        elif norm == "layer":
            mods.append(nn.LayerNorm(w))
        mods.append(layer())
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        if residual and i > 0 and w == features:  # between hidden layers only, as MlpSpace.active says
            layers.append(Residual(nn.Sequential(*mods), nn.Identity()))
        else:
            layers.extend(mods)
        features = w
    layers.append(nn.Linear(features, n_out))
    net = nn.Sequential(*layers)
    if weight_decay is not None:  # the optimizer reads it (trainer.make_optimizer), search and final alike
        setattr(net, "nasforge_weight_decay", weight_decay)  # noqa: B010 (a plain attribute)
    return net
