"""User data in .npz archives and .csv tables.

Problems are reported with the file, the line and the column so they can be fixed in the file itself;
numpy and csv errors never escape as tracebacks.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasforge.data.base import infer_task
from nasforge.errors import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class RawSplits:
    """Unnormalised arrays as read from files, before make_dataset."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: tuple[str, ...] | None = None


# --------------------------------------------------------------------------------------------- npz


def read_npz(path: str | os.PathLike[str]) -> RawSplits:
    """x_train / y_train (and optionally x_test / y_test, classes) from an .npz without pickles."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataError(f"{p} is a directory; point data.path at the .npz file itself")
    try:
        archive = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{p} does not exist; check data.path") from None
    except OSError as err:
        raise DataError(f"cannot read {p}: {err.strerror or err}; check the path and its permissions") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"cannot read {p}: not a valid .npz archive ({err}); re-save it with numpy.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{p} holds a single array, not an .npz archive; save it with "
                        "numpy.savez(path, x_train=..., y_train=...)")
    with archive:
        keys = set(archive.files)
        missing = [k for k in ("x_train", "y_train") if k not in keys]
        if missing:
            raise DataError(f"{p} has no {' or '.join(missing)} (keys found: {', '.join(sorted(keys)) or 'none'}); "
                            "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
        if ("x_test" in keys) != ("y_test" in keys):
            have, lack = ("x_test", "y_test") if "x_test" in keys else ("y_test", "x_test")
            raise DataError(f"{p} has {have} but no {lack}; give both test arrays or neither")
        arrays: dict[str, np.ndarray] = {}
        for key in [*NPZ_KEYS, "classes"]:
            if key not in keys:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError as err:
                if "pickle" in str(err).lower():
                    raise DataError(f"cannot read {key} in {p}: it holds Python objects; save plain numeric "
                                    "arrays (e.g. x.astype('float32'))") from None
                raise DataError(f"cannot read {key} in {p}: {err}; re-save the archive") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise DataError(f"cannot read {key} in {p}: damaged archive ({err}); re-save the archive") from None
    for key in NPZ_KEYS:
        a = arrays.get(key)
        if a is not None and a.dtype.kind not in "fiub":
            raise DataError(f"{p}: {key} has dtype {a.dtype}; save numbers only (encode classes as 0..K-1)")
    classes = None
    if "classes" in arrays:
        classes = tuple(str(c) for c in np.asarray(arrays["classes"]).ravel())
    return RawSplits(arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"), classes)


# --------------------------------------------------------------------------------------------- csv


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class _Table:
    path: Path
    header: list[str] | None
    rows: list[tuple[int, list[str]]]  # (line number, cells)


def _read_table(p: Path) -> _Table:
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise DataError(f"{p} does not exist; check data.path") from None
    except UnicodeDecodeError as err:
        raise DataError(f"cannot read {p}: not UTF-8 text (byte {err.start}); save it as a UTF-8 .csv") from None
    except OSError as err:
        raise DataError(f"cannot read {p}: {err.strerror or err}; check the path and its permissions") from None
    if "\x00" in text:
        raise DataError(f"cannot read {p}: it contains NUL bytes and is not a text table; give a plain .csv file")
    first = text.split("\n", 1)[0]
    reader = csv.reader(text.splitlines(), delimiter=_delimiter(first))
    rows: list[tuple[int, list[str]]] = []
    try:
        for line_no, cells in enumerate(reader, start=1):
            cells = [c.strip() for c in cells]
            if cells and any(cells):
                rows.append((line_no, cells))
    except csv.Error as err:
        raise DataError(f"cannot read {p}: malformed CSV at line {reader.line_num} ({err}); fix the quoting") from None
    if not rows:
        raise DataError(f"{p} is empty; give one row per example with a label column")
    # A header is a first row with a name where the next row has a number (or only names, for 1-row files).
    head = rows[0][1]
    nxt = rows[1][1] if len(rows) > 1 else None
    is_header = all(not _is_number(c) for c in head) or (
        nxt is not None and any(not _is_number(h) and i < len(nxt) and _is_number(nxt[i]) for i, h in enumerate(head))
    )
    if is_header:
        return _Table(p, head, rows[1:])
    return _Table(p, None, rows)


def _label_index(t: _Table, label_column: str | int | None, width: int) -> int:
    if isinstance(label_column, bool):
        raise DataError(f"label_column {label_column!r} is not a column name or index; give e.g. 'label' or -1")
    if isinstance(label_column, int):
        if not -width <= label_column < width:
            raise DataError(f"{t.path} has {width} columns, so label_column {label_column} does not exist; "
                            f"give an index in {-width}..{width - 1} or a column name")
        return label_column % width
    if label_column is None:
        if t.header is not None and "label" in t.header:
            return t.header.index("label")
        return width - 1
    if t.header is None:
        raise DataError(f"{t.path} has no header row, so label column {label_column!r} cannot be found; "
                        "add a header or give label_column as an index (e.g. -1)")
    if label_column not in t.header:
        raise DataError(f"{t.path} has no column {label_column!r} (columns: {', '.join(t.header)}); "
                        "set label_column to one of them")
    return t.header.index(label_column)


def _column_name(t: _Table, i: int) -> str:
    return repr(t.header[i]) if t.header is not None else str(i + 1)


def _parse(t: _Table, label_column: str | int | None) -> tuple[np.ndarray, list[str], list[str] | None]:
    """(features as float64, raw label cells, feature column names)."""
    width = len(t.header) if t.header is not None else len(t.rows[0][1])
    if width < 2:
        raise DataError(f"{t.path} has a single column; give at least one feature column and a label column")
    li = _label_index(t, label_column, width)
    if not t.rows:
        raise DataError(f"{t.path} has a header but no data rows; add examples")
    features = np.empty((len(t.rows), width - 1), dtype=np.float64)
    labels: list[str] = []
    for r, (line_no, cells) in enumerate(t.rows):
        if len(cells) != width:
            raise DataError(f"{t.path} line {line_no} has {len(cells)} fields but "
                            f"{'the header has' if t.header else 'the first row has'} {width}; "
                            "give every row the same columns")
        if cells[li] == "":
            raise DataError(f"{t.path} line {line_no} has an empty label (column {_column_name(t, li)}); "
                            "label every example or drop the row")
        labels.append(cells[li])
        j = 0
        for i, cell in enumerate(cells):
            if i == li:
                continue
            try:
                v = float(cell)
            except ValueError:
                what = "is empty" if cell == "" else f"holds {cell[:40]!r}, not a number"
                raise DataError(f"{t.path} line {line_no} column {_column_name(t, i)} {what}; "
                                "give numeric features only (fill missing values, encode categories)") from None
            if not math.isfinite(v):
                raise DataError(f"{t.path} line {line_no} column {_column_name(t, i)} is {cell}; "
                                "clean or impute missing and infinite values first")
            features[r, j] = v
            j += 1
    names = [h for i, h in enumerate(t.header) if i != li] if t.header is not None else None
    return features, labels, names


def _encode_labels(path: Path, cells: list[str], mapping: dict[str, int] | None) -> np.ndarray:
    """Whole-number labels as ints, or class names mapped through ``mapping``."""
    if mapping is not None:
        unknown = sorted({c for c in cells if c not in mapping})
        if unknown:
            raise DataError(f"{path} has labels {', '.join(map(repr, unknown[:5]))} not seen in training; "
                            "give test labels from the training classes")
        return np.array([mapping[c] for c in cells], dtype=np.int64)
    out = np.empty(len(cells), dtype=np.int64)
    for i, c in enumerate(cells):
        try:
            v = float(c)
        except ValueError:
            raise DataError(f"{path} has label {c!r} among numeric labels; use class indices or names throughout") \
                from None
        if not math.isfinite(v) or v != int(v) or v < 0:
            raise DataError(f"{path} has label {c!r}, not a class index 0..K-1; give whole non-negative labels (or "
                            "set data.task: regression for numeric targets)")
        out[i] = int(v)
    return out


def _targets(path: Path, cells: list[str]) -> np.ndarray:
    """Regression targets: every label a finite number."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, c in enumerate(cells):
        try:
            v = float(c)
        except ValueError:
            raise DataError(f"{path} has label {c!r}, not a number: regression needs numeric targets "
                            "(or set data.task: classification)") from None
        if not math.isfinite(v):
            raise DataError(f"{path} has label {c!r}: regression needs finite targets; clean or drop those rows")
        out[i] = v
    return out


def read_csv(path: str | os.PathLike[str], label_column: str | int | None = None, task: str = "auto") -> RawSplits:
    """A .csv file (train only) or a directory holding train.csv and test.csv.

    With ``task`` ``regression``, or ``auto`` and numeric labels that :func:`~nasforge.data.base.infer_task` reads
    as targets (not all whole numbers, or too many rare values to be classes), the labels are float targets
    (the label column's name, if the file has a header, names the target).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        train_path, test_path = p / "train.csv", p / "test.csv"
        if not train_path.is_file():
            raise DataError(f"{p} is a directory without train.csv; add train.csv (and test.csv) or point "
                            "data.path at a .csv file")
        test_table = _read_table(test_path) if test_path.is_file() else None
    else:
        train_path, test_table = p, None
    train_table = _read_table(train_path)
    x_train, lab_train, names = _parse(train_table, label_column)
    x_test = lab_test = None
    if test_table is not None:
        x_test, lab_test, test_names = _parse(test_table, label_column)
        if names is not None and test_names is not None and test_names != names:
            raise DataError(f"{test_table.path} has feature columns {test_names} but {train_path} has {names}; "
                            "give both files the same columns")
        if x_test.shape[1] != x_train.shape[1]:
            raise DataError(f"{test_table.path} has {x_test.shape[1]} features but {train_path} has "
                            f"{x_train.shape[1]}; give both files the same columns")
    every = lab_train + (lab_test or [])
    if task == "regression" or (task == "auto" and all(_is_number(c) for c in every)
                                and infer_task(np.array([float(c) for c in every])) == "regression"):
        width = len(train_table.header) if train_table.header is not None else len(train_table.rows[0][1])
        name = train_table.header[_label_index(train_table, label_column, width)] if train_table.header else None
        return RawSplits(x_train, _targets(train_path, lab_train), x_test,
                         None if test_table is None or lab_test is None else _targets(test_table.path, lab_test),
                         (name,) if name else None)
    mapping: dict[str, int] | None = None
    classes: tuple[str, ...] | None = None
    if not all(_is_number(c) for c in lab_train):
        names_sorted = sorted(set(lab_train))
        mapping = {c: i for i, c in enumerate(names_sorted)}
        classes = tuple(names_sorted)
    y_train = _encode_labels(train_path, lab_train, mapping)
    y_test = None
    if test_table is not None and lab_test is not None:
        y_test = _encode_labels(test_table.path, lab_test, mapping)
    return RawSplits(x_train, y_train, x_test, y_test, classes)
