"""The stage space: stem, 1..N stages of residual blocks at falling resolution, global pooling, linear.

This is the macro shape of the hand-designed networks that are hard to beat on small images and
sequences (ResNet, MobileNetV2/V3), so they are points of the space: :meth:`StageSpace.resnet20`
is exactly the CIFAR ResNet-20 of He et al. (2016) and :meth:`StageSpace.mobilenet` a
MobileNetV2-like network with squeeze-excitation. A search starts from, and is measured against,
networks people trust.

A sample is flat: ``n_stages``, ``stem`` (the stem's width) and per stage slot ``s{i}.depth``
(blocks), ``s{i}.width``, ``s{i}.block`` (``basic``: two k x k conv-BN-ReLU with an identity or
1x1-conv projection shortcut, as in ResNet; ``inverted``: MobileNetV2's 1x1 expand, depthwise k x k,
1x1 project, residual where the shapes match), ``s{i}.kernel``, ``s{i}.expand`` (inverted blocks
only), ``s{i}.se`` (squeeze-excitation) and ``s{i}.down`` (``stride``: the first block's conv is
strided; ``pool``: a max-pool before the stage). Stage 0 keeps the stem's resolution (its ``down``
is dormant); every later stage halves it. Slots beyond ``n_stages`` are dormant like the chain
space's, and :meth:`StageSpace.key` ignores dormant values.

The stem is a stride-1 3x3 conv (CIFAR style): the space is meant for small inputs (up to ~64
pixels a side, or sequences of a few hundred steps). The same space builds Conv2d for (C, H, W)
and Conv1d for (C, L) inputs; flat inputs are refused (use the mlp or chain space).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nasforge.space.base import check_values, limit_options, limit_reason, mutate_one, option_values
from nasforge.space.params import Choice, choice, sample_all
from nasforge.types import Sample

if TYPE_CHECKING:
    from torch import nn

BLOCKS = ("basic", "inverted")
DOWNSAMPLE = ("stride", "pool")
STAGE_WIDTHS = (16, 24, 32, 48, 64, 96, 128)  # the default widths and stem widths
STAGE_STEMS = (16, 24, 32)
STAGE_DIMS = ("depth", "width", "block", "kernel", "expand", "se", "down")


def stage_dims(s: Sample, i: int) -> tuple[str, ...]:
    """The settings of stage ``i`` that shape the network: ``expand`` only for inverted blocks, ``down``
    only after stage 0."""
    names = ["depth", "width", "block", "kernel"]
    if s[f"s{i}.block"] == "inverted":
        names.append("expand")
    names.append("se")
    if i > 0:
        names.append("down")
    return tuple(names)


class StageSpace:
    """Stages of ResNet basic or MobileNet inverted blocks; every dimension can be restricted from the config."""

    kind = "stage"
    flat_ok = False  # images and sequences only: make_space refuses flat (tabular) input by this

    def __init__(
        self,
        *,
        min_stages: int = 1,
        max_stages: int = 3,
        depths: Sequence[int] = (1, 2, 3, 4),
        widths: Sequence[int] = STAGE_WIDTHS,
        stems: Sequence[int] = STAGE_STEMS,
        kernels: Sequence[int] = (3, 5),
        blocks: Sequence[str] = BLOCKS,
        expansions: Sequence[int] = (1, 3, 6),
        se: Sequence[bool] = (False, True),
        downsample: Sequence[str] = DOWNSAMPLE,
        max_params: int | None = None,
        max_flops: int | None = None,
        min_params: int | None = None,
    ) -> None:
        for name, v in (("min_stages", min_stages), ("max_stages", max_stages)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 8:
                raise ValueError(f"space.{name} must be an integer between 1 and 8, got {v!r}")
        if min_stages > max_stages:
            raise ValueError(f"space needs min_stages <= max_stages, got {min_stages} and {max_stages}")
        self.min_stages, self.max_stages = min_stages, max_stages
        self.depths = option_values("depths", depths, int, lo=1, hi=32)
        self.widths = option_values("widths", widths, int, lo=1, hi=4096)
        self.stems = option_values("stems", stems, int, lo=1, hi=4096)
        self.kernels = option_values("kernels", kernels, int, lo=1, hi=15)
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"space.kernels must be odd so 'same' padding is symmetric, got {list(self.kernels)}")
        self.blocks = option_values("blocks", blocks, str, allowed=BLOCKS)
        self.expansions = option_values("expansions", expansions, int, lo=1, hi=16)
        self.se = option_values("se", se, bool)
        self.downsample = option_values("downsample", downsample, str, allowed=DOWNSAMPLE)
        self.min_params, self.max_params, self.max_flops = limit_options(min_params, max_params, max_flops)
        per_stage = {"depth": choice(self.depths), "width": choice(self.widths), "block": choice(self.blocks),
                     "kernel": choice(self.kernels), "expand": choice(self.expansions), "se": choice(self.se),
                     "down": choice(self.downsample)}
        dims: dict[str, Choice] = {"n_stages": choice(range(min_stages, max_stages + 1)), "stem": choice(self.stems)}
        for i in range(max_stages):
            for name, c in per_stage.items():
                dims[f"s{i}.{name}"] = c
        self._dims = dims

    # ------------------------------------------------------------------ reference points
    def resnet20(self, width: int = 16) -> dict[str, Any]:
        """CIFAR ResNet-20 (He et al. 2016, section 4.2) with 1x1-conv projection shortcuts (option B).

        Stem 3x3 conv 16, three stages of three basic 3x3 blocks at widths 16/32/64, stride 2 in the
        first block of stages 1 and 2; 272,474 parameters on (3, 32, 32) with 10 classes (the paper's
        0.27M uses parameter-free zero-padding shortcuts: 269,722). ``width``: the same network narrowed
        (stem and stages ``width``, 2x, 4x), for a size limit.
        """
        basic = {"block": "basic", "depth": 3, "kernel": 3, "se": False, "down": "stride"}
        return stage_sample(self, [{**basic, "width": w} for w in (width, 2 * width, 4 * width)], stem=width)

    def mobilenet(self) -> dict[str, Any]:
        """A MobileNetV2-like point with squeeze-excitation (as in MobileNetV3), sized for small inputs.

        Stem 32; one inverted block of expansion 1 at width 16, then two and three inverted blocks of
        expansion 6 at widths 24 and 32, each stage's first block a stride-2 depthwise conv.
        """
        inv = {"block": "inverted", "kernel": 3, "se": True, "down": "stride"}
        return stage_sample(self, [{**inv, "depth": 1, "width": 16, "expand": 1},
                                   {**inv, "depth": 2, "width": 24, "expand": 6},
                                   {**inv, "depth": 3, "width": 32, "expand": 6}], stem=32)

    def covering(self, side: int) -> dict[str, Any] | None:
        """ResNet-20's kind of network whose receptive field covers ``side`` positions, or None where
        ResNet-20's own does (or no deeper point of this space reaches further).

        Basic 3x3 blocks, two a stage, widths 16, 32, 64 then 64 again, stride-2 downsampling, with the fewest
        stages that cover ``side`` (at most the space's). A 128-step sequence needs 5, where ResNet-20 sees 81
        steps: one block fewer a stage (two, not three) keeps the cost near ResNet-20's as stages are added.
        """
        reach = self.receptive_field(self.resnet20())
        if side <= reach:
            return None
        basic = {"block": "basic", "depth": 2, "kernel": 3, "se": False, "down": "stride"}
        for n in range(3, self.max_stages + 1):
            point = stage_sample(self, [{**basic, "width": min(64, 16 << i)} for i in range(n)], stem=16)
            if self.receptive_field(point) >= side or n == self.max_stages:
                return point if self.receptive_field(point) > reach else None
        return None

    def receptive_field(self, s: Sample) -> int:
        """How many input positions (along one axis) one output position of the last stage sees.

        Each k-wide conv adds (k - 1) x the stride so far (the stem's, and a basic block's two, an inverted
        block's one depthwise); a stride-2 conv or 3-wide max-pool doubles the stride after it. Squeeze-excitation's
        global pooling only scales channels, so it is not counted.
        """
        rf, jump = 3, 1  # the stem: a 3-wide conv, stride 1
        for i, st in enumerate(self.stages(s)):
            k, convs = int(st["kernel"]), 2 if st["block"] == "basic" else 1
            if i > 0 and st["down"] == "pool":
                rf, jump = rf + 2 * jump, jump * 2
            for j in range(int(st["depth"])):
                for c in range(convs):
                    rf += (k - 1) * jump
                    if i > 0 and j == 0 and c == 0 and st["down"] == "stride":
                        jump *= 2
        return rf

    # ------------------------------------------------------------------ the SearchSpace protocol
    def dims(self) -> Mapping[str, Choice]:
        return self._dims

    def active(self, s: Sample) -> list[str]:
        """Names of the dimensions that shape the network for this sample."""
        names = ["n_stages", "stem"]
        for i in range(int(s["n_stages"])):
            names += [f"s{i}.{a}" for a in stage_dims(s, i)]
        return names

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Every dimension uniformly (dormant slots too, so growing ``n_stages`` wakes a random stage)."""
        return sample_all(self._dims, rng)

    def mutate(self, s: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Change one active dimension to another value (a changed ``n_stages`` adds or drops the last stage)."""
        return mutate_one(self._dims, self.active(s), s, rng)

    def crossover(self, a: Sample, b: Sample, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform crossover, stage-aligned: each stage slot (all its settings) comes from one parent."""
        out: dict[str, Any] = {}
        for name in ("n_stages", "stem"):
            out[name] = a[name] if rng.random() < 0.5 else b[name]
        for i in range(self.max_stages):
            src = a if rng.random() < 0.5 else b
            for d in STAGE_DIMS:
                out[f"s{i}.{d}"] = src[f"s{i}.{d}"]
        return out

    def stages(self, s: Sample) -> list[dict[str, Any]]:
        """The active stages, each a dict of only the settings it uses."""
        return [{a: s[f"s{i}.{a}"] for a in stage_dims(s, i)} for i in range(int(s["n_stages"]))]

    def key(self, s: Sample) -> str:
        """Canonical text: the stem and each active stage's settings in a fixed order (dormant ones as null)."""
        parts: list[Any] = [s["stem"]]
        for st in self.stages(s):
            parts.append([st.get(d) for d in STAGE_DIMS])
        return json.dumps(parts, separators=(",", ":"))

    def describe(self, s: Sample) -> str:
        """E.g. ``stem16 > 3x basic16 k3 > 3x basic32 k3 /2 > 2x inverted64 e6 k5 se /pool > gap``."""
        parts = [f"stem{s['stem']}"]
        for st in self.stages(s):
            text = f"{st['depth']}x {st['block']}{st['width']}"
            text += f" e{st['expand']}" if "expand" in st else ""
            text += f" k{st['kernel']}" + (" se" if st["se"] else "")
            text += {"stride": " /2", "pool": " /pool"}[st["down"]] if "down" in st else ""
            parts.append(text)
        return " > ".join([*parts, "gap"])

    def validate_sample(self, s: Sample) -> None:
        """Raise ValueError if ``s`` lacks a dimension or holds an active value outside the space."""
        check_values(self._dims, s, self.active(s))

    def check(self, s: Sample, input_shape: tuple[int, ...], n_out: int = 10) -> str | None:
        """Why the sample cannot become a network for this input, or None.

        A stage may not halve a map that is already 1 wide; ``n_out`` sizes the output layer for the
        parameter limit.
        """
        try:
            self.validate_sample(s)
        except (ValueError, KeyError, TypeError) as e:
            return f"not a point of this space: {e}"
        if len(input_shape) not in (2, 3):
            return (f"the stage space needs image (C, H, W) or sequence (C, L) input, got shape {input_shape}; "
                    "use the mlp or chain space for flat (tabular) data")
        spatial = list(input_shape[1:])
        for i in range(1, int(s["n_stages"])):
            if min(spatial) < 2:
                return (f"stage {i} would halve a {'x'.join(map(str, spatial))} map below one "
                        f"{'step' if len(spatial) == 1 else 'pixel'}: use fewer stages or larger input")
            spatial = [(d + 1) // 2 for d in spatial]
        return limit_reason(lambda: self.build(s, input_shape, n_out), input_shape, self.max_params, self.max_flops,
                            self.min_params)

    def build(self, s: Sample, input_shape: tuple[int, ...], n_out: int) -> nn.Sequential:
        """Stem, one ``nn.Sequential`` per stage, global average pooling, linear: a plain Sequential."""
        from nasforge.space.stage_nn import build_stages

        return build_stages(self.stages(s), int(s["stem"]), input_shape, n_out)


def stage_sample(space: StageSpace, stages: Sequence[Mapping[str, Any]], stem: int) -> dict[str, Any]:
    """A full sample from a readable stage list, e.g. ``[{"depth": 3, "width": 16, "block": "basic"}, ...]``.

    Unspecified settings take the space's first value, and dormant slots are filled the same way;
    ValueError if the result is not a point of ``space`` (e.g. ResNet-20 in a space without width 64).
    """
    if not space.min_stages <= len(stages) <= space.max_stages:
        raise ValueError(f"{len(stages)} stages do not fit a space of {space.min_stages}..{space.max_stages} stages")
    s: dict[str, Any] = {name: d.values[0] for name, d in space.dims().items()}
    s["n_stages"], s["stem"] = len(stages), stem
    for i, st in enumerate(stages):
        for k, v in st.items():
            if k not in STAGE_DIMS:
                raise ValueError(f"unknown stage setting {k!r}: choose from {list(STAGE_DIMS)}")
            s[f"s{i}.{k}"] = v
    try:
        space.validate_sample(s)
    except ValueError as e:
        raise ValueError(f"not a point of this stage space: {e}") from None
    return s
