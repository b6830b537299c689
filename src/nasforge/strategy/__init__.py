"""Search strategies behind one ask/tell interface, in one explicit registry."""

from __future__ import annotations

from typing import Any

from nasforge.errors import ConfigError
from nasforge.space.base import SearchSpace
from nasforge.strategy.bananas import Bananas
from nasforge.strategy.base import Strategy
from nasforge.strategy.evolution import GeneticAlgorithm, RegularizedEvolution
from nasforge.strategy.local_search import LocalSearch
from nasforge.strategy.random import RandomSearch
from nasforge.strategy.reinforce import Reinforce
from nasforge.strategy.tpe import TPE

STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "genetic": GeneticAlgorithm,
    "reinforce": Reinforce,
    "tpe": TPE,
    "bananas": Bananas,
    "local_search": LocalSearch,
}


def make_strategy(name: str, space: SearchSpace, *, seed: int = 0, **options: Any) -> Strategy:
    """A strategy by registry name; unknown names and options give a one-line ConfigError."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}")
    try:
        return STRATEGIES[name](space, seed=seed, **options)
    except TypeError as e:
        raise ConfigError(f"strategy {name!r} does not take those options ({e}); check strategy.options") from None
    except ValueError as e:
        raise ConfigError(f"strategy {name!r}: {e}") from None


__all__ = ["STRATEGIES", "TPE", "Bananas", "GeneticAlgorithm", "LocalSearch", "RandomSearch", "RegularizedEvolution",
           "Reinforce", "Strategy", "make_strategy"]
