"""Where nasforge writes, and the rules that keep it there.

An experiment name becomes part of paths (checkpoints, retrained weights), and a name can come from
a database someone else wrote, so names are limited to a safe set. Folders nasforge writes into
carry a marker file; nasforge deletes only folders that carry it, and refuses to fill a folder that
holds someone else's files.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from nasforge.errors import NasforgeError

SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
MARKER = ".nasforge-owned"  # written into every folder nasforge creates to write in


def check_name(name: object, what: str = "experiment name") -> str:
    """``name`` if it is safe as one path component (``[A-Za-z0-9._-]``, at most 128, not ``.``/``..``)."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise NasforgeError(f"{what} {shown} is not allowed: use 1-128 letters, digits, '.', '_' or '-' "
                            "(no '/', spaces or '..'), e.g. fmnist-evolution")
    return name


def inside(path: Path, root: Path, what: str = "output") -> Path:
    """``path`` resolved, refused unless it lies inside ``root`` (both resolved, symlinks followed)."""
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise NasforgeError(f"{what} path {path} leads outside {root}; choose a path inside it")
    return resolved


def owned_dir(path: Path, ours: re.Pattern[str] | None = None) -> Path:
    """Create ``path`` (with parents) as a nasforge folder, or reuse one; refuse a foreign non-empty folder.

    A folder without the marker is taken over only if every name in it matches ``ours`` (what an
    older nasforge wrote there before folders carried the marker).
    """
    if path.exists() and not path.is_dir():
        raise NasforgeError(f"{path} exists and is not a folder: move it away or choose another --out")
    if path.is_dir() and not (path / MARKER).exists():
        foreign = [p.name for p in path.iterdir() if ours is None or not ours.fullmatch(p.name)]
        if foreign:
            raise NasforgeError(f"{path} holds files nasforge did not write (e.g. {foreign[0]!r}): choose another "
                                "--out, or an empty folder")
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).touch()
    return path


def is_owned(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / MARKER).is_file()


def remove_owned(path: Path) -> bool:
    """Delete ``path`` only if nasforge created it (it carries the marker); returns whether it did."""
    if not is_owned(path):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True
