"""Chain space: sampling, canonical keys, shape inference, limits and real modules for 3 input kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasforge.errors import ConfigError
from nasforge.evaluate.cost import count_flops, count_params
from nasforge.space import make_space
from nasforge.space.chain import ChainSpace, chain_sample


def conv(w, k=3, s=1, pad="same", act="relu", bn=True):
    return {"type": "conv", "width": w, "kernel": k, "stride": s, "padding": pad, "act": act, "bn": bn, "skip": False}


def test_key_ignores_dormant_settings_and_irrelevant_head():
    space = ChainSpace(max_blocks=4)
    a = chain_sample(space, [conv(16), {"type": "dense", "width": 32, "act": "relu"}])
    b = dict(a)
    b["b0.rate"] = 0.5          # dropout rate of a conv block: dormant
    b["b3.type"] = "dense"      # beyond n_blocks: dormant
    b["head"] = "gap"           # irrelevant after a dense block
    assert space.key(a) == space.key(b)
    c = dict(a)
    c["b0.width"] = 32
    assert space.key(a) != space.key(c)


def test_check_rejects_collapse_conv_after_dense_and_limits_with_reasons():
    space = ChainSpace(max_blocks=6, widths=(8, 16, 64), max_params=50_000, max_flops=2_000_000)
    collapse = chain_sample(space, [conv(8, k=7, pad="valid", s=2)] + [conv(8, k=7, pad="valid")] * 2)
    assert "collapses" in space.check(collapse, (1, 28, 28))
    after = chain_sample(space, [{"type": "dense", "width": 16, "act": "relu"}, conv(8)])
    assert "after a dense block" in space.check(after, (1, 28, 28))
    big = chain_sample(space, [conv(64), conv(64)])
    assert "exceed the limit" in space.check(big, (1, 28, 28))
    ok = chain_sample(space, [conv(8), {"type": "pool", "pool": "max", "pool_size": 2}])
    assert space.check(ok, (1, 28, 28)) is None


def test_check_limits_agree_with_the_built_model():
    space = ChainSpace(max_blocks=4)
    s = chain_sample(space, [conv(16), {"type": "pool", "pool": "avg", "pool_size": 3}, conv(32, k=5)], head="gap")
    m = space.build(s, (1, 28, 28), 10)
    p, f = count_params(m), count_flops(m, (1, 28, 28))
    assert ChainSpace(max_blocks=4, max_params=p).check(s, (1, 28, 28)) is None
    assert "parameters exceed" in ChainSpace(max_blocks=4, max_params=p - 1).check(s, (1, 28, 28))
    assert "FLOPs exceed" in ChainSpace(max_blocks=4, max_flops=f - 1).check(s, (1, 28, 28))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (2, 50), (20,)])
def test_every_valid_sample_builds_and_runs_with_the_predicted_shape(shape):
    space = make_space({"kind": "chain", "max_blocks": 6, "widths": [4, 8]}, shape)
    rng = np.random.default_rng(0)
    built = 0
    for _ in range(60):
        s = space.sample(rng)
        if space.check(s, shape) is not None:
            continue
        m = space.build(s, shape, 5)
        m.eval()
        out = m(torch.randn(3, *shape))
        assert out.shape == (3, 5)
        built += 1
    assert built >= 10


def test_tabular_inputs_keep_only_dense_style_blocks():
    space = make_space({"kind": "chain"}, (13,))
    assert set(space.types) == {"dense", "dropout", "batchnorm"}
    with pytest.raises(ConfigError, match="tabular"):
        make_space({"kind": "chain", "types": ["conv"]}, (13,))


def test_mutation_changes_exactly_one_active_dimension_without_structural_moves():
    space = ChainSpace(max_blocks=5, structural_mutation=0.0)
    rng = np.random.default_rng(1)
    for _ in range(50):
        s = space.sample(rng)
        m = space.mutate(s, rng)
        changed = [k for k in s if s[k] != m[k]]
        assert len(changed) == 1 and changed[0] in space.active(s)


def test_structural_mutation_inserts_or_removes_one_block_keeping_the_others_in_order():
    space = ChainSpace(min_blocks=1, max_blocks=6, structural_mutation=1.0)
    rng = np.random.default_rng(3)
    moves = set()
    for _ in range(60):
        s = space.sample(rng)
        m = space.mutate(s, rng)
        before, after = space.blocks(s), space.blocks(m)
        assert abs(len(after) - len(before)) == 1
        short, long_ = (before, after) if len(before) < len(after) else (after, before)
        # removing one block of the longer chain gives the shorter one
        assert any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))
        moves.add("insert" if len(after) > len(before) else "remove")
    assert moves == {"insert", "remove"}


def test_type_probs_bias_sampling_and_are_checked():
    space = ChainSpace(max_blocks=8, type_probs={"conv": 0.7, "pool": 0.3})
    rng = np.random.default_rng(0)
    types = [space.sample(rng)[f"b{i}.type"] for _ in range(200) for i in range(8)]
    assert set(types) == {"conv", "pool"} and 0.6 < types.count("conv") / len(types) < 0.8
    with pytest.raises(ValueError, match=r"not in space\.types"):
        ChainSpace(types=("conv",), type_probs={"pool": 1.0})
    with pytest.raises(ValueError, match="positive sum"):
        ChainSpace(type_probs={"conv": 0.0})


def test_crossover_takes_each_block_from_one_parent():
    space = ChainSpace(max_blocks=5)
    rng = np.random.default_rng(2)
    a, b = space.sample(rng), space.sample(rng)
    c = space.crossover(a, b, rng)
    for i in range(5):
        slot = [k for k in c if k.startswith(f"b{i}.")]
        assert all(c[k] == a[k] for k in slot) or all(c[k] == b[k] for k in slot)


def test_space_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="did you mean 'widths'"):
        make_space({"kind": "chain", "width": [8]})
    with pytest.raises(ConfigError, match="unknown value"):
        make_space({"kind": "chain", "activations": ["swishy"]})
    with pytest.raises(ConfigError, match="must be odd"):
        make_space({"kind": "chain", "kernels": [4]})
    with pytest.raises(ConfigError, match="unknown space kind"):
        make_space({"kind": "graph"})


def test_describe_is_readable():
    space = ChainSpace(max_blocks=4)
    s = chain_sample(space, [conv(32), {"type": "pool", "pool": "max", "pool_size": 2}], head="gap")
    assert space.describe(s) == "conv32 3x3 bn relu > maxpool2 > gap"


def test_parallel_branches_and_skip_connections_build_with_inferred_shapes():
    space = ChainSpace(max_blocks=4, types=("conv", "parallel", "pool"), skips=(False, True), widths=(8, 12))
    par = {"type": "parallel", "width": 8, "branches": 3, "merge": "concat", "act": "relu", "bn": True, "skip": True}
    res = conv(12, k=5, pad="valid", s=2, bn=False) | {"skip": True}
    for shape in ((3, 17, 17), (2, 31)):
        s = chain_sample(space, [par, res, {"type": "pool", "pool": "avg", "pool_size": 2}], head="gap")
        assert space.check(s, shape) is None
        m = space.build(s, shape, 4)
        assert m(torch.randn(2, *shape)).shape == (2, 4)
    assert "parallel8 1/3/5 concat bn relu +skip" in space.describe(s)
    # A residual conv adds its input: zeroing the body leaves exactly the (cropped, strided, projected) shortcut.
    m = space.build(chain_sample(space, [conv(8, k=3, bn=False) | {"skip": True}]), (8, 6, 6), 2)
    with torch.no_grad():
        m[0].body[0].weight.zero_()
        m[0].body[0].bias.fill_(-1.0)  # relu(-1) = 0
        x = torch.randn(1, 8, 6, 6)
        assert torch.equal(m[0](x), x)


def test_parallel_is_opt_in_and_needs_spatial_input():
    assert "parallel" not in ChainSpace().types
    space = ChainSpace(max_blocks=3, types=("dense", "parallel"))
    s = chain_sample(space, [{"type": "dense", "width": 16, "act": "relu"},
                             {"type": "parallel", "width": 16, "branches": 2, "merge": "sum", "act": "relu",
                              "bn": False, "skip": False}])
    assert "needs spatial input" in space.check(s, (1, 8, 8))


@pytest.mark.parametrize("kind, shape", [("chain", (1, 28, 28)), ("cell", (3, 32, 32)), ("mlp", (20,)),
                                         ("stage", (2, 50))])
def test_one_draw_for_all_dimensions_gives_what_one_draw_each_gave(kind, shape):
    """Samples (and so every seeded search, NAS-Bench-201 figures included) are the ones drawn before."""
    from nasforge.space.params import sample_all

    dims = make_space({"kind": kind}, shape).dims()
    for seed in range(20):
        each, once = np.random.default_rng(seed), np.random.default_rng(seed)
        assert sample_all(dims, once) == {name: d.sample(each) for name, d in dims.items()}
        assert once.bit_generator.state == each.bit_generator.state


@pytest.mark.parametrize("kind,shape", [("chain", (1, 28, 28)), ("cell", (3, 32, 32)), ("stage", (1, 28, 28)),
                                        ("mlp", (30,))])
def test_min_params_rejects_smaller_networks_with_the_reason(kind, shape):
    space = make_space({"kind": kind}, shape)
    rng = np.random.default_rng(0)
    s = next(s for s in (space.sample(rng) for _ in range(50)) if space.check(s, shape) is None)
    p = count_params(space.build(s, shape, 10))
    assert make_space({"kind": kind, "min_params": p}, shape).check(s, shape) is None
    assert f"{p:,} parameters are below the floor of {p + 1:,}" in make_space(
        {"kind": kind, "min_params": p + 1}, shape).check(s, shape)
    with pytest.raises(ConfigError, match=r"min_params \(.*\) is above space\.max_params"):
        make_space({"kind": kind, "min_params": p + 1, "max_params": p}, shape)
