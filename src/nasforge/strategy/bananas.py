"""BANANAS-style predictor-guided search (White et al. 2021), generic over any SearchSpace.

Each ask trains an ensemble of small MLPs on the history (one-hot of the active dimensions ->
standardised score), scores a pool of candidates (the untried neighbours of the best trials, some
random mutations of them and some random samples) with an acquisition function over the ensemble's
mean and spread (expected improvement by default), and proposes the best.

The predictor is rebuilt from the history every time, so the state is only the RNG (and the
proposals the loop rejected, see :mod:`nasforge.strategy.memory`) and resuming is exact. The MLPs
are plain numpy, trained full-batch with Adam and initialised from ``self.rng``: deterministic, no
torch, and about 20-40 ms per ask on 100 trials.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from nasforge.space.base import SearchSpace
from nasforge.strategy.base import Strategy, completed, seen_keys
from nasforge.strategy.local_search import iter_neighbours
from nasforge.strategy.memory import Rejections
from nasforge.strategy.prior import prior_weight
from nasforge.types import Sample, Suggestion, Trial

ACQUISITIONS = ("ei", "ucb", "its", "mean")


_BLAS: list[Any] = []  # threadpoolctl's controller, made once: finding the libraries takes milliseconds


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run tiny matrix products on one BLAS thread when threadpoolctl is there (it comes with scikit-learn).

    Threads cost more than they save on matrices this small, far more on a busy machine, and one
    thread keeps the sums in the same order everywhere.
    """
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except ImportError:
            _BLAS.append(None)
    if _BLAS[0] is None:
        yield
        return
    with _BLAS[0].limit(limits=1, user_api="blas"):
        yield


def sample_id(s: Sample) -> tuple[Any, ...] | None:
    """A hashable identity of a sample (None if a value is unhashable); types included, as 1 == True."""
    try:
        ident = (tuple(s.items()), tuple(map(type, s.values())))
        hash(ident)
    except TypeError:
        return None
    return ident


class KeyCache:
    """``space.key`` memoised by sample identity: keys are pure, and a pool recomputes the same ones each ask."""

    def __init__(self, space: SearchSpace, limit: int = 100_000) -> None:
        self.space, self.limit = space, limit
        self._keys: dict[tuple[Any, ...], str] = {}

    def __call__(self, s: Sample) -> str:
        ident = sample_id(s)
        if ident is None:
            return self.space.key(s)
        k = self._keys.get(ident)
        if k is None:
            if len(self._keys) >= self.limit:
                self._keys.clear()
            k = self._keys[ident] = self.space.key(s)
        return k


class OneHot:
    """One-hot of every dimension's value; inactive dimensions are all zeros, so dormant values do not matter."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.offsets: dict[str, int] = {}
        width = 0
        for name, c in space.dims().items():
            if len(c) > 1:  # a single-valued dimension carries no information
                self.offsets[name] = width
                width += len(c)
        self.width = width
        self._col: dict[tuple[str, type, Any], int] = {}  # (dim, type, value) -> column, filled as met
        self._rows: dict[tuple[Any, ...], list[int]] = {}  # sample -> its columns, for samples met again

    def column(self, name: str, value: Any) -> int:
        k = (name, type(value), value)
        col = self._col.get(k)
        if col is None:
            col = self._col[k] = self.offsets[name] + self.space.dims()[name].index(value)
        return col

    def columns(self, s: Sample) -> list[int]:
        """The one-hot columns of ``s`` (cached: the neighbours of the best trials recur in every ask)."""
        ident = sample_id(s)
        cols = self._rows.get(ident) if ident is not None else None
        if cols is None:
            cols = [self.column(n, s[n]) for n in self.space.active(s) if n in self.offsets]
            if ident is not None:
                if len(self._rows) > 100_000:
                    self._rows.clear()
                self._rows[ident] = cols
        return cols

    def __call__(self, samples: Sequence[Sample]) -> np.ndarray:
        rows: list[int] = []
        cols: list[int] = []
        for i, s in enumerate(samples):
            c = self.columns(s)
            rows += [i] * len(c)
            cols += c
        x = np.zeros((len(samples), self.width))
        x[rows, cols] = 1.0
        return x


class MLPEnsemble:
    """``size`` two-hidden-layer ReLU MLPs trained together as batched numpy arrays.

    All weights live in one flat vector (with per-layer views), so an Adam step is a handful of
    numpy calls whatever the network shapes: training stays in the milliseconds.
    """

    def __init__(self, n_in: int, rng: np.random.Generator, *, size: int = 5, hidden: int = 32) -> None:
        shapes = [(size, n_in, hidden), (size, 1, hidden), (size, hidden, hidden), (size, 1, hidden),
                  (size, hidden, 1), (size, 1, 1)]
        sizes = [math.prod(sh) for sh in shapes]
        self.theta = np.zeros(sum(sizes))
        self.grad = np.zeros_like(self.theta)
        bounds = np.cumsum([0, *sizes])
        self.params = [self.theta[a:b].reshape(sh) for a, b, sh in zip(bounds[:-1], bounds[1:], shapes, strict=True)]
        self.grads = [self.grad[a:b].reshape(sh) for a, b, sh in zip(bounds[:-1], bounds[1:], shapes, strict=True)]
        for w, fan_in in ((self.params[0], n_in), (self.params[2], hidden), (self.params[4], hidden)):
            w[...] = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=w.shape)  # He initialisation
        self._decay = np.zeros_like(self.theta)
        for i in (0, 2, 4):  # weight decay on weights, not biases
            self._decay[bounds[i]:bounds[i + 1]] = 1.0

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w1, b1, w2, b2, w3, b3 = self.params
        h1 = np.maximum(x @ w1 + b1, 0.0)
        h2 = np.maximum(h1 @ w2 + b2, 0.0)
        return (h2 @ w3 + b3)[..., 0], h1, h2

    def fit(self, x: np.ndarray, y: np.ndarray, *, steps: int = 200, lr: float = 0.01,
            weight_decay: float = 1e-4, weights: np.ndarray | None = None) -> None:
        """Full-batch Adam on (``weights``-weighted) mean squared error; every member sees the same data,
        differing by its init."""
        n = len(x)
        w_row = None if weights is None else (weights / weights.sum())[None, :, None]
        xt = np.ascontiguousarray(x.T)
        _, _, w2, _, w3, _ = self.params
        g_w1, g_b1, g_w2, g_b2, g_w3, g_b3 = self.grads
        m = np.zeros_like(self.theta)
        v = np.zeros_like(self.theta)
        decay = weight_decay * self._decay
        b1, b2, eps = 0.9, 0.999, 1e-8
        for t in range(1, steps + 1):
            out, h1, h2 = self._forward(x)
            g_out = (2.0 / n) * (out - y)[..., None] if w_row is None else 2.0 * w_row * (out - y)[..., None]
            np.matmul(h2.transpose(0, 2, 1), g_out, out=g_w3)
            g_b3[...] = g_out.sum(axis=1, keepdims=True)
            g_h2 = (g_out @ w3.transpose(0, 2, 1)) * (h2 > 0)
            np.matmul(h1.transpose(0, 2, 1), g_h2, out=g_w2)
            g_b2[...] = g_h2.sum(axis=1, keepdims=True)
            g_h1 = (g_h2 @ w2.transpose(0, 2, 1)) * (h1 > 0)
            np.matmul(xt, g_h1, out=g_w1)
            g_b1[...] = g_h1.sum(axis=1, keepdims=True)
            g = self.grad + decay * self.theta
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            step = (lr / (1 - b1**t)) * m / (np.sqrt(v / (1 - b2**t)) + eps)
            self.theta -= step

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions of every member, shape (members, len(x))."""
        return self._forward(x)[0]


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def acquire(kind: str, pred: np.ndarray, best: float, rng: np.random.Generator, beta: float = 1.0) -> np.ndarray:
    """Acquisition value per candidate from the ensemble's predictions (members x candidates); higher is better."""
    mu, sd = pred.mean(axis=0), pred.std(axis=0) + 1e-9
    if kind == "mean":
        return mu
    if kind == "ucb":
        return mu + beta * sd
    if kind == "its":  # independent Thompson sampling, BANANAS' default
        return rng.normal(mu, sd)
    z = (mu - best) / sd
    return (mu - best) * _norm_cdf(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


class Bananas(Strategy):
    """Neural-ensemble predictor + acquisition over the neighbourhood of the best trials.

    The first ``n_init`` trials are random. The ensemble has ``ensemble`` MLPs (``hidden`` units,
    two layers) trained for ``steps`` Adam steps on the ``max_train`` best trials; ``acquisition``
    is "ei" (expected improvement), "ucb", "its" (Thompson sampling) or "mean". ``prior`` holds
    (sample, z-score) pairs of earlier experiments (:func:`nasforge.transfer.prior_trials`; the config's
    ``strategy.options.prior: runs/*.db``): the ensemble trains on them too, weighted as
    ``prior_strength`` trials in all and fading as this search's own trials arrive
    (:func:`~nasforge.transfer.prior_weight`); with a prior the first ask already uses the predictor,
    around the prior's best networks, instead of ``n_init`` random trials. On NAS-Bench-201
    CIFAR-10 the variants tried (ITS/UCB, mutation pools, wider nets, more steps, fewer candidates)
    all landed within about 0.1 of each other over 30-60 seeds; these defaults are among the cheapest.
    """

    name = "bananas"

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_init: int = 10, ensemble: int = 5, hidden: int = 16,
                 steps: int = 50, lr: float = 0.04, candidates: int = 200, top_k: int = 10,
                 random_fraction: float = 0.1, acquisition: str = "ei", max_train: int = 200,
                 pool: str = "neighbours", prior: Sequence[tuple[Sample, float]] = (),
                 prior_strength: float = 20.0) -> None:
        super().__init__(space, seed=seed)
        if isinstance(prior, str) or not all(isinstance(p, tuple | list) and len(p) == 2 for p in prior):
            raise ValueError("bananas prior must be (sample, z-score) pairs; in a config give database paths "
                             "(strategy.options.prior: runs/*.db), which the search reads")
        if not prior_strength > 0:
            raise ValueError(f"bananas prior_strength must be > 0, got {prior_strength!r}")
        self.prior = [(dict(p[0]), float(p[1])) for p in prior]
        self.prior_strength = float(prior_strength)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"bananas acquisition must be one of {', '.join(ACQUISITIONS)}, got {acquisition!r}")
        if n_init < 2 or ensemble < 1 or candidates < 1 or top_k < 1 or not 0 <= random_fraction <= 1:
            raise ValueError("bananas needs n_init >= 2, ensemble/candidates/top_k >= 1 and random_fraction in [0, 1]")
        self.n_init, self.ensemble, self.hidden, self.steps, self.lr = n_init, ensemble, hidden, steps, lr
        self.candidates, self.top_k, self.random_fraction = candidates, top_k, random_fraction
        if pool not in ("neighbours", "mutations"):
            raise ValueError(f"bananas pool must be 'neighbours' or 'mutations', got {pool!r}")
        self.acquisition, self.max_train, self.pool_kind = acquisition, max_train, pool
        self.encode = OneHot(space)
        self.key = KeyCache(space)
        self.rejections = Rejections()

    def _pool(self, top: Sequence[Sample], seen: set[str]) -> list[dict[str, Any]]:
        """Untried candidates around the ``top_k`` best trials, and some random samples.

        With ``pool="neighbours"`` every single-dimension change of each top trial is a candidate
        (best trials first, up to ``candidates``); random mutations (one or two changes) of the top
        trials fill up whatever is left, which is all of it with ``pool="mutations"`` (BANANAS'
        own scheme). ``random_fraction`` of ``candidates`` random samples come on top.
        """
        n_random = round(self.candidates * self.random_fraction)
        pool: dict[str, dict[str, Any]] = {}
        if self.pool_kind == "neighbours":
            for t in top:
                if len(pool) >= self.candidates:
                    break
                for k, s in iter_neighbours(self.space, t, self.key):
                    if len(pool) >= self.candidates:
                        break
                    if k not in seen and k not in pool:
                        pool[k] = s
        for i in range(4 * self.candidates):
            if len(pool) >= self.candidates + n_random:
                break
            if i < n_random:
                s = self.space.sample(self.rng)
            else:
                s = self.space.mutate(top[i % len(top)], self.rng)
                if self.rng.random() < 0.5:
                    s = self.space.mutate(s, self.rng)
            k = self.key(s)
            if k not in seen and k not in pool:
                pool[k] = s
        return list(pool.values())

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        out = self._ask(history, n)
        self.rejections.proposed(self.space.key(s.sample) for s in out)
        return out

    def _ask(self, history: Sequence[Trial], n: int) -> list[Suggestion]:
        seen = seen_keys(history)
        seen |= self.rejections.update(seen)
        scored = completed(history)
        if not self.prior and (len(history) < self.n_init or len(scored) < 2):
            return [Suggestion(self.fresh(lambda: self.space.sample(self.rng), seen)) for _ in range(n)]
        train = sorted(scored, key=lambda t: (-(t.score or 0.0), t.number))[: self.max_train]
        samples: list[Sample] = [t.sample for t in train]
        y = np.array([float(t.score or 0.0) for t in train])
        if len(y):
            y = (y - y.mean()) / (y.std() + 1e-9)
        best = float(y.max()) if len(y) else -math.inf
        top = samples[: self.top_k]
        weights = None
        if self.prior:
            ranked = sorted(self.prior, key=lambda p: -p[1])
            w = prior_weight(len(self.prior), len(scored), self.prior_strength)
            weights = np.concatenate([np.ones(len(samples)), np.full(len(ranked), w)])
            samples += [p[0] for p in ranked]
            y = np.concatenate([y, [p[1] for p in ranked]])
            top += [p[0] for p in ranked[: self.top_k - len(top)]]  # the prior's best, until there are own ones
            if not len(train):
                best = float(ranked[0][1])
        net = MLPEnsemble(self.encode.width, self.rng, size=self.ensemble, hidden=self.hidden)
        pool = self._pool(top, seen)
        with one_blas_thread():
            net.fit(self.encode(samples), y, steps=self.steps, lr=self.lr, weights=weights)
            pred = net.predict(self.encode(pool)) if pool else None
        out: list[Suggestion] = []
        if pred is not None:
            value = acquire(self.acquisition, pred, best, self.rng)
            order = np.argsort(-value, kind="stable")
            out = [Suggestion(pool[int(i)]) for i in order[:n]]
            seen.update(self.space.key(s.sample) for s in out)
        while len(out) < n:  # the neighbourhood of the best is used up: explore at random
            out.append(Suggestion(self.fresh(lambda: self.space.sample(self.rng), seen)))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), **self.rejections.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.rejections.load_state_dict(state)
