"""The live view of a search: ``nasforge dashboard DB`` serves the report page and keeps it current.

Standard library only (``http.server``). ``/`` is the page: a live panel (counts, best trial, the running
trials) above the report's own sections (:func:`nasforge.report.html.report_sections`, the same figures and
table as ``nasforge report``); ``/api/status.json`` is what the panel shows, as JSON; ``/figures`` is the
report's sections alone, which the page swaps in when a trial finishes; ``/trials.csv`` every trial;
``/healthz`` says whether the database can be read. The page polls the JSON every ``interval`` seconds,
loads nothing from anywhere else and runs only its own script (a Content-Security-Policy by hash).

Every request opens the database read-only (SQLite ``mode=ro``) and closes it before answering: a reader of
a WAL database never blocks the search's writer, so the view works beside a running search, and as well on
a finished one. The figures are redrawn only after a trial finished, and at most every :data:`REDRAW_GAP`
seconds or four times as long as the last drawing took, whichever is longer: drawing takes a CPU core for
seconds (more on a large study), which the search needs more.

Binding: 127.0.0.1 unless a host is given, because the page has no authentication. Bound to loopback, it
answers only requests that name a loopback host, so a web page in the user's browser cannot read it through
a DNS name rebound to 127.0.0.1.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import math
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nasforge.errors import ConfigError, NasforgeError
from nasforge.fmt import fmt_budget, fmt_time
from nasforge.report.frame import load
from nasforge.report.html import (
    CSS,
    SORTER,
    csp_hash,
    csv_text,
    esc,
    make_figures,
    nav_links,
    page_html,
    report_sections,
)
from nasforge.result import Result
from nasforge.space import make_space
from nasforge.space.base import SearchSpace
from nasforge.store import Store, token_alive
from nasforge.stored import stored
from nasforge.types import Sample, TrialState

log = logging.getLogger("nasforge")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
DEFAULT_INTERVAL = 2.0
MIN_INTERVAL = 0.1  # seconds between two polls of one page, at least
REDRAW_GAP = 5.0  # seconds between two drawings of the figures, at least (and 4 drawings' time)
STALE_AFTER = 60.0  # a lease of another host whose beat is older than this: its search is not running
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


class DashboardError(NasforgeError):
    """The dashboard cannot listen as asked: the port is in use, the address is not this machine's."""


def figures_version(n_finished: int, last_finished: float | None, n_retrains: int) -> str:
    """What the figures depend on, as one string: it changes when a trial finishes or a retrain is stored."""
    return f"{n_finished}-{last_finished!r}-{n_retrains}"


def result_version(data: Result) -> str:
    """:func:`figures_version` of a loaded experiment (the same string the status gives for the same rows)."""
    done = [t for t in data.trial_list if t.state in FINISHED]
    last = max((t.finished for t in done if t.finished is not None), default=None)
    return figures_version(len(done), last, len(data.retrains))


def finite(x: Any) -> Any:
    """``x`` with every NaN or infinity (in lists and dicts too) as None: JSON has no such numbers."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def epoch_text(epoch: float | None, epochs: float | None) -> str:
    """A running trial's epoch as the panel shows it ("3 of 5"; "-" before its first epoch is stored), as the
    page's script writes it."""
    if epoch is None:
        return "-"
    return f"{epoch:g}" + ("" if epochs is None else f" of {epochs:g}")


def val_text(accuracy: float | None, score: float | None) -> str:
    """A running trial's last validation figure: its accuracy, else its score (a regression's), else "-"."""
    if accuracy is not None:
        return f"{accuracy:.4f}"
    return "-" if score is None else f"score {score:.4f}"


def is_loopback_host(header: str | None) -> bool:
    """Whether an HTTP Host header names this machine's loopback (``localhost``, 127.x, ``[::1]``; any port)."""
    if not header:
        return False
    name = header.strip().lower()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    if name in ("localhost", "localhost.") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_options(host: str, port: int, interval: float) -> None:
    """One-line errors for options the dashboard cannot use, before anything is opened."""
    if not isinstance(host, str) or not host.strip():
        raise ConfigError("--host is empty: give an address such as 127.0.0.1 (the default) or 0.0.0.0")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a whole number from 0 to 65535 (0: any free port), got {port!r}")
    if (isinstance(interval, bool) or not isinstance(interval, int | float) or not math.isfinite(interval)
            or interval < MIN_INTERVAL):
        raise ConfigError(f"--interval must be a number of seconds of at least {MIN_INTERVAL:g}, got {interval!r}")


# ---------------------------------------------------------------------- the page
LIVE_CSS = CSS + """
#live .on { color: #1a7f37; font-weight: 600; } #live .off { color: #777; font-weight: 600; }
#live td.big { font-size: 20px; font-weight: 600; }
"""

LIVE_JS = SORTER + """
(function () {
  var live = document.getElementById("live"), report = document.getElementById("report");
  var every = Math.max(100, 1000 * Number(live.getAttribute("data-interval")));
  var drawing = false;
  function put(id, text) { var el = document.getElementById(id); if (el !== null) { el.textContent = text; } }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function fmtTime(s) {  // as nasforge.fmt.fmt_time
    if (s === null || s === undefined) { return "-"; }
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + "h" + two(m) + "m" + two(r) + "s" : m ? m + "m" + two(r) + "s" : r + "s";
  }
  function asOf(v) {  // as live.as_of
    var n = Number(v.split("-")[0]);
    return "The sections below were drawn after " + n + " finished trial" + (n === 1 ? "" : "s") + ".";
  }
  function fixed(x, d) { return x === null || x === undefined ? "-" : x.toFixed(d); }
  function none(x) { return x === null || x === undefined; }
  function epochText(r) {  // as live.epoch_text
    return none(r.epoch) ? "-" : String(r.epoch) + (none(r.epochs) ? "" : " of " + String(r.epochs));
  }
  function valText(r) {  // as live.val_text
    if (!none(r.val_accuracy)) { return fixed(r.val_accuracy, 4); }
    return none(r.val_score) ? "-" : "score " + fixed(r.val_score, 4);
  }
  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    return td;
  }
  function show(s) {
    put("live-trials", String(s.trials));
    put("live-finished", String(s.finished));
    put("live-states", Object.keys(s.states).map(function (k) { return s.states[k] + " " + k; }).join(", ") || "none");
    put("live-best", s.best === null ? "-" : "trial " + s.best.trial + ": " + fixed(s.best.score, 4) + " after "
        + s.best.budget + ", " + s.best.architecture);
    put("live-elapsed", fmtTime(s.elapsed));
    put("live-searching", s.searching ? "searching" : "not searching (finished or stopped)");
    document.getElementById("live-searching").className = s.searching ? "on" : "off";
    put("live-updated", "updated " + new Date().toLocaleTimeString());
    var rows = s.running.map(function (r) {
      var tr = document.createElement("tr");
      [cell(String(r.trial)), cell(r.budget), cell(epochText(r)), cell(valText(r)),
       cell(fmtTime(r.running_for)), cell(r.heartbeat_age === null ? "-" : fmtTime(r.heartbeat_age) + " ago"),
       cell(r.architecture, "arch")].forEach(function (td) { tr.appendChild(td); });
      return tr;
    });
    var body = document.getElementById("live-running");
    body.replaceChildren.apply(body, rows);
    put("live-idle", rows.length ? "" : "No trial is running.");
    live.setAttribute("data-polls", String(Number(live.getAttribute("data-polls")) + 1));
    if (s.version !== report.getAttribute("data-version") && !drawing) { redraw(); }
  }
  function counted() {  // as the report's load handler: how many figures decoded
    var imgs = Array.prototype.slice.call(report.querySelectorAll("img.plot"));
    return Promise.all(imgs.map(function (im) {
      return im.decode().then(function () { return 1; }, function () { return 0; });
    })).then(function (ok) {
      var n = ok.reduce(function (a, b) { return a + b; }, 0);
      document.body.setAttribute("data-plots-loaded", String(n));
    });
  }
  function redraw() {
    drawing = true;
    fetch("figures", {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      var v = r.headers.get("X-Nasforge-Version");
      return r.text().then(function (html) {
        if (v === report.getAttribute("data-version")) { return null; }  // not redrawn yet: keep the page still
        report.innerHTML = html;
        report.setAttribute("data-version", v);
        put("report-asof", asOf(v));
        return counted();
      });
    }).catch(function () { return null; }).then(function () { drawing = false; });
  }
  function poll() {
    fetch("api/status.json", {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(show, function () {
      put("live-searching", "the dashboard does not answer");
      document.getElementById("live-searching").className = "off";
    }).then(function () { setTimeout(poll, every); });
  }
  poll();
})();
"""

LIVE_CSP = (f"default-src 'none'; img-src data:; style-src {csp_hash(LIVE_CSS)}; script-src {csp_hash(LIVE_JS)}; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'")
RUNNING_HEAD = ("trial", "budget", "epoch", "val acc", "running for", "heartbeat", "architecture")


def as_of(version: str) -> str:
    """What the drawn sections show, in words, from their :func:`figures_version` ("": not drawn yet)."""
    if not version:
        return "Drawing the figures..."
    n = int(version.split("-")[0])
    return f"The sections below were drawn after {n} finished trial{'' if n == 1 else 's'}."


def live_panel(status: Mapping[str, Any], interval: float, version: str = "") -> str:
    """The panel the page's script keeps current, filled with ``status`` for a browser without script;
    ``version``: that of the sections below it."""
    best = status["best"]
    best_text = "-" if best is None else (f"trial {best['trial']}: {best['score']:.4f} after {best['budget']}, "
                                          f"{best['architecture']}")
    states = ", ".join(f"{n} {s}" for s, n in status["states"].items()) or "none"
    on = status["searching"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in (
            r["trial"], r["budget"], epoch_text(r["epoch"], r["epochs"]), val_text(r["val_accuracy"], r["val_score"]),
            fmt_time(r["running_for"]),
            "-" if r["heartbeat_age"] is None else fmt_time(r["heartbeat_age"]) + " ago"))
        + f"<td class='arch'>{esc(r['architecture'])}</td></tr>" for r in status["running"])
    head = "".join(f"<th class='arch'>{esc(h)}</th>" if h == "architecture" else f"<th>{esc(h)}</th>"
                   for h in RUNNING_HEAD)
    return (f"<section id='live' data-interval='{esc(f'{interval:g}')}' data-polls='0'><h2>Live: "
            f"<span id='live-searching' class='{'on' if on else 'off'}'>"
            f"{'searching' if on else 'not searching (finished or stopped)'}</span></h2>"
            f"<p class='caption' id='live-updated'>as the page loaded</p>"
            "<table class='kv'>"
            f"<tr><td>trials</td><td id='live-trials' class='big'>{esc(status['trials'])}</td></tr>"
            f"<tr><td>finished</td><td id='live-finished'>{esc(status['finished'])}</td></tr>"
            f"<tr><td>by state</td><td id='live-states'>{esc(states)}</td></tr>"
            f"<tr><td>best</td><td id='live-best'>{esc(best_text)}</td></tr>"
            f"<tr><td>search time</td><td id='live-elapsed'>{esc(fmt_time(status['elapsed']))}</td></tr>"
            "</table><h2 class='sub'>Running trials</h2>"
            f"<p class='caption' id='live-idle'>{'' if status['running'] else 'No trial is running.'}</p>"
            f"<table class='trials' id='running'><thead><tr>{head}</tr></thead><tbody id='live-running'>{rows}"
            "</tbody></table><p class='caption'>Epoch and val acc: the latest epoch the trial has trained, of its "
            "budget's, and its validation accuracy (a regression's score), as its worker last reported them; "
            "heartbeat: when its worker was last heard from. The counts refresh every "
            f"{esc(f'{interval:g}')} s, the sections below after trials finish (at most every {REDRAW_GAP:g} s).</p>"
            f"<p class='caption' id='report-asof'>{esc(as_of(version))}</p></section>")


# ---------------------------------------------------------------------- the server
class Dashboard:
    """An HTTP server of one experiment's live view (see the module's docstring).

    Construct it to check everything and bind the port (one-line errors); then :meth:`serve_forever`
    (until Ctrl-C) or :meth:`start` (a background thread; :meth:`close` stops it). ``url`` says where it is.
    """

    def __init__(self, db: str | Path, *, name: str | None = None, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, interval: float = DEFAULT_INTERVAL) -> None:
        check_options(host, port, interval)
        store, exp, _ = stored(db, name)  # read-only; refuses a missing file, another program's, a wrong name
        store.close()
        self.db, self.name, self.interval = Path(db), exp.name, float(interval)
        self._space: tuple[str, SearchSpace | None] | None = None  # (config fingerprint, its space)
        self._cache: tuple[str, str, float] | None = None  # (figures_version, sections, not redrawn before)
        self._draw_lock = threading.Lock()
        self._scratch: Path | None = None  # where the figures are drawn; deleted on close
        self._thread: threading.Thread | None = None
        self._closed = False
        self._server = _bind(host, port)
        self._server.view = self
        self.address, self.port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self.loopback = ipaddress.ip_address(self.address.split("%")[0]).is_loopback
        shown = f"[{self.address}]" if ":" in self.address else self.address
        self.url = f"http://{shown}:{self.port}/"
        if not self.loopback:
            log.warning("the dashboard listens on %s port %d, beyond this machine, and has no authentication: "
                        "anyone who reaches it reads experiment %r; leave --host out to serve 127.0.0.1 only",
                        self.address, self.port, self.name)

    # -- serving
    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C raises KeyboardInterrupt here, after the server is closed)."""
        self._warm()
        try:
            self._server.serve_forever(poll_interval=0.25)
        finally:
            self._closed = True
            self._server.server_close()
            self._clean()

    def start(self) -> Dashboard:
        """Serve from a daemon thread; returns at once."""
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="nasforge-dashboard", daemon=True)
        self._thread.start()
        self._warm()
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
        self._clean()

    def _clean(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _warm(self) -> None:
        """Draw the figures once in the background, so the first page has them soon."""

        def draw() -> None:
            try:
                self.figures()
            except Exception as e:  # the page shows it when it asks for them
                log.debug("the first drawing of the figures failed: %s", e)

        threading.Thread(target=draw, name="nasforge-dashboard-draw", daemon=True).start()

    # -- what it serves
    def _open(self) -> tuple[Store, Any, Any]:
        return stored(self.db, self.name)  # read-only, closed by the caller's ``with``

    def _describe(self, fingerprint: str, space_cfg: Mapping[str, Any], sample: Sample) -> str:
        if self._space is None or self._space[0] != fingerprint:
            try:
                self._space = (fingerprint, make_space(dict(space_cfg)))
            except NasforgeError:
                self._space = (fingerprint, None)
        space = self._space[1]
        try:
            return str(space.describe(sample)) if space is not None else "?"
        except (KeyError, ValueError, TypeError):
            return "?"

    def status(self) -> dict[str, Any]:
        """The panel's data: counts, best trial, running trials, and the version of the figures to show."""
        store, exp, cfg = self._open()
        with store:
            counts = store.state_counts(exp.id)
            n_done, last = store.finished_mark(exp.id)
            top = store.top_trials(exp.id, 1)
            beats = store.heartbeats(exp.id)
            epochs = store.progress(exp.id)  # each running trial's latest epoch, stored with its heartbeat
            running = store.trials_by_number(exp.id, beats)
            driver, beat = store.driver(exp.id)
            n_retrains = len(store.results(exp.id, "retrain"))
        now = time.time()  # after the reads: no trial read started later
        fp = exp.fingerprint
        best = None
        if top:
            b = top[0]
            best = {"trial": b.number, "score": b.score, "budget": fmt_budget(b.budget),
                    "params": b.cost.params if b.cost else None,
                    "architecture": self._describe(fp, cfg.space, b.sample)}
        rows = []
        for t in running:
            p = epochs.get(t.number, {})
            hb = beats.get(t.number)
            rows.append({"trial": t.number, "budget": fmt_budget(t.budget), "epochs": p.get("epochs", t.budget.epochs),
                         "epoch": p.get("epoch"), "val_accuracy": p.get("val_accuracy"),
                         "val_score": p.get("val_score"),
                         "running_for": max(0.0, now - t.started) if t.started else None,
                         "heartbeat_age": max(0.0, now - hb) if hb else None,
                         "architecture": self._describe(fp, cfg.space, t.sample)})
        states = {s.value.lower(): counts[s.value] for s in TrialState if counts.get(s.value)}
        return finite({
            "experiment": exp.name, "db": str(self.db),
            "searching": bool(driver) and token_alive(str(driver), beat, STALE_AFTER),
            "trials": sum(states.values()), "finished": n_done, "states": states, "best": best,
            "elapsed": exp.elapsed, "max_trials": cfg.search.trials, "time_budget": cfg.search.time_budget,
            "running": rows, "retrains": n_retrains, "version": figures_version(n_done, last, n_retrains),
            "time": now,
        })

    def _version(self) -> str:
        store, exp, _ = self._open()
        with store:
            n_done, last = store.finished_mark(exp.id)
            n_retrains = len(store.results(exp.id, "retrain"))
        return figures_version(n_done, last, n_retrains)

    def figures(self) -> tuple[str, str]:
        """The report's sections (HTML) and their version: redrawn when a trial has finished since the last
        drawing, and not sooner than the module's docstring says (else the last drawing, with its older version)."""
        with self._draw_lock:  # one drawing at a time; a request that waited gets the fresh one
            cached = self._cache
            if cached is not None and (time.monotonic() < cached[2] or cached[0] == self._version()):
                return cached[1], cached[0]
            t0 = time.monotonic()
            data = load(self.db, self.name)
            if self._scratch is None:  # made on first use, so a refused start writes nothing anywhere
                self._scratch = Path(tempfile.mkdtemp(prefix="nasforge-dashboard-"))
            images, importance_text = make_figures(data, self._scratch)
            took = time.monotonic() - t0
            self._cache = (result_version(data), report_sections(data, images, importance_text),
                           t0 + max(REDRAW_GAP, 4 * took))
            return self._cache[1], self._cache[0]

    def page(self) -> str:
        """The whole page: the live panel, and the report's sections as last drawn (the script fetches newer)."""
        status = self.status()
        cached = self._cache
        sections, version = (cached[1], cached[0]) if cached is not None else (
            "<section id='summary'><h2>Summary</h2><p class='caption'>Drawing the figures...</p></section>", "")
        body = (live_panel(status, self.interval, version)
                + f"<div id='report' data-version='{esc(version)}'>{sections}</div>")
        return page_html(title=f"nasforge dashboard: {self.name}",
                         subtitle=f"{self.db} · live, polled every {self.interval:g} s",
                         nav=nav_links([("live", "Live")]), body=body, style=LIVE_CSS, script=LIVE_JS, csp=LIVE_CSP)

    def trials_csv(self) -> str:
        return csv_text(load(self.db, self.name))

    def healthz(self) -> str:
        store, _, _ = self._open()
        store.close()
        return "ok\n"


def _bind(host: str, port: int) -> _Server:
    """A server bound to ``host``:``port``; one-line errors for a port in use or an address not of this machine."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return (_Server6 if family == socket.AF_INET6 else _Server)((host.strip("[]"), port), _Handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise DashboardError(f"port {port} on {host} is in use (another dashboard or program); give another "
                                 "--port, or --port 0 for a free one") from None
        if e.errno == errno.EACCES:
            raise DashboardError(f"cannot listen on port {port} on {host}: permission denied; give a port above "
                                 "1023") from None
        raise DashboardError(f"cannot listen on {host} port {port}: {e.strerror or e}; give an address of this "
                             "machine, such as 127.0.0.1 (the default)") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up Ctrl-C
    view: Dashboard

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: its getfqdn() may wait on DNS
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("dashboard: a request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


PAGE_HEADERS = {"Content-Security-Policy": LIVE_CSP + "; frame-ancestors 'none'"}
OTHER_HEADERS = {"Content-Security-Policy": "default-src 'none'; img-src data:; frame-ancestors 'none'"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nasforge-dashboard"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        view = self.server.view
        path = urlsplit(self.path).path
        if view.loopback and not is_loopback_host(self.headers.get("Host")):
            # bound to loopback, asked for by another name: a DNS rebinding page, or a proxy; nothing to read
            self._send(403, "text/plain", b"only this machine's loopback names (localhost, 127.0.0.1) are served\n",
                       head=head)
            return
        extra: dict[str, str] = {}
        try:
            if path == "/":
                body, ctype = view.page().encode(), "text/html; charset=utf-8"
                extra = dict(PAGE_HEADERS)
            elif path == "/api/status.json":
                body, ctype = json.dumps(view.status(), allow_nan=False).encode(), "application/json"
            elif path == "/figures":
                sections, version = view.figures()
                body, ctype = sections.encode(), "text/html; charset=utf-8"
                extra = {"X-Nasforge-Version": version}
            elif path == "/trials.csv":
                body, ctype = view.trials_csv().encode(), "text/csv; charset=utf-8"
            elif path == "/healthz":
                body, ctype = view.healthz().encode(), "text/plain; charset=utf-8"
            else:
                self._send(404, "text/plain", b"not found: the dashboard serves /, /api/status.json, /figures, "
                                              b"/trials.csv and /healthz\n", head=head)
                return
        except NasforgeError as e:  # the database went away or cannot be read now: say so, keep serving
            self._send(503, "text/plain", f"{e}\n".encode(), head=head)
            return
        except Exception as e:
            log.warning("dashboard: %s failed: %s: %s", path, type(e).__name__, e)
            self._send(500, "text/plain", f"internal error: {type(e).__name__}: {e}\n".encode(), head=head)
            return
        self._send(200, ctype, body, head=head, extra=extra)

    def _send(self, code: int, ctype: str, body: bytes, *, head: bool, extra: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for k, v in {**OTHER_HEADERS, **(extra or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser went away
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: %s %s", self.address_string(), format % args)


def dashboard(db: str | Path, *, name: str | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
              interval: float = DEFAULT_INTERVAL, block: bool = True) -> Dashboard:
    """Serve the live view of an experiment (the latest in ``db`` unless named) at ``dashboard.url``.

    127.0.0.1 unless ``host`` is given (the page has no authentication); ``port=0`` takes a free port.
    ``block=True`` serves until Ctrl-C; ``block=False`` serves from a background thread and returns the
    Dashboard at once (its ``close()`` stops it).
    """
    view = Dashboard(db, name=name, host=host, port=port, interval=interval)
    if not block:
        return view.start()
    view.serve_forever()
    return view
