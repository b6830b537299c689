"""Screening before training: zero-cost proxies and measured-latency limits, as the loop's hooks.

``search.screen: {proxy: synflow, sample: 30, keep: 0.1}`` (the defaults) makes the loop draw 30 valid
candidates from the strategy, score each with the proxy on one fixed minibatch, and train only the best 10%.
With ``cost: latency`` (or ``flops``, ``params``) the kept share spreads along the proxy/cost front
(NSGA-II's order: its cheapest and its best-scoring candidates first) instead of taking only the top
proxy scores, which favour large networks. ``search.max_latency_ms`` rejects
(with the reason, before training) any candidate whose measured CPU latency per image is over the limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from nasforge.data.base import Dataset
from nasforge.errors import ConfigError
from nasforge.evaluate.cost import measure_latency_ms
from nasforge.screen.proxies import PROXIES, SCREEN_COSTS, screen
from nasforge.space.base import SearchSpace
from nasforge.types import Sample

if TYPE_CHECKING:
    import torch


@dataclass
class ProxyScreener:
    """Keeps the best ``keep`` share of each batch of ``sample`` candidates by a zero-cost proxy."""

    space: SearchSpace
    data: Dataset
    proxy: str = "synflow"
    sample: int = 30
    keep: float = 0.1
    batch_size: int = 64
    seed: int = 0
    cost: str | None = None

    def __call__(self, samples: Sequence[Sample]) -> list[Sample]:
        return [s for s, _ in screen(self.space, samples, self.data, self.proxy, self.keep,
                                     batch_size=self.batch_size, seed=self.seed, cost=self.cost)]


def check_screen(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``search.screen`` options; returns them with defaults filled in."""
    allowed = ("proxy", "sample", "keep", "batch_size", "cost")
    for k in opts:
        if k not in allowed:
            raise ConfigError(f"unknown key {k!r} in search.screen: valid keys: {', '.join(allowed)}")
    # ProxyScreener's defaults, the screen that won side by side on Fashion-MNIST (README, Measured); no cost
    out: dict[str, Any] = {f.name: f.default for f in fields(ProxyScreener) if f.name in allowed and f.name != "cost"}
    out.update(opts)
    if out.get("cost", "") is None:  # `cost: null` is the same as leaving it out
        del out["cost"]
    if "cost" in out and out["cost"] not in SCREEN_COSTS:
        raise ConfigError(f"search.screen.cost must be one of {', '.join(SCREEN_COSTS)} (or left out), "
                          f"got {out['cost']!r}")
    if out["proxy"] not in PROXIES:
        raise ConfigError(f"unknown proxy {out['proxy']!r} in search.screen: choose one of {', '.join(PROXIES)}")
    for k in ("sample", "batch_size"):
        if isinstance(out[k], bool) or not isinstance(out[k], int) or out[k] < 1:
            raise ConfigError(f"search.screen.{k} must be a positive integer, got {out[k]!r}")
    keep = out["keep"]
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep <= 1:
        raise ConfigError(f"search.screen.keep must be a share in (0, 1], such as 0.1; got {keep!r}")
    return out


def latency_limit(space: SearchSpace, input_shape: tuple[int, ...], n_out: int,
                  limit_ms: float, device: str | torch.device = "cpu") -> Callable[[Sample], str | None]:
    """A check that builds the candidate and measures its latency on ``device`` (where trials train and their
    latency is recorded); the reason when it is too slow."""

    def check(s: Sample) -> str | None:
        ms = measure_latency_ms(space.build(s, input_shape, n_out).to(device), input_shape)
        return None if ms <= limit_ms else f"latency {ms:.2f} ms per image exceeds the limit of {limit_ms:g} ms"

    return check
