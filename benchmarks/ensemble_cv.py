"""Does averaging several trainings of one network beat one training on small tables? (``retrain.ensemble``)

Repeated stratified 5-fold cross-validation (2 repeats) on four tables, no test split touched: auto's reference
MLP trained with auto's table recipe (AdamW, one-cycle, 200 epochs, as a converged final training), one training
(seed 0) against the average of the class probabilities of ``--members`` trainings (seeds 0..N-1), with
scikit-learn's logistic regression on the same folds. The breast-cancer table is the 80% training part of the
split `auto_small.py` writes (its test rows are never read here).

    .venv/bin/python benchmarks/ensemble_cv.py            # ~5 minutes on 2 cores
    .venv/bin/python benchmarks/ensemble_cv.py --bagged --name ensemble_cv_bagged   # and bagging by folds

Writes ``benchmarks/results/ensemble_cv.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from _common import write_result

from nasforge.autoplan import recipe_for
from nasforge.evaluate.trainer import Recipe, predict, train
from nasforge.final.references import make_reference


def tables() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_breast_cancer, load_wine, make_classification
    from sklearn.model_selection import train_test_split

    b = load_breast_cancer()
    x, _, y, _ = train_test_split(b.data, b.target, test_size=0.2, stratify=b.target, random_state=0)
    yield "breast_cancer_train", x, y
    w = load_wine()
    yield "wine", w.data, w.target
    x, y = make_classification(600, 12, n_informative=6, n_classes=3, n_clusters_per_class=1, random_state=0)
    yield "generated_3class", x, y
    x, y = make_classification(600, 20, n_informative=10, n_classes=2, flip_y=0.05, random_state=1)
    yield "generated_2class_noisy", x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=200)
    ap.add_argument("--bagged", action="store_true",
                    help="also average N networks each trained on (N-1)/N of the training rows (bagging by folds)")
    ap.add_argument("--blend", action="store_true",
                    help="also average the networks' class probabilities with logistic regression's (half each)")
    ap.add_argument("--name", default="ensemble_cv")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold

    recipe = Recipe(**recipe_for("flat"))
    rows: dict[str, Any] = {}
    for name, x_all, y_all in tables():
        acc: dict[str, list[float]] = {"one": [], "average": [], **({"bagged": []} if args.bagged else {}),
                                       **({"blend": []} if args.blend else {}), "logistic_regression": []}
        nll: dict[str, list[float]] = {"one": [], "average": [], **({"bagged": []} if args.bagged else {}),
                                       **({"blend": []} if args.blend else {}), "logistic_regression": []}
        t0 = time.time()
        n_classes = int(y_all.max()) + 1
        for tr, te in RepeatedStratifiedKFold(n_splits=5, n_repeats=2, random_state=0).split(x_all, y_all):
            mu, sd = x_all[tr].mean(0), x_all[tr].std(0) + 1e-9
            x_tr = torch.tensor((x_all[tr] - mu) / sd, dtype=torch.float32)
            x_te = torch.tensor((x_all[te] - mu) / sd, dtype=torch.float32)
            y_tr, y_te = torch.tensor(y_all[tr]), torch.tensor(y_all[te])
            probs = []
            for seed in range(args.members):
                torch.manual_seed(seed)
                model = make_reference("mlp", (x_all.shape[1],), n_classes)[1]
                train(model, x_tr, y_tr, epochs=args.epochs, recipe=recipe, seed=seed, n_classes=n_classes)
                probs.append(torch.softmax(predict(model, x_te, channels_last=False), 1))
            bagged = []  # AutoGluon's way: each member on 4/5 of the training rows (inner folds), not all of them
            if args.bagged:
                from sklearn.model_selection import StratifiedKFold

                inner = StratifiedKFold(n_splits=args.members, shuffle=True, random_state=0)
                for seed, (keep, _) in enumerate(inner.split(x_tr.numpy(), y_all[tr])):
                    torch.manual_seed(seed)
                    model = make_reference("mlp", (x_all.shape[1],), n_classes)[1]
                    train(model, x_tr[keep], y_tr[keep], epochs=args.epochs, recipe=recipe, seed=seed,
                          n_classes=n_classes)
                    bagged.append(torch.softmax(predict(model, x_te, channels_last=False), 1))
            lr = LogisticRegression(max_iter=2000).fit(x_tr.numpy(), y_all[tr])
            p_lr = torch.tensor(lr.predict_proba(x_te.numpy()), dtype=torch.float32)
            arms = [("one", probs[0]), ("average", torch.stack(probs).mean(0)), ("logistic_regression", p_lr)]
            if bagged:
                arms.append(("bagged", torch.stack(bagged).mean(0)))
            if args.blend:  # AutoGluon's weighted ensemble across model kinds, at equal weights
                arms.append(("blend", (torch.stack(probs).mean(0) + p_lr) / 2))
            for arm, p in arms:
                acc[arm].append(float((p.argmax(1) == y_te).float().mean()))
                nll[arm].append(float(-torch.log(p[torch.arange(len(y_te)), y_te] + 1e-7).mean()))
        rows[name] = {"rows": len(y_all), "features": int(x_all.shape[1]), "classes": n_classes,
                      "accuracy_mean": {k: round(100 * float(np.mean(v)), 2) for k, v in acc.items()},
                      "log_loss_mean": {k: round(float(np.mean(v)), 4) for k, v in nll.items()},
                      "folds": len(acc["one"]), "seconds": round(time.time() - t0, 1)}
        print(name, rows[name]["accuracy_mean"], rows[name]["log_loss_mean"], flush=True)
    out = write_result(args.name, "Repeated 5-fold CV on four tables: auto's reference MLP, one training vs the "
                       f"average of {args.members} (seeds 0..{args.members - 1})"
                       + (", bagged by inner folds" if args.bagged else "")
                       + (", their blend with logistic regression" if args.blend else "") + ", and logistic regression",
                       "benchmarks/ensemble_cv.py " + " ".join(sys.argv[1:]),
                       {"members": args.members, "epochs": args.epochs, "recipe": recipe_for("flat"), "tables": rows})
    print(out)


if __name__ == "__main__":
    main()
