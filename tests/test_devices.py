"""Devices and precision, on the CPU only: what `auto` picks, bf16 autocast that really trains, one-line errors for a
device this machine lacks, CPU fp32 unchanged to the bit, and the GPU arithmetic of the executors (pure functions,
and a real pool whose workers each get their own CUDA_VISIBLE_DEVICES)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
import yaml

from nasforge.cli import main
from nasforge.config import from_dict, with_overrides
from nasforge.errors import ConfigError
from nasforge.evaluate.device import autocast, gpu_count, grad_scaler, resolve_device, resolve_precision
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.evaluate.trainer import Recipe, train
from nasforge.execute.base import Job, default_workers, worker_gpus
from nasforge.space.chain import ChainSpace, chain_sample
from nasforge.testing import FunctionEvaluator, toy_objective, toy_space
from nasforge.types import Budget, Cost

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what happens where no CUDA GPU is visible")
BLOCKS = [{"type": "conv", "width": 8, "kernel": 3, "stride": 1, "padding": "same", "act": "relu", "bn": True},
          {"type": "pool", "pool": "max", "pool_size": 2}, {"type": "dropout", "rate": 0.2}]
DIGITS = {"name": "d", "data": {"source": "digits"}, "space": {"kind": "chain", "max_blocks": 3, "widths": [8]},
          "strategy": {"name": "random"}, "search": {"trials": 1, "budget": {"epochs": 1}, "measure_latency": False}}


def net(space: ChainSpace, shape: tuple[int, ...], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return space.build(chain_sample(space, BLOCKS, head="flatten"), shape, 10)


def fake_gpus(monkeypatch: pytest.MonkeyPatch, count: int, bf16: bool = True) -> None:
    """What torch answers on a machine with ``count`` CUDA GPUs (nothing here touches one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)


# ------------------------------------------------------------------------------------------ choices


@NO_GPU
def test_auto_is_the_cpu_in_fp32_here_and_explicit_choices_hold():
    cpu = torch.device("cpu")
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert resolve_device("auto") == cpu
    assert resolve_device("cpu") == cpu
    assert resolve_precision("auto", cpu) is None  # fp32: no autocast at all
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16  # CPU autocast has bfloat16
    assert grad_scaler(cpu, torch.bfloat16) is None and grad_scaler(cpu, None) is None
    assert gpu_count() == 0
    assert Recipe().device == "auto" and Recipe().precision == "auto"


def test_auto_takes_cuda_then_mps_when_torch_sees_them(monkeypatch):
    fake_gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda", 0)  # with its index: tensors' devices compare equal
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"^--device cuda:2: PyTorch sees 2 CUDA GPUs here \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2", "--device")
    gpu = torch.device("cuda", 0)
    assert resolve_precision("auto", gpu) is torch.bfloat16
    assert resolve_precision("fp16", gpu) is torch.float16
    assert gpu_count() == 2
    fake_gpus(monkeypatch, 2, bf16=False)  # an older GPU: fp16, with a grad scaler
    assert resolve_precision("auto", gpu) is torch.float16
    with pytest.raises(ConfigError, match="has no bfloat16"):
        resolve_precision("bf16", gpu)
    fake_gpus(monkeypatch, 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_precision("auto", torch.device("mps")) is None


@NO_GPU
def test_bad_devices_and_precisions_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^--device cuda: no CUDA GPU is visible to PyTorch here; use --device "
                                          r"cpu or auto$"):
        resolve_device("cuda", "--device")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda:0")
    with pytest.raises(ConfigError, match=r"^train.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'$"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match=r"^train.precision fp16 needs a CUDA GPU .* use bf16 or fp32$"):
        resolve_precision("fp16", torch.device("cpu"))
    for bad, where in (({"device": "gpu"}, "train.device"), ({"device": "cuda:x"}, "train.device"),
                       ({"precision": "fp8"}, "train.precision"), ({"device": 0}, "train.device")):
        with pytest.raises(ConfigError, match=f"^{where} must be"):
            from_dict({"train": bad})
    with pytest.raises(ConfigError, match=r"^retrain\.precision must be"):
        from_dict({"retrain": {"precision": "half"}})


def test_the_config_carries_device_and_precision_to_the_retrain_but_not_into_the_fingerprint():
    base = from_dict(DIGITS)
    cfg = from_dict({**DIGITS, "train": {"device": "cpu", "precision": "bf16"}})
    assert (cfg.train.device, cfg.train.precision) == ("cpu", "bf16")
    assert (cfg.retrain.recipe.device, cfg.retrain.recipe.precision) == ("cpu", "bf16")  # inherited from train
    own = from_dict({**DIGITS, "train": {"device": "cpu"}, "retrain": {"device": "auto"}})
    assert own.retrain.recipe.device == "auto"
    # where it trains is not what: a search resumes on another device (and old databases keep their fingerprint)
    assert cfg.fingerprint() == base.fingerprint()
    assert from_dict({**DIGITS, "train": {"lr": 0.01}}).fingerprint() != base.fingerprint()
    over = with_overrides(own, device="cpu")  # --device: the search's and the retrain's
    assert over.train.device == over.retrain.recipe.device == "cpu"
    assert with_overrides(base, device="cpu").raw["train"] == {"device": "cpu"}
    # and not into a retrain's checkpoint identity either
    assert Recipe(device="cpu", precision="bf16").identity() == Recipe().identity()
    assert "device" not in Recipe().identity()


# ------------------------------------------------------------------------------------------ the CLI


@NO_GPU
def test_cuda_without_a_gpu_fails_in_one_line_with_exit_2_and_writes_nothing(tmp_path, capsys):
    db = tmp_path / "s.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**DIGITS, "search": {**DIGITS["search"], "db": str(db)}}))
    runs = [(["search", str(cfg), "--device", "cuda"], "--device cuda: no CUDA GPU is visible to PyTorch here; "
                                                         "use --device cpu or auto"),
            (["search", str(cfg), "--device", "gpu"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
            (["retrain", str(db), "--device", "cuda:1"], "--device cuda:1: no CUDA GPU"),
            (["auto", "digits", "--time-budget", "1m", "--db", str(db), "--device", "cuda"], "--device cuda: no CUDA"),
            (["search", str(cfg), "--precision", "fp16"], "train.precision fp16 needs a CUDA GPU"),
            (["search", str(cfg), "--precision", "fp8"], "train.precision must be auto, fp32, bf16, fp16"),
            (["retrain", str(db), "--precision", "fp8"], "precision must be auto, fp32, bf16, fp16, got 'fp8'"),
            (["auto", "digits", "--time-budget", "1m", "--db", str(db), "--precision", "fp16"],
             "precision fp16 needs a CUDA GPU")]
    for args, said in runs:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nasforge: error: {said}") and err.count("\n") == 1, err
        assert list(tmp_path.iterdir()) == [cfg]  # no database, no folder
    for recipe, said in (({"device": "cuda"}, "train.device cuda: no CUDA GPU"),
                         ({"device": "cpu", "precision": "fp16"}, "train.precision fp16 needs a CUDA GPU")):
        cfg.write_text(yaml.safe_dump({**DIGITS, "train": recipe, "search": {**DIGITS["search"], "db": str(db)}}))
        assert main(["search", str(cfg)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nasforge: error: {said}") and err.count("\n") == 1, err
        assert list(tmp_path.iterdir()) == [cfg]


# ------------------------------------------------------------------------------------------ training


def test_bf16_autocast_trains_on_the_cpu(digits):
    space = ChainSpace(max_blocks=3)
    model = net(space, digits.input_shape)
    seen: set[torch.dtype] = set()
    model.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    recipe = Recipe(device="cpu", precision="bf16", batch_size=64)
    stats = train(model, digits.x_train, digits.y_train, epochs=2, recipe=recipe, x_val=digits.x_val,
                  y_val=digits.y_val, n_classes=10)
    assert torch.bfloat16 in seen  # the forward passes really ran in bfloat16
    assert all(math.isfinite(r["train_loss"]) for r in stats.curve)
    assert stats.curve[-1]["val_accuracy"] > 0.5  # and learned: 10 classes, chance is 0.1
    fp32 = train(net(space, digits.input_shape), digits.x_train, digits.y_train, epochs=2,
                 recipe=replace(recipe, precision="fp32"), x_val=digits.x_val, y_val=digits.y_val, n_classes=10)
    assert stats.curve[-1]["train_loss"] == pytest.approx(fp32.curve[-1]["train_loss"], rel=0.02)  # as well as fp32
    assert stats.curve[-1]["train_loss"] != fp32.curve[-1]["train_loss"]  # yet not the same arithmetic
    assert next(model.parameters()).dtype is torch.float32  # the weights stay fp32 (autocast, not a cast)
    with autocast(torch.device("cpu"), None):
        assert not torch.is_autocast_enabled("cpu")  # fp32 is no autocast at all
    res = TorchEvaluator(digits, space, recipe=recipe, seed=0).evaluate(
        chain_sample(space, BLOCKS, head="flatten"), Budget(epochs=1))
    assert math.isfinite(res.metrics["loss"]) and res.cost is not None and res.cost.latency_device == "cpu"


def test_cpu_fp32_trains_exactly_as_the_default(digits):
    """The device code path on the CPU in fp32 is the path that was there before: the same numbers, to the bit."""
    space = ChainSpace(max_blocks=3)
    base = Recipe(batch_size=64, augment=True, flip=True)
    runs = []
    for recipe in (base, replace(base, device="cpu", precision="fp32"), replace(base, device="auto")):
        model = net(space, digits.input_shape)
        torch.manual_seed(1)  # dropout's draws
        stats = train(model, digits.x_train, digits.y_train, epochs=2, recipe=recipe, seed=3, x_val=digits.x_val,
                      y_val=digits.y_val, n_classes=10)
        runs.append((stats.curve, model.state_dict()))
    for curve, state in runs[1:]:
        assert [{k: v for k, v in r.items()} for r in curve] == [dict(r) for r in runs[0][0]]
        assert all(torch.equal(state[k], runs[0][1][k]) for k in state)
    s = chain_sample(space, BLOCKS, head="flatten")
    a = TorchEvaluator(digits, space, recipe=base, seed=0, measure_latency=False).evaluate(s, Budget(epochs=1))
    b = TorchEvaluator(digits, space, recipe=replace(base, device="cpu", precision="fp32"), seed=0,
                       measure_latency=False).evaluate(s, Budget(epochs=1))
    assert a.curve == b.curve and a.metrics == b.metrics


def test_cost_records_name_the_device_and_old_records_still_read():
    assert Cost.from_json({"params": 1, "flops": 2, "latency_ms": 0.5}).latency_device is None
    c = Cost(1, 2, 0.5, "cuda:0")
    assert Cost.from_json(c.to_json()) == c
    assert "latency_device" not in Cost(1, 2).to_json()  # a record without latency reads as it always did


# ------------------------------------------------------------------------------------------ executors


def test_workers_default_to_the_gpus_and_each_pool_worker_gets_its_own():
    assert default_workers(16, 1, 0, 0.0) == 16 and default_workers(16, 4, 0, 0.0) == 4  # no GPU: as before
    assert default_workers(16, 1, 4, 1.0) == 4  # one per GPU
    assert default_workers(16, 1, 4, 0.5) == 8 and default_workers(16, 1, 4, 2.0) == 2
    assert [worker_gpus(s, 4, 1.0) for s in range(5)] == ["0", "1", "2", "3", "0"]  # round-robin
    assert [worker_gpus(s, 4, 2.0) for s in range(3)] == ["0,1", "2,3", "0,1"]
    assert [worker_gpus(s, 2, 0.5) for s in range(4)] == ["0", "1", "0", "1"]  # shares of one
    assert worker_gpus(0, 0, 1.0) is None and worker_gpus(3, 4, 0.0) is None


def test_executor_options_follow_the_gpus(monkeypatch):
    pool = from_dict({"executor": {"kind": "pool", "threads_per_worker": 1}}).executor
    assert pool.options() == {"workers": max(1, os.cpu_count() or 1), "threads_per_worker": 1, "stale_after": 60.0}
    fake_gpus(monkeypatch, 2)
    assert pool.options(gpu_count()) == {"workers": 2, "threads_per_worker": 1, "stale_after": 60.0,
                                         "gpus_per_worker": 1.0, "gpus": 2}
    ray = from_dict({"executor": {"kind": "ray", "workers": 3, "gpus_per_worker": 0.5}}).executor
    assert ray.options(2) == {"workers": 3, "threads_per_worker": 1, "stale_after": 60.0, "gpus_per_worker": 0.5,
                              "address": None}
    assert "gpus_per_worker" not in from_dict({"executor": {"kind": "pool", "gpus_per_worker": 0}}).executor.options(2)
    for bad, said in (({"kind": "pool", "gpus_per_worker": -1}, "must be 0, a share below 1"),
                      ({"kind": "pool", "gpus_per_worker": 1.5}, "must be 0, a share below 1"),
                      ({"kind": "inline", "gpus_per_worker": 1}, "applies to kinds pool and ray")):
        with pytest.raises(ConfigError, match=said):
            from_dict({"executor": bad})


@dataclass(frozen=True)
class EnvFactory:
    """A worker's evaluator that first writes down the CUDA_VISIBLE_DEVICES it was started with."""

    log: str

    def __call__(self) -> FunctionEvaluator:
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES')}\n")
        space = toy_space()
        return FunctionEvaluator(lambda s: toy_objective(space, s))


def test_a_pool_gives_each_worker_its_gpus_before_it_starts(tmp_path):
    from nasforge.execute.pool import PoolExecutor

    log = tmp_path / "env.txt"
    with PoolExecutor(EnvFactory(str(log)), workers=3, gpus=2, gpus_per_worker=1.0) as pool:
        space = toy_space()
        import numpy as np

        pool.submit(Job(0, space.sample(np.random.default_rng(0)), Budget(epochs=1)))
        assert [o.state.value for o in pool.wait(timeout=60)] == ["COMPLETE"]
    assert sorted(Path(log).read_text().split()) == ["0", "0", "1"]


def test_a_search_resumes_with_another_device_and_retrains_on_the_one_given(tmp_path, capsys):
    db = tmp_path / "s.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**DIGITS, "search": {**DIGITS["search"], "db": str(db)}}))
    assert main(["search", str(cfg), "--device", "cpu"]) == 0
    assert main(["search", str(cfg), "--device", "auto", "--precision", "bf16", "--trials", "2",
                 "--resume"]) == 0  # same fingerprint: device and precision are not part of it
    capsys.readouterr()
    assert main(["retrain", str(db), "--device", "cpu", "--precision", "fp32", "--epochs", "1",
                 "--no-baseline"]) == 0
    assert "lat_ms measured on cpu" in capsys.readouterr().out
    assert main(["status", str(db)]) == 0
    assert "lat_ms measured on cpu" in capsys.readouterr().out  # the retrain's table names where it timed
