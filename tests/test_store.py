"""SQLite store: round trips, WAL and schema version, resume of interrupted trials, foreign files."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest

from nasforge.errors import StoreError
from nasforge.store import SCHEMA_VERSION, Store
from nasforge.types import Budget, Cost, Trial, TrialState


def make_trial(n, state=TrialState.PENDING, **kw):
    return Trial(number=n, key=f"k{n}", sample={"n_blocks": n, "head": "gap"}, state=state, **kw)


def test_trial_round_trip_with_every_field(tmp_path):
    with Store(tmp_path / "a.db") as st:
        exp = st.create_experiment("e", {"seed": 1}, "fp")
        t = make_trial(0, budget=Budget(epochs=2, fraction=0.5))
        st.add_trial(exp.id, t, {"name": "random", "rng": {"x": 1}})
        done = t.with_(state=TrialState.COMPLETE, score=0.9, metrics={"accuracy": 0.9, "f1": 0.8},
                       curve=({"epoch": 1.0, "val_accuracy": 0.8}, {"epoch": 2.0, "val_accuracy": 0.9}),
                       cost=Cost(params=10, flops=20, latency_ms=0.5), hidden={"test": 0.7},
                       started=1.0, finished=3.5, train_seconds=2.0, eval_seconds=0.5)
        st.update_trial(exp.id, done)
        failed = make_trial(1, state=TrialState.FAILED, reason="non-finite loss")
        st.add_trial(exp.id, failed)
    with Store(tmp_path / "a.db", create=False) as st:
        exp = st.experiment("e")
        assert exp.strategy_state == {"name": "random", "rng": {"x": 1}}
        got = st.trials(exp.id)
        assert got[0] == done
        assert got[0].duration == 2.5
        assert got[1].state is TrialState.FAILED and got[1].reason == "non-finite loss"


def test_wal_mode_and_schema_version(tmp_path):
    with Store(tmp_path / "a.db"):
        pass
    con = sqlite3.connect(tmp_path / "a.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer nasforge"):
        Store(tmp_path / "a.db")


def test_interrupted_running_trials_go_back_to_pending(tmp_path):
    with Store(tmp_path / "a.db") as st:
        exp = st.create_experiment("e", {}, "fp")
        st.add_trial(exp.id, make_trial(0, state=TrialState.COMPLETE, score=0.5))
        st.add_trial(exp.id, make_trial(1, state=TrialState.RUNNING, started=5.0))
        assert st.reset_interrupted(exp.id) == 1
        states = [t.state for t in st.trials(exp.id)]
        assert states == [TrialState.COMPLETE, TrialState.PENDING]


def test_duplicate_experiment_and_foreign_files_give_clear_errors(tmp_path):
    with Store(tmp_path / "a.db") as st:
        st.create_experiment("e", {}, "fp")
        with pytest.raises(StoreError, match=r"already exists.*--resume"):
            st.create_experiment("e", {}, "fp")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable nasforge database"):
        Store(junk)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="another program"):
        Store(other)
    with pytest.raises(StoreError, match="no database"):
        Store(tmp_path / "missing.db", create=False)
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_rejections_are_grouped_by_kind(tmp_path):
    with Store(tmp_path / "a.db") as st:
        exp = st.create_experiment("e", {}, "fp")
        st.add_rejection(exp.id, "a", "block 3 (conv) comes after a dense block; it needs spatial input")
        st.add_rejection(exp.id, "b", "block 1 (conv) comes after a dense block; it needs spatial input")
        st.add_rejection(exp.id, "c", "1,234 parameters exceed the limit of 1,000")
        n, common = st.rejection_summary(exp.id)
        assert n == 3
        assert common[0] == ("block N (conv) comes after a dense block; it needs spatial input", 2)
        assert st.integrity_ok()


def test_long_samples_and_curves_are_stored_packed_and_text_rows_still_read(tmp_path):
    big = {f"b{i}.{k}": v for i in range(8) for k, v in (("type", "conv"), ("width", 64), ("act", "relu"))}
    curve = tuple({"epoch": float(e), "val_accuracy": 0.5 + e / 100} for e in range(30))
    with Store(tmp_path / "a.db") as st:
        exp = st.create_experiment("e", {}, "fp")
        st.add_trial(exp.id, Trial(number=0, key="big", sample=big, state=TrialState.PENDING))
        st.update_trial(exp.id, Trial(number=0, key="big", sample=big, state=TrialState.COMPLETE, score=0.5,
                                      curve=curve))
        st.add_trial(exp.id, make_trial(1))
    raw = sqlite3.connect(tmp_path / "a.db")
    kinds = [r for r in raw.execute("SELECT typeof(sample), typeof(curve) FROM trials ORDER BY number")]
    assert kinds == [("blob", "blob"), ("text", "text")]  # short ones stay readable text
    raw.execute("UPDATE trials SET sample=? WHERE number=1", ('{"n_blocks": 1, "head": "gap"}',))  # an older file
    raw.commit()
    with Store(tmp_path / "a.db", create=False) as st:
        a, b = st.trials(st.experiment("e").id)
    assert a.sample == big and a.curve == curve and b.sample == {"n_blocks": 1, "head": "gap"}
    raw.execute("UPDATE trials SET sample=? WHERE number=0", (b"\x78\x9cnot zlib",))
    raw.commit()
    raw.close()
    with Store(tmp_path / "a.db", create=False) as st, pytest.raises(StoreError, match="damaged"):
        st.trials(st.experiment("e").id)


def test_later_long_samples_are_packed_against_the_first_and_read_by_another_process(tmp_path):
    def sample(i):
        return {f"b{j}.{k}": v for j in range(10) for k, v in (("type", "conv"), ("width", 16 * (i + j) % 128),
                                                               ("act", "relu"), ("kernel", 3), ("bn", True))}
    db = tmp_path / "a.db"
    with Store(db) as writer, Store(db, readonly=True) as reader:
        exp = writer.create_experiment("e", {}, "fp")
        assert reader.trials(exp.id) == []  # the reader looked for a dictionary before there was one
        for i in range(5):
            writer.add_trial(exp.id, Trial(number=i, key=str(i), sample=sample(i), state=TrialState.PENDING))
        assert [t.sample for t in reader.trials(exp.id)] == [sample(i) for i in range(5)]
    raw = sqlite3.connect(db)
    sizes = [r[0] for r in raw.execute("SELECT length(sample) FROM trials ORDER BY number")]
    alone = len(zlib.compress(json.dumps(sample(3), separators=(",", ":"), sort_keys=True).encode(), 6))
    assert max(sizes[1:]) < alone / 2  # the dictionary makes later samples less than half their size alone
    raw.execute("DELETE FROM meta WHERE key LIKE 'zdict:%'")  # a damaged file: the dictionary is gone
    raw.commit()
    raw.close()
    with Store(db, create=False) as st, pytest.raises(StoreError, match=r"damaged.*dictionary is missing"):
        st.trials(st.experiment("e").id)


def test_schema_3_loses_the_unused_key_index(tmp_path):
    with Store(tmp_path / "a.db") as st:
        st.create_experiment("e", {}, "fp")
    raw = sqlite3.connect(tmp_path / "a.db")
    raw.execute("CREATE INDEX trials_key ON trials (experiment_id, key)")
    raw.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    raw.commit()
    with Store(tmp_path / "a.db", create=False) as st:
        assert st.experiment("e") is not None
    assert raw.execute("SELECT name FROM sqlite_master WHERE type='index' AND name='trials_key'").fetchall() == []
    assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    raw.close()


def test_a_batch_commits_its_writes_once_or_not_at_all(tmp_path):
    db = tmp_path / "a.db"
    with Store(db) as st:
        exp = st.create_experiment("e", {}, "fp")
        for n in range(3):
            st.add_trial(exp.id, make_trial(n, state=TrialState.RUNNING))
        reader = sqlite3.connect(db)
        with st.batch():
            st.update_trial(exp.id, make_trial(0, state=TrialState.COMPLETE, score=0.5))
            st.update_trial(exp.id, make_trial(1, state=TrialState.COMPLETE, score=0.6), elapsed=2.0)
            # another connection sees nothing of the batch before it commits
            assert reader.execute("SELECT COUNT(*) FROM trials WHERE state='COMPLETE'").fetchone()[0] == 0
        assert reader.execute("SELECT COUNT(*) FROM trials WHERE state='COMPLETE'").fetchone()[0] == 2
        with pytest.raises(RuntimeError), st.batch():
            st.update_trial(exp.id, make_trial(2, state=TrialState.COMPLETE, score=0.7))
            raise RuntimeError("the driver fails half way")
        assert [t.state for t in st.trials(exp.id)] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
        assert st.experiment("e").elapsed == 2.0
        reader.close()


def test_progress_rides_on_heartbeats_of_running_trials_only_and_never_touches_the_curve(tmp_path):
    earlier = ({"epoch": 1.0, "val_accuracy": 0.5}, {"epoch": 2.0, "val_accuracy": 0.6})  # a promoted trial's rung
    with Store(tmp_path / "a.db") as st, Store(tmp_path / "a.db", readonly=True) as reader:
        exp = st.create_experiment("e", {}, "fp")
        st.add_trial(exp.id, make_trial(0, budget=Budget(epochs=6)))
        running = make_trial(0, state=TrialState.RUNNING, budget=Budget(epochs=6), curve=earlier, started=1.0)
        st.start_trial(exp.id, running)
        st.add_trial(exp.id, make_trial(1, state=TrialState.COMPLETE, score=0.4))
        row = {"epoch": 3.0, "epochs": 6.0, "val_accuracy": 0.7}
        st.heartbeat(exp.id, {0: 10.0, 1: 10.0}, {0: row, 1: {"epoch": 9.0}})  # trial 1 is not running: no write
        assert reader.progress(exp.id) == {0: row} and reader.heartbeats(exp.id) == {0: 10.0}
        assert reader.trials(exp.id)[0] == running  # the stored curve (what a resumed promotion reads) is as it was
        st.heartbeat(exp.id, {0: 11.0})  # a beat without a new epoch keeps the last one
        assert reader.progress(exp.id) == {0: row}
        st.update_trial(exp.id, running.with_(state=TrialState.COMPLETE, score=0.7))  # told: no epoch is running
        assert reader.progress(exp.id) == {}
        assert st.conn.execute("SELECT COUNT(*) FROM trials WHERE progress IS NOT NULL").fetchone()[0] == 0


def test_a_crash_reset_trial_carries_no_stale_progress(tmp_path):
    with Store(tmp_path / "a.db") as st:
        exp = st.create_experiment("e", {}, "fp")
        st.add_trial(exp.id, make_trial(0, state=TrialState.RUNNING, budget=Budget(epochs=4)), heartbeat=1.0)
        st.heartbeat(exp.id, {0: 2.0}, {0: {"epoch": 3.0, "epochs": 4.0}})
        assert st.progress(exp.id) == {0: {"epoch": 3.0, "epochs": 4.0}}
    with Store(tmp_path / "a.db") as st:  # the driver was killed; the next one resets what it left RUNNING
        exp = st.experiment("e")
        assert st.reset_interrupted(exp.id) == 1
        assert [tuple(r) for r in st.conn.execute("SELECT state, progress FROM trials")] == [("PENDING", None)]
        st.start_trial(exp.id, make_trial(0, state=TrialState.RUNNING, budget=Budget(epochs=4)))
        assert st.progress(exp.id) == {}  # running again, and no epoch of it reported yet


def test_schema_4_gains_the_progress_column_and_still_opens_read_only(tmp_path):
    db = tmp_path / "a.db"
    with Store(db) as st:
        exp = st.create_experiment("e", {}, "fp")
        st.add_trial(exp.id, make_trial(0, state=TrialState.RUNNING), heartbeat=5.0)
    raw = sqlite3.connect(db)  # the file as nasforge with schema 4 wrote it
    raw.execute("ALTER TABLE trials DROP COLUMN progress")
    raw.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    raw.commit()
    with Store(db, readonly=True) as st:  # a reader (status, the dashboard) upgrades it once, then reads
        assert st.heartbeats(exp.id) == {0: 5.0} and st.progress(exp.id) == {}
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            st.conn.execute("UPDATE trials SET progress='{}'")
    assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert "progress" in [r[1] for r in raw.execute("PRAGMA table_info(trials)")]
    raw.close()
    with Store(db, create=False) as st:  # and a driver writes progress into it
        st.heartbeat(exp.id, {0: 6.0}, {0: {"epoch": 1.0, "epochs": 1.0}})
        assert st.progress(exp.id) == {0: {"epoch": 1.0, "epochs": 1.0}}
