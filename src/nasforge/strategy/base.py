"""The ask/tell strategy interface.

A strategy decides *what* to try next from the history and its own seeded Generator; it never
trains, never reads a benchmark and never touches global RNG. Strategies derive what they can from
the history they are given (population, best-so-far), so their saved state is little more than
the RNG: resuming and running many workers stay simple.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from nasforge.space.base import SearchSpace
from nasforge.types import Suggestion, Trial


class Strategy(abc.ABC):
    name: ClassVar[str]

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abc.abstractmethod
    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        """``n`` new suggestions given every trial so far (pending and running ones included)."""

    def tell(self, trial: Trial) -> None:  # noqa: B027 - most strategies learn from history alone
        """Learn from a finished trial; history-derived strategies need nothing here."""

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    # ------------------------------------------------------------------ helpers shared by strategies
    def fresh(self, make: Any, seen: set[str], tries: int = 100) -> dict[str, Any]:
        """Call ``make()`` until it yields a key not in ``seen`` (or give up and return the last)."""
        s: dict[str, Any] = make()
        for _ in range(tries):
            if self.space.key(s) not in seen:
                break
            s = make()
        seen.add(self.space.key(s))
        return s


def seen_keys(history: Sequence[Trial]) -> set[str]:
    return {t.key for t in history}


def completed(history: Sequence[Trial]) -> list[Trial]:
    """Scored trials in the order they were created."""
    return [t for t in sorted(history, key=lambda t: t.number) if t.ok]


def tournament(pool: Sequence[Trial], size: int, rng: np.random.Generator) -> Trial:
    """The best of ``size`` trials drawn without replacement."""
    idx = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
    return max((pool[int(i)] for i in idx), key=lambda t: (t.score, -t.number))

