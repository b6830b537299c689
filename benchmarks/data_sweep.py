"""Data a new user brings, that no test was tuned to: `nasforge auto CASE --time-budget 1m` on each of ~30 generated
files, recording whether it ran (or was refused in one line, where refusing is right), within its budget, how the
data were read (the plan's why-data line) and the test scores of the searched network, the reference and
scikit-learn's references.

The cases are generated here (numpy, scikit-learn's bundled tables, Pillow, Fashion-MNIST's IDX files for the image
folder); none is committed. Each case says what it checks; ``expect: "refused"`` where a one-line refusal naming the
fix is the right answer (missing labels, one class, formats nasforge does not read).

    .venv/bin/python benchmarks/data_sweep.py [--only reg_csv,semicolon_csv,...] [--budget 60] [--name N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from flat_layout import arm

Maker = Callable[[Path], str]


def _frame(name: str) -> Any:
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(as_frame=True).frame


def _people(n: int, rng: np.random.Generator) -> Any:
    import pandas as pd

    df = pd.DataFrame({"age": rng.integers(18, 80, n), "work": rng.choice(["Private", "Self-emp", "Gov", "?"], n),
                       "sex": rng.choice(["Male", "Female"], n), "hours": rng.normal(40, 10, n).round(1)})
    df["income"] = np.where(((df.age > 40) & (df.hours > 40)) | (df.work == "Self-emp"), ">50K", "<=50K")
    return df


def cases() -> dict[str, tuple[str, str, Maker]]:
    """name: (what it checks, expect "runs" or "refused", maker writing the file and returning its path)."""
    rng = np.random.default_rng(0)
    bc = _frame("breast_cancer")
    out: dict[str, tuple[str, str, Maker]] = {}

    def case(name: str, what: str, expect: str = "runs") -> Callable[[Maker], Maker]:
        def wrap(f: Maker) -> Maker:
            out[name] = (what, expect, f)
            return f
        return wrap

    @case("reg_csv", "a regression CSV (scikit-learn's diabetes, target by name)")
    def _(d: Path) -> str:
        _frame("diabetes").to_csv(d / "reg.csv", index=False)
        return str(d / "reg.csv")

    @case("text_csv", "text columns with '?' for missing, the label as text in the last column")
    def _(d: Path) -> str:
        _people(800, rng).to_csv(d / "people.csv", index=False)
        return str(d / "people.csv")

    @case("quoted_csv", "quoted cells holding commas")
    def _(d: Path) -> str:
        df = _people(800, rng)
        df["work"] = df["work"].map(lambda s: f"{s}, inc")
        df.to_csv(d / "quoted.csv", index=False)
        return str(d / "quoted.csv")

    @case("semicolon_csv", "semicolons between cells and decimal commas (European spreadsheets)")
    def _(d: Path) -> str:
        bc.iloc[:, [0, 1, 2, 3, -1]].to_csv(d / "semi.csv", sep=";", decimal=",", index=False)
        return str(d / "semi.csv")

    @case("gzip_csv", "a gzipped CSV")
    def _(d: Path) -> str:
        bc.to_csv(d / "bc.csv.gz", index=False, compression="gzip")
        return str(d / "bc.csv.gz")

    @case("index_csv", "pandas' row index saved as an unnamed first column")
    def _(d: Path) -> str:
        bc.to_csv(d / "indexed.csv")
        return str(d / "indexed.csv")

    def dated(path: Path, fmt: str | None, noise: np.ndarray) -> str:
        """900 days written as ``fmt`` (None: ISO), a noise column, and whether each is a summer day."""
        import pandas as pd

        when = pd.date_range("2020-01-01", periods=900, freq="D")
        pd.DataFrame({"when": when.astype(str) if fmt is None else when.strftime(fmt), "noise": noise,
                      "summer": when.month.isin([6, 7, 8]).astype(int)}).to_csv(path, index=False)
        return str(path)

    @case("dates_csv", "an ISO date column (the label depends on the month)")
    def _(d: Path) -> str:
        return dated(d / "dates.csv", None, rng.normal(size=900))

    @case("spreadsheet_numbers_csv", "numbers as spreadsheets write them: grouped thousands (\"1,001.0\", quoted), "
                                     "a currency sign ($14.13), a percent sign (13.2%)")
    def _(d: Path) -> str:
        df = bc.iloc[:, [0, 1, 2, 3, -1]].copy()
        df["mean area"] = df["mean area"].map(lambda v: f"{v:,.1f}")
        df["mean radius"] = df["mean radius"].map(lambda v: f"${v:.2f}")
        df["mean texture"] = df["mean texture"].map(lambda v: f"{v:.1f}%")
        df.to_csv(d / "formatted.csv", index=False)
        return str(d / "formatted.csv")

    @case("day_first_dates_csv", "dates written day first (31/01/2020; the label depends on the month)")
    def _(d: Path) -> str:
        # its own generator, as in the free-text case: the shared one would change every later case's data
        return dated(d / "day_first.csv", "%d/%m/%Y", np.random.default_rng(1).normal(size=900))

    @case("free_text_csv", "a review column of free text (the label is its sentiment), a UUID column, a number that "
                           "says little")
    def _(d: Path) -> str:
        import uuid

        import pandas as pd

        def words(text: str) -> list[str]:
            return text.split()

        good = words("great excellent lovely superb wonderful perfect happy recommend love best sturdy fast easy "
                     "beautiful comfortable reliable quiet bright solid worth")
        bad = words("awful poor terrible broken dull worst slow hard ugly cheap noisy flimsy late refund return "
                    "disappointed useless leaking missing wrong")
        neutral = words("the a this it was is and i my order arrived today with box item product use used after "
                        "days week colour size price delivery package seller bought for our kitchen garden room car "
                        "work home kids gift again also still just very quite really some more than")
        rng = np.random.default_rng(2)  # its own: the data are the same whichever cases run before
        texts, labels = [], []
        for _ in range(1000):
            y = int(rng.random() < 0.5)
            mood = [str(rng.choice(good if (y == 1) == (rng.random() < 0.75) else bad))
                    for _ in range(int(rng.integers(1, 4)))]
            words = [*rng.choice(neutral, int(rng.integers(8, 16))), *mood]
            rng.shuffle(words)
            texts.append(" ".join(words).capitalize() + ".")
            labels.append("positive" if y else "negative")
        votes = [int(rng.poisson(3 + 2 * (lab == "positive") * (rng.random() < 0.2))) for lab in labels]
        pd.DataFrame({"id": [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in labels], "review": texts,
                      "helpful_votes": votes, "sentiment": labels}).to_csv(d / "reviews.csv", index=False)
        return str(d / "reviews.csv")

    @case("uci_data", "a UCI-style .data file: no header, commas, the class as text last (the breast-cancer table)")
    def _(d: Path) -> str:
        v = bc.copy()
        v["target"] = np.where(v["target"] == 1, "benign", "malignant")
        v.to_csv(d / "wdbc.data", index=False, header=False)
        return str(d / "wdbc.data")

    @case("space_txt", "train.txt and test.txt: numbers in aligned columns parted by spaces, the class first "
                       "(the UCR archive's old format; generated signals)")
    def _(d: Path) -> str:
        gen = np.random.default_rng(3)  # its own: the data are the same whichever cases run before
        folder = d / "spaced"
        folder.mkdir()
        for name, n in (("train.txt", 600), ("test.txt", 200)):
            cls = gen.integers(0, 3, n)
            t = np.linspace(0, 1, 64)
            phase = gen.uniform(0, 6.3, (n, 1))
            x = np.sin(2 * np.pi * (cls[:, None] + 1) * t[None] + phase) + gen.normal(0, 1, (n, 64))
            np.savetxt(folder / name, np.column_stack([cls + 1, x]), fmt="%15.7e")
        return str(folder)

    @case("label_variants_csv", "text labels with stray spaces (' yes' and 'yes')")
    def _(d: Path) -> str:
        v = bc.copy().astype(object)
        v["target"] = np.where(bc.target == 1, np.where(rng.random(len(bc)) < 0.1, " yes", "yes"), "no")
        v.to_csv(d / "labvar.csv", index=False)
        return str(d / "labvar.csv")

    @case("dup_columns_csv", "duplicate column names and a constant column")
    def _(d: Path) -> str:
        c = bc.iloc[:, [0, 1, 2, -1]].copy()
        c["const"] = 5.0
        c.columns = ["a", "a", "b", "target", "const"]
        c.to_csv(d / "dupcols.csv", index=False)
        return str(d / "dupcols.csv")

    @case("tiny_csv", "25 rows")
    def _(d: Path) -> str:
        bc.iloc[:25].to_csv(d / "tiny.csv", index=False)
        return str(d / "tiny.csv")

    @case("rare_class_csv", "a class with a single example")
    def _(d: Path) -> str:
        r = bc.copy()
        r.loc[0, "target"] = 7
        r.to_csv(d / "rare.csv", index=False)
        return str(d / "rare.csv")

    @case("missing_label_csv", "three rows without a label", "refused")
    def _(d: Path) -> str:
        m = bc.copy().astype(object)
        m.loc[[3, 10, 50], "target"] = ""
        m.to_csv(d / "misslab.csv", index=False)
        return str(d / "misslab.csv")

    @case("one_class_csv", "every label the same", "refused")
    def _(d: Path) -> str:
        one = bc.copy()
        one["target"] = 1
        one.to_csv(d / "oneclass.csv", index=False)
        return str(d / "oneclass.csv")

    @case("json", "a pandas .json table (not read)", "refused")
    def _(d: Path) -> str:
        (d / "bc.json").write_text(bc.to_json())
        return str(d / "bc.json")

    @case("npy", "a bare .npy array (no labels)", "refused")
    def _(d: Path) -> str:
        np.save(d / "only.npy", bc.values)
        return str(d / "only.npy")

    x = rng.normal(size=(600, 12))
    s = x[:, 0] + x[:, 1]
    for name, what, y in (("pm1_npz", "labels -1 and +1", np.where(s > 0, 1, -1)),
                          ("one_based_npz", "labels 1..4", np.digitize(s, [-1, 0, 1]) + 1),
                          ("sparse_npz", "labels 3, 7, 9, 42", np.array([3, 7, 9, 42])[np.digitize(s, [-1, 0, 1])]),
                          ("bool_npz", "boolean labels", s > 0),
                          ("string_number_npz", "labels '01' and '02'", np.array(["01", "02"])[(s > 0).astype(int)]),
                          ("column_labels_npz", "labels saved as an (N, 1) column", (s > 0).astype(int)[:, None])):
        case(name, what)(lambda d, name=name, y=y: (np.savez(d / f"{name}.npz", X=x, y=y), str(d / f"{name}.npz"))[1])

    @case("imbalanced_npz", "4% positives")
    def _(d: Path) -> str:
        xi = rng.normal(size=(2000, 10))
        np.savez(d / "imb.npz", X=xi, y=(xi[:, 0] + 0.5 * rng.normal(size=2000) > 1.9).astype(int))
        return str(d / "imb.npz")

    @case("many_classes_npz", "100 classes of 10 examples")
    def _(d: Path) -> str:
        xm = rng.normal(size=(1000, 20))
        ym = np.repeat(np.arange(100), 10)
        xm[np.arange(1000), ym % 20] += 3
        np.savez(d / "many.npz", X=xm, y=ym)
        return str(d / "many.npz")

    @case("rgb_uint8_npz", "RGB uint8 images, channels last (N, 32, 32, 3)")
    def _(d: Path) -> str:
        imgs = rng.integers(0, 255, (1200, 32, 32, 3), dtype=np.uint8)
        lab = rng.integers(0, 3, 1200)
        for c in range(3):
            imgs[lab == c, :, :, c] = np.clip(imgs[lab == c, :, :, c].astype(int) + 60, 0, 255)
        np.savez(d / "rgb.npz", x=imgs, y=lab)
        return str(d / "rgb.npz")

    @case("rect_npz", "non-square grey images without a channel axis (N, 20, 40)")
    def _(d: Path) -> str:
        im = rng.normal(size=(1500, 20, 40)).astype(np.float32)
        lab = rng.integers(0, 2, 1500)
        im[lab == 1, 5:10, 5:30] += 1
        np.savez(d / "rect.npz", x=im, y=lab)
        return str(d / "rect.npz")

    @case("channels_last_sequences_npz", "3-channel sequences, channels last (N, 200, 3)")
    def _(d: Path) -> str:
        sq = rng.normal(size=(1500, 200, 3)).astype(np.float32)
        lab = rng.integers(0, 3, 1500)
        for c in range(3):
            sq[lab == c, :, c] += np.sin(np.arange(200) / 5)
        np.savez(d / "seqcl.npz", x=sq, y=lab)
        return str(d / "seqcl.npz")

    @case("long_sequences_npz", "600 sequences of 4096 steps (refused: one epoch needs more than a minute here)",
          "runs or refused")
    def _(d: Path) -> str:
        sq = rng.normal(size=(600, 1, 4096)).astype(np.float32)
        lab = rng.integers(0, 2, 600)
        sq[lab == 1, 0, :] += 0.3 * np.sin(np.arange(4096) / 20)
        np.savez(d / "long.npz", x=sq, y=lab)
        return str(d / "long.npz")

    @case("image_folder", "Fashion-MNIST as PNG files in class folders, train/ (3,000) and test/ (1,000)")
    def _(d: Path) -> str:
        from PIL import Image

        from nasforge.data.idx import FASHION_CLASSES, locate, read_idx_dir

        xs, ys, xt, yt = read_idx_dir(locate("fashion_mnist", None))
        root = d / "fm_images"
        for split, xa, ya, n in (("train", xs, ys, 3000), ("test", xt, yt, 1000)):
            for i in range(n):
                folder = root / split / FASHION_CLASSES[int(ya[i])].replace("/", "-")
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(xa[i]).reshape(28, 28).astype(np.uint8)).save(folder / f"{i}.png")
        return str(root)

    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated case names (default: all)")
    p.add_argument("--budget", type=int, default=60, help="seconds a case")
    p.add_argument("--name", default="data_sweep", help="results file name (a part of the cases: give another)")
    args = p.parse_args()
    every = cases()
    names = [n for n in args.only.split(",") if n] or list(every)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            what, expect, make = every[name]
            data = make(folder)
            got = arm(data, f"{args.budget}s", folder, f"sweep-{name}")
            outcome = "refused" if "error" in got else "runs"
            row = {"case": name, "what": what, "expect": expect, "outcome": outcome,
                   "as_expected": outcome in expect.split(" or "),
                   # auto's own clock (from its start, after Python's imports), as the 5% allows
                   "within_budget": got.get("total_s", 0.0) <= 1.05 * args.budget, **got}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("case", "outcome", "as_expected", "wall_s")}
                             | {"score": got.get("test_accuracy") or got.get("test_rmse") or got.get("error")}),
                  flush=True)
    summary = {"cases": len(rows), "as_expected": sum(r["as_expected"] for r in rows),
               "over_budget": [r["case"] for r in rows if not r["within_budget"]]}
    print(json.dumps(summary))
    write_result(args.name, __doc__.splitlines()[0], "python benchmarks/data_sweep.py " + " ".join(sys.argv[1:]),
                 {"budget_s": args.budget, "summary": summary, "runs": rows})


if __name__ == "__main__":
    main()
