"""int8 quantization and the TorchScript form networks are deployed and timed in.

Here, with the training primitives, because two stages use it: ``nasforge compress`` quantizes the
retrained network (:mod:`nasforge.final.compress`), and a search with the ``latency_int8`` objective
times each untrained candidate's int8 version (latency does not depend on the weights, so random
calibration data serve).

Static quantization runs in FX graph mode (``torch.ao.quantization.quantize_fx``) with the x86 backend's
default mapping: per-channel int8 weights, activation ranges observed on calibration data, residual
adds, products and concatenations as quantized ops. A network FX cannot trace or convert falls back to
dynamic quantization of its Linear layers, and says why.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nasforge.evaluate.cost import measure_latency_ms

log = logging.getLogger("nasforge")

ENGINE = "x86"  # the quantized engine int8 networks are built and run with
STATIC = f"static (FX, {ENGINE})"
DYNAMIC = "dynamic (Linear only)"


@contextlib.contextmanager
def quantized_engine(name: str = ENGINE) -> Iterator[None]:
    """Run int8 kernels with ``name``'s backend inside the block; the previous engine afterwards."""
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def plain(model: nn.Module) -> nn.Module:
    """A detached eval-mode copy on the CPU in the default memory layout (training may leave channels_last)."""
    m = copy.deepcopy(model).eval().cpu()
    return m.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Quantized:
    model: nn.Module
    method: str  # STATIC or DYNAMIC
    note: str | None  # why static quantization was not used
    calibration: int  # examples observed for activation ranges (0 for dynamic)


def quantize_int8(model: nn.Module, calibration: torch.Tensor, *, batch_size: int = 256) -> Quantized:
    """An int8 copy of ``model``: static FX quantization calibrated on ``calibration``, else dynamic Linear.

    The static network must also run and trace to TorchScript here, so a conversion that only fails
    later falls back too. Call inside :func:`quantized_engine`.
    """
    from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    base = plain(model)
    example = calibration[:2]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # quantize_fx's deprecation notices, not about this network
            prepared = prepare_fx(copy.deepcopy(base), get_default_qconfig_mapping(ENGINE), (example,))
            for i in range(0, len(calibration), batch_size):
                prepared(calibration[i:i + batch_size])
            q = convert_fx(prepared)
            q(example)
            torch.jit.trace(q, example)
        return Quantized(q, STATIC, None, len(calibration))
    except Exception as e:  # FX raises many kinds (TraceError, NotImplementedError, RuntimeError, ...)
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else 'no message'}"
        log.info("static int8 quantization failed (%s); quantizing the Linear layers dynamically", why)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dq = quantize_dynamic(copy.deepcopy(base), {nn.Linear}, dtype=torch.qint8)
    return Quantized(dq, DYNAMIC, f"static FX quantization failed ({why})", 0)


def to_torchscript(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """The network traced (its control flow depends only on its structure) and saved, as a file's bytes."""
    example = torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model.eval(), example)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    return buf.getvalue()


def load_script(data: bytes) -> torch.jit.ScriptModule:
    script: torch.jit.ScriptModule = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return script


class Timed(nn.Module):
    """A frozen TorchScript module behind an ``nn.Module`` face, for :func:`measure_latency_ms`."""

    def __init__(self, script: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        object.__setattr__(self, "run", script)  # not a child: eval() must not reach the frozen module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.run(x)  # type: ignore[operator]
        return out


def frozen(script: torch.jit.ScriptModule) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.jit.freeze`` of a loaded file (weights inlined: what serving runs); the file as it is if that fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.freeze(copy.deepcopy(script).eval())
    except Exception as e:  # pragma: no cover - freezing is an optimisation
        log.info("freezing failed (%s); timing the file as it is", e)
        return script


def int8_latency_ms(model: nn.Module, input_shape: tuple[int, ...], *, calibration: int = 32,
                    repeats: int = 15) -> float:
    """Milliseconds per example at batch 1 on the CPU of ``model``'s int8 version as deployed (quantized with
    seeded random calibration data, traced, frozen): the ``latency_int8`` objective. The weights do not matter."""
    x = torch.randn((calibration, *input_shape), generator=torch.Generator().manual_seed(0))
    with quantized_engine():
        q = quantize_int8(model, x)
        run = frozen(load_script(to_torchscript(q.model, input_shape)))
        return measure_latency_ms(Timed(run), input_shape, repeats=repeats)
