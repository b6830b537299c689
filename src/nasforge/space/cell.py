"""The cell space: one DAG cell, repeated in a fixed NAS-Bench-201 style skeleton.

A cell has ``n_nodes`` nodes: node 0 is the cell's input, the last node its output, and every
node ``j`` is the sum of ``op(node i)`` over all ``i < j``. The search chooses one operation per
edge, so a sample is flat: ``{"edge_1_0": "nor_conv_3x3", "edge_2_0": "none", ...}``, in
NAS-Bench-201 edge order (1<-0 | 2<-0, 2<-1 | 3<-0, 3<-1, 3<-2). The operation names are NB201's,
so a cell converts to and from NB201 architecture strings and can be looked up in its tables.

The skeleton around the cell is fixed per space: a 3x3 conv stem with batch-norm, ``n_stages``
stages of ``cells_per_stage`` cells at ``C, 2C, 4C, ...`` channels, a ResNet reduction block between
stages, then BN, ReLU, global average pooling and a linear classifier. With
:meth:`CellSpace.nas_bench_201` (registry name ``"nb201"``) it is exactly NB201's network.

The same space builds 2-D images (Conv2d) and 1-D sequences (Conv1d); flat inputs are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.space.base import check_values, limit_options, limit_reason, mutate_one, uniform_crossover
from nasforge.space.params import Choice, choice, sample_all
from nasforge.types import Sample

if TYPE_CHECKING:
    from torch import nn

    from nasforge.space.cell_nn import Nd

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
OPS = NB201_OPS  # every operation the builder knows; a space may use any subset
ZERO = "#"  # a zero term in :meth:`CellSpace.key`, as NB201's unique strings write it


def edge_name(j: int, i: int) -> str:
    """Dimension name of the edge into node ``j`` from node ``i``."""
    return f"edge_{j}_{i}"


def edge_names(n_nodes: int) -> list[str]:
    """All edge names in NB201 order: by target node, then by source node."""
    return [edge_name(j, i) for j in range(1, n_nodes) for i in range(j)]


class CellSpace:
    """One operation per edge of a DAG cell; the macro skeleton is set when the space is made."""

    kind = "cell"
    flat_ok = False  # images and sequences only: make_space refuses flat (tabular) input by this

    def __init__(
        self,
        *,
        n_nodes: int = 4,
        ops: Sequence[str] = NB201_OPS,
        channels: int = 16,
        n_stages: int = 3,
        cells_per_stage: int = 1,
        max_params: int | None = None,
        max_flops: int | None = None,
        min_params: int | None = None,
    ) -> None:
        ops = tuple(str(o) for o in ops)
        if not ops:
            raise ValueError("space.ops is empty: give at least one operation")
        bad = [o for o in ops if o not in OPS]
        if bad:
            raise ValueError(f"space.ops has unknown value(s) {bad}: choose from {list(OPS)}")
        if ops == ("none",):
            raise ValueError("space.ops allows only 'none': every cell would be disconnected")
        if not 2 <= n_nodes <= 10:
            raise ValueError(f"space.n_nodes must be between 2 and 10 (input, output and the nodes between), "
                             f"got {n_nodes}")
        for name, v, hi in (("channels", channels, 4096), ("n_stages", n_stages, 8),
                            ("cells_per_stage", cells_per_stage, 64)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
                raise ValueError(f"space.{name} must be an integer between 1 and {hi}, got {v!r}")
        self.n_nodes, self.ops = n_nodes, ops
        self.channels, self.n_stages, self.cells_per_stage = channels, n_stages, cells_per_stage
        self.min_params, self.max_params, self.max_flops = limit_options(min_params, max_params, max_flops)
        c = choice(ops)
        self._dims: dict[str, Choice] = {name: c for name in edge_names(n_nodes)}

    @classmethod
    def nas_bench_201(cls, **kw: Any) -> NasBench201Space:
        """NB201's space and skeleton exactly (4 nodes, its 5 ops, C=16, 3 stages of 5 cells)."""
        return NasBench201Space(**kw)

    # ------------------------------------------------------------------ the SearchSpace protocol
    def dims(self) -> Mapping[str, Choice]:
        return self._dims

    def active(self, s: Sample) -> list[str]:
        """Every edge: even an edge off all input-output paths builds its op (as NB201 does)."""
        return list(self._dims)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform over operations, independently per edge (NB201's random search)."""
        return sample_all(self._dims, rng)

    def mutate(self, s: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Change one edge to another operation (NB201's REA mutation)."""
        return mutate_one(self._dims, self._dims, s, rng)

    def crossover(self, a: Sample, b: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform crossover: each edge's operation comes from one parent."""
        return uniform_crossover(self._dims, a, b, rng)

    def key(self, s: Sample) -> str:
        """Canonical text of the cell in NB201's convention (equal to the benchmark's ``unique_str``).

        The output node is expanded into a sum of terms, each term the chain of operations applied
        along one path, so relabelling intermediate nodes changes nothing and the sums are sorted.
        A skip edge passes its input's text through unchanged; a ``none`` edge, or any edge fed by
        a node that is exactly one zero term, gives a zero term ``#``; so edges that cannot reach
        the output leave no trace beyond a ``#``. Like NB201 (and so that keys group the 15,625
        NB201 cells into its 6,466 classes) the zero terms are counted, a sum of zeros is not
        recognised as zero and skip-passed sums stay one term in the sort. So some cells that
        compute the same function keep different keys, among them most swaps of nodes 1 and 2
        (the ``none`` edge 2<-1 leaves a ``#`` on node 2 only); :meth:`function_key` merges them.
        """
        node = ["0"]
        for j in range(1, self.n_nodes):
            terms = []
            for i in range(j):
                op = s[edge_name(j, i)]
                if op == "none" or node[i] == ZERO:
                    terms.append(ZERO)
                elif op == "skip_connect":
                    terms.append(node[i])
                else:
                    terms.append(f"({node[i]})@{op}")
            node.append("+".join(sorted(terms)))
        return node[-1]

    def function_key(self, s: Sample) -> str:
        """A coarser canonical text: equal whenever two cells compute the same function.

        Skip edges are transparent, sums are flattened and zeros vanish, taking an operation of an
        all-zero node as zero (exact for pooling; a conv adds only its constant batch-norm shift).
        "" means the output is disconnected from the input. On NB201 this gives 4,930 classes,
        each a union of :meth:`key` classes.
        """
        return "+".join(self._terms(s)[-1])

    def _terms(self, s: Sample) -> list[tuple[str, ...]]:
        """Per node, the sorted terms of its value as a sum over input-to-node paths (empty = zero)."""
        node: list[tuple[str, ...]] = [("x",)]
        for j in range(1, self.n_nodes):
            terms: list[str] = []
            for i in range(j):
                op = s[edge_name(j, i)]
                if op == "none" or not node[i]:
                    continue
                if op == "skip_connect":
                    terms.extend(node[i])
                else:
                    terms.append(f"{op}({'+'.join(node[i])})")
            node.append(tuple(sorted(terms)))
        return node

    def describe(self, s: Sample) -> str:
        """The NB201 architecture string: readable, and pasteable into NB201 tools."""
        return self.to_arch_str(s)

    def to_arch_str(self, s: Sample) -> str:
        """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: one ``|...|`` group per node, edges by source."""
        groups = ("|" + "|".join(f"{s[edge_name(j, i)]}~{i}" for i in range(j)) + "|" for j in range(1, self.n_nodes))
        return "+".join(groups)

    def from_arch_str(self, arch: str) -> dict[str, Any]:
        """The sample for an NB201-style architecture string (ValueError if it is not one of this space)."""
        groups = arch.strip().split("+")
        if len(groups) != self.n_nodes - 1:
            raise ValueError(f"architecture string has {len(groups)} node groups, this space has "
                             f"{self.n_nodes - 1}: {arch!r}")
        out: dict[str, Any] = {}
        for j, group in enumerate(groups, start=1):
            if len(group) < 2 or group[0] != "|" or group[-1] != "|":
                raise ValueError(f"node group {group!r} must look like |op~0|op~1|")
            seen = set()
            for edge in group[1:-1].split("|"):
                op, sep, src = edge.partition("~")
                if not sep or not src.isdigit() or int(src) >= j or int(src) in seen:
                    raise ValueError(f"edge {edge!r} of node {j} must be op~i with each i < {j} once")
                if op not in self.ops:
                    raise ValueError(f"operation {op!r} is not in this space's ops {list(self.ops)}")
                seen.add(int(src))
                out[edge_name(j, int(src))] = op
            if len(seen) != j:
                raise ValueError(f"node {j} needs an edge from each of nodes 0..{j - 1}, got {group!r}")
        return {name: out[name] for name in self._dims}

    def validate_sample(self, s: Sample) -> None:
        """Raise ValueError if ``s`` lacks an edge or uses an operation outside the space."""
        check_values(self._dims, s, self._dims)

    def check(self, s: Sample, input_shape: tuple[int, ...], n_out: int = 10) -> str | None:
        """Why the sample cannot become a useful network for this input, or None.

        ``n_out`` (the number of classes) sizes the output layer for the parameter limit.
        """
        try:
            self.validate_sample(s)
        except (ValueError, KeyError) as e:
            return f"not a point of this space: {e}"
        if len(input_shape) not in (2, 3):
            return (f"the cell space needs image (C, H, W) or sequence (C, L) input, got shape {input_shape}; "
                    "use the chain space for flat (tabular) data")
        if not self._terms(s)[-1]:
            return "cell output is disconnected from its input: every path has a 'none' edge"
        spatial = list(input_shape[1:])
        for r in range(1, self.n_stages):
            if min(spatial) < 2:
                size = "x".join(map(str, input_shape[1:]))
                return (f"input {size} is too small for {self.n_stages - 1} stride-2 reductions: it is "
                        f"{'x'.join(map(str, spatial))} before reduction {r}; use fewer stages or larger input")
            spatial = [(d + 1) // 2 for d in spatial]
        return limit_reason(lambda: self.build(s, input_shape, n_out), input_shape, self.max_params, self.max_flops,
                            self.min_params)

    def build(self, s: Sample, input_shape: tuple[int, ...], n_out: int) -> nn.Sequential:
        """The network for ``s``: stem, stages of cells with reductions between, head; a plain Sequential."""
        from nasforge.space.cell_nn import Cell, make_op

        ops = [(j, i, s[edge_name(j, i)]) for j in range(1, self.n_nodes) for i in range(j)]
        return self.skeleton(input_shape, n_out, lambda c, nd: Cell(
            [(j, i, make_op(op, c, nd)) for j, i, op in ops if op != "none"], self.n_nodes))

    def skeleton(self, input_shape: tuple[int, ...], n_out: int,
                 make_cell: Callable[[int, Nd], nn.Module]) -> nn.Sequential:
        """Stem, stages of ``make_cell(channels, nd)`` with reductions between, head.

        Shared by :meth:`build` and the DARTS supernet, so the network a one-shot search trains is
        the discrete network with each cell replaced, and nothing else.
        """
        from nasforge.space.cell_nn import skeleton

        return skeleton(input_shape, n_out, make_cell, channels=self.channels, n_stages=self.n_stages,
                        cells_per_stage=self.cells_per_stage)


class NasBench201Space(CellSpace):
    """NAS-Bench-201's topology space and network exactly; only cost limits can be added."""

    kind = "nb201"

    def __init__(self, *, max_params: int | None = None, max_flops: int | None = None,
                 min_params: int | None = None) -> None:
        super().__init__(n_nodes=4, ops=NB201_OPS, channels=16, n_stages=3, cells_per_stage=5,
                         max_params=max_params, max_flops=max_flops, min_params=min_params)
