"""Evolutionary strategies: regularized (aging) evolution and a genetic algorithm.

Both derive their population from the history (the most recent or the best scored trials), so
they hold no state beyond the RNG and resume exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasforge.space.base import SearchSpace
from nasforge.strategy.base import Strategy, completed, recent_completed, seen_view, tournament
from nasforge.types import Suggestion, Trial


class RegularizedEvolution(Strategy):
    """Real et al. 2019: tournament selection, one mutation, and the oldest member dies.

    The population is the ``population_size`` most recently created scored trials, which is exactly
    "add the child, remove the oldest". Until that many trials exist, candidates are random; with
    ``init="mutants"`` they are mutations of the best scored trial so far, or, before any is scored (trials
    running at once), of one drawn from those so far (a warm start's neighbourhood): a short search that
    starts from a known-good network (``nasforge auto`` starts from its reference) then spends its few trials
    near it rather than on random draws of a large space, most of which train worse.
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, *, seed: int = 0, population_size: int = 20, sample_size: int = 5,
                 init: str = "random") -> None:
        super().__init__(space, seed=seed)
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError(f"evolution needs population_size >= 2 and 1 <= sample_size <= population_size, got "
                             f"population_size {population_size!r} and sample_size {sample_size!r}"
                             f"{' (the default)' if sample_size == 5 else ''}: set both, e.g. "
                             "{population_size: 10, sample_size: 3}")
        if init not in ("random", "mutants"):
            raise ValueError(f"evolution's init must be random or mutants, got {init!r}")
        self.population_size, self.sample_size, self.init = population_size, sample_size, init

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        seen = seen_view(history)
        population = recent_completed(history, self.population_size)  # the youngest scored: aging evolution
        out = []
        for i in range(n):
            if len(history) + i < self.population_size and self.init == "mutants" and history:
                # before any trial is scored (trials run at once: the warm starts still training), the
                # neighbourhood of one of the trials so far (the warm starts, their mutants), not random draws
                best = (max(completed(history), key=lambda t: (t.score, -t.number)) if population
                        else history[int(self.rng.integers(len(history)))])
                s = self.fresh(lambda b=best: self.space.mutate(b.sample, self.rng), seen)
            elif len(history) + i < self.population_size or not population:
                s = self.fresh(lambda: self.space.sample(self.rng), seen)
            else:
                parent = tournament(population, self.sample_size, self.rng)
                before = len(seen)
                s = self.fresh(lambda p=parent: self.space.mutate(p.sample, self.rng), seen)
                if len(seen) == before:  # every mutation of the parent was tried: a random newcomer instead
                    s = self.fresh(lambda: self.space.sample(self.rng), seen)
            out.append(Suggestion(s))
        return out


class GeneticAlgorithm(Strategy):
    """Generational GA with elitist (mu + lambda) selection, crossover and mutation.

    Parents are drawn by tournament from the ``population_size`` best scored trials; a child is the
    per-dimension crossover of two parents with probability ``crossover_prob`` (else a copy of the
    first), then mutated with probability ``mutation_prob`` (always, if it would repeat a network).
    """

    name = "genetic"

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int = 0,
        population_size: int = 20,
        tournament_size: int = 3,
        crossover_prob: float = 0.5,
        mutation_prob: float = 0.8,
    ) -> None:
        super().__init__(space, seed=seed)
        if population_size < 2 or tournament_size < 1:
            raise ValueError("genetic needs population_size >= 2 and tournament_size >= 1")
        if not (0 <= crossover_prob <= 1 and 0 <= mutation_prob <= 1):
            raise ValueError("genetic crossover_prob and mutation_prob must be in [0, 1]")
        self.population_size, self.tournament_size = population_size, tournament_size
        self.crossover_prob, self.mutation_prob = crossover_prob, mutation_prob

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        seen = seen_view(history)
        pool = self.parents(completed(history))
        out = []
        for i in range(n):
            if len(history) + i < self.population_size or len(pool) < 2:
                s = self.fresh(lambda: self.space.sample(self.rng), seen)
            else:
                a, b = self.pick(pool), self.pick(pool)
                child = (self.space.crossover(a.sample, b.sample, self.rng)
                         if self.rng.random() < self.crossover_prob else dict(a.sample))
                if self.rng.random() < self.mutation_prob or self.space.key(child) in seen:
                    child = self.space.mutate(child, self.rng)
                s = child if self.space.key(child) not in seen else self.fresh(
                    lambda c=child: self.space.mutate(c, self.rng), seen)
                seen.add(self.space.key(s))
            out.append(Suggestion(s))
        return out

    def parents(self, scored: Sequence[Trial]) -> list[Trial]:
        """The elite the parents come from: the ``population_size`` best by score."""
        return sorted(scored, key=lambda t: (-(t.score or 0.0), t.number))[: self.population_size]

    def pick(self, pool: Sequence[Trial]) -> Trial:
        return tournament(pool, self.tournament_size, self.rng)
