"""User data in .npz archives and .csv tables.

Problems are reported with the file, the line and the column so they can be fixed in the file itself;
numpy and csv errors never escape as tracebacks. A table's text columns are one-hot encoded and its missing
numbers filled (and flagged), fitted on the training file alone, as AutoGluon and AutoKeras read a raw CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import itertools
import logging
import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.data.base import MANY_VALUES, infer_task, shuffled_split, stratified_split
from nasforge.errors import DataError

log = logging.getLogger(__name__)

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class RawSplits:
    """Unnormalised arrays as read from files, before make_dataset."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()  # :attr:`Dataset.notes`
    # new examples (features, labels or None) read as the training data was, to take the test split's place once
    # the training part is what it was in training (``nasforge predict``; :func:`read_csv`'s and image folders')
    inputs: tuple[np.ndarray, np.ndarray | None] | None = None
    # how a source that fits something to its training files (a CSV's column encoding, an image folder's size and
    # colour) reads new examples, as JSON: stored with a retrain, so ``nasforge predict`` needs no training data
    reader: dict[str, Any] | None = None


# the seed of a test split held out of data that has none: fixed, so the test set does not move with --seed
TEST_SEED = 0


def hold_out(y: np.ndarray, fraction: float, regression: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, test) of a test split held out of labelled data that came without one: stratified by class
    (a plain shuffle for regression targets), with :data:`TEST_SEED`."""
    if regression:
        return shuffled_split(len(y), fraction, TEST_SEED)
    return stratified_split(y, fraction, TEST_SEED)


# --------------------------------------------------------------------------------------------- npz


# the names an archive's features and labels go by besides x_train / y_train, lower-cased: scikit-learn's X and y,
# and the words data sets are saved under (an archive with these and no test arrays gets a held-out test split)
FEATURE_NAMES = ("x_train", "x", "data", "features", "inputs")
LABEL_NAMES = ("y_train", "y", "labels", "label", "targets", "target")
# a header's names for the label column, lower-cased: where exactly one column has one, it is the label (else the
# last column is); --label names any other
LABEL_COLUMNS = ("label", "labels", "target", "targets", "class", "y")


def _npz_key(keys: set[str], names: tuple[str, ...], p: Path, what: str) -> str | None:
    """The one key of ``keys`` that is among ``names`` (case-insensitive), or None; two are ambiguous."""
    found = [k for k in sorted(keys) if k.lower() in names]
    if len(found) > 1:
        raise DataError(f"{p} has {' and '.join(found)}: which are the {what}? save them as x_train / y_train")
    return found[0] if found else None


def _text_labels(p: Path, arrays: dict[str, np.ndarray]) -> tuple[str, ...] | None:
    """Text labels (numpy str or bytes arrays) as class indices in place; the class names, sorted, or in the
    order of the archive's ``classes`` where it has one."""
    if arrays["y_train"].dtype.kind not in "US":
        return None
    def text(a: np.ndarray) -> np.ndarray:
        return np.char.decode(a, "utf-8", "replace") if a.dtype.kind == "S" else a
    given = arrays.get("classes")
    names = (tuple(str(c) for c in text(np.asarray(given)).ravel()) if given is not None
             else tuple(sorted({str(c) for c in text(arrays["y_train"]).ravel()})))
    index = {c: i for i, c in enumerate(names)}
    for key in ("y_train", "y_test"):
        if key not in arrays:
            continue
        labels = text(arrays[key]).ravel()
        unknown = sorted({str(c) for c in labels} - index.keys())
        if unknown:
            raise DataError(f"{p}: {key} has labels {', '.join(map(repr, unknown[:5]))} not in "
                            f"{'classes' if given is not None else 'y_train'}; give labels from the training classes")
        arrays[key] = np.array([index[str(c)] for c in labels], dtype=np.int64)
    return names


def read_npz(path: str | os.PathLike[str]) -> RawSplits:
    """x_train / y_train (and optionally x_test / y_test, classes) from an .npz without pickles; the training
    arrays may also go by X / y or the other :data:`FEATURE_NAMES` / :data:`LABEL_NAMES`, and the labels may be
    text (class names)."""
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
        source: dict[str, str | None] = {"x_train": _npz_key(keys, FEATURE_NAMES, p, "features"),
                                          "y_train": _npz_key(keys, LABEL_NAMES, p, "labels"),
                                          **{k: k for k in ("x_test", "y_test", "classes") if k in keys}}
        missing = [k for k in ("x_train", "y_train") if source[k] is None]
        if missing:
            raise DataError(f"{p} has no {' or '.join(missing)} (keys found: {', '.join(sorted(keys)) or 'none'}); "
                            "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
        if ("x_test" in keys) != ("y_test" in keys):
            have, lack = ("x_test", "y_test") if "x_test" in keys else ("y_test", "x_test")
            raise DataError(f"{p} has {have} but no {lack}; give both test arrays or neither")
        arrays: dict[str, np.ndarray] = {}
        for key, stored in source.items():
            if stored is None:
                continue
            try:
                arrays[key] = archive[stored]
            except ValueError as err:
                if "pickle" in str(err).lower():
                    raise DataError(f"cannot read {stored} in {p}: it holds Python objects; save plain numeric "
                                    "arrays (e.g. x.astype('float32'))") from None
                raise DataError(f"cannot read {stored} in {p}: {err}; re-save the archive") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise DataError(f"cannot read {stored} in {p}: damaged archive ({err}); re-save the archive") from None
    if "y_test" in arrays and (arrays["y_test"].dtype.kind in "US") != (arrays["y_train"].dtype.kind in "US"):
        raise DataError(f"{p}: one of y_train and y_test holds text labels and the other numbers; use one kind")
    classes = _text_labels(p, arrays)
    for key in NPZ_KEYS:
        a = arrays.get(key)
        if a is not None and a.dtype.kind not in "fiub":
            raise DataError(f"{p}: {source[key]} has dtype {a.dtype}; save numbers (or, for labels, class names)")
    if classes is None and "classes" in arrays:
        classes = tuple(str(c) for c in np.asarray(arrays["classes"]).ravel())
    return RawSplits(arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"), classes)


# where an archive of new examples keeps them, in order of preference: what is not training data first
INPUT_FEATURES = ("x_test", "x", "inputs", "features", "data", "x_train")


def read_inputs(path: str | os.PathLike[str] | None) -> tuple[np.ndarray, np.ndarray | None] | None:
    """New examples to predict, for data read as arrays (not a CSV): an .npz with the features (x_test, x or
    another of :data:`INPUT_FEATURES`) and, to score them, their labels as class indices or targets (y_test, y,
    ...), an .npy of the features alone, an IDX images file (``t10k-images-idx3-ubyte.gz``), scored where its
    labels file lies beside it, or a CIFAR python batch (``test_batch``), scored by its labels. None where
    ``path`` is None."""
    from nasforge.data.cifar import is_batch, read_batch_inputs

    if path is None:
        return None
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if "-images-idx" in p.name or ".idx3-ubyte" in p.name:
        return _idx_inputs(p)
    if is_batch(p):
        return read_batch_inputs(p)
    if suffix not in (".npz", ".npy"):
        raise DataError(f"{p}: give new examples of array data as an .npz (x, and y to score them), an .npy of x, "
                        "an IDX images file or a CIFAR batch (test_batch)")
    try:
        loaded = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{p} does not exist; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{p} is a directory; give the .npz or .npy file itself") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {p}: {str(err)[:120]}; save it with numpy.savez or numpy.save") from None
    y: np.ndarray | None = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = {k.lower(): k for k in loaded.files}
            xk = next((keys[k] for k in INPUT_FEATURES if k in keys), None)
            if xk is None:
                raise DataError(f"{p} has no features (keys found: {', '.join(sorted(loaded.files)) or 'none'}); "
                                "save them as numpy.savez(path, x=...)")
            pair = {"x_test": ("y_test",), "x_train": ("y_train",)}.get(xk.lower(), LABEL_NAMES[1:])
            yk = next((keys[k] for k in pair if k in keys), None)
            try:
                x = loaded[xk]
                y = loaded[yk] if yk is not None else None
            except ValueError as err:
                raise DataError(f"cannot read {p}: {str(err)[:120]}; save plain numeric arrays") from None
    else:
        x = loaded
    if x.dtype.kind not in "fiub" or x.ndim == 0:
        raise DataError(f"{p}: the features are {x.dtype} of shape {x.shape}; give one numeric row per example")
    if y is not None:
        y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
        if y.dtype.kind not in "fiub" or len(y) != len(x):
            raise DataError(f"{p}: the labels ({y.dtype}, {len(y)}) are not one number per example of its {len(x)}; "
                            "give class indices (or targets), or leave the labels out")
    return x, y


def _idx_inputs(p: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An IDX images file of new examples, and the labels of the IDX labels file beside it, if there is one."""
    from nasforge.data.idx import read_idx

    if not p.is_file():
        raise DataError(f"{p} does not exist; check the path")
    x = read_idx(p)
    labels = p.with_name(p.name.replace("-images-idx3", "-labels-idx1").replace("-images.idx3", "-labels.idx1"))
    y = read_idx(labels) if labels != p and labels.is_file() else None
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise DataError(f"{labels} holds {y.shape} labels for the {len(x)} images of {p.name}; give the labels file "
                        "of the same release, or move it away to predict without scoring")
    return x, y


# --------------------------------------------------------------------------------------------- csv


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# tables by their names: .csv and .tsv, and the plain-text names of the UCI repository's and older archives' files
# (iris.data, a train.txt of numbers separated by spaces); any of them gzipped
TABLE_SUFFIXES = tuple(s + gz for gz in ("", ".gz") for s in (".csv", ".tsv", ".txt", ".data", ".dat"))


def table_stem(p: Path) -> str | None:
    """The name of a table file without its suffix (:data:`TABLE_SUFFIXES`, any case); None where ``p`` is not named
    as a table."""
    low = p.name.lower()
    for suffix in TABLE_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return p.name[: -len(suffix)]
    return None


# a number written with a decimal comma (14,25 or -0,5 or ,5): spreadsheets in most of Europe export them, with ;
# between cells
_DECIMAL_COMMA = re.compile(r"[+-]?(\d+,\d*|,\d+)([eE][+-]?\d+)?")
# numbers as spreadsheets format them for people: thousands grouped (1,234,567.5; in Europe 1.234.567,5), a
# currency sign before (-$1,234.50, € 12,00) or a percent sign after (12.5%). A column of them was text with a
# distinct value in most rows, dropped as an identifier: the numbers were lost
_GROUPED_POINT = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")  # 1,234 and 1,234.5
_GROUPED_COMMA = re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?")  # 1.234 and 1.234,5
_FORMAT_SIGNS = re.compile(r"[,$€£¥%]")  # a column without any of these (nor 1.234.567) needs no rewriting
_DOTS_GROUPING = re.compile(r"\d\.\d{3}\.\d")
_DECORATION = re.compile(r"([+-]?)\s*[$€£¥]\s*(.*)|(.*?)\s*%")


def _undecorated(cell: str) -> str:
    """A cell without a currency sign before its number or a percent sign after it (12.5% reads 12.5)."""
    m = _DECORATION.fullmatch(cell)
    if m is None:
        return cell
    return m.group(1) + m.group(2) if m.group(3) is None else m.group(3)


def _number_formats(rows: list[tuple[int, list[str]]], delimiter: str) -> tuple[int, ...]:
    """Rewrite, in place, the columns whose cells are all numbers as spreadsheets write them (or missing) to plain
    numbers: decimal commas (in a table not separated by commas), grouped thousands, a currency sign, a percent
    sign. A column with any other cell is left as it is. The first row is left out of the test (it may be a
    header) but rewritten where its cell is such a number. Returns the columns rewritten."""
    body = rows[1:] or rows
    done = []
    # most columns are plain numbers or words: one scan of a column's text says so, not a test a cell (a 60,000-row
    # pixel table has 47M cells); a short row's absent cells read as missing ones
    for j, column in enumerate(itertools.zip_longest(*(c for _, c in body), fillvalue="")):
        text = "\x00".join(column)
        if not (_FORMAT_SIGNS.search(text) or (delimiter != "," and _DOTS_GROUPING.search(text))):
            continue
        given = [x for x in column if not _missing(x)]
        cells = [_undecorated(x) for x in given]
        if cells == given and all(_is_number(x) for x in cells):
            continue  # plain numbers (or none): nothing to rewrite
        rewrite = _column_format(cells, delimiter)
        if rewrite is None:
            continue
        for _, c in rows:
            if j < len(c) and not _missing(c[j]):
                plain = rewrite(_undecorated(c[j]))
                if _is_number(plain):
                    c[j] = plain
        done.append(j)
    return tuple(done)


def _column_format(cells: list[str], delimiter: str) -> Callable[[str], str] | None:
    """How a column's cells (currency and percent signs taken off) become plain numbers; None where any is no number.

    In a table separated by commas a number has a decimal point (a quoted 1,5 is text) and commas group thousands.
    In one separated by semicolons or tabs, 1,234 reads both ways; the column decides: a cell only an American
    number can be (1,234.5 or 1,234,567) makes commas group thousands, else commas are decimal, and dots group
    thousands where a cell shows it (1.234,5 or 1.234.567; 1.234 alone stays a decimal point)."""
    def plain_or(pattern: re.Pattern[str]) -> bool:
        return all(_is_number(x) or pattern.fullmatch(x) for x in cells)

    if delimiter == "," or any(_GROUPED_POINT.fullmatch(x) and ("." in x or x.count(",") > 1) for x in cells):
        return (lambda x: x.replace(",", "")) if plain_or(_GROUPED_POINT) else None
    if not all(_is_number(x) or _DECIMAL_COMMA.fullmatch(x) or _GROUPED_COMMA.fullmatch(x) for x in cells):
        return None
    if any(_GROUPED_COMMA.fullmatch(x) and (x.count(".") > 1 or "," in x) for x in cells):
        return lambda x: (x.replace(".", "") if _GROUPED_COMMA.fullmatch(x) else x).replace(",", ".")
    return lambda x: x.replace(",", ".")


def _delimiter(first_line: str) -> str:
    """The first line's commonest of comma, semicolon and tab; where it has none, spaces, where they part it (a
    .txt or .dat file of numbers in aligned columns)."""
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else " " if len(first_line.split()) > 1 else ","


@dataclass
class _Table:
    path: Path
    header: list[str] | None
    rows: list[tuple[int, list[str]]]  # (line number, cells)
    reformatted: tuple[int, ...] = ()  # columns of numbers written for people (:func:`_number_formats`)


def _read_table(p: Path) -> _Table:
    try:
        if p.name.lower().endswith(".gz"):
            with gzip.open(p, "rt", newline="", encoding="utf-8-sig") as fh:
                text = fh.read()
        else:
            with p.open(newline="", encoding="utf-8-sig") as fh:
                text = fh.read()
    except FileNotFoundError:
        raise DataError(f"{p} does not exist; check data.path") from None
    except UnicodeDecodeError as err:
        raise DataError(f"cannot read {p}: not UTF-8 text (byte {err.start}); save it as a UTF-8 .csv") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {p}: not a complete gzip file ({err}); give the .csv, or gzip it again") from None
    except OSError as err:
        raise DataError(f"cannot read {p}: {err.strerror or err}; check the path and its permissions") from None
    if "\x00" in text:
        raise DataError(f"cannot read {p}: it contains NUL bytes and is not a text table; give a plain .csv file")
    first = text.split("\n", 1)[0]
    delimiter = _delimiter(first)
    lines = text.splitlines()
    if delimiter == " ":  # one or more spaces part cells, and none begin or end a line
        lines = [" ".join(line.split()) for line in lines]
    reader = csv.reader(lines, delimiter=delimiter)
    # cells are stripped of spaces around them, where the text has any (a 47M-cell pixel table has none)
    strip = " " in text or (delimiter != "\t" and "\t" in text)
    rows: list[tuple[int, list[str]]] = []
    try:
        for line_no, cells in enumerate(reader, start=1):
            if strip:
                cells = [c.strip() for c in cells]
            if cells and any(cells):
                rows.append((line_no, cells))
    except csv.Error as err:
        raise DataError(f"cannot read {p}: malformed CSV at line {reader.line_num} ({err}); fix the quoting") from None
    if not rows:
        raise DataError(f"{p} is empty; give one row per example with a label column")
    reformatted = _number_formats(rows, delimiter)
    # A header is a first row with a name where the next row has a number (or only names, for 1-row files).
    head = rows[0][1]
    nxt = rows[1][1] if len(rows) > 1 else None
    is_header = all(not _is_number(c) for c in head) or (
        nxt is not None and any(not _is_number(h) and i < len(nxt) and _is_number(nxt[i]) for i, h in enumerate(head))
    )
    if is_header:
        return _Table(p, head, rows[1:], reformatted)
    return _Table(p, None, rows, reformatted)


def _width(t: _Table) -> int:
    """The number of columns: the header's, else the first row's."""
    return len(t.header) if t.header is not None else len(t.rows[0][1])


def _label_index(t: _Table, label_column: str | int | None, width: int) -> int:
    if isinstance(label_column, bool):
        raise DataError(f"label_column {label_column!r} is not a column name or index; give e.g. 'label' or -1")
    if isinstance(label_column, int):
        if not -width <= label_column < width:
            raise DataError(f"{t.path} has {width} columns, so label_column {label_column} does not exist; "
                            f"give an index in {-width}..{width - 1} or a column name")
        return label_column % width
    if label_column is None:
        named = _named_label(t)
        if named is not None:
            return named
        if t.header is None and width > 2 and not _classlike(t, width - 1) and _classlike(t, 0):
            return 0  # the UCR time-series archive's layout: the class first, then the series
        return width - 1
    if t.header is None:
        raise DataError(f"{t.path} has no header row, so label column {label_column!r} cannot be found; "
                        "add a header or give label_column as an index (e.g. -1)")
    if label_column not in t.header:
        raise DataError(f"{t.path} has no column {label_column!r} (columns: {', '.join(t.header)}); "
                        "set label_column to one of them")
    return t.header.index(label_column)


def _named_label(t: _Table) -> int | None:
    """The one column whose header names it as labels are (:data:`LABEL_COLUMNS`; scikit-learn's frames call it
    target), or None where none or several do."""
    named = [i for i, h in enumerate(t.header or ()) if h.strip().lower() in LABEL_COLUMNS]
    return named[0] if len(named) == 1 else None


def _classlike(t: _Table, i: int) -> bool:
    """Whether column ``i`` reads as class labels: whole numbers or words, at most MANY_VALUES distinct."""
    cells = {cells[i] for _, cells in t.rows if i < len(cells)}
    if len(cells) > MANY_VALUES or "" in cells:
        return False
    numbers = [float(c) for c in cells if _is_number(c)]
    return all(math.isfinite(v) and v == int(v) for v in numbers)


def _column_name(t: _Table, i: int) -> str:
    return repr(t.header[i]) if t.header is not None else str(i + 1)


def _parse(t: _Table, label_column: str | int | None) -> tuple[list[list[str]], list[str], list[str] | None]:
    """(feature cells column by column, raw label cells, feature column names)."""
    width = _width(t)
    if width < 2:
        raise DataError(f"{t.path} has a single column; give at least one feature column and a label column")
    li = _label_index(t, label_column, width)
    if not t.rows:
        raise DataError(f"{t.path} has a header but no data rows; add examples")
    for line_no, cells in t.rows:
        if len(cells) != width:
            raise DataError(f"{t.path} line {line_no} has {len(cells)} fields but "
                            f"{'the header has' if t.header else 'the first row has'} {width}; "
                            "give every row the same columns")
        if cells[li] == "":
            raise DataError(f"{t.path} line {line_no} has an empty label (column {_column_name(t, li)}); "
                            "label every example or drop the row")
    columns = [list(c) for c in zip(*(cells for _, cells in t.rows), strict=True)]  # rows to columns, in C
    labels = columns.pop(li)
    names = [h for i, h in enumerate(t.header) if i != li] if t.header is not None else None
    return columns, labels, names


# Cells that mean "no value" (case does not matter): what pandas, R and spreadsheets write for one.
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# one-hot columns at most per text column: its most frequent values; rarer ones (and values first seen in the
# test file) get none set, a shared "other"
MAX_LEVELS = 32
# a text column with more distinct values than this share of its rows is an identifier or free text (a name, a
# ticket number): one-hot columns of values seen once say nothing about unseen rows, so it is dropped
ID_SHARE = 0.5
# ... unless it is free text, several words a cell (a review, a description, a passenger's name with its title):
# then each of its commonest words becomes a 0/1 feature (a bag of words, as AutoGluon and scikit-learn's
# CountVectorizer read text). A word counts where it recurs, in at least WORDS_MIN_ROWS rows and 1 in
# WORDS_ROWS_PER_FEATURE, and a column is text where such words are most of what its cells say: an identifier's
# chunks (a UUID's five) recur only by chance
WORDS_PER_CELL = 3.0  # mean words a cell from which a column may be text
WORDS_RECURRING = 0.5  # the share of its words (each time one is written) that must recur
WORDS_MAX = 512  # features a text column gives at most: its commonest words
WORDS_MIN_ROWS = 2
WORDS_ROWS_PER_FEATURE = 500
_WORD = re.compile(r"\w*[^\W\d_]\w*")  # a word has a letter: 31/01/2020 and 555-0134 have none


def _words(cell: str) -> set[str]:
    return set(_WORD.findall(cell.lower()))


def _vocabulary(cells: list[str], rows: int) -> tuple[str, ...] | None:
    """A free-text column's commonest words (in most rows first, then alphabetical), or None where the column is
    not free text: fewer than :data:`WORDS_PER_CELL` words a cell, or less than :data:`WORDS_RECURRING` of them
    words that recur."""
    said = [_WORD.findall(c.lower()) for c in cells]
    written = sum(len(w) for w in said)
    if not cells or written < WORDS_PER_CELL * len(cells):
        return None
    df: dict[str, int] = {}
    for words in said:
        for w in set(words):
            df[w] = df.get(w, 0) + 1
    least = max(WORDS_MIN_ROWS, math.ceil(rows / WORDS_ROWS_PER_FEATURE))
    recurring = {w for w, k in df.items() if k >= least}
    if sum(w in recurring for words in said for w in words) < WORDS_RECURRING * written:
        return None
    return tuple(sorted(recurring, key=lambda w: (-df[w], w))[:WORDS_MAX])


# a column this much numbers is numeric, and a word in it a typo to fix, not a category: encoded as text, one
# stray word would make its numbers one-hot values (or drop the column as an identifier)
NUMERIC_SHARE = 0.9


def _missing(cell: str) -> bool:
    return cell.lower() in MISSING


@dataclass(frozen=True)
class _Column:
    """How one feature column becomes numbers, fitted on the training file alone (nothing of the test leaks)."""

    name: str
    kind: str  # "number", "text" (one-hot), "words" (a bag of words), "date" (:data:`DATE_FEATURES`) or "dropped"
    fill: float = 0.0  # a number column's training median (a date column's, in days), written where a cell is missing
    flag: bool = False  # a number column with missing training cells: one more 0/1 feature marks them
    levels: tuple[str, ...] = ()  # a text column's one-hot values ("" for a missing cell, where it is frequent),
    # or a words column's words
    order: str = "ymd"  # a date column's order of day, month and year (:data:`DATE_ORDERS`), or its format with the
    # month's name (:data:`NAMED_DATES`)

    @property
    def width(self) -> int:
        return {"number": 1 + self.flag, "text": len(self.levels), "date": len(DATE_FEATURES) + self.flag,
                "words": len(self.levels), "dropped": 0}[self.kind]


# ISO dates, with a time or not (2020-01-31, 2020/01/31, 2020-01-31T12:30:00Z, 2020-01-31 12:30): a column of them
# holds a distinct value in most rows, and was dropped as an identifier; AutoGluon reads them as date parts
_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
                   r"(?:Z|[+-]\d{2}:?\d{2})?")
# dates as people and spreadsheets write them, the year last: 31/01/2020 or 01/31/2020, 31.01.2020, with a time or
# not; which of the first two is the day, the column says (:func:`_date_order`)
_DAY_MONTH = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?:,?[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?")
DATE_FEATURES = ("day number", "month", "weekday", "day of the month", "hour")
DATE_ORDERS = {"ymd": "ISO", "dmy": "the day first", "mdy": "the month first"}
# dates with the month's name (31 Jan 2020, January 31, 2020, 31-Jan-20), read by these formats (any case); a
# column of them is read by the first format that reads every cell
NAMED_DATES = ("%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%b %d %Y", "%B %d %Y", "%d-%b-%Y", "%d-%b-%y",
               "%Y-%b-%d")
_EPOCH = datetime.datetime(1970, 1, 1)


def _date_parts(cell: str, order: str = "ymd") -> tuple[float, float, float, float, float] | None:
    """A date cell as :data:`DATE_FEATURES` (days since 1970 for the trend, the rest for seasons and cycles), or
    None where it is not a date written in ``order`` (:data:`DATE_ORDERS`; a time zone is read, not applied)."""
    if order in NAMED_DATES:
        try:
            when = datetime.datetime.strptime(cell, order)
        except ValueError:
            return None
        return ((when - _EPOCH).total_seconds() / 86400, when.month, when.weekday(), when.day, when.hour)
    m = (_DATE if order == "ymd" else _DAY_MONTH).fullmatch(cell)
    if m is None:
        return None
    if order == "ymd":
        y, mo, d, h, mi, sec = (int(g) if g else 0 for g in m.groups())
    else:
        a, _, b, y, h, mi, sec = (int(g) if g and g.isdigit() else 0 for g in m.groups())
        d, mo = (a, b) if order == "dmy" else (b, a)
    try:
        when = datetime.datetime(y, mo, d, h, mi, sec)
    except ValueError:
        return None
    return ((when - _EPOCH).total_seconds() / 86400, mo, when.weekday(), d, h + mi / 60)


def _date_order(cells: list[str]) -> str | None:
    """The order every one of ``cells`` (none missing) reads as a date in (:data:`DATE_ORDERS`), or None. With the
    year last, a first number above 12 makes the day first, a second above 12 the month first (both: no dates);
    where neither shows, dots (31.01.2020, as in Germany) mean the day first, slashes and dashes the month first,
    as pandas reads them. Dates with the month's name are read by the first of :data:`NAMED_DATES` that reads all."""
    if not cells:
        return None
    if all(_date_parts(c) is not None for c in cells):
        return "ymd"
    found = [_DAY_MONTH.fullmatch(c) for c in cells]
    if any(m is None for m in found):  # 31 Jan 2020, January 31, 2020, or no dates
        return next((f for f in NAMED_DATES if all(_date_parts(c, f) is not None for c in cells)), None)
    day_first = any(int(m.group(1)) > 12 for m in found if m is not None)
    month_first = any(int(m.group(3)) > 12 for m in found if m is not None)
    if day_first and month_first:
        return None
    order = "dmy" if day_first or (not month_first and found[0] is not None and found[0].group(2) == ".") else "mdy"
    return order if all(_date_parts(c, order) is not None for c in cells) else None


def _number(path: Path, line: int, name: str, cell: str) -> float:
    """A number cell's value (NaN where it is missing); infinities are refused."""
    if _missing(cell):
        return math.nan
    v = float(cell)
    if not math.isfinite(v):
        raise DataError(f"{path} line {line} column {name} is {cell}; give finite numbers (leave a missing value "
                        "empty)")
    return v


def _plain_numbers(cells: list[str]) -> np.ndarray | None:
    """A column of finite numbers, every cell present, converted in one numpy call: a 60,000-row pixel table has 47M
    cells, which the checks cell by cell take minutes over. None where any cell needs those checks (a missing cell,
    a word, an infinity)."""
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        return None
    return values if np.isfinite(values).all() else None


def _fit_columns(t: _Table, columns: list[list[str]],
                 names: list[str] | None) -> tuple[list[_Column], list[np.ndarray | None]]:
    """Each column's encoding: numbers (missing cells filled with the median and flagged) or one-hot text; and each
    column's values where every cell is a plain number (:func:`_plain_numbers`, for :func:`_encode` to reuse)."""
    out: list[_Column] = []
    plains: list[np.ndarray | None] = []
    rows = len(t.rows)
    for j, cells in enumerate(columns):
        # by its header, else its position (messages say "column 3"); an empty header ('' said nothing) both
        name = str(j + 1) if names is None else repr(names[j]) if names[j] else f"{j + 1} (unnamed)"
        plain = _plain_numbers(cells)
        plains.append(plain)
        if plain is not None:
            out.append(_number_column(name, names[j] if names is not None else None, plain, rows))
            continue
        present = [(r, c) for r, c in enumerate(cells) if not _missing(c)]
        words = [(r, c) for r, c in present if not _is_number(c)]
        if words and len(words) <= (1 - NUMERIC_SHARE) * len(present):
            r, c = words[0]
            raise DataError(f"{t.path} line {t.rows[r][0]} column {name} holds {c[:40]!r}, not a number, in a column "
                            f"of numbers; fix the cell or leave it empty (a missing value)")
        if not words:
            values = np.array([_number(t.path, t.rows[r][0], name, c) for r, c in enumerate(cells)])
            out.append(_number_column(name, names[j] if names is not None else None, values, rows))
            continue
        order = _date_order([c for _, c in present])
        if order is not None:
            days = [parts[0] for _, c in present if (parts := _date_parts(c, order)) is not None]
            out.append(_Column(name, "date", float(np.median(days)), len(present) < rows, order=order))
            continue
        counts: dict[str, int] = {}
        for c in cells:
            key = "" if _missing(c) else c
            counts[key] = counts.get(key, 0) + 1
        if len(counts) > max(2.0, ID_SHARE * rows):
            vocabulary = _vocabulary([c for _, c in present], rows)
            out.append(_Column(name, "dropped") if vocabulary is None else _Column(name, "words", levels=vocabulary))
            continue
        ranked = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_LEVELS]
        out.append(_Column(name, "text", levels=tuple(ranked)))
    return out, plains


def _number_column(name: str, header: str | None, values: np.ndarray, rows: int) -> _Column:
    """A number column's encoding from its values (NaN where missing); pandas' saved row index is dropped."""
    seen = values[~np.isnan(values)]
    unnamed = header is not None and (header == "" or header.startswith("Unnamed: "))
    if unnamed and len(seen) == rows and (seen == np.round(seen)).all() and len(np.unique(seen)) == rows:
        return _Column(name, "dropped")  # pandas' to_csv wrote its row index: a row number, no feature
    return _Column(name, "number", float(np.median(seen)) if len(seen) else 0.0, bool(len(seen) < rows and len(seen)))


def _encode(t: _Table, columns: list[list[str]], spec: list[_Column],
            plains: list[np.ndarray | None] | None = None) -> np.ndarray:
    """The feature matrix of ``columns`` under ``spec`` (fitted on the training file); ``plains``: the columns'
    values as :func:`_fit_columns` converted them, for the training file (not converted twice)."""
    x = np.zeros((len(t.rows), sum(c.width for c in spec)), dtype=np.float64)
    at = 0
    for j, (cells, col) in enumerate(zip(columns, spec, strict=True)):
        plain = (plains[j] if plains is not None else _plain_numbers(cells)) if col.kind == "number" else None
        if plain is not None:  # every cell a number: no cell to fill (a flag column stays 0)
            x[:, at] = plain
        elif col.kind == "number":
            for r, cell in enumerate(cells):
                if not (_missing(cell) or _is_number(cell)):
                    raise DataError(f"{t.path} line {t.rows[r][0]} column {col.name} holds {cell[:40]!r}, but the "
                                    "column is numeric in the training file; give a number or leave it empty")
                v = _number(t.path, t.rows[r][0], col.name, cell)
                x[r, at] = col.fill if math.isnan(v) else v
                if col.flag:
                    x[r, at + 1] = float(math.isnan(v))
        elif col.kind == "date":  # a missing (or, in a test file, unreadable) cell: the median date, flagged
            fill = _date_parts((_EPOCH + datetime.timedelta(days=col.fill)).strftime("%Y-%m-%d %H:%M"))
            for r, cell in enumerate(cells):
                parts = _date_parts(cell, col.order)
                x[r, at:at + len(DATE_FEATURES)] = parts or fill
                if col.flag:
                    x[r, at + len(DATE_FEATURES)] = float(parts is None)
        elif col.kind == "words":  # words first seen here set none
            index = {v: k for k, v in enumerate(col.levels)}
            for r, cell in enumerate(cells):
                for w in _words(cell):
                    k = index.get(w)
                    if k is not None:
                        x[r, at + k] = 1.0
        elif col.kind == "text":
            index = {v: k for k, v in enumerate(col.levels)}
            for r, cell in enumerate(cells):
                k = index.get("" if _missing(cell) else cell)
                if k is not None:
                    x[r, at + k] = 1.0
        at += col.width
    return x


def _label_note(t: _Table, label_column: str | int | None) -> str:
    """Which column is predicted, and why that one: a wrong default (the last column) must not pass unseen."""
    width = _width(t)
    li = _label_index(t, label_column, width)
    how = ("as given" if label_column is not None else "by its name" if _named_label(t) == li else
           "the last column" if li == width - 1 else
           "the first: the last holds measurements, the first classes, as the UCR archive's files do")
    return (f"{t.path.name}: the label is column {_column_name(t, li)} (of {width} columns: {how}); "
            f"{'' if label_column is not None else 'give --label (data.label_column) to predict another, '}"
            f"the rest are features")


def _encoding_summary(path: Path, spec: list[_Column], reformatted: list[str] | None = None) -> str | None:
    """One line on what the encoding did beyond reading numbers, or None where every column was complete numbers.
    ``reformatted``: the names of feature columns whose numbers were written for people (:func:`_number_formats`)."""
    text = [c for c in spec if c.kind == "text"]
    dates = [c for c in spec if c.kind == "date"]
    flagged = [c for c in spec if c.flag]
    words = [c for c in spec if c.kind == "words"]
    dropped = [c for c in spec if c.kind == "dropped"]
    parts = []
    if reformatted:
        parts.append(f"{', '.join(reformatted)} read as numbers written for people (decimal commas, grouped "
                     "thousands, currency or percent signs)")
    if text:
        parts.append(f"{len(text)} text column(s) one-hot encoded into {sum(c.width for c in text)} features "
                     f"(at most {MAX_LEVELS} values each)")
    if dates:
        orders = {**DATE_ORDERS, **dict.fromkeys(NAMED_DATES, "the month by its name")}
        parts.append(f"{', '.join(c.name + ('' if c.order == 'ymd' else f' ({orders[c.order]})') for c in dates)}"
                     f" read as dates: {', '.join(DATE_FEATURES)}")
    if words:
        parts.append(f"{', '.join(c.name for c in words)} read as free text: a 0/1 feature for each of its "
                     f"{' and '.join(str(len(c.levels)) for c in words)} commonest words")
    if flagged:
        parts.append(f"missing numbers in {len(flagged)} column(s) filled with the median and flagged")
    if dropped:
        parts.append(f"{', '.join(c.name for c in dropped)} dropped (a distinct value in most rows, and no words "
                     "that recur: an identifier or a saved row index)")
    return f"{path.name}: {'; '.join(parts)}" if parts else None


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
        if not math.isfinite(v) or v != int(v):
            raise DataError(f"{path} has label {c!r}, not a whole number; give whole-number or text labels (or "
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


def table_pair(folder: Path) -> tuple[Path, Path | None] | None:
    """The (training, test or None) tables of a folder: train.csv and test.csv (or .tsv, either gzipped), or one
    NAME_TRAIN.tsv and NAME_TEST.tsv (the UCR archive's; .csv too, any case: Kaggle's fashion-mnist_train.csv and
    fashion-mnist_test.csv); None where it holds no training table."""
    tables = sorted(q for q in folder.iterdir() if q.is_file() and table_stem(q) is not None)

    def suffix(q: Path) -> str:
        return q.name[len(table_stem(q) or ""):].lower()

    plain = [q for q in tables if table_stem(q) == "train"]
    if plain:
        train = min(plain, key=lambda q: TABLE_SUFFIXES.index(suffix(q)))
        test = folder / f"test{train.name[len('train'):]}"
        return train, test if test.is_file() else None
    # NAME_TRAIN.tsv (the UCR archive), name_train.csv (Kaggle's fashion-mnist_train.csv): any case
    named = [q for q in tables if (table_stem(q) or "").lower().endswith("_train")]
    if len(named) == 1:
        stem = table_stem(named[0]) or ""
        tests = [q for q in tables if suffix(q) == suffix(named[0])
                 and (table_stem(q) or "").lower() == stem[: -len("_train")].lower() + "_test"]
        return named[0], tests[0] if len(tests) == 1 else None
    return None


def _parse_inputs(t: _Table, width: int, li: int, names: list[str] | None,
                  train_name: str) -> tuple[list[list[str]], list[str] | None]:
    """(feature cells column by column, label cells or None) of a table of new examples to predict: the training
    file's feature columns (``width`` columns with the label at ``li``), with its label column (scored where every
    label is given) or without it."""
    own = _width(t)
    if own not in (width, width - 1):
        raise DataError(f"{t.path} has {own} columns but {train_name} has {width} ({width - 1} features and the "
                        "label); give the training file's feature columns, with or without the label")
    labelled = own == width
    for line_no, cells in t.rows:
        if len(cells) != own:
            raise DataError(f"{t.path} line {line_no} has {len(cells)} fields but "
                            f"{'the header has' if t.header else 'the first row has'} {own}; "
                            "give every row the same columns")
    columns = [list(c) for c in zip(*(cells for _, cells in t.rows), strict=True)]
    labels = columns.pop(li) if labelled else None
    if names is not None and t.header is not None:
        got = [h for i, h in enumerate(t.header) if not labelled or i != li]
        if got != names:
            raise DataError(f"{t.path} has feature columns {got} but {train_name} has {names}; give the training "
                            "file's columns")
    if labels is not None and any(_missing(c) for c in labels):  # a label column left empty: nothing to score
        labels = None
    return columns, labels


def read_table_inputs(path: str | os.PathLike[str], reader: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """New rows (features, and labels or None) encoded by the column encoding a :func:`read_csv` stored in
    ``reader``: no training file is read. Labels are class indices into the stored classes, or raw values (whole
    numbers, or a regression's targets) where the training labels were numbers."""
    table = _read_table(Path(path).expanduser())
    names = reader["names"]
    cols, labels = _parse_inputs(table, int(reader["width"]), int(reader["label"]),
                                 None if names is None else list(names), str(reader["file"]))
    spec = [_Column(c["name"], c["kind"], float(c["fill"]), bool(c["flag"]), tuple(c["levels"]), c["order"])
            for c in reader["columns"]]
    x = _encode(table, cols, spec)
    if labels is None:
        return x, None
    if reader["regression"]:
        return x, _targets(table.path, labels)
    classes = reader.get("classes")
    return x, _encode_labels(table.path, labels, None if classes is None else {c: i for i, c in enumerate(classes)})


def read_csv(path: str | os.PathLike[str], label_column: str | int | None = None, task: str = "auto",
             test_fraction: float | None = None, inputs: str | os.PathLike[str] | None = None) -> RawSplits:
    """A .csv (or tab-separated .tsv; either may be gzipped) file (train only) or a directory holding train.csv and
    test.csv (or the UCR archive's NAME_TRAIN.tsv and NAME_TEST.tsv: :func:`table_pair`). Cells may be separated by
    commas, semicolons or tabs, or spaces where the first line has none of those; a table may also be named .txt,
    .data or .dat (:data:`TABLE_SUFFIXES`); without commas between cells, numbers may have a decimal comma; they
    may group thousands and carry a currency or percent sign, dates may put the year last (:func:`_number_formats`,
    :func:`_date_order`).

    With ``task`` ``regression``, or ``auto`` and numeric labels that :func:`~nasforge.data.base.infer_task` reads
    as targets (not all whole numbers, or too many rare values to be classes), the labels are float targets
    (the label column's name, if the file has a header, names the target).
    Feature columns: numbers as they are, a missing cell (empty, NA, NaN, null, None, ?) filled with the training
    column's median and marked in one more 0/1 feature; text one-hot over its :data:`MAX_LEVELS` most frequent
    training values; a text column with a distinct value in most rows dropped as an identifier, and so is an unnamed
    column of distinct whole numbers (the row index ``pandas.DataFrame.to_csv`` writes by default).
    ``test_fraction``: where there is no test file, that share of the rows is held out as the test split
    (:func:`hold_out`), before the encoding is fitted, so nothing of it leaks into the training features.
    ``inputs``: a table of new examples (the training file's feature columns, the label column optional), encoded
    by the encoding fitted on the same training rows into :attr:`RawSplits.inputs` (``nasforge predict``), with
    its labels where every row has one.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        pair = table_pair(p)
        if pair is None:
            raise DataError(f"{p} is a directory without train.csv; add train.csv (and test.csv) or point "
                            "data.path at a .csv file")
        train_path, test_path = pair
        test_table = _read_table(test_path) if test_path is not None else None
    else:
        train_path, test_table = p, None
    train_table = _read_table(train_path)
    train_cols, lab_train, names = _parse(train_table, label_column)
    test_cols: list[list[str]] | None = None
    lab_test: list[str] | None = None
    if test_table is not None:  # the label column the training file's was found to be, not found afresh
        width = _width(train_table)
        test_cols, lab_test, test_names = _parse(test_table, _label_index(train_table, label_column, width)
                                                 if label_column is None else label_column)
        if names is not None and test_names is not None and test_names != names:
            raise DataError(f"{test_table.path} has feature columns {test_names} but {train_path} has {names}; "
                            "give both files the same columns")
        if len(test_cols) != len(train_cols):
            raise DataError(f"{test_table.path} has {len(test_cols)} features but {train_path} has "
                            f"{len(train_cols)}; give both files the same columns")
    every = lab_train + (lab_test or [])
    regression = task == "regression" or (task == "auto" and all(_is_number(c) for c in every)
                                          and infer_task(np.array([float(c) for c in every])) == "regression")
    if test_table is None and test_fraction:
        keep, held = hold_out(np.array(lab_train), test_fraction, regression)
        test_table = dataclasses.replace(train_table, rows=[train_table.rows[i] for i in held])
        train_table = dataclasses.replace(train_table, rows=[train_table.rows[i] for i in keep])
        test_cols = [[c[i] for i in held] for c in train_cols]
        train_cols = [[c[i] for i in keep] for c in train_cols]
        lab_test, lab_train = [lab_train[i] for i in held], [lab_train[i] for i in keep]
    spec, plains = _fit_columns(train_table, train_cols, names)
    label_at = _label_index(train_table, label_column, _width(train_table))
    mapping: dict[str, int] | None = None
    classes: tuple[str, ...] | None = None
    if not regression and not all(_is_number(c) for c in lab_train):
        classes = tuple(sorted(set(lab_train)))
        mapping = {c: i for i, c in enumerate(classes)}
    reader = {"source": "csv", "file": train_path.name, "width": _width(train_table), "label": label_at,
              "names": names, "columns": [dataclasses.asdict(c) for c in spec], "regression": regression,
              "classes": None if classes is None else list(classes)}
    # new rows: after the task and the encoding are fitted as in training, read as predict reads them later
    new = None if inputs is None else read_table_inputs(inputs, reader)
    x_train = _encode(train_table, train_cols, spec, plains)
    x_test = None if test_table is None or test_cols is None else _encode(test_table, test_cols, spec)
    if x_train.shape[1] == 0:
        raise DataError(f"{train_path} has no usable feature column (every one was dropped as an identifier); "
                        "give at least one feature with repeated values")
    summary = _encoding_summary(train_path, spec, [_column_name(train_table, i) for i in train_table.reformatted
                                                   if i != label_at])
    notes = (_label_note(train_table, label_column), *(() if summary is None else (summary,)))
    if summary is not None:
        log.info(summary)
    if regression:
        name = train_table.header[label_at] if train_table.header else None
        return RawSplits(x_train, _targets(train_path, lab_train), x_test,
                         None if test_table is None or lab_test is None else _targets(test_table.path, lab_test),
                         (name,) if name else None, notes, new, reader)
    y_train = _encode_labels(train_path, lab_train, mapping)
    y_test = None
    if test_table is not None and lab_test is not None:
        y_test = _encode_labels(test_table.path, lab_test, mapping)
    return RawSplits(x_train, y_train, x_test, y_test, classes, notes, new, reader)
