"""Where training runs and at what precision: a recipe's ``device`` and ``precision`` resolved for this machine.

``auto`` takes CUDA when PyTorch sees a GPU, then Apple's MPS, else the CPU. Precision ``auto`` is bf16
on a GPU that has it (fp16 with a grad scaler on one that has not) and fp32 elsewhere. On the CPU in fp32
nothing changes: no autocast, no scaler, no copies, the same numbers as before devices existed. The
strings are checked without torch in :mod:`nasforge.evaluate.recipe` (the config is read without it);
whether the device is there is asked here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from nasforge.errors import ConfigError
from nasforge.evaluate.recipe import DEVICES, PRECISIONS, check_device, check_precision

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# a data set moves to the GPU once when it takes at most this share of the memory free there; else batch by batch
DATA_SHARE = 0.5


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str, what: str = "train.device") -> torch.device:
    """The device ``spec`` names, present here; a one-line :class:`ConfigError` naming ``what`` otherwise.

    A CUDA device always carries its index (``cuda`` is ``cuda:0``, the first visible GPU: in a pool worker
    with its own ``CUDA_VISIBLE_DEVICES``, its GPU), so tensors' devices compare equal to it.
    """
    try:
        check_device(spec)
    except ValueError:
        raise ConfigError(f"{what} must be {DEVICES}, got {spec!r}") from None
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise ConfigError(f"{what} mps: Apple's MPS is not available to PyTorch here; use {what} cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"{what} {spec}: no CUDA GPU is visible to PyTorch here; use {what} cpu or auto")
    index = int(spec.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"{what} {spec}: PyTorch sees {count} CUDA GPU{'s' if count != 1 else ''} here "
                          f"(cuda:0 to cuda:{count - 1}); pick one of them, or use {what} cuda or auto")
    return torch.device("cuda", index)


def resolve_precision(spec: str, device: torch.device, what: str = "train.precision") -> torch.dtype | None:
    """The autocast dtype of ``spec`` on ``device``; None is fp32 (no autocast). A one-line error for a
    precision the device cannot train in (fp16 off CUDA: it needs a grad scaler, which only CUDA has here)."""
    try:
        check_precision(spec)
    except ValueError:
        raise ConfigError(f"{what} must be {', '.join(PRECISIONS)}, got {spec!r}") from None
    cuda = device.type == "cuda"
    if spec == "auto":
        if not cuda:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if spec == "fp16" and not cuda:
        raise ConfigError(f"{what} fp16 needs a CUDA GPU (it trains with a grad scaler there), not {device.type}; "
                          "use bf16 or fp32")
    if spec == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{what} bf16: the GPU {device} has no bfloat16; use fp16 or fp32")
    return DTYPES[spec]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """Autocast to ``dtype`` on ``device``; nothing at all for fp32 (None), so that path is the plain one."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """A grad scaler for fp16 on CUDA (its small exponent range underflows gradients without one); else None."""
    if dtype is torch.float16 and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (or buffers); the CPU for a model that has neither."""
    for t in _tensors(model):
        return t.device
    return torch.device("cpu")


def _tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def place(data: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels on ``device`` when they fit there (a data set moves once, not once a batch); else as
    they are, and the trainer moves each batch. On the CPU this returns the very same tensors."""
    x, y = data
    if x.device == device and y.device == device:
        return data
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if x.numel() * x.element_size() + y.numel() * y.element_size() > DATA_SHARE * free:
            return data
    return x.to(device), y.to(device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA and MPS run asynchronously), so a wall-clock timing is true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def gpu_count() -> int:
    """CUDA GPUs PyTorch sees (0 without CUDA); asked without starting CUDA where NVML answers, so forks stay safe."""
    return torch.cuda.device_count() if torch.backends.cuda.is_built() else 0
