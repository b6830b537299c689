"""Fetch Fashion-MNIST / MNIST for machines with internet, verified against hard-coded checksums.

Each file is streamed into a temporary file next to its destination, checked, then renamed into place
atomically, so an interrupted or corrupted download never leaves a file the loaders would trust.

A file is accepted when the MD5 of the published .gz matches, or when the SHA-256 of its decompressed
payload does: Debian (and some mirrors) re-compress the same data, which changes the .gz bytes but not
the content.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge.errors import DataError

TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One published file and what its bytes must hash to."""

    name: str
    md5: str  # of the file as published (gzip-compressed)
    raw_sha256: str | None = None  # of the decompressed payload, where known


@dataclass(frozen=True)
class RemoteDataset:
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]


# Official MD5s from github.com/zalandoresearch/fashion-mnist; payload SHA-256s computed from Debian's
# dataset-fashion-mnist (whose decompressed files match the official ones; its .gz wrappers do not).
# MNIST MD5s as published by torchvision.
REMOTE: dict[str, RemoteDataset] = {
    "fashion_mnist": RemoteDataset(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                       "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe",
                       "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79",
                       "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310",
                       "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
    ),
    "mnist": RemoteDataset(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
}

Opener = Callable[..., Any]


def default_cache_dir(name: str) -> Path:
    """``~/.cache/nasforge/<name>``: where downloads go and where loaders look after $NASFORGE_DATA_DIR."""
    return Path.home() / ".cache" / "nasforge" / name


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    if key not in REMOTE:
        raise DataError(f"cannot download {name!r}: only {', '.join(sorted(REMOTE))} can be downloaded; "
                        "fetch other data sets by hand and set data.path")
    return key


def _digests(path: Path) -> tuple[str, str | None]:
    """(MD5 of the file, SHA-256 of its gunzipped payload or None when it is not valid gzip)."""
    md5 = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            md5.update(block)
    sha = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as gz:
            for block in iter(lambda: gz.read(_CHUNK), b""):
                sha.update(block)
    except (OSError, EOFError, zlib.error):
        return md5.hexdigest(), None
    return md5.hexdigest(), sha.hexdigest()


def verify(path: Path, spec: RemoteFile) -> bool:
    """True when ``path`` is the published file, or a re-compressed copy of the same payload."""
    md5, raw_sha = _digests(path)
    return md5 == spec.md5 or (spec.raw_sha256 is not None and raw_sha == spec.raw_sha256)


def _fetch(url: str, tmp: Path, opener: Opener) -> None:
    """Stream ``url`` into ``tmp``; any network failure becomes OSError / HTTPException for the caller."""
    with opener(url, timeout=TIMEOUT_S) as response, tmp.open("wb") as out:
        status = getattr(response, "status", None)
        if status is not None and status >= 400:
            raise OSError(f"HTTP {status}")
        for block in iter(lambda: response.read(_CHUNK), b""):
            out.write(block)


def download(
    name: str, dest: Path, *, base_url: str | None = None, opener: Opener = urllib.request.urlopen
) -> Path:
    """Download ``name`` (fashion_mnist or mnist) into ``dest`` and return ``dest``.

    Files already present and verified are kept. ``base_url`` replaces the built-in mirrors; ``opener``
    is called like ``urllib.request.urlopen(url, timeout=...)`` (tests pass a fake one).
    """
    key = _canonical(name)
    remote = REMOTE[key]
    dest = Path(dest).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {dest}: {err.strerror or err}; choose a writable destination") from None
    mirrors = (base_url,) if base_url else remote.mirrors
    for spec in remote.files:
        target = dest / spec.name
        if target.is_file() and verify(target, spec):
            continue
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + spec.name
            fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=dest)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                try:
                    _fetch(url, tmp, opener)
                except (OSError, http.client.HTTPException, ValueError) as err:
                    if isinstance(err, urllib.error.HTTPError):
                        reason: object = f"HTTP {err.code} {err.reason}"
                    else:
                        reason = getattr(err, "reason", None) or err
                    failures.append(f"{url}: {reason}")
                    continue
                if not verify(tmp, spec):
                    failures.append(f"{url}: checksum mismatch (corrupted or altered download)")
                    continue
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            break
        else:
            why = "; ".join(failures).replace("\n", " ")
            raise DataError(f"cannot download {spec.name} ({why}): check the network or proxy and "
                            f"retry, or copy the official files into {dest} by hand")
    return dest
