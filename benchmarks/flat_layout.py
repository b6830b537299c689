"""Flat features read by what they measure: `nasforge auto` on 2-D data whose columns are pixels or signal steps,
with the layout inferred (neighbouring columns correlate: data/base.py's flat_layout) against the same data read
as a table (`--layout tabular`, what every 2-D array and CSV was before), side by side, one run after the other.

- pixels: a Kaggle-style CSV folder of Fashion-MNIST (train.csv: 6,000 rows of label,pixel1..pixel784 from the
  training IDX files; test.csv: 1,000 from the t10k files), `--time-budget 3m`
- signals: an .npz of shape (N, 200): low-pass noise and, at a random position, a 32-step burst whose frequency
  (5 classes) is the label (2,000 training and 500 test signals), `--time-budget 2m`
- digits: scikit-learn's 8x8 digits written as one CSV of 64 pixel columns and a label (auto holds out 20% as
  the test split), `--time-budget 2m`

    .venv/bin/python benchmarks/flat_layout.py [--only pixels,signals,digits] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

NASFORGE = [sys.executable, "-m", "nasforge"]


def pixels(folder: Path) -> str:
    from nasforge.data.idx import locate, read_idx_dir

    x, y, xt, yt = read_idx_dir(locate("fashion_mnist", None))
    out = folder / "fmnist_csv"
    out.mkdir()
    header = "label," + ",".join(f"pixel{i + 1}" for i in range(784))
    for name, xs, ys, n in (("train", x, y, 6000), ("test", xt, yt, 1000)):
        rows = np.hstack([ys[:n, None], xs[:n].reshape(n, -1)]).astype(np.int64)
        np.savetxt(out / f"{name}.csv", rows, fmt="%d", delimiter=",", header=header, comments="")
    return str(out)


def signals(folder: Path) -> str:
    rng = np.random.default_rng(0)
    t = np.arange(32)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        # low-pass noise (neighbouring steps correlate, as a sensor's do) and, at a random position, a 32-step
        # burst whose frequency is the class: found by what it looks like wherever it is, as a convolution does
        y = rng.integers(0, 5, n)
        noise = rng.normal(size=(n, 207))
        x = np.stack([np.convolve(r, np.ones(8) / np.sqrt(8), mode="valid") for r in noise])
        at = rng.integers(0, 200 - 32, n)
        for i in range(n):
            x[i, at[i]:at[i] + 32] += 2.0 * np.sin(2 * np.pi * (1 + y[i]) * t / 32) * np.hanning(32)
        return x.astype(np.float32), y

    (x, y), (xt, yt) = make(2000), make(500)
    np.savez(folder / "signals.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    return str(folder / "signals.npz")


def digits(folder: Path) -> str:
    from sklearn.datasets import load_digits

    d = load_digits()
    header = ",".join(f"p{i}" for i in range(64)) + ",label"
    np.savetxt(folder / "digits.csv", np.hstack([d.data, d.target[:, None]]).astype(np.int64), fmt="%d",
               delimiter=",", header=header, comments="")
    return str(folder / "digits.csv")


def arm(data: str, budget: str, folder: Path, tag: str, *extra: str) -> dict[str, Any]:
    db, record = folder / f"{tag}.db", folder / f"{tag}.json"
    log = Path(tempfile.gettempdir()) / f"nasforge-bench-{tag}.log"
    print(f"  {tag}: nasforge auto {Path(data).name} --time-budget {budget} {' '.join(extra)} (output: {log})",
          flush=True)
    t0 = time.time()
    with log.open("w") as out:
        proc = subprocess.run([*NASFORGE, "auto", data, "--time-budget", budget, "--db", str(db), "--json",
                               str(record), *extra], stdout=out, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = round(time.time() - t0, 1)
    if proc.returncode != 0:
        return {"error": (log.read_text().strip().splitlines() or ["(no output)"])[-1], "wall_s": wall}
    rec = json.loads(record.read_text())
    best = rec["searched"] or rec["reference"]  # no search: the reference trained for the whole budget
    return {"wall_s": wall, "total_s": rec["seconds"]["total"], "time_budget_s": rec["time_budget_s"],
            "layout": rec["plan"]["kind"],
            "why_data": rec["plan"]["why"].get("data"), "why_search": rec["plan"]["why"].get("search"),
            "why_metric": rec["plan"]["why"].get("metric"),  # None where the classes are balanced
            "test_accuracy": best.get("test_accuracy"), **({"test_rmse": best["test_rmse"]} if "test_rmse" in best
                                                             else {}),
            "architecture": best["architecture"], "params": best["params"],
            "searched": rec["searched"] is not None,
            "reference": None if rec["reference"] is None else {k: rec["reference"][k] for k in
                                                                ("name", "test_accuracy", "test_rmse")
                                                                if k in rec["reference"]},
            "others": {k: v.get("accuracy", v.get("rmse")) for k, v in (rec["others"] or {}).items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="pixels,signals,digits")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every time budget")
    args = p.parse_args()
    makers = {"pixels": (pixels, 180), "signals": (signals, 120), "digits": (digits, 120)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.only.split(","):
            make, seconds = makers[name]
            data, budget = make(folder), f"{round(seconds * args.scale)}s"
            print(f"{name}:", flush=True)
            inferred = arm(data, budget, folder, f"flat-{name}")
            table = arm(data, budget, folder, f"flat-{name}-tabular", "--layout", "tabular")
            row = {"data": name, "inferred": inferred, "tabular": table}
            if "error" not in inferred and "error" not in table:
                row["inferred_minus_tabular"] = round(inferred["test_accuracy"] - table["test_accuracy"], 4)
            rows.append(row)
            print(json.dumps({k: row.get(k) for k in ("data", "inferred_minus_tabular")}), flush=True)
    write_result("flat_layout", __doc__.splitlines()[0], "python benchmarks/flat_layout.py " + " ".join(sys.argv[1:]),
                 {"runs": rows})


if __name__ == "__main__":
    main()
