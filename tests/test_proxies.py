"""Zero-cost proxies on small real data (scikit-learn digits): definitions, robustness and the screen."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.data.base import Dataset
from nasforge.evaluate.cost import count_flops, count_params
from nasforge.evaluate.recipe import trial_seed
from nasforge.pareto import non_dominated_sort
from nasforge.screen.proxies import (
    PROXIES,
    fixed_batch,
    naswot,
    score,
    score_samples,
    screen,
    synflow,
)
from nasforge.space import CellSpace, ChainSpace
from nasforge.space.chain import chain_sample

CELL_ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"


def conv(width: int, act: str = "relu", bn: bool = True) -> dict[str, object]:
    return {"type": "conv", "width": width, "kernel": 3, "stride": 1, "padding": "same", "act": act, "bn": bn,
            "skip": False}


def dense(width: int, act: str = "relu") -> dict[str, object]:
    return {"type": "dense", "width": width, "act": act}


def reshaped(data: Dataset, shape: tuple[int, ...]) -> Dataset:
    """The digits with another input layout: flat vectors (64,) or sequences (1, 64)."""
    return Dataset(f"digits{shape}", data.x_train.reshape(-1, *shape), data.y_train,
                   data.x_val.reshape(-1, *shape), data.y_val, data.classes)


def chain_space() -> ChainSpace:
    return ChainSpace(max_blocks=5, widths=(8, 16, 32), kernels=(3,), activations=("relu", "gelu", "tanh", "sigmoid"),
                      dropout_rates=(0.25,))


def chain_image_net() -> nn.Module:
    sp = chain_space()
    s = chain_sample(sp, [conv(16), {"type": "pool", "pool": "max", "pool_size": 2}, conv(16, "gelu", bn=False),
                          {"type": "dropout", "rate": 0.25}, dense(32, "tanh")])
    return sp.build(s, (1, 8, 8), 10)


def chain_flat_net() -> nn.Module:
    sp = chain_space()
    s = chain_sample(sp, [dense(32), {"type": "batchnorm"}, {"type": "dropout", "rate": 0.25}, dense(32, "sigmoid")])
    return sp.build(s, (64,), 10)


def chain_sequence_net() -> nn.Module:
    sp = chain_space()
    return sp.build(chain_sample(sp, [conv(8), conv(16, "tanh")], head="gap"), (1, 64), 10)


def cell_net() -> nn.Module:
    sp = CellSpace(channels=8, n_stages=2)
    return sp.build(sp.from_arch_str(CELL_ARCH), (1, 8, 8), 10)


NETS = {"chain_image": (chain_image_net, None), "chain_flat": (chain_flat_net, (64,)),
        "chain_sequence": (chain_sequence_net, (1, 64)), "cell": (cell_net, None)}


def batch(digits: Dataset, shape: tuple[int, ...] | None = None, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    return fixed_batch(digits if shape is None else reshaped(digits, shape), n, seed=0)


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("proxy", list(PROXIES))
def test_every_proxy_gives_a_finite_float_on_every_kind_of_network(digits, proxy, net):
    make, shape = NETS[net]
    torch.manual_seed(0)
    model = make()
    x, y = batch(digits, shape)
    value = score(proxy, model, x, y, seed=0)
    assert isinstance(value, float)
    assert math.isfinite(value), f"{proxy} on {net} gave {value}"
    if proxy != "naswot":  # a log-determinant may be negative; the others are sums of magnitudes
        assert value > 0


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_score_is_seeded_and_leaves_the_model_and_global_rng_untouched(digits, proxy):
    torch.manual_seed(1)
    model = chain_image_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch(digits)
    rng_before = torch.get_rng_state()
    a = score(proxy, model, x, y, seed=3)
    b = score(proxy, model, x, y, seed=3)
    assert a == b
    assert torch.equal(torch.get_rng_state(), rng_before)
    after = model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


def test_unknown_proxy_is_refused_with_the_choices(digits):
    x, y = batch(digits)
    with pytest.raises(ValueError, match="synflow"):
        score("jacov", chain_image_net(), x, y)


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_non_finite_or_failing_networks_score_minus_inf_instead_of_raising(digits, proxy):
    x, y = batch(digits)
    model = chain_image_net()
    with torch.no_grad():
        next(iter(model.parameters())).fill_(float("nan"))
    assert score(proxy, model, x, y) == -math.inf
    broken = nn.Sequential(nn.Flatten(), nn.Linear(5, 10))  # wrong input size: the forward raises
    assert score(proxy, broken, x, y) == -math.inf


def test_naswot_is_the_log_determinant_of_the_hamming_kernel(digits):
    """K_H[i, j] = N_A - Hamming distance of the binary codes of examples i and j."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 10))
    x, y = batch(digits, n=32)
    codes = (model[1](model[0](x)) > 0).double()
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1).double()
    expected = torch.linalg.slogdet(200 - hamming)[1].item()
    assert naswot(model, x, y) == pytest.approx(expected, rel=1e-9)


def test_naswot_ranks_constant_activations_last_and_reads_smooth_activations(digits):
    x, y = batch(digits)
    torch.manual_seed(0)
    for act in ("relu", "gelu", "silu", "tanh", "sigmoid"):
        sp = ChainSpace(max_blocks=3, widths=(16,), activations=(act,))
        model = sp.build(chain_sample(sp, [conv(16, act, bn=False), conv(16, act)]), (1, 8, 8), 10)
        normal = score("naswot", model, x, y)
        with torch.no_grad():  # every pre-activation of the first layer becomes 0: one code for all examples
            model[0].weight.zero_()
            model[0].bias.zero_()
        assert math.isfinite(normal), act
        assert score("naswot", model, x, y) == -math.inf, act
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 100), nn.Linear(100, 10))  # nothing to read codes from
    assert score("naswot", linear, x, y) == -math.inf


def test_synflow_is_twice_the_path_norm_of_a_linear_net_and_data_free(digits):
    """For R = 1^T |W2| |W1| 1, each layer's sum of |w * dR/dw| equals R, so synflow = 2R."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 20, bias=False), nn.Linear(20, 10, bias=False))
    x, y = batch(digits)
    w1, w2 = model[1].weight.detach().double().abs(), model[2].weight.detach().double().abs()
    path_norm = (w2 @ w1 @ torch.ones(64, dtype=torch.float64)).sum().item()
    assert score("synflow", model, x, y) == pytest.approx(2 * path_norm, rel=1e-12)
    assert score("synflow", model, 5 * x + 1, y) == score("synflow", model, x, y)


def test_synflow_ignores_batch_norm_and_is_zero_when_a_layer_is_cut(digits):
    x, y = batch(digits)
    torch.manual_seed(0)
    sp = chain_space()  # ReLU only: a saturating tanh would stop the flow to the earlier layers in float64
    model = sp.build(chain_sample(sp, [conv(16), {"type": "pool", "pool": "max", "pool_size": 2}, conv(16),
                                       dense(32)]), (1, 8, 8), 10)
    normal = score("synflow", model, x, y)
    for m in model.modules():  # batch-norm is off in synflow: its parameters must not matter
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.fill_(7.0)
                m.bias.fill_(-3.0)
    assert score("synflow", model, x, y) == normal > 0
    with torch.no_grad():
        model[-1].weight.zero_()  # cut the classifier: no flow reaches the output through any weight
    assert score("synflow", model, x, y) == 0.0
    assert score("snip", model, x, y) == 0.0


def test_synflow_leaves_a_model_given_directly_in_float64_with_absolute_weights(digits):
    """The bare functions may change their model; that is why score() works on a copy."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = batch(digits)
    synflow(model, x, y)
    assert model[1].weight.dtype == torch.float64 and bool((model[1].weight >= 0).all())


def candidates(n: int) -> tuple[ChainSpace, list[dict[str, object]]]:
    """Mostly convolutional chains, so most candidates have activations and the scores differ."""
    sp = ChainSpace(max_blocks=4, types=("conv", "pool", "dense", "dropout"), widths=(8, 16, 32), kernels=(3,),
                    activations=("relu", "gelu", "tanh", "sigmoid"), dropout_rates=(0.25,),
                    type_probs={"conv": 0.6, "pool": 0.2, "dense": 0.1, "dropout": 0.1})
    rng = np.random.default_rng(0)
    out: list[dict[str, object]] = []
    while len(out) < n:
        s = sp.sample(rng)
        if sp.check(s, (1, 8, 8)) is None:
            out.append(s)
    return sp, out


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_screen_keeps_the_requested_share_best_first(digits, proxy):
    sp, samples = candidates(12)
    rng_before = torch.get_rng_state()
    kept = screen(sp, samples, digits, proxy, 0.25, batch_size=32, seed=5)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert len(kept) == 3
    scores = [v for _, v in kept]
    assert scores == sorted(scores, reverse=True)
    every = score_samples(sp, samples, digits, proxy, batch_size=32, seed=5)  # a second, independent run
    assert scores == sorted(every, reverse=True)[:3]  # so also: the same seed gives the same scores
    assert [id(s) for s, _ in kept] == [id(samples[i]) for i in sorted(range(12), key=lambda i: -every[i])[:3]]


@pytest.mark.parametrize("cost", ["params", "flops"])  # latency is measured, so not repeatable to compare
def test_a_cost_aware_screen_keeps_the_best_proxy_at_each_cost(digits, cost):
    sp, samples = candidates(12)
    every = score_samples(sp, samples, digits, "naswot", batch_size=32, seed=5)
    costs = []
    for s in samples:
        m = sp.build(s, (1, 8, 8), 10)
        costs.append(count_params(m) if cost == "params" else count_flops(m, (1, 8, 8)))
    kept = screen(sp, samples, digits, "naswot", 0.25, batch_size=32, seed=5, cost=cost)
    at = [next(i for i, c in enumerate(samples) if c is s) for s, _ in kept]
    assert len(at) == 3 and [v for _, v in kept] == [every[i] for i in at]
    ok = [i for i in range(12) if math.isfinite(every[i])]
    assert len(ok) < 12  # a broken candidate (-inf) is among the cheapest here: it must not be kept
    front = [ok[j] for j in non_dominated_sort([(-every[i], costs[i]) for i in ok])[0]]
    # the front's two ends (the best proxy, the cheapest that scores) are always kept; none kept is
    # dominated unless the whole front is already in
    assert max(ok, key=lambda i: (every[i], -costs[i])) in at
    assert min(ok, key=lambda i: (costs[i], -every[i])) in at
    assert all(i in front for i in at) or set(front) <= set(at)
    assert all(math.isfinite(every[i]) for i in at)
    # the proxy alone keeps its three best; they are not all cheap (else this test shows nothing)
    plain = [next(i for i, c in enumerate(samples) if c is s) for s, _ in screen(sp, samples, digits, "naswot", 0.25,
                                                                                 batch_size=32, seed=5)]
    assert set(plain) != set(at)
    with pytest.raises(ValueError, match="cost"):
        screen(sp, samples, digits, "naswot", 0.5, cost="memory")
    assert len(screen(sp, samples, digits, "naswot", 0.25, batch_size=32, seed=5, cost="latency")) == 3


def test_screen_scores_the_initialisation_the_evaluator_would_train(digits):
    sp, samples = candidates(3)
    x, y = fixed_batch(digits, 32, seed=2)
    for s, value in zip(samples, score_samples(sp, samples, digits, "snip", batch_size=32, seed=2), strict=True):
        torch.manual_seed(trial_seed(2, sp.key(s)))
        assert score("snip", sp.build(s, (1, 8, 8), 10), x, y) == value


def test_screen_ranks_broken_candidates_last_and_checks_its_arguments(digits):
    sp, samples = candidates(5)
    broken = chain_sample(sp, [dense(8), conv(8)])  # a conv after a dense block cannot run (check refuses it)
    assert sp.check(broken, (1, 8, 8)) is not None
    ranked = screen(sp, [broken, *samples], digits, "naswot", 1.0)
    assert len(ranked) == 6
    at = next(i for i, (s, _) in enumerate(ranked) if s is broken)  # ties keep the given order: first of the -inf
    assert ranked[at][1] == -math.inf
    assert all(math.isfinite(v) for _, v in ranked[:at]) and all(v == -math.inf for _, v in ranked[at:])
    assert len(screen(sp, samples, digits, "naswot", 0.01)) == 1  # at least one is kept
    assert screen(sp, [], digits, "naswot", 0.5) == []
    for bad in (0, 1.5, True, -0.1):
        with pytest.raises(ValueError, match="keep"):
            screen(sp, samples, digits, "naswot", bad)
    with pytest.raises(ValueError, match="naswot"):
        screen(sp, samples, digits, "nwot", 0.5)
