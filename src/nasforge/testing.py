"""Reusable test suites and a synthetic objective, shipped with the package (as Optuna does).

A new strategy is covered by adding its registry name to ``STRATEGIES`` in ``nasforge.strategy``:
``tests/test_strategies.py`` parametrises :class:`StrategySuite` over that registry, so every entry
gets the same contract tests (valid, new, seeded, resumable, better than chance).

Third-party strategies can reuse the suite::

    class TestMine(StrategySuite):
        @pytest.fixture
        def make(self):
            return lambda space, seed: MyStrategy(space, seed=seed)

Spaces likewise: ``tests/test_spaces_suite.py`` runs :class:`SpaceSuite` on every entry of
``nasforge.space.SPACES`` with each input kind (image, sequence, flat) the entry accepts.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.space.base import SearchSpace
from nasforge.space.chain import ChainSpace
from nasforge.strategy.base import Strategy
from nasforge.types import Budget, EvalResult, Sample, Trial

StrategyFactory = Callable[[SearchSpace, int], Strategy]
Reporter = Callable[[int, Mapping[str, float]], None]


def toy_space() -> ChainSpace:
    """A small image chain space: fast to check, big enough that chance rarely finds the optimum."""
    return ChainSpace(max_blocks=5, widths=(8, 16, 32, 64), kernels=(3, 5), strides=(1, 2),
                      activations=("relu", "tanh", "sigmoid"))


TOY_SHAPE = (1, 16, 16)


def toy_objective(space: ChainSpace, s: Sample) -> float:
    """A smooth, structured score in [0, 1): rewards wide BN-relu convs then pooling, penalises depth noise.

    Stands in for validation accuracy where a strategy's *search behaviour* is under test; one
    mutation changes it a little, as in real NAS landscapes.
    """
    score = 0.3
    blocks = space.blocks(s)
    for i, b in enumerate(blocks):
        if b.type == "conv":
            score += 0.04 * np.log2(b.get("width") / 4) / 4 + (0.03 if b.get("bn") else 0)
            score += {"relu": 0.02, "tanh": 0.0, "sigmoid": -0.03}[b.get("act")]
            score += 0.01 if b.get("kernel") == 3 else 0.0
        elif b.type == "pool":
            score += 0.03 if i > 0 and blocks[i - 1].type == "conv" else -0.01
        elif b.type == "dense":
            score -= 0.02
        elif b.type == "dropout":
            score += 0.005
    return float(min(score, 0.999))


class FunctionEvaluator:
    """An evaluator for synthetic objectives: the score is a function of the sample, no training.

    With ``curves=True`` it also plays a learning curve: after epoch ``e`` of a budget the value is
    ``fn(sample) * (1 - 0.5 ** e)``, reported epoch by epoch (so stopping rules and schedulers see
    real curves), continuing from where a checkpointed trial left off.
    """

    def __init__(self, fn: Callable[[Sample], float], *, curves: bool = False, delay: float = 0.0) -> None:
        self.fn = fn
        self.curves = curves
        self.delay = delay  # seconds of sleep per trial (per epoch with curves), to make trials take time
        self.calls = 0
        self.epochs_trained = 0.0

    def evaluate(self, sample: Sample, budget: Budget, report: Reporter | None = None,
                 checkpoint: Path | None = None) -> EvalResult:
        self.calls += 1
        v = self.fn(sample)
        if not self.curves:
            time.sleep(self.delay)
            return EvalResult(score=v, metrics={"accuracy": v})
        start = 0
        if checkpoint is not None and checkpoint.exists():
            start = min(int(json.loads(checkpoint.read_text())["epochs"]), int(budget.epochs))
        rows = []
        for e in range(1, int(budget.epochs) + 1):
            row = {"epoch": float(e), "val_accuracy": v * (1 - 0.5 ** e)}
            rows.append(row)
            if e > start:
                time.sleep(self.delay)
                self.epochs_trained += 1
                if report is not None:
                    report(e, row)
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text(json.dumps({"epochs": budget.epochs}))
        score = rows[-1]["val_accuracy"]
        return EvalResult(score=score, metrics={"accuracy": score}, curve=tuple(rows))


@dataclass(frozen=True)
class ToyFactory:
    """Builds a :class:`FunctionEvaluator` on the toy objective in a worker: for executor tests.

    ``log`` names a file that gets one line (the pid) per build, to count builds per worker;
    ``oom_every`` makes every k-th trial of a worker ask for an impossible amount of memory, as a
    candidate that runs out of memory does.
    """

    curves: bool = False
    delay: float = 0.0
    log: str | None = None
    oom_every: int = 0

    def __call__(self) -> FunctionEvaluator:
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n")
        space = toy_space()
        if self.oom_every:
            return _Hungry(functools.partial(toy_objective, space), curves=self.curves, delay=self.delay,
                           every=self.oom_every)
        return FunctionEvaluator(functools.partial(toy_objective, space), curves=self.curves, delay=self.delay)


class _Hungry(FunctionEvaluator):
    def __init__(self, fn: Callable[[Sample], float], *, every: int, **kw: Any) -> None:
        super().__init__(fn, **kw)
        self.every = every

    def evaluate(self, sample: Sample, budget: Budget, report: Reporter | None = None,
                 checkpoint: Path | None = None) -> EvalResult:
        if (self.calls + 1) % self.every == 0:
            import torch

            self.calls += 1
            torch.empty(1 << 44)  # 64 TiB: the allocator refuses at once, as it does for a too-big model
        return super().evaluate(sample, budget, report, checkpoint)


def simulate(strategy: Strategy, space: SearchSpace, fn: Callable[[Sample], float], n: int,
             input_shape: tuple[int, ...] = TOY_SHAPE) -> list[Trial]:
    """Ask/tell ``n`` valid trials against ``fn`` through an in-memory :class:`~nasforge.study.Study`."""
    from nasforge.study import Study

    study = Study(space, strategy, input_shape=input_shape)
    while len(study.trials) < n:
        trial = study.ask()
        if trial is None:
            raise AssertionError(f"{strategy.name} proposed only networks it had already tried")
        study.tell(trial, fn(trial.sample))
    return list(study.trials)


class StrategySuite:
    """Contract tests every strategy must pass; subclass and provide a ``make`` fixture."""

    def test_samples_are_points_of_the_space(self, make: StrategyFactory) -> None:
        space = toy_space()
        strat = make(space, 0)
        history = simulate(strat, space, lambda s: toy_objective(space, s), 30)
        for sug in strat.ask(history, 3):
            assert set(sug.sample) == set(space.dims())
            for name in space.active(sug.sample):
                space.dims()[name].index(sug.sample[name])

    def test_never_repeats_a_tried_network(self, make: StrategyFactory) -> None:
        space = toy_space()
        strat = make(space, 1)
        history = simulate(strat, space, lambda s: toy_objective(space, s), 40)
        seen = {t.key for t in history}
        proposals = strat.ask(history, 5)
        assert all(space.key(s.sample) not in seen for s in proposals)

    def test_same_seed_same_trials_other_seed_other_trials(self, make: StrategyFactory) -> None:
        space = toy_space()
        fn = lambda s: toy_objective(space, s)  # noqa: E731
        a = [t.key for t in simulate(make(space, 7), space, fn, 25)]
        b = [t.key for t in simulate(make(space, 7), space, fn, 25)]
        c = [t.key for t in simulate(make(space, 8), space, fn, 25)]
        assert a == b
        assert a != c

    def test_state_dict_is_json_and_resumes_exactly(self, make: StrategyFactory) -> None:
        space = toy_space()
        fn = lambda s: toy_objective(space, s)  # noqa: E731
        strat = make(space, 3)
        history = simulate(strat, space, fn, 20)
        state = json.loads(json.dumps(strat.state_dict()))
        expected = [space.key(s.sample) for s in strat.ask(history, 4)]
        clone = make(space, 999)
        clone.load_state_dict(state)
        for t in history:
            clone.tell(t)
        clone.load_state_dict(state)
        assert [space.key(s.sample) for s in clone.ask(history, 4)] == expected

    def test_uses_no_global_rng(self, make: StrategyFactory) -> None:
        space = toy_space()
        fn = lambda s: toy_objective(space, s)  # noqa: E731
        np.random.seed(0)
        import random

        random.seed(0)
        before = (np.random.get_state()[1].copy(), random.getstate())  # type: ignore[index]
        simulate(make(space, 0), space, fn, 15)
        assert np.array_equal(np.random.get_state()[1], before[0])  # type: ignore[index]
        assert random.getstate() == before[1]

    def test_finds_better_than_the_median_candidate(self, make: StrategyFactory) -> None:
        """Best of 60 trials beats the median random candidate on every one of 5 seeds."""
        space = toy_space()
        fn = lambda s: toy_objective(space, s)  # noqa: E731
        rng = np.random.default_rng(0)
        pool = [space.sample(rng) for _ in range(2000)]
        ref = float(np.median([fn(s) for s in pool if space.check(s, TOY_SHAPE) is None]))
        for seed in range(5):
            best = max(t.score or 0.0 for t in simulate(make(space, seed), space, fn, 60))
            assert best > ref


class SpaceSuite:
    """Contract tests every search space must pass; subclass and provide ``space`` and ``input_shape`` fixtures.

    What the strategies, the loop and the store rely on: samples are flat JSON points of ``dims()``,
    ``key`` is canonical (dormant values and JSON round trips change nothing), ``mutate`` and
    ``crossover`` stay in the space, ``check`` explains rather than raises, and every sample that
    passes ``check`` builds a network of the right output shape.
    """

    n_samples = 30

    def samples(self, space: SearchSpace, seed: int = 0, n: int | None = None) -> list[dict[str, Any]]:
        rng = np.random.default_rng(seed)
        return [dict(space.sample(rng)) for _ in range(n or self.n_samples)]

    @staticmethod
    def assert_in_space(space: SearchSpace, s: Sample) -> None:
        dims = space.dims()
        assert set(s) == set(dims), f"dimensions differ: {sorted(set(s) ^ set(dims))}"
        active = space.active(s)
        assert set(active) <= set(dims)
        for name in active:
            dims[name].index(s[name])  # ValueError if outside the space

    def test_samples_are_json_points_that_round_trip(self, space: SearchSpace) -> None:
        for s in self.samples(space):
            self.assert_in_space(space, s)
            back = json.loads(json.dumps(s))
            assert back == s
            assert space.key(back) == space.key(s)

    def test_same_seed_same_samples(self, space: SearchSpace) -> None:
        a, b = self.samples(space, 5), self.samples(space, 5)
        assert [space.key(s) for s in a] == [space.key(s) for s in b]
        assert len({space.key(s) for s in a}) > 1

    def test_key_is_a_canonical_string_blind_to_dormant_values(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(1)
        dims = space.dims()
        for s in self.samples(space, 1):
            k = space.key(s)
            assert isinstance(k, str) and k
            assert space.key(dict(s)) == k and space.key(dict(reversed(list(s.items())))) == k
            active = set(space.active(s))
            for name in dims:
                if name not in active and len(dims[name]) > 1:  # a dormant value: same network, same key
                    other = dict(s)
                    other[name] = dims[name].other(s[name], rng)
                    assert space.key(other) == k, f"changing dormant {name} changed the key"

    def test_mutate_changes_the_network_and_stays_in_the_space(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(2)
        changed = total = 0
        for s in self.samples(space, 2):
            before = dict(s)
            for _ in range(3):
                child = space.mutate(s, rng)
                self.assert_in_space(space, child)
                changed += space.key(child) != space.key(s)
                total += 1
            assert s == before, "mutate changed its argument"
        assert changed >= 0.6 * total, f"only {changed} of {total} mutations changed the network"

    def test_crossover_stays_in_the_space(self, space: SearchSpace) -> None:
        rng = np.random.default_rng(3)
        pool = self.samples(space, 3)
        for a, b in itertools.pairwise(pool):
            before = (dict(a), dict(b))
            child = space.crossover(a, b, rng)
            self.assert_in_space(space, child)
            assert (a, b) == before, "crossover changed its arguments"

    def test_check_explains_and_never_raises(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        for s in self.samples(space, 4):
            reason = space.check(s, input_shape, 7)
            assert reason is None or (isinstance(reason, str) and reason)
        assert isinstance(space.check({}, input_shape, 7), str)  # not a point of the space: a reason
        bad = dict(self.samples(space, 4, 1)[0])
        name = space.active(bad)[0]
        bad[name] = "no such value"
        assert isinstance(space.check(bad, input_shape, 7), str)

    def test_valid_samples_build_and_run(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        import torch

        rng = np.random.default_rng(5)
        valid = []
        for _ in range(200):
            s = space.sample(rng)
            if space.check(s, input_shape, 7) is None:
                valid.append(s)
                if len(valid) == 3:
                    break
        assert valid, f"no valid sample among 200 for input {input_shape}"
        torch.manual_seed(0)
        for s in valid:
            model = space.build(s, input_shape, 7)
            assert isinstance(model, torch.nn.Module)
            with torch.no_grad():
                out = model.train()(torch.randn(2, *input_shape))
            assert out.shape == (2, 7), space.describe(s)
            assert torch.isfinite(out).all()

    def test_describe_is_short_text(self, space: SearchSpace) -> None:
        for s in self.samples(space, 6, 10):
            text = space.describe(s)
            assert isinstance(text, str) and text.strip() and "\n" not in text

    def test_uses_no_global_rng(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        np.random.seed(0)
        random.seed(0)
        before = (np.random.get_state()[1].copy(), random.getstate())  # type: ignore[index]
        rng = np.random.default_rng(7)
        pool = self.samples(space, 7, 10)
        for a, b in itertools.pairwise(pool):
            c = space.crossover(space.mutate(a, rng), b, rng)
            space.key(c)
            space.active(c)
            space.describe(c)
            space.check(c, input_shape, 7)
        assert np.array_equal(np.random.get_state()[1], before[0])  # type: ignore[index]
        assert random.getstate() == before[1]


def run_toy(strategy_name: str, seeds: int, trials: int, **options: Any) -> list[float]:
    """Best toy score per seed, for comparing strategies in tests and benchmarks."""
    from nasforge.strategy import make_strategy

    space = toy_space()
    out = []
    for seed in range(seeds):
        hist = simulate(make_strategy(strategy_name, space, seed=seed, **options), space,
                        lambda s: toy_objective(space, s), trials)
        out.append(max(t.score or 0.0 for t in hist))
    return out
