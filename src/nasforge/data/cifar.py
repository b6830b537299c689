"""CIFAR-10 / CIFAR-100 from the python-pickle batches distributed by the Toronto site.

The batches are unpickled with an allow-list of globals (numpy's array reconstruction only), so a
tampered or foreign pickle is refused instead of executing code.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import DataError

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
}

_REFETCH = "re-download and extract cifar-{n}-python.tar.gz, or point data.path at a complete copy"

# The directory names inside the official archives, tried below ``path``.
_SUBDIRS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
_LABEL_KEYS = {10: "labels", 100: "fine_labels"}  # each batch's class labels (CIFAR-100's fine classes)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path, n: int) -> dict[str, Any]:
    """One batch as a dict with str keys (the Python 2 pickles have byte-string keys)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}; check the path and its permissions") from None
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as err:  # pickle raises almost anything on bad input
        detail = str(err).splitlines()[0] if str(err) else "corrupt data"
        raise DataError(f"cannot read {path}: not a CIFAR python batch ({type(err).__name__}: {detail}); "
                        f"{_REFETCH.format(n=n)}") from None
    if not isinstance(obj, dict):
        raise DataError(f"cannot read {path}: holds a {type(obj).__name__}, not a CIFAR batch dict; "
                        f"{_REFETCH.format(n=n)}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _batch(path: Path, label_key: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path, n)
    if "data" not in d or label_key not in d:
        raise DataError(f"cannot read {path}: batch has keys {sorted(d)} but needs 'data' and {label_key!r}; "
                        f"{_REFETCH.format(n=n)}")
    try:
        x = np.asarray(d["data"])
        y = np.asarray(d[label_key])
    except (TypeError, ValueError) as err:
        raise DataError(f"cannot read {path}: data or labels are not arrays ({err}); {_REFETCH.format(n=n)}") from None
    if x.dtype.kind not in "iuf" or y.dtype.kind not in "iu":
        raise DataError(f"cannot read {path}: data has dtype {x.dtype} and labels {y.dtype}, expected integers; "
                        f"{_REFETCH.format(n=n)}")
    if x.ndim == 2 and x.shape[1] == 3 * 32 * 32:
        x = x.reshape(-1, 3, 32, 32)
    if x.ndim != 4 or x.shape[1:] != (3, 32, 32):
        raise DataError(f"cannot read {path}: data has shape {x.shape}, expected (N, 3072) or (N, 3, 32, 32); "
                        f"{_REFETCH.format(n=n)}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"cannot read {path}: {len(x)} images but labels of shape {y.shape}; {_REFETCH.format(n=n)}")
    return x, y


def _class_names(path: Path, key: str, n: int) -> tuple[str, ...] | None:
    """Class names from batches.meta / meta, or None when the file is absent."""
    if not path.is_file():
        return None
    names = _unpickle(path, n).get(key)
    if not isinstance(names, (list, tuple)) or len(names) != n:
        raise DataError(f"cannot read {path}: {key!r} should list {n} class names; {_REFETCH.format(n=n)}")
    return tuple(s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in names)


def _resolve(path: Path, n: int, first: str) -> Path:
    if path.suffix == ".gz" or path.name.endswith((".tar.gz", ".tgz")):
        raise DataError(f"{path} is the compressed archive; extract it (tar xzf {path.name}) and point data.path "
                        f"at the {_SUBDIRS[n]} directory")
    if not path.is_dir():
        raise DataError(f"CIFAR-{n}: {path} is not a directory; point data.path at the extracted {_SUBDIRS[n]} "
                        "directory")
    if not (path / first).is_file() and (path / _SUBDIRS[n] / first).is_file():
        return path / _SUBDIRS[n]
    return path


def is_batch(path: Path) -> bool:
    """Whether ``path`` names a CIFAR python batch: CIFAR-10's ``data_batch_N`` or ``test_batch``, or CIFAR-100's
    ``train`` or ``test`` beside its ``meta``."""
    name = path.name
    return (re.fullmatch(r"data_batch_\d+|test_batch", name) is not None
            or (name in ("train", "test") and (path.parent / "meta").is_file()))


def read_batch_inputs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch as new examples (``nasforge predict``): its images as uint8 (N, 3, 32, 32) and its
    labels, read as training read them."""
    n = 100 if path.name in ("train", "test") else 10
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the path")
    return _batch(path, _LABEL_KEYS[n], n)


def read_cifar(
    path: str | os.PathLike[str] | None, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """(x_train, y_train, x_test, y_test, classes) with images as uint8 (N, 3, 32, 32); n is 10 or 100."""
    if path is None:
        raise DataError(f"CIFAR-{n} needs data.path: download cifar-{n}-python.tar.gz from "
                        f"https://www.cs.toronto.edu/~kriz/cifar.html, extract it and point data.path at "
                        f"{_SUBDIRS[n]}")
    if n == 10:
        train_names = [f"data_batch_{i}" for i in range(1, 6)]
        meta_name, meta_key = "batches.meta", "label_names"
    else:
        train_names = ["train"]
        meta_name, meta_key = "meta", "fine_label_names"
    label_key = _LABEL_KEYS[n]
    d = _resolve(Path(path).expanduser(), n, train_names[0])
    missing = [f for f in [*train_names, "test_batch" if n == 10 else "test"] if not (d / f).is_file()]
    if missing:
        raise DataError(f"CIFAR-{n}: {d} lacks {', '.join(missing)}; {_REFETCH.format(n=n)}")
    parts = [_batch(d / f, label_key, n) for f in train_names]
    x_test, y_test = _batch(d / ("test_batch" if n == 10 else "test"), label_key, n)
    classes = _class_names(d / meta_name, meta_key, n) or tuple(str(i) for i in range(n))
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    for what, y in (("training", y_train), ("test", y_test)):
        if y.size and (y.min() < 0 or y.max() >= n):
            raise DataError(f"CIFAR-{n}: {what} labels in {d} range {y.min()}..{y.max()}, outside 0..{n - 1}; "
                            f"{_REFETCH.format(n=n)}")
    return x_train, y_train, x_test, y_test, classes
