"""NSGA-II for architectures: accuracy against parameters, FLOPs or latency.

Deb et al. 2002, in ask/tell form: the genetic algorithm's crossover-and-mutation loop, with the
parents drawn from the ``population_size`` best scored trials by non-dominated front and crowding
distance (elitist mu + lambda) by binary tournament. Everything derives from the history, so the
state is the RNG alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.pareto import check_objectives, point, rank
from nasforge.space.base import SearchSpace
from nasforge.strategy.evolution import GeneticAlgorithm
from nasforge.types import Trial


class NSGA2(GeneticAlgorithm):
    """Multi-objective evolution; with ``objectives=["accuracy"]`` it is an elitist genetic algorithm."""

    name = "nsga2"
    multi_objective = True

    def __init__(self, space: SearchSpace, *, seed: int = 0, objectives: Sequence[str] = ("accuracy", "params"),
                 population_size: int = 20, crossover_prob: float = 0.3, mutation_prob: float = 1.0) -> None:
        super().__init__(space, seed=seed, population_size=population_size, crossover_prob=crossover_prob,
                         mutation_prob=mutation_prob)
        self.objectives = check_objectives(objectives)

    def parents(self, scored: Sequence[Trial]) -> list[Trial]:
        """The best by Pareto front, then crowding distance; position in the list is merit."""
        order = rank([point(t, self.objectives) for t in scored])
        return [scored[i] for i in order[: self.population_size]]

    def pick(self, pool: Sequence[Trial]) -> Trial:
        """Binary tournament: of two random pool members, the one ranked higher."""
        i, j = self.rng.choice(len(pool), size=2, replace=False)
        return pool[min(int(i), int(j))]
