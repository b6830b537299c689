"""Open a report page in headless Chromium: the DOM its script left, and optionally a screenshot.

Shared by the report's browser test and ``benchmarks/report_screenshot.py``, so both judge a page the
same way: the figures the page embeds (``plots_in``) and how many its script decoded (``plots_loaded``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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
