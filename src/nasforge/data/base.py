"""The Dataset record: train / validation / test tensors with the test split sealed.

Loaders return raw arrays; ``make_dataset`` does what every loader shares: validation of shapes
and values, a stratified seeded validation split, per-channel normalisation fitted on the training
split only, and conversion to the tensor layout the builders expect (N, C, H, W), (N, C, L) or (N, F).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nasforge.errors import DataError

log = logging.getLogger("nasforge")


@dataclass
class _Seal:
    """Counts how often the test split was opened; the search must never open it."""

    reads: int = 0


@dataclass(frozen=True)
class Preprocess:
    """How raw inputs became the tensors the networks see: ``(x / scale - mean) / std``.

    ``mean`` and ``std`` are per channel (images, sequences: axis 1) or per feature (tabular), fitted
    on the training part only. Exports carry it, so a deployed model gets its inputs as in training.
    """

    scale: float | None
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Preprocess:
        scale = d.get("scale")
        return Preprocess(None if scale is None else float(scale), tuple(map(float, d["mean"])),
                          tuple(map(float, d["std"])))


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test tensors, the input shape and the class names.

    ``x_*`` are float32 (normalised), ``y_*`` int64 class indices. The test split is reachable only
    through :meth:`open_test`, which logs and counts every read, and :meth:`search_view` drops it
    altogether so nothing on the search path can touch it. ``flip_invariant`` is the source's
    declaration that a horizontal flip keeps an image's class (Fashion-MNIST, CIFAR: yes; digits: no),
    which decides whether training flips when the recipe leaves ``flip`` unset.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: tuple[str, ...]
    _x_test: torch.Tensor | None = field(default=None, repr=False)
    _y_test: torch.Tensor | None = field(default=None, repr=False)
    preprocess: Preprocess | None = field(default=None, compare=False)
    flip_invariant: bool = field(default=False, compare=False)
    _seal: _Seal = field(default_factory=_Seal, repr=False, compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def has_test(self) -> bool:
        return self._x_test is not None

    @property
    def test_reads(self) -> int:
        return self._seal.reads

    def open_test(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The test split, for the one final evaluation; every call is logged and counted."""
        if self._x_test is None or self._y_test is None:
            raise DataError(f"dataset {self.name!r} has no test split: "
                            "give one (x_test/y_test) to report test accuracy")
        self._seal.reads += 1
        log.info("test split of %s opened (read %d)", self.name, self._seal.reads)
        return self._x_test, self._y_test

    def search_view(self) -> Dataset:
        """The same dataset without its test split: what the search loop and evaluators get."""
        return Dataset(self.name, self.x_train, self.y_train, self.x_val, self.y_val, self.classes,
                       preprocess=self.preprocess, flip_invariant=self.flip_invariant)

    def train_plus_val(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training and validation joined, for the final retrain."""
        return torch.cat([self.x_train, self.x_val]), torch.cat([self.y_train, self.y_val])


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of every class held out, seeded."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_held = round(len(idx) * fraction)
        if fraction > 0 and len(idx) > 1:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    k = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    h = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    return k, h


def _to_layout(x: np.ndarray, layout: str, what: str) -> np.ndarray:
    """Bring raw features to (N, C, H, W), (N, C, L) or (N, F)."""
    if layout == "auto":
        if x.ndim == 2:
            layout = "tabular"
        elif x.ndim == 3:
            layout = "image"  # (N, H, W) grey images
        elif x.ndim == 4:
            layout = "image"
        else:
            raise DataError(f"{what} has shape {x.shape}: expected 2-D (tabular), 3-D or 4-D (images); "
                            "reshape it or set data.layout")
    if layout == "tabular":
        if x.ndim != 2:
            raise DataError(f"{what} has shape {x.shape} but layout is tabular: give (N, features)")
        return x
    if layout == "sequence":
        if x.ndim == 2:
            return x[:, None, :]
        if x.ndim == 3:
            return x  # (N, C, L)
        raise DataError(f"{what} has shape {x.shape} but layout is sequence: give (N, L) or (N, C, L)")
    if layout == "image":
        if x.ndim == 3:
            return x[:, None, :, :]
        if x.ndim == 4:
            if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
                return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
            return x
        raise DataError(f"{what} has shape {x.shape} but layout is image: give (N, H, W), (N, H, W, C) or (N, C, H, W)")
    raise DataError(f"unknown data layout {layout!r}: use auto, image, sequence or tabular")


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} labels have shape {y.shape}: give one integer label per example")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{what} labels are not whole numbers: give integer class indices")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{what} labels have dtype {y.dtype}: give integer class indices")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{what} labels contain negative values: give class indices 0..K-1")
    return y


def _classes(name: str, y_train: np.ndarray, y_test: np.ndarray | None, classes: tuple[str, ...] | None,
             ) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """The class names, and the labels as indices into them.

    Named classes (a source's list, an npz ``classes`` array, text labels) are taken as given: label
    ``i`` is ``classes[i]``. Without names the classes are the labels present (training and test):
    labels 0..K-1 stay as they are, any other set (1-based, with gaps) becomes indices into its sorted
    values, each class named by its label, so an unused label never becomes an empty class. Training
    labels of a single class are refused, whichever label that is.
    """
    present = np.unique(y_train if y_test is None else np.concatenate([y_train, y_test]))
    if classes is not None and present.size and int(present[-1]) >= len(classes):
        raise DataError(f"{name}: labels go up to {int(present[-1])} but only {len(classes)} class names given; "
                        "give a name for every class or labels 0..K-1")
    in_train = np.unique(y_train)
    if len(in_train) < 2:
        label = classes[int(in_train[0])] if classes is not None and in_train.size else \
            ", ".join(str(int(v)) for v in in_train)
        raise DataError(f"{name}: every training label is {label!r}, a single class; "
                        "give examples of at least two classes")
    if classes is not None:
        return y_train, y_test, tuple(classes)
    if int(present[-1]) == len(present) - 1:  # 0..K-1, all present
        return y_train, y_test, tuple(str(i) for i in range(len(present)))
    log.info("%s: labels %s are not 0..%d; class i is the i-th label in sorted order",
             name, ", ".join(str(int(v)) for v in present[:12]) + (" ..." if len(present) > 12 else ""),
             len(present) - 1)
    y_test = None if y_test is None else np.searchsorted(present, y_test).astype(np.int64)
    return np.searchsorted(present, y_train).astype(np.int64), y_test, tuple(str(int(v)) for v in present)


def make_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    classes: tuple[str, ...] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
    scale: float | None = None,
) -> Dataset:
    """Validate raw arrays, split off a stratified validation set and normalise.

    ``scale`` divides raw values first (255 for 8-bit images); normalisation statistics come from the
    training part only, so nothing of validation or test leaks into them.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}: use e.g. 0.1")
    x_train = np.asarray(x_train)
    y_train = _labels(y_train, f"{name} train")
    if x_train.ndim == 0:
        raise DataError(f"{name}: the training features are a single value; give one row per example")
    if x_train.dtype.kind not in "fiub":
        raise DataError(f"{name} train features have dtype {x_train.dtype}: give numbers only")
    if len(x_train) != len(y_train):
        raise DataError(f"{name}: {len(x_train)} training examples but {len(y_train)} labels; "
                        "give one label per example")
    if len(x_train) < 2:
        raise DataError(f"{name}: only {len(x_train)} training examples; give at least a few per class")
    xt = _to_layout(x_train, layout, f"{name} train features")
    if x_test is not None:
        if y_test is None:
            raise DataError(f"{name}: test features given without test labels; give both or neither")
        x_test = np.asarray(x_test)
        y_test = _labels(y_test, f"{name} test")
        if x_test.ndim == 0:
            raise DataError(f"{name}: the test features are a single value; give one row per example")
        if x_test.dtype.kind not in "fiub":
            raise DataError(f"{name} test features have dtype {x_test.dtype}: give numbers only")
        if len(x_test) != len(y_test):
            raise DataError(f"{name}: {len(x_test)} test examples but {len(y_test)} labels; give one label per example")
        x_test = _to_layout(x_test, layout, f"{name} test features")
        if x_test.shape[1:] != xt.shape[1:]:
            raise DataError(f"{name}: test examples have shape {x_test.shape[1:]} but training ones {xt.shape[1:]}; "
                            "give both splits the same shape")
    y_train, y_test, classes = _classes(name, y_train, y_test, classes)

    xf = xt.astype(np.float32)
    if scale:
        xf /= scale
    if not np.all(np.isfinite(xf)):
        raise DataError(f"{name}: training features contain NaN or infinite values; clean or impute them first")
    keep, held = stratified_split(y_train, val_fraction, seed)
    if len(held) == 0 or len(keep) == 0:
        raise DataError(f"{name}: too few examples for a validation split; give more data or raise val_fraction")
    x_tr, x_va = xf[keep], xf[held]
    # Per-channel (images, sequences) or per-feature (tabular) statistics from the training part.
    axes = (0,) if xf.ndim == 2 else tuple(i for i in range(xf.ndim) if i != 1)
    mean = x_tr.mean(axis=axes, keepdims=True)
    std = x_tr.std(axis=axes, keepdims=True)
    std[std < 1e-8] = 1.0

    def norm(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray((a - mean) / std, dtype=np.float32))

    xte = yte = None
    if x_test is not None and y_test is not None:
        xtf = x_test.astype(np.float32)
        if scale:
            xtf /= scale
        if not np.all(np.isfinite(xtf)):
            raise DataError(f"{name}: test features contain NaN or infinite values; clean or impute them first")
        xte, yte = norm(xtf), torch.from_numpy(y_test)
    return Dataset(
        name=name,
        x_train=norm(x_tr),
        y_train=torch.from_numpy(y_train[keep]),
        x_val=norm(x_va),
        y_val=torch.from_numpy(y_train[held]),
        classes=tuple(classes),
        _x_test=xte,
        _y_test=yte,
        preprocess=Preprocess(float(scale) if scale else None, tuple(float(v) for v in mean.ravel()),
                              tuple(float(v) for v in std.ravel())),
    )
