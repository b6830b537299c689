"""The stage and mlp spaces with the rest of nasforge: every export format reproduces a trained network's
outputs (the standalone source included), and the ask/tell strategies search both spaces."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
import torch
from torch import nn

from nasforge.final import FORMATS
from nasforge.final.export import ModelInfo, export_model, load_python, model_from_genotype
from nasforge.space import make_space
from nasforge.space.stage import stage_sample
from nasforge.strategy import make_strategy
from nasforge.testing import simulate
from nasforge.types import Sample

from .test_export import train_briefly

STAGE = {"kind": "stage", "widths": [8, 16], "stems": [8], "max_stages": 3}
STAGES = [  # every kind of block: basic with identity, inverted with residual, projections, SE, pooling
    {"depth": 2, "width": 8, "block": "basic", "kernel": 3, "se": True},
    {"depth": 2, "width": 16, "block": "inverted", "kernel": 5, "expand": 3, "se": True, "down": "pool"},
    {"depth": 2, "width": 16, "block": "basic", "kernel": 5, "se": False, "down": "stride"},
]
MLP = {"kind": "mlp", "widths": [16, 32]}


def trained(kind: str) -> tuple[nn.Module, ModelInfo, torch.Tensor]:
    """A briefly trained network (batch-norm statistics off their defaults) and a batch to compare on."""

    spec: dict = STAGE if kind.startswith("stage") else MLP
    shape: tuple[int, ...] = {"stage": (3, 9, 9), "stage1d": (2, 20), "mlp": (12,), "mlp_ln": (12,)}[kind]
    space = make_space(spec, shape)
    if kind.startswith("stage"):
        sample = stage_sample(space, STAGES, stem=8)  # type: ignore[arg-type]
    else:
        norm = "layer" if kind == "mlp_ln" else "batch"
        sample = {"depth": 3, "l0.width": 32, "l1.width": 32, "l2.width": 16, "l3.width": 16, "norm": norm,
                  "dropout": 0.1, "residual": True, "act": "gelu"}
    return train_briefly(space, sample, shape, spec, trial=1)


@pytest.fixture(scope="module")
def nets() -> dict[str, tuple[nn.Module, ModelInfo, torch.Tensor]]:
    return {k: trained(k) for k in ("stage", "stage1d", "mlp", "mlp_ln")}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["stage", "stage1d", "mlp", "mlp_ln"])
def test_every_format_reloads_to_the_trained_outputs(nets, tmp_path, kind, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    model, info, x = nets[kind]
    with torch.no_grad():
        expected = model(x)
    files = export_model(model, fmt, tmp_path, info)
    with torch.no_grad():
        if fmt == "python":
            got = load_python(files[0])(x)
        elif fmt == "torchscript":
            got = torch.jit.load(str(files[0]))(x)
        elif fmt == "json":
            got = model_from_genotype(files[0])(x)
        else:
            import onnxruntime as ort

            got = torch.from_numpy(ort.InferenceSession(str(files[0])).run(None, {"input": x.numpy()})[0])
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()


def test_python_source_carries_the_stage_modules_and_imports_only_torch(nets, tmp_path):
    src = export_model(nets["stage"][0], "python", tmp_path, nets["stage"][1])[0].read_text()
    assert "class ResBlock(nn.Module)" in src and "class SqueezeExcite(nn.Module)" in src
    assert "nn.ReLU6()" in src and "groups=" in src and "nn.MaxPool2d(3, stride=2, padding=1)" in src
    assert imports(src) == {"__future__", "pathlib", "torch"}
    mlp = export_model(nets["mlp_ln"][0], "python", tmp_path / "m", nets["mlp_ln"][1])[0].read_text()
    assert "nn.LayerNorm(32)" in mlp and "class Residual(nn.Module)" in mlp


def imports(src: str) -> set[str]:
    """Top-level packages a module imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


def objective(space_kind: str, s: Sample) -> float:
    """A structured toy score: rewards width, some depth, SE/batch-norm; one mutation moves it a little."""
    if space_kind == "stage":
        n = int(s["n_stages"])
        score = 0.2 + 0.1 * n + sum(0.02 * np.log2(s[f"s{i}.width"] / 8) + 0.02 * s[f"s{i}.depth"]
                                    + 0.03 * bool(s[f"s{i}.se"]) for i in range(n))
    else:
        d = int(s["depth"])
        score = 0.3 + 0.05 * min(d, 2) + 0.03 * np.log2(s["l0.width"] / 32) + 0.05 * (s["norm"] == "batch")
    return float(min(score, 0.999))


@pytest.mark.parametrize("strategy", ["evolution", "random", "local_search", "bananas", "tpe", "genetic"])
@pytest.mark.parametrize(("space_kind", "shape"), [("stage", (3, 32, 32)), ("stage", (2, 50)), ("mlp", (20,))])
def test_strategies_search_the_new_spaces(strategy, space_kind, shape):
    space = make_space({"kind": space_kind}, shape)
    options = {"population_size": 6, "sample_size": 3} if strategy == "evolution" else {}
    hist = simulate(make_strategy(strategy, space, seed=0, **options), space,
                    lambda s: objective(space_kind, s), 14, input_shape=shape)
    keys = [t.key for t in hist]
    assert len(set(keys)) == len(keys)
    for t in hist:
        assert space.check(t.sample, shape) is None
        assert json.loads(json.dumps(t.sample)) == t.sample
    strat = make_strategy(strategy, space, seed=0, **options)
    for t in hist:
        strat.tell(t)
    (nxt,) = strat.ask(hist, 1)
    assert set(nxt.sample) == set(space.dims())
