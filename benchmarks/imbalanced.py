"""`nasforge auto` on imbalanced tables, ranked by accuracy (the default) and by `--metric balanced_accuracy`.

Three imbalanced tables, each split 75/25 stratified (so the test split is as imbalanced as the training data)
and written as train.csv/test.csv:

- scikit-learn's digits as a 64-column table (which auto reads as 8x8 images: its columns correlate as pixels do),
  class k kept with probability 0.1 ** (k / 9): class 0 whole, class 9 one in ten
  (a largest class ~10x the smallest);
- breast cancer with the malignant class (0) kept one in five (~8x fewer than benign);
- (``synthetic``) scikit-learn's make_classification: 4,000 rows, 20 features (6 informative), three classes
  in shares 80/15/5% with 3% of labels flipped: a test split of 1,000 holds ~50 of the rarest class, where the
  two bundled tables hold 10-20 (one example there moves balanced accuracy by 5 points).

For each, two `nasforge auto` runs, one after the other, with the same seed and budget: the default, and
`--metric balanced_accuracy` (ranking by balanced accuracy, a class-weighted loss, and scikit-learn's references
with class_weight="balanced"). Each records test accuracy and balanced accuracy of the searched network, the
MLP reference and scikit-learn's models. One heavy job at a time. Writes benchmarks/results/imbalanced.json.

    .venv/bin/python benchmarks/imbalanced.py [--budget 180s] [--seeds 0] [--only digits,cancer,synthetic] [--name N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from auto_small import arm


def imbalanced(name: str, folder: Path, seed: int = 0) -> str:
    """The imbalanced table ``name`` (digits, cancer, synthetic) as train.csv and test.csv in a folder of ``folder``."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    if name == "digits":
        x, y = load_digits(return_X_y=True)
        keep = rng.random(len(y)) < 0.1 ** (y / 9)
    elif name == "synthetic":
        from sklearn.datasets import make_classification

        x, y = make_classification(4000, n_features=20, n_informative=6, n_classes=3, weights=[0.8, 0.15, 0.05],
                                   flip_y=0.03, class_sep=1.0, random_state=seed)
        keep = np.ones(len(y), dtype=bool)
    else:
        x, y = load_breast_cancer(return_X_y=True)
        keep = (y == 1) | (rng.random(len(y)) < 0.2)
    frame = pd.DataFrame(x[keep], columns=[f"f{i}" for i in range(x.shape[1])])
    frame["label"] = y[keep]
    train, test = train_test_split(frame, test_size=0.25, stratify=frame["label"], random_state=seed)
    out = folder / f"{name}_imbalanced"
    out.mkdir()
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    return str(out)


def figures(m: dict[str, Any] | None) -> dict[str, Any] | None:
    if m is None:
        return None
    acc = m.get("test_accuracy", m.get("accuracy"))
    bacc = m.get("test_balanced_accuracy", m.get("balanced_accuracy"))
    return {"test_accuracy": acc, "test_balanced_accuracy": bacc,
            **({"architecture": m["architecture"]} if "architecture" in m else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="180s")
    p.add_argument("--seeds", default="0")
    p.add_argument("--only", default="digits,cancer")
    p.add_argument("--name", default="imbalanced")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.only.split(","):
            data = imbalanced(name, folder)
            train = np.loadtxt(Path(data) / "train.csv", delimiter=",", skiprows=1)[:, -1].astype(int)
            counts = np.bincount(train)
            for seed in (int(s) for s in args.seeds.split(",")):
                for metric in ("accuracy", "balanced_accuracy"):
                    tag = f"{name}-{seed}-{metric}"
                    print(f"{tag}: nasforge auto {data} --time-budget {args.budget} --metric {metric}", flush=True)
                    rec, wall, err = arm(data, args.budget, folder / f"{tag}.db", folder / f"{tag}.json",
                                         "--seed", str(seed), "--metric", metric)
                    row: dict[str, Any] = {"data": name, "seed": seed, "metric": metric, "wall_s": round(wall, 1),
                                           "train_counts": counts.tolist()}
                    if rec is None:
                        rows.append({**row, "error": err})
                        continue
                    searched = rec["searched"] or rec["reference"]  # no search: the reference, the whole budget
                    row.update({"time_budget_s": rec["time_budget_s"], "searched": figures(searched),
                                "no_search": rec["searched"] is None,
                                "reference": figures(rec["reference"]) if rec["searched"] is not None else None,
                                "others": {k: figures(v) for k, v in rec["others"].items()},
                                "trials": rec["trials"], "why_metric": rec["plan"]["why"].get("metric")})
                    rows.append(row)
                    print({k: row.get(k) for k in ("wall_s", "searched", "reference", "others", "error")},
                          flush=True)
    write_result(args.name, __doc__.splitlines()[0], "python benchmarks/imbalanced.py " + " ".join(sys.argv[1:]),
                 {"runs": rows})


if __name__ == "__main__":
    main()
