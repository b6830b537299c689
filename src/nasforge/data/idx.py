"""IDX files (the MNIST / Fashion-MNIST format), read strictly so a damaged download fails loudly.

An IDX file is a 4-byte magic (two zero bytes, a dtype code, the number of dimensions), one big-endian
uint32 per dimension, then exactly prod(dims) big-endian values. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from nasforge.data.download import default_cache_dir
from nasforge.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The four files of a train/test IDX set, by their canonical (Fashion-)MNIST names.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))

# Where distributions install the data sets (Debian: dataset-fashion-mnist). Tests monkeypatch this.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
    "mnist": (Path("/usr/share/datasets/mnist"),),
}
PRETTY: dict[str, str] = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"}
ENV_VAR = "NASFORGE_DATA_DIR"

_REDOWNLOAD = "re-download it or point data.path at a complete copy"


def _read_bytes(path: Path) -> bytes:
    """The file's payload, gunzipped when it is gzip data (by magic, whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}; check the path and its permissions") from None
    if not raw.startswith(GZIP_MAGIC):
        if path.suffix == ".gz":
            raise DataError(f"cannot read {path}: it is named .gz but is not gzip data; {_REDOWNLOAD}")
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"cannot read {path}: the gzip data is truncated; {_REDOWNLOAD}") from None
    except (OSError, zlib.error) as err:
        raise DataError(f"cannot read {path}: corrupt gzip data ({err}); {_REDOWNLOAD}") from None


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Decode one IDX payload, checking the magic, the dtype code and that the length is exact."""
    if len(data) < 4:
        raise DataError(f"cannot read {where}: file is truncated ({len(data)} bytes, not even an IDX header); "
                        f"{_REDOWNLOAD}")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(f"cannot read {where}: not an IDX file (magic 0x{data[:4].hex()}, expected e.g. 0x00000803 "
                        f"for images or 0x00000801 for labels); {_REDOWNLOAD}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"cannot read {where}: file is truncated inside the header ({len(data)} of {header} bytes); "
                        f"{_REDOWNLOAD}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize  # Python ints: huge dims cannot overflow
    if len(data) < expected:
        raise DataError(f"cannot read {where}: file is truncated (expected {expected} bytes, got {len(data)}); "
                        f"{_REDOWNLOAD}")
    if len(data) > expected:
        raise DataError(f"cannot read {where}: {len(data) - expected} unexpected bytes after the data "
                        f"(expected {expected} bytes, got {len(data)}); {_REDOWNLOAD}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a native-endian array."""
    p = Path(path)
    return parse_idx(_read_bytes(p), str(p))


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``directory``: plain or .gz, dashed or dotted ("train-images.idx3-ubyte")."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _pair(directory: Path, images_key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_path = find_idx_file(directory, IDX_FILES[images_key])
    labels_path = find_idx_file(directory, IDX_FILES[labels_key])
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = IDX_FILES[images_key] if images_path is None else IDX_FILES[labels_key]
        raise DataError(f"{directory} has no {missing}[.gz] to go with its other file; add it or remove the pair")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path} holds a {images.ndim}-D array of shape {images.shape}; image files must be "
                        "3-D (count, rows, cols), check that images and labels are not swapped")
    if labels.ndim != 1:
        raise DataError(f"{labels_path} holds a {labels.ndim}-D array of shape {labels.shape}; label files must be "
                        "1-D, check that images and labels are not swapped")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
                        "use files from the same release")
    return images, labels


def read_idx_dir(
    directory: str | os.PathLike[str], *, require_test: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x_train, y_train, x_test, y_test) from a directory of IDX files; the test pair is optional."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d} is not a directory; point data.path at the directory holding the IDX files")
    train = _pair(d, "train_images", "train_labels")
    if train is None:
        raise DataError(f"{d} has no {IDX_FILES['train_images']}[.gz] / {IDX_FILES['train_labels']}[.gz]; "
                        "point data.path at the directory holding the IDX files")
    test = _pair(d, "test_images", "test_labels")
    if test is None and require_test:
        raise DataError(f"{d} has no {IDX_FILES['test_images']}[.gz] / {IDX_FILES['test_labels']}[.gz]; "
                        "add the test files or point data.path at a complete copy")
    if test is None:
        return train[0], train[1], None, None
    return train[0], train[1], test[0], test[1]


def _complete(directory: Path) -> bool:
    return all(find_idx_file(directory, stem) is not None for stem in IDX_FILES.values())


def candidate_dirs(name: str) -> list[Path]:
    """Where ``name`` (fashion_mnist / mnist) is looked for when no path is given, in order."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env) / name, Path(env) / name.replace("_", "-")]
    dirs.append(default_cache_dir(name))
    dirs += list(SYSTEM_DIRS.get(name, ()))
    return dirs


def locate(name: str, path: str | os.PathLike[str] | None) -> Path:
    """The directory holding the four IDX files of ``name``: ``path`` if given, else the first complete one."""
    pretty = PRETTY.get(name, name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise DataError(f"{pretty}: data.path {p} is not a directory; point it at the directory holding the "
                            f"four IDX files or leave it unset to use the default locations")
        return p
    dirs = candidate_dirs(name)
    for d in dirs:
        if d.is_dir() and _complete(d):
            return d
    looked = ", ".join(str(d) for d in dirs)
    if not os.environ.get(ENV_VAR):
        looked += f"; ${ENV_VAR} unset"
    hint = "install Debian's dataset-fashion-mnist, " if name == "fashion_mnist" else ""
    raise DataError(f"{pretty} not found (looked in {looked}): {hint}run `nasforge download "
                    f"{name.replace('_', '-')}`, or set data.path")
