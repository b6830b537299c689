"""Compression of the retrained network for deployment: int8 quantization and pruning, each measured.

- ``int8``: post-training static quantization in FX graph mode (PyTorch's ``quantize_fx``, the x86
  backend, per-channel weights, activations observed on a few hundred training examples). Residual adds,
  squeeze-excitation products and concatenations become quantized ops. A network FX cannot trace or
  convert (a Python condition on a tensor, an op without an int8 kernel) falls back to dynamic
  quantization of its Linear layers, and the record says so and why.
- ``pruned``: structured magnitude pruning removes whole output channels (smallest L1 norm of their
  filters) of every conv or Linear layer whose channels reach only the next conv or Linear of the same
  chain (through batch-norm, activations, pooling, a depthwise conv, squeeze-excitation), and rebuilds
  the layers smaller, so the network really gets smaller and faster. Channels that feed a residual add
  or leave a block are kept: in the spaces' networks those are a basic block's inner channels, an
  inverted block's expansion, squeeze-excitation's hidden channels, a plain chain's convs and an MLP's
  hidden layers. ``unstructured`` zeroes the smallest weights instead (fewer nonzeros, the same dense
  size and speed). A short fine-tune follows either: the retraining recipe at a tenth of its learning rate
  (on the Fashion-MNIST network of ``nasforge auto``, one epoch after 50% pruning: 93.47% test accuracy
  at a tenth, 93.45% at 3%, 92.40% at the full rate; the retrained network had 94.34%).

Every network (the fp32 original included) is measured the same way: traced to TorchScript (the file
a deployment loads, its size in bytes), test accuracy of that file on one read of the test split, and
latency at batch 1 on the CPU of the file frozen (``torch.jit.freeze``), windows of the rows taking turns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge import atomic
from nasforge.data.base import Dataset
from nasforge.errors import NasforgeError
from nasforge.evaluate.cost import count_flops, count_params, measure_latency_ms
from nasforge.evaluate.quantize import (
    ENGINE,
    Timed,
    frozen,
    load_script,
    plain,
    quantize_int8,
    quantized_engine,
    to_torchscript,
)
from nasforge.evaluate.trainer import Recipe, evaluate_split, train
from nasforge.final import PRUNE_MODES, QUANTIZE
from nasforge.space.cell_nn import ReductionBlock
from nasforge.space.stage_nn import SqueezeExcite

log = logging.getLogger("nasforge")


class CompressError(NasforgeError):
    """The network cannot be compressed as asked."""


# ---------------------------------------------------------------------- pruning
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Hardswish,
                nn.Hardtanh, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
                nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
_CONV = (nn.Conv1d, nn.Conv2d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
# custom modules whose forward runs two children one after the other: their channels in between can go
_CHAINED: dict[type[nn.Module], tuple[str, str]] = {ReductionBlock: ("conv_a", "conv_b")}

Slot = tuple[nn.Module, str]  # (parent, child name): where a layer sits, to put a smaller one in its place


def _get(slot: Slot) -> nn.Module:
    m: nn.Module = getattr(slot[0], slot[1])
    return m


def _put(slot: Slot, module: nn.Module) -> None:
    """Put ``module`` where the slot's layer was, in that layer's mode (a new layer starts in training mode)."""
    setattr(slot[0], slot[1], module.train(_get(slot).training))


def _leaves(container: nn.Module) -> list[Slot]:
    """The layers a chain runs in order: nested ``nn.Sequential`` flattened, any other module one step."""
    out: list[Slot] = []
    for name, child in container.named_children():
        if type(child) is nn.Sequential:
            out += _leaves(child)
        else:
            out.append((container, name))
    return out


def _chains(model: nn.Module) -> list[list[Slot]]:
    """Every chain of the network: each ``nn.Sequential`` not inside another one, and the known two-step blocks."""
    seqs = {id(c) for m in model.modules() if type(m) is nn.Sequential for c in m.children()}
    out = [_leaves(m) for m in model.modules() if type(m) is nn.Sequential and id(m) not in seqs]
    if type(model) is not nn.Sequential:
        out.insert(0, _leaves(model))
    for m in model.modules():
        if type(m) in _CHAINED:
            a, b = _CHAINED[type(m)]
            out.append(_leaves_of(m, a) + _leaves_of(m, b))
    return out


def _leaves_of(parent: nn.Module, name: str) -> list[Slot]:
    child = getattr(parent, name)
    return _leaves(child) if type(child) is nn.Sequential else [(parent, name)]


def _is_pointwise_producer(m: nn.Module) -> bool:
    return (isinstance(m, _CONV) and m.groups == 1) or isinstance(m, nn.Linear)


def _is_depthwise(m: nn.Module, c: int) -> bool:
    return isinstance(m, _CONV) and m.groups == m.in_channels == m.out_channels == c


def _se_convs(m: nn.Module, c: int) -> tuple[Slot, Slot] | None:
    """The first and last conv of a squeeze-excitation gate over ``c`` channels, else None."""
    if not isinstance(m, SqueezeExcite):
        return None
    convs = [s for s in _leaves_of(m, "gate") if isinstance(_get(s), _CONV)]
    if len(convs) != 2:
        return None
    first, last = _get(convs[0]), _get(convs[1])
    if isinstance(first, _CONV) and isinstance(last, _CONV) and first.in_channels == c and last.out_channels == c \
            and first.groups == 1 and last.groups == 1:
        return convs[0], convs[1]
    return None


@dataclass
class _Pair:
    """A producer whose output channels reach only ``consumer``, through ``between``."""

    producer: Slot
    between: list[tuple[str, Slot]]  # ("bn" | "ln" | "dw" | "se_in" | "se_out", where)
    consumer: Slot


def _pair_from(chain: list[Slot], i: int) -> _Pair | None:
    producer = _get(chain[i])
    if not _is_pointwise_producer(producer):
        return None
    linear = isinstance(producer, nn.Linear)
    c = int(producer.out_features if isinstance(producer, nn.Linear) else producer.out_channels)  # type: ignore[arg-type]
    flat = linear  # a Linear's output, or a conv's after global pooling to 1: a Flatten keeps the channels
    pooled = False
    between: list[tuple[str, Slot]] = []
    for slot in chain[i + 1:]:
        m = _get(slot)
        if isinstance(m, _BN) and m.num_features == c:
            between.append(("bn", slot))
        elif linear and isinstance(m, nn.LayerNorm) and tuple(m.normalized_shape) == (c,):
            between.append(("ln", slot))
        elif isinstance(m, _ELEMENTWISE) and not (linear and isinstance(m, nn.MaxPool1d | nn.AvgPool1d)):
            continue
        elif isinstance(m, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool1d | nn.AdaptiveMaxPool2d):
            size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,)
            if linear or any(s != 1 for s in size):
                return None
            pooled = True
        elif isinstance(m, nn.Flatten):
            if not (flat or pooled):
                return None
            flat = True
        elif not linear and not pooled and _is_depthwise(m, c):
            between.append(("dw", slot))
        elif not linear and not pooled and (se := _se_convs(m, c)) is not None:
            between += [("se_in", se[0]), ("se_out", se[1])]
        elif (isinstance(m, _CONV) and m.groups == 1 and m.in_channels == c and not flat and not linear) or (
                isinstance(m, nn.Linear) and m.in_features == c and (flat or linear)):
            return _Pair(chain[i], between, slot)
        else:
            return None
    return None


def _conv_like(m: nn.Module, c_in: int, c_out: int, groups: int) -> nn.Module:
    assert isinstance(m, _CONV)
    return type(m)(c_in, c_out, m.kernel_size, stride=m.stride, padding=m.padding,  # type: ignore[arg-type]
                   dilation=m.dilation, groups=groups, bias=m.bias is not None,  # type: ignore[arg-type]
                   padding_mode=m.padding_mode)


def _sliced(m: nn.Module, keep: torch.Tensor, how: str) -> nn.Module:
    """A smaller copy of ``m`` with only channels ``keep``: of its output (``out``), input (``in``) or both."""
    n = len(keep)
    with torch.no_grad():
        if isinstance(m, nn.Linear):
            if how == "out":
                new = nn.Linear(m.in_features, n, bias=m.bias is not None)
                new.weight.copy_(m.weight[keep])
                if m.bias is not None and new.bias is not None:
                    new.bias.copy_(m.bias[keep])
            else:
                new = nn.Linear(n, m.out_features, bias=m.bias is not None)
                new.weight.copy_(m.weight[:, keep])
                if m.bias is not None and new.bias is not None:
                    new.bias.copy_(m.bias)
            return new
        if isinstance(m, _CONV):
            if how == "out":
                conv = _conv_like(m, m.in_channels, n, 1)
                w, b = m.weight[keep], None if m.bias is None else m.bias[keep]
            elif how == "in":
                conv = _conv_like(m, n, m.out_channels, 1)
                w, b = m.weight[:, keep], m.bias
            else:  # depthwise: its channels in and out
                conv = _conv_like(m, n, n, n)
                w, b = m.weight[keep], None if m.bias is None else m.bias[keep]
            conv.weight.copy_(w)  # type: ignore[operator]
            if b is not None:
                conv.bias.copy_(b)  # type: ignore[operator]
            return conv
        if isinstance(m, _BN):
            bn = type(m)(n, eps=m.eps, momentum=m.momentum, affine=m.affine,
                         track_running_stats=m.track_running_stats)
            if m.affine:
                bn.weight.copy_(m.weight[keep])
                bn.bias.copy_(m.bias[keep])
            if m.track_running_stats and m.running_mean is not None and m.running_var is not None:
                bn.running_mean.copy_(m.running_mean[keep])  # type: ignore[union-attr]
                bn.running_var.copy_(m.running_var[keep])  # type: ignore[union-attr]
                bn.num_batches_tracked.copy_(m.num_batches_tracked)  # type: ignore[union-attr,arg-type]
            return bn
        if isinstance(m, nn.LayerNorm):
            ln = nn.LayerNorm(n, eps=m.eps, elementwise_affine=m.elementwise_affine, bias=m.bias is not None)
            if m.weight is not None:
                ln.weight.copy_(m.weight[keep])
            if m.bias is not None:
                ln.bias.copy_(m.bias[keep])
            return ln
    raise CompressError(f"cannot slice a {type(m).__name__}; please report this")  # pragma: no cover


def prune_structured(model: nn.Module, ratio: float) -> tuple[nn.Module, dict[str, int]]:
    """A copy of ``model`` with ``ratio`` of every prunable layer's output channels removed (at least one
    kept), by the L1 norm of their filters; returns it and ``{"removed", "prunable", "layers"}``."""
    net = plain(model)
    removed = prunable = layers = 0
    for chain in _chains(net):
        i = 0
        while i < len(chain):
            pair = _pair_from(chain, i)
            i += 1
            if pair is None:
                continue
            producer = _get(pair.producer)
            weight = producer.weight
            assert isinstance(weight, torch.Tensor)
            w = weight.detach()
            c = w.shape[0]
            n_keep = max(1, c - round(c * ratio))
            if n_keep == c:
                continue
            norms = w.abs().reshape(c, -1).sum(1)
            keep = torch.sort(torch.topk(norms, n_keep).indices).values
            _put(pair.producer, _sliced(producer, keep, "out"))
            for kind, slot in pair.between:
                how = {"bn": "out", "ln": "out", "dw": "dw", "se_in": "in", "se_out": "out"}[kind]
                _put(slot, _sliced(_get(slot), keep, how))
            _put(pair.consumer, _sliced(_get(pair.consumer), keep, "in"))
            removed += c - n_keep
            prunable += c
            layers += 1
    return net, {"removed": removed, "prunable": prunable, "layers": layers}


def prune_unstructured(model: nn.Module, ratio: float) -> nn.Module:
    """A copy of ``model`` whose conv and Linear weights each lose their ``ratio`` smallest magnitudes.

    The masks stay on (``torch.nn.utils.prune``) so a fine-tune keeps the zeros; :func:`make_permanent` ends them.
    """
    from torch.nn.utils import prune

    net = plain(model)
    for m in net.modules():
        if isinstance(m, (*_CONV, nn.Linear)):
            prune.l1_unstructured(m, "weight", amount=ratio)
    return net


def make_permanent(model: nn.Module) -> nn.Module:
    from torch.nn.utils import prune

    for m in model.modules():
        if prune.is_pruned(m) and hasattr(m, "weight_orig"):
            prune.remove(m, "weight")
    return model


def nonzero_params(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p.detach())) for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------- measuring
@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def latencies(models: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], input_shape: tuple[int, ...], *,
              windows: int = 5, repeats: int = 30, n_threads: int | None = 1) -> dict[str, float]:
    """Milliseconds per example at batch 1: the median over ``windows`` windows of ``repeats`` runs each
    (each window's own median), the models taking turns window by window so a busy moment hits them alike."""
    times: dict[str, list[float]] = {n: [] for n in models}
    with threads(n_threads):
        for _ in range(windows):
            for name, run in models.items():
                times[name].append(measure_latency_ms(Timed(run), input_shape, repeats=repeats, warmup=3))
    return {n: statistics.median(v) for n, v in times.items()}


# ---------------------------------------------------------------------- the whole step
@dataclass(frozen=True)
class Plan:
    """What to do: checked by the caller (:func:`check_plan`)."""

    quantize: str | None = None
    prune: float | None = None
    prune_mode: str = "structured"
    finetune_epochs: float = 1.0
    finetune_lr_scale: float = 0.1  # of the retraining recipe's rate (the module's docstring says why)
    calibration: int = 512
    seed: int = 0
    windows: int = 5
    repeats: int = 30
    threads: int | None = 1


def check_plan(plan: Plan) -> None:
    """Refuse what cannot be done, in one line, before anything is loaded or written."""
    if plan.quantize is None and plan.prune is None:
        raise CompressError("nothing to do: give --quantize int8 and/or --prune RATIO (e.g. --prune 0.5)")
    if plan.quantize is not None and plan.quantize not in QUANTIZE:
        raise CompressError(f"cannot quantize to {plan.quantize!r}: nasforge quantizes to {', '.join(QUANTIZE)} "
                            "(--quantize int8)")
    p = plan.prune
    if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p)
                          or not 0 < p < 1):
        raise CompressError(f"--prune takes the share of channels to remove, above 0 and below 1, got {p!r}: "
                            "use e.g. --prune 0.5")
    if plan.prune_mode not in PRUNE_MODES:
        raise CompressError(f"unknown --prune-mode {plan.prune_mode!r}: choose {' or '.join(PRUNE_MODES)}")
    e = plan.finetune_epochs
    if isinstance(e, bool) or not isinstance(e, int | float) or not math.isfinite(e) or e < 0:
        raise CompressError(f"--finetune-epochs must be a number of at least 0, got {e!r}")
    for what, v, low in (("--calibration", plan.calibration, 1), ("windows", plan.windows, 1),
                         ("repeats", plan.repeats, 1), ("seed", plan.seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise CompressError(f"{what} must be a whole number of at least {low}, got {v!r}")
    if plan.threads is not None and (isinstance(plan.threads, bool) or not isinstance(plan.threads, int)
                                     or plan.threads < 1):
        raise CompressError(f"threads must be a whole number of at least 1, got {plan.threads!r}")


def check_prunable(model: nn.Module, plan: Plan) -> None:
    """Structured pruning needs a layer whose channels it may remove; say so before anything is written."""
    if plan.prune is not None and plan.prune_mode == "structured":
        _, stats = prune_structured(model, plan.prune)
        if stats["layers"] == 0:
            raise CompressError("this network has no channels structured pruning can remove (every conv output "
                                "feeds a residual add or leaves its block, or the ratio keeps them all); "
                                "use --prune-mode unstructured or a larger --prune")


def _finetune(model: nn.Module, data: Dataset, recipe: Recipe, plan: Plan) -> float:
    """Train the pruned network briefly on train+validation with the retraining recipe at a lower rate."""
    if plan.finetune_epochs <= 0:
        return 0.0
    x, y = data.train_plus_val()
    lr = recipe.base_lr * plan.finetune_lr_scale
    tuned = dataclasses.replace(recipe, lr=lr)
    torch.manual_seed(plan.seed)
    t0 = time.perf_counter()
    train(model, x, y, epochs=plan.finetune_epochs, recipe=tuned, seed=plan.seed, n_classes=data.n_classes,
          flip_invariant=data.flip_invariant)
    return time.perf_counter() - t0


def compress_model(model: nn.Module, data: Dataset, *, plan: Plan, recipe: Recipe,
                   save: Callable[[str, bytes], str]) -> dict[str, Any]:
    """Compress the trained ``model`` as ``plan`` says and measure every version; returns the record's rows.

    ``save(name, torchscript_bytes)`` writes a compressed network (``int8``, ``pruned``) and returns its path;
    it runs only after every version is measured. The test split is read once, after all compression and
    fine-tuning, and scores every version.
    """
    shape = data.input_shape
    base = plain(model)
    rows: list[dict[str, Any]] = [{"name": "fp32", "method": "retrained network", "params": count_params(base),
                                   "nonzero_params": nonzero_params(base), "flops": count_flops(base, shape)}]
    scripts: dict[str, bytes] = {"fp32": to_torchscript(base, shape)}
    with quantized_engine():
        if plan.quantize == "int8":
            x_all, _ = data.train_plus_val()
            g = torch.Generator().manual_seed(plan.seed)
            pick = torch.randperm(len(x_all), generator=g)[:plan.calibration]
            q = quantize_int8(base, x_all[pick])
            rows.append({"name": "int8", "method": q.method, "note": q.note, "calibration_examples": q.calibration,
                         "params": rows[0]["params"], "nonzero_params": None, "flops": rows[0]["flops"]})
            scripts["int8"] = to_torchscript(q.model, shape)
        if plan.prune is not None:
            if plan.prune_mode == "structured":
                pruned, stats = prune_structured(base, plan.prune)
                method = f"structured, {100 * plan.prune:g}% of prunable channels (L1)"
                extra: dict[str, Any] = {"channels": stats}
            else:
                pruned, extra = prune_unstructured(base, plan.prune), {}
                method = f"unstructured, {100 * plan.prune:g}% of weights (L1)"
            seconds = _finetune(pruned, data, recipe, plan)
            pruned = plain(make_permanent(pruned))
            rows.append({"name": "pruned", "method": method, "ratio": plan.prune, "mode": plan.prune_mode, **extra,
                         "finetune_epochs": plan.finetune_epochs, "finetune_seconds": seconds,
                         "finetune_lr": recipe.base_lr * plan.finetune_lr_scale,
                         "params": count_params(pruned), "nonzero_params": nonzero_params(pruned),
                         "flops": count_flops(pruned, shape)})
            scripts["pruned"] = to_torchscript(pruned, shape)
        loaded = {n: load_script(b) for n, b in scripts.items()}
        x_test, y_test = data.open_test()  # every version is ready: the one read of this compression
        for r in rows:
            test = evaluate_split(loaded[r["name"]], x_test, y_test, data.n_classes, channels_last=False)
            r.update(accuracy=test["accuracy"], f1=test["f1"], size_bytes=len(scripts[r["name"]]))
        lat = latencies({n: frozen(s) for n, s in loaded.items()}, shape, windows=plan.windows,
                        repeats=plan.repeats, n_threads=plan.threads)
    for r in rows:
        r["latency_ms"] = lat[r["name"]]
        r["speedup"] = lat["fp32"] / lat[r["name"]] if lat[r["name"]] > 0 else None
        r["file"] = save(r["name"], scripts[r["name"]]) if r["name"] != "fp32" else None
    return {"rows": rows, "test_examples": len(y_test),
            "latency": {"batch": 1, "device": "cpu", "threads": plan.threads or torch.get_num_threads(),
                        "how": f"frozen TorchScript, median of {plan.windows} windows of {plan.repeats} runs",
                        "engine": ENGINE}}


def write_script(path: Path, data: bytes) -> Path:
    """A compressed network's TorchScript file, written atomically."""
    return atomic.write_bytes(path, data)
