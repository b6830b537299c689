"""Random search: the baseline every other strategy has to beat."""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.strategy.base import Strategy, seen_view
from nasforge.types import Suggestion, Trial


class RandomSearch(Strategy):
    """Uniform samples from the space, never repeating a network already tried."""

    name = "random"

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        seen = seen_view(history)
        return [Suggestion(self.fresh(lambda: self.space.sample(self.rng), seen)) for _ in range(n)]
