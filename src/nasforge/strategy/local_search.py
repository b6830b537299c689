"""Local search (hill climbing), which White et al. 2021 found hard to beat on NAS benchmarks.

The climb is replayed from the history: the best of the first ``n_init`` scored trials is the
current point; a later trial replaces it if it scores higher (first improvement: every proposal
other than a restart is a neighbour of the point current when it was made); a restart replaces it
unconditionally. ``ask`` proposes an untried neighbour (one active dimension changed) of the current
point, in random order; when all of them have been tried the point is a local optimum, and the
next proposal is a random restart.

Two things the history cannot tell are kept in the state (as keys): which proposals were restarts,
and which the loop rejected as invalid (:mod:`nasforge.strategy.memory`), so the climb cannot get
stuck on a neighbourhood whose untried members are all invalid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from nasforge.space.base import SearchSpace
from nasforge.strategy.base import Strategy, completed, seen_keys
from nasforge.strategy.memory import Rejections
from nasforge.types import Sample, Suggestion, Trial


def iter_neighbours(space: SearchSpace, s: Sample,
                    key: Callable[[Sample], str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, sample) for every network that differs from ``s`` in one active dimension, once each, in a fixed order.

    ``key`` replaces ``space.key`` (a caching wrapper, say).
    """
    key = key or space.key
    dims = space.dims()
    keys = {key(s)}
    for name in space.active(s):
        for v in dims[name].values:
            if v == s[name] and type(v) is type(s[name]):
                continue
            t = {**s, name: v}
            k = key(t)
            if k not in keys:
                keys.add(k)
                yield k, t


def neighbours(space: SearchSpace, s: Sample) -> list[dict[str, Any]]:
    """Every sample that differs from ``s`` in one active dimension, one per distinct network, in a fixed order."""
    return [t for _, t in iter_neighbours(space, s)]


class LocalSearch(Strategy):
    """First-improvement hill climbing over single-dimension changes, restarting at random from local optima.

    ``n_init`` random trials are drawn first and the climb starts from the best of them (1 = a
    plain random start).
    """

    name = "local_search"

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_init: int = 1) -> None:
        super().__init__(space, seed=seed)
        if n_init < 1:
            raise ValueError("local_search needs n_init >= 1")
        self.n_init = n_init
        self.rejections = Rejections()
        self.restarts: set[str] = set()

    def current(self, history: Sequence[Trial]) -> Trial | None:
        """The point the climb stands on, replayed from the scored trials in creation order."""
        scored = completed(history)
        if not scored:
            return None
        init = [t for t in scored if t.number < self.n_init]
        cur = max(init, key=lambda t: (t.score, -t.number)) if init else scored[0]
        for t in scored:
            if t.number < self.n_init or t is cur:
                continue
            if t.key in self.restarts or (t.score or 0.0) > (cur.score or 0.0):
                cur = t
        return cur

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        seen = seen_keys(history)
        seen |= self.rejections.update(seen)
        cur = self.current(history) if len(history) >= self.n_init else None
        todo: list[dict[str, Any]] = []
        if cur is not None:
            todo = [s for s in neighbours(self.space, cur.sample) if self.space.key(s) not in seen]
            todo = [todo[int(i)] for i in self.rng.permutation(len(todo))]
        out = []
        for _ in range(n):
            if todo:
                s = todo.pop()
                seen.add(self.space.key(s))
            else:
                s = self.fresh(lambda: self.space.sample(self.rng), seen)
                if cur is not None:
                    self.restarts.add(self.space.key(s))
            out.append(Suggestion(s))
        self.rejections.proposed(self.space.key(s.sample) for s in out)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.rejections.state_dict(), "restarts": sorted(self.restarts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rejections.load_state_dict(state)
        self.restarts = set(state.get("restarts", []))
