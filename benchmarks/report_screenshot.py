"""The HTML report of a real search, opened in headless Chromium: every plot present, a screenshot kept.

Writes ``nasforge report DB``, loads it in Debian's Chromium (offline: the page is one file with its
plots embedded), checks that the page's script decoded every figure, and saves a full-page screenshot
as ``benchmarks/results/NAME.png`` with the figure list in ``NAME.json``.

    .venv/bin/python benchmarks/report_screenshot.py runs/fashion_mnist.db
"""

from __future__ import annotations

import argparse
import shlex
import sys

from _common import RESULTS, write_result

from nasforge import api
from nasforge.report.browser import plots_in, plots_loaded, remote_refs, render
from nasforge.report.html import FIGURES


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--out", default="runs/report", help="where the report is written")
    ap.add_argument("--name", default="fmnist_report")
    ap.add_argument("--height", type=int, default=4600, help="screenshot height in pixels")
    args = ap.parse_args()
    page = api.report(args.db, out=args.out)
    shot = RESULTS / f"{args.name}.png"
    try:
        dom = render(page, shot, height=args.height)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    expected, found, loaded = sorted(f.id for f in FIGURES), sorted(plots_in(dom)), plots_loaded(dom)
    payload = {"db": args.db, "report": str(page), "figures_expected": expected, "figures_in_page": found,
               "plots_loaded_by_script": loaded, "all_present": found == expected and loaded == len(expected),
               "screenshot": str(shot.relative_to(RESULTS.parent.parent)), "screenshot_bytes": shot.stat().st_size,
               "remote_references": remote_refs(dom)}
    print(write_result(args.name, __doc__.splitlines()[0], "python " + " ".join(map(shlex.quote, sys.argv)),
                       payload))
    print(payload)
    if not payload["all_present"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
