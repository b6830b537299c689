"""The MLP space: multilayer perceptrons for flat (tabular) data, with the knobs that matter there.

On tables a well-regularised plain MLP is the strong neural baseline (Kadra et al. 2021, Gorishniy
et al. 2021), so the space is MLPs: ``depth`` hidden layers (1..4) with a width per layer
(``l{i}.width``), and for the whole network a normalisation (``norm``: none / batch / layer),
``dropout``, ``residual`` skips between consecutive hidden layers of equal width, and the activation
(``act``), and, where ``weight_decays`` is given, the weight decay the network trains with (on tables
the regularisation strength matters as much as the shape: Kadra et al. 2021). One hidden layer is
``Linear -> norm -> activation -> dropout`` (the Linear has no bias before batch-norm, which would
cancel it). :meth:`MlpSpace.reference` is the plain reference MLP.

Widths of layers beyond ``depth`` are dormant, and so is ``residual`` where no two consecutive layers
have equal width: :meth:`MlpSpace.key` ignores them. Inputs of any shape are flattened first.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.space.base import (
    check_values,
    limit_options,
    limit_reason,
    mutate_one,
    option_values,
    uniform_crossover,
)
from nasforge.space.chain import ACTIVATION_LAYERS
from nasforge.space.params import Choice, choice, sample_all
from nasforge.types import Sample

if TYPE_CHECKING:
    from torch import nn

NORMS = ("none", "batch", "layer")


MLP_WIDTHS = (32, 64, 128, 256, 512)  # the default hidden widths


class MlpSpace:
    """Hidden-layer stacks for flat inputs; every dimension can be restricted from the config."""

    kind = "mlp"
    flat_ok = True

    def __init__(
        self,
        *,
        min_depth: int = 0,
        max_depth: int = 4,
        widths: Sequence[int] = MLP_WIDTHS,
        norms: Sequence[str] = NORMS,
        dropouts: Sequence[float] = (0.0, 0.1, 0.3),
        residual: Sequence[bool] = (False, True),
        activations: Sequence[str] = ("relu", "gelu"),
        weight_decays: Sequence[float] | None = None,
        max_params: int | None = None,
        max_flops: int | None = None,
        min_params: int | None = None,
    ) -> None:
        for name, v in (("min_depth", min_depth), ("max_depth", max_depth)):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 16:
                raise ValueError(f"space.{name} must be an integer between 0 and 16, got {v!r}")
        if min_depth > max_depth:
            raise ValueError(f"space needs min_depth <= max_depth, got {min_depth} and {max_depth}")
        self.min_depth, self.max_depth = min_depth, max_depth
        self.widths = option_values("widths", widths, int, lo=1, hi=65536)
        self.norms = option_values("norms", norms, str, allowed=NORMS)
        self.dropouts = option_values("dropouts", dropouts, float)
        if not all(0 <= r < 1 for r in self.dropouts):
            raise ValueError(f"space.dropouts must be in [0, 1), got {list(self.dropouts)}")
        self.residual = option_values("residual", residual, bool)
        self.activations = option_values("activations", activations, str, allowed=tuple(ACTIVATION_LAYERS))
        self.weight_decays = None if weight_decays is None else option_values("weight_decays", weight_decays, float)
        if self.weight_decays is not None and not all(0 <= v < math.inf for v in self.weight_decays):
            raise ValueError(f"space.weight_decays must be finite and >= 0, got {list(self.weight_decays)}")
        self.min_params, self.max_params, self.max_flops = limit_options(min_params, max_params, max_flops)
        dims: dict[str, Choice] = {"depth": choice(range(min_depth, max_depth + 1))}
        for i in range(max_depth):
            dims[f"l{i}.width"] = choice(self.widths)
        dims.update(norm=choice(self.norms), dropout=choice(self.dropouts), residual=choice(self.residual),
                    act=choice(self.activations))
        if self.weight_decays is not None:
            dims["weight_decay"] = choice(self.weight_decays)
        self._dims = dims

    def reference(self, width: int = 256) -> dict[str, Any]:
        """The plain reference MLP: two hidden layers of 256, batch-norm, ReLU, dropout 0.1, no skips.

        A common strong default for tables; ValueError if this space cannot hold it. ``width``: its hidden
        layers narrowed, for a size limit.
        """
        s: dict[str, Any] = {name: d.values[0] for name, d in self._dims.items()}
        s.update({"depth": 2, "l0.width": width, "l1.width": width, "norm": "batch", "dropout": 0.1,
                  "residual": False, "act": "relu"})
        if self.weight_decays is not None:  # the weakest of them (auto lists the table recipe's own first)
            s["weight_decay"] = min(self.weight_decays)
        try:
            check_values(self._dims, s, self.active(s))
        except ValueError as e:
            raise ValueError(f"the reference MLP is not a point of this mlp space: {e}") from None
        return s

    # ------------------------------------------------------------------ the SearchSpace protocol
    def dims(self) -> Mapping[str, Choice]:
        return self._dims

    def widths_of(self, s: Sample) -> list[int]:
        return [int(s[f"l{i}.width"]) for i in range(int(s["depth"]))]

    def active(self, s: Sample) -> list[str]:
        """Names of the dimensions that shape the network for this sample."""
        w = self.widths_of(s)
        wd = ["weight_decay"] if "weight_decay" in self._dims else []
        if not w:  # depth 0: a linear classifier (logistic regression); only its regularisation shapes it
            return ["depth", *wd]
        names = ["depth", *[f"l{i}.width" for i in range(len(w))], "norm", "dropout", "act"]
        if any(a == b for a, b in itertools.pairwise(w)):
            names.append("residual")
        return names + wd

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Every dimension uniformly."""
        return sample_all(self._dims, rng)

    def mutate(self, s: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Change one active dimension to another value."""
        return mutate_one(self._dims, self.active(s), s, rng)

    def crossover(self, a: Sample, b: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform crossover: each dimension comes from one parent."""
        return uniform_crossover(self._dims, a, b, rng)

    def key(self, s: Sample) -> str:
        """Canonical text: widths, norm, dropout, activation, and the skips only where they exist."""
        skips = s["residual"] if "residual" in self.active(s) else None
        wd = [float(s["weight_decay"])] if "weight_decay" in self._dims else []
        if not self.widths_of(s):
            return json.dumps([[], *wd], separators=(",", ":")) if wd else "[]"
        return json.dumps([self.widths_of(s), s["norm"], float(s["dropout"]), s["act"], skips, *wd],
                          separators=(",", ":"))

    def describe(self, s: Sample) -> str:
        """E.g. ``mlp 256-256 batchnorm relu dropout0.1`` (``+skip`` where residual connections exist, ``wd0.01``
        where the space searches weight decay)."""
        wd = f" wd{float(s['weight_decay']):g}" if "weight_decay" in self._dims else ""
        if not self.widths_of(s):
            return "linear" + wd  # logistic regression on classes, linear regression on targets
        text = "mlp " + "-".join(map(str, self.widths_of(s)))
        text += {"none": "", "batch": " batchnorm", "layer": " layernorm"}[s["norm"]] + f" {s['act']}"
        text += f" dropout{float(s['dropout']):g}" if float(s["dropout"]) > 0 else ""
        return text + (" +skip" if "residual" in self.active(s) and s["residual"] else "") + wd

    def validate_sample(self, s: Sample) -> None:
        """Raise ValueError if ``s`` lacks a dimension or holds an active value outside the space."""
        check_values(self._dims, s, self.active(s))

    def check(self, s: Sample, input_shape: tuple[int, ...], n_out: int = 10) -> str | None:
        """Why the sample is not a point of this space or exceeds the limits, or None (any input shape fits)."""
        try:
            self.validate_sample(s)
        except (ValueError, KeyError, TypeError) as e:
            return f"not a point of this space: {e}"
        return limit_reason(lambda: self.build(s, input_shape, n_out), input_shape, self.max_params, self.max_flops,
                            self.min_params)

    def build(self, s: Sample, input_shape: tuple[int, ...], n_out: int) -> nn.Sequential:
        """Hidden layers (a skip around each one that keeps the width, where ``residual``), then a linear head."""
        from nasforge.space.mlp_nn import build_mlp

        wd = float(s["weight_decay"]) if "weight_decay" in self._dims else None
        return build_mlp(self.widths_of(s), s["norm"], s["act"], float(s["dropout"]), bool(s["residual"]),
                         input_shape, n_out, weight_decay=wd)
