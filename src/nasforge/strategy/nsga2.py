"""NSGA-II for architectures: accuracy against parameters, FLOPs or latency.

Deb et al. 2002, in ask/tell form: the parents are the ``population_size`` best scored trials by
non-dominated front and crowding distance (elitist mu + lambda), chosen by binary tournament, then
crossed over and mutated. Everything derives from the history, so the state is the RNG alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.pareto import check_objectives, point, rank
from nasforge.space.base import SearchSpace
from nasforge.strategy.base import Strategy, completed, seen_keys
from nasforge.types import Suggestion, Trial


class NSGA2(Strategy):
    """Multi-objective evolution; with ``objectives=["accuracy"]`` it is an elitist genetic algorithm."""

    name = "nsga2"
    multi_objective = True

    def __init__(self, space: SearchSpace, *, seed: int = 0, objectives: Sequence[str] = ("accuracy", "params"),
                 population_size: int = 20, crossover_prob: float = 0.3, mutation_prob: float = 1.0) -> None:
        super().__init__(space, seed=seed)
        if population_size < 2:
            raise ValueError("nsga2 needs population_size >= 2")
        if not (0 <= crossover_prob <= 1 and 0 <= mutation_prob <= 1):
            raise ValueError("nsga2 crossover_prob and mutation_prob must be in [0, 1]")
        self.objectives = check_objectives(objectives)
        self.population_size, self.crossover_prob, self.mutation_prob = population_size, crossover_prob, mutation_prob

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        seen = seen_keys(history)
        scored = completed(history)
        order = rank([point(t, self.objectives) for t in scored])
        pool = [scored[i] for i in order[: self.population_size]]  # position in pool = merit
        out = []
        for i in range(n):
            if len(history) + i < self.population_size or len(pool) < 2:
                s = self.fresh(lambda: self.space.sample(self.rng), seen)
            else:
                a, b = self._pick(pool), self._pick(pool)
                child = (self.space.crossover(a.sample, b.sample, self.rng)
                         if self.rng.random() < self.crossover_prob else dict(a.sample))
                if self.rng.random() < self.mutation_prob or self.space.key(child) in seen:
                    child = self.space.mutate(child, self.rng)
                s = child if self.space.key(child) not in seen else self.fresh(
                    lambda c=child: self.space.mutate(c, self.rng), seen)
                seen.add(self.space.key(s))
            out.append(Suggestion(s))
        return out

    def _pick(self, pool: Sequence[Trial]) -> Trial:
        """Binary tournament: of two random pool members, the one ranked higher."""
        i, j = self.rng.choice(len(pool), size=2, replace=False)
        return pool[min(int(i), int(j))]
