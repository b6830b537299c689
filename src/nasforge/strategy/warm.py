"""Warm start: architectures the user already trusts are tried first, then the strategy takes over.

Like Optuna's ``enqueue_trial`` or AutoKeras starting from known-good models. The queued networks
are ordinary trials: evolution's tournaments, the GA's parents and the model-based strategies'
surrogates see them in the history like any other, so a search can improve on a hand-designed
network instead of rediscovering it. The queue is derived from the history (a queued network already
tried is skipped), so resuming needs no extra state. A proxy screen (``search.screen``) never drops
them: they are trained whatever their proxy score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nasforge.errors import ConfigError
from nasforge.space.base import SearchSpace
from nasforge.space.chain import ChainSpace, chain_sample
from nasforge.strategy.base import Strategy, seen_keys
from nasforge.types import Budget, Sample, Suggestion, Trial


class WarmStart(Strategy):
    """Asks ``samples`` first, in order, then ``inner``; tells and state go to ``inner``."""

    name = "warm_start"

    def __init__(self, inner: Strategy, samples: Sequence[Sample], budget: Budget | None = None) -> None:
        """``budget``: what the queued networks train for (a scheduler's full budget: a hand-designed
        network is not judged at the lowest rung, where slow starters lose); None: as any new trial."""
        super().__init__(inner.space, seed=inner.seed)
        self.budget = budget
        self.inner = inner
        self.rng = inner.rng  # one RNG: the wrapper draws nothing itself
        self.samples = [dict(s) for s in samples]
        self._given: set[str] = set()  # proposed by this process but maybe not in the history yet

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        seen = seen_keys(history) | self._given
        out: list[Suggestion] = []
        for s in self.samples:
            key = self.space.key(s)
            if len(out) < n and key not in seen:
                seen.add(key)
                self._given.add(key)
                out.append(Suggestion(dict(s), budget=self.budget, screen=False))
        if len(out) < n:
            out += self.inner.ask(history, n - len(out))
        return out

    def tell(self, trial: Trial) -> None:
        self.inner.tell(trial)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


def initial_samples(specs: Sequence[Mapping[str, Any]], space: SearchSpace, input_shape: tuple[int, ...],
                    n_out: int) -> list[Sample]:
    """``search.initial`` entries as samples of ``space``, each checked; a bad one is a one-line ConfigError.

    A chain-space entry may be ``{blocks: [{type: conv, width: 32, kernel: 3}, ...], head: flatten}``
    (unnamed settings take the space's first value); any space takes a full sample as a mapping.
    """
    out: list[Sample] = []
    for i, spec in enumerate(specs):
        where = f"search.initial[{i}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a mapping (a sample, or {{blocks: [...]}} for a chain space)")
        if "blocks" in spec:
            if not isinstance(space, ChainSpace):
                raise ConfigError(f"{where}: `blocks` describes a chain network but the space is {space.kind}; "
                                  "give a full sample instead")
            extra = set(spec) - {"blocks", "head"}
            blocks = spec["blocks"]
            if extra or not isinstance(blocks, Sequence) or not all(isinstance(b, Mapping) for b in blocks):
                raise ConfigError(f"{where} must be {{blocks: [{{type: conv, width: 32}}, ...], head: flatten}}")
            try:
                sample = chain_sample(space, blocks, str(spec.get("head", space.dims()["head"].values[0])))
            except ValueError as e:
                raise ConfigError(f"{where}: {e}; fit the network to the space's min_blocks/max_blocks") from None
            unknown = {str(k) for b in blocks for k in b} - {k.split(".", 1)[1] for k in space.dims() if "." in k}
            if unknown:
                raise ConfigError(f"{where}: unknown block setting(s) {sorted(unknown)}; "
                                  f"use the space's dimension names (type, width, kernel, ...)")
        else:
            sample = dict(spec)
        reason = space.check(sample, input_shape, n_out)
        if reason is not None:
            raise ConfigError(f"{where} ({space.describe(sample) if _describable(space, sample) else 'sample'}) "
                              f"is not a valid candidate: {reason}; change it or widen the space")
        out.append(sample)
    return out


def _describable(space: SearchSpace, sample: Sample) -> bool:
    try:
        space.describe(sample)
    except (KeyError, ValueError, TypeError, IndexError):
        return False
    return True
