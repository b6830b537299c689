"""`nasforge auto` on three kinds of small data, each with only DATA and a time budget, as a new user runs it.

- digits (scikit-learn's bundled 8x8 images): `nasforge auto digits --time-budget 3m`
- a generated 1-D sequence set (nasforge.data.synthetic.make_sequences: 4,000 training signals, 10
  classes that are the order of two motifs at random positions), an .npz of shape (N, 1, 128):
  `nasforge auto sequences.npz --time-budget 10m`
- a CSV written from scikit-learn's bundled breast-cancer table (569 rows, 30 features; 80/20
  stratified train.csv/test.csv): `--time-budget 5m`
- (``--only rawtable``) the same table as a raw CSV: one file, a patient-id column, pandas' row index,
  three measurements as text, 10% of six columns' cells missing, the label as text in the last column
  ("malignant"/"benign"): `nasforge auto breast_cancer_raw.csv --time-budget 5m`

Each must beat its hand-designed reference on the test split (the same recipe; trained in the same
run for the same final-training time, or, where the plan trains the searched network alone, as its
own `--reference-only` arm for the whole budget); the table also beats logistic regression. One
heavy job at a time: the runs go one after another. Writes benchmarks/results/auto_small.json (or
``--name``). With ``--seeds 0,1,2`` every data set runs once per seed (both arms), and ``summary`` gives,
per data set, the mean test accuracy of each arm over the seeds and how many seeds the searched network
won: one seed's test split decides by a few examples, which is within run-to-run noise. ``--splits 0,1,2,3,4``
runs the table on that many 80/20 splits (split 0 is the one of every earlier result): its 114 test rows tell
models apart by one or two rows.

    .venv/bin/python benchmarks/auto_small.py [--only digits,sequence,table] [--seeds 0] [--scale 1.0] [--name N]
        [--splits 0]
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


def sequence_data(folder: Path) -> str:
    from nasforge.data.synthetic import make_sequences

    x, y = make_sequences(4000, seed=0)
    xt, yt = make_sequences(1000, seed=1)
    np.savez(folder / "sequences.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    # the .npz itself, as a new user gives it: its (N, 1, 128) shape reads as sequences (until 2026-12-06 a YAML
    # config here set data.layout: sequence, since a 3-D array was read as grey images)
    return str(folder / "sequences.npz")


def table_data(folder: Path, split: int = 0) -> str:
    """``split``: the seed of the 80/20 split (0: the split every earlier result used)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "label"})
    train, test = train_test_split(frame, test_size=0.2, stratify=frame["label"], random_state=split)
    out = folder / ("breast_cancer" if split == 0 else f"breast_cancer_split{split}")
    out.mkdir()
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    return str(out)


def raw_table_data(folder: Path) -> str:
    """The breast-cancer table as a user's raw CSV often is: one file (no test file), a patient-id column, the
    row index pandas writes, three measurements as text tertiles, and 10% of six columns' cells missing."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    frame["diagnosis"] = frame["diagnosis"].map({0: "malignant", 1: "benign"})
    rng = np.random.default_rng(0)
    for col in ("mean radius", "mean texture", "worst smoothness"):
        frame[col] = pd.qcut(frame[col], 3, labels=["small", "medium", "large"]).astype(str)
    for col in ("mean perimeter", "mean area", "mean concavity", "worst radius", "worst texture", "area error"):
        frame.loc[rng.random(len(frame)) < 0.1, col] = np.nan
    frame.insert(0, "patient", [f"P{i:05d}" for i in rng.permutation(len(frame))])
    out = folder / "breast_cancer_raw.csv"
    frame.to_csv(out)  # with pandas' row index, as to_csv writes by default
    return str(out)


def arm(data: str, budget: str, db: Path, record: Path, *extra: str) -> tuple[dict[str, Any] | None, float, str]:
    """One ``nasforge auto`` process: (its --json record or None, wall seconds, the last stderr line on failure)."""
    log = Path(tempfile.gettempdir()) / f"nasforge-bench-{db.stem}.log"  # what the user would see, to follow it
    print(f"  (output: {log})", flush=True)
    t0 = time.time()
    with log.open("w") as out:
        proc = subprocess.run([*NASFORGE, "auto", data, "--time-budget", budget, "--db", str(db), "--json",
                               str(record), *extra], stdout=out, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.time() - t0
    if proc.returncode != 0:
        return None, wall, (log.read_text().strip().splitlines() or ["(no output)"])[-1]
    return json.loads(record.read_text()), wall, ""


PLAN_KEYS = ("search_seconds", "final_seconds_each", "with_reference", "trial_epochs", "trial_fraction", "rungs",
             "expected_trials", "workers", "why")


def both_arms(options: tuple[str, ...]) -> tuple[str, ...]:
    """The searched arm's options that shape the reference too, so its own arm gets them: ``--max-params N``
    (the reference is narrowed to fit the size limit)."""
    i = options.index("--max-params") if "--max-params" in options else -1
    return options[i:i + 2] if i >= 0 else ()


def run(name: str, data: str, budget: str, folder: Path, *, seed: int = 0,
        record: Path | None = None, reference_record: Path | None = None,
        reference_row: dict[str, Any] | None = None, options: tuple[str, ...] = (),
        auto_only: bool = False) -> dict[str, Any]:
    """``nasforge auto DATA``; where its plan trained the searched network alone, the reference's own arm
    (``--reference-only``, the whole budget: a harder comparison than the shared one) after it.
    ``record``/``reference_record``: an arm's --json record from an earlier run of exactly that command,
    instead of running it (its wall time is then the record's own ``seconds.total``). ``reference_row``: the
    reference's own arm as an earlier results file holds it (--reference-from), for an A/B of the search alone.
    ``options``: more of auto's options for the searched arm (``--workers 1``: an A/B of trials at once).
    ``auto_only``: no reference arm where the plan trained the searched network alone (``reference`` None)."""
    s = ["--seed", str(seed)]
    rec: dict[str, Any] | None
    if record is not None:
        rec = json.loads(record.read_text())
        wall, err = float(rec["seconds"]["total"]), ""
    else:
        rec, wall, err = arm(data, budget, folder / f"{name}.db", folder / f"{name}.json", *s, *options)
    if rec is None:
        return {"data": name, "error": err, "wall_s": round(wall, 1)}
    out: dict[str, Any] = {
        "data": name, "seed": seed,
        "command": " ".join(["nasforge auto", Path(data).name, "--time-budget", budget, "--seed", str(seed), *options]),
        "time_budget_s": rec["time_budget_s"], "wall_s": round(wall, 1),
        "within_budget": wall <= 1.05 * rec["time_budget_s"], "searched": rec["searched"],
        "reference": rec["reference"], "others": rec["others"], "trials": rec["trials"], "seconds": rec["seconds"],
        "final": rec.get("final"), "leaderboard": rec.get("leaderboard")}  # absent in records before 2026-12-08
    if rec["searched"] is None:  # the plan held no search: the reference trained for the whole budget
        out["searched"] = {**rec["reference"], "no_search": rec["plan"]["why"]["search"]}
        out["reference"] = ({**reference_row, "reused": True} if reference_row is not None else
                            {**rec["reference"], "arm": "this run: with no search, the same network and training"})
    elif rec["reference"] is None and reference_row is not None:  # the arm as measured before, unchanged
        out["reference"] = {**reference_row, "reused": True}
    elif rec["reference"] is None and auto_only:  # the searched arm alone: no comparison in this row
        out["plan"] = {k: rec["plan"].get(k) for k in PLAN_KEYS}
        return out
    elif rec["reference"] is None:  # the reference's own arm, the whole budget
        if reference_record is not None:
            ref, ref_wall, err = json.loads(reference_record.read_text()), None, ""
        else:
            ref, ref_wall, err = arm(data, budget, folder / f"{name}-ref.db", folder / f"{name}-ref.json",
                                     *s, *both_arms(options), "--reference-only")
        if ref is None:
            return {**out, "error": f"reference arm: {err}"}
        out["reference"] = {**ref["reference"], "arm": "--reference-only (the whole budget)",
                            "wall_s": round(ref_wall, 1) if ref_wall is not None else ref["seconds"]["total"],
                            "seconds": ref["seconds"]}
    else:
        out["reference"] = {**rec["reference"], "arm": "in the same run, the same final-training time"}
    out["beats_reference"] = out["searched"]["test_accuracy"] > out["reference"]["test_accuracy"]
    if rec["others"]:
        out["beats_logistic_regression"] = (out["searched"]["test_accuracy"]
                                            > rec["others"]["logistic_regression"]["accuracy"])
    out["plan"] = {k: rec["plan"].get(k) for k in PLAN_KEYS}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="digits,sequence,table")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every time budget (a quick check: 0.3)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each data set runs once per seed")
    p.add_argument("--name", default=None, help="results file name (default: auto_small plus the parts run)")
    p.add_argument("--reference-from", default=None,
                   help="earlier results JSONs (comma-separated): reuse their --reference-only arms "
                   "(same data, seed and budget) "
                   "instead of rerunning them, to A/B a change to the search alone")
    p.add_argument("--splits", default="0",
                   help="table only: comma-separated seeds of its 80/20 split; each split runs once per seed (one "
                   "split's 114 test rows decide by one or two rows)")
    p.add_argument("--auto-options", default="", metavar="OPTS",
                   help="more options of the searched arm's `nasforge auto`, e.g. '--workers 1'")
    args = p.parse_args()
    options = tuple(args.auto_options.split())
    earlier: dict[tuple[str, int], dict[str, Any]] = {}
    if args.reference_from:
        for r in (r for f in args.reference_from.split(",") for r in json.loads(Path(f).read_text())["runs"]):
            if "--reference-only" in str(r.get("reference", {}).get("arm", "")):
                earlier[(r["data"], r["seed"])] = r["reference"]
    wanted = args.only.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = [int(s) for s in args.splits.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = {"digits": ("digits", 180), "sequence": (sequence_data(folder), 600),
                 "table": (table_data(folder), 300), "rawtable": (raw_table_data(folder), 300)}
        for name, split in ((n, sp) for n in wanted for sp in (splits if n == "table" else [0])):
            data, seconds = cases[name] if split == 0 else (table_data(folder, split), cases[name][1])
            budget = f"{round(seconds * args.scale)}s"
            for seed in seeds:
                print(f"{name}: nasforge auto {data} --time-budget {budget} --seed {seed}", flush=True)
                tag = f"{name}-{seed}" if len(seeds) > 1 else name
                rows.append(run(tag if split == 0 else f"{tag}-split{split}", data, budget, folder, seed=seed,
                                reference_row=earlier.get((name, seed)), options=options))
                rows[-1]["data"] = name
                rows[-1]["split"] = split
                print(json.dumps({k: rows[-1].get(k) for k in ("wall_s", "beats_reference",
                                                               "beats_logistic_regression", "error")}), flush=True)
    part = "" if wanted == ["digits", "sequence", "table"] else "_" + "_".join(wanted)  # a part keeps the rest
    name = args.name or ("auto_small" + part + ("" if args.scale == 1.0 else f"_x{args.scale:g}"))
    write_result(name, __doc__.splitlines()[0], "python benchmarks/auto_small.py " + " ".join(sys.argv[1:]),
                 {"runs": rows, "summary": summary(rows)})


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per data set, over the seeds (and splits) that finished: each arm's mean test accuracy and the searched
    network's wins."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        done = [r for r in rows if r["data"] == name and "error" not in r]
        if not done:
            continue
        mean = lambda xs: round(float(np.mean(xs)), 4)  # noqa: E731
        row: dict[str, Any] = {
            "seeds": [r["seed"] for r in done],
            **({"splits": [r["split"] for r in done]} if any(r.get("split") for r in done) else {}),
            "searched_mean": mean([r["searched"]["test_accuracy"] for r in done]),
            "reference_mean": mean([r["reference"]["test_accuracy"] for r in done]),
            "wins": sum(bool(r["beats_reference"]) for r in done),
            "ties": sum(r["searched"]["test_accuracy"] == r["reference"]["test_accuracy"] for r in done)}
        others = [r["others"]["logistic_regression"]["accuracy"] for r in done if r.get("others")]
        if others:
            row["logistic_regression_mean"] = mean(others)
            row["wins_over_logistic_regression"] = sum(bool(r.get("beats_logistic_regression")) for r in done)
        out[name] = row
    return out


if __name__ == "__main__":
    main()
