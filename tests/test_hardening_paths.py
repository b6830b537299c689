"""Hostile and careless input at the command line: names that would be paths, databases that are not ours,
numbers out of range and budgets too small to mean anything. Each is refused in one line, exit 2, nothing
changed on disk (the hardening issue's items 1, 3, 6, 7, 9, 16-19)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasforge import api
from nasforge.cli import ProgressPrinter, build_parser, main
from nasforge.config import SPACE_KINDS, from_dict
from nasforge.errors import NasforgeError
from nasforge.paths import MARKER, check_name, owned_dir, remove_owned
from nasforge.space import SPACES
from nasforge.store import Store
from nasforge.strategy import STRATEGIES
from nasforge.types import Budget, Trial, TrialState

from .test_cli import DIGITS, write


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("nasforge: error: "), err
    assert not any("Traceback" in e or "internal error" in e for e in err), err
    return err[-1]


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished 2-trial digits search (copied per test before anything may change it)."""
    tmp = tmp_path_factory.mktemp("searched")
    cfg = write(tmp, {**DIGITS, "search": {**DIGITS["search"], "trials": 2}})
    assert main(["search", str(cfg)]) == 0
    return tmp / "s.db"


@pytest.fixture
def db(searched, tmp_path) -> Path:
    dst = tmp_path / "s.db"
    shutil.copy(searched, dst)
    return dst


# ------------------------------------------------------------------------ 1. names are not paths

@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=40))
def test_any_name_is_refused_or_stays_inside_the_output_folders(name):
    """Whatever the name, a config either refuses it or every path made from it stays in its folder."""
    try:
        cfg = from_dict({"name": name})
    except NasforgeError:
        return
    root = Path("/tmp/nasforge-root")
    for p, base in ((api.checkpoint_dir(root / "x.db", cfg.name), root / "x-checkpoints"),
                    (api.models_dir(root / "x.db", cfg, cfg.name, None), root / "x-models")):
        assert p.resolve().parent == base.resolve()


@pytest.mark.parametrize("name", ["/tmp/victim", "../../victim", "a/b", "..", ".", "x\ny", 'a"""b', ""])
def test_unsafe_names_are_refused_everywhere(tmp_path, capsys, name):
    with pytest.raises(NasforgeError, match="not allowed"):
        check_name(name)
    cfg = write(tmp_path, DIGITS)
    assert main(["search", str(cfg), "--name", name]) == 2
    assert "not allowed" in one_line(capsys)
    assert not (tmp_path / "s.db").exists()


def test_a_stored_name_that_is_a_path_is_refused_before_anything_is_written(db, tmp_path, capsys):
    victim = tmp_path / "victim"
    with sqlite3.connect(db) as con:
        con.execute("UPDATE experiments SET name=?", (str(victim),))
    before = digest(db)
    for cmd in (["retrain", str(db), "--epochs", "1"], ["status", str(db)], ["report", str(db)]):
        assert main(cmd) == 2
        assert "not allowed" in one_line(capsys)
    assert not victim.exists() and not (tmp_path / "s-models").exists()
    assert digest(db) == before


def test_a_stored_retrain_out_outside_is_refused_unless_out_is_given(db, tmp_path, capsys):
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    with sqlite3.connect(db) as con:
        (raw,) = con.execute("SELECT config FROM experiments").fetchone()
        cfg = json.loads(raw)
        cfg["retrain"]["out"] = str(outside)
        con.execute("UPDATE experiments SET config=?", (json.dumps(cfg),))
    assert main(["retrain", str(db), "--epochs", "1", "--no-baseline"]) == 2
    assert "retrain.out" in one_line(capsys) and not outside.exists()
    assert main(["retrain", str(db), "--epochs", "1", "--no-baseline", "--out", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / "digits" / "searched.pt").exists() and (tmp_path / "w" / "digits" / MARKER).exists()


def test_a_foreign_folder_is_neither_filled_nor_deleted(db, tmp_path, capsys):
    mine = tmp_path / "out" / "digits"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("mine")
    assert main(["retrain", str(db), "--epochs", "1", "--no-baseline", "--out", str(tmp_path / "out")]) == 2
    assert "did not write" in one_line(capsys)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    foreign = tmp_path / "foreign"
    (foreign / "sub").mkdir(parents=True)
    assert remove_owned(foreign) is False and foreign.exists()
    assert remove_owned(owned_dir(tmp_path / "ours")) is True and not (tmp_path / "ours").exists()


def test_export_writes_beside_recorded_weights_only_in_a_nasforge_folder(db, tmp_path, capsys):
    assert main(["retrain", str(db), "--epochs", "1", "--no-baseline"]) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "s-models" / "digits" / "searched.pt", elsewhere / "searched.pt")
    with sqlite3.connect(db) as con:
        (raw,) = con.execute("SELECT payload FROM results").fetchone()
        con.execute("UPDATE results SET payload=?", (raw.replace(str(tmp_path / "s-models" / "digits"),
                                                                 str(elsewhere)),))
    assert main(["export", str(db), "--format", "json"]) == 2
    assert "did not create" in one_line(capsys)
    assert not (elsewhere / "export").exists()
    assert main(["export", str(db), "--format", "json", "--out", str(tmp_path / "e")]) == 0


# --------------------------------------------------------------- 3. refused commands change nothing

@pytest.mark.parametrize("cmd", ["status", "retrain", "export", "report"])
def test_commands_refuse_an_empty_file_and_a_foreign_database_unchanged(tmp_path, capsys, cmd):
    empty = tmp_path / "empty.db"
    empty.touch()
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (x)")
        con.execute("INSERT INTO notes VALUES ('keep')")
    before = digest(foreign)
    extra = ["--format", "json"] if cmd == "export" else []
    assert main([cmd, str(empty), *extra]) == 2
    assert "not a nasforge database" in one_line(capsys)
    assert empty.stat().st_size == 0
    assert main([cmd, str(foreign), *extra]) == 2
    assert "another program" in one_line(capsys)
    assert digest(foreign) == before
    with sqlite3.connect(foreign) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "foreign.db"]


def test_status_and_report_open_read_only(db, tmp_path, capsys):
    before = digest(db)
    assert main(["status", str(db)]) == 0
    assert main(["report", str(db), "--out", str(tmp_path / "r")]) == 0
    assert digest(db) == before
    with Store(db, readonly=True) as st, pytest.raises(sqlite3.OperationalError, match="readonly"):
        st.conn.execute("DELETE FROM trials")


# ------------------------------------------------------------- 6, 7, 9. numbers and budgets checked first

@pytest.mark.parametrize("epochs", ["0", "-1", "nan", "inf", "-inf"])
def test_retrain_refuses_bad_epochs_before_touching_anything(db, tmp_path, capsys, epochs):
    assert main(["retrain", str(db), f"--epochs={epochs}"]) == 2
    assert "epochs must be a finite number above 0" in one_line(capsys)
    assert not (tmp_path / "s-models").exists()
    with Store(db, readonly=True) as st:
        assert st.results(st.experiment().id) == []


@pytest.mark.parametrize("argv", [["--top", "0"], ["--top", "-3"]])
def test_status_refuses_bad_numbers(db, capsys, argv):
    assert main(["status", str(db), *argv]) == 2
    one_line(capsys)


@pytest.mark.parametrize("raw", [{"retrain": {"epochs": float("inf")}},
                                 {"search": {"budget": {"epochs": float("nan")}}},
                                 {"train": {"lr": float("inf")}}, {"seed": -1},
                                 {"space": {"widths": [float("inf")]}}, {"space": {"max_params": float("inf")}},
                                 {"train": {"warmup_fraction": 5.0}}, {"train": {"label_smoothing": -0.1}}])
def test_non_finite_and_negative_config_numbers_are_refused(tmp_path, capsys, raw):
    cfg = {**DIGITS, **{k: {**DIGITS.get(k, {}), **v} if isinstance(v, dict) else v for k, v in raw.items()}}
    assert main(["search", str(write(tmp_path, cfg))]) == 2
    one_line(capsys)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("budget", [{"epochs": 1e-9}, {"epochs": 1, "fraction": 1e-9}, {"epochs": 0.01}])
def test_budgets_under_one_batch_are_refused(tmp_path, capsys, budget):
    cfg = {**DIGITS, "search": {**DIGITS["search"], "budget": budget}}
    assert main(["search", str(write(tmp_path, cfg))]) == 2
    assert "fewer than one batch" in one_line(capsys)
    assert not (tmp_path / "s.db").exists()


def test_a_scheduler_rung_under_one_batch_is_refused(tmp_path, capsys):
    cfg = {**DIGITS, "search": {**DIGITS["search"], "budget": {"epochs": 1},
                                "scheduler": {"name": "asha", "eta": 3, "min_fraction": 0.0001}}}
    assert main(["search", str(write(tmp_path, cfg))]) == 2
    assert "rung" in one_line(capsys)


def test_retrain_without_a_test_split_fails_before_training(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] > 0).astype(int)
    csv = tmp_path / "t.csv"
    rows = (",".join(f"{v:.4f}" for v in r) + f",{c}" for r, c in zip(x, y, strict=True))
    csv.write_text("a,b,c,d,label\n" + "\n".join(rows))
    cfg = {**DIGITS, "name": "tab", "data": {"source": "csv", "path": str(csv)}, "space": {"kind": "chain"}}
    assert main(["search", str(write(tmp_path, cfg)), "--trials", "1"]) == 0
    capsys.readouterr()
    with sqlite3.connect(tmp_path / "s.db") as con:
        lease = con.execute("SELECT driver, driver_beat FROM experiments").fetchall()
    assert main(["retrain", str(tmp_path / "s.db")]) == 2
    assert "no test split" in one_line(capsys)
    assert not (tmp_path / "s-models").exists()
    with sqlite3.connect(tmp_path / "s.db") as con:  # refused before the lease was taken: not even that changed
        assert con.execute("SELECT driver, driver_beat FROM experiments").fetchall() == lease


# ------------------------------------------------------------------------ 16-19. what the CLI says

def test_strategy_override_keeps_the_options_that_apply(tmp_path, caplog):
    from nasforge.config import with_overrides

    cfg = from_dict({"strategy": {"name": "evolution", "options": {"population_size": 6, "sample_size": 2}}})
    over = with_overrides(cfg, strategy="genetic")
    assert dict(over.strategy.options) == {"population_size": 6}
    assert "sample_size" in caplog.text and "left out" in caplog.text


def test_evolution_names_the_default_sample_size(tmp_path, capsys):
    cfg = {**DIGITS, "strategy": {"name": "evolution", "options": {"population_size": 3}}}
    assert main(["search", str(write(tmp_path, cfg))]) == 2
    assert "sample_size 5 (the default)" in one_line(capsys)


def test_no_header_is_printed_before_a_config_error(tmp_path, capsys):
    assert main(["search", str(write(tmp_path, DIGITS)), "--strategy", "annealing"]) == 2
    err = capsys.readouterr().err
    assert "nasforge search:" not in err and "unknown strategy 'annealing'" in err


def test_a_promotion_is_marked_in_the_progress_output(tmp_path):
    out = (tmp_path / "log").open("w+")
    printer = ProgressPrinter(out, describe=lambda s: "net", header="nasforge search: header")
    t = Trial(number=4, key="k", sample={}, state=TrialState.COMPLETE, budget=Budget(epochs=3), score=0.9,
              rungs=(0.8, 0.9), started=1.0, finished=2.0)
    p = SimpleNamespace(event="trial", trial=t, done=1, max_trials=5, best=t, elapsed=1.0, time_budget=None,
                        rejected=0, remaining=None)
    printer(p)
    printer(SimpleNamespace(**{**vars(p), "trial": t.with_(rungs=(0.8,))}))
    out.seek(0)
    lines = out.read().splitlines()
    assert lines[0] == "nasforge search: header"
    assert "promoted, rung 2" in lines[1] and "promoted" not in lines[3]


def test_every_list_of_names_comes_from_its_registry(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in STRATEGIES)
    assert tuple(SPACES) == SPACE_KINDS
