"""Dataset loaders: real Fashion-MNIST slice, file formats written here in tmp_path, offline downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import threading
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from nasforge.data import DATA_SOURCES, Dataset, load_dataset
from nasforge.data import download as dl
from nasforge.data import idx as idxmod
from nasforge.data.base import infer_layout
from nasforge.data.cifar import read_cifar
from nasforge.data.files import read_csv
from nasforge.data.registry import stratified_subset
from nasforge.errors import DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist absent)",
)


# ------------------------------------------------------------------------------------------ helpers


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = idxmod.IDX_DTYPES[code]
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def write_idx(path: Path, arr: np.ndarray, code: int = 0x08) -> Path:
    data = idx_bytes(arr, code)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_idx_dir(d: Path, *, n_train: int = 60, n_test: int = 15, gz: bool = False, k: int = 3) -> Path:
    """A tiny IDX set: k classes, 6x6 uint8 images."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        if n == 0:
            continue
        write_idx(d / f"{prefix}-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n, 6, 6), dtype=np.uint8))
        write_idx(d / f"{prefix}-labels-idx1-ubyte{sfx}", (np.arange(n) % k).astype(np.uint8))
    return d


def class_counts(y: torch.Tensor, k: int) -> np.ndarray:
    return np.bincount(y.numpy(), minlength=k)


# ------------------------------------------------------------------------------ real Fashion-MNIST


@pytest.fixture(scope="module")
def fashion() -> Dataset:
    return load_dataset("fashion_mnist", limit=2000)


@needs_fashion
def test_fashion_slice_shapes_and_classes(fashion: Dataset) -> None:
    assert fashion.name == "fashion_mnist"
    assert fashion.input_shape == (1, 28, 28)
    assert fashion.x_train.dtype == torch.float32 and fashion.y_train.dtype == torch.int64
    assert len(fashion.x_train) + len(fashion.x_val) == 2000
    assert fashion.classes[0] == "T-shirt/top" and fashion.classes[-1] == "Ankle boot"
    assert fashion.n_classes == 10
    # Normalised on the training part: mean ~0, std ~1.
    assert abs(float(fashion.x_train.mean())) < 1e-3
    assert abs(float(fashion.x_train.std()) - 1) < 1e-2


@needs_fashion
def test_fashion_split_is_stratified(fashion: Dataset) -> None:
    train, val = class_counts(fashion.y_train, 10), class_counts(fashion.y_val, 10)
    assert (val > 0).all() and (train > 0).all()
    # The slice is stratified (Fashion-MNIST is balanced), and so is the 10% validation split.
    np.testing.assert_allclose(train + val, 200, atol=2)
    np.testing.assert_allclose(val / (train + val), 0.1, atol=0.02)


@needs_fashion
def test_fashion_test_split_is_sealed(fashion: Dataset) -> None:
    view = fashion.search_view()
    assert not view.has_test
    with pytest.raises(DataError, match=r"no test split"):
        view.open_test()
    before = fashion.test_reads
    x_test, y_test = fashion.open_test()
    fashion.open_test()
    assert fashion.test_reads == before + 2
    assert x_test.shape == (400, 1, 28, 28) and len(y_test) == 400
    assert (class_counts(y_test, 10) > 0).all()
    assert view.test_reads == 0  # the view has no test split to read


@needs_fashion
def test_fashion_is_reproducible(fashion: Dataset) -> None:
    again = load_dataset("fashion-mnist", limit=2000)  # dashes accepted too
    assert torch.equal(again.x_train, fashion.x_train) and torch.equal(again.y_val, fashion.y_val)
    other = load_dataset("fashion_mnist", limit=2000, seed=1)
    assert not torch.equal(other.x_val, fashion.x_val)


# --------------------------------------------------------------------------- locating (Fashion-)MNIST


@pytest.fixture
def no_default_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """HOME in tmp_path, no $NASFORGE_DATA_DIR, no system directories."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(idxmod.ENV_VAR, raising=False)
    monkeypatch.setattr(idxmod, "SYSTEM_DIRS", {"fashion_mnist": (tmp_path / "nowhere",), "mnist": ()})
    return home


def test_fashion_missing_names_places_and_fix(no_default_dirs: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("fashion_mnist")
    msg = str(err.value)
    assert "\n" not in msg
    assert str(no_default_dirs / ".cache" / "nasforge" / "fashion_mnist") in msg
    assert "NASFORGE_DATA_DIR" in msg and "nowhere" in msg
    assert "dataset-fashion-mnist" in msg and "nasforge download fashion-mnist" in msg and "data.path" in msg


def test_env_dir_then_cache(no_default_dirs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_idx_dir(no_default_dirs / ".cache" / "nasforge" / "mnist", n_train=40, k=4)
    assert len(load_dataset("mnist").y_train) + len(load_dataset("mnist").y_val) == 40
    make_idx_dir(tmp_path / "env" / "mnist", n_train=50, gz=True)
    monkeypatch.setenv(idxmod.ENV_VAR, str(tmp_path / "env"))
    ds = load_dataset("mnist")
    assert len(ds.y_train) + len(ds.y_val) == 50  # $NASFORGE_DATA_DIR wins over the cache
    assert ds.classes == tuple(str(i) for i in range(10)) and ds.input_shape == (1, 6, 6)


def test_explicit_path_is_used_alone(no_default_dirs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.path .*missing.* is not a directory"):
        load_dataset("fashion_mnist", tmp_path / "missing")
    d = make_idx_dir(tmp_path / "fm", n_test=0)
    with pytest.raises(DataError, match=r"no t10k-images-idx3-ubyte\[\.gz\].*add the test files"):
        load_dataset("fashion_mnist", d)


# ------------------------------------------------------------------------------------------- IDX


def test_idx_dir_good(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "mine", gz=True)
    # Mixed naming: a plain, dotted test-labels file instead of the .gz one.
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(d / "t10k-labels.idx1-ubyte", (np.arange(15) % 3).astype(np.uint8))
    ds = load_dataset("idx", d, val_fraction=0.2)
    assert ds.name == "mine" and ds.input_shape == (1, 6, 6) and ds.n_classes == 3
    assert len(ds.y_train) == 48 and len(ds.y_val) == 12
    assert (class_counts(ds.y_val, 3) == 4).all()
    x_test, _ = ds.open_test()
    assert x_test.shape == (15, 1, 6, 6)
    flat = load_dataset("idx", d, layout="tabular")
    assert flat.input_shape == (36,)


def test_idx_without_test_pair(tmp_path: Path) -> None:
    ds = load_dataset("idx", make_idx_dir(tmp_path / "d", n_test=0))
    assert not ds.has_test


def test_idx_other_dtypes_roundtrip(tmp_path: Path) -> None:
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4) - 7
    assert np.array_equal(idxmod.read_idx(write_idx(tmp_path / "a.idx", a, code=0x0B)), a)
    f = np.linspace(0, 1, 6, dtype=np.float64).reshape(6)
    got = idxmod.read_idx(write_idx(tmp_path / "f.idx.gz", f, code=0x0E))
    assert got.dtype == np.float64 and np.array_equal(got, f)


def test_idx_truncated(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "d")
    p = d / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataError) as err:
        load_dataset("idx", d)
    msg = str(err.value)
    assert str(p) in msg and "truncated" in msg and f"expected {16 + 60 * 36} bytes, got 100" in msg
    assert "re-download" in msg


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "d", gz=True)
    p = d / "train-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: the gzip data is truncated; re-download"):
        load_dataset("idx", d)
    p.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"named \.gz but is not gzip data"):
        load_dataset("idx", d)


def test_idx_trailing_bytes_and_header_truncation(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(idx_bytes(np.zeros(5, np.uint8)) + b"\0\0")
    with pytest.raises(DataError, match=r"2 unexpected bytes after the data"):
        idxmod.read_idx(p)
    p.write_bytes(idx_bytes(np.zeros((2, 2, 2), np.uint8))[:9])
    with pytest.raises(DataError, match=r"truncated inside the header \(9 of 16 bytes\)"):
        idxmod.read_idx(p)
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError, match=r"not even an IDX header"):
        idxmod.read_idx(p)


def test_idx_wrong_magic(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "d")
    p = d / "t10k-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x56\x78" + p.read_bytes()[4:])
    with pytest.raises(DataError) as err:
        load_dataset("idx", d)
    assert str(p) in str(err.value) and "not an IDX file (magic 0x12345678" in str(err.value)


def test_idx_mismatched_counts(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "train-labels-idx1-ubyte", (np.arange(59) % 3).astype(np.uint8))
    with pytest.raises(DataError, match=r"has 60 images but .*train-labels-idx1-ubyte has 59 labels; use files from"):
        load_dataset("idx", d)


def test_idx_swapped_and_missing_files(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "train-labels-idx1-ubyte", np.zeros((60, 6, 6), np.uint8))
    with pytest.raises(DataError, match=r"label files must be 1-D"):
        load_dataset("idx", d)
    (d / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"no train-labels-idx1-ubyte"):
        load_dataset("idx", d)
    with pytest.raises(DataError, match=r"needs data.path"):
        load_dataset("idx")


def test_idx_image_size_differs_between_splits(tmp_path: Path) -> None:
    d = make_idx_dir(tmp_path / "d")
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((15, 5, 5), np.uint8))
    with pytest.raises(DataError, match=r"^\S+d: test examples have shape .* give both splits the same shape"):
        load_dataset("idx", d)


# ----------------------------------------------------------------------------------------- CIFAR


_PurePickler: Any = pickle._Pickler


class Py2Pickler(_PurePickler):
    """Pickles like Python 2 did for the Toronto files: bytes as str (BINSTRING), numpy.core module paths."""

    dispatch: ClassVar[dict[type, Callable[..., None]]] = dict(_PurePickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_cifar10(d: Path, per_batch: int = 6, names: bool = True, py2: bool = True) -> Path:
    """Tiny CIFAR-10 batches, pickled as by Python 2 (the real files) or by Python 3 with protocol 2."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    dumps: Callable[[Any], bytes] = py2_pickle if py2 else (lambda o: pickle.dumps(o, protocol=2))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [b"x.png"] * per_batch,
        }
        (d / name).write_bytes(dumps(batch))
    if names:
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}
        (d / "batches.meta").write_bytes(dumps(meta))
    return d


@pytest.mark.parametrize("py2", [True, False])
def test_cifar10_good(tmp_path: Path, py2: bool) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py", py2=py2)
    ds = load_dataset("cifar10", tmp_path)  # the parent of the extracted directory works too
    assert ds.input_shape == (3, 32, 32) and ds.classes == tuple(f"c{i}" for i in range(10))
    assert len(ds.y_train) + len(ds.y_val) == 30
    assert ds.open_test()[0].shape == (6, 3, 32, 32)


def test_cifar10_pixel_layout(tmp_path: Path) -> None:
    d = write_cifar10(tmp_path / "c", names=False)
    # A row is 1024 red, 1024 green, 1024 blue values, each plane row-major 32x32.
    data = np.zeros((6, 3072), np.uint8)
    data[:, :1024] = 200
    data[:, 2048:] = 10
    data[0, 1] = 7  # red, row 0, column 1
    data[0, 1024 + 32] = 9  # green, row 1, column 0
    (d / "data_batch_1").write_bytes(py2_pickle({b"data": data, b"labels": [0, 1, 2, 0, 1, 2]}))
    x_train, _, _, _, classes = read_cifar(d, 10)
    assert x_train.shape == (30, 3, 32, 32) and x_train.dtype == np.uint8
    assert x_train[0, 0, 0, 1] == 7 and x_train[0, 1, 1, 0] == 9
    assert x_train[1, 0].min() == 200 and x_train[1, 2].max() == 10
    assert classes == tuple(str(i) for i in range(10))  # no batches.meta: numbered classes


def test_cifar100_good(tmp_path: Path) -> None:
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(2)
    for name, n in (("train", 200), ("test", 50)):
        labels = list(range(100)) * (n // 100) if n >= 100 else [int(v) for v in rng.integers(0, 100, n)]
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": labels,
                 "coarse_labels": [0] * n}
        (d / name).write_bytes(pickle.dumps(batch))  # a Python 3 pickle with str keys works too
    (d / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"f{i}" for i in range(100)]}))
    ds = load_dataset("cifar100", d, limit=120)
    assert ds.n_classes == 100 and ds.classes[5] == "f5" and ds.input_shape == (3, 32, 32)
    assert len(ds.y_train) + len(ds.y_val) == 120 and len(ds.open_test()[1]) == 24


class _Evil:
    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (os.getcwd, ())


def test_cifar_bad_batches(tmp_path: Path) -> None:
    d = write_cifar10(tmp_path / "c")
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", d)
    msg = str(err.value)
    assert "data_batch_3" in msg and "refusing to load global" in msg and "re-download" in msg
    (d / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=r"data_batch_3: not a CIFAR python batch"):
        load_dataset("cifar10", d)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}))
    with pytest.raises(DataError, match=r"data has shape \(4, 100\), expected \(N, 3072\)"):
        load_dataset("cifar10", d)
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}))
    with pytest.raises(DataError, match=r"4 images but labels of shape"):
        load_dataset("cifar10", d)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"lacks data_batch_3; re-download"):
        load_dataset("cifar10", d)
    with pytest.raises(DataError, match=r"needs data.path"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match=r"extract it"):
        load_dataset("cifar10", tmp_path / "cifar-10-python.tar.gz")


# ------------------------------------------------------------------------------------------- npz


def test_npz_good(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    p = tmp_path / "blobs.npz"
    np.savez(p, x_train=rng.normal(size=(80, 5)), y_train=np.arange(80) % 4, x_test=rng.normal(size=(20, 5)),
             y_test=np.arange(20) % 4, classes=np.array(["a", "b", "c", "d"]))
    ds = load_dataset("npz", p, limit=40)
    assert ds.name == "blobs" and ds.input_shape == (5,) and ds.classes == ("a", "b", "c", "d")
    assert len(ds.y_train) + len(ds.y_val) == 40 and len(ds.open_test()[1]) == 8
    seq = load_dataset("npz", p, layout="sequence")
    assert seq.input_shape == (1, 5)


def test_test_fraction_holds_out_a_test_split_only_where_there_is_none(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.random.default_rng(0).normal(size=(100, 5)), y_train=np.arange(100) % 4)
    assert not load_dataset("npz", p).has_test
    ds = load_dataset("npz", p, test_fraction=0.2)
    x_test, y_test = ds.open_test()
    assert ds.test_examples == 20 and (class_counts(y_test, 4) == 5).all()  # stratified
    assert len(ds.y_train) + len(ds.y_val) == 80
    again = load_dataset("npz", p, test_fraction=0.2, seed=7)

    def raw(d: Dataset, x: torch.Tensor) -> torch.Tensor:  # normalised with the seed's training part: undone
        assert d.preprocess is not None
        return x * torch.tensor(d.preprocess.std) + torch.tensor(d.preprocess.mean)

    assert torch.allclose(raw(again, again.open_test()[0]), raw(ds, x_test), atol=1e-5)  # not moved by the seed
    rows = csv_rows(40)
    csv = load_dataset("csv", write_text(tmp_path / "t.csv", rows), test_fraction=0.25)
    assert csv.test_examples == 10 and len(csv.y_train) + len(csv.y_val) == 30
    d = tmp_path / "tab"
    d.mkdir()
    write_text(d / "train.csv", csv_rows(40))
    write_text(d / "test.csv", csv_rows(10))
    assert load_dataset("csv", d, test_fraction=0.5).test_examples == 10  # a test file wins
    with pytest.raises(DataError, match=r"test_fraction must be between 0 and 1, got 1.0"):
        load_dataset("npz", p, test_fraction=1.0)


@pytest.mark.parametrize(("shape", "layout"), [
    ((5, 1, 128), "sequence"), ((5, 128, 3), "sequence"), ((5, 16, 64), "sequence"), ((5, 28, 28), "image"),
    ((5, 8, 8), "image"), ((5, 16, 32), "image"), ((5, 2, 16), "image"), ((5, 12), "tabular"),
    ((5, 3, 32, 32), "image"), ((5, 2, 2, 2, 2), "auto"),
])
def test_infer_layout(shape: tuple[int, ...], layout: str) -> None:
    assert infer_layout(shape)[0] == layout


def test_flat_features_whose_neighbours_correlate_are_images_or_sequences(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer, load_digits

    digits = load_digits()
    p = tmp_path / "flat.npz"
    np.savez(p, x_train=digits.data, y_train=digits.target)  # 64 columns: 8x8 images, row by row
    ds = load_dataset("npz", p)
    assert ds.input_shape == (1, 8, 8) and "read as 8x8 grey images" in ds.notes[0]
    assert load_dataset("npz", p, layout="tabular").input_shape == (64,)
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    t = np.linspace(0, 1, 100)
    waves = np.sin(2 * np.pi * (2 + 3 * y[:, None]) * t + rng.uniform(0, 6, (300, 1)))
    waves += 0.3 * rng.normal(size=(300, 100))
    np.savez(p, x_train=waves, y_train=y)
    ds = load_dataset("npz", p)
    assert ds.input_shape == (1, 100) and "read as 100-step sequences" in ds.notes[0]
    cancer = load_breast_cancer()  # related columns correlate wherever they stand: a table
    square = np.hstack([cancer.data, cancer.data[:, ::-1], cancer.data[:, :4]])  # 64 columns, not pixels
    for x in (cancer.data, square, rng.normal(size=(300, 64))):
        np.savez(p, x_train=x, y_train=np.arange(len(x)) % 2)
        ds = load_dataset("npz", p)
        assert ds.input_shape == (x.shape[1],) and not ds.notes


def test_signals_in_an_npz_are_sequences_not_grey_images(tmp_path: Path) -> None:
    p = tmp_path / "s.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x_train=rng.normal(size=(60, 128, 3)), y_train=np.arange(60) % 3,
             x_test=rng.normal(size=(12, 128, 3)), y_test=np.arange(12) % 3)
    ds = load_dataset("npz", p)
    assert ds.input_shape == (3, 128) and ds.open_test()[0].shape == (12, 3, 128)  # channels last, moved first
    assert len(ds.notes) == 1 and "3 channel(s) (axis last) of 128-step sequences" in ds.notes[0]
    assert load_dataset("npz", p, layout="image").input_shape == (1, 128, 3) and not load_dataset(
        "npz", p, layout="image").notes


def test_npz_with_scikit_learn_names_and_text_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    p = tmp_path / "xy.npz"
    np.savez(p, X=x, y=np.arange(40) % 2)  # scikit-learn's names, no test split
    ds = load_dataset("npz", p, test_fraction=0.25)
    assert ds.input_shape == (3,) and ds.n_classes == 2 and ds.test_examples == 10
    np.savez(p, X=x, y=(np.arange(40) % 2)[:, None])  # an (N, 1) column of labels: held out all the same
    ds = load_dataset("npz", p, test_fraction=0.25)
    assert ds.n_classes == 2 and ds.test_examples == 10 and len(ds.y_train) + len(ds.y_val) == 30
    words = np.array(["dog", "cat", "emu", "cat"] * 10)
    np.savez(p, x_train=x, y_train=words, x_test=x[:4], y_test=words[:4].astype("S"))  # bytes in the test split
    ds = load_dataset("npz", p)
    assert ds.classes == ("cat", "dog", "emu") and ds.open_test()[1].tolist() == [1, 0, 2, 0]
    np.savez(p, x_train=x, y_train=words, classes=np.array(["emu", "dog", "cat"]))  # the archive's class order
    ds = load_dataset("npz", p)
    assert ds.classes == ("emu", "dog", "cat")
    assert sorted(set(ds.y_train.tolist()) | set(ds.y_val.tolist())) == [0, 1, 2]
    np.savez(p, x_train=x, y_train=words, x_test=x[:2], y_test=np.array(["cat", "owl"]))
    with pytest.raises(DataError, match=r"y_test has labels 'owl' not in y_train; give labels from the training"):
        load_dataset("npz", p)
    np.savez(p, x=x, X=x, y=words)
    with pytest.raises(DataError, match=r"has X and x: which are the features\? save them as x_train / y_train"):
        load_dataset("npz", p)
    np.savez(p, x_train=x, y_train=words, x_test=x[:2], y_test=np.array([0, 1]))
    with pytest.raises(DataError, match=r"one of y_train and y_test holds text labels and the other numbers"):
        load_dataset("npz", p)


def test_one_hot_labels_are_read_as_class_indices(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    p = tmp_path / "oh.npz"
    np.savez(p, x_train=rng.normal(size=(40, 3)), y_train=np.eye(4)[y], x_test=rng.normal(size=(8, 3)),
             y_test=np.eye(4, dtype=np.float32)[y[:8]])  # Keras' to_categorical writes float32
    ds = load_dataset("npz", p)
    assert ds.n_classes == 4 and ds.open_test()[1].tolist() == y[:8].tolist()
    assert "one-hot labels (4 columns) read as class indices" in ds.notes[0]
    np.savez(p, x_train=rng.normal(size=(40, 3)), y_train=np.eye(4)[y] * 0.5)  # not one-hot: still refused
    with pytest.raises(DataError, match=r"have shape \(40, 4\): give one"):
        load_dataset("npz", p)


def test_npz_nan(tmp_path: Path) -> None:
    # a table: filled with the training median and flagged, as a CSV's missing cells are
    x = np.arange(60, dtype=np.float64).reshape(20, 3)
    x[4, 1] = np.nan
    p = tmp_path / "d.npz"
    x_test = np.array([[1.0, 2.0, np.nan], [np.nan, 5.0, 6.0]])
    np.savez(p, x_train=x, y_train=np.arange(20) % 2, x_test=x_test, y_test=np.array([0, 1]))
    ds = load_dataset("npz", p)
    assert ds.input_shape == (4,) and any("NaN) in 1 column(s) filled with the training median" in n for n in ds.notes)
    assert torch.isfinite(ds.open_test()[0]).all()
    images = np.ones((20, 8, 8))
    images[4, 1, 1] = np.nan  # not a table: still refused
    np.savez(p, x_train=images, y_train=np.arange(20) % 2)
    with pytest.raises(DataError) as err:
        load_dataset("npz", p)
    assert str(err.value).startswith(f"{p}: training features contain NaN") and "impute" in str(err.value)


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"x_train": np.ones((10, 2))}, r"has no y_train \(keys found: x_train\); save it with numpy.savez"),
        ({"x_train": np.ones((10, 2)), "y_train": np.zeros(9)}, "10 training examples but 9 labels; give one label"),
        ({"x_train": np.array([["a", "b"]] * 4), "y_train": np.zeros(4)}, "x_train has dtype <U1; save numbers"),
        ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1]), "x_test": np.ones((2, 2))},
         "has x_test but no y_test; give both"),
        ({"x_train": np.ones((4, 2)), "y_train": np.array([0.5, 1, 0, 1]), "task": "classification"},
         "not whole numbers"),  # task auto reads these labels as regression targets (tests/test_regression.py)
        ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1]), "x_test": np.ones((0, 2)),
          "y_test": np.zeros(0, np.int64)}, None),
    ],
)
def test_npz_bad(tmp_path: Path, arrays: dict[str, Any], pattern: str | None) -> None:
    p = tmp_path / "bad.npz"
    task = arrays.pop("task", "auto")
    np.savez(p, **arrays)
    if pattern is None:
        assert load_dataset("npz", p).has_test  # an empty test split loads instead of crashing
        return
    with pytest.raises(DataError, match=pattern) as err:
        load_dataset("npz", p, task=task)
    assert str(p) in str(err.value)


def test_npz_object_and_garbage(tmp_path: Path) -> None:
    p = tmp_path / "obj.npz"
    np.savez(p, x_train=np.array([[1, 2], [3]], dtype=object), y_train=np.zeros(2))
    with pytest.raises(DataError, match=r"x_train in .*obj.npz: it holds Python objects"):
        load_dataset("npz", p)
    g = tmp_path / "garbage.npz"
    g.write_bytes(b"hello world, not a zip")
    with pytest.raises(DataError, match=r"garbage.npz: not a valid .npz archive .*re-save it"):
        load_dataset("npz", g)
    with pytest.raises(DataError, match=r"does not exist; check data.path"):
        load_dataset("npz", tmp_path / "nope.npz")
    single = tmp_path / "one.npy"
    np.save(single, np.ones(3))
    with pytest.raises(DataError, match=r"single array, not an .npz"):
        load_dataset("npz", single)


# ------------------------------------------------------------------------------------------- csv


def write_text(p: Path, rows: list[str]) -> Path:
    p.write_text("\n".join(rows) + "\n")
    return p


def csv_rows(n: int = 20, header: str | None = "f1,label,f2") -> list[str]:
    rows = [header] if header else []
    rows += [f"{i * 0.5},{i % 2},{i}" for i in range(n)]
    return rows


def test_csv_header_and_label_column(tmp_path: Path) -> None:
    ds = load_dataset("csv", write_text(tmp_path / "t.csv", csv_rows()))
    assert ds.name == "t" and ds.input_shape == (2,) and ds.n_classes == 2 and not ds.has_test
    # No header: the last column is the label; an index picks another one.
    p = write_text(tmp_path / "nh.csv", [f"{i},{i % 3},{i % 2}" for i in range(30)])
    assert load_dataset("csv", p).n_classes == 2
    assert load_dataset("csv", p, label_column=1).n_classes == 3
    # Semicolons, class-name labels.
    p = write_text(tmp_path / "s.csv", ["a;b;kind", *(f"{i};{i * 2};{'cat' if i % 2 else 'dog'}" for i in range(20))])
    ds = load_dataset("csv", p, label_column="kind")
    assert ds.classes == ("cat", "dog")


def test_a_column_named_target_or_class_is_the_label_wherever_it_stands(tmp_path: Path) -> None:
    rows = ["f1,Target,f2", *(f"{i * 0.5},{i % 3},{i * 0.25}" for i in range(30))]
    ds = load_dataset("csv", write_text(tmp_path / "t.csv", rows))
    assert ds.n_classes == 3 and ds.input_shape == (2,)
    assert "the label is column 'Target' (of 3 columns: by its name)" in ds.notes[0]
    both = ["class,f1,target", *(f"{i % 2},{i * 0.5},{i % 3}" for i in range(30))]
    ds = load_dataset("csv", write_text(tmp_path / "b.csv", both))  # two such names: the last column, as before
    assert ds.n_classes == 3 and "the last column" in ds.notes[0]


def test_a_csv_is_parsed_once_a_process_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import nasforge.data.registry as registry

    calls: list[Path] = []
    real = registry.read_csv

    def counting(p: Path, *a: Any) -> Any:
        calls.append(p)
        return real(p, *a)

    monkeypatch.setattr(registry, "read_csv", counting)
    p = write_text(tmp_path / "t.csv", csv_rows(40))
    first = load_dataset("csv", p, seed=0)
    second = load_dataset("csv", p, seed=1)  # another validation split of the same parse
    assert len(calls) == 1 and first.input_shape == second.input_shape
    load_dataset("csv", p, test_fraction=0.25)  # read with other settings: parsed again
    assert len(calls) == 2
    write_text(p, csv_rows(30))
    os.utime(p, ns=(1, 1))  # another size and time: the file changed
    assert len(load_dataset("csv", p).y_train) + len(load_dataset("csv", p).y_val) == 30 and len(calls) == 3


def test_csv_directory_with_test(tmp_path: Path) -> None:
    d = tmp_path / "tab"
    d.mkdir()
    write_text(d / "train.csv", csv_rows(40))
    write_text(d / "test.csv", csv_rows(10))
    ds = load_dataset("csv", d)
    assert ds.has_test and ds.open_test()[0].shape == (10, 2)
    write_text(d / "test.csv", ["f1,label,f3", "1,0,2"])
    with pytest.raises(DataError, match=r"test.csv has feature columns .* give both files the same columns"):
        load_dataset("csv", d)


@pytest.mark.parametrize(
    ("rows", "kwargs", "pattern"),
    [
        ([*csv_rows()[:3], "1.5,0,inf", *csv_rows()[3:]], {}, r"line 4 column 'f2' is inf; give finite numbers"),
        ([*csv_rows()[:3], "1.5,0,abc", *csv_rows()[3:]], {},
         r"line 4 column 'f2' holds 'abc', not a number, in a column of numbers; fix the cell or leave it empty"),
        (["id,label", *(f"p{i},{i % 2}" for i in range(20))], {}, r"no usable feature column"),
        ([*csv_rows()[:3], "1,", *csv_rows()[3:]], {}, r"line 4 has 2 fields but the header has 3; give every row"),
        ([*csv_rows()[:3], "1,,2", *csv_rows()[3:]], {}, r"line 4 has an empty label"),
        (csv_rows(), {"label_column": "target"}, r"has no column 'target' \(columns: f1, label, f2\); set label_col"),
        (csv_rows(header=None), {"label_column": "label"}, r"has no header row.*give label_column as an index"),
        (csv_rows(), {"label_column": 7}, r"has 3 columns, so label_column 7 does not exist"),
        (["a,b,label"], {}, r"has a header but no data rows"),
        ([], {}, r"is empty; give one row per example"),
        # task auto reads a fractional label as a regression target (tests/test_regression.py); asked for classes:
        ([*csv_rows()[:3], "1,0.5,2", *csv_rows()[3:]], {"task": "classification"},
         r"has label '0.5', not a whole number"),
        (["x", *[str(i) for i in range(5)]], {}, r"single column"),
    ],
)
def test_csv_bad(tmp_path: Path, rows: list[str], kwargs: dict[str, Any], pattern: str) -> None:
    p = write_text(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=pattern) as err:
        load_dataset("csv", p, **kwargs)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_csv_text_and_missing_values(tmp_path: Path) -> None:
    """A raw CSV as a user has it: text columns one-hot, missing numbers filled and flagged, identifiers dropped,
    all fitted on train.csv alone and applied to test.csv."""
    d = tmp_path / "people"
    d.mkdir()
    cities = ["york", "leeds", "hull"]
    train = ["name,age,sex,city,label"]
    for i in range(40):
        age = "" if i % 10 == 3 else ("NA" if i % 10 == 7 else str(20 + i))
        city = "" if i == 5 else cities[i % 3]
        train.append(f"person {i},{age},{'f' if i % 2 else 'm'},{city},{i % 2}")
    write_text(d / "train.csv", train)
    write_text(d / "test.csv", ["name,age,sex,city,label", "ann,?,f,bath,1", "bob,31,m,york,0"])
    raw = read_csv(d)
    # age + its missing flag, sex (2 values), city (3 values and the missing one); name dropped
    assert raw.x_train.shape == (40, 1 + 1 + 2 + 4) and raw.x_test is not None
    ages = [20 + i for i in range(40) if i % 10 not in (3, 7)]
    assert raw.x_train[3, 0] == np.median(ages) and raw.x_train[3, 1] == 1.0 and raw.x_train[4, :2].tolist() == [24, 0]
    assert raw.x_test[0, :2].tolist() == [np.median(ages), 1.0] and raw.x_test[1, :2].tolist() == [31, 0]
    assert raw.x_test[0, 4:].sum() == 0  # bath: a city first seen in the test file sets no one-hot column
    assert raw.x_test[1, 2:4].sum() == 1 and raw.x_test[1, 4:].sum() == 1
    assert (raw.x_train[:, 2:4].sum(axis=1) == 1).all() and (raw.x_train[:, 4:].sum(axis=1) == 1).all()
    ds = load_dataset("csv", d)
    assert ds.input_shape == (8,) and ds.has_test and torch.isfinite(ds.x_train).all()
    # pandas' to_csv writes its row index as an unnamed first column: a row number, dropped like an identifier
    indexed = write_text(tmp_path / "indexed.csv", [",f1,label", *(f"{i},{i % 5},{i % 2}" for i in range(30))])
    raw = read_csv(indexed)
    assert raw.x_train.shape == (30, 1) and raw.x_train[:, 0].tolist() == [i % 5 for i in range(30)]
    assert "1 (unnamed) dropped" in raw.notes[1]
    write_text(d / "test.csv", ["name,age,sex,city,label", "ann,old,f,bath,1"])
    with pytest.raises(DataError, match=r"test.csv line 2 column 'age' holds 'old', but the column is numeric"):
        read_csv(d)


def test_minus_one_plus_one_labels_are_two_classes(tmp_path: Path) -> None:
    """LIBSVM's and the UCR archive's binary labels: -1 and +1 are classes "-1" and "1", not an error."""
    p = write_text(tmp_path / "pm.csv", ["a,b,label", *(f"{i},{i % 3},{1 if i % 2 else -1}" for i in range(30))])
    ds = load_dataset("csv", p)
    assert ds.classes == ("-1", "1") and set(ds.y_train.tolist()) == {0, 1}
    z = tmp_path / "pm.npz"
    np.savez(z, x_train=np.zeros((20, 3)), y_train=np.where(np.arange(20) % 2, 1, -1))
    assert load_dataset("npz", z).classes == ("-1", "1")
    np.savez(z, x_train=np.zeros((20, 3)), y_train=np.where(np.arange(20) % 2, 1, -1), classes=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"label -1 cannot index the 2 class names given"):
        load_dataset("npz", z)


def test_a_headerless_file_with_classes_first_and_measurements_last_is_labelled_by_its_first_column(
        tmp_path: Path) -> None:
    """The UCR time-series archive's files: no header, the class in the first column, then the series."""
    rng = np.random.default_rng(0)
    rows = ["\t".join([str(i % 3 + 1), *(f"{v:.3f}" for v in rng.normal(size=20))]) for i in range(60)]
    d = tmp_path / "ucr"
    d.mkdir()
    write_text(d / "ECG_TRAIN.tsv", rows)  # the archive's names and tab-separated files
    write_text(d / "ECG_TEST.tsv", rows[:12])
    raw = read_csv(d)
    assert raw.x_train.shape == (60, 20) and raw.y_train.tolist()[:4] == [1, 2, 3, 1]
    assert raw.x_test is not None and raw.x_test.shape == (12, 20)
    assert "ECG_TRAIN.tsv: the label is column 1 (of 21 columns: the first: the last holds measurements" in raw.notes[0]
    assert load_dataset("csv", d).classes == ("1", "2", "3")
    for f in d.iterdir():
        f.unlink()
    # the last column stays the label where it reads as classes, or where the first does not either
    write_text(d / "train.csv", [",".join([*(f"{v:.3f}" for v in rng.normal(size=3)), str(i % 2)]) for i in range(30)])
    write_text(d / "test.csv", [",".join([*(f"{v:.3f}" for v in rng.normal(size=3)), str(i % 2)]) for i in range(8)])
    assert read_csv(d).x_train.shape == (30, 3)


def test_a_folder_of_name_train_and_name_test_csv_is_a_train_test_pair(tmp_path: Path) -> None:
    """Kaggle's fashion-mnist_train.csv and fashion-mnist_test.csv, lower case, as the UCR archive's are upper."""
    d = tmp_path / "kaggle"
    d.mkdir()
    write_text(d / "fashion-mnist_train.csv", csv_rows(40))
    write_text(d / "fashion-mnist_test.csv", csv_rows(10))
    write_text(d / "notes.csv", csv_rows(5))  # another table beside them is not the test split
    ds = load_dataset("csv", d)
    assert ds.has_test and ds.test_examples == 10 and len(ds.y_train) + len(ds.y_val) == 40
    (d / "fashion-mnist_test.csv").unlink()
    assert not load_dataset("csv", d).has_test


def test_gzipped_tables_and_a_folder_of_them(tmp_path: Path) -> None:
    """Kaggle and the UCR archive ship tables gzipped: t.csv.gz reads as t.csv does, a folder's pair too."""
    plain = read_csv(write_text(tmp_path / "t.csv", csv_rows()))
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress((tmp_path / "t.csv").read_bytes()))
    packed = read_csv(gz)
    assert np.array_equal(packed.x_train, plain.x_train) and np.array_equal(packed.y_train, plain.y_train)
    d = tmp_path / "pair"
    d.mkdir()
    for name, n in (("train.csv.gz", 30), ("test.csv.gz", 8)):
        (d / name).write_bytes(gzip.compress(("\n".join(csv_rows(n)) + "\n").encode()))
    ds = load_dataset("csv", d)
    assert ds.has_test and ds.test_examples == 8
    broken = tmp_path / "cut.csv.gz"
    broken.write_bytes(gz.read_bytes()[:-12])
    with pytest.raises(DataError, match=r"cut.csv.gz: not a complete gzip file .*gzip it again"):
        read_csv(broken)


def test_semicolon_tables_with_decimal_commas(tmp_path: Path) -> None:
    """Spreadsheets in most of Europe export 14,25 with ; between cells: those columns are numbers (they were text
    with a distinct value in each row, dropped as identifiers: no feature was left). A text column stays text."""
    rows = ["size;weight;colour;label"] + [f"{i},{i % 7};{-i * 2},5;{'red' if i % 3 else 'blue'};{i % 2}"
                                           for i in range(40)]
    rows[5] = "4;-8;red;0"  # whole numbers among decimal commas, and a missing cell
    rows[6] = "5,5;;blue;1"
    raw = read_csv(write_text(tmp_path / "eu.csv", rows))
    assert raw.x_train.shape == (40, 5)  # size, weight, its missing flag, colour one-hot (2)
    assert raw.x_train[0, 0] == 0.0 and raw.x_train[3, 0] == 3.3 and raw.x_train[3, 1] == -6.5
    headerless = read_csv(write_text(tmp_path / "nohead.csv", rows[1:]))
    assert headerless.x_train.shape == (40, 5) and headerless.x_train[0, 0] == 0.0  # the first row is data
    # a comma-separated file's quoted "1,5" stays as it is: text
    quoted = read_csv(write_text(tmp_path / "q.csv", ["a,label"] + [f'"x{i % 3},5",{i % 2}' for i in range(20)]))
    assert quoted.x_train.shape == (20, 3)


def test_numbers_written_for_people_are_numbers(tmp_path: Path) -> None:
    """Spreadsheets export 1,234.50, $12.00 and 12.5% (in Europe 1.234,5 and € 12,00 with ; between cells): such a
    column was text with a distinct value in most rows, dropped as an identifier, and its numbers were lost."""
    rows = ["income,price,share,name,label"] + [
        f'"{1000 * i + 234:,}.5",${i}.25,{i % 9}%,"x{i % 3},5",{i % 2}' for i in range(40)]
    rows[3] = '"999",-$3.10,,"x1,5",0'  # a plain number, a negative amount, a missing share
    raw = read_csv(write_text(tmp_path / "us.csv", rows))
    assert raw.x_train.shape == (40, 7)  # income, price, share and its missing flag, name one-hot (3)
    assert raw.x_train[0, :3].tolist() == [234.5, 0.25, 0.0] and raw.x_train[39, 0] == 39234.5
    assert raw.x_train[2, :4].tolist() == [999.0, -3.1, raw.x_train[2, 2], 1.0]
    assert "'income', 'price', 'share' read as numbers written for people" in raw.notes[-1]
    eu = ["income;price;label"] + [f"{f'{i}.' if i else ''}234,5;€ {i},25;{i % 2}" for i in range(40)]
    assert eu[5] == "4.234,5;€ 4,25;0"
    raw = read_csv(write_text(tmp_path / "eu.csv", eu))
    assert raw.x_train[:, 0].tolist() == [1000 * i + 234.5 for i in range(40)] and raw.x_train[4, 1] == 4.25
    # a semicolon table's 1,234 is a decimal comma unless a cell only an American number can be shows otherwise
    ambiguous = ["v;label", "1,234;0", "1,5;1", "3;0", "2;1"]
    assert read_csv(write_text(tmp_path / "dc.csv", ambiguous)).x_train[:2, 0].tolist() == [1.234, 1.5]
    american = ["v;label", "1,234;0", "1,234.5;1", "3;0", "2;1"]
    assert read_csv(write_text(tmp_path / "am.csv", american)).x_train[:2, 0].tolist() == [1234.0, 1234.5]
    # a column with a word among such numbers stays what it was: text, one-hot over its 3 values
    mixed = ["v,label"] + [f"{v},{i % 2}" for i, v in enumerate(["$5", "$6", "soon", "$5", "$6", "$5", "$6", "$5"])]
    assert read_csv(write_text(tmp_path / "mixed.csv", mixed)).x_train.shape == (8, 3)


def test_uci_data_files_and_space_separated_text_tables(tmp_path: Path) -> None:
    """iris.data (no header, class names last) and a folder of train.txt/test.txt, numbers in aligned columns parted
    by spaces with the class first (the UCR archive's old format), were refused (not named as tables; spaces parted
    no cells); they read as tables now (`auto`'s naming of them: test_auto's test of DATA names)."""
    rng = np.random.default_rng(0)
    iris = [f"{5 + rng.random():.1f},{3 + rng.random():.1f},{1 + i % 3:.1f},0.2,Iris-{['setosa', 'virginica'][i % 2]}"
            for i in range(30)]
    raw = read_csv(write_text(tmp_path / "iris.data", [*iris, ""]))
    assert raw.x_train.shape == (30, 4) and raw.classes == ("Iris-setosa", "Iris-virginica")
    folder = tmp_path / "ucr"
    folder.mkdir()
    for name, n in (("train.txt", 20), ("test.txt", 6)):
        write_text(folder / name, [f"  {1 + i % 2:.7e}  {' '.join(f'{v: .7e}' for v in rng.normal(size=40))}"
                                   for i in range(n)])
    raw = read_csv(folder)
    assert raw.x_train.shape == (20, 40) and raw.x_test is not None and raw.x_test.shape == (6, 40)
    assert sorted(set(np.asarray(raw.y_train).tolist())) == [1, 2]
    assert "the first: the last holds measurements, the first classes" in raw.notes[0]


def test_free_text_becomes_a_bag_of_words_and_an_identifier_is_still_dropped(tmp_path: Path) -> None:
    """A review column holds a distinct value in most rows and was dropped as an identifier, so a table of reviews
    had no feature left. Its recurring words are features now; a UUID's chunks recur only by chance: dropped."""
    import uuid

    rng = np.random.default_rng(0)
    filler = ["the", "a", "this", "product", "was", "it", "is", "and", "my", "order", "arrived", "today", "with", "box"]
    rows = ["review,id,label"]
    for i in range(300):
        words = [*rng.choice(filler, 6), "great" if i % 2 else "awful", str(rng.choice(["fine", "late"]))]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{uuid.UUID(bytes=rng.bytes(16), version=4)},{'pos' if i % 2 else 'neg'}")
    folder = tmp_path / "reviews"
    folder.mkdir()
    write_text(folder / "train.csv", rows)
    write_text(folder / "test.csv", ["review,id,label", f"great and new,{uuid.uuid4()},pos",
                                     f"awful,{uuid.uuid4()},neg"])
    raw = read_csv(folder)
    assert raw.x_train.shape == (300, len(filler) + 4)  # filler, great, awful, fine, late; no id
    assert "'review' read as free text: a 0/1 feature for each of its 18 commonest words" in raw.notes[-1]
    assert "'id' dropped" in raw.notes[-1]
    y = np.asarray(raw.y_train)
    for cls in (0, 1):  # "awful" and "great" are features that say the class
        assert any((column == (y == cls)).all() for column in raw.x_train.T)
    assert raw.x_test is not None and raw.x_test.sum(axis=1).tolist() == [2.0, 1.0]  # "new" is no feature
    # words that do not recur are no feature: a column of them is dropped, as before
    once = ["note,x,label"] + [f"w{i}a w{i}b w{i}c w{i}d,{i % 3},{i % 2}" for i in range(40)]
    assert read_csv(write_text(tmp_path / "once.csv", once)).x_train.shape == (40, 1)


def test_dates_with_the_year_last_are_read_day_or_month_first_as_the_column_shows(tmp_path: Path) -> None:
    """31/01/2021 and 01/31/2021 were text: dropped as identifiers. A first number above 12 makes the day first, a
    second the month first; where neither shows, dots mean the day first and slashes the month first."""
    import datetime

    days = [datetime.date(2021, 1, 1) + datetime.timedelta(days=5 * i) for i in range(40)]
    for fmt, order in (("%d/%m/%Y", "the day first"), ("%m/%d/%Y", "the month first"),
                       ("%d.%m.%Y %H:%M", "the day first")):
        rows = ["when,label"] + [f"{d.strftime(fmt)},{int(d.month in (6, 7, 8))}" for d in days]
        raw = read_csv(write_text(tmp_path / "d.csv", rows))
        assert raw.x_train.shape == (40, 5), fmt
        assert raw.x_train[:, 1].tolist() == [d.month for d in days]
        assert raw.x_train[:, 3].tolist() == [d.day for d in days]
        assert f"'when' ({order}) read as dates" in raw.notes[-1]
    # the month by its name, in the forms spreadsheets and people write
    for fmt in ("%d %b %Y", "%B %d, %Y", "%d-%b-%y"):
        rows = ["when,label"] + [f'"{d.strftime(fmt)}",{int(d.month in (6, 7, 8))}' for d in days]
        raw = read_csv(write_text(tmp_path / "n.csv", rows))
        assert raw.x_train[:, 1].tolist() == [d.month for d in days], fmt
        assert raw.x_train[:, 0].tolist() == [(d - datetime.date(1970, 1, 1)).days for d in days]
        assert "'when' (the month by its name) read as dates" in raw.notes[-1]
    # none above 12: slashes read the month first (as pandas does), dots the day first
    assert read_csv(write_text(tmp_path / "s.csv", ["when,label", "02/03/2021,0", "04/05/2021,1"])).x_train[0, 1] == 2
    assert read_csv(write_text(tmp_path / "p.csv", ["when,label", "02.03.2021,0", "04.05.2021,1"])).x_train[0, 1] == 3
    # both orders shown in one column: not dates (here text, dropped as an identifier: no feature left)
    with pytest.raises(DataError, match=r"no usable feature column"):
        read_csv(write_text(tmp_path / "both.csv", ["when,label", "13/01/2021,0", "01/13/2021,1", "02/02/2021,0"]))


def test_a_date_column_is_read_as_date_parts(tmp_path: Path) -> None:
    """An ISO date column holds a distinct value in most rows and was dropped as an identifier: it becomes the day
    number, month, weekday, day of the month and hour (AutoGluon's date parts), so a season can be learnt."""
    import datetime

    start = datetime.date(2021, 1, 1)
    days = [start + datetime.timedelta(days=3 * i) for i in range(60)]
    rows = ["when,x,label"] + [f"{d.isoformat()}{'T06:30:00Z' if i == 1 else ''},{i % 5},{int(d.month in (6, 7, 8))}"
                               for i, d in enumerate(days)]
    rows[3] = f",2,{rows[3][-1]}"  # a missing date: the median, flagged
    raw = read_csv(write_text(tmp_path / "dated.csv", rows))
    assert raw.x_train.shape == (60, 7)  # 5 date parts + its missing flag + x
    first = raw.x_train[0]
    assert first[0] == (start - datetime.date(1970, 1, 1)).days and first[1:5].tolist() == [1, 4, 1, 0] and not first[5]
    assert raw.x_train[1, 4] == 6.5 and raw.x_train[2, 5] == 1.0 and raw.x_train[2, 1] in range(1, 13)
    assert "'when' read as dates: day number, month, weekday, day of the month, hour" in raw.notes[-1]
    # a column with a cell that is no date stays what it was: text, here dropped as an identifier
    rows[10] = "soon,1,0"
    assert read_csv(write_text(tmp_path / "odd.csv", rows)).x_train.shape == (60, 1)


def test_csv_unreadable(tmp_path: Path) -> None:
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DataError, match=r"not UTF-8 text"):
        load_dataset("csv", p)
    with pytest.raises(DataError, match=r"does not exist"):
        load_dataset("csv", tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"directory without train.csv"):
        load_dataset("csv", tmp_path)


# -------------------------------------------------------------------------------- a folder of class folders


def write_images(root: Path, n: int, *, size: tuple[int, int] = (12, 10), mode: str = "L", ext: str = ".png",
                 odd: int = 0) -> None:
    """``n`` images a class in root/bright and root/dark (the class is the brightness); ``odd`` of them 20x16."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, base in (("bright", 200), ("dark", 40)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = (20, 16) if i < odd else size
            a = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).convert(mode).save(root / cls / f"{i}{ext}")


def test_a_folder_of_class_folders_of_images(tmp_path: Path) -> None:
    """ROOT/<class>/*.png as Keras' image_dataset_from_directory reads it: labels from the folder names, grey
    where every image is, one size (the most common), a test split held out where there is no test folder."""
    root = tmp_path / "photos"
    write_images(root, 20, odd=3)
    (root / ".ipynb_checkpoints").mkdir()  # hidden folders and stray files are not classes or images
    (root / "bright" / "notes.txt").write_text("x")
    ds = load_dataset("images", root, test_fraction=0.25)
    assert ds.input_shape == (1, 10, 12) and ds.classes == ("bright", "dark") and ds.test_examples == 10
    assert "photos: 40 grey images in 2 class folders; images of 2 sizes resized to the most common, 12x10" \
        in ds.notes[0]
    x_test, y_test = ds.open_test()
    assert ((x_test.mean(dim=(1, 2, 3)) > 0) == (y_test == 0)).all()  # normalised: bright above the mean


def test_train_and_test_folders_rgb_and_large_images(tmp_path: Path) -> None:
    root = tmp_path / "shots"
    write_images(root / "train", 8, size=(128, 96), mode="RGB", ext=".jpg")
    write_images(root / "test", 3, size=(128, 96), mode="RGB", ext=".jpg")
    ds = load_dataset("images", root)
    assert ds.input_shape == (3, 48, 64) and ds.has_test and ds.test_examples == 6  # scaled to a 64-pixel side
    assert "scaled from 128x96 to 64x48" in ds.notes[0] and "6 in test/" in ds.notes[0]
    (root / "test" / "cloudy").mkdir()
    (root / "train" / "dark" / "0.jpg").rename(root / "test" / "cloudy" / "0.jpg")
    with pytest.raises(DataError, match=r"cloudy is a class the training folder .* does not have"):
        load_dataset("images", root)


def test_bad_image_folders_are_one_line(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    write_images(root, 3)
    (root / "dark" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*broken.png: .*remove the file or save it again"):
        load_dataset("images", root)
    (root / "dark" / "broken.png").unlink()
    for f in (root / "dark").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"holds no class folders of images: give ROOT/<class>/\*.png"):
        load_dataset("images", root)
    with pytest.raises(DataError, match=r"the images source holds classes, not numeric targets"):
        load_dataset("images", root, task="regression")


# -------------------------------------------------------------------------------- digits, registry


def test_digits() -> None:
    pytest.importorskip("sklearn")
    ds = load_dataset("digits")
    assert ds.input_shape == (1, 8, 8) and ds.n_classes == 10
    _, y_test = ds.open_test()
    assert abs(len(y_test) - 0.2 * 1797) <= 10 and (class_counts(y_test, 10) > 0).all()
    again = load_dataset("digits", seed=5)
    assert torch.equal(again.open_test()[1], y_test)  # the test split does not move with the seed
    flat = load_dataset("digits", layout="tabular", limit=500)
    assert flat.input_shape == (64,) and len(flat.y_train) + len(flat.y_val) == 500
    with pytest.raises(DataError, match=r"takes no path"):
        load_dataset("digits", "/tmp")


def test_registry_and_arguments() -> None:
    assert set(DATA_SOURCES) == {"fashion_mnist", "mnist", "idx", "cifar10", "cifar100", "npz", "csv", "images",
                                 "digits", "diabetes"}
    with pytest.raises(DataError) as err:
        load_dataset("imagenet")
    assert "unknown data source 'imagenet'" in str(err.value)
    assert all(name in str(err.value) for name in DATA_SOURCES)
    with pytest.raises(DataError, match=r"limit must be a whole number"):
        load_dataset("npz", "x.npz", limit=0)
    with pytest.raises(DataError, match=r"unknown data layout 'grid'"):
        load_dataset("npz", "x.npz", layout="grid")
    with pytest.raises(DataError, match=r"label_column applies only to the csv source"):
        load_dataset("npz", "x.npz", label_column="y")


def test_stratified_subset() -> None:
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    keep = stratified_subset(y, 40, seed=0)
    assert len(keep) == 40 and len(set(keep.tolist())) == 40
    assert np.bincount(y[keep]).tolist() == [20, 10, 6, 4]
    assert np.array_equal(keep, stratified_subset(y, 40, seed=0))
    assert not np.array_equal(keep, stratified_subset(y, 40, seed=1))
    assert len(stratified_subset(y, 500, seed=0)) == 200


# -------------------------------------------------------------------------------- download (offline)


class _Response(io.BytesIO):
    status = 200


def serve_dir(src: Path, mutate: Callable[[str, bytes], bytes] | None = None) -> Callable[..., _Response]:
    def opener(url: str, timeout: float) -> _Response:
        name = url.rsplit("/", 1)[1]
        data = (src / name).read_bytes()
        return _Response(mutate(name, data) if mutate else data)
    return opener


def test_download_verifies_real_files(tmp_path: Path) -> None:
    if not (DEBIAN_FASHION / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist absent)")
    urls: list[str] = []

    def opener(url: str, timeout: float) -> _Response:
        urls.append(url)
        return serve_dir(DEBIAN_FASHION)(url, timeout)

    dest = dl.download("fashion-mnist", tmp_path / "fm", base_url="http://mirror.test/fm", opener=opener)
    assert urls[0] == "http://mirror.test/fm/train-images-idx3-ubyte.gz" and len(urls) == 4
    for spec in dl.REMOTE["fashion_mnist"].files:
        assert (dest / spec.name).read_bytes() == (DEBIAN_FASHION / spec.name).read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == sorted(s.name for s in dl.REMOTE["fashion_mnist"].files)

    # Verified files are kept: a second run needs no network at all.
    def offline(url: str, timeout: float) -> _Response:
        raise urllib.error.URLError("offline")

    assert dl.download("fashion_mnist", dest, opener=offline) == dest


def small_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake 'mnist' of two small gz files whose MD5s are registered, served from tmp_path/src."""
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for name, payload in (("a.gz", b"alpha" * 100), ("b.gz", b"beta" * 100)):
        blob = gzip.compress(payload, mtime=0)
        (src / name).write_bytes(blob)
        files.append(dl.RemoteFile(name, hashlib.md5(blob).hexdigest()))
    monkeypatch.setitem(dl.REMOTE, "mnist", dl.RemoteDataset(("http://m1.test/", "http://m2.test/"), tuple(files)))
    return src


def test_download_md5_and_mirror_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = small_remote(tmp_path, monkeypatch)

    def opener(url: str, timeout: float) -> _Response:
        if url.startswith("http://m1.test/"):
            raise urllib.error.URLError("connection refused")
        return serve_dir(src)(url, timeout)

    dest = dl.download("mnist", tmp_path / "out", opener=opener)
    assert (dest / "a.gz").read_bytes() == (src / "a.gz").read_bytes()


def test_download_corrupted_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = small_remote(tmp_path, monkeypatch)

    def flip(name: str, data: bytes) -> bytes:
        return data if name == "a.gz" else data[:-1] + bytes([data[-1] ^ 1])

    dest = tmp_path / "out"
    with pytest.raises(DataError) as err:
        dl.download("mnist", dest, base_url="http://m.test", opener=serve_dir(src, flip))
    msg = str(err.value)
    assert "b.gz" in msg and "checksum mismatch" in msg and str(dest) in msg and "\n" not in msg
    assert sorted(p.name for p in dest.iterdir()) == ["a.gz"]  # no b.gz, no .part left behind


def test_download_network_error(tmp_path: Path) -> None:
    def opener(url: str, timeout: float) -> _Response:
        raise urllib.error.URLError("Name or service not known")

    dest = tmp_path / "out"
    with pytest.raises(DataError) as err:
        dl.download("fashion_mnist", dest, opener=opener)
    msg = str(err.value)
    assert "cannot download train-images-idx3-ubyte.gz" in msg and "Name or service not known" in msg
    assert "check the network" in msg and not list(dest.iterdir())
    with pytest.raises(DataError, match=r"only fashion_mnist, mnist can be downloaded"):
        dl.download("cifar10", dest)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", www
    finally:
        server.shutdown()
        server.server_close()


def test_download_over_real_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 http_dir: tuple[str, Path]) -> None:
    url, www = http_dir
    src = small_remote(tmp_path, monkeypatch)
    (www / "a.gz").write_bytes((src / "a.gz").read_bytes())
    with pytest.raises(DataError, match=r"cannot download b.gz \(http://127.0.0.1:\d+/b.gz: HTTP 404 File not found\)"):
        dl.download("mnist", tmp_path / "out", base_url=url)
    (www / "b.gz").write_bytes((src / "b.gz").read_bytes())
    dest = dl.download("mnist", tmp_path / "out", base_url=url)
    assert sorted(p.name for p in dest.iterdir()) == ["a.gz", "b.gz"]
