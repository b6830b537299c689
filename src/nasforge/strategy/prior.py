"""How much a prior from earlier experiments counts against a search's own trials (``bananas``, ``tpe``)."""

from __future__ import annotations


def prior_weight(n_prior: int, n_own: int, strength: float) -> float:
    """The weight of one prior trial against one of this search's own: the prior counts as ``strength``
    trials in all, then fades as ``strength / (strength + n_own)`` while this search's own trials arrive."""
    if n_prior == 0:
        return 0.0
    return strength / n_prior * strength / (strength + n_own)


__all__ = ["prior_weight"]
