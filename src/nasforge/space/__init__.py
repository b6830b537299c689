"""Search spaces, in one explicit registry: name -> class."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from nasforge.errors import ConfigError
from nasforge.space.base import SearchSpace
from nasforge.space.cell import CellSpace, NasBench201Space
from nasforge.space.chain import ChainSpace
from nasforge.space.mlp import MlpSpace
from nasforge.space.params import Choice
from nasforge.space.stage import StageSpace

SPACES: dict[str, type] = {"chain": ChainSpace, "cell": CellSpace, "nb201": NasBench201Space, "stage": StageSpace,
                           "mlp": MlpSpace}


def flat_ok(cls: type) -> bool:
    """Whether a space class takes flat (tabular) input: one for images and sequences only sets ``flat_ok = False``."""
    return bool(getattr(cls, "flat_ok", True))


def make_space(options: Mapping[str, Any], input_shape: tuple[int, ...] | None = None) -> SearchSpace:
    """A space from its config section; flat (tabular) inputs keep only the block types they can use."""
    opts = dict(options)
    kind = opts.pop("kind", "chain")
    if kind not in SPACES:
        raise ConfigError(f"unknown space kind {kind!r}: choose one of {', '.join(SPACES)}")
    cls = SPACES[kind]
    allowed = [p for p in inspect.signature(cls).parameters]
    for k in opts:
        if k not in allowed:
            close = difflib.get_close_matches(k, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
            raise ConfigError(f"unknown key {k!r} in space: {hint}")
    if kind == "chain" and input_shape is not None and len(input_shape) == 1:
        types = [t for t in opts.get("types", ("dense", "dropout", "batchnorm")) if t not in ("conv", "pool")]
        if not types:
            raise ConfigError("the data are flat (tabular) but space.types allows only conv/pool; add dense")
        opts["types"] = types
    if not flat_ok(cls) and input_shape is not None and len(input_shape) not in (2, 3):
        flat = " or ".join(k for k, c in SPACES.items() if flat_ok(c))
        raise ConfigError(f"space kind {kind!r} needs image or sequence data, not input shape {input_shape}; "
                          f"use kind: {flat} for flat (tabular) data")
    try:
        space: SearchSpace = cls(**opts)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"space: {e}") from None
    return space


__all__ = ["SPACES", "CellSpace", "ChainSpace", "Choice", "MlpSpace", "NasBench201Space", "SearchSpace", "StageSpace",
           "make_space"]
