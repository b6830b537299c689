"""Export: every format reloads to the trained network's outputs; the standalone source runs where
nasforge cannot be imported and reproduces the retrained model's test accuracy."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from nasforge import api
from nasforge.cli import main
from nasforge.data import load_dataset
from nasforge.data.base import Preprocess, stratified_split
from nasforge.data.registry import DIGITS_TEST_FRACTION, DIGITS_TEST_SEED
from nasforge.evaluate.trainer import Recipe, train
from nasforge.final import FORMATS
from nasforge.final.export import ModelInfo, export_model, load_python, model_from_genotype
from nasforge.space import make_space
from nasforge.space.chain import chain_sample
from nasforge.store import Store

CHAIN = {"kind": "chain", "types": ["conv", "parallel", "pool", "dense", "dropout", "batchnorm"],
         "skips": [False, True], "widths": [8, 16], "kernels": [3, 5], "max_blocks": 10,
         "activations": ["relu", "gelu", "tanh"]}
CHAIN_BLOCKS = [  # residual with valid padding and stride (crop + stride shortcut), concat and sum branches
    {"type": "conv", "width": 8, "kernel": 5, "stride": 2, "padding": "valid", "skip": True, "bn": True},
    {"type": "parallel", "width": 8, "branches": 3, "merge": "concat", "skip": True, "bn": True, "act": "gelu"},
    {"type": "pool", "pool": "avg", "pool_size": 3},
    {"type": "parallel", "width": 16, "branches": 2, "merge": "sum", "skip": False, "bn": False},
    {"type": "dropout", "rate": 0.25},
    {"type": "batchnorm"},
    {"type": "conv", "width": 16, "kernel": 3, "stride": 1, "padding": "same", "skip": True, "act": "tanh"},
    {"type": "pool", "pool": "max", "pool_size": 2},
    {"type": "dense", "width": 16, "act": "gelu"},
]
CELL = {"kind": "cell", "n_nodes": 4, "channels": 8, "n_stages": 2}
CELL_SAMPLE = {"edge_1_0": "nor_conv_3x3", "edge_2_0": "skip_connect", "edge_2_1": "avg_pool_3x3",
               "edge_3_0": "none", "edge_3_1": "nor_conv_1x1", "edge_3_2": "skip_connect"}


def trained(kind: str) -> tuple[nn.Module, ModelInfo, torch.Tensor]:
    """A briefly trained network (batch-norm statistics moved off their defaults) and a batch to compare on."""
    if kind == "chain":
        shape: tuple[int, ...] = (1, 15, 15)
        space = make_space(CHAIN, shape)
        sample = chain_sample(space, CHAIN_BLOCKS, head="gap")  # type: ignore[arg-type]
        spec = CHAIN
    elif kind == "sequence":
        shape = (2, 20)
        space = make_space(CHAIN, shape)
        sample = chain_sample(space, CHAIN_BLOCKS[:7], head="flatten")  # type: ignore[arg-type]
        spec = CHAIN
    else:
        shape = (3, 7, 7)  # odd sizes: the reduction's ceil-mode shortcut pool matters
        space = make_space(CELL, shape)
        sample, spec = CELL_SAMPLE, CELL
    return train_briefly(space, sample, shape, spec, trial=3)


def train_briefly(space: Any, sample: Any, shape: tuple[int, ...], spec: Any, *,
                  trial: int) -> tuple[nn.Module, ModelInfo, torch.Tensor]:
    """A network of ``space`` trained 2 epochs on random data (5 classes), its export info and 8 test inputs."""
    assert space.check(sample, shape, 5) is None
    torch.manual_seed(0)
    model = space.build(sample, shape, 5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((64, *shape), generator=gen)
    train(model, x, torch.randint(0, 5, (64,), generator=gen), epochs=2, recipe=Recipe(batch_size=16), seed=0)
    info = ModelInfo(input_shape=shape, classes=tuple("abcde"), description=space.describe(sample),
                     sample=sample, space=spec, experiment="t", trial=trial)
    return model.eval(), info, torch.randn((8, *shape), generator=gen)


@pytest.fixture(scope="module")
def nets() -> dict[str, tuple[nn.Module, ModelInfo, torch.Tensor]]:
    return {k: trained(k) for k in ("chain", "sequence", "cell")}


def reload(fmt: str, files: list[Path], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if fmt == "python":
            return load_python(files[0])(x)
        if fmt == "torchscript":
            return torch.jit.load(str(files[0]))(x)
        if fmt == "json":
            return model_from_genotype(files[0])(x)
    ort = pytest.importorskip("onnxruntime")
    out = ort.InferenceSession(str(files[0])).run(None, {"input": x.numpy()})[0]
    return torch.from_numpy(out)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["chain", "sequence", "cell"])
def test_every_format_reloads_to_the_trained_outputs(nets, tmp_path, kind, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    model, info, x = nets[kind]
    with torch.no_grad():
        expected = model(x)
    files = export_model(model, fmt, tmp_path, info)
    assert all(f.exists() for f in files)
    got = reload(fmt, files, x)
    assert got.shape == expected.shape
    # the trained model runs channels_last (as training left it), the reloads in the default layout:
    # equal up to float rounding
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()


def test_python_source_is_plain_torch(nets, tmp_path):
    model, info, _ = nets["cell"]
    src = export_model(model, "python", tmp_path, info)[0].read_text()
    assert "class Cell(nn.Module)" in src and "class ReductionBlock(nn.Module)" in src and "class Net(" in src
    assert imports(src) == {"__future__", "pathlib", "torch"}
    chain = export_model(nets["chain"][0], "python", tmp_path / "c", nets["chain"][1])[0].read_text()
    assert "class Parallel(nn.Module)" in chain and "class Residual(nn.Module)" in chain
    assert "nasforge" not in imports(chain)


@pytest.mark.parametrize("shape", [(4,), (1, 6, 6), (3, 6, 6)])
def test_exported_preprocess_accepts_a_single_row_or_channel_less_images(tmp_path, shape):
    space = make_space({"kind": "chain", "types": ["dense"] if len(shape) == 1 else ["conv"], "widths": [4],
                        "kernels": [3], "max_blocks": 1}, shape)
    rng = np.random.default_rng(0)
    sample = next(s for s in (space.sample(rng) for _ in range(50)) if space.check(s, shape, 3) is None)
    n_feat = shape[0]
    pre = Preprocess(scale=2.0, mean=tuple(0.5 for _ in range(n_feat)), std=tuple(2.0 for _ in range(n_feat)))
    info = ModelInfo(input_shape=shape, classes=("a", "b", "c"), preprocess=pre)
    (path, *_) = export_model(space.build(sample, shape, 3).eval(), "python", tmp_path, info)
    spec = importlib.util.spec_from_file_location("exported_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    batch = torch.full((5, *shape), 4.0)
    assert module.preprocess(batch).shape == batch.shape
    assert torch.allclose(module.preprocess(batch), torch.full(batch.shape, 0.75))  # (4 / 2 - 0.5) / 2
    if shape[0] == 1:  # grey images without the channel axis
        assert module.preprocess(batch[:, 0]).shape == batch.shape
    else:  # one table row, or one colour image: a batch of one
        assert module.preprocess(batch[0]).shape == (1, *shape)
        if len(shape) > 1:  # colour images without their channel axis are ambiguous: refused, not guessed
            with pytest.raises(ValueError, match="expected inputs shaped"):
                module.preprocess(batch[:, 0])


def imports(src: str) -> set[str]:
    """Top-level packages a module imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


def torch_only_path(work: Path) -> Path:
    """A directory with everything torch needs from the environment and nothing of nasforge.

    The venv's site-packages holds nasforge's editable-install hooks (a .pth file, maybe a finder
    module); they are left out, so ``import nasforge`` fails where this directory is the path.
    """
    site = Path(torch.__file__).resolve().parents[1]
    keep = work / "torch-only"
    keep.mkdir(parents=True)
    for entry in site.iterdir():
        n = entry.name.lower()
        if "nasforge" in n or n.startswith("__editable__") or n.endswith(".pth") or n == "__pycache__":
            continue
        (keep / entry.name).symlink_to(entry)
    assert not any("nasforge" in p.name.lower() for p in keep.iterdir())
    return keep


RUNNER = textwrap.dedent("""
    import importlib.util, json, sys
    sys.path.insert(0, {path!r})
    try:
        import nasforge
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("nasforge is importable here: not a fair test of the standalone export")
    spec = importlib.util.spec_from_file_location("model", {model!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import torch
    net = module.load()
    x, y = torch.load({data!r}, weights_only=True)
    with torch.no_grad():
        logits = torch.cat([net(module.preprocess(x[i:i + 1024])) for i in range(0, len(x), 1024)])
    torch.save(logits, {logits!r})
    assert "nasforge" not in sys.modules
    print(json.dumps({{"accuracy": float((logits.argmax(1) == y).float().mean())}}))
""")


def run_isolated(work: Path, model_py: Path, data: Path) -> subprocess.CompletedProcess:
    """Run the exported file with ``python -I -S`` in ``work``: no site-packages, no PYTHONPATH, no
    current directory on the path; only torch's environment without nasforge. Logits go to work/logits.pt."""
    code = RUNNER.format(path=str(torch_only_path(work)), model=str(model_py), data=str(data),
                         logits=str(work / "logits.pt"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=work,
                          env=env, timeout=120)


def test_standalone_source_reproduces_the_test_accuracy_without_nasforge(tmp_path, capsys):
    cfg = {"name": "digits", "seed": 0, "data": {"source": "digits"},
           "space": {"kind": "chain", "max_blocks": 3, "widths": [8, 16], "kernels": [3], "types": ["conv", "pool"],
                     "skips": [True]},
           "strategy": {"name": "random"}, "retrain": {"epochs": 1, "baseline": False},
           "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False, "db": str(tmp_path / "s.db")}}
    db = tmp_path / "s.db"
    api.search(cfg)
    assert main(["export", str(db), "--format", "python"]) == 2  # nothing retrained yet
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run `nasforge retrain" in err
    assert main(["retrain", str(db)]) == 0
    out_dir = tmp_path / "exported"
    assert main(["export", str(db), "--format", "python", "--out", str(out_dir)]) == 0
    model_py = out_dir / "model.py"
    assert imports(model_py.read_text()) == {"__future__", "pathlib", "torch"}
    with Store(db) as st:
        (res,) = st.results(st.experiment("digits").id, "retrain")
    data = load_dataset("digits", seed=0)
    x, y = data.open_test()
    # raw 0..16 pixels of the same test images, shaped (N, 8, 8): the exported preprocess() does the rest
    bunch = load_digits()
    _, test_idx = stratified_split(bunch.target, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    assert torch.equal(torch.from_numpy(bunch.target[test_idx]), y)
    pre = data.preprocess  # the recorded statistics map raw pixels to exactly the loader's tensors
    assert pre is not None and pre.scale == 16.0
    raw = torch.from_numpy(bunch.images[test_idx]).unsqueeze(1).float()
    assert torch.allclose((raw / pre.scale - torch.tensor(pre.mean)) / torch.tensor(pre.std), x, atol=1e-5)
    torch.save((torch.from_numpy(bunch.images[test_idx]), y), tmp_path / "test.pt")
    r = run_isolated(tmp_path / "run", model_py, tmp_path / "test.pt")
    assert r.returncode == 0, r.stderr
    # the same number of correct test predictions as the retrain reported
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(res["models"][0]["test"]["accuracy"], abs=0.5 / len(y))
    # and the logits are the retrained network's own
    with Store(db) as st:
        (best,) = [t for t in st.trials(st.experiment("digits").id) if t.number == res["trial"]]
    ref = make_space(cfg["space"], data.input_shape).build(best.sample, data.input_shape, data.n_classes)
    ref.load_state_dict(torch.load(res["models"][0]["weights"], weights_only=True))
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "run" / "logits.pt", weights_only=True), ref.eval()(x), atol=1e-4)
    # the check is real: a file that needs nasforge fails there
    bad = out_dir / "bad.py"
    bad.write_text(model_py.read_text().replace("import torch\n", "import torch\nimport nasforge\n", 1))
    r = run_isolated(tmp_path / "control", bad, tmp_path / "test.pt")
    assert r.returncode != 0 and "No module named 'nasforge'" in r.stderr


def test_export_cli_formats_and_trial_choice(tmp_path, capsys):
    cfg = {"name": "digits", "seed": 0, "data": {"source": "digits"},
           "space": {"kind": "chain", "max_blocks": 2, "widths": [8], "kernels": [3], "types": ["conv", "dense"]},
           "strategy": {"name": "random"}, "retrain": {"epochs": 1, "baseline": False},
           "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False, "db": str(tmp_path / "s.db")}}
    db = tmp_path / "s.db"
    api.search(cfg)
    assert main(["retrain", str(db), "--trial", "1"]) == 0
    assert main(["export", str(db), "--format", "json", "--trial", "0"]) == 2
    assert "no retrained model yet: run `nasforge retrain" in capsys.readouterr().err
    assert main(["export", str(db), "--format", "json"]) == 0
    genotype = json.loads((tmp_path / "s-models" / "digits" / "export" / "model.json").read_text())
    assert genotype["trial"] == 1 and genotype["space"]["kind"] == "chain" and genotype["input_shape"] == [1, 8, 8]
    assert genotype["params"] > 0 and len(genotype["classes"]) == 10
    assert main(["export", str(db), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    assert (tmp_path / "ts" / "model_torchscript.pt").exists()


def test_onnx_without_the_extra_is_one_clear_error(nets, tmp_path, monkeypatch):
    from nasforge.final.export import ExportError

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if `nasforge[onnx]` were not installed
    model, info, _ = nets["chain"]
    with pytest.raises(ExportError, match=r"pip install 'nasforge\[onnx\]'"):
        export_model(model, "onnx", tmp_path, info)
