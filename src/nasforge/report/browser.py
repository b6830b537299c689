"""Open a report page in headless Chromium: the DOM its script left, and optionally a screenshot.

Shared by the report's browser test and ``benchmarks/report_screenshot.py``, so both judge a page the
same way: the figures the page embeds (``plots_in``) and how many its script decoded (``plots_loaded``).
:class:`DevTools` drives a page over time (the live dashboard's test).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_PLOT = re.compile(r"""id=["']plot-([a-z_]+)["'][^>]*src=["']data:image/png;base64,([A-Za-z0-9+/=]*)["']""")


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def plots_in(page: str) -> dict[str, str]:
    """Plot id -> base64 payload of its embedded PNG, in page text or a browser's DOM."""
    return dict(_PLOT.findall(page))


def remote_refs(page: str) -> list[str]:
    """Every address the page would fetch from elsewhere (a self-contained report has none)."""
    return re.findall(r"""(?:src|href)\s*=\s*['"]?((?:https?:)?//[^'"\s>]+)""", page, flags=re.I)


def plots_loaded(dom: str) -> int | None:
    """How many figures the page's script decoded (its ``data-plots-loaded``), None if it never ran."""
    m = re.search(r'data-plots-loaded="(\d+)"', dom)
    return int(m.group(1)) if m else None


def render(page: Path, screenshot: Path | None = None, *, chromium: str | None = None, width: int = 1300,
           height: int = 4600, timeout: float = 120) -> str:
    """The DOM of ``page`` after its scripts ran in headless Chromium; with ``screenshot``, a PNG of it too."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed: apt-get install -y chromium (make setup does)")
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=timeout).stdout
    if screenshot is not None:
        screenshot.unlink(missing_ok=True)
        subprocess.run([*flags, f"--screenshot={screenshot}", page.as_uri()], capture_output=True, timeout=timeout,
                       check=True)
    return dom


# Runs in the child: Chromium reads DevTools commands from fd 3 and writes answers to fd 4.
_PIPES = ("import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); os.dup2(a, 3); os.dup2(b, 4); "
          "os.close(a); os.close(b); os.execv(sys.argv[3], sys.argv[3:])")


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``, standard
    library only): open a page and read, while its script runs, what it shows (``render`` sees one moment).

    Used by the dashboard's browser test, which watches the page's trial count rise during a search.
    """

    def __init__(self, chromium: str | None = None, *, width: int = 1300, height: int = 2000,
                 timeout: float = 60) -> None:
        import fcntl  # POSIX only, as the pipe Chromium reads from fd 3

        exe = chromium or find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium is not installed: apt-get install -y chromium (make setup does)")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="nasforge-chromium-")
        to_read, self._to = os.pipe()
        self._from, from_write = os.pipe()
        # above fd 9, so putting them on 3 and 4 in the child overwrites neither
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_read, from_write))
        os.close(to_read)
        os.close(from_write)
        flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
                 f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"]
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _PIPES, str(a), str(b), *flags], pass_fds=(a, b),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        finally:
            os.close(a)
            os.close(b)
        self._buf = b""
        self._id = 0
        self._session: str | None = None

    def call(self, method: str, params: dict[str, Any] | None = None, *, page: bool = True) -> dict[str, Any]:
        """One DevTools command (to the open page's session unless ``page=False``); its result."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if page and self._session is not None:
            msg["sessionId"] = self._session
        os.write(self._to, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return dict(answer.get("result", {}))
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {method} within {self.timeout:g} s")
            chunk = os.read(self._from, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium exited")
            self._buf += chunk

    def open(self, url: str) -> None:
        """Open ``url`` in a new tab and wait until it has loaded; later calls go to it."""
        target = self.call("Target.createTarget", {"url": url}, page=False)["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                  page=False)["sessionId"]
        deadline = time.monotonic() + self.timeout
        while not self.evaluate("location.href !== 'about:blank' && document.readyState === 'complete'"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load within {self.timeout:g} s")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the open page (JSON-able values)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails'].get('text')}")
        return r.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", page=False)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
