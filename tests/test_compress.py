"""`nasforge compress`: int8 quantization (static FX, dynamic where FX cannot trace) and pruning of a really
retrained network, measured before and after; stored, shown by status and the report, exported; bad input
refused in one line with nothing written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nasforge import api
from nasforge.cli import main
from nasforge.data.base import Dataset
from nasforge.evaluate import quantize as Q
from nasforge.final import compress as C
from nasforge.space.stage_nn import ResBlock, SqueezeExcite
from nasforge.store import Store

from .test_cli import NO_TORCH

# a stage network with what int8 and pruning must handle: residual adds, squeeze-excitation, an inverted
# block's expansion, a basic block
STAGE_SAMPLE = {"n_stages": 2, "stem": 16,
                "s0.block": "inverted", "s0.depth": 2, "s0.down": "stride", "s0.expand": 3, "s0.kernel": 3,
                "s0.se": True, "s0.width": 16,
                "s1.block": "basic", "s1.depth": 1, "s1.down": "pool", "s1.expand": 1, "s1.kernel": 3,
                "s1.se": True, "s1.width": 32}
STAGE = {
    "name": "stage", "seed": 0, "data": {"source": "digits"},
    "space": {"kind": "stage", "min_stages": 2, "max_stages": 2, "widths": [16, 32], "stems": [16]},
    "strategy": {"name": "random"},
    "search": {"trials": 1, "budget": {"epochs": 1}, "measure_latency": False, "initial": [STAGE_SAMPLE]},
    "retrain": {"epochs": 10, "baseline": False},
}
# a residual conv with stride 2: its shortcut strides by a Python condition on the tensor, which FX cannot trace
CHAIN = {
    "name": "chain", "seed": 0, "data": {"source": "digits"},
    "space": {"kind": "chain", "types": ["conv"], "skips": [True], "strides": [2], "widths": [16], "kernels": [3],
              "paddings": ["same"], "activations": ["relu"], "batch_norm": [True], "min_blocks": 1, "max_blocks": 1},
    "strategy": {"name": "random"},
    "search": {"trials": 1, "budget": {"epochs": 1}, "measure_latency": False},
    "retrain": {"epochs": 3, "baseline": False},
}


def retrained(root: Path, cfg: dict) -> Path:
    db = root / f"{cfg['name']}.db"
    api.search({**cfg, "search": {**cfg["search"], "db": str(db)}})
    api.retrain(db)
    return db


@pytest.fixture(scope="module")
def stage_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retrained(tmp_path_factory.mktemp("stage"), STAGE)


@pytest.fixture(scope="module")
def chain_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return retrained(tmp_path_factory.mktemp("chain"), CHAIN)


def fingerprint(db: Path) -> tuple[str, list[str]]:
    """The database's bytes and every file beside it: what a refused command must leave as it was (SQLite's own
    -wal and -shm files aside: a read-only connection may leave them, empty)."""
    files = sorted(str(p.relative_to(db.parent)) for p in db.parent.rglob("*")
                   if p.is_file() and p != db and not p.name.endswith(("-wal", "-shm")))
    return hashlib.sha256(db.read_bytes()).hexdigest(), files


def test_int8_and_structured_pruning_of_a_retrained_stage_network(stage_db, tmp_path, capsys, monkeypatch):
    reads: list[int] = []
    real_open = Dataset.open_test

    def open_test(self):  # type: ignore[no-untyped-def]
        reads.append(1)
        return real_open(self)

    monkeypatch.setattr(Dataset, "open_test", open_test)
    capsys.readouterr()
    record_path = tmp_path / "c.json"
    assert main(["compress", str(stage_db), "--quantize", "int8", "--prune", "0.5", "--finetune-epochs", "3",
                 "--json", str(record_path)]) == 0
    assert reads == [1]  # every version is scored on one read of the test split, after compression
    out = capsys.readouterr().out
    assert "test split read once more" in out and "static (FX, x86)" in out and "structured, 50%" in out
    rec = json.loads(record_path.read_text())
    fp32, int8, pruned = rec["rows"]
    assert [fp32["name"], int8["name"], pruned["name"]] == ["fp32", "int8", "pruned"]
    with Store(stage_db, readonly=True) as st:
        (stored,) = st.results(st.experiment().id, "compress")
    assert stored["rows"] == rec["rows"]
    retrain = api.load(stage_db).retrains[-1]["models"][0]["test"]["accuracy"]
    assert fp32["accuracy"] == pytest.approx(retrain, abs=0.01)  # the TorchScript file scores as the retrain did
    assert fp32["accuracy"] > 0.6
    assert int8["method"] == Q.STATIC and int8["note"] is None and int8["calibration_examples"] == 512
    assert abs(int8["accuracy"] - fp32["accuracy"]) < 0.05
    assert fp32["size_bytes"] - int8["size_bytes"] > 2 * fp32["params"]  # 4 bytes a weight become about 1
    # half the prunable channels: the expansion and SE channels of the inverted blocks, the basic block's inner ones
    assert pruned["channels"]["removed"] * 2 == pruned["channels"]["prunable"] and pruned["channels"]["layers"] >= 5
    assert pruned["params"] < 0.8 * fp32["params"] and pruned["nonzero_params"] == pruned["params"]
    assert pruned["flops"] < 0.8 * fp32["flops"] and int8["flops"] == fp32["flops"]
    assert pruned["finetune_epochs"] == 3 and pruned["finetune_seconds"] > 0
    assert pruned["accuracy"] > fp32["accuracy"] - 0.15
    assert all(r["latency_ms"] > 0 for r in rec["rows"]) and rec["latency"]["batch"] == 1
    # the compressed networks are TorchScript files beside the weights, and they load and run
    x = torch.randn(3, 1, 8, 8)
    for row in (int8, pruned):
        path = Path(row["file"])
        assert path.parent == stage_db.parent / "stage-models" / "stage" and path.name == f"searched-{row['name']}.pt"
        with Q.quantized_engine():
            assert torch.jit.load(str(path))(x).shape == (3, 10)
    # status shows the record; the report has its table
    assert main(["status", str(stage_db)]) == 0
    status = capsys.readouterr().out
    assert "last compression (trial 0" in status and "int8" in status and "pruned" in status
    page = api.report(stage_db, out=tmp_path / "rep")
    html = page.read_text()
    assert "id='compression'" in html and "static (FX, x86)" in html
    # export writes the compressed networks as TorchScript and ONNX
    assert main(["export", str(stage_db), "--compressed", "pruned", "--format", "torchscript",
                 "--out", str(tmp_path / "e")]) == 0
    script = torch.jit.load(str(tmp_path / "e" / "model_pruned_torchscript.pt"))
    with Q.quantized_engine():
        assert torch.allclose(script(x), torch.jit.load(pruned["file"])(x))
    ort = pytest.importorskip("onnxruntime")
    for which in ("pruned", "int8"):
        assert main(["export", str(stage_db), "--compressed", which, "--format", "onnx",
                     "--out", str(tmp_path / "e")]) == 0
        session = ort.InferenceSession(str(tmp_path / "e" / f"model_{which}.onnx"))
        logits = session.run(None, {"input": x.numpy()})[0]
        with Q.quantized_engine():
            want = torch.jit.load(str(Path(int8["file"] if which == "int8" else pruned["file"])))(x)
        assert logits.shape == (3, 10)
        assert (logits.argmax(1) == want.argmax(1).numpy()).mean() >= 2 / 3


def test_dynamic_fallback_where_fx_cannot_trace_and_unstructured_pruning(chain_db, capsys):
    assert main(["export", str(chain_db), "--compressed", "int8", "--format", "torchscript"]) == 2
    assert "has no int8 network yet: run `nasforge compress" in capsys.readouterr().err
    rec = api.compress(chain_db, quantize="int8", prune=0.5, prune_mode="unstructured", finetune_epochs=0)
    fp32, int8, pruned = rec["rows"]
    assert int8["method"] == Q.DYNAMIC and "TraceError" in int8["note"] and int8["calibration_examples"] == 0
    assert abs(int8["accuracy"] - fp32["accuracy"]) < 0.05
    # unstructured: as many parameters, about half of the conv and Linear weights zero, the same dense file
    assert pruned["params"] == fp32["params"] and pruned["nonzero_params"] < 0.6 * fp32["nonzero_params"]
    assert pruned["method"].startswith("unstructured") and "channels" not in pruned
    assert abs(pruned["size_bytes"] - fp32["size_bytes"]) < 0.05 * fp32["size_bytes"]
    # structured pruning finds nothing to remove here: refused in one line before anything is written
    before = fingerprint(chain_db)
    with pytest.raises(C.CompressError, match="no channels structured pruning can remove"):
        api.compress(chain_db, prune=0.5)
    assert fingerprint(chain_db) == before


def dead_channels(model: nn.Module, keep: int) -> None:
    """Make every prunable producer's channels past ``keep`` dead: tiny filters (so L1 picks them), and zero
    batch-norm scale and shift after them (zero filters and bias without one), so they output exactly zero;
    pruning must then change nothing."""
    with torch.no_grad():
        for chain in C._chains(model):
            for i in range(len(chain)):
                pair = C._pair_from(chain, i)
                if pair is None:
                    continue
                producer = C._get(pair.producer)
                bns = [C._get(s) for k, s in pair.between if k == "bn"]
                producer.weight[keep:] *= 1e-3 if bns else 0.0  # type: ignore[index]
                if not bns and producer.bias is not None:  # no batch-norm (squeeze-excitation's hidden layer)
                    producer.bias[keep:] = 0  # type: ignore[index]
                for bn in bns:
                    bn.weight[keep:] = 0  # type: ignore[index]
                    bn.bias[keep:] = 0  # type: ignore[index]


def test_structured_pruning_removes_only_what_no_output_depends_on():
    """Exactness: with the channels to go made dead, the pruned network computes what the original did; block
    outputs that feed residual adds keep their width."""
    torch.manual_seed(0)
    stage = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),  # an inverted block
                      nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
                      SqueezeExcite(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 8, 1), nn.ReLU(),
                                                  nn.Conv2d(8, 16, 1), nn.Sigmoid())),
                      nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8)),
        ResBlock(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                               nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)), nn.Identity(), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    chain = nn.Sequential(nn.Conv2d(2, 8, 3), nn.BatchNorm2d(8), nn.GELU(), nn.MaxPool2d(2), nn.Dropout2d(0.1),
                          nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    # stage: stem -> expansion, expansion -> projection (through the depthwise conv and SE), SE's hidden layer,
    # the basic block's inner channels, the hidden Linear; chain: conv -> conv, conv -> (global pool) Linear
    for net, pairs in ((stage, 5), (chain, 2)):
        for m in net.modules():  # batch-norm statistics off their defaults
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)  # type: ignore[union-attr]
                m.running_var.uniform_(0.5, 2.0)  # type: ignore[union-attr]
        dead_channels(net, keep=4)
        net.eval()
        pruned, stats = C.prune_structured(net, 0.5)
        assert stats["layers"] == pairs
        x = torch.randn(4, 2, 6, 6)
        with torch.no_grad():  # every top-level output the pruning kept the width of, the network's own included
            same = [(a, b) for a, b in ((net[:i](x), pruned[:i](x)) for i in range(1, len(net) + 1))
                    if a.shape == b.shape]
        assert same[-1][0].shape == (4, 3) and all(torch.allclose(a, b, atol=1e-5) for a, b in same)
        assert max(float(a.std(0).max()) for a, _ in same) > 1e-3  # outputs that depend on the input
        assert C.count_params(pruned) < C.count_params(net)
    pruned, _ = C.prune_structured(stage, 0.5)
    inverted, block = pruned[3], pruned[4]
    assert inverted[0].out_channels == 8 and inverted[3].groups == 8 and inverted[7].out_channels == 8
    assert isinstance(block, ResBlock) and block.body[0].out_channels == 4 and block.body[3].out_channels == 8


BAD = [
    ("int4", ["--quantize", "int4"], "cannot quantize to 'int4'"),
    ("prune 1.5", ["--prune", "1.5"], "above 0 and below 1"),
    ("prune 0", ["--prune", "0"], "above 0 and below 1"),
    ("prune -1", ["--prune", "-1"], "above 0 and below 1"),
    ("nothing", [], "nothing to do"),
    ("mode", ["--prune", "0.5", "--prune-mode", "channels"], "unknown --prune-mode"),
    ("finetune", ["--prune", "0.5", "--finetune-epochs", "-1"], "--finetune-epochs"),
    ("unknown name", ["--quantize", "int8", "--name", "nope"], "no experiment 'nope'"),
    ("export python", ["export", "--compressed", "int8", "--format", "python"], "torchscript or onnx"),
]


@pytest.mark.parametrize("args, needle", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_one_line_exit_2_nothing_written(stage_db, capsys, args, needle):
    before = fingerprint(stage_db)
    argv = [args[0], str(stage_db), *args[1:]] if args[:1] == ["export"] else ["compress", str(stage_db), *args]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nasforge: error:") and needle in err[0], err
    assert fingerprint(stage_db) == before


def test_compress_before_retrain_or_without_a_database(tmp_path, capsys):
    db = tmp_path / "s.db"
    api.search({**CHAIN, "search": {**CHAIN["search"], "db": str(db)}})
    before = fingerprint(db)
    first = "no retrained model yet: run `nasforge retrain"
    for argv, needle in ((["compress", str(db), "--quantize", "int8"], first),
                         (["export", str(db), "--compressed", "int8", "--format", "onnx"], first),
                         (["compress", str(tmp_path / "none.db"), "--prune", "0.5"], "no database")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert fingerprint(db) == before and not (tmp_path / "none.db").exists()


def test_status_shows_a_compression_without_importing_torch(tmp_path):
    import nasforge

    db = tmp_path / "s.db"
    with nasforge.open_study(db, name="s", space={"kind": "chain", "max_blocks": 3}, input_shape=(1, 8, 8),
                             strategy="random") as study:
        study.tell(study.ask(), 0.5)
    row = {"accuracy": 0.9, "params": 1000, "size_bytes": 4096, "latency_ms": 0.5, "speedup": 1.0}
    with Store(db) as st:
        st.add_result(st.experiment("s").id, "compress", {
            "trial": 0, "rows": [{**row, "name": "fp32", "method": "retrained network", "nonzero_params": 1000},
                                 {**row, "name": "int8", "method": Q.STATIC, "nonzero_params": None,
                                  "accuracy": 0.89, "size_bytes": 1024, "latency_ms": 0.25, "speedup": 2.0}],
            "latency": {"batch": 1, "device": "cpu", "threads": 1, "how": "frozen TorchScript"}})
    run = subprocess.run([sys.executable, "-c", NO_TORCH, "status", str(db)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("torch imported: False")
    lines = run.stdout.splitlines()
    at = lines.index("last compression (trial 0, test split read once more):")
    assert lines[at + 4].split()[:8] == ["int8", "89.00%", "1.0K", "-", "-", "1K", "0.250", "2.00x"]


def test_the_latency_int8_objective_times_each_candidates_int8_version(tmp_path, capsys):
    from nasforge.pareto import check_objectives, point
    from nasforge.types import Cost, Trial, TrialState

    assert check_objectives(["accuracy", "latency_int8"]) == ("accuracy", "latency_int8")
    t = Trial(number=0, sample={}, key="k", state=TrialState.COMPLETE, score=0.9,
              cost=Cost(params=10, flops=20, latency_ms=2.0, latency_int8_ms=0.5))
    assert point(t, ("accuracy", "latency", "latency_int8")) == (-0.9, 2.0, 0.5)
    assert Cost.from_json(t.cost.to_json()) == t.cost  # type: ignore[union-attr]
    db = tmp_path / "s.db"
    cfg = {**STAGE, "strategy": {"name": "nsga2"}, "space": {**STAGE["space"], "widths": [16], "depths": [1]},
           "search": {"trials": 2, "budget": {"epochs": 1, "fraction": 0.3}, "db": str(db),
                      "objectives": ["accuracy", "latency_int8"]}}
    result = api.search(cfg)
    done = [t for t in result.trial_list if t.ok]
    assert len(done) == 2 and all(t.cost is not None and t.cost.latency_int8_ms > 0 for t in done)  # type: ignore[operator]
    assert result.pareto
    capsys.readouterr()
    assert main(["status", str(db)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front (accuracy vs latency_int8)" in out and "int8_ms" in out
