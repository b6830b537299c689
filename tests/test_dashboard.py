"""The live dashboard (`nasforge dashboard`): served beside a real search running in another process, read as
JSON and in headless Chromium (a screenshot is kept under tests/artifacts/); it listens on loopback unless a
host is given; a refused command says why in one line, exits 2 and leaves every file as it was."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import nasforge
from nasforge.cli import main
from nasforge.config import from_dict
from nasforge.execute import InlineExecutor
from nasforge.execute.factories import TorchEvaluatorFactory
from nasforge.loop import run_search
from nasforge.report.browser import DevTools, find_chromium, remote_refs
from nasforge.report.html import FIGURES
from nasforge.report.live import LIVE_CSP, Dashboard, epoch_text, is_loopback_host, val_text
from nasforge.space import make_space
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.types import Budget, Trial, TrialState

from .test_hardening_lease import completed as stored_trials

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SEARCH = {
    "name": "digits", "seed": 0, "data": {"source": "digits"},
    "space": {"kind": "chain", "max_blocks": 3, "widths": [8, 16], "kernels": [3], "types": ["conv", "pool", "dense"]},
    "strategy": {"name": "random"},
    "search": {"trials": 100_000, "budget": {"epochs": 1}, "measure_latency": False},  # until stopped
}


def fetch(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def status(view: Dashboard) -> dict[str, Any]:
    code, _, body = fetch(view.url + "api/status.json")
    assert code == 200, body
    return dict(json.loads(body))


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds:g} s for {what}")


@pytest.fixture(scope="class")
def running(tmp_path_factory) -> Iterator[tuple[subprocess.Popen[str], Path, Dashboard]]:
    """A real search (digits, one epoch a trial) running in its own process, and a dashboard on it; stopped after
    the class that uses it, so that the other tests do not share the CPU with it."""
    d = tmp_path_factory.mktemp("live")
    db = d / "s.db"
    cfg = d / "c.yaml"
    cfg.write_text(yaml.safe_dump({**SEARCH, "search": {**SEARCH["search"], "db": str(db)}}))
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "search", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: stored_trials(db) >= 1 or proc.poll() is not None, 120, "the search's first trial")
        assert proc.poll() is None, proc.communicate()[1]
        view = Dashboard(db, port=0, interval=0.5).start()
        try:
            yield proc, db, view
        finally:
            view.close()
    finally:
        proc.send_signal(signal.SIGTERM)  # stopped as Ctrl-C stops it
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT driver FROM experiments").fetchone()[0] is None  # the lease was released
    finally:
        con.close()


@pytest.fixture
def finished(tmp_path) -> Path:
    """A small finished study (three told trials), no training."""
    db = tmp_path / "f.db"
    with nasforge.open_study(db, name="s", space={"kind": "chain", "max_blocks": 3}, input_shape=(1, 8, 8),
                             strategy="random") as study:
        for score in (0.5, 0.75, 0.25):
            study.tell(study.ask(), score)
    return db


# ---------------------------------------------------------------------- beside a running search
class TestBesideARunningSearch:
    def test_status_json_follows_a_running_search(self, running):
        proc, _, view = running
        first = status(view)
        assert first["experiment"] == "digits" and first["searching"] is True and first["max_trials"] == 100_000
        seen_running: list[dict[str, Any]] = []

        def more() -> dict[str, Any] | None:
            s = status(view)
            seen_running.extend(s["running"])
            return s if s["trials"] > first["trials"] and s["finished"] > first["finished"] else None

        later = wait_for(more, 60, "the trial count to rise")
        assert proc.poll() is None  # the search went on while the dashboard read its database
        assert later["best"] is not None and 0 < later["best"]["score"] <= 1 and later["best"]["architecture"] != "?"
        assert sum(later["states"].values()) == later["trials"] and later["states"]["complete"] >= 2
        assert later["version"] != first["version"]  # the figures are redrawn
        # the inline executor runs one trial at a time: most polls find it, with its budget and its worker's heartbeat
        assert seen_running, "no poll saw a running trial"
        r = seen_running[-1]
        assert r["budget"] == "1ep@100%" and r["running_for"] >= 0 and r["heartbeat_age"] is not None
        code, headers, body = fetch(view.url + "figures")
        assert code == 200 and headers["X-Nasforge-Version"] and body.count(b"data:image/png;base64,") == len(FIGURES)
        assert fetch(view.url + "healthz")[2] == b"ok\n"

    def test_the_page_counts_up_in_chromium_while_the_search_runs(self, running):
        if find_chromium() is None:
            pytest.skip("chromium is not installed (make setup installs Debian's chromium)")
        proc, _, view = running
        count = "Number(document.getElementById('live-trials').textContent)"
        with DevTools() as browser:
            browser.open(view.url)
            polled = "Number(document.getElementById('live').getAttribute('data-polls'))"
            wait_for(lambda: browser.evaluate(polled) >= 1, 30, "the page's first poll")
            first = browser.evaluate(count)
            assert first >= 1
            wait_for(lambda: browser.evaluate(count) > first, 60, "the count shown on the page to rise")
            assert proc.poll() is None  # still searching: the page watched a running search
            # the report's figures, swapped in by the page's script, all decode
            loaded = "Number(document.body.getAttribute('data-plots-loaded'))"
            wait_for(lambda: browser.evaluate(loaded) == len(FIGURES), 60, "the figures")
            assert browser.evaluate("document.getElementById('live-searching').textContent") == "searching"
            dom = browser.evaluate("document.documentElement.outerHTML")
            assert remote_refs(dom) == [] and "<script src" not in dom
            ARTIFACTS.mkdir(exist_ok=True)
            shot = browser.call("Page.captureScreenshot", {"format": "png"})["data"]
            (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot))


# ---------------------------------------------------------------------- a running trial's epoch
class Watched:
    """An evaluator that asks the dashboard what it shows after each epoch the search has heard of."""

    def __init__(self, inner: Any, look: Callable[[], None]) -> None:
        self.inner, self.look = inner, look

    def evaluate(self, sample: Any, budget: Budget, report: Any = None, checkpoint: Any = None) -> Any:
        def heard(epoch: int, row: Any) -> None:
            report(epoch, row)  # the search's own: it stores the epoch with the heartbeat
            self.look()

        return self.inner.evaluate(sample, budget, heard, checkpoint)


def test_a_running_trials_epoch_advances_in_the_status_as_it_trains(tmp_path, digits):
    """A real inline search on digits, 3 epochs a trial: after each epoch, a reader of the database (the status
    JSON) sees the running trial's epoch k of 3 and its validation accuracy."""
    db = tmp_path / "s.db"
    config = {k: v for k, v in SEARCH.items() if k != "search"}
    space = make_space(SEARCH["space"])
    factory = TorchEvaluatorFactory(digits, space, from_dict({}).train, seed=0, measure_latency=False)
    shown: list[dict[str, Any]] = []
    with Store(db) as st:
        exp = st.create_experiment("digits", config, "fp")
        view = Dashboard(db, port=0)
        try:
            ex = InlineExecutor(Watched(factory(), lambda: shown.extend(view.status()["running"])))
            out = run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=0),
                             executor=ex, input_shape=digits.input_shape, budget=Budget(epochs=3), max_trials=2,
                             heartbeat_every=0)
            page = view.page()
            after = view.status()
        finally:
            view.close()
    assert [(r["trial"], r["epoch"], r["epochs"]) for r in shown] == [(n, e, 3.0) for n in (0, 1) for e in (1, 2, 3)]
    assert all(0 <= r["val_accuracy"] <= 1 and r["heartbeat_age"] is not None for r in shown)
    last = {r["trial"]: r["val_accuracy"] for r in shown if r["epoch"] == 3}
    assert last == {t.number: pytest.approx(t.curve[-1]["val_accuracy"]) for t in out.trials}
    assert after["running"] == [] and "No trial is running." in page
    assert all([r["epoch"] for r in t.curve] == [1.0, 2.0, 3.0] for t in out.trials)  # curves as without a view


@pytest.fixture
def older(tmp_path) -> Path:
    """A database of the previous schema (4: no progress column) with one trial left RUNNING, of 5 epochs."""
    db = tmp_path / "old.db"
    with Store(db) as st:
        exp = st.create_experiment("digits", {k: v for k, v in SEARCH.items() if k != "search"}, "fp")
        sample = make_space(SEARCH["space"]).sample(np.random.default_rng(0))
        st.add_trial(exp.id, Trial(number=0, key="a", sample=sample, state=TrialState.RUNNING,
                                   budget=Budget(epochs=5), started=time.time()), heartbeat=time.time())
    raw = sqlite3.connect(db)
    raw.execute("ALTER TABLE trials DROP COLUMN progress")
    raw.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    raw.commit()
    raw.close()
    return db


def report_epoch(db: Path) -> None:
    """What the search stores after the running trial's third epoch (with its heartbeat)."""
    with Store(db) as st:
        st.heartbeat(st.experiment().id, {0: time.time()}, {0: {"epoch": 3.0, "epochs": 5.0, "val_accuracy": 0.875}})


def test_an_older_database_opens_read_only_and_the_panel_shows_the_epoch_once_stored(older, capsys):
    assert main(["status", str(older)]) == 0
    out = capsys.readouterr().out
    assert "1 running" in out and "running trial" not in out  # no epoch stored yet
    with Dashboard(older, port=0) as view:
        (r,) = view.status()["running"]
        assert (r["trial"], r["epoch"], r["epochs"], r["val_accuracy"]) == (0, None, 5.0, None)
        report_epoch(older)
        (r,) = view.status()["running"]
        assert (r["epoch"], r["epochs"], r["val_accuracy"]) == (3.0, 5.0, 0.875)
        assert "<td>3 of 5</td><td>0.8750</td>" in view.page()  # as a browser without script shows it
    assert main(["status", str(older)]) == 0
    assert "running trial 0: epoch 3 of 5, val_acc 0.8750\n" in capsys.readouterr().out
    assert (epoch_text(None, 5), epoch_text(2.0, None), val_text(None, -0.25)) == ("-", "2", "score -0.2500")


def test_the_pages_script_shows_the_epoch_as_the_server_does(older):
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make setup installs Debian's chromium)")
    report_epoch(older)
    with Dashboard(older, port=0, interval=0.2).start() as view, DevTools() as browser:
        browser.open(view.url)
        polled = "Number(document.getElementById('live').getAttribute('data-polls'))"
        wait_for(lambda: browser.evaluate(polled) >= 1, 30, "the page's first poll")
        cells = browser.evaluate("Array.from(document.querySelectorAll('#live-running td')).map(td => td.textContent)")
        assert cells[:4] == ["0", "5ep@100%", "3 of 5", "0.8750"], cells


# ---------------------------------------------------------------------- a finished search, and what it serves
def test_a_finished_search_and_every_route(finished):
    with Dashboard(finished, port=0, interval=1).start() as view:
        s = status(view)
        assert (s["experiment"], s["trials"], s["finished"], s["searching"], s["running"]) == ("s", 3, 3, False, [])
        assert s["best"]["trial"] == 1 and s["best"]["score"] == 0.75 and s["states"] == {"complete": 3}
        code, headers, page = fetch(view.url)
        assert code == 200 and headers["Content-Security-Policy"] == LIVE_CSP + "; frame-ancestors 'none'"
        text = page.decode()
        assert "id='live-trials' class='big'>3<" in text and remote_refs(text) == []
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
        code, headers, body = fetch(view.url + "figures")
        assert code == 200 and headers["X-Nasforge-Version"] == s["version"]
        assert b"id='plot-best_so_far'" in body and b"<script" not in body
        assert fetch(view.url + "trials.csv")[2].decode().splitlines()[0].startswith("trial,state,val_acc")
        assert fetch(view.url + "healthz") == (200, fetch(view.url + "healthz")[1], b"ok\n")
        assert fetch(view.url + "nope")[0] == 404
        req = urllib.request.Request(view.url + "api/status.json", method="POST", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 501  # read only: GET and HEAD


def test_the_lazy_public_name_serves_without_importing_torch(finished):
    script = f"""
import json, sys, urllib.request
import nasforge
view = nasforge.dashboard({str(finished)!r}, port=0, block=False)
for path in ("", "api/status.json", "figures"):
    urllib.request.urlopen(view.url + path, timeout=60).read()
view.close()
print("torch imported:", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torch imported: False"


# ---------------------------------------------------------------------- where it listens
def outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # a route lookup only: UDP sends nothing on connect
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ipaddress.ip_address(ip).is_loopback or ip == "0.0.0.0" else ip


def start_cli(*args: str, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    """`nasforge dashboard ARGS` in its own process (temporary files in ``tmp``); its address."""
    # SIGINT as a terminal delivers it: a suite started in the background (`make test &`, nohup) ignores it, the
    # child would inherit that, and Python then installs no KeyboardInterrupt handler (Ctrl-C below hung 30 s)
    proc = subprocess.Popen([sys.executable, "-m", "nasforge", "dashboard", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("dashboard: http://"), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split()[1]


def stop_cli(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def test_it_listens_on_loopback_only_unless_a_host_is_given(finished, tmp_path):
    outside = outside_address()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with Dashboard(finished, port=0).start() as view:
        assert view.address == "127.0.0.1" and view.loopback and view.url.startswith("http://127.0.0.1:")
        assert view._server.socket.getsockname()[0] == "127.0.0.1"
        if outside is not None:
            with pytest.raises(OSError):
                socket.create_connection((outside, view.port), timeout=3).close()
        # a page whose DNS name was rebound to 127.0.0.1 sends its own name: refused
        assert fetch(view.url + "api/status.json", host="attacker.example")[0] == 403
        assert fetch(view.url + "healthz", host=f"localhost:{view.port}")[0] == 200
    assert is_loopback_host("[::1]:80") and is_loopback_host("127.0.0.2") and not is_loopback_host("10.0.0.1:80")

    proc, url = start_cli(str(finished), "--port", "0", tmp=tmp)  # the command's default too
    try:
        assert url.startswith("http://127.0.0.1:") and fetch(url + "healthz")[2] == b"ok\n"
        assert b"id='plot-architecture'" in fetch(url + "figures")[2]
    finally:
        err = stop_cli(proc)
    assert "WARNING" not in err and err.strip() == "nasforge dashboard: stopped"
    assert list(tmp.iterdir()) == []  # the figures' scratch folder went with it

    proc, url = start_cli(str(finished), "--port", "0", "--host", "0.0.0.0", tmp=tmp)  # only when asked
    try:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        assert url.startswith("http://0.0.0.0:")
        assert fetch(f"http://127.0.0.1:{port}/healthz")[0] == 200
        if outside is not None:
            assert fetch(f"http://{outside}:{port}/api/status.json")[0] == 200  # any Host: the user opted in
    finally:
        err = stop_cli(proc)
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "no authentication" in warnings[0] and "0.0.0.0" in warnings[0]


# ---------------------------------------------------------------------- bad input
def snapshot(folder: Path) -> dict[str, str]:
    """Every file's content and time; SQLite's -shm index and an empty -wal, which a read-only reader of a WAL
    database may create (as `nasforge status` does), count as unchanged."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith("-shm")
            and not (p.name.endswith("-wal") and p.stat().st_size == 0)}


def test_bad_input_is_one_line_exit_2_and_changes_nothing(finished, capsys):
    folder = finished.parent
    (folder / "notes.db").write_text("not a database\n")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    cases = [
        ([str(folder / "missing.db")], "no database at"),
        ([str(finished), "--name", "nope"], "has no experiment 'nope'"),
        ([str(folder / "notes.db")], "not a usable nasforge database"),
        ([str(finished), "--port", str(taken)], f"port {taken} on 127.0.0.1 is in use"),
        ([str(finished), "--port", "70000"], "--port must be a whole number from 0 to 65535"),
        ([str(finished), "--interval", "0"], "--interval must be a number of seconds of at least 0.1"),
        ([str(finished), "--interval", "nan"], "--interval must be"),
        ([str(finished), "--host", ""], "--host is empty"),
        ([str(finished), "--host", "192.0.2.1", "--port", "0"], "cannot listen on 192.0.2.1"),
    ]
    try:
        before = snapshot(folder)
        for args, message in cases:
            assert main(["dashboard", *args]) == 2, args
            err = capsys.readouterr().err
            assert err.startswith("nasforge: error: ") and message in err and err.count("\n") == 1, (args, err)
            assert snapshot(folder) == before, args
        assert not (folder / "missing.db").exists()
    finally:
        busy.close()
