"""The cell space's torch half: the layers of a cell network and the skeleton around the cells.

Apart from :mod:`nasforge.space.cell` so the space (sampling, keys, NB201 strings) imports no torch;
:meth:`CellSpace.build <nasforge.space.cell.CellSpace.build>` and the DARTS supernet import it to build.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from nasforge.space.cell import OPS, edge_name


def skeleton(input_shape: tuple[int, ...], n_out: int, make_cell: Callable[[int, Nd], nn.Module], *,
             channels: int, n_stages: int, cells_per_stage: int) -> nn.Sequential:
    """Stem, ``n_stages`` stages of ``make_cell(channels, nd)`` with reductions between, head
    (see :meth:`CellSpace.skeleton <nasforge.space.cell.CellSpace.skeleton>`)."""
    rank = len(input_shape) - 1
    if rank not in (1, 2):
        raise ValueError(f"the cell space builds image or sequence networks, not input shape {input_shape}")
    nd = Nd(rank)
    c = channels
    layers: list[nn.Module] = [nd.conv(input_shape[0], c, 3, padding=1, bias=False), nd.bn(c)]
    for stage in range(n_stages):
        if stage:
            layers.append(ReductionBlock(c, 2 * c, nd))
            c *= 2
        layers += [make_cell(c, nd) for _ in range(cells_per_stage)]
    layers += [nd.bn(c), nn.ReLU(), nd.gap(1), nn.Flatten(), nn.Linear(c, n_out)]
    return nn.Sequential(*layers)


class Nd:
    """The 1-D or 2-D flavour of each layer type, picked once from the input rank."""

    def __init__(self, rank: int) -> None:
        self.conv: Any = {2: nn.Conv2d, 1: nn.Conv1d}[rank]
        self.bn: Any = {2: nn.BatchNorm2d, 1: nn.BatchNorm1d}[rank]
        self.avg: Any = {2: nn.AvgPool2d, 1: nn.AvgPool1d}[rank]
        self.max: Any = {2: nn.MaxPool2d, 1: nn.MaxPool1d}[rank]
        self.gap: Any = {2: nn.AdaptiveAvgPool2d, 1: nn.AdaptiveAvgPool1d}[rank]


def relu_conv_bn(c_in: int, c_out: int, k: int, stride: int, nd: Nd, affine: bool = True) -> nn.Sequential:
    """NB201's ``nor_conv``: ReLU, conv without bias (BN follows), BN."""
    conv = nd.conv(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)
    return nn.Sequential(nn.ReLU(), conv, nd.bn(c_out, affine=affine))


def make_op(name: str, c: int, nd: Nd, affine: bool = True) -> nn.Module:
    """One edge's module; channels and size are kept (stride 1), as every NB201 cell edge does.

    ``affine=False`` drops the BN scale and shift, as DARTS supernets do: a learnable scale inside
    an op would compete with the architecture weight that scales the op's output.
    """
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return relu_conv_bn(c, c, 1, 1, nd, affine)
    if name == "nor_conv_3x3":
        return relu_conv_bn(c, c, 3, 1, nd, affine)
    if name == "avg_pool_3x3":
        return nd.avg(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown cell operation {name!r}: choose from {list(OPS)}")


class Cell(nn.Module):
    """Node j = sum of edge(node i) over the given edges (j, i, module); a missing (``none``) edge adds nothing.

    The discrete network gives one operation per edge, the DARTS supernet a mixed operation.
    """

    def __init__(self, edges: Sequence[tuple[int, int, nn.Module]], n_nodes: int) -> None:
        super().__init__()
        self.n_nodes = n_nodes
        self.edges = nn.ModuleDict({edge_name(j, i): m for j, i, m in edges})
        self.wiring = [(j, i, edge_name(j, i)) for j, i, _ in edges]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, self.n_nodes):
            acc: torch.Tensor | None = None
            for jj, i, name in self.wiring:
                if jj == j:
                    y = self.edges[name](nodes[i])
                    acc = y if acc is None else acc + y
            nodes.append(torch.zeros_like(x) if acc is None else acc)  # all-'none' node: zeros, as in NB201
        return nodes[-1]


class ReductionBlock(nn.Module):
    """NB201's ResNet basic block with stride 2 between stages: doubles channels, halves the size.

    The shortcut's 2x2 average pool rounds up (ceil_mode) so odd sizes (28 -> 14 -> 7 -> 4) match
    the stride-2 conv; even sizes, NB201's own, are unaffected.
    """

    def __init__(self, c_in: int, c_out: int, nd: Nd) -> None:
        super().__init__()
        self.conv_a = relu_conv_bn(c_in, c_out, 3, 2, nd)
        self.conv_b = relu_conv_bn(c_out, c_out, 3, 1, nd)
        self.shortcut = nn.Sequential(nd.avg(2, stride=2, ceil_mode=True), nd.conv(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))
