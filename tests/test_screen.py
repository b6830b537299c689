"""Screening in the loop: proxy-screened queues (resumable), latency limits, and their config."""

from __future__ import annotations

import math

import pytest

from nasforge.config import from_dict
from nasforge.errors import ConfigError
from nasforge.loop import run_search
from nasforge.screen.proxies import score_samples
from nasforge.screen.screener import ProxyScreener, latency_limit
from nasforge.space.chain import ChainSpace
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.testing import TOY_SHAPE, FunctionEvaluator, toy_objective, toy_space
from nasforge.types import Budget


class ByObjective:
    """A screener that keeps the best quarter by the toy objective itself (a perfect proxy)."""

    sample = 8

    def __init__(self, space):
        self.space, self.calls = space, 0

    def __call__(self, samples):
        self.calls += 1
        return sorted(samples, key=lambda s: -toy_objective(self.space, s))[: len(samples) // 4]


def search(db, n, *, resume=False, screener=None, evaluator=None):
    space = toy_space()
    ev = evaluator or FunctionEvaluator(lambda s: toy_objective(space, s))
    with Store(db) as st:
        exp = st.experiment("toy") if resume else st.create_experiment("toy", {}, "fp")
        return run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=0),
                          evaluator=ev, input_shape=TOY_SHAPE, budget=Budget(), max_trials=n,
                          screener=screener or ByObjective(space))


def test_screening_trains_only_the_kept_share_and_it_pays(tmp_path):
    space = toy_space()
    scr = ByObjective(space)
    screened = search(tmp_path / "a.db", 12, screener=scr).trials
    assert scr.calls == 6  # 8 drawn, 2 kept, per batch
    with Store(tmp_path / "b.db") as st:
        exp = st.create_experiment("toy", {}, "fp")
        plain = run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=0),
                           evaluator=FunctionEvaluator(lambda s: toy_objective(space, s)), input_shape=TOY_SHAPE,
                           budget=Budget(), max_trials=12).trials
    assert sum(t.score for t in screened) > sum(t.score for t in plain)
    assert len({t.key for t in screened}) == 12


def test_a_resumed_screened_search_trains_the_saved_queue(tmp_path):
    straight = search(tmp_path / "a.db", 11).trials
    search(tmp_path / "b.db", 5)  # stops with a half-used queue
    resumed = search(tmp_path / "b.db", 11, resume=True).trials
    assert [t.key for t in resumed] == [t.key for t in straight]


def test_proxy_screener_and_latency_limit_on_real_networks(digits):
    space = ChainSpace(max_blocks=3, widths=(4, 32), kernels=(3,), types=("conv", "pool"))
    import numpy as np

    rng = np.random.default_rng(0)
    pool = [s for s in (space.sample(rng) for _ in range(40)) if space.check(s, digits.input_shape) is None][:10]
    kept = ProxyScreener(space, digits, proxy="synflow", keep=0.3)(pool)
    assert len(kept) == 3 and all(s in pool for s in kept)
    cheap = ProxyScreener(space, digits, proxy="synflow", keep=0.3, cost="params")(pool)
    assert len(cheap) == 3 and all(s in pool for s in cheap)
    size = {space.key(s): sum(p.numel() for p in space.build(s, digits.input_shape, 10).parameters()) for s in pool}
    scores = score_samples(space, pool, digits, "synflow", batch_size=64, seed=0)
    scoring = [s for s, v in zip(pool, scores, strict=True) if math.isfinite(v)]
    assert min(scoring, key=lambda s: size[space.key(s)]) in cheap  # the cost option reached the screen
    assert {space.key(s) for s in cheap} != {space.key(s) for s in kept}
    check = latency_limit(space, digits.input_shape, 10, 1e-6)
    assert "exceeds the limit" in check(pool[0])
    assert latency_limit(space, digits.input_shape, 10, 1e6)(pool[0]) is None


def test_screen_and_latency_settings_are_checked():
    cfg = from_dict({"search": {"screen": {"proxy": "synflow", "sample": 50, "keep": 0.2}, "max_latency_ms": 2}})
    assert cfg.search.screen["sample"] == 50 and cfg.search.max_latency_ms == 2.0
    assert from_dict({"search": {"screen": "naswot"}}).search.screen["keep"] == 0.1
    assert from_dict({"search": {"screen": {}}}).search.screen == {"proxy": "synflow", "sample": 30, "keep": 0.1,
                                                                     "batch_size": 64}
    assert from_dict({"search": {"screen": {"cost": "flops"}}}).search.screen["cost"] == "flops"
    assert "cost" not in from_dict({"search": {"screen": {"cost": None}}}).search.screen  # null: left out
    for bad, msg in (({"proxy": "magic"}, "unknown proxy"), ({"keep": 2}, "keep"), ({"sample": 0}, "sample"),
                     ({"proxy": "naswot", "n": 3}, "unknown key 'n'"),
                     ({"cost": "memory"}, "screen.cost must be one of params, flops, latency")):
        with pytest.raises(ConfigError, match=msg):
            from_dict({"search": {"screen": bad}})
    with pytest.raises(ConfigError, match="max_latency_ms"):
        from_dict({"search": {"max_latency_ms": -1}})
