"""The command line end to end on real data, kill -9 and resume, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nasforge.cli import main
from nasforge.store import Store

from .conftest import needs_fmnist

DIGITS = {
    "name": "digits",
    "seed": 0,
    "data": {"source": "digits"},
    "space": {"kind": "chain", "max_blocks": 4, "widths": [8, 16], "kernels": [3], "types": ["conv", "pool", "dense"]},
    "strategy": {"name": "evolution", "options": {"population_size": 4, "sample_size": 2}},
    "search": {"trials": 5, "budget": {"epochs": 1}, "measure_latency": False},
    "retrain": {"epochs": 2},
}


def write(tmp_path: Path, cfg: dict, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    cfg = {**cfg, "search": {**cfg["search"], "db": str(tmp_path / "s.db")}}
    p.write_text(yaml.safe_dump(cfg))
    return p


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasforge", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_search_status_retrain_on_digits(tmp_path, capsys):
    cfg = write(tmp_path, DIGITS)
    assert main(["search", str(cfg)]) == 0
    out = capsys.readouterr()
    assert "best: trial" in out.out and "done (trial budget reached): 5 complete" in out.err
    assert main(["status", str(tmp_path / "s.db")]) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "val_acc" in out and out.count("\n") >= 7
    assert main(["retrain", str(tmp_path / "s.db"), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "searched" in out and "baseline" in out and "test split read once" in out
    assert (tmp_path / "s-models" / "digits" / "searched.pt").exists()
    with Store(tmp_path / "s.db") as st:
        res = st.results(st.experiment("digits").id, "retrain")
    assert [m["name"] for m in res[0]["models"]] == ["searched", "baseline"]
    assert 0 <= res[0]["models"][0]["test"]["accuracy"] <= 1


def test_overrides_and_a_second_search_needs_resume(tmp_path, capsys):
    cfg = write(tmp_path, DIGITS)
    assert main(["search", str(cfg), "--trials", "2", "--strategy", "random", "--seed", "3"]) == 0
    assert main(["search", str(cfg), "--trials", "2", "--seed", "3"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["search", str(cfg), "--trials", "3", "--seed", "3", "--resume"]) == 0
    with Store(tmp_path / "s.db") as st:
        assert len(st.trials(st.experiment("digits").id)) == 3


@needs_fmnist
def test_fashion_mnist_slice_end_to_end(tmp_path, capsys):
    cfg = {**DIGITS, "name": "fm", "data": {"source": "fashion_mnist", "limit": 1500},
           "search": {"trials": 3, "budget": {"epochs": 1}}, "retrain": {"epochs": 1}}
    p = write(tmp_path, cfg)
    assert main(["search", str(p)]) == 0
    assert main(["retrain", str(tmp_path / "s.db")]) == 0
    out = capsys.readouterr().out
    assert "searched" in out and "baseline" in out


def completed(db: Path) -> list[tuple[int, str, float]]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT number, key, finished FROM trials WHERE state='COMPLETE' ORDER BY number").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_kill_minus_9_then_resume_loses_and_reruns_nothing(tmp_path):
    cfg = {**DIGITS, "search": {"trials": 10, "budget": {"epochs": 1}, "measure_latency": False}}
    p = write(tmp_path, cfg)
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "search", str(p)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(completed(db)) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = completed(db)
    assert 3 <= len(before) < 10
    r = run_cli("search", str(p), "--resume")
    assert r.returncode == 0, r.stderr
    after = completed(db)
    assert len(after) == 10
    assert after[: len(before)] == before  # same rows, same finish times: nothing re-run
    assert [n for n, _, _ in after] == list(range(10))
    assert len({k for _, k, _ in after}) == 10
    with Store(db) as st:
        assert st.integrity_ok()


BAD = [
    ("missing dataset", {"data": {"source": "npz", "path": "/nonexistent/x.npz"}}, "x.npz"),
    ("unknown strategy", {"strategy": {"name": "annealing"}}, "unknown strategy 'annealing'"),
    ("unknown dimension", {"space": {"kind": "chain", "widht": [8]}}, "did you mean 'widths'"),
    ("every candidate invalid", {"space": {"kind": "chain", "min_blocks": 4, "max_blocks": 4, "types": ["conv"],
                                           "kernels": [7], "paddings": ["valid"]}}, "no valid candidate"),
    ("unknown data source", {"data": {"source": "imagenet"}}, "imagenet"),
]


@pytest.mark.parametrize("what, patch, needle", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, what, patch, needle):
    cfg = {**DIGITS, **patch}
    assert main(["search", str(write(tmp_path, cfg))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("nasforge: error:") and needle in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("argv, needle", [
    (["auto", "digits", "--time-budget", "1m", "--metric", "recall"], "invalid choice: 'recall'"),
    (["auto", "digits"], "the following arguments are required: --time-budget"),
    (["auto", "digits", "--time-budget", "1m", "--seed", "one"], "argument --seed: invalid int value: 'one'"),
    (["serach", "c.yaml"], "invalid choice: 'serach'"),
    ([], "the following arguments are required: command"),
])
def test_bad_arguments_give_one_line_naming_the_help(capsys, argv, needle):
    """argparse's own errors (a wrong choice, a missing or mistyped option) in one line, as nasforge's are, with
    where the options are listed: not seven lines of usage before the one that says what is wrong."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "--help`" in err and "usage:" not in err


def test_malformed_yaml_from_the_real_entry_point(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data: {source: digits\nspace: [\n")
    r = run_cli("search", str(p))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "not valid YAML at line" in r.stderr and "Traceback" not in r.stderr


def test_database_of_another_experiment_is_refused_and_left_intact(tmp_path, capsys):
    cfg = write(tmp_path, DIGITS)
    assert main(["search", str(cfg), "--trials", "2"]) == 0
    db = tmp_path / "s.db"
    with Store(db) as st:
        before = st.trials(st.experiment("digits").id)
    other = write(tmp_path, {**DIGITS, "space": {"kind": "chain", "max_blocks": 3}}, "other.yaml")
    capsys.readouterr()
    assert main(["search", str(other), "--resume"]) == 2
    assert "different data, space" in capsys.readouterr().err
    renamed = write(tmp_path, {**DIGITS, "name": "else"}, "renamed.yaml")
    assert main(["search", str(renamed), "--resume"]) == 2
    assert "no experiment 'else' to resume (it holds 'digits')" in capsys.readouterr().err
    assert main(["status", str(db), "--name", "else"]) == 2
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    assert main(["status", str(junk)]) == 2
    assert main(["retrain", str(tmp_path / "nope.db")]) == 2
    with Store(db) as st:
        assert st.trials(st.experiment("digits").id) == before
        assert st.integrity_ok()


def test_download_refuses_unknown_datasets_in_one_line(capsys):
    assert main(["download", "cifar"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "downloads fashion-mnist and mnist" in err


NO_TORCH = """
import runpy, sys
sys.argv = ["nasforge", *sys.argv[1:]]
try:
    runpy.run_module("nasforge", run_name="__main__")  # `python -m nasforge ...`
except SystemExit as e:
    assert not e.code, f"exit {e.code}"
print("torch imported:", "torch" in sys.modules)
"""


def test_status_and_help_import_no_torch(tmp_path):
    """Importing torch alone takes 1-2 s; status only reads a database and prints it (a 100,000-trial
    study's status has to take under 2 s), so neither it nor --help may import torch; nor may a stored
    config that names a reference network (as `nasforge auto` writes), nor --json, nor the export command's help;
    nor the report (a large study's importance analysis runs in a forked process, which loaded torch forbids)."""
    import nasforge

    db = tmp_path / "s.db"
    with nasforge.open_study(db, name="s", space={"kind": "chain", "max_blocks": 3}, input_shape=(1, 8, 8),
                             strategy="random") as study:
        for score in (0.5, 0.75, 0.25):
            study.tell(study.ask(), score)
    with Store(db) as st:  # the config is checked as it is read: the reference names come from their registry
        st.create_experiment("ref", {"name": "ref", "data": {"source": "digits"}, "retrain": {"baseline": "resnet20"},
                                     "search": {"equal_time": "auto"}}, "0")
    runs = {cmd: subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120)
            for cmd, args in (("status", ["status", str(db), "--name", "s"]), ("help", ["--help"]),
                              ("record", ["status", str(db), "--name", "s", "--json", str(tmp_path / "r.json")]),
                              ("reference", ["status", str(db), "--name", "ref"]),
                              ("export", ["export", "--help"]),
                              ("report", ["report", str(db), "--name", "s", "--out", str(tmp_path / "rep")]))}
    for out in runs.values():
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip().endswith("torch imported: False"), out.stdout
    lines = runs["status"].stdout.splitlines()
    assert lines[1].startswith("trials: 3 complete")
    assert lines[2].split()[:3] == ["rank", "trial", "val_acc"] and lines[4].split()[:3] == ["1", "1", "0.7500"]
    assert "no completed trial yet" in runs["reference"].stdout
    assert "{python,torchscript,onnx,json}" in runs["export"].stdout
    assert (tmp_path / "rep" / "index.html").exists()
    assert json.loads((tmp_path / "r.json").read_text())["searched"]["val_accuracy"] == 0.75
