"""Atomic file writes: a file is either its previous version or the complete new one, never half of it.

Every file nasforge writes for later (checkpoints, final weights, exports, the report and its figures,
benchmark results) goes through :func:`replace`: the content is written to a temporary file with a
unique name in the target's folder (two writers never share one), flushed to disk, and renamed over
the target. If the write fails (a full disk, an exception, an interrupt) the temporary file is
removed and the previous file is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["replace", "torch_save", "write_bytes", "write_text"]


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else briefly set and restored."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def replace(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path``, flush it to disk and rename it to ``path``.

    ``write`` may write by name (``torch.jit.save``, ONNX's exporter) and may check what it wrote; if it
    or anything after it raises, the temporary file is removed and ``path`` keeps its previous content.
    The new file gets the permissions of the one it replaces (a new one: the usual ``0o666 & ~umask``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        write(tmp)
        with open(tmp, "r+b") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return replace(path, write)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, encoded as ``encoding`` (UTF-8, whatever the locale)."""
    return write_bytes(path, text.encode(encoding))


def torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    import torch

    return replace(path, lambda tmp: torch.save(obj, tmp))
