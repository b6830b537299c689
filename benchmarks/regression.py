"""`nasforge auto` on a regression table (scikit-learn's diabetes data as CSV) against ridge regression's test RMSE.

- diabetes: 442 patients, 10 features, disease progression a year later (the target column); written as
  train.csv/test.csv, 80/20 by a seeded shuffle, the way benchmarks/auto_small.py writes its breast-cancer CSV.
  The target's whole numbers (214 values over 442 rows) read as a regression target, with no config.
- `nasforge auto diabetes --time-budget 5m`: search (5-fold cross-validation on so few rows), the final
  training of the searched network and of the MLP reference, one read of the test split, on which
  scikit-learn's ridge regression (StandardScaler + RidgeCV) and gradient boosting are scored too.

The searched network must beat ridge regression's test RMSE (lower is better; R² and MAE are recorded
beside it). Writes benchmarks/results/regression_diabetes.json, or the file given with --out (a quick check
of the script on a short budget goes there, not into the results).

    .venv/bin/python benchmarks/regression.py [--budget 5m] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result
from auto_small import arm


def diabetes_data(folder: Path) -> str:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    frame = load_diabetes(as_frame=True).frame  # ten features and the `target` column
    train, test = train_test_split(frame, test_size=0.2, random_state=0)
    out = folder / "diabetes"
    out.mkdir()
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    return str(out)


def summary(rec: dict[str, Any], budget: str, seed: int, wall: float) -> dict[str, Any]:
    s, r, others = rec["searched"], rec.get("reference"), rec.get("others") or {}
    ridge = others.get("ridge") or {}
    out: dict[str, Any] = {
        "data": "diabetes", "seed": seed, "command": f"nasforge auto diabetes --time-budget {budget} --seed {seed}",
        "task": rec.get("task"), "time_budget_s": rec["time_budget_s"], "wall_s": round(wall, 1),
        "within_budget": wall <= 1.05 * rec["time_budget_s"], "searched": s, "reference": r, "others": others,
        "trials": rec["trials"], "seconds": rec["seconds"]}
    if s and s.get("test_rmse") is not None:
        if "rmse" in ridge:
            out["beats_ridge"] = s["test_rmse"] < ridge["rmse"]
        if r and r.get("test_rmse") is not None:
            out["beats_reference"] = s["test_rmse"] < r["test_rmse"]
    out["plan"] = {k: rec["plan"].get(k) for k in ("search_seconds", "final_seconds_each", "with_reference",
                                                   "folds", "trial_epochs", "rungs", "expected_trials", "why")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="5m", help="nasforge auto's --time-budget (default 5m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the JSON here instead of benchmarks/results/regression_diabetes.json")
    args = p.parse_args()
    command = "python benchmarks/regression.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = diabetes_data(folder)
        print(f"diabetes: nasforge auto {data} --time-budget {args.budget} --seed {args.seed}", flush=True)
        t0 = time.time()
        rec, wall, err = arm(data, args.budget, folder / "diabetes.db", folder / "diabetes.json",
                             "--seed", str(args.seed))
        row = summary(rec, args.budget, args.seed, wall) if rec is not None else {
            "data": "diabetes", "error": err, "wall_s": round(time.time() - t0, 1)}
    s, ridge = row.get("searched") or {}, (row.get("others") or {}).get("ridge") or {}
    print(json.dumps({"test_rmse": s.get("test_rmse"), "test_r2": s.get("test_r2"),
                      "ridge_rmse": ridge.get("rmse"), "reference_rmse": (row.get("reference") or {}).get("test_rmse"),
                      "beats_ridge": row.get("beats_ridge"), "wall_s": row.get("wall_s"), "error": row.get("error")}),
          flush=True)
    purpose = __doc__.splitlines()[0]
    if args.out:
        doc = {"purpose": purpose, "command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
               "machine": machine(), "runs": [row]}
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    else:
        write_result("regression_diabetes", purpose, command, {"runs": [row]})


if __name__ == "__main__":
    main()
