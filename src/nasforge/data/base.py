"""The Dataset record: train / validation / test tensors with the test split sealed.

Loaders return raw arrays; ``make_dataset`` does what every loader shares: validation of shapes
and values, a stratified seeded validation split, per-channel normalisation fitted on the training
split only, and conversion to the tensor layout the builders expect (N, C, H, W), (N, C, L) or (N, F).

A regression data set (``task="regression"``, or inferred from labels that are not whole numbers) has
float targets instead: standardised with the training part's mean and standard deviation (kept in
:class:`Preprocess`, so predictions and exports return to the original units), a plain seeded shuffle
for the validation split (there are no classes to stratify by), and one output "class", the target.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nasforge.errors import DataError
from nasforge.types import CLASSIFICATION, REGRESSION, check_task

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
    ``target_mean`` and ``target_std`` (regression only) standardised the targets: a network predicts
    ``(y - target_mean) / target_std``, so ``pred * target_std + target_mean`` is in the original units.
    """

    scale: float | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_mean: float | None = None
    target_std: float | None = None

    @property
    def target(self) -> tuple[float, float] | None:
        """``(mean, std)`` of the regression targets, or None for classification."""
        if self.target_mean is None or self.target_std is None:
            return None
        return self.target_mean, self.target_std

    def normalise(self, x: np.ndarray) -> torch.Tensor:
        """Scaled features (N, C, ...) or (N, F) standardised by the training statistics, as float32."""
        shape = (1, -1) + (1,) * (x.ndim - 2)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(shape)
        std = np.asarray(self.std, dtype=np.float32).reshape(shape)
        return torch.from_numpy(np.ascontiguousarray((x - mean) / std, dtype=np.float32))

    def apply(self, x: np.ndarray) -> torch.Tensor:
        """Raw features already in the network's layout as the networks see them: ``(x / scale - mean) / std``."""
        xf = np.asarray(x).astype(np.float32)
        if self.scale:
            xf /= self.scale
        return self.normalise(xf)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"scale": self.scale, "mean": list(self.mean), "std": list(self.std)}
        if self.target is not None:  # only then: a classification record stays as it was
            out["target"] = {"mean": self.target_mean, "std": self.target_std}
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Preprocess:
        scale = d.get("scale")
        target = d.get("target") or {}
        return Preprocess(None if scale is None else float(scale), tuple(map(float, d["mean"])),
                          tuple(map(float, d["std"])),
                          None if target.get("mean") is None else float(target["mean"]),
                          None if target.get("std") is None else float(target["std"]))


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test tensors, the input shape and the class names.

    ``x_*`` are float32 (normalised), ``y_*`` int64 class indices, or for ``task == "regression"`` float32
    targets standardised as :attr:`target` says (``classes`` then names the one target). The test split is
    reachable only through :meth:`open_test`, which logs and counts every read, and :meth:`search_view` drops it
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
    task: str = field(default=CLASSIFICATION, compare=False)
    # what loading did to the raw data that its owner should know (a CSV's text columns one-hot encoded, ...)
    notes: tuple[str, ...] = field(default=(), compare=False)
    # False where the test split holds new examples without labels (``nasforge predict``): its labels are placeholders
    test_labelled: bool = field(default=True, compare=False)
    # how new examples are read as these were, without the training data (:func:`~nasforge.data.read_new`), as JSON
    reader: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def regression(self) -> bool:
        return self.task == REGRESSION

    @property
    def target(self) -> tuple[float, float] | None:
        """``(mean, std)`` that un-standardise a regression network's output (None for classification)."""
        if not self.regression:
            return None
        return (self.preprocess.target if self.preprocess is not None else None) or (0.0, 1.0)

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
    def test_examples(self) -> int:
        """The size of the test split (0 where there is none): not a read of it."""
        return 0 if self._y_test is None else len(self._y_test)

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
                       preprocess=self.preprocess, flip_invariant=self.flip_invariant, task=self.task,
                       reader=self.reader)

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


def shuffled_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) of a plain seeded shuffle, ``fraction`` held out: regression's split, with no
    classes to stratify by."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = round(n * fraction)
    if fraction > 0 and n > 1:
        n_held = min(max(n_held, 1), n - 1)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


# Whole-number labels are classes, unless there are so many distinct values, each so rare, that they can only be
# measurements (diabetes: 214 values over 442 patients); AutoGluon's type inference reads labels the same way.
MANY_VALUES = 50
FEW_PER_VALUE = 5


def infer_task(y_train: Any, y_test: Any = None, task: str = "auto") -> str:
    """``classification`` or ``regression``: ``task`` where it is given, else regression for numeric labels that are
    not all whole numbers, or whole ones with more than :data:`MANY_VALUES` distinct values and fewer than
    :data:`FEW_PER_VALUE` examples a value. Never raises on malformed labels: :func:`make_dataset` reports those."""
    if task != "auto":
        return task
    parts = [np.asarray(y).ravel() for y in (y_train, y_test) if y is not None]
    if not parts or any(a.dtype.kind not in "fiu" for a in parts):
        return CLASSIFICATION
    a = np.concatenate(parts)
    if a.size == 0:
        return CLASSIFICATION
    if a.dtype.kind == "f" and not np.all(a == np.round(a)):
        log.info("labels are numbers that are not all whole: a regression task (set data.task to say otherwise)")
        return REGRESSION
    distinct = np.unique(a).size
    if distinct > MANY_VALUES and a.size < FEW_PER_VALUE * distinct:
        log.info("labels take %d distinct whole values over %d examples: read as regression targets, not classes "
                 "(set data.task: classification to say otherwise)", distinct, a.size)
        return REGRESSION
    return CLASSIFICATION


def _targets(y: np.ndarray, what: str) -> np.ndarray:
    """Regression targets as float64, one finite number per example."""
    y = _one_column(y, f"{what} targets", "one number per example (one target column)")
    if y.dtype.kind not in "fiub":
        raise DataError(f"{what} targets have dtype {y.dtype}: give numbers for regression")
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)):
        raise DataError(f"{what} targets contain NaN or infinite values: clean or drop those rows")
    return y


# A 3-D array (N, A, B) is grey images, unless one side is a few channels and the other at least SEQ_RATIO times
# as long: (N, 1, 128) is one signal of 128 steps, and (N, 128, 3) three (channels last). Read as a 1x128 image,
# a random crop (2-pixel padding) would shift the one row out of sight 4 times in 5, and 3x3 kernels would be 3x
# the weights for nothing.
SEQ_CHANNELS_MAX = 16
SEQ_RATIO = 4


def _channels_axis(a: int, b: int) -> str | None:
    """Of a 3-D example (a, b): "first" where ``a`` is a few channels along a much longer ``b``, "last" the other
    way round, else None (grey images)."""
    for channels, steps, where in ((a, b, "first"), (b, a, "last")):
        if channels <= SEQ_CHANNELS_MAX and steps >= SEQ_RATIO * channels and steps > SEQ_CHANNELS_MAX:
            return where
    return None


# 2-D features whose neighbouring columns correlate far more than arbitrary pairs of columns do are ordered
# measurements, not a table's columns: the pixels of flattened images (a Kaggle-style CSV of label,pixel1..pixel784)
# or the steps of signals. A table's related columns correlate wherever they stand (the breast-cancer table: 0.50
# for neighbours, 0.38 for any pair; adjacent one-hot columns even anti-correlate); Fashion-MNIST's pixels 0.77
# along a row and 0.83 down a column against 0.15, scikit-learn's 8x8 digits 0.32 and 0.48 against 0.00, noisy
# sine waves of random phase 0.65 against 0.00. A square number of columns that correlate both ways is a grey
# image, many columns that correlate along the row a sequence. Measured on a spread of at most CORR_ROWS rows.
NEIGHBOUR_CONTRAST = 0.25
IMAGE_SIDE_MIN = 8  # 64 pixels
SEQ_STEPS_MIN = 32
CORR_ROWS = 2000
CORR_PAIRS = 2000  # arbitrary column pairs, drawn with a fixed seed: the baseline neighbours are compared to


def _standardised(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns scaled to mean 0 and std 1 (constant ones left at 0), and which columns vary."""
    z = x.astype(np.float64)
    z -= z.mean(axis=0)
    sd = z.std(axis=0)
    ok = sd > 1e-12
    return np.divide(z, sd, out=np.zeros_like(z), where=ok), ok


def _pair_corr(z: np.ndarray, ok: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The mean correlation of columns a[i] and b[i] (standardised ``z``) over the pairs whose columns vary."""
    keep = ok[a] & ok[b] & (a != b)
    return float(np.mean((z[:, a[keep]] * z[:, b[keep]]).mean(axis=0))) if keep.any() else float("nan")


def flat_layout(x: np.ndarray) -> tuple[str, str | None]:
    """``(layout, note)`` for 2-D features: image where a square number of columns correlate along rows and down
    columns as pixels do, sequence where many columns correlate with their neighbours, else tabular."""
    n, f = x.shape
    if x.dtype.kind not in "fiub" or n < 3 or f < 2:
        return "tabular", None
    z, ok = _standardised(x[:: max(1, n // CORR_ROWS)])
    rng = np.random.default_rng(0)
    far = _pair_corr(z, ok, rng.integers(0, f, CORR_PAIRS), rng.integers(0, f, CORR_PAIRS))
    j = np.arange(f - 1)
    side = math.isqrt(f)
    how = "--layout tabular (data.layout: tabular) reads them as a table"
    if side * side == f and side >= IMAGE_SIDE_MIN:
        row = j[(j + 1) % side != 0]
        across, down = _pair_corr(z, ok, row, row + 1), _pair_corr(z, ok, j[: f - side], j[: f - side] + side)
        if min(across, down) - far >= NEIGHBOUR_CONTRAST:
            return "image", (f"features of {f} columns are read as {side}x{side} grey images: neighbouring columns "
                             f"correlate as pixels do ({across:.2f} along a row, {down:.2f} down a column, against "
                             f"{far:.2f} for any two); {how}")
    if f >= SEQ_STEPS_MIN:
        along = _pair_corr(z, ok, j, j + 1)
        if along - far >= NEIGHBOUR_CONTRAST:
            return "sequence", (f"features of {f} columns are read as {f}-step sequences: neighbouring columns "
                                f"correlate ({along:.2f}, against {far:.2f} for any two) as the steps of a signal do; "
                                f"{how}")
    return "tabular", None


def infer_layout(shape: tuple[int, ...]) -> tuple[str, str | None]:
    """``(layout, note)`` for raw features of ``shape`` (N first): tabular (2-D; :func:`flat_layout` reads the
    columns themselves), image (4-D; 3-D grey images), or sequence (3-D with a few channels along a much longer
    axis); ``note`` says why where it is not the plain reading."""
    if len(shape) == 3:
        a, b = shape[1], shape[2]
        where = _channels_axis(a, b)
        if where is None:
            return "image", None
        channels, steps = (a, b) if where == "first" else (b, a)
        return "sequence", (f"features of shape {(a, b)} are read as {channels} channel(s) (axis {where}) of "
                            f"{steps}-step sequences, not {a}x{b} grey images; set data.layout: image to read "
                            "them as images")
    if len(shape) == 2:
        return "tabular", None
    if len(shape) == 4:
        return "image", None
    return "auto", None


def _to_layout(x: np.ndarray, layout: str, what: str) -> np.ndarray:
    """Bring raw features to (N, C, H, W), (N, C, L) or (N, F)."""
    if layout == "auto":
        layout = infer_layout(x.shape)[0]
        if layout == "auto":
            raise DataError(f"{what} has shape {x.shape}: expected 2-D (tabular), 3-D (sequences, grey images) or "
                            "4-D (images); reshape it or set data.layout")
    if layout == "tabular":
        if x.ndim != 2:
            raise DataError(f"{what} has shape {x.shape} but layout is tabular: give (N, features)")
        return x
    if layout == "sequence":
        if x.ndim == 2:
            return x[:, None, :]
        if x.ndim == 3:  # (N, C, L), or (N, L, C) where the last axis is a few channels and the middle far longer
            if _channels_axis(x.shape[1], x.shape[2]) == "last":
                return np.ascontiguousarray(x.transpose(0, 2, 1))
            return x
        raise DataError(f"{what} has shape {x.shape} but layout is sequence: give (N, L) or (N, C, L)")
    if layout == "image":
        if x.ndim == 2 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:  # flattened grey images, row by row
            side = math.isqrt(x.shape[1])
            return x.reshape(len(x), 1, side, side)
        if x.ndim == 3:
            return x[:, None, :, :]
        if x.ndim == 4:
            if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
                return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
            return x
        raise DataError(f"{what} has shape {x.shape} but layout is image: give (N, H, W), (N, H, W, C), (N, C, H, W) "
                        "or (N, side*side) flattened grey images")
    raise DataError(f"unknown data layout {layout!r}: use auto, image, sequence or tabular")


def _one_column(y: np.ndarray, what: str, want: str) -> np.ndarray:
    """``y`` as a 1-D array (an (N, 1) column is flattened); any other shape is a one-line DataError."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} have shape {y.shape}: give {want}")
    return y


def _labels(y: np.ndarray, what: str) -> np.ndarray:
    y = _one_column(y, f"{what} labels", "one integer label per example")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError(f"{what} labels are not whole numbers: give integer class indices (or set "
                            "data.task: regression for numeric targets)")
    elif y.dtype.kind not in "iub":
        raise DataError(f"{what} labels have dtype {y.dtype}: give integer class indices")
    return y.astype(np.int64)  # any whole numbers: -1/+1 (LIBSVM's, UCR's) become indices in _classes


def _classes(name: str, y_train: np.ndarray, y_test: np.ndarray | None, classes: tuple[str, ...] | None,
             ) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """The class names, and the labels as indices into them.

    Named classes (a source's list, an npz ``classes`` array, text labels) are taken as given: label
    ``i`` is ``classes[i]``. Without names the classes are the labels present (training and test):
    labels 0..K-1 stay as they are, any other set (1-based, with gaps, -1/+1) becomes indices into its sorted
    values, each class named by its label, so an unused label never becomes an empty class. Training
    labels of a single class are refused, whichever label that is.
    """
    present = np.unique(y_train if y_test is None else np.concatenate([y_train, y_test]))
    if classes is not None and present.size and int(present[-1]) >= len(classes):
        raise DataError(f"{name}: labels go up to {int(present[-1])} but only {len(classes)} class names given; "
                        "give a name for every class or labels 0..K-1")
    if classes is not None and present.size and int(present[0]) < 0:
        raise DataError(f"{name}: label {int(present[0])} cannot index the {len(classes)} class names given; "
                        "give labels 0..K-1 with names, or drop the names")
    in_train = np.unique(y_train)
    if len(in_train) < 2:
        label = classes[int(in_train[0])] if classes is not None and in_train.size else \
            ", ".join(str(int(v)) for v in in_train)
        raise DataError(f"{name}: every training label is {label!r}, a single class; "
                        "give examples of at least two classes")
    if classes is not None:
        return y_train, y_test, tuple(classes)
    if int(present[0]) == 0 and int(present[-1]) == len(present) - 1:  # 0..K-1, all present
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
    task: str = "auto",
) -> Dataset:
    """Validate raw arrays, split off a stratified validation set and normalise.

    ``scale`` divides raw values first (255 for 8-bit images); normalisation statistics come from the
    training part only, so nothing of validation or test leaks into them. ``task`` (see :data:`TASKS`)
    says whether the labels are classes or regression targets; regression targets are standardised with
    the training part's statistics too, and split by a plain seeded shuffle.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}: use e.g. 0.1")
    task = infer_task(y_train, y_test, check_task(task))
    regression = task == REGRESSION
    x_train = np.asarray(x_train)
    y_train = _targets(y_train, f"{name} train") if regression else _labels(y_train, f"{name} train")
    if x_train.ndim == 0:
        raise DataError(f"{name}: the training features are a single value; give one row per example")
    if x_train.dtype.kind not in "fiub":
        raise DataError(f"{name} train features have dtype {x_train.dtype}: give numbers only")
    if len(x_train) != len(y_train):
        raise DataError(f"{name}: {len(x_train)} training examples but {len(y_train)} labels; "
                        "give one label per example")
    if len(x_train) < 2:
        raise DataError(f"{name}: only {len(x_train)} training examples; give at least a few per class")
    note = None
    if layout == "auto" and x_train.ndim in (2, 3, 4):  # the training features decide, and the test follows them
        layout, note = flat_layout(x_train) if x_train.ndim == 2 else infer_layout(x_train.shape)
    xt = _to_layout(x_train, layout, f"{name} train features")
    if x_test is not None:
        if y_test is None:
            raise DataError(f"{name}: test features given without test labels; give both or neither")
        x_test = np.asarray(x_test)
        y_test = _targets(y_test, f"{name} test") if regression else _labels(y_test, f"{name} test")
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
    if regression:  # one output: the target, named where the source names it
        classes = (classes[0],) if classes is not None and len(classes) == 1 else ("target",)
    else:
        y_train, y_test, classes = _classes(name, y_train, y_test, classes)

    xf = xt.astype(np.float32)
    if scale:
        xf /= scale
    if not np.all(np.isfinite(xf)):
        raise DataError(f"{name}: training features contain NaN or infinite values; clean or impute them first")
    if regression:
        keep, held = shuffled_split(len(y_train), val_fraction, seed)
    else:
        keep, held = stratified_split(y_train, val_fraction, seed)
    if len(held) == 0 or len(keep) == 0:
        raise DataError(f"{name}: too few examples for a validation split; give more data or raise val_fraction")
    x_tr, x_va = xf[keep], xf[held]
    # Per-channel (images, sequences) or per-feature (tabular) statistics from the training part.
    axes = (0,) if xf.ndim == 2 else tuple(i for i in range(xf.ndim) if i != 1)
    mean = x_tr.mean(axis=axes, keepdims=True)
    std = x_tr.std(axis=axes, keepdims=True)
    std[std < 1e-8] = 1.0
    # regression targets: standardised with the training part's statistics (the networks' output scale)
    t_mean = float(y_train[keep].mean()) if regression else None
    t_std = float(y_train[keep].std()) if regression else None
    if t_std is not None and not t_std > 1e-12:
        raise DataError(f"{name}: every training target is {t_mean:g}; regression needs targets that vary")
    pre = Preprocess(float(scale) if scale else None, tuple(float(v) for v in mean.ravel()),
                     tuple(float(v) for v in std.ravel()), t_mean, t_std)
    norm = pre.normalise

    def labels(a: np.ndarray) -> torch.Tensor:
        if t_mean is None or t_std is None:
            return torch.from_numpy(a)
        return torch.from_numpy(np.ascontiguousarray((a - t_mean) / t_std, dtype=np.float32))

    xte = yte = None
    if x_test is not None and y_test is not None:
        xtf = x_test.astype(np.float32)
        if scale:
            xtf /= scale
        if not np.all(np.isfinite(xtf)):
            raise DataError(f"{name}: test features contain NaN or infinite values; clean or impute them first")
        xte, yte = norm(xtf), labels(y_test)
    return Dataset(
        name=name,
        x_train=norm(x_tr),
        y_train=labels(y_train[keep]),
        x_val=norm(x_va),
        y_val=labels(y_train[held]),
        classes=tuple(classes),
        _x_test=xte,
        _y_test=yte,
        preprocess=pre,
        task=task,
        notes=() if note is None else (note,),
    )
