"""The ask/tell strategy interface.

A strategy decides *what* to try next from the history and its own seeded Generator; it never
trains, never reads a benchmark and never touches global RNG. Strategies derive what they can from
the history they are given (population, best-so-far), so their saved state is little more than
the RNG: resuming and running many workers stay simple.
"""

from __future__ import annotations

import abc
import bisect
from collections.abc import Iterable, Iterator, MutableSet, Sequence, Set
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
    def fresh(self, make: Any, seen: MutableSet[str], tries: int = 100) -> dict[str, Any]:
        """Call ``make()`` until it yields a key not in ``seen`` (or give up and return the last)."""
        s: dict[str, Any] = make()
        key = self.space.key(s)
        for _ in range(tries):
            if key not in seen:
                break
            s = make()
            key = self.space.key(s)
        seen.add(key)
        return s


class History(list[Trial]):
    """The trials of a study in number order, with the indexes strategies need kept as trials change, so an
    ask costs the same at trial 100,000 as at trial 10: the keys tried and the scored trials' numbers.

    A :class:`~nasforge.study.Study` owns it and changes it only through :meth:`add` and :meth:`put`; to a
    strategy it is the plain sequence of trials it always was.
    """

    def __init__(self, trials: Sequence[Trial] = ()) -> None:
        super().__init__(trials)
        self.pos = {t.number: i for i, t in enumerate(self)}
        self.keys = {t.key for t in self}
        self.ok = [t.number for t in self if t.ok]  # scored trials' numbers, ascending

    def add(self, trial: Trial) -> None:
        self.pos[trial.number] = len(self)
        self.append(trial)
        self.keys.add(trial.key)
        if trial.ok:
            bisect.insort(self.ok, trial.number)

    def put(self, trial: Trial) -> Trial:
        """Replace the trial of the same number; returns the old record."""
        i = self.pos[trial.number]
        old, self[i] = self[i], trial
        if old.ok != trial.ok:
            if trial.ok:
                bisect.insort(self.ok, trial.number)
            else:
                del self.ok[bisect.bisect_left(self.ok, trial.number)]
        return old


class SeenKeys(MutableSet[str]):
    """The keys tried: a history's own index plus the keys added during one ask, without copying the index."""

    def __init__(self, base: Set[str]) -> None:
        self._base, self._new = base, set[str]()

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> set[Any]:  # a | b gives a plain set
        return set(it)

    def __contains__(self, key: object) -> bool:
        return key in self._new or key in self._base

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from self._new

    def __len__(self) -> int:
        return len(self._base) + len(self._new)

    def add(self, key: str) -> None:
        if key not in self._base:
            self._new.add(key)

    def discard(self, key: str) -> None:
        self._new.discard(key)

    def update(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.add(k)


def seen_keys(history: Sequence[Trial]) -> set[str]:
    """The keys of every trial so far: a set of one's own (a copy of the history's index where it has one)."""
    if isinstance(history, History):
        return set(history.keys)
    return {t.key for t in history}


def seen_view(history: Sequence[Trial]) -> MutableSet[str]:
    """:func:`seen_keys` without the copy: the history's index plus what this ask adds (strategies that only
    test and add keys, at a cost that does not grow with the history)."""
    return SeenKeys(history.keys) if isinstance(history, History) else seen_keys(history)


def completed(history: Sequence[Trial]) -> list[Trial]:
    """Scored trials in the order they were created."""
    if isinstance(history, History):
        return [history[history.pos[n]] for n in history.ok]
    return [t for t in sorted(history, key=lambda t: t.number) if t.ok]


def recent_completed(history: Sequence[Trial], k: int) -> list[Trial]:
    """The last ``k`` of :func:`completed` (a regularized-evolution population), without a pass over the history."""
    if isinstance(history, History):
        return [history[history.pos[n]] for n in history.ok[-k:]] if k > 0 else []
    return completed(history)[-k:] if k > 0 else []


def tournament(pool: Sequence[Trial], size: int, rng: np.random.Generator) -> Trial:
    """The best of ``size`` trials drawn without replacement."""
    idx = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
    return max((pool[int(i)] for i in idx), key=lambda t: (t.score, -t.number))

