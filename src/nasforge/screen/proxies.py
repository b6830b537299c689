"""Zero-cost proxies: score untrained candidates in a forward (and backward) pass, then train only the best.

Each proxy maps ``(model, x, y)`` to a float where higher predicts a better network after training:

- ``synflow`` (Tanaka et al. 2020, as used by Abdelfattah et al. 2021): sum over conv/linear weights of
  ``|w * dR/dw|`` with ``R`` the summed output of the network in float64, with every parameter made
  absolute, batch-norm switched off (a no-op, as the reference code's ``bn=False`` copy does) and a
  single all-ones input. Data-free: ``x`` gives only the input shape. Saturating activations (tanh,
  sigmoid) pass almost no flow back with absolute weights, so there mostly the last layers count.
- ``naswot`` (Mellor et al. 2021): ``log|det K_H|``, where ``K_H[i, j]`` counts the units on which
  examples ``i`` and ``j`` of the minibatch share their binary activation code (``N_A`` minus the
  Hamming distance). Every ReLU-like activation is hooked and its code is ``pre-activation > 0``; for
  ReLU that is the paper's code, and for the smooth or saturating ones of the chain space (GELU, SiLU,
  ELU, LeakyReLU, tanh, sigmoid) it is the same sign test, which marks the side of the activation's
  bend or centre. A singular kernel (fewer distinct codes than examples: constant activations, or a
  network too narrow for the batch) has determinant 0 and scores -inf, as does a network without
  such activations (purely linear), which has no codes.
- ``grad_norm`` (Abdelfattah et al. 2021): sum over conv/linear layers of the L2 norm of the weight's
  cross-entropy gradient on the minibatch.
- ``snip`` (Lee et al. 2019, as in Abdelfattah et al. 2021): sum over conv/linear weights of
  ``|w * dL/dw|`` for the cross-entropy ``L`` on the minibatch (the connection-sensitivity saliency).

The networks stay in training mode, as the reference code runs them freshly built: batch-norm uses
the minibatch's statistics. Dropout is switched off so that a score is a function of the weights and
the batch alone. The bare functions may change the model they are given (weights, gradients,
batch-norm statistics); :func:`score` runs them on a copy, and :func:`screen` on a freshly built model.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.data.base import Dataset
from nasforge.evaluate.cost import count_flops, count_params, measure_latency_ms
from nasforge.evaluate.recipe import trial_seed
from nasforge.pareto import rank
from nasforge.space.base import SearchSpace
from nasforge.types import Sample

log = logging.getLogger("nasforge")

Proxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]

# Layers whose weights the gradient-based proxies sum over (the reference code's Conv2d and Linear,
# plus the 1-D and 3-D convolutions our spaces build for sequences).
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# Activations NASWOT reads a binary code from (sign of their input).
CODE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Softplus,
)
_DROPOUT: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_BATCHNORM: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _prepare(model: nn.Module) -> None:
    """Training mode (batch statistics in batch-norm, as the reference runs fresh networks), dropout off."""
    model.train()
    for m in model.modules():
        if isinstance(m, _DROPOUT):
            m.eval()


def _weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors of the conv and linear layers (biases and batch-norm excluded, as in the reference)."""
    out: list[torch.Tensor] = []
    for m in model.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, WEIGHT_LAYERS) and isinstance(w, torch.Tensor):
            out.append(w)
    return out


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Synaptic flow of the network: sum ``|w * dR/dw|``, ``R = sum(f_|w|(1))`` in float64, batch-norm off.

    Changes ``model`` (absolute float64 weights, gradients); use :func:`score` to keep it intact.
    """
    del y  # data-free
    _prepare(model)
    for m in model.modules():
        if isinstance(m, _BATCHNORM):
            m.forward = _identity  # the reference's bn=False copy
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    model(ones).sum().backward()
    total = 0.0
    for w in _weights(model):
        if w.grad is not None:
            total += float((w.detach() * w.grad).abs().sum())
    return total


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``log|det K_H|`` of the minibatch's activation-code kernel (Mellor et al. 2021); -inf if singular.

    ``K_H = sum over hooked layers of (c c^T + (1 - c)(1 - c)^T)`` with ``c`` the 0/1 codes
    (``pre-activation > 0``) of each example, flattened over channels and positions.
    """
    del y  # label-free
    _prepare(model)
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def hook(_mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        nonlocal kernel
        c = (inputs[0].detach().reshape(n, -1) > 0).to(torch.float32)
        k = c @ c.T + (1.0 - c) @ (1.0 - c).T  # integer counts, exact in float32 below 2**24 units
        kernel = kernel + k.to(torch.float64).cpu()

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, CODE_ACTIVATIONS)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not handles:
        return -math.inf
    # K_H is symmetric positive semi-definite: its log-determinant is the sum of the logs of its
    # eigenvalues. Rank-deficient kernels (fewer distinct codes than examples, e.g. a narrow network or
    # constant activations) have det 0, so -inf, rather than the rounding noise slogdet would return.
    eig = torch.linalg.eigvalsh(kernel)
    tol = float(eig.max()) * n * torch.finfo(torch.float64).eps
    if not float(eig.min()) > tol:
        return -math.inf
    return float(torch.log(eig).sum())


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss: cross-entropy on class labels, the squared error on (standardised) regression targets."""
    return F.mse_loss(out[:, 0], y) if y.is_floating_point() else F.cross_entropy(out, y)


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over conv/linear layers of ``||dL/dw||_2`` for the cross-entropy (regression: squared error) on the
    minibatch."""
    _prepare(model)
    model.zero_grad(set_to_none=True)
    _loss(model(x), y).backward()
    return float(sum(float(w.grad.norm()) for w in _weights(model) if w.grad is not None))


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Connection sensitivity: sum over conv/linear weights of ``|w * dL/dw|`` for the minibatch's cross-entropy.

    Equal to the reference's ``|dL/d mask|`` at an all-ones weight mask, without patching the layers.
    """
    _prepare(model)
    model.zero_grad(set_to_none=True)
    _loss(model(x), y).backward()
    total = 0.0
    for w in _weights(model):
        if w.grad is not None:
            total += float((w.detach() * w.grad).abs().sum())
    return total


# The registry: adding a proxy is one function and one line here.
PROXIES: dict[str, Proxy] = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm, "snip": snip}


def _lookup(name: str) -> Proxy:
    fn = PROXIES.get(name)
    if fn is None:
        raise ValueError(f"unknown zero-cost proxy {name!r}: choose one of {', '.join(PROXIES)}")
    return fn


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator for the block and restore its state after (callers' RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _run(fn: Proxy, model: nn.Module, x: torch.Tensor, y: torch.Tensor, what: str) -> float:
    """The proxy's value, or -inf where it is not finite or the network fails to run (logged, not raised)."""
    try:
        value = float(fn(model, x, y))
    except (RuntimeError, ValueError) as e:  # shape errors, singular algebra: this candidate ranks last
        log.warning("zero-cost proxy failed on %s: %s: %s", what, type(e).__name__, str(e).splitlines()[0][:200])
        return -math.inf
    return value if math.isfinite(value) else -math.inf


def score(proxy_name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> float:
    """``PROXIES[proxy_name]`` of ``model`` on the minibatch ``(x, y)``; higher predicts better.

    Runs on a deep copy, so the model's weights, gradients and buffers are untouched, with torch's
    generator seeded by ``seed`` (and restored after): the same inputs give the same score. A value
    that is NaN or infinite, or a network that fails to run, gives -inf, which ranks last.
    """
    fn = _lookup(proxy_name)
    with _seeded(seed):
        return _run(fn, copy.deepcopy(model), x, y, type(model).__name__)


def fixed_batch(data: Dataset, batch_size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One seeded minibatch of the training split: every candidate of a screen is scored on it."""
    if batch_size < 2:
        raise ValueError(f"a screening batch needs at least 2 examples, got batch_size={batch_size}")
    n = len(data.x_train)
    idx = np.random.default_rng(seed).choice(n, size=min(batch_size, n), replace=False)
    t = torch.from_numpy(np.sort(idx).astype(np.int64))
    return data.x_train[t], data.y_train[t]


def score_samples(space: SearchSpace, samples: Sequence[Sample], data: Dataset, proxy: str = "naswot", *,
                  batch_size: int = 64, seed: int = 0) -> list[float]:
    """The proxy score of each sample, in the given order, on one fixed training minibatch.

    Each network is built with torch seeded by ``trial_seed(seed, space.key(sample))``, the seed
    :class:`~nasforge.evaluate.torch_eval.TorchEvaluator` uses with the same ``seed``, so a candidate
    is scored at the very initialisation it would be trained from. A sample that fails to build or
    run scores -inf. Torch's global generator is left as it was.
    """
    fn = _lookup(proxy)
    x, y = fixed_batch(data, batch_size, seed)
    shape, n_out = data.input_shape, data.n_classes
    out: list[float] = []
    for s in samples:
        with _seeded(trial_seed(seed, space.key(s))):
            try:
                model = space.build(s, shape, n_out)
            except (RuntimeError, ValueError, KeyError) as e:
                log.warning("cannot build %s for screening: %s", space.key(s), e)
                out.append(-math.inf)
                continue
            out.append(_run(fn, model, x, y, space.key(s)))
    return out


SCREEN_COSTS = ("params", "flops", "latency")


def screen(space: SearchSpace, samples: Sequence[Sample], data: Dataset, proxy: str = "naswot",
           keep: float = 0.1, *, batch_size: int = 64, seed: int = 0,
           cost: str | None = None) -> list[tuple[Sample, float]]:
    """The best share ``keep`` of ``samples`` by a zero-cost proxy: ``(sample, score)`` pairs, best first.

    ``proxy`` names an entry of :data:`PROXIES`; ``keep`` is a share in (0, 1] of ``len(samples)``,
    rounded up, and at least one is kept. Every candidate is built with ``space.build`` (give
    samples that passed ``space.check``) and scored on the same training minibatch of
    ``batch_size`` examples (see :func:`score_samples`). Ties keep the given order; candidates that
    score -inf (non-finite proxy, failed build) come last. Deterministic for a given ``seed``,
    except with ``cost='latency'``, which orders by measured wall-clock time.

    With ``cost`` (``params``, ``flops`` or ``latency``, measured on the CPU at batch 1, about 14 ms
    a candidate) the order is NSGA-II's on (proxy, cost) instead: the kept share spreads along the
    proxy/cost front, its two ends (the best-scoring and the cheapest candidate) first, rather than
    taking only the top proxy scores, which grow with a network's size (NASWOT counts activation
    units). FLOPs miss the memory-bound work of wide full-resolution layers (batch-norm, activations, pooling): a
    1.9 MFLOP network with a 128-channel first conv trained 3x slower per epoch than an 8.5 MFLOP one.

    This is what ``screen: {proxy: naswot, sample: 500, keep: 0.1}`` means: draw 500 samples,
    call ``screen(space, samples, data, "naswot", 0.1)`` and train the 50 returned.
    """
    _lookup(proxy)
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not 0 < keep <= 1:
        raise ValueError(f"screen keep must be a share in (0, 1] of the sampled candidates, got {keep!r}")
    if cost is not None and cost not in SCREEN_COSTS:
        raise ValueError(f"screen cost must be one of {', '.join(SCREEN_COSTS)} or None, got {cost!r}")
    if not samples:
        return []
    scores = score_samples(space, samples, data, proxy, batch_size=batch_size, seed=seed)
    if cost is None:
        order = sorted(range(len(samples)), key=lambda i: -scores[i])  # stable: ties keep the given order
    else:
        ok = [i for i in range(len(samples)) if math.isfinite(scores[i])]  # broken ones last, however cheap
        pts = [(-scores[i], _cost(space, samples[i], data, cost)) for i in ok]
        order = [ok[j] for j in rank(pts)] + [i for i in range(len(samples)) if not math.isfinite(scores[i])]
    n_keep = max(1, min(len(samples), math.ceil(keep * len(samples) - 1e-9)))
    return [(samples[i], scores[i]) for i in order[:n_keep]]


def _cost(space: SearchSpace, s: Sample, data: Dataset, cost: str) -> float:
    try:
        model = space.build(s, data.input_shape, data.n_classes)
        if cost == "latency":
            return measure_latency_ms(model, data.input_shape)
        return float(count_params(model) if cost == "params" else count_flops(model, data.input_shape))
    except (RuntimeError, ValueError, KeyError):
        return math.inf


__all__ = ["PROXIES", "SCREEN_COSTS", "Proxy", "fixed_batch", "grad_norm", "naswot", "score", "score_samples",
           "screen", "snip", "synflow"]
