"""Stage space: ResNet-20 and a MobileNet-like network are points of it, exact; keys, checks, options, 1-D."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.evaluate.cost import count_flops, count_params
from nasforge.space import make_space
from nasforge.space.stage import StageSpace, stage_sample
from nasforge.space.stage_nn import ResBlock, SqueezeExcite


def test_resnet20_is_the_cifar_resnet_of_he_et_al():
    space = StageSpace()
    s = space.resnet20()
    assert space.check(s, (3, 32, 32)) is None
    assert space.describe(s) == "stem16 > 3x basic16 k3 > 3x basic32 k3 /2 > 3x basic64 k3 /2 > gap"
    m = space.build(s, (3, 32, 32), 10)
    # 269,722 with the paper's zero-padding shortcuts, plus two 1x1 projections with BN: 512+64 and 2048+128
    assert count_params(m) == 272_474
    assert count_params(space.build(s, (1, 28, 28), 10)) == 272_186  # the stem sees 1 channel, not 3
    blocks = [b for b in m.modules() if isinstance(b, ResBlock)]
    assert len(blocks) == 9
    convs = [c for b in blocks for c in b.body if isinstance(c, nn.Conv2d)]
    assert len(convs) == 18 and all(c.kernel_size == (3, 3) for c in convs)  # 1 stem + 18 + 1 linear = 20 layers
    projections = [b for b in blocks if not isinstance(b.shortcut, nn.Identity)]
    assert len(projections) == 2
    for b, (c_in, c_out) in zip(projections, [(16, 32), (32, 64)], strict=True):
        conv, bn = b.shortcut
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (c_in, c_out, (1, 1), (2, 2))
        assert isinstance(bn, nn.BatchNorm2d) and b.body[0].stride == (2, 2)
    assert all(isinstance(b.act, nn.ReLU) for b in blocks)
    feats = m[:-3](torch.zeros(2, 3, 32, 32))
    assert feats.shape == (2, 64, 8, 8)
    assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert count_flops(m, (3, 32, 32)) == pytest.approx(2 * 40.8e6, rel=0.01)  # ~41M multiply-adds


def test_resnet20_builds_a_1d_resnet_on_sequences():
    space = StageSpace()
    s = space.resnet20()
    assert space.check(s, (2, 50)) is None
    m = space.build(s, (2, 50), 5)
    kinds = {type(x) for x in m.modules()}
    assert nn.Conv1d in kinds and nn.BatchNorm1d in kinds and nn.AdaptiveAvgPool1d in kinds
    assert nn.Conv2d not in kinds and nn.BatchNorm2d not in kinds
    assert m[:-3](torch.randn(2, 2, 50)).shape == (2, 64, 13)  # 50 -> 25 -> 13
    assert m(torch.randn(4, 2, 50)).shape == (4, 5)
    # layer for layer the 2-D network with one spatial axis fewer: 3x3 kernels become length 3
    two_d = space.build(s, (2, 32, 32), 5)
    for (n1, p1), (n2, p2) in zip(m.named_parameters(), two_d.named_parameters(), strict=True):
        assert n1 == n2 and (p1.shape == p2.shape or p1.shape == p2.shape[:-1])
    assert count_params(m) == 93_637  # 93,962 with 10 classes


def test_default_space_holds_a_mobilenet_with_inverted_blocks_expansion_6_and_se():
    space = StageSpace()
    s = space.mobilenet()
    assert space.check(s, (3, 32, 32)) is None
    assert space.describe(s) == ("stem32 > 1x inverted16 e1 k3 se > 2x inverted24 e6 k3 se /2 > "
                                 "3x inverted32 e6 k3 se /2 > gap")
    m = space.build(s, (3, 32, 32), 10)
    depthwise = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.groups > 1]
    assert len(depthwise) == 6 and all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    assert {c.in_channels for c in depthwise} == {32, 16 * 6, 24 * 6, 32 * 6}
    assert sum(isinstance(x, SqueezeExcite) for x in m.modules()) == 6
    assert sum(isinstance(x, nn.ReLU6) for x in m.modules()) == 1 + 5 * 2
    residual = [b for b in m.modules() if isinstance(b, ResBlock)]
    assert len(residual) == 3 and all(isinstance(b.act, nn.Identity) for b in residual)  # linear bottlenecks
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_key_ignores_dormant_settings_and_describe_shows_the_active_ones():
    space = StageSpace()
    a = space.resnet20()
    b = dict(a, **{"s0.expand": 6, "s0.down": "pool"})  # expand of basic blocks, down of stage 0
    c = dict(a, **{"n_stages": 2, "s2.width": 128})
    d = dict(c, **{"s2.width": 16, "s2.block": "inverted"})  # stage 2 is dormant in c and d
    assert space.key(a) == space.key(b) and space.key(c) == space.key(d) != space.key(a)
    assert "s0.expand" not in space.active(a) and "s0.down" not in space.active(a) and "s1.down" in space.active(a)
    e = dict(a, **{"s1.block": "inverted", "s1.expand": 3, "s1.down": "pool", "s1.se": True, "s1.kernel": 5})
    assert "s1.expand" in space.active(e)
    assert space.describe(e) == "stem16 > 3x basic16 k3 > 3x inverted32 e3 k5 se /pool > 3x basic64 k3 /2 > gap"
    assert space.key(dict(e, **{"s1.expand": 6})) != space.key(e)


def test_strided_and_pooled_stages_halve_alike_and_check_refuses_halving_a_1_wide_map():
    space = StageSpace(max_stages=4)
    stages = [{"depth": 1, "width": 16, "block": "basic", "kernel": 3, "se": False, "down": "stride"}] * 3
    for down in ("stride", "pool"):
        s = stage_sample(space, [stages[0], *[dict(st, down=down) for st in stages[1:]]], stem=16)
        m = space.build(s, (1, 7, 7), 3)
        x = m[:3](torch.zeros(1, 1, 7, 7))
        sizes = []
        for stage in m[3:-3]:
            x = stage(x)
            sizes.append(x.shape[-1])
        assert sizes == [7, 4, 2]
    deep = stage_sample(space, [*stages, stages[0]], stem=16)
    assert space.check(deep, (1, 5, 5)) is None  # 5 -> 3 -> 2 -> 1
    assert "stage 3 would halve a 1x1 map below one pixel" in space.check(deep, (1, 4, 4))
    assert "below one step" in space.check(deep, (1, 3))
    assert "image (C, H, W) or sequence" in space.check(deep, (20,))


def test_check_applies_the_parameter_and_flop_limits_of_the_built_network():
    s = StageSpace().resnet20()
    m = StageSpace().build(s, (3, 32, 32), 10)
    p, f = count_params(m), count_flops(m, (3, 32, 32))
    assert StageSpace(max_params=p, max_flops=f).check(s, (3, 32, 32)) is None
    assert "parameters exceed" in StageSpace(max_params=p - 1).check(s, (3, 32, 32))
    assert "FLOPs exceed" in StageSpace(max_flops=f - 1).check(s, (3, 32, 32))
    assert "not a point" in StageSpace().check(dict(s, **{"s1.width": 17}), (3, 32, 32))


@pytest.mark.parametrize(("options", "message"), [
    ({"widths": []}, "space.widths is empty"),
    ({"kernels": [3, 4]}, "must be odd"),
    ({"blocks": ["basic", "bottleneck"]}, "unknown value"),
    ({"max_stages": 0}, "max_stages must be an integer between 1 and 8"),
    ({"min_stages": 3, "max_stages": 2}, "min_stages <= max_stages"),
    ({"se": ["yes"]}, "space.se values must be of type bool"),
    ({"depths": [0, 1]}, "space.depths values must be between"),
    ({"downsample": "stride"}, "must be a list"),
    ({"max_params": -5}, "max_params must be a positive integer"),
])
def test_bad_options_are_clear_value_errors(options, message):
    with pytest.raises(ValueError, match=message):
        StageSpace(**options)
    with pytest.raises(ConfigError, match=message):
        make_space({"kind": "stage", **options}, (3, 32, 32))


def test_resnet20_needs_its_values_in_the_space():
    with pytest.raises(ValueError, match="not a point of this stage space"):
        StageSpace(widths=(16, 32)).resnet20()
    assert StageSpace(widths=(16, 32, 64), depths=(3,), blocks=("basic",)).resnet20()["s2.width"] == 64


def test_make_space_refuses_stage_on_flat_input_in_one_line():
    with pytest.raises(ConfigError) as e:
        make_space({"kind": "stage"}, (20,))
    assert "\n" not in str(e.value) and "use kind: chain or mlp" in str(e.value)
    assert isinstance(make_space({"kind": "stage", "max_stages": 4}, (2, 50)), StageSpace)


def measured_receptive_field(space: StageSpace, s: dict, length: int = 700) -> int:
    """Input positions one middle position of the last stage's output depends on, by its gradient: all weights
    positive and the input small and positive keep every ReLU open, so a zero gradient means outside the field."""
    n_stages = int(s["n_stages"])
    model = space.build(s, (1, length), 10).eval().double()
    with torch.no_grad():  # each conv averages its inputs: activations stay small (under ReLU6's 6) and positive
        for m in model.modules():
            if isinstance(m, nn.Conv1d):
                m.weight.fill_(1.0 / m.weight[0].numel())
            elif isinstance(m, nn.BatchNorm1d):
                m.weight.fill_(1.0), m.bias.zero_()
    features = model[:3 + n_stages]  # the stem (conv, batch-norm, ReLU) and the stages: before pooling
    x = torch.full((1, 1, length), 0.01, dtype=torch.float64, requires_grad=True)
    out = features(x)
    out[0, :, out.shape[-1] // 2].sum().backward()
    assert x.grad is not None
    return int((x.grad[0, 0] != 0).sum())


@pytest.mark.parametrize("stages", [
    None,  # ResNet-20: 81
    [{"block": "basic", "depth": 2, "kernel": 5, "se": False, "down": "stride", "width": 16}] * 4,
    [{"block": "inverted", "expand": 3, "depth": 2, "kernel": 7, "se": False, "down": "stride", "width": 16}] * 3,
])
def test_receptive_field_is_what_the_built_network_sees(stages):
    space = StageSpace(max_stages=6, kernels=(3, 5, 7))
    s = space.resnet20() if stages is None else stage_sample(space, stages, stem=16)
    assert space.receptive_field(s) == measured_receptive_field(space, s)
    if stages is None:
        assert space.receptive_field(s) == 81


def test_covering_adds_stages_until_the_input_is_seen_whole():
    """Where ResNet-20 sees the whole input (images up to 81 pixels a side) there is nothing to add."""
    space = StageSpace(max_stages=6, kernels=(3, 5, 7))
    assert space.covering(28) is None and space.covering(81) is None
    deeper = space.covering(128)
    assert deeper is not None and space.describe(deeper) == (
        "stem16 > 2x basic16 k3 > 2x basic32 k3 /2 > 2x basic64 k3 /2 > 2x basic64 k3 /2 > 2x basic64 k3 /2 > gap")
    assert measured_receptive_field(space, deeper) == space.receptive_field(deeper) >= 128
    shallow = StageSpace(max_stages=4)  # the most stages the space allows, where they see further than ResNet-20
    assert shallow.covering(1000) is not None and int(shallow.covering(1000)["n_stages"]) == 4
    assert StageSpace(max_stages=3).covering(1000) is None  # two blocks a stage over three see less than ResNet-20
