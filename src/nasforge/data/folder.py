"""A folder of image files, one subfolder per class: how most people keep their own images (Keras'
``image_dataset_from_directory`` and torchvision's ``ImageFolder`` read the same layout).

``ROOT/<class>/*.png`` (no test split: one is held out), or ``ROOT/train/<class>/`` with ``ROOT/test/<class>/``.
Images are read with Pillow (installed with matplotlib), to one size: the most common one among the training
images, scaled down so its longer side is at most :data:`MAX_SIDE` (the stage space's stem keeps the input's
resolution: 224-pixel photos would cost ~12x a 64-pixel one per step, on a CPU hours an epoch). Grey where every
image is, else RGB. An unreadable file is refused by name, not skipped: a silently smaller data set is worse.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.data.files import RawSplits
from nasforge.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_SIDE = 64
SPLIT_NAMES = (("train", "test"), ("training", "testing"))


def _images_in(folder: Path) -> list[Path]:
    return sorted(q for q in folder.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES
                  and not q.name.startswith("."))


def class_folders(root: Path) -> list[Path]:
    """The subfolders of ``root`` that hold image files (hidden ones, such as .ipynb_checkpoints, left out)."""
    if not root.is_dir():
        return []
    return sorted(q for q in root.iterdir() if q.is_dir() and not q.name.startswith(".") and _images_in(q))


def image_folder_split(root: Path) -> tuple[Path, Path | None] | None:
    """(the training root, the test root or None) of a folder of class folders; None where ``root`` is not one."""
    for train, test in SPLIT_NAMES:
        if class_folders(root / train):
            return root / train, (root / test if class_folders(root / test) else None)
    return (root, None) if len(class_folders(root)) >= 2 else None


@contextlib.contextmanager
def _image(f: Path) -> Iterator[Any]:
    """``PIL.Image.open(f)``, where an unreadable file is a one-line DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            yield im
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"cannot read image {f}: {err}; remove the file or save it again as PNG or JPEG") from None


def _headers(files: list[Path]) -> tuple[list[tuple[int, int]], bool]:
    """Each file's (height, width), read from its header alone (Pillow opens lazily), and whether every one is
    grey: the size is chosen before any pixels are read, so 100,000 photos are never held at full size at once."""
    sizes: list[tuple[int, int]] = []
    grey = True
    for f in files:
        with _image(f) as im:
            sizes.append((im.height, im.width))
            grey = grey and im.mode in ("1", "L", "LA", "I", "I;16", "F")
    return sizes, grey


def _size(sizes: list[tuple[int, int]]) -> tuple[tuple[int, int], str | None]:
    """The (height, width) every image gets, and a note where that is not the images' own size."""
    counts = Counter(sizes)
    (h, w), _ = counts.most_common(1)[0]
    notes = []
    if len(counts) > 1:
        notes.append(f"images of {len(counts)} sizes resized to the most common, {w}x{h}")
    if max(h, w) > MAX_SIDE:
        f = MAX_SIDE / max(h, w)
        h2, w2 = max(1, round(h * f)), max(1, round(w * f))
        notes.append(f"scaled from {w}x{h} to {w2}x{h2}: the searched networks keep the input's resolution "
                     f"to their first stage, so larger images cost hours an epoch on a CPU")
        h, w = h2, w2
    return (h, w), "; ".join(notes) or None


def _load(files: list[Path], size: tuple[int, int], grey: bool) -> np.ndarray:
    """The files' pixels, each resized to ``size`` as it is read: (N, H, W, 1 or 3) uint8."""
    from PIL import Image

    h, w = size
    out = np.empty((len(files), h, w, 1 if grey else 3), dtype=np.uint8)
    for i, f in enumerate(files):
        with _image(f) as im:
            im = im.convert("L" if grey else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            a = np.asarray(im)
        out[i] = a[..., None] if grey else a
    return out


def _labelled(folders: list[Path], classes: tuple[str, ...], unknown: str) -> tuple[list[Path], np.ndarray]:
    """The images of class folders, labelled by the folder's index in ``classes``; a folder of another name is a
    one-line error that ends with ``unknown`` (what to do about it)."""
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for q in folders:
        if q.name not in index:
            raise DataError(f"{q} is a class {unknown}")
        found = _images_in(q)
        files += found
        labels += [index[q.name]] * len(found)
    return files, np.array(labels, dtype=np.int64)


def image_inputs(folder: Path, classes: tuple[str, ...]) -> tuple[list[Path], np.ndarray | None]:
    """The image files of a folder of new examples, in the order predictions list them, and their labels: where the
    folder holds class folders (the training folder's names), each image is labelled by its folder's name, else
    the images lying in it are read, unlabelled."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; give a folder of image files (or of class folders of them)")
    sub = class_folders(folder)
    if not sub:
        loose = _images_in(folder)
        if not loose:
            raise DataError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}); give a folder of them")
        return loose, None
    return _labelled(sub, classes, f"the training images do not have ({', '.join(classes)}); give the training "
                                   "folder's class names, or the images without class folders")


def read_image_inputs(path: str | os.PathLike[str], reader: dict[str, Any],
                      classes: tuple[str, ...]) -> tuple[list[Path], np.ndarray, np.ndarray | None]:
    """(files, pixels, labels or None) of a folder of new examples (:func:`image_inputs`), read at the size and
    colour a :func:`read_image_folder` stored in ``reader``: no training image is read."""
    files, labels = image_inputs(Path(path).expanduser(), classes)
    h, w = reader["size"]
    return files, _load(files, (int(h), int(w)), bool(reader["grey"])), labels


def read_image_folder(path: str | os.PathLike[str], inputs: str | os.PathLike[str] | None = None) -> RawSplits:
    """The images of a folder of class folders (:func:`image_folder_split`), labelled by their folder's name.

    ``inputs``: a folder of new examples (:func:`image_inputs`), read at the training images' size and colour into
    :attr:`~nasforge.data.files.RawSplits.inputs` (``nasforge predict``), labelled where it has class folders."""
    root = Path(path).expanduser()
    split = image_folder_split(root)
    if split is None:
        raise DataError(f"{root} holds no class folders of images: give ROOT/<class>/*.png (two classes or more), "
                        f"or ROOT/train/<class>/ and ROOT/test/<class>/ ({', '.join(IMAGE_SUFFIXES)})")
    train_root, test_root = split
    classes = tuple(q.name for q in class_folders(train_root))
    if len(classes) < 2:
        raise DataError(f"{train_root} has one class folder ({classes[0]}); give one folder per class, two or more")

    def files_of(r: Path) -> tuple[list[Path], np.ndarray]:
        return _labelled(class_folders(r), classes, f"the training folder {train_root} does not have; give the test "
                                                    "split the training split's class folders")

    train_files, y_train = files_of(train_root)
    sizes, grey = _headers(train_files)
    test_files: list[Path] = []
    y_test = None
    if test_root is not None:
        test_files, y_test = files_of(test_root)
        grey = grey and _headers(test_files)[1]
    size, note = _size(sizes)
    x_train = _load(train_files, size, grey)
    x_test = _load(test_files, size, grey) if test_root is not None else None
    reader = {"source": "images", "size": list(size), "grey": grey}
    # after the size and the colour are chosen as in training, read as predict reads them later
    new = None if inputs is None else read_image_inputs(inputs, reader, classes)[1:]
    what = (f"{root.name}: {len(train_files):,} {'grey' if grey else 'RGB'} images in {len(classes)} class folders"
            + (f", {len(test_files):,} in {test_root.name}/" if test_root is not None else ""))
    return RawSplits(x_train, y_train, x_test, y_test, classes, notes=(what + (f"; {note}" if note else ""),),
                     inputs=new, reader=reader)
