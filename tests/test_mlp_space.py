"""MLP space: the reference MLP, skips only between equal widths, canonical keys, limits and options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.evaluate.cost import count_params
from nasforge.space import make_space
from nasforge.space.chain_nn import Residual
from nasforge.space.mlp import MlpSpace


def test_reference_is_two_batch_normed_relu_layers_of_256_with_dropout():
    space = MlpSpace()
    s = space.reference()
    assert space.check(s, (30,), 2) is None
    assert space.describe(s) == "mlp 256-256 batchnorm relu dropout0.1"
    m = space.build(s, (30,), 2)
    assert [type(x) for x in m] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert m[0].bias is None and m[-1].bias is not None  # batch-norm would cancel a hidden bias
    assert count_params(m) == 30 * 256 + 512 + 256 * 256 + 512 + 256 * 2 + 2 == 74_754
    assert m(torch.randn(4, 30)).shape == (4, 2)


def test_residual_skips_join_consecutive_layers_of_equal_width_only():
    space = MlpSpace()
    s = dict(space.reference(), depth=4, residual=True, norm="layer", act="gelu", dropout=0.0,
             **{"l0.width": 64, "l1.width": 64, "l2.width": 128, "l3.width": 128})
    m = space.build(s, (64,), 3)  # the input is 64 wide too, but the skips join hidden layers only
    skips = [x for x in m if isinstance(x, Residual)]
    assert len(skips) == 2 and [x.body[0].in_features for x in skips] == [64, 128]
    assert not any(isinstance(x, nn.Dropout) for x in m.modules())
    assert any(isinstance(x, nn.LayerNorm) for x in m.modules()) and m[0].bias is not None
    assert space.describe(s) == "mlp 64-64-128-128 layernorm gelu +skip"
    assert m(torch.randn(3, 64)).shape == (3, 3)


def test_key_ignores_dormant_widths_and_residual_without_equal_widths():
    space = MlpSpace()
    a = dict(space.reference(), **{"l1.width": 128, "l2.width": 32})
    assert "residual" not in space.active(a) and "l2.width" not in space.active(a)
    assert space.key(a) == space.key(dict(a, residual=not a["residual"], **{"l2.width": 512, "l3.width": 64}))
    b = space.reference()
    assert "residual" in space.active(b)
    assert space.key(b) != space.key(dict(b, residual=True))
    assert space.key(dict(b, dropout=0)) == space.key(dict(b, dropout=0.0))  # JSON may turn 0.0 into 0


def test_any_input_shape_is_flattened_and_limits_apply():
    space = MlpSpace()
    s = space.reference()
    m = space.build(s, (1, 8, 8), 10)
    assert isinstance(m[0], nn.Flatten) and m[1].in_features == 64
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    p = count_params(space.build(s, (30,), 2))
    assert MlpSpace(max_params=p).check(s, (30,), 2) is None
    assert "parameters exceed" in MlpSpace(max_params=p - 1).check(s, (30,), 2)
    assert "FLOPs exceed" in MlpSpace(max_flops=1000).check(s, (30,), 2)
    assert "not a point" in space.check(dict(s, norm="group"), (30,), 2)
    assert isinstance(make_space({"kind": "mlp"}, (3, 32, 32)), MlpSpace)


@pytest.mark.parametrize(("options", "message"), [
    ({"widths": []}, "space.widths is empty"),
    ({"norms": ["batch", "group"]}, "unknown value"),
    ({"dropouts": [0.0, 1.0]}, r"must be in \[0, 1\)"),
    ({"activations": ["relu", "swish"]}, "unknown value"),
    ({"max_depth": 17}, "max_depth must be an integer between 0 and 16"),
    ({"residual": [1]}, "space.residual values must be of type bool"),
    ({"widths": [64, 64]}, "repeats a value"),
])
def test_bad_options_are_clear_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        MlpSpace(**options)
    with pytest.raises(ConfigError, match=message):
        make_space({"kind": "mlp", **options}, (20,))


def test_reference_needs_its_values_in_the_space():
    with pytest.raises(ValueError, match="reference MLP is not a point"):
        MlpSpace(widths=(32, 64)).reference()


def test_depth_zero_is_logistic_regression():
    """The space holds the classical baseline: no hidden layer, one linear map to the classes."""
    space = MlpSpace()
    s = {**space.reference(), "depth": 0}
    net = space.build(s, (30,), 2)
    assert [type(m) for m in net] == [torch.nn.Linear]
    assert space.active(s) == ["depth"] and space.describe(s) == "linear"
    assert space.key(s) == space.key({**s, "norm": "layer", "l0.width": 32})  # nothing else shapes it
    assert space.check(s, (30,), 2) is None


def test_a_searched_weight_decay_reaches_the_optimizer():
    from nasforge.evaluate.trainer import Recipe, make_optimizer

    space = MlpSpace(weight_decays=[1e-4, 1e-2])
    ref = space.reference()
    assert ref["weight_decay"] == 1e-4  # the weakest: the plain reference
    strong = {**ref, "weight_decay": 1e-2}
    assert space.key(strong) != space.key(ref) and "wd0.01" in space.describe(strong)
    linear = {**ref, "depth": 0}
    assert space.active(linear) == ["depth", "weight_decay"]
    assert space.key(linear) != space.key({**linear, "weight_decay": 1e-2})
    opt = make_optimizer(space.build(strong, (20,), 2), Recipe(weight_decay=5e-4))
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-2, 0.0]
    plain = MlpSpace()  # without weight_decays: the recipe's, and the keys of before
    assert "weight_decay" not in plain.dims() and plain.key({**plain.reference(), "depth": 0}) == "[]"
    opt = make_optimizer(plain.build(plain.reference(), (20,), 2), Recipe(weight_decay=5e-4))
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]
    with pytest.raises(ValueError, match="weight_decays"):
        MlpSpace(weight_decays=[-1.0])
