"""How to train, without torch: the recipe, the interim-validation setting and the failure training raises.

Apart from :mod:`nasforge.evaluate.trainer` and :mod:`nasforge.evaluate.torch_eval` (which re-export
them) so the config and the executors, and so ``nasforge status``, import no torch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

DEVICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
WHERE = ("device", "precision")  # the fields that say where a recipe runs, not what it trains


def trial_seed(seed: int, key: str) -> int:
    """A per-architecture seed: the same network trains the same way in any run with this seed.

    Here, not beside the evaluator, because screening seeds each network it scores with it too.
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little")


class TrainingFailed(Exception):
    """The candidate could not be trained (non-finite loss, out of memory, a shape error...)."""


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, schedule, regularisation. One recipe for candidates and baseline alike."""

    optimizer: str = "adam"
    lr: float | None = None  # None: 3e-3 for Adam/AdamW, 0.05 for SGD
    weight_decay: float = 5e-4
    momentum: float = 0.9
    batch_size: int = 128
    schedule: str = "cosine"  # cosine | onecycle | constant
    warmup_fraction: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False  # random crop (pad 2), images only
    # Random horizontal flip, images only. None: with ``augment``, on data whose source declares flips
    # label-preserving (Fashion-MNIST, CIFAR), never on others (digits: a mirrored 2 is no digit).
    flip: bool | None = None
    # Weight each class's loss by n / (classes x its count in the training data) (scikit-learn's
    # ``class_weight="balanced"``), so rare classes count as much as common ones: what balanced accuracy rewards.
    class_weight: bool = False
    channels_last: bool = True
    # Where and at what precision, not what, is trained: both stay out of fingerprints and checkpoint ids, so a
    # run can resume on another device. auto: CUDA, then Apple MPS, else the CPU; bf16 where a GPU has it, else fp32.
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use adam, adamw or sgd")
        if self.schedule not in ("cosine", "onecycle", "constant"):
            raise ValueError(f"unknown schedule {self.schedule!r}: use cosine, onecycle or constant")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for share in ("warmup_fraction", "label_smoothing"):
            if not 0 <= getattr(self, share) < 1:
                raise ValueError(f"{share} must be a share in [0, 1), got {getattr(self, share)}")
        if not isinstance(self.class_weight, bool):
            raise ValueError(f"class_weight must be true or false, got {self.class_weight!r}")
        if self.flip is not None and not isinstance(self.flip, bool):
            raise ValueError(f"flip must be true, false or unset (as the data source declares), got {self.flip!r}")
        check_device(self.device)
        check_precision(self.precision)

    def flips(self, flip_invariant: bool) -> bool:
        """Whether training flips images, for data whose source does (or does not) declare flips label-preserving."""
        return self.flip if self.flip is not None else self.augment and flip_invariant

    def identity(self) -> dict[str, Any]:
        """What the recipe trains, for fingerprints of stored state: every field but ``device`` and ``precision``
        (so a retrain resumes on another device, and state stored before they existed still matches), and
        ``class_weight`` only where set (state stored before it matches too)."""
        return {k: v for k, v in asdict(self).items()
                if k not in WHERE and not (k == "class_weight" and not v)}

    @property
    def base_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.05 if self.optimizer == "sgd" else 3e-3


def check_device(spec: object) -> str:
    """``spec`` when it names a device (whether one is present is :func:`~nasforge.evaluate.device.resolve_device`'s
    question: it needs torch, and the config is read without it)."""
    if isinstance(spec, str) and (spec in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", spec)):
        return spec
    raise ValueError(f"device must be {DEVICES}, got {spec!r}")


def check_precision(spec: object) -> str:
    """``spec`` when it names a training precision (auto, fp32, bf16, fp16)."""
    if isinstance(spec, str) and spec in PRECISIONS:
        return spec
    raise ValueError(f"precision must be {', '.join(PRECISIONS)}, got {spec!r}")


def check_interim(how: object) -> int | str:
    """``how`` when it is an ``interim_validation`` (full, none or a positive number of examples)."""
    if isinstance(how, str) and how in ("full", "none"):
        return how
    if isinstance(how, int) and not isinstance(how, bool) and how > 0:
        return how
    raise ValueError(f"interim_validation must be full, none or a positive number of examples, got {how!r}")
