"""Hostile input, generated: configs and data files built to break things give one clear line, never a traceback.

Property-based (hypothesis) with bounded example counts. Configs go through the real CLI entry
against an existing database, which must stay unchanged and integrity-clean; data files go through
the loaders (truncated IDX files, wrong magic numbers, huge dimensions, mismatched lengths, NaN and
non-numeric cells, damaged archives).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasforge.cli import main
from nasforge.config import load_config
from nasforge.data import load_dataset
from nasforge.errors import ConfigError, DataError
from nasforge.store import Store

EXAMPLES = int(os.environ.get("NASFORGE_HOSTILE_EXAMPLES", "60"))  # more for a soak: NASFORGE_HOSTILE_EXAMPLES=500
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def one_clean_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error message"
    assert not any("Traceback" in line or "internal error" in line for line in err), err
    assert err[-1].startswith("nasforge: error: ")
    return err[-1]


# ------------------------------------------------------------------------------------------ configs

weird = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 10 ** 7), st.text(max_size=4), st.floats()), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=3),
)
KEYS = {
    "data": ["source", "path", "val_fraction", "layout", "label_column", "limit"],
    "space": ["kind", "max_blocks", "min_blocks", "widths", "kernels", "strides", "types", "max_params", "n_nodes",
              "dropout_rates", "type_probs", "heads"],
    "strategy": ["name", "options"],
    "search": ["trials", "time_budget", "budget", "db", "scheduler", "stopping", "objectives", "max_latency_ms",
               "screen", "max_retries", "trial_timeout", "max_memory_mb"],
    "train": ["optimizer", "lr", "batch_size", "schedule", "weight_decay", "augment"],
    "retrain": ["epochs", "baseline"],
    "executor": ["kind", "workers", "threads_per_worker", "address", "heartbeat_timeout"],
}
GOOD = {"data": {"source": "digits"}, "space": {"kind": "chain", "max_blocks": 3, "widths": [8]},
        "strategy": {"name": "random"}, "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False},
        "executor": {"kind": "inline"}}


@st.composite
def hostile_configs(draw):
    cfg = {k: dict(v) for k, v in GOOD.items()}
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from([*KEYS, "junk"]))
        if section == "junk":
            cfg[draw(st.text(min_size=1, max_size=8))] = draw(weird)
        elif draw(st.integers(0, 9)) == 0:
            cfg[section] = draw(weird)  # a whole section of the wrong type
        else:
            sec = cfg.setdefault(section, {})
            if not isinstance(sec, dict):
                continue
            key = draw(st.sampled_from(KEYS[section] + ["typo_key"]))
            value = draw(weird)
            if key == "budget":
                value = {"epochs": draw(weird), "fraction": draw(weird)} if draw(st.booleans()) else value
            sec[key] = value
    return cfg


@pytest.fixture(scope="module")
def existing_db(tmp_path_factory):
    """A database holding a finished experiment named 'nasforge', as a user's would."""
    d = tmp_path_factory.mktemp("db")
    db = d / "s.db"
    cfg = d / "good.yaml"
    cfg.write_text(yaml.safe_dump(GOOD))
    assert main(["search", str(cfg), "--db", str(db)]) == 0
    with Store(db) as s:
        trials = s.trials(s.experiment("nasforge").id)
    return db, trials


def assert_untouched(existing) -> None:
    db, trials = existing
    with Store(db) as s:
        assert s.integrity_ok()
        assert s.experiment_names() == ["nasforge"] and s.trials(s.experiment("nasforge").id) == trials


@SETTINGS
@given(cfg=hostile_configs())
def test_generated_configs_give_one_line_through_the_cli(cfg, existing_db, tmp_path_factory, capsys):
    """Broken configs fail in one line; valid ones stop at the existing experiment; the db is untouched."""
    p = tmp_path_factory.mktemp("cfg") / "c.yaml"
    try:
        p.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    capsys.readouterr()
    assert main(["search", str(p), "--db", str(existing_db[0])]) == 2
    one_clean_line(capsys)
    assert_untouched(existing_db)


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin1"))))
def test_arbitrary_yaml_text_is_a_config_or_a_config_error(text, tmp_path_factory):
    p = tmp_path_factory.mktemp("y") / "c.yaml"
    p.write_bytes(text.encode("utf-8", "surrogatepass") if text else b"")
    try:
        load_config(p)
    except ConfigError as e:
        assert "\n" not in str(e).strip()


def test_yaml_is_loaded_safely(tmp_path, capsys):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    assert main(["search", str(p)]) == 2
    assert "not valid YAML" in one_clean_line(capsys) and not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------------------ IDX files


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def good_idx(n: int, rng: np.random.Generator) -> dict[str, bytes]:
    names = {"train-images-idx3-ubyte": rng.integers(0, 255, (n, 6, 6), dtype=np.uint8),
             "train-labels-idx1-ubyte": (np.arange(n) % 3).astype(np.uint8),
             "t10k-images-idx3-ubyte": rng.integers(0, 255, (6, 6, 6), dtype=np.uint8),
             "t10k-labels-idx1-ubyte": (np.arange(6) % 3).astype(np.uint8)}
    return {k: idx_bytes(v) for k, v in names.items()}


@st.composite
def damaged_idx(draw):
    files = good_idx(draw(st.integers(6, 30)), np.random.default_rng(draw(st.integers(0, 99))))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(files)))
        data = bytearray(files[name])
        how = draw(st.sampled_from(["truncate", "magic", "dims", "count", "junk", "append", "gzip", "drop"]))
        if how == "truncate":
            data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
        elif how == "magic":
            data[:4] = draw(st.binary(min_size=4, max_size=4))
        elif how == "dims" and len(data) >= 8:
            ndim = data[3] if data[3] else 1
            k = draw(st.integers(0, max(0, min(ndim, (len(data) - 4) // 4) - 1)))
            data[4 + 4 * k: 8 + 4 * k] = struct.pack(">I", draw(st.sampled_from([0, 1, 2 ** 31, 2 ** 32 - 1,
                                                                                 2 ** 21, 7])))
        elif how == "count" and len(data) >= 8:  # another number of examples than the other file of the pair
            count = struct.unpack(">I", bytes(data[4:8]))[0] + draw(st.integers(1, 5))
            data[4:8] = struct.pack(">I", count % 2 ** 32)
        elif how == "junk":
            data = bytearray(draw(st.binary(max_size=64)))
        elif how == "append":
            data += draw(st.binary(min_size=1, max_size=16))
        elif how == "gzip":
            data = bytearray(gzip.compress(bytes(data))[: draw(st.integers(0, 40))])
        elif how == "drop":
            files.pop(name)
            continue
        files[name] = bytes(data)
    return files


@SETTINGS
@given(files=damaged_idx())
def test_damaged_idx_files_give_a_data_error(files, tmp_path_factory):
    d = tmp_path_factory.mktemp("idx")
    for name, data in files.items():
        (d / name).write_bytes(data)
    try:
        load_dataset("idx", d)
    except DataError as e:
        assert "\n" not in str(e)


# ------------------------------------------------------------------------------------------ CSV and npz

cell = st.one_of(st.integers(-5, 5).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.sampled_from(["", "nan", "NaN", "inf", "-inf", "abc", "1e999", "'1'", '"', "1,5", " 3 "]),
                 st.text(max_size=5))


@st.composite
def hostile_csv(draw):
    width = draw(st.integers(1, 5))
    rows = [[str(i) for i in range(width)]] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 25))):
        n = width if draw(st.integers(0, 5)) else draw(st.integers(0, width + 2))  # sometimes ragged
        rows.append([draw(cell) for _ in range(n)])
    return "\n".join(",".join(r) for r in rows)


@SETTINGS
@given(text=hostile_csv(), label=st.one_of(st.none(), st.sampled_from(["0", "label", "nope"]), st.integers(-3, 6)))
def test_hostile_csv_tables_give_a_data_error(text, label, tmp_path_factory):
    p = tmp_path_factory.mktemp("csv") / "t.csv"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_dataset("csv", p, label_column=label)
    except DataError as e:
        assert "\n" not in str(e)


arrays = st.one_of(
    st.builds(lambda shape, v: np.full(shape, v, dtype=np.float32),
              st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
              st.sampled_from([0.0, 1.5, np.nan, np.inf, -1.0])),
    st.builds(lambda n: np.arange(n) % 3, st.integers(0, 12)),
    st.builds(lambda n: np.array(["a"] * n), st.integers(0, 4)),
    st.just(np.array(3.0)),
)


@st.composite
def hostile_npz(draw):
    parts = {}
    for key in ("x_train", "y_train", "x_test", "y_test", "classes"):
        if draw(st.integers(0, 3)):
            parts[key] = draw(arrays)
    buf = io.BytesIO()
    np.savez(buf, **parts)
    data = buf.getvalue()
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@SETTINGS
@given(data=hostile_npz())
def test_hostile_npz_archives_give_a_data_error(data, tmp_path_factory):
    p = tmp_path_factory.mktemp("npz") / "a.npz"
    p.write_bytes(data)
    try:
        load_dataset("npz", p)
    except DataError as e:
        assert "\n" not in str(e)


def test_an_npz_holding_python_objects_is_refused(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, x_train=np.array([{"a": 1}] * 4, dtype=object), y_train=np.arange(4))
    with pytest.raises(DataError, match="Python objects"):
        load_dataset("npz", p)
    with zipfile.ZipFile(tmp_path / "b.npz", "w") as z:
        z.writestr("x_train.npy", b"\x93NUMPY garbage")
    with pytest.raises(DataError):
        load_dataset("npz", tmp_path / "b.npz")


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(files=damaged_idx())
def test_bad_data_through_the_cli_leaves_the_database_alone(files, existing_db, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("idxcli")
    for name, data in files.items():
        (d / name).write_bytes(data)
    p = Path(d) / "c.yaml"
    p.write_text(yaml.safe_dump({**GOOD, "data": {"source": "idx", "path": str(d)}}))
    capsys.readouterr()
    assert main(["search", str(p), "--db", str(existing_db[0]), "--resume"]) == 2
    one_clean_line(capsys)
    assert_untouched(existing_db)
