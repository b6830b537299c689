"""Named dimensions of a search space.

Every dimension is a finite, ordered choice: NAS spaces are discrete, and a finite choice gives
strategies one uniform way to sample, mutate, encode (one-hot) and count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Choice:
    """A categorical dimension with ordered values (order matters for neighbourhoods)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a Choice needs at least one value")
        if len(set(map(repr, self.values))) != len(self.values):
            raise ValueError(f"a Choice has repeated values: {self.values}")

    def __len__(self) -> int:
        return len(self.values)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if v == value and type(v) is type(value):
                return i
        for i, v in enumerate(self.values):  # JSON may turn 1.0 into 1 and back
            if v == value:
                return i
        raise ValueError(f"{value!r} is not one of {list(self.values)}")

    def other(self, value: Any, rng: np.random.Generator) -> Any:
        """A different value chosen uniformly, or the same one if there is no other."""
        if len(self.values) < 2:
            return value
        try:
            i = self.index(value)
        except ValueError:
            return self.sample(rng)
        j = int(rng.integers(len(self.values) - 1))
        return self.values[j if j < i else j + 1]


def sample_all(dims: Mapping[str, Choice], rng: np.random.Generator) -> dict[str, Any]:
    """Every dimension uniformly, in one draw of the Generator: the same values, and the same Generator
    state after, as ``{name: d.sample(rng) ...}``, a twentieth of the time (a 132-dimension chain sample)."""
    picks = rng.integers(0, np.fromiter((len(d.values) for d in dims.values()), np.int64, len(dims))).tolist()
    return {name: d.values[i] for (name, d), i in zip(dims.items(), picks, strict=True)}


def choice(values: Sequence[Any]) -> Choice:
    return Choice(tuple(values))
