"""``nasforge predict`` / ``nasforge.predict``: new examples read as the training data was (a CSV's columns encoded,
filled and normalised by what the training rows fitted; arrays scaled and laid out alike), predicted by the
retrained network, scored where they come with labels, written as CSV; one-line refusals of what cannot be read.

The check that matters: predicting the test file itself gives exactly the test accuracy the retrain stored, so the
new rows went through the same reading as the test split did. Real search and training, kept tiny.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

import nasforge
from nasforge import api
from nasforge.cli import main
from nasforge.data import load_dataset
from nasforge.data.base import stratified_split
from nasforge.data.registry import DIGITS_TEST_FRACTION, DIGITS_TEST_SEED
from nasforge.errors import DataError, NasforgeError
from tests.test_retrain import DIGITS

COLOURS = ("red", "green", "blue")


def write_mixed(folder: Path, n: int = 300, seed: int = 0) -> Path:
    """train.csv and test.csv: two numbers (one with missing cells), a colour as text, a label as text; the colour
    decides as much as the numbers, so a reading that mixed up its one-hot columns would show."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", n), ("test.csv", n // 3)):
        x = rng.normal(size=(rows, 2))
        colour = rng.integers(0, 3, size=rows)
        y = (x[:, 0] + 1.5 * (colour == 1) - 1.5 * (colour == 2) + 0.3 * rng.normal(size=rows) > 0)
        lines = ["size,weight,colour,kind"]
        for r in range(rows):
            weight = "" if r % 7 == 3 else f"{x[r, 1]:.4f}"
            lines.append(f"{x[r, 0]:.4f},{weight},{COLOURS[colour[r]]},{'good' if y[r] else 'bad'}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def tabular(tmp: Path, data: Path) -> dict:
    return {"name": "mixed", "seed": 0, "data": {"source": "csv", "path": str(data)},
            "space": {"kind": "mlp", "max_depth": 1, "widths": [16], "norms": ["none"]},
            "strategy": {"name": "random"},
            "search": {"trials": 1, "db": str(tmp / "m.db"), "measure_latency": False, "budget": {"epochs": 5}},
            "train": {"optimizer": "adamw", "lr": 0.01, "batch_size": 64},
            "retrain": {"epochs": 15, "optimizer": "adamw", "lr": 0.01, "augment": False, "batch_size": 64,
                        "baseline": False}}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, one_thread):
    """A search and a retrain on the mixed table: (folder, db, the retrain's test accuracy)."""
    tmp = tmp_path_factory.mktemp("predict")
    data = write_mixed(tmp / "table")
    api.search(tabular(tmp, data))
    (searched,) = api.retrain(tmp / "m.db")
    return tmp, data, searched.test["accuracy"]


def without_label(src: Path, dst: Path) -> Path:
    rows = list(csv.reader(src.read_text().splitlines()))
    dst.write_text("\n".join(",".join(r[:-1]) for r in rows) + "\n")
    return dst


def test_the_test_file_predicted_scores_what_the_retrain_stored_with_or_without_its_labels(mixed, tmp_path):
    tmp, data, stored_accuracy = mixed
    labelled = nasforge.predict(tmp / "m.db", data / "test.csv")
    assert labelled.metrics is not None and labelled.metrics["accuracy"] == pytest.approx(stored_accuracy, abs=1e-9)
    assert len(labelled) == 100 and set(labelled.labels) <= {"bad", "good"} and labelled.classes == ("bad", "good")
    assert np.allclose(labelled.probabilities.sum(axis=1), 1.0)
    bare = api.predict(tmp / "m.db", without_label(data / "test.csv", tmp_path / "new.csv"))
    assert bare.metrics is None and bare.labels == labelled.labels
    assert np.allclose(bare.probabilities, labelled.probabilities)
    # one row: the encoding is the training file's, not refitted on the new rows (one colour, one number)
    one = tmp_path / "one.csv"
    one.write_text("size,weight,colour\n" + (tmp_path / "new.csv").read_text().splitlines()[5] + "\n")
    assert api.predict(tmp / "m.db", one).labels == (labelled.labels[4],)


def test_the_cli_writes_csv_to_a_file_or_to_stdout_and_says_how_good_labelled_predictions_are(mixed, tmp_path,
                                                                                               capsys):
    tmp, data, stored_accuracy = mixed
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp / "m.db"), str(data / "test.csv"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "predicted 100 examples with trial 0" in said and f"accuracy {stored_accuracy:.4f}" in said
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 100 and list(rows[0]) == ["row", "prediction", "p_bad", "p_good"]
    assert all(abs(float(r["p_bad"]) + float(r["p_good"]) - 1) < 1e-5 for r in rows)
    bare = without_label(data / "test.csv", tmp_path / "bare.csv")
    assert main(["predict", str(tmp / "m.db"), str(bare)]) == 0
    captured = capsys.readouterr()
    assert list(csv.DictReader(io.StringIO(captured.out))) == rows  # the same predictions, alone on stdout
    assert "predicted 100 examples" in captured.err and "accuracy" not in captured.err


def test_what_cannot_be_read_as_the_training_data_is_refused_in_one_line(mixed, tmp_path, capsys):
    tmp, data, _ = mixed
    db = str(tmp / "m.db")
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("size,colour\n0.1,red\n")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("size,height,colour\n0.1,0.2,red\n")
    text = tmp_path / "text.csv"
    text.write_text("size,weight,colour\nbig,0.2,red\n")
    for bad, words in ((narrow, "has 2 columns but"), (renamed, "has feature columns"),
                       (text, "numeric in the training file"), (tmp_path / "missing.csv", "does not exist")):
        assert main(["predict", db, str(bad)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["predict", db, str(data / "test.csv"), "--out", str(data / "test.csv")]) == 2
    assert "is the file of examples itself" in capsys.readouterr().err
    assert main(["predict", db, str(data / "test.csv"), "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file path" in capsys.readouterr().err
    assert (data / "test.csv").read_text().startswith("size,weight,colour,kind")  # not overwritten


def forget_readers(db: Path) -> None:
    """Strip the stored readers from a database's retrain records, as a retrain stored before they were kept."""
    import json
    import sqlite3

    with sqlite3.connect(db) as c:
        for rid, payload in c.execute("SELECT id, payload FROM results WHERE kind='retrain'").fetchall():
            record = json.loads(payload)
            record.pop("reader", None)
            c.execute("UPDATE results SET payload=? WHERE id=?", (json.dumps(record), rid))


def test_predictions_need_no_training_data_and_older_records_refit_it_or_refuse_changed_data(tmp_path, one_thread):
    """The retrain stores how its data was read, so predictions are the same with the training file changed or
    gone; a record from before that refits the encoding from the training data, and refuses it changed."""
    data = write_mixed(tmp_path / "table", n=120)
    api.search(tabular(tmp_path, data))
    api.retrain(tmp_path / "m.db")
    before = api.predict(tmp_path / "m.db", data / "test.csv")
    new = tmp_path / "new.csv"
    new.write_text((data / "test.csv").read_text())
    write_mixed(tmp_path / "table", n=120, seed=1)  # other rows: other medians, means and deviations
    changed = api.predict(tmp_path / "m.db", new)
    (data / "train.csv").unlink()
    gone = api.predict(tmp_path / "m.db", new)
    assert before.labels == changed.labels == gone.labels and np.allclose(before.probabilities, gone.probabilities)
    forget_readers(tmp_path / "m.db")
    with pytest.raises(DataError, match=r"without train\.csv"):  # an older record reads the training data, now gone
        api.predict(tmp_path / "m.db", new)
    write_mixed(tmp_path / "table", n=120, seed=1)
    with pytest.raises(NasforgeError, match="is not what it was when the network was retrained"):
        api.predict(tmp_path / "m.db", new)
    write_mixed(tmp_path / "table", n=120)  # the training data restored: the older record reads as before
    old = api.predict(tmp_path / "m.db", new)
    assert old.labels == before.labels and np.allclose(old.probabilities, before.probabilities)


def test_array_data_predicts_an_npz_or_npy_of_raw_examples_as_its_test_split_was_read(tmp_path, one_thread):
    db = tmp_path / "d.db"
    api.search({**DIGITS, "search": {**DIGITS["search"], "db": str(db)}})
    (searched,) = api.retrain(db, baseline=False)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    _, test = stratified_split(np.asarray(bunch.target), DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    x, y = bunch.images[test], bunch.target[test]  # raw 0..16 values, as sklearn gives them
    np.savez(tmp_path / "new.npz", x=x, y=y)
    scored = api.predict(db, tmp_path / "new.npz")
    assert scored.metrics is not None and scored.metrics["accuracy"] == pytest.approx(searched.test["accuracy"])
    np.save(tmp_path / "new.npy", x[:7])
    assert api.predict(db, tmp_path / "new.npy").labels == scored.labels[:7]
    with pytest.raises(DataError, match="give new examples of array data as an"):
        api.predict(db, tmp_path / "new.csv")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 9, 9)))
    with pytest.raises(DataError, match="shape"):
        api.predict(db, tmp_path / "wrong.npy")


def test_a_regression_predicts_in_the_targets_units(tmp_path, one_thread):
    from tests.test_regression import config, write_table

    data = write_table(tmp_path / "table", n=160)
    api.search(config(tmp_path, data, search={"trials": 1, "db": str(tmp_path / "r.db"), "measure_latency": False,
                                              "budget": {"epochs": 5}}))
    (searched, *_) = api.retrain(tmp_path / "r.db", baseline=False)
    p = api.predict(tmp_path / "r.db", data / "test.csv")
    assert p.labels is None and p.probabilities is None and len(p) == 40
    assert p.metrics is not None and p.metrics["rmse"] == pytest.approx(searched.test["rmse"], rel=1e-5)
    assert 60 < float(np.mean(p.values)) < 180  # the targets' units (about 120), not standardised ones
    assert p.to_csv().splitlines()[0] == "row,prediction"


def test_inputs_reach_the_loaders_only_through_load_dataset(tmp_path):
    """The same source read with ``inputs``: the training part unchanged, the test split the new examples."""
    np.savez(tmp_path / "new.npz", x=np.zeros((4, 8, 8)))
    plain = load_dataset("digits")
    new = load_dataset("digits", inputs=tmp_path / "new.npz")
    assert new.test_labelled is False and plain.test_labelled is True
    assert np.array_equal(new.x_train.numpy(), plain.x_train.numpy()) and new.preprocess == plain.preprocess
    assert tuple(new.open_test()[0].shape) == (4, 1, 8, 8)


def test_a_folder_of_images_predicts_file_by_file_at_the_training_images_size(tmp_path, one_thread):
    """Class folders of images: new images as a folder (of class folders, to score them, or loose), read at the
    training images' size and colour; each prediction names its file. A held-out test split stays held out."""
    import shutil

    from tests.test_data import write_images

    root = tmp_path / "shots"
    write_images(root / "train", 12)
    write_images(root / "test", 4, odd=2)  # two of a class 20x16: resized to the training images' 12x10
    db = tmp_path / "i.db"
    api.search({**DIGITS, "name": "shots", "data": {"source": "images", "path": str(root)},
                "search": {**DIGITS["search"], "db": str(db)}})
    (searched,) = api.retrain(db, baseline=False)
    scored = api.predict(db, root / "test")
    assert scored.metrics is not None and scored.metrics["accuracy"] == pytest.approx(searched.test["accuracy"])
    assert scored.ids is not None and scored.ids[:2] == ("bright/0.png", "bright/1.png")
    loose = tmp_path / "new"
    loose.mkdir()
    for name in ("0.png", "3.png"):
        shutil.copy(root / "test" / "dark" / name, loose / f"dark-{name}")
    p = api.predict(db, loose)
    assert p.metrics is None and p.ids == ("dark-0.png", "dark-3.png")
    assert p.labels == (scored.labels[4], scored.labels[7])
    assert p.to_csv().splitlines()[0] == "file,prediction,p_bright,p_dark"
    with pytest.raises(DataError, match="new is a class the training images do not have"):
        api.predict(db, tmp_path)  # its folders of images are read as class folders
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no image files"):
        api.predict(db, tmp_path / "empty")
    (root / "train").rename(tmp_path / "moved")  # the training images gone: the stored size and colour read them
    again = api.predict(db, root / "test")
    assert again.labels == scored.labels and again.ids == scored.ids
    # no test folder: a test split is held out of the training images, as when the network was trained
    flat = tmp_path / "flat"
    write_images(flat, 10)
    held = load_dataset("images", flat, test_fraction=0.2)
    new = load_dataset("images", flat, test_fraction=0.2, inputs=loose)
    assert new.preprocess == held.preprocess and np.array_equal(new.x_train.numpy(), held.x_train.numpy())
    assert new.test_examples == 2 and not new.test_labelled


def test_a_table_of_arrays_with_missing_numbers_is_filled_and_flagged_as_its_training_was(tmp_path, one_thread):
    """An .npz table with NaN cells: new rows get the training medians and the same flag columns (stored with the
    retrain), so the test arrays predicted score what the retrain stored."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    x[rng.random(x.shape) < 0.1] = np.nan
    np.savez(tmp_path / "t.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    cfg = tabular(tmp_path, tmp_path / "t.npz")
    api.search({**cfg, "data": {"source": "npz", "path": str(tmp_path / "t.npz")}})
    (searched,) = api.retrain(tmp_path / "m.db")
    np.savez(tmp_path / "new.npz", x=x[240:], y=y[240:])
    p = api.predict(tmp_path / "m.db", tmp_path / "new.npz")
    assert p.metrics is not None and p.metrics["accuracy"] == pytest.approx(searched.test["accuracy"], abs=1e-9)
    (tmp_path / "t.npz").unlink()
    assert api.predict(tmp_path / "m.db", tmp_path / "new.npz").labels == p.labels


def test_the_json_export_of_a_table_records_its_column_encoding(mixed, tmp_path):
    import json

    tmp, _, _ = mixed
    (path,) = [p for p in api.export(tmp / "m.db", format="json", out_dir=tmp_path) if p.suffix == ".json"]
    reader = json.loads(path.read_text())["reader"]
    columns = {c["name"]: c for c in reader["columns"]}
    assert reader["source"] == "csv" and reader["classes"] == ["bad", "good"]
    assert columns["'colour'"]["kind"] == "text" and set(columns["'colour'"]["levels"]) == set(COLOURS)
    assert columns["'weight'"]["kind"] == "number" and columns["'weight'"]["flag"] is True  # missing cells flagged


def _arrays(kind: str, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(the training .npz's arrays, new examples' arrays) of one kind of array data."""
    n, m = 90, 12
    y, y_new = rng.integers(0, 3, n), rng.integers(0, 3, m)
    if kind == "nhwc":  # colour images, channels last, 0..255
        x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        x_new = rng.integers(0, 256, (m, 8, 8, 3), dtype=np.uint8)
    elif kind == "sequence":  # two channels last, 64 steps; labels 1..3, not 0..K-1
        x, x_new = rng.normal(size=(n, 64, 2)), rng.normal(size=(m, 64, 2))
        y, y_new = y + 1, y_new + 1
    elif kind == "one_hot":
        x, x_new = rng.normal(size=(n, 5)), rng.normal(size=(m, 5))
        y, y_new = np.eye(3, dtype=np.int64)[y], np.eye(3, dtype=np.int64)[y_new]
    else:  # a table, NaN in training ("nan") or only in the new examples ("new_nan")
        x, x_new = rng.normal(size=(n, 5)), rng.normal(size=(m, 5))
        if kind == "nan":
            x[rng.random(x.shape) < 0.1] = np.nan
        x_new[rng.random(x_new.shape) < 0.2] = np.nan
    return ({"x_train": x[:70], "y_train": y[:70], "x_test": x[70:], "y_test": y[70:]}, {"x": x_new, "y": y_new})


@pytest.mark.parametrize("kind", ["nhwc", "sequence", "one_hot", "nan", "new_nan"])
def test_the_stored_reader_reads_new_arrays_exactly_as_the_test_split_path_does(tmp_path, kind):
    """What a retrain stores (:attr:`Dataset.reader`, the statistics) reads new examples to the same tensors and
    labels as loading the training data with them as its test split: no training data needed for the same inputs."""
    from nasforge.data import read_new

    train, new = _arrays(kind, np.random.default_rng(3))
    np.savez(tmp_path / "d.npz", **train)
    np.savez(tmp_path / "new.npz", **new)
    np.savez(tmp_path / "bare.npz", x=new["x"])
    ds = load_dataset("npz", tmp_path / "d.npz")
    # one-hot labels of new examples: the test split path never read them (it refused), so only their x compares
    x_ref, y_ref = load_dataset("npz", tmp_path / "d.npz",
                                inputs=tmp_path / ("bare.npz" if kind == "one_hot" else "new.npz")).open_test()
    got = read_new(json_round_trip(ds.reader), tmp_path / "new.npz", input_shape=ds.input_shape, classes=ds.classes,
                   preprocess=ds.preprocess, regression=False)
    want = np.argmax(new["y"], axis=1) if kind == "one_hot" else y_ref.numpy()
    assert torch_equal(got.x, x_ref) and got.y is not None and np.array_equal(got.y, want)
    assert ds.classes == (("1", "2", "3") if kind == "sequence" else ("0", "1", "2"))


def test_the_stored_reader_reads_a_csv_laid_out_as_images_and_numeric_labels_as_the_test_split_path_does(tmp_path):
    """Digits written as a 64-pixel CSV (read as 8x8 images) with labels 1..10: the stored encoding and layout."""
    from sklearn.datasets import load_digits

    from nasforge.data import read_new

    bunch = load_digits()
    rows = [",".join(map(str, [*x.astype(int), y + 1])) for x, y in zip(bunch.data, bunch.target, strict=True)]
    header = ",".join([*(f"pixel{i}" for i in range(64)), "label"])
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train.csv").write_text("\n".join([header, *rows[:1200]]) + "\n")
    (tmp_path / "t" / "test.csv").write_text("\n".join([header, *rows[1200:1400]]) + "\n")
    (tmp_path / "new.csv").write_text("\n".join([header, *rows[1400:]]) + "\n")
    ds = load_dataset("csv", tmp_path / "t")
    x_ref, y_ref = load_dataset("csv", tmp_path / "t", inputs=tmp_path / "new.csv").open_test()
    got = read_new(json_round_trip(ds.reader), tmp_path / "new.csv", input_shape=ds.input_shape, classes=ds.classes,
                   preprocess=ds.preprocess, regression=False)
    assert ds.input_shape == (1, 8, 8) and ds.classes[0] == "1"
    assert torch_equal(got.x, x_ref) and got.y is not None and np.array_equal(got.y, y_ref.numpy())


def json_round_trip(reader: dict | None) -> dict:
    import json

    assert reader is not None
    return json.loads(json.dumps(reader))  # as the database keeps it


def torch_equal(a, b) -> bool:
    return tuple(a.shape) == tuple(b.shape) and bool((a == b).all())


def test_labels_of_new_examples_the_training_did_not_have_are_refused_in_one_line(tmp_path):
    from nasforge.data import read_new

    train, new = _arrays("sequence", np.random.default_rng(4))  # classes "1", "2", "3"
    np.savez(tmp_path / "d.npz", **train)
    ds = load_dataset("npz", tmp_path / "d.npz")
    for y, words in ((np.full(12, 7), "label 7, not one of the training labels"),
                     (np.full(12, np.nan), "labels are not whole numbers"),
                     (np.ones((12, 2)), "labels have shape"), (np.ones(5), "not one number per example")):
        np.savez(tmp_path / "bad.npz", x=new["x"], y=y)
        with pytest.raises(DataError, match=words) as err:
            read_new(json_round_trip(ds.reader), tmp_path / "bad.npz", input_shape=ds.input_shape,
                     classes=ds.classes, preprocess=ds.preprocess, regression=False)
        assert "\n" not in str(err.value)


def test_an_idx_images_file_is_read_as_new_examples_scored_by_the_labels_file_beside_it(tmp_path):
    """Data trained from IDX files predicts an IDX images file (``t10k-images-idx3-ubyte.gz``) exactly as its test
    split was read, with the labels file beside it as labels; without that file, unscored."""
    from nasforge.data import read_new
    from tests.test_data import make_idx_dir

    d = make_idx_dir(tmp_path / "idx", gz=True)
    ds = load_dataset("idx", d)
    x_ref, y_ref = ds.open_test()
    kwargs = {"input_shape": ds.input_shape, "classes": ds.classes, "preprocess": ds.preprocess, "regression": False}
    got = read_new(json_round_trip(ds.reader), d / "t10k-images-idx3-ubyte.gz", **kwargs)
    assert torch_equal(got.x, x_ref) and got.y is not None and np.array_equal(got.y, y_ref.numpy())
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    assert read_new(json_round_trip(ds.reader), d / "t10k-images-idx3-ubyte.gz", **kwargs).y is None
    with pytest.raises(DataError, match="does not exist"):
        read_new(json_round_trip(ds.reader), d / "new-images-idx3-ubyte", **kwargs)


def test_a_cifar_batch_is_read_as_new_examples_scored_by_its_labels(tmp_path):
    """Data trained from CIFAR's python batches predicts a batch file (``test_batch``; CIFAR-100's ``test``) exactly
    as its test split was read, scored by the batch's own labels."""
    import pickle

    from nasforge.data import read_new
    from tests.test_data import write_cifar10

    d = write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", d)
    x_ref, y_ref = ds.open_test()
    kwargs = {"input_shape": ds.input_shape, "classes": ds.classes, "preprocess": ds.preprocess, "regression": False}
    got = read_new(json_round_trip(ds.reader), d / "test_batch", **kwargs)
    assert torch_equal(got.x, x_ref) and got.y is not None and np.array_equal(got.y, y_ref.numpy())
    with pytest.raises(DataError, match="does not exist"):
        read_new(json_round_trip(ds.reader), d / "data_batch_9", **kwargs)
    (d / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match="expected") as err:
        read_new(json_round_trip(ds.reader), d / "test_batch", **kwargs)
    assert "\n" not in str(err.value)

    c = tmp_path / "cifar-100-python"
    c.mkdir()
    rng = np.random.default_rng(3)
    for name, n in (("train", 200), ("test", 30)):
        labels = list(range(100)) * 2 if n == 200 else [int(v) for v in rng.integers(0, 100, n)]
        (c / name).write_bytes(pickle.dumps({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                             "fine_labels": labels, "coarse_labels": [0] * n}))
    (c / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"f{i}" for i in range(100)]}))
    ds = load_dataset("cifar100", c)
    x_ref, y_ref = ds.open_test()
    got = read_new(json_round_trip(ds.reader), c / "test", input_shape=ds.input_shape, classes=ds.classes,
                   preprocess=ds.preprocess, regression=False)
    assert torch_equal(got.x, x_ref) and got.y is not None and np.array_equal(got.y, y_ref.numpy())
