"""Search strategies behind one ask/tell interface, in one explicit registry."""

from __future__ import annotations

from typing import Any

from nasforge.errors import ConfigError
from nasforge.space.base import SearchSpace
from nasforge.strategy.bananas import Bananas
from nasforge.strategy.base import Strategy
from nasforge.strategy.evolution import GeneticAlgorithm, RegularizedEvolution
from nasforge.strategy.local_search import LocalSearch
from nasforge.strategy.nsga2 import NSGA2
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
    "nsga2": NSGA2,
}
# the one-shot search (nasforge.oneshot.darts): it trains a supernet, so no ask/tell strategy, not in STRATEGIES
DARTS = "darts"


def make_strategy(name: str, space: SearchSpace, *, seed: int = 0, **options: Any) -> Strategy:
    """A strategy by registry name; unknown names and options give a one-line ConfigError."""
    if name == DARTS:  # trains a supernet, so it is no ask/tell strategy: see nasforge.oneshot.darts
        raise ConfigError("darts is a one-shot search, not an ask/tell strategy: run it with nasforge.search "
                          "or `nasforge search CONFIG --strategy darts`")
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)} (or darts, one-shot)")
    try:
        return STRATEGIES[name](space, seed=seed, **options)
    except TypeError as e:
        raise ConfigError(f"strategy {name!r} does not take those options ({e}); check strategy.options") from None
    except ValueError as e:
        raise ConfigError(f"strategy {name!r}: {e}") from None


__all__ = ["DARTS", "NSGA2", "STRATEGIES", "TPE", "Bananas", "GeneticAlgorithm", "LocalSearch", "RandomSearch",
           "RegularizedEvolution", "Reinforce", "Strategy", "make_strategy"]
