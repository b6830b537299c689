"""The HTML report of a real search, opened in headless Chromium: every plot present, a screenshot kept.

Writes ``nasforge report DB``, loads it in Debian's Chromium (offline: the page is one file with its
plots embedded), checks that the page's script decoded every figure, and saves a full-page screenshot
as ``benchmarks/results/NAME.png`` with the figure list in ``NAME.json``.

    .venv/bin/python benchmarks/report_screenshot.py runs/fashion_mnist.db
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys

from _common import RESULTS, write_result

from nasforge import api
from nasforge.report.html import FIGURES


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--out", default="runs/report", help="where the report is written")
    ap.add_argument("--name", default="fmnist_report")
    ap.add_argument("--height", type=int, default=4600, help="screenshot height in pixels")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium (make setup does)")
    page = api.report(args.db, out=args.out)
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size=1300,{args.height}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-plots-loaded="(\d+)"', dom)
    found = sorted(set(re.findall(r"""id=["']plot-([a-z_]+)["'][^>]*src=["']data:image/png;base64,""", dom)))
    expected = sorted(f.id for f in FIGURES)
    shot = RESULTS / f"{args.name}.png"
    subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    payload = {"db": args.db, "report": str(page), "figures_expected": expected, "figures_in_page": found,
               "plots_loaded_by_script": int(loaded.group(1)) if loaded else None,
               "all_present": found == expected and loaded is not None and int(loaded.group(1)) == len(expected),
               "screenshot": str(shot.relative_to(RESULTS.parent.parent)), "screenshot_bytes": shot.stat().st_size,
               "remote_references": sorted(set(re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", dom)))}
    print(write_result(args.name, __doc__.splitlines()[0], "python " + " ".join(map(shlex.quote, sys.argv)),
                       payload))
    print(payload)
    if not payload["all_present"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
