"""The chain space: a sequence of 1..N blocks (conv, pooling, dense, dropout, batch-norm) and a head.

A sample is flat (``n_blocks``, ``head``, ``b0.type``, ``b0.width``, ...): every block slot holds a
value for every dimension, and only the *active* ones (those of the first ``n_blocks`` slots that
the slot's type uses) shape the network. Keeping inactive values makes mutation of ``n_blocks`` or
of a block's type meaningful (the dormant settings wake up), while :meth:`ChainSpace.key` ignores
them so equivalent networks share one key.

The same space builds 2-D images (Conv2d), 1-D sequences (Conv1d) and flat vectors (dense only):
the rank of the input shape decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.space.base import check_values, limit_options, limit_reason, mutate_one
from nasforge.space.params import Choice, choice, sample_all
from nasforge.types import Sample

if TYPE_CHECKING:
    from torch import nn

BLOCK_TYPES = ("conv", "pool", "dense", "dropout", "batchnorm")
# Opt-in: an Inception-style block of parallel convolutions (kernels 1, 3, 5, ...) summed or concatenated.
EXTRA_TYPES = ("parallel",)
PARALLEL_KERNELS = (1, 3, 5, 7)
# Each activation's torch.nn class, by name: the spaces need only the names, chain_nn.ACTIVATIONS the classes.
ACTIVATION_LAYERS: dict[str, str] = {
    "relu": "ReLU",
    "gelu": "GELU",
    "silu": "SiLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "identity": "Identity",
}
HEADS = ("gap", "flatten")

# Which per-block dimensions each block type uses.
_ACTIVE: dict[str, tuple[str, ...]] = {
    "conv": ("width", "kernel", "stride", "padding", "act", "bn", "skip"),
    "parallel": ("width", "branches", "merge", "act", "bn", "skip"),
    "pool": ("pool", "pool_size"),
    "dense": ("width", "act"),
    "dropout": ("rate",),
    "batchnorm": (),
}


@dataclass(frozen=True)
class Block:
    """One active block, with only the settings its type uses."""

    type: str
    args: tuple[tuple[str, Any], ...]

    def get(self, name: str) -> Any:
        return dict(self.args)[name]

    def describe(self, rank: int = 2) -> str:
        """Short text, e.g. ``conv32 3x3 bn relu``; with ``rank=1`` (sequences) kernels read ``k3``."""
        a = dict(self.args)
        if self.type == "conv":
            s = f"conv{a['width']} " + (f"k{a['kernel']}" if rank == 1 else f"{a['kernel']}x{a['kernel']}")
            s += f"/s{a['stride']}" if a["stride"] != 1 else ""
            s += " valid" if a["padding"] == "valid" else ""
            return s + (" bn" if a["bn"] else "") + f" {a['act']}" + (" +skip" if a["skip"] else "")
        if self.type == "parallel":
            ks = "/".join(str(k) for k in PARALLEL_KERNELS[: a["branches"]])
            return (f"parallel{a['width']} {ks} {a['merge']}" + (" bn" if a["bn"] else "") + f" {a['act']}"
                    + (" +skip" if a["skip"] else ""))
        if self.type == "pool":
            return f"{a['pool']}pool{a['pool_size']}"
        if self.type == "dense":
            return f"dense{a['width']} {a['act']}"
        if self.type == "dropout":
            return f"dropout{a['rate']}"
        return self.type


class ChainSpace:
    """Layer sequences of variable depth; every dimension can be restricted from the config."""

    kind = "chain"
    flat_ok = True  # flat (tabular) input too: make_space keeps the block types it can use

    def __init__(
        self,
        *,
        min_blocks: int = 1,
        max_blocks: int = 8,
        types: Sequence[str] = BLOCK_TYPES,
        widths: Sequence[int] = (16, 32, 64, 128),
        kernels: Sequence[int] = (3, 5, 7),
        strides: Sequence[int] = (1, 2),
        paddings: Sequence[str] = ("same", "valid"),
        activations: Sequence[str] = ("relu", "gelu", "tanh", "sigmoid"),
        pools: Sequence[str] = ("max", "avg"),
        pool_sizes: Sequence[int] = (2, 3),
        dropout_rates: Sequence[float] = (0.1, 0.25, 0.5),
        batch_norm: Sequence[bool] = (True, False),
        heads: Sequence[str] = HEADS,
        skips: Sequence[bool] = (False,),
        branches: Sequence[int] = (2, 3),
        merges: Sequence[str] = ("sum", "concat"),
        max_params: int | None = None,
        max_flops: int | None = None,
        min_params: int | None = None,
        type_probs: Mapping[str, float] | None = None,
        structural_mutation: float = 0.3,
    ) -> None:
        def need(name: str, values: Sequence[Any], allowed: Sequence[Any] | None = None) -> tuple[Any, ...]:
            vals = tuple(values)
            if not vals:
                raise ValueError(f"space.{name} is empty: give at least one value")
            if allowed is not None:
                bad = [v for v in vals if v not in allowed]
                if bad:
                    raise ValueError(f"space.{name} has unknown value(s) {bad}: choose from {list(allowed)}")
            return vals

        if not 1 <= min_blocks <= max_blocks:
            raise ValueError(f"space needs 1 <= min_blocks <= max_blocks, got {min_blocks} and {max_blocks}")
        if max_blocks > 64:
            raise ValueError(f"space.max_blocks={max_blocks} is too deep for a chain: use at most 64")
        self.min_blocks, self.max_blocks = min_blocks, max_blocks
        self.types = need("types", types, BLOCK_TYPES + EXTRA_TYPES)
        self.widths = need("widths", [int(w) for w in widths])
        self.kernels = need("kernels", [int(k) for k in kernels])
        self.strides = need("strides", [int(s) for s in strides])
        self.paddings = need("paddings", paddings, ("same", "valid"))
        self.activations = need("activations", activations, tuple(ACTIVATION_LAYERS))
        self.pools = need("pools", pools, ("max", "avg"))
        self.pool_sizes = need("pool_sizes", [int(p) for p in pool_sizes])
        self.dropout_rates = need("dropout_rates", [float(r) for r in dropout_rates])
        self.batch_norm = need("batch_norm", [bool(b) for b in batch_norm])
        self.heads = need("heads", heads, HEADS)
        self.skips = need("skips", [bool(b) for b in skips])
        self.branches = need("branches", [int(b) for b in branches])
        self.merges = need("merges", merges, ("sum", "concat"))
        if not all(2 <= b <= len(PARALLEL_KERNELS) for b in self.branches):
            raise ValueError(f"space.branches must be between 2 and {len(PARALLEL_KERNELS)}, got {list(self.branches)}")
        for name, vals, lo in (("widths", self.widths, 1), ("kernels", self.kernels, 1), ("strides", self.strides, 1),
                               ("pool_sizes", self.pool_sizes, 2)):
            if min(vals) < lo or max(vals) > 100_000:
                raise ValueError(f"space.{name} values must be between {lo} and 100000, got {list(vals)}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"space.kernels must be odd so 'same' padding is symmetric, got {list(self.kernels)}")
        if not all(0 <= r < 1 for r in self.dropout_rates):
            raise ValueError(f"space.dropout_rates must be in [0, 1), got {list(self.dropout_rates)}")
        self.min_params, self.max_params, self.max_flops = limit_options(min_params, max_params, max_flops)
        if not 0 <= structural_mutation <= 1:
            raise ValueError(f"space.structural_mutation must be in [0, 1], got {structural_mutation}")
        self.structural_mutation = structural_mutation
        self.type_probs: tuple[float, ...] | None = None
        if type_probs is not None:
            unknown = [t for t in type_probs if t not in self.types]
            if unknown:
                raise ValueError(f"space.type_probs names type(s) {unknown} not in space.types {list(self.types)}")
            w = np.array([float(type_probs.get(t, 0.0)) for t in self.types])
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("space.type_probs must be non-negative weights with a positive sum, "
                                 f"got {dict(type_probs)}")
            self.type_probs = tuple(float(x) for x in w / w.sum())
        per_block = {
            "type": choice(self.types), "width": choice(self.widths), "kernel": choice(self.kernels),
            "stride": choice(self.strides), "padding": choice(self.paddings), "act": choice(self.activations),
            "bn": choice(self.batch_norm), "pool": choice(self.pools), "pool_size": choice(self.pool_sizes),
            "rate": choice(self.dropout_rates), "skip": choice(self.skips), "branches": choice(self.branches),
            "merge": choice(self.merges),
        }
        dims: dict[str, Choice] = {"n_blocks": choice(range(min_blocks, max_blocks + 1)), "head": choice(self.heads)}
        for i in range(max_blocks):
            for name, c in per_block.items():
                dims[f"b{i}.{name}"] = c
        self._dims = dims
        # slot i's dimension names, full ("b3.width") by short ("width"): no name is formatted per call
        self._names = [{name: f"b{i}.{name}" for name in per_block} for i in range(max_blocks)]

    # ------------------------------------------------------------------ the SearchSpace protocol
    def dims(self) -> Mapping[str, Choice]:
        return self._dims

    def active(self, s: Sample) -> list[str]:
        """Names of the dimensions that shape the network for this sample."""
        names = ["n_blocks"]
        dense = False
        for slot in self._names[: int(s["n_blocks"])]:
            t = s[slot["type"]]
            dense = dense or t == "dense"
            names.append(slot["type"])
            names += [slot[a] for a in _ACTIVE[t]]
        if not dense:
            names.append("head")
        return names

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Every dimension uniformly, except block types, which follow ``type_probs`` when given."""
        out = sample_all(self._dims, rng)
        if self.type_probs is not None:
            for i in range(self.max_blocks):
                out[f"b{i}.type"] = self.types[int(rng.choice(len(self.types), p=self.type_probs))]
        return out

    def _slot(self, s: Sample, i: int) -> dict[str, Any]:
        return {short: s[full] for short, full in self._names[i].items()}

    def _with_slots(self, s: Sample, slots: list[dict[str, Any]]) -> dict[str, Any]:
        out = dict(s)
        out["n_blocks"] = len(slots)
        for i, slot in enumerate(slots):
            for k, v in slot.items():
                out[f"b{i}.{k}"] = v
        return out

    def mutate(self, s: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """One small change: with probability ``structural_mutation`` insert a fresh block at a random
        position or remove one (the classic add-layer / remove-layer moves), otherwise change one
        active dimension to another value."""
        n = int(s["n_blocks"])
        if rng.random() < self.structural_mutation:
            slots = [self._slot(s, i) for i in range(n)]
            can_add, can_remove = n < self.max_blocks, n > self.min_blocks
            if can_add and (not can_remove or rng.random() < 0.5):
                fresh = self.sample(rng)
                slots.insert(int(rng.integers(n + 1)), self._slot(fresh, 0))
                return self._with_slots(s, slots)
            if can_remove:
                slots.pop(int(rng.integers(n)))
                return self._with_slots(s, slots)
        return mutate_one(self._dims, self.active(s), s, rng)

    def crossover(self, a: Sample, b: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform crossover, block-aligned: each block slot (all its settings) comes from one parent."""
        out: dict[str, Any] = {}
        for name in ("n_blocks", "head"):
            out[name] = a[name] if rng.random() < 0.5 else b[name]
        for i in range(self.max_blocks):
            src = a if rng.random() < 0.5 else b
            for name in self._names[i].values():
                out[name] = src[name]
        return out

    def blocks(self, s: Sample) -> list[Block]:
        out = []
        for slot in self._names[: int(s["n_blocks"])]:
            t = s[slot["type"]]
            out.append(Block(t, tuple((a, s[slot[a]]) for a in _ACTIVE[t])))
        return out

    def key(self, s: Sample) -> str:
        """Canonical text of the network: active blocks only, and the head only where it matters."""
        blocks = self.blocks(s)
        parts: list[Any] = [[b.type, *[v for _, v in b.args]] for b in blocks]
        if not any(b.type == "dense" for b in blocks):
            parts.append(["head", s["head"]])
        return json.dumps(parts, separators=(",", ":"))

    def describe(self, s: Sample) -> str:
        blocks = self.blocks(s)
        text = " > ".join(b.describe() for b in blocks)
        if not any(b.type == "dense" for b in blocks):
            text += f" > {s['head']}"
        return text

    def validate_sample(self, s: Sample) -> None:
        """Raise ValueError if ``s`` names unknown dimensions or values outside the space."""
        check_values(self._dims, s, self.active(s))

    def check(self, s: Sample, input_shape: tuple[int, ...], n_out: int = 10) -> str | None:
        """Why the sample cannot become a network for this input (shape inference), or None.

        ``n_out`` (the number of classes) sizes the output layer for the parameter limit.
        """
        try:
            self.validate_sample(s)
        except (ValueError, KeyError) as e:
            return f"not a point of this space: {e}"
        spatial: list[int] | None = list(input_shape[1:]) if len(input_shape) > 1 else None
        for i, b in enumerate(self.blocks(s)):
            if b.type == "parallel":
                if spatial is None:
                    where = "after a dense block" if len(input_shape) > 1 else "on flat (tabular) input"
                    return f"block {i} (parallel) comes {where}; it needs spatial input"
                continue  # stride 1, same padding: the size is kept
            if b.type in ("conv", "pool"):
                if spatial is None:
                    where = "after a dense block" if len(input_shape) > 1 else "on flat (tabular) input"
                    return f"block {i} ({b.type}) comes {where}; it needs spatial input"
                if b.type == "conv":
                    k, st = b.get("kernel"), b.get("stride")
                    pad = k // 2 if b.get("padding") == "same" else 0
                else:
                    k, st, pad = b.get("pool_size"), 2, b.get("pool_size") // 2 if b.get("pool_size") > 2 else 0
                new = [(d + 2 * pad - k) // st + 1 for d in spatial]
                if min(new) < 1:
                    return (f"spatial size collapses at block {i} ({b.describe()}): "
                            f"{'x'.join(map(str, spatial))} is smaller than the {k}-wide window")
                spatial = new
            elif b.type == "dense":
                spatial = None
        return limit_reason(lambda: self.build(s, input_shape, n_out), input_shape, self.max_params, self.max_flops,
                            self.min_params)

    def build(self, s: Sample, input_shape: tuple[int, ...], n_out: int) -> nn.Module:
        """The network for ``s``: a plain ``nn.Sequential`` so it prints, exports and scripts simply."""
        from nasforge.space.chain_nn import build_chain

        return build_chain(self.blocks(s), s["head"], input_shape, n_out)


def chain_sample(space: ChainSpace, blocks: Sequence[Mapping[str, Any]], head: str = "flatten") -> dict[str, Any]:
    """A full sample from a readable block list, e.g. ``[{"type": "conv", "width": 32, ...}, ...]``.

    Unspecified settings take the space's first value; dormant slots are filled the same way.
    """
    if not space.min_blocks <= len(blocks) <= space.max_blocks:
        raise ValueError(f"{len(blocks)} blocks do not fit a space of {space.min_blocks}..{space.max_blocks} blocks")
    s: dict[str, Any] = {name: d.values[0] for name, d in space.dims().items()}
    s["n_blocks"], s["head"] = len(blocks), head
    for i, blk in enumerate(blocks):
        for k, v in blk.items():
            s[f"b{i}.{k}"] = v
    return s
