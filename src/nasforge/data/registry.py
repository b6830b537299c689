"""The data sources by name, and ``load_dataset`` which dispatches to them.

The registry is an explicit dict (no registration on import) so that the set of sources is visible in
one place and config validation can list it. Every loader reads raw arrays, then ``_finish`` applies
``limit`` and hands over to ``make_dataset`` for validation, the validation split and normalisation.
``task`` (auto, classification, regression) says what the labels are; the built-in class data sets refuse
regression, and ``diabetes`` is a built-in regression table.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from nasforge.data.base import (
    CLASSIFICATION,
    REGRESSION,
    Dataset,
    Preprocess,
    _labels,
    _targets,
    _to_layout,
    check_task,
    infer_task,
    make_dataset,
    shuffled_split,
    stratified_split,
)
from nasforge.data.cifar import read_cifar
from nasforge.data.files import RawSplits, hold_out, read_csv, read_inputs, read_npz, read_table_inputs
from nasforge.data.idx import DIGIT_CLASSES, FASHION_CLASSES, locate, read_idx_dir
from nasforge.errors import DataError

PathArg = str | os.PathLike[str] | None
LAYOUTS = ("auto", "image", "sequence", "tabular")
# The digits test split is fixed so test scores stay comparable between runs with different seeds.
DIGITS_TEST_SEED = 0
DIGITS_TEST_FRACTION = 0.2
# Sources whose classes survive a horizontal flip (a mirrored shirt is a shirt, a mirrored 2 is no digit):
# the only ones a recipe with ``flip`` unset flips. Anything else flips only with ``flip: true``.
FLIP_INVARIANT = frozenset({"fashion_mnist", "cifar10", "cifar100"})


class Loader(Protocol):
    def __call__(
        self,
        path: PathArg = None,
        *,
        val_fraction: float = 0.1,
        seed: int = 0,
        layout: str = "auto",
        label_column: str | int | None = None,
        limit: int | None = None,
        task: str = "auto",
        test_fraction: float | None = None,
        inputs: PathArg = None,
    ) -> Dataset: ...


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` examples drawn per class in proportion (largest remainder), seeded."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (n / len(y))
    take = np.floor(quota).astype(np.int64)
    extra = n - int(take.sum())
    take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    picked = []
    for c, k in zip(classes, take, strict=True):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        picked.append(idx[:k])
    return np.sort(np.concatenate(picked))


def _random_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` examples drawn at random, seeded: a regression limit."""
    if n >= len(y):
        return np.arange(len(y))
    return np.sort(np.random.default_rng(seed).permutation(len(y))[:n])


def _check_limit(limit: int | None) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 2:
        raise DataError(f"limit must be a whole number of at least 2 training examples, got {limit!r}; "
                        "use e.g. 2000 or leave it unset")


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise DataError(f"unknown data layout {layout!r}: use {', '.join(LAYOUTS)}")


def _no_label_column(source: str, label_column: str | int | None) -> None:
    if label_column is not None:
        raise DataError(f"label_column applies only to the csv source, not {source}; remove data.label_column")


def _classes_only(source: str, task: str) -> str:
    """A source of classes (images, digits) has no numeric targets: regression is refused in one line."""
    if check_task(task) == REGRESSION:
        raise DataError(f"the {source} source holds classes, not numeric targets: task regression needs a csv or npz "
                        "table with a target column; remove data.task or use such a file")
    return CLASSIFICATION


def _no_path(source: str, path: PathArg) -> None:
    if path is not None:
        raise DataError(f"the {source} source is bundled and takes no path; remove data.path")


def fill_missing(x_train: np.ndarray, x_test: np.ndarray | None,
                 ) -> tuple[np.ndarray, np.ndarray | None, dict[str, list[Any]] | None, str | None]:
    """A table's NaN cells filled with the training column's median, each column with any in training flagged by
    one more 0/1 feature, as a CSV's missing cells are (:func:`~nasforge.data.files.read_csv`); and the fill
    (``median``, ``flagged``) that :func:`apply_fill` gives new examples, or None where ``x_train`` is not a 2-D
    float table; and what was done, or None where nothing was filled. Without a NaN in training nothing is flagged,
    but new examples' NaN cells still get the medians."""
    if np.ndim(x_train) != 2 or np.asarray(x_train).dtype.kind != "f":
        return x_train, x_test, None, None
    gaps = np.isnan(x_train)
    if gaps.any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column's median is NaN: filled with 0 below
            median = np.nan_to_num(np.nanmedian(x_train, axis=0), nan=0.0)
    else:
        median = np.median(x_train, axis=0)
    fill = {"median": median.tolist(), "flagged": np.flatnonzero(gaps.any(axis=0)).tolist()}
    filled = bool(fill["flagged"])
    if filled:
        x_train = apply_fill(x_train, fill)
    if x_test is not None and np.ndim(x_test) == 2 and np.asarray(x_test).dtype.kind == "f" and (
            filled or np.isnan(x_test).any()):
        x_test, filled = apply_fill(x_test, fill), True
    note = (f"missing numbers (NaN) in {len(fill['flagged'])} column(s) filled with the training median and flagged"
            if filled else None)
    return x_train, x_test, fill, note


def apply_fill(x: np.ndarray, fill: dict[str, list[Any]]) -> np.ndarray:
    """``x``'s NaN cells replaced by :func:`fill_missing`'s training medians, and its flag columns appended."""
    if np.ndim(x) != 2 or np.asarray(x).dtype.kind not in "fiub":
        return x
    x = np.asarray(x, dtype=np.float64)
    median = np.asarray(fill["median"], dtype=np.float64)
    if x.shape[1] != len(median):
        return x  # the shape check downstream names the problem
    gaps = np.isnan(x)
    out = np.where(gaps, median[None, :], x)
    return np.hstack([out, gaps[:, np.asarray(fill["flagged"], dtype=np.int64)].astype(out.dtype)])


def _one_hot(y: np.ndarray) -> bool:
    """Whether labels are one-hot rows (N, K > 1) of zeros and a single one, as Keras' to_categorical writes them."""
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] < 2 or y.dtype.kind not in "fiub" or len(y) == 0:
        return False
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def _finish(
    name: str,
    raw: RawSplits,
    *,
    origin: str,
    val_fraction: float,
    seed: int,
    layout: str,
    limit: int | None,
    scale: float | None = None,
    images: bool = False,
    flip_invariant: bool = False,
    task: str = "auto",
    test_fraction: float | None = None,
    inputs: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Dataset:
    """Apply ``limit``, flatten built-in images for a tabular layout, and build the Dataset.

    ``origin`` (a path, or the source name) is what make_dataset's error messages start with;
    ``flip_invariant`` is the source's declaration that horizontal flips keep the class. A regression
    ``limit`` takes a seeded random subset (there are no classes to keep in proportion). ``inputs`` (new examples'
    features, and labels or None: :func:`read_inputs`) take the test split's place once the training part is what it
    was in training, so they go through the same layout, filling and normalisation; without labels they get
    placeholders and the Dataset says ``test_labelled=False``.
    """
    x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    # an (N, 1) column of labels (y[:, None], a one-column DataFrame's values) is the labels: flattened before the
    # held-out test split and the limit, which take 1-D labels (it once trained the whole budget, then had no test)
    if np.ndim(y_train) == 2 and np.shape(y_train)[1] == 1:
        y_train = np.asarray(y_train)[:, 0]
    if y_test is not None and np.ndim(y_test) == 2 and np.shape(y_test)[1] == 1:
        y_test = np.asarray(y_test)[:, 0]
    notes = raw.notes
    if _one_hot(y_train) and (y_test is None or _one_hot(y_test)):  # Keras' to_categorical: class indices back
        y_train = np.argmax(y_train, axis=1)
        y_test = None if y_test is None else np.argmax(y_test, axis=1)
        notes += (f"{Path(origin).name}: one-hot labels ({np.shape(raw.y_train)[1]} columns) read as class indices",)
    if raw.classes is not None and len(raw.classes) > 1 and task == "auto":
        task = CLASSIFICATION  # named classes (an npz's classes array, text labels): the labels index them
    task = infer_task(y_train, y_test, check_task(task))
    if x_test is None and test_fraction and np.ndim(y_train) == 1 and np.ndim(x_train) >= 1 \
            and len(y_train) == len(x_train):
        keep, held = hold_out(np.asarray(y_train), test_fraction, task == REGRESSION)
        x_train, y_train, x_test, y_test = x_train[keep], y_train[keep], x_train[held], y_train[held]
    subset = _random_subset if task == REGRESSION else stratified_subset
    if limit is not None:
        if np.asarray(y_train).ndim == 1 and np.ndim(x_train) >= 1 and len(y_train) == len(x_train):
            keep = subset(np.asarray(y_train), limit, seed)
            x_train, y_train = x_train[keep], y_train[keep]
        if (x_test is not None and y_test is not None and np.asarray(y_test).ndim == 1 and np.ndim(x_test) >= 1
                and len(y_test) == len(x_test)):
            keep = subset(np.asarray(y_test), max(1, limit // 5), seed)
            x_test, y_test = x_test[keep], y_test[keep]
    labelled = True
    if inputs is not None:
        x_test, y_test = inputs
        labelled = y_test is not None
        if y_test is None:  # a label seen in training: valid for either task, never read (test_labelled is False)
            y_test = np.repeat(np.asarray(y_train)[:1], len(x_test), axis=0)
    if images and layout == "tabular":
        x_train = x_train.reshape(len(x_train), -1)
        if x_test is not None:
            x_test = x_test.reshape(len(x_test), -1)
    fill = None
    if layout in ("auto", "tabular"):
        x_train, x_test, fill, filled = fill_missing(x_train, x_test)
        notes += (() if filled is None else (f"{Path(origin).name}: {filled}",))
    ds = make_dataset(origin, x_train, y_train, x_test, y_test, classes=raw.classes,
                      val_fraction=val_fraction, seed=seed, layout=layout, scale=scale, task=task)
    # what nasforge predict needs to read new examples as these were, with no training data: the source's own
    # reading (a CSV's encoding, an image folder's size), then these steps; the statistics are the Preprocess's
    reader = {**(raw.reader or {"source": "arrays"}), "flatten": bool(images and layout == "tabular"),
              "fill": fill, "layout": {2: "tabular", 3: "sequence", 4: "image"}[ds.x_train.ndim],
              "named": raw.classes is not None}
    return dataclasses.replace(ds, name=name, flip_invariant=flip_invariant and ds.x_train.ndim == 4,
                               notes=notes + ds.notes, test_labelled=labelled, reader=reader)


# ----------------------------------------------------------------------------------------- loaders


def _idx_source(
    name: str,
    classes: tuple[str, ...],
    path: PathArg,
    val_fraction: float,
    seed: int,
    layout: str,
    label_column: str | int | None,
    limit: int | None,
    task: str = "auto",
    inputs: PathArg = None,
) -> Dataset:
    task = _classes_only(name, task)
    _no_label_column(name, label_column)
    _check_limit(limit)
    _check_layout(layout)
    directory = locate(name, path)
    x_tr, y_tr, x_te, y_te = read_idx_dir(directory, require_test=True)
    raw = RawSplits(x_tr, y_tr, x_te, y_te, classes)
    return _finish(name, raw, origin=f"{name} in {directory}", val_fraction=val_fraction, seed=seed,
                   layout=layout, limit=limit, scale=255.0 if x_tr.dtype == np.uint8 else None, images=True,
                   flip_invariant=name in FLIP_INVARIANT, task=task, inputs=read_inputs(inputs))


def load_fashion_mnist(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """Fashion-MNIST from ``path``, $NASFORGE_DATA_DIR, ~/.cache/nasforge or Debian's package."""
    return _idx_source("fashion_mnist", FASHION_CLASSES, path, val_fraction, seed, layout, label_column, limit, task,
                       inputs)


def load_mnist(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """MNIST from ``path``, $NASFORGE_DATA_DIR, ~/.cache/nasforge or /usr/share/datasets/mnist."""
    return _idx_source("mnist", DIGIT_CLASSES, path, val_fraction, seed, layout, label_column, limit, task, inputs)


def load_idx(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """A user directory of (Fashion-)MNIST-named IDX files; the t10k test pair is optional."""
    task = _classes_only("idx", task)
    _no_label_column("idx", label_column)
    _check_limit(limit)
    _check_layout(layout)
    if path is None:
        raise DataError("the idx source needs data.path: point it at the directory holding "
                        "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
    directory = Path(path).expanduser()
    x_tr, y_tr, x_te, y_te = read_idx_dir(directory)
    raw = RawSplits(x_tr, y_tr, x_te, y_te)
    return _finish(directory.name or "idx", raw, origin=str(directory), val_fraction=val_fraction, seed=seed,
                   test_fraction=test_fraction,
                   layout=layout, limit=limit, scale=255.0 if x_tr.dtype == np.uint8 else None, images=True,
                   task=task, inputs=read_inputs(inputs))


def _cifar(
    n: int, path: PathArg, val_fraction: float, seed: int, layout: str, label_column: str | int | None,
    limit: int | None, task: str = "auto", inputs: PathArg = None,
) -> Dataset:
    name = f"cifar{n}"
    task = _classes_only(name, task)
    _no_label_column(name, label_column)
    _check_limit(limit)
    _check_layout(layout)
    x_tr, y_tr, x_te, y_te, classes = read_cifar(path, n)
    raw = RawSplits(x_tr, y_tr, x_te, y_te, classes)
    return _finish(name, raw, origin=f"{name} in {path}", val_fraction=val_fraction, seed=seed, layout=layout,
                   limit=limit, scale=255.0, images=True, flip_invariant=name in FLIP_INVARIANT, task=task,
                   inputs=read_inputs(inputs))


def load_cifar10(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """CIFAR-10 from the extracted cifar-10-batches-py directory."""
    return _cifar(10, path, val_fraction, seed, layout, label_column, limit, task, inputs)


def load_cifar100(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """CIFAR-100 (fine labels) from the extracted cifar-100-python directory."""
    return _cifar(100, path, val_fraction, seed, layout, label_column, limit, task, inputs)


def load_npz(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """An .npz with x_train, y_train and optionally x_test, y_test (and classes)."""
    _no_label_column("npz", label_column)
    _check_limit(limit)
    _check_layout(layout)
    if path is None:
        raise DataError("the npz source needs data.path: point it at a file saved with "
                        "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    p = Path(path).expanduser()
    return _finish(p.stem, read_npz(p), origin=str(p), val_fraction=val_fraction, seed=seed, layout=layout,
                   test_fraction=test_fraction,
                   limit=limit, task=task, inputs=read_inputs(inputs))


def load_images(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """A folder of image files, one subfolder per class (:func:`~nasforge.data.folder.read_image_folder`). Not
    flipped unless the recipe says ``flip: true``: nothing declares that a mirror image keeps its class."""
    task = _classes_only("images", task)
    _no_label_column("images", label_column)
    _check_limit(limit)
    _check_layout(layout)
    if path is None:
        raise DataError("the images source needs data.path: point it at a folder with one subfolder of images per "
                        "class")
    from nasforge.data.folder import read_image_folder

    p = Path(path).expanduser()
    raw = read_image_folder(p, inputs)  # new examples: a folder of images, read at the training images' size
    return _finish(p.name, raw, origin=str(p), val_fraction=val_fraction, seed=seed,
                   layout=layout, limit=limit, scale=255.0, images=True, task=task, test_fraction=test_fraction,
                   inputs=raw.inputs)


def load_csv(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """A .csv (training data only) or a directory with train.csv and test.csv."""
    _check_limit(limit)
    _check_layout(layout)
    if path is None:
        raise DataError("the csv source needs data.path: point it at a .csv file or a directory with "
                        "train.csv and test.csv")
    p = Path(path).expanduser()
    if inputs is not None:  # new rows, encoded as the training file's columns were (not memoised: read once)
        raw = read_csv(p, label_column, check_task(task), test_fraction, inputs=inputs)
        return _finish(p.stem, raw, origin=str(p), val_fraction=val_fraction, seed=seed, layout=layout, limit=limit,
                       task=task, inputs=raw.inputs)
    return _finish(p.stem, _read_csv_once(p, label_column, check_task(task), test_fraction), origin=str(p),
                   val_fraction=val_fraction, seed=seed, layout=layout, limit=limit, task=task)


# A CSV parsed in this process, by what it was read with and its files' sizes and times: `nasforge auto` loads its
# data to plan, to search and to train the final networks, and a 6,000-row pixel table took seconds each time.
# Two entries: a changed file is parsed afresh. The arrays are never written to (_finish and make_dataset copy).
_CSV_MEMO: dict[tuple[Any, ...], RawSplits] = {}


def _read_csv_once(p: Path, label_column: str | int | None, task: str, test_fraction: float | None) -> RawSplits:
    try:
        files = sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p]
        stamp = tuple((str(q.resolve()), q.stat().st_size, q.stat().st_mtime_ns) for q in files)
    except OSError:  # unreadable: read_csv says why in one line
        return read_csv(p, label_column, task, test_fraction)
    key = (str(p.resolve()), stamp, label_column, task, test_fraction)
    if key not in _CSV_MEMO:
        while len(_CSV_MEMO) >= 2:
            _CSV_MEMO.pop(next(iter(_CSV_MEMO)))
        _CSV_MEMO[key] = read_csv(p, label_column, task, test_fraction)
    return _CSV_MEMO[key]


def load_digits(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """scikit-learn's bundled 8x8 digits, with a fixed stratified 20% test split: a tiny offline benchmark."""
    _no_path("digits", path)
    task = _classes_only("digits", task)
    _no_label_column("digits", label_column)
    _check_limit(limit)
    _check_layout(layout)
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise DataError("the digits source needs scikit-learn: pip install scikit-learn "
                        "(or pip install 'nasforge[sklearn]')") from None
    bunch = sk_load_digits()
    x = np.asarray(bunch.images, dtype=np.float32)  # (1797, 8, 8), values 0..16
    y = np.asarray(bunch.target, dtype=np.int64)
    train_idx, test_idx = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    raw = RawSplits(x[train_idx], y[train_idx], x[test_idx], y[test_idx], DIGIT_CLASSES)
    return _finish("digits", raw, origin="digits", val_fraction=val_fraction, seed=seed, layout=layout,
                   limit=limit, scale=16.0, images=True, task=task, inputs=read_inputs(inputs))


def load_diabetes(
    path: PathArg = None, *, val_fraction: float = 0.1, seed: int = 0, layout: str = "auto",
    label_column: str | int | None = None, limit: int | None = None, task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """scikit-learn's bundled diabetes table (442 patients, 10 features, disease progression after a year) with a
    fixed 20% test split: a tiny offline regression benchmark."""
    _no_path("diabetes", path)
    _no_label_column("diabetes", label_column)
    if check_task(task) == "classification":
        raise DataError("the diabetes source is a regression table (numeric targets): remove data.task or set it to "
                        "regression")
    _check_limit(limit)
    _check_layout(layout)
    try:
        from sklearn.datasets import load_diabetes as sk_load_diabetes
    except ImportError:
        raise DataError("the diabetes source needs scikit-learn: pip install scikit-learn "
                        "(or pip install 'nasforge[sklearn]')") from None
    bunch = sk_load_diabetes(scaled=False)
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.float64)
    train_idx, test_idx = shuffled_split(len(y), DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    raw = RawSplits(x[train_idx], y[train_idx], x[test_idx], y[test_idx], ("target",))
    return _finish("diabetes", raw, origin="diabetes", val_fraction=val_fraction, seed=seed, layout=layout,
                   limit=limit, task=REGRESSION, inputs=read_inputs(inputs))


DATA_SOURCES: dict[str, Loader] = {
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "idx": load_idx,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "npz": load_npz,
    "csv": load_csv,
    "images": load_images,
    "digits": load_digits,
    "diabetes": load_diabetes,
}


def load_dataset(
    source: str,
    path: str | os.PathLike[str] | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    layout: str = "auto",
    label_column: str | int | None = None,
    limit: int | None = None,
    task: str = "auto",
    test_fraction: float | None = None,
    inputs: PathArg = None,
) -> Dataset:
    """Load ``source`` (a key of DATA_SOURCES; dashes accepted, e.g. "fashion-mnist") as a Dataset.

    ``task``: ``auto`` (regression where the labels are numbers but not all whole), ``classification`` or
    ``regression``. ``test_fraction``: where the data has no test split (a single CSV, an .npz without x_test),
    that share of it is held out as one, stratified, with a seed of its own (the same split whatever ``seed``).
    ``inputs``: a file of new examples that takes the test split's place, read as the training data was
    (``nasforge predict``: :attr:`Dataset.test_labelled` says whether it had labels)."""
    key = source.strip().lower().replace("-", "_") if isinstance(source, str) else ""
    loader = DATA_SOURCES.get(key)
    if loader is None:
        raise DataError(f"unknown data source {source!r}: use one of {', '.join(DATA_SOURCES)}")
    check_task(task)
    if test_fraction is not None and not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be between 0 and 1, got {test_fraction}: use e.g. 0.2")
    return loader(path, val_fraction=val_fraction, seed=seed, layout=layout, label_column=label_column,
                  limit=limit, task=task, test_fraction=test_fraction, inputs=inputs)


@dataclasses.dataclass(frozen=True)
class NewExamples:
    """New examples as a network takes them (``x``, normalised), their labels where every one has a label (class
    indices, or a regression's targets in their own units), and for image files their names."""

    x: torch.Tensor
    y: np.ndarray | None
    ids: tuple[str, ...] | None


def read_new(reader: dict[str, Any], path: str | os.PathLike[str], *, input_shape: tuple[int, ...],
             classes: tuple[str, ...], preprocess: Preprocess, regression: bool) -> NewExamples:
    """New examples read as a training's data was, from what its retrain stored (:attr:`Dataset.reader`, the
    :class:`Preprocess`), so no training data is read: the source's reading (a CSV's column encoding, an image
    folder's size and colour, else an .npz or .npy of arrays), the same filling and layout, the same statistics."""
    given = Path(path).expanduser()
    source = reader.get("source", "arrays")
    ids = None
    if source == "csv":
        x, y = read_table_inputs(given, reader)
    elif source == "images":
        from nasforge.data.folder import read_image_inputs

        files, x, y = read_image_inputs(given, reader, classes)
        ids = tuple(str(f.relative_to(given)) for f in files)
    else:
        read = read_inputs(given)
        assert read is not None
        x, y = read
    if reader.get("flatten"):
        x = x.reshape(len(x), -1)
    if reader.get("fill"):
        x = apply_fill(x, reader["fill"])
    x = _to_layout(np.asarray(x), reader["layout"], f"{given}'s examples")
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(f"{given} holds examples of shape {tuple(x.shape[1:])}, the network takes "
                        f"{tuple(input_shape)}; give examples shaped as the training data")
    xt = preprocess.apply(x)
    if not torch.isfinite(xt).all():
        raise DataError(f"{given} holds NaN or infinite values; clean them first")
    if y is not None:
        y = _targets(y, str(given)) if regression else \
            _new_labels(given, np.asarray(y), classes, bool(reader.get("named")))
    return NewExamples(xt, y, ids)


def _new_labels(given: Path, y: np.ndarray, classes: tuple[str, ...], named: bool) -> np.ndarray:
    """Class indices of new examples' labels: as given where the training source named its classes (its labels
    indexed them), else each label is its class's name (:func:`~nasforge.data.base._classes`)."""
    y = _labels(np.argmax(y, axis=1) if _one_hot(y) else y, str(given))
    if named:
        bad = [int(v) for v in np.unique(y) if not 0 <= v < len(classes)]
        if bad:
            raise DataError(f"{given} has label {bad[0]!r}, not a class index 0..{len(classes) - 1} of the training "
                            f"classes; give labels the training data had, or leave them out")
        return y.astype(np.int64)
    index = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(y), dtype=np.int64)
    for i, v in enumerate(y):
        k = index.get(str(int(v)))
        if k is None:
            raise DataError(f"{given} has label {int(v)}, not one of the training labels ({', '.join(classes[:10])}); "
                            "give labels the training data had, or leave them out")
        out[i] = k
    return out
