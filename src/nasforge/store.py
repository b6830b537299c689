"""The experiment store: SQLite in WAL mode, every state change written when it happens.

One file holds any number of named experiments. Each trial row is inserted as PENDING together
with the strategy state that produced it (one transaction), then updated to RUNNING and to its
final state; a killed search therefore resumes from exactly what is on disk.

Concurrency: the search driver is the only writer (workers never touch the database); readers such
as ``nasforge status`` may open it at any time (WAL). A driver holds a lease on its experiment
(``experiments.driver``: host, pid and process start time, plus ``driver_beat``), so a second driver
on the same experiment is refused while the first is alive, and a dead driver's lease is taken over
at once. The beat is renewed from a timer thread (:class:`Lease`), and only while the lease is still the
driver's: a driver whose lease another process took over writes nothing more (every write transaction
checks) and stops. While trials run, the driver records each one's ``heartbeat``: the last time it heard from
the worker, and with it its ``progress``: its latest epoch, for the live view (cleared when the trial ends).
Busy databases are retried with backoff. The file must live on a local disk: SQLite's locking is not
reliable over network file systems.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nasforge.errors import StoreError
from nasforge.types import Budget, Cost, Trial, TrialState

SCHEMA_VERSION = 5
log = logging.getLogger("nasforge")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    elapsed REAL NOT NULL DEFAULT 0,
    strategy_state TEXT,
    driver TEXT,
    driver_beat REAL
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    number INTEGER NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    sample TEXT NOT NULL,
    budget TEXT NOT NULL,
    score REAL,
    metrics TEXT NOT NULL DEFAULT '{}',
    curve TEXT NOT NULL DEFAULT '[]',
    cost TEXT,
    hidden TEXT NOT NULL DEFAULT '{}',
    reason TEXT,
    started REAL,
    finished REAL,
    train_seconds REAL NOT NULL DEFAULT 0,
    eval_seconds REAL NOT NULL DEFAULT 0,
    rungs TEXT NOT NULL DEFAULT '[]',
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress TEXT,
    UNIQUE (experiment_id, number)
);
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL
);
"""

# _MIGRATIONS[v] takes a database from schema v to v + 1, inside the opening transaction.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE trials ADD COLUMN rungs TEXT NOT NULL DEFAULT '[]'",),
    2: ("ALTER TABLE trials ADD COLUMN heartbeat REAL",  # last sign of life of a RUNNING trial's worker
        "ALTER TABLE trials ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",  # workers lost while running it
        "ALTER TABLE experiments ADD COLUMN driver TEXT",  # the lease: who runs the experiment now
        "ALTER TABLE experiments ADD COLUMN driver_beat REAL"),
    # no query looks trials up by key (the study keeps the keys in memory): the index cost ~270 bytes a trial.
    # Samples may now be packed against an experiment's dictionary (meta 'zdict:<id>'), which older code cannot read.
    3: ("DROP INDEX IF EXISTS trials_key",),
    # a RUNNING trial's latest epoch (JSON), written with its heartbeat for the live view; NULL otherwise
    4: ("ALTER TABLE trials ADD COLUMN progress TEXT",),
}
BUSY_RETRIES = 8  # BEGIN IMMEDIATE attempts on a busy database, each after the connection's own wait


def process_token(pid: int | None = None) -> str:
    """``host:pid:start``: names one process for good (the start time tells a reused pid apart)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name
    except (OSError, IndexError):
        return "?"


def token_alive(token: str, beat: float | None, stale_after: float) -> bool:
    """Whether the process a lease token names may still be running.

    On this host the answer is exact (the pid exists with the same start time); a token of another
    host is alive while its last beat is younger than ``stale_after`` seconds.
    """
    host, _, rest = token.partition(":")
    pid_s, _, start = rest.partition(":")
    start = start.partition(":")[0]  # a suffix names one holder inside the process (an open Study)
    if host == socket.gethostname() and pid_s.isdigit():
        pid = int(pid_s)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return start == "?" or _start_time(pid) in (start, "?")
    return beat is not None and time.time() - beat < stale_after


def lost_lease(path: Path, name: str, holder: str | None) -> str:
    """The message of a driver whose lease another process took over (or cleared)."""
    if holder:
        host, _, rest = holder.partition(":")
        who = f"was taken over by process {rest.split(':')[0]} on {host}"
    else:
        who = "was released by another program"
    return (f"the lease of experiment {name!r} in {path} {who}, so this process stopped without writing more; "
            "run `nasforge status` and resume with --resume once no other process runs it")


class Lease:
    """An experiment's lease held by this process, renewed from a daemon timer thread.

    Every ``every`` seconds the thread sets ``driver_beat``, over its own SQLite connection (one
    belongs to the thread that opened it), and only while ``driver`` still names this process: when
    another process has taken the lease over, the thread stops renewing and records why in ``lost``;
    :meth:`check` raises it as a StoreError, for the driver to stop. A busy database skips a beat.
    """

    def __init__(self, path: Path, exp_id: int, token: str, every: float, *, timeout: float = 5.0) -> None:
        self.path, self.exp_id, self.token, self.every, self.timeout = path, exp_id, token, every, timeout
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if every > 0:
            self._thread = threading.Thread(target=self._run, name=f"nasforge-lease-{exp_id}", daemon=True)
            self._thread.start()

    def check(self) -> None:
        """Raise StoreError if the lease was lost."""
        if self.lost is not None:
            raise StoreError(self.lost)

    def guard(self, callback: Callable[..., None] | None) -> Callable[..., None]:
        """``callback`` (an epoch's, say) after :meth:`check`: a long job stops at its next step without the lease."""

        def guarded(*args: Any) -> None:
            self.check()
            if callback is not None:
                callback(*args)

        return guarded

    def renew(self, conn: sqlite3.Connection) -> bool:
        """One beat; False (and ``lost`` says why) when another process holds the lease now."""
        cur = conn.execute("UPDATE experiments SET driver_beat=? WHERE id=? AND driver=?",
                           (time.time(), self.exp_id, self.token))
        if cur.rowcount:
            return True
        row = conn.execute("SELECT name, driver FROM experiments WHERE id=?", (self.exp_id,)).fetchone()
        self.lost = lost_lease(self.path, row[0] if row else str(self.exp_id), row[1] if row else None)
        log.warning("%s", self.lost)
        return False

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as e:
            log.warning("cannot renew the lease of %s (%s); it goes stale unless the driver beats", self.path, e)
            return
        try:
            while not self._stop.wait(self.every):
                try:
                    if not self.renew(conn):
                        return
                except sqlite3.Error as e:  # busy, or briefly unreadable: try again at the next beat
                    log.debug("lease renewal skipped: %s", e)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout + 1.0)


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    fingerprint: str
    config: Mapping[str, Any]
    created: float
    elapsed: float
    strategy_state: Mapping[str, Any] | None


def _dumps(x: Any) -> str:
    return json.dumps(x, separators=(",", ":"), sort_keys=True)


PACK_OVER = 256  # bytes of JSON above which a sample or curve is stored zlib-compressed


def _pack(x: Any, zdict: bytes | None = None) -> str | bytes:
    """JSON text, compressed where long. A chain space's sample is ~2 KB of JSON, mostly dimension names
    repeated in every trial: ~510 bytes compressed alone, ~240 against ``zdict`` (the experiment's first
    sample), which keeps a 100,000-trial database under 1 KB a trial. :func:`_unpack` reads every form."""
    text = _dumps(x)
    if len(text) <= PACK_OVER:
        return text
    if zdict is None:
        return zlib.compress(text.encode(), 6)
    z = zlib.compressobj(6, zdict=zdict)
    return z.compress(text.encode()) + z.flush()


def _unpack(v: str | bytes, zdict: bytes | None = None) -> Any:
    try:
        if isinstance(v, bytes) and len(v) > 1 and v[1] & 0x20:  # zlib's FDICT flag: packed against a dictionary
            if zdict is None:
                raise zlib.error("its dictionary is missing")
            z = zlib.decompressobj(zdict=zdict)
            return json.loads(z.decompress(v) + z.flush())
        return json.loads(zlib.decompress(v) if isinstance(v, bytes) else v)
    except zlib.error as e:  # damaged: reported like damaged JSON
        raise ValueError(f"not a packed record ({e})") from None


class Store:
    """A SQLite experiment database. Use one Store per process; it is the single writer."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False,
                 timeout: float = 10.0) -> None:
        """Open (``create``: or start) a database. ``readonly`` opens with SQLite's ``mode=ro``: for commands
        that only read, so nothing they refuse (or do) can change the file.

        An existing file is checked through a read-only connection before anything writes to it (no
        ``journal_mode`` switch, no schema): an empty file or another program's database given to a
        command that reads is refused unchanged.
        """
        self.path = Path(path)
        self._leases: dict[int, list[Any]] = {}  # experiments whose lease this Store holds: id -> [token, depth]
        self._zdicts: dict[int, bytes | None] = {}  # experiment id -> the dictionary its samples are packed against
        self._batched = False  # inside batch(): transactions join its one
        self.readonly = readonly
        if (readonly or not create) and not self.path.exists():
            raise StoreError(f"no database at {self.path}: run `nasforge search` first or give the right path")
        if self.path.exists() and self.path.is_dir():
            raise StoreError(f"{self.path} is a directory: give a database file path such as runs/search.db")
        version = self._inspect(timeout, empty_ok=create and not readonly) if self.path.exists() else None
        if create and not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if readonly and version == SCHEMA_VERSION:
                self.conn = self._connect_ro(timeout)
                return
            self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            # room in the page cache for a 100,000-trial study's indexes (SQLite's default is 2 MB); SQLite
            # takes the pages only as it uses them
            self.conn.execute("PRAGMA cache_size=-65536")
            self._migrate()
            if readonly:  # a nasforge database of an older schema: upgraded once, then read as asked
                self.conn.close()
                self.conn = self._connect_ro(timeout)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable nasforge database ({e}); give another --db path") from None

    def _connect_ro(self, timeout: float) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True, timeout=timeout,
                               isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def _inspect(self, timeout: float, *, empty_ok: bool) -> int | None:
        """The schema version of an existing file, read without writing; refuses what is not a nasforge database.

        None for an empty file (no tables), which only a command that creates a database may fill.
        """
        try:
            conn = self._connect_ro(timeout)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() \
                    if "meta" in tables else None
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a usable nasforge database ({e}); give another --db path") from None
        if not tables:
            if empty_ok:
                return None
            raise StoreError(f"{self.path} is not a nasforge database (it is empty); run `nasforge search` first "
                             "or give the right path")
        if "meta" not in tables or row is None:
            raise StoreError(f"{self.path} is an SQLite file of another program; give another --db path")
        try:
            version = int(row[0])
        except ValueError:
            raise StoreError(f"{self.path} has a damaged schema version ({row[0]!r}); give another --db path") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer nasforge (schema {version}); upgrade nasforge")
        return version

    def _migrate(self) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite file of another program; give another --db path")
        if not tables:
            self.conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        with self.transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer nasforge (schema {row[0]}); upgrade nasforge")
            elif int(row[0]) < SCHEMA_VERSION:
                for version in range(int(row[0]), SCHEMA_VERSION):
                    for statement in _MIGRATIONS[version]:
                        if not self._has_column(statement):
                            self.conn.execute(statement)
                self.conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def _has_column(self, statement: str) -> bool:
        """Whether an ``ALTER TABLE t ADD COLUMN c ...`` migration step is already in place."""
        words = statement.split()
        if words[:2] != ["ALTER", "TABLE"] or words[3:5] != ["ADD", "COLUMN"]:
            return False
        return any(r[1] == words[5] for r in self.conn.execute(f"PRAGMA table_info({words[2]})"))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The writes inside share one transaction, committed at the end (rolled back on an error): several
        trials that finish at once cost one commit. Nothing else may wait inside it (it holds the write lock)."""
        if self._batched:
            yield
            return
        with self.transaction():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    @contextmanager
    def transaction(self, *, fenced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; a database another connection keeps busy is retried with backoff.

        While this Store holds an experiment's lease, a transaction first checks that it still does: a
        driver another process took over (:func:`lost_lease`) writes nothing more. Inside :meth:`batch` it is
        part of the batch's transaction.
        """
        if self._batched:
            yield self.conn
            return
        for attempt in range(BUSY_RETRIES):
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if attempt == BUSY_RETRIES - 1:
                    raise StoreError(f"{self.path} stayed busy (another program holds a write lock); "
                                     "stop it or give another --db") from None
                log.debug("database busy, retrying (%d)", attempt + 1)
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
        try:
            if fenced:
                self._fence()
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def _fence(self) -> None:
        """Refuse to write once another process has taken over a lease this Store held (inside the transaction)."""
        for exp_id, (token, _) in self._leases.items():
            row = self.conn.execute("SELECT name, driver FROM experiments WHERE id=?", (exp_id,)).fetchone()
            if row is None or row[1] != token:
                raise StoreError(lost_lease(self.path, row[0] if row else str(exp_id), row[1] if row else None))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ experiments
    def create_experiment(self, name: str, config: Mapping[str, Any], fingerprint: str) -> Experiment:
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM experiments WHERE name=?", (name,)).fetchone():
                raise StoreError(f"experiment {name!r} already exists in {self.path}; "
                                 "add --resume to continue it, or give a new --db or name")
            c.execute("INSERT INTO experiments (name, fingerprint, config, created) VALUES (?, ?, ?, ?)",
                      (name, fingerprint, _dumps(config), time.time()))
        exp = self.experiment(name)
        assert exp is not None
        return exp

    def experiment(self, name: str | None = None) -> Experiment | None:
        """The named experiment, or the only/latest one when ``name`` is None."""
        if name is None:
            row = self.conn.execute("SELECT * FROM experiments ORDER BY id DESC LIMIT 1").fetchone()
        else:
            row = self.conn.execute("SELECT * FROM experiments WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        try:
            return Experiment(row["id"], row["name"], row["fingerprint"], json.loads(row["config"]), row["created"],
                              row["elapsed"], json.loads(row["strategy_state"]) if row["strategy_state"] else None)
        except (ValueError, TypeError) as e:
            raise StoreError(f"experiment {row['name']!r} in {self.path} is damaged ({type(e).__name__}: "
                             f"{str(e)[:100]}); give another --db") from None

    def experiment_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM experiments ORDER BY id")]

    def add_elapsed(self, exp_id: int, seconds: float) -> None:
        with self.transaction() as c:
            c.execute("UPDATE experiments SET elapsed = elapsed + ? WHERE id=?", (seconds, exp_id))

    # ------------------------------------------------------------------ trials
    def _zdict(self, exp_id: int) -> bytes | None:
        """The experiment's sample dictionary (its first long sample's JSON), or None before there is one (not
        cached then: another process's store may set it)."""
        if self._zdicts.get(exp_id) is None:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (f"zdict:{exp_id}",)).fetchone()
            self._zdicts[exp_id] = row[0].encode() if row else None
        return self._zdicts[exp_id]

    def add_trial(self, exp_id: int, trial: Trial, strategy_state: Mapping[str, Any] | None = None, *,
                  heartbeat: float | None = None) -> None:
        """Insert a new trial, in any state, and in the same transaction the strategy state that proposed it
        (``heartbeat``: the first one of a trial handed out RUNNING)."""
        sample = dict(trial.sample)
        zdict, new_zdict = self._zdict(exp_id), None
        if zdict is None and len(text := _dumps(sample)) > PACK_OVER:
            zdict = new_zdict = text.encode()
        with self.transaction() as c:
            if new_zdict is not None:
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"zdict:{exp_id}", new_zdict.decode()))
            c.execute(
                "INSERT INTO trials (experiment_id, number, key, sample, heartbeat, state, score, metrics, curve, "
                "cost, hidden, reason, started, finished, train_seconds, eval_seconds, budget, rungs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (exp_id, trial.number, trial.key, _pack(sample, zdict), heartbeat, *_fields(trial)),
            )
            if strategy_state is not None:
                c.execute("UPDATE experiments SET strategy_state=? WHERE id=?", (_dumps(strategy_state), exp_id))
        if new_zdict is not None:
            self._zdicts[exp_id] = new_zdict

    def update_trial(self, exp_id: int, trial: Trial, *, elapsed: float = 0.0, heartbeat: float | None = None) -> None:
        """Store the trial's new record (and add ``elapsed`` seconds to the experiment's, in the same commit;
        ``heartbeat``: set that too). Its progress is cleared: a trial that starts, ends or goes back to waiting
        has no epoch running."""
        beat = ", heartbeat=?" if heartbeat is not None else ""
        with self.transaction() as c:
            if elapsed:
                c.execute("UPDATE experiments SET elapsed = elapsed + ? WHERE id=?", (elapsed, exp_id))
            c.execute(
                "UPDATE trials SET state=?, score=?, metrics=?, curve=?, cost=?, hidden=?, reason=?, started=?, "
                f"finished=?, train_seconds=?, eval_seconds=?, budget=?, rungs=?, progress=NULL{beat} "
                "WHERE experiment_id=? AND number=?",
                (*_fields(trial), *((heartbeat,) if heartbeat is not None else ()), exp_id, trial.number),
            )

    def trials(self, exp_id: int, *, detail: bool = True) -> list[Trial]:
        """Every trial in number order. ``detail=False`` leaves samples and curves out (empty; a pruned trial keeps
        its curve, the best it saw): a 100,000-trial study reads in seconds, in a fraction of the memory, and
        :meth:`trials_by_number` gives the whole record of the trials a reader shows."""
        if detail:
            rows = self.conn.execute("SELECT * FROM trials WHERE experiment_id=? ORDER BY number", (exp_id,))
        else:
            rows = self.conn.execute(f"SELECT {_LIGHT} FROM trials WHERE experiment_id=? ORDER BY number", (exp_id,))
        return self._read_trials(rows)

    def trials_by_number(self, exp_id: int, numbers: Iterable[int]) -> list[Trial]:
        """The whole records of these trials, in number order (numbers not stored are left out)."""
        wanted = sorted(set(numbers))
        out: list[Trial] = []
        for i in range(0, len(wanted), 500):  # under SQLite's limit on bound parameters
            part = wanted[i:i + 500]
            out += self._read_trials(self.conn.execute(
                f"SELECT * FROM trials WHERE experiment_id=? AND number IN ({','.join('?' * len(part))}) "
                "ORDER BY number", (exp_id, *part)))
        return out

    def _read_trials(self, rows: Iterable[sqlite3.Row]) -> list[Trial]:
        zdicts: dict[int, bytes | None] = {}
        try:
            return [_trial(r, zdicts[e] if (e := r["experiment_id"]) in zdicts else
                           zdicts.setdefault(e, self._zdict(e))) for r in rows]
        except (ValueError, TypeError, KeyError) as e:
            raise StoreError(f"a trial in {self.path} is damaged ({type(e).__name__}: {str(e)[:100]}); "
                             "give another --db") from None

    def state_counts(self, exp_id: int) -> dict[str, int]:
        """How many trials are in each state, counted in SQL (no trial is read)."""
        return dict(self.conn.execute("SELECT state, COUNT(*) FROM trials WHERE experiment_id=? GROUP BY state",
                                      (exp_id,)).fetchall())

    def top_trials(self, exp_id: int, n: int, state: str = "COMPLETE") -> list[Trial]:
        """The ``n`` first trials in ``state``: for COMPLETE, best first in ``rank_key``'s order (trained longest,
        then score, then oldest), else oldest first; sorted in SQL, so a 100,000-trial study reads ``n`` rows."""
        order = ("json_extract(budget, '$.epochs') * json_extract(budget, '$.fraction') DESC, score DESC, number"
                 if state == "COMPLETE" else "number")
        scored = " AND score IS NOT NULL" if state == "COMPLETE" else ""
        return self._read_trials(self.conn.execute(
            f"SELECT * FROM trials WHERE experiment_id=? AND state=?{scored} ORDER BY {order} LIMIT ?",
            (exp_id, state, n)))

    def reset_interrupted(self, exp_id: int) -> int:
        """RUNNING trials of a killed search go back to PENDING so they run again; returns how many.

        Call it only while holding the experiment's lease (:meth:`acquire`): then no live process runs
        them, whatever their heartbeat says.
        """
        now = time.time()
        with self.transaction() as c:
            for number, beat in c.execute("SELECT number, heartbeat FROM trials WHERE experiment_id=? AND "
                                          "state='RUNNING'", (exp_id,)).fetchall():
                age = "never" if beat is None else f"{now - beat:.0f} s ago"
                log.info("trial %d was left RUNNING (last heartbeat %s); it runs again", number, age)
            cur = c.execute("UPDATE trials SET state='PENDING', started=NULL, heartbeat=NULL, progress=NULL "
                            "WHERE experiment_id=? AND state='RUNNING'", (exp_id,))
            return cur.rowcount

    def start_trial(self, exp_id: int, trial: Trial) -> None:
        """Store a trial as it starts running, with a first heartbeat (one commit)."""
        self.update_trial(exp_id, trial, heartbeat=time.time())

    def heartbeat(self, exp_id: int, beats: Mapping[int, float],
                  progress: Mapping[int, Mapping[str, float]] | None = None) -> None:
        """Record the last sign of life of running trials' workers (``progress``: and each one's latest epoch,
        :func:`~nasforge.execute.base.progress_row`), and renew the lease if this Store holds it: one commit.

        Only RUNNING trials are written, and never their curve: the progress is for readers (the live view), it
        goes when the trial is told or reset, and nothing a resumed search reads depends on it. Raises
        StoreError, writing nothing, when another process has taken the lease over.
        """
        with self.transaction() as c:  # fenced: the lease is still this Store's
            c.executemany("UPDATE trials SET heartbeat=? WHERE experiment_id=? AND number=? AND state='RUNNING'",
                          [(t, exp_id, n) for n, t in beats.items()])
            if progress:
                c.executemany("UPDATE trials SET progress=? WHERE experiment_id=? AND number=? AND state='RUNNING'",
                              [(_dumps(dict(row)), exp_id, n) for n, row in progress.items()])
            if exp_id in self._leases:
                c.execute("UPDATE experiments SET driver_beat=? WHERE id=? AND driver=?",
                          (time.time(), exp_id, self._leases[exp_id][0]))

    def heartbeats(self, exp_id: int) -> dict[int, float | None]:
        """Running trials and their last heartbeat."""
        return {r[0]: r[1] for r in self.conn.execute(
            "SELECT number, heartbeat FROM trials WHERE experiment_id=? AND state='RUNNING'", (exp_id,))}

    def progress(self, exp_id: int) -> dict[int, dict[str, float]]:
        """Running trials that have reported an epoch, and their latest (``epoch``, ``epochs``, the last validation
        figures), as of the driver's last heartbeat; a damaged record is left out (it is only shown)."""
        out: dict[int, dict[str, float]] = {}
        for number, text in self.conn.execute("SELECT number, progress FROM trials WHERE experiment_id=? AND "
                                              "state='RUNNING' AND progress IS NOT NULL", (exp_id,)):
            try:
                row = json.loads(text)
            except (ValueError, TypeError):
                continue
            if isinstance(row, dict):
                out[number] = {str(k): float(v) for k, v in row.items() if isinstance(v, int | float)}
        return out

    def finished_mark(self, exp_id: int) -> tuple[int, float | None]:
        """How many trials have finished (complete, pruned, failed) and when the last did, counted in SQL: it
        changes whenever a trial finishes, a promoted one again included (the live view redraws on it)."""
        row = self.conn.execute("SELECT COUNT(*), MAX(finished) FROM trials WHERE experiment_id=? AND state IN "
                                "('COMPLETE', 'PRUNED', 'FAILED')", (exp_id,)).fetchone()
        return int(row[0]), row[1]

    def driver(self, exp_id: int) -> tuple[str | None, float | None]:
        """The experiment's lease: the token of the process that holds it (None when none does) and its last beat."""
        row = self.conn.execute("SELECT driver, driver_beat FROM experiments WHERE id=?", (exp_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def count_attempt(self, exp_id: int, number: int) -> int:
        """One more lost worker for this trial; returns how many it has had."""
        with self.transaction() as c:
            c.execute("UPDATE trials SET attempts = attempts + 1 WHERE experiment_id=? AND number=?", (exp_id, number))
            row = c.execute("SELECT attempts FROM trials WHERE experiment_id=? AND number=?",
                            (exp_id, number)).fetchone()
        return int(row[0]) if row else 0

    def acquire(self, exp_id: int, token: str, *, stale_after: float = 60.0,
                then: str = "run again with --resume") -> None:
        """Take the experiment's lease for the process ``token`` names, unless a live process holds it.

        Taking a lease this Store already holds nests (each acquire needs its release). ``then`` ends the
        refusal's message: what to do once the other process is done.
        """
        if exp_id in self._leases and self._leases[exp_id][0] == token:
            self._leases[exp_id][1] += 1
            return
        with self.transaction() as c:
            row = c.execute("SELECT name, driver, driver_beat FROM experiments WHERE id=?", (exp_id,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path} has no experiment with id {exp_id}")
            name, held, beat = row
            if held and held != token and token_alive(held, beat, stale_after):
                host, _, rest = held.partition(":")
                raise StoreError(f"experiment {name!r} in {self.path} is being run by process {rest.split(':')[0]} "
                                 f"on {host}; wait for it to finish or stop it, then {then}")
            c.execute("UPDATE experiments SET driver=?, driver_beat=? WHERE id=?", (token, time.time(), exp_id))
        self._leases[exp_id] = [token, 1]

    def release(self, exp_id: int, token: str) -> None:
        """Give the lease up (the outermost release of nested acquires does), if ``token`` still holds it."""
        held = self._leases.get(exp_id)
        if held is not None and held[0] == token:
            held[1] -= 1
            if held[1] > 0:
                return
            del self._leases[exp_id]
        with self.transaction(fenced=False) as c:
            c.execute("UPDATE experiments SET driver=NULL WHERE id=? AND driver=?", (exp_id, token))

    @contextmanager
    def lease(self, exp_id: int, *, token: str | None = None, every: float = 5.0, stale_after: float = 60.0,
              then: str = "run again with --resume") -> Iterator[Lease]:
        """Hold the experiment's lease for this process while the block runs, renewed every ``every`` seconds.

        The renewal runs on a timer thread, so a long epoch or a slow step never lets the lease go
        stale; a block whose lease another process took over learns it from :meth:`Lease.check` and
        from every write it tries (both raise StoreError). Released at the end, whatever happens.
        """
        token = token or process_token()
        self.acquire(exp_id, token, stale_after=stale_after, then=then)
        keeper = Lease(self.path, exp_id, token, every)
        try:
            yield keeper
        finally:
            keeper.stop()
            with suppress(Exception):  # a failing store must not hide the error that ended the block
                self.release(exp_id, token)

    # ------------------------------------------------------------------ rejections and results
    def add_rejection(self, exp_id: int, key: str, reason: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO rejections (experiment_id, key, reason, created) VALUES (?, ?, ?, ?)",
                      (exp_id, key, reason, time.time()))

    def rejections(self, exp_id: int) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT key, reason FROM rejections WHERE experiment_id=? ORDER BY id", (exp_id,))]

    def rejection_summary(self, exp_id: int, top: int = 3) -> tuple[int, list[tuple[str, int]]]:
        reasons = [reason_kind(r) for _, r in self.rejections(exp_id)]
        return len(reasons), Counter(reasons).most_common(top)

    def add_result(self, exp_id: int, kind: str, payload: Mapping[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO results (experiment_id, kind, payload, created) VALUES (?, ?, ?, ?)",
                      (exp_id, kind, _dumps(payload), time.time()))

    def results(self, exp_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT kind, payload, created FROM results WHERE experiment_id=?"
        args: tuple[Any, ...] = (exp_id,)
        if kind is not None:
            q += " AND kind=?"
            args += (kind,)
        rows = self.conn.execute(q + " ORDER BY id", args)
        return [{"kind": r[0], "created": r[2], **json.loads(r[1])} for r in rows]

    def integrity_ok(self) -> bool:
        return bool(self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


def reason_kind(reason: str) -> str:
    """The reason without its numbers, to group rejections ("block 3 (conv) ..." -> "block N (conv) ...")."""
    import re

    return re.sub(r"\d[\d,]*", "N", reason.split(":")[0])


# the columns a light read takes: no sample, and a curve only where it is the record of a pruned trial's best
_LIGHT = ("experiment_id, number, key, state, budget, score, metrics, cost, hidden, reason, started, finished, "
          "train_seconds, eval_seconds, rungs, '{}' AS sample, "
          "CASE WHEN state='PRUNED' THEN curve ELSE '[]' END AS curve")


def _fields(t: Trial) -> tuple[Any, ...]:
    """A trial's changeable columns, in the order add_trial and update_trial write them."""
    return (t.state.value, t.score, _dumps(dict(t.metrics)), _pack([dict(r) for r in t.curve]),
            _dumps(t.cost.to_json()) if t.cost else None, _dumps(dict(t.hidden)), t.reason, t.started, t.finished,
            t.train_seconds, t.eval_seconds, _dumps(t.budget.to_json()), _dumps(list(t.rungs)))


def _json(text: str) -> Any:
    """``json.loads``, with the empty records most rows hold read without the parser (a new object each time)."""
    return {} if text == "{}" else [] if text == "[]" else json.loads(text)


def _floats(text: str) -> tuple[float, ...]:
    """A stored list of floats (rung scores): ``float`` reads JSON's numbers, NaN and Infinity included."""
    return tuple(float(x) for x in text[1:-1].split(",")) if text != "[]" else ()


@functools.lru_cache(maxsize=256)
def _budget(text: str) -> Budget:
    """A budget's record, parsed once: a study has a few distinct budgets (a scheduler's rungs), Budget is frozen."""
    return Budget.from_json(json.loads(text))


def _trial(r: sqlite3.Row, zdict: bytes | None = None) -> Trial:
    sample, curve = r["sample"], r["curve"]
    return Trial(
        number=r["number"],
        key=r["key"],
        sample={} if sample == "{}" else _unpack(sample, zdict),
        state=TrialState(r["state"]),
        budget=_budget(r["budget"]),
        score=r["score"],
        metrics=_json(r["metrics"]),
        curve=() if curve == "[]" else tuple(_unpack(curve)),
        cost=Cost.from_json(json.loads(r["cost"])) if r["cost"] else None,
        hidden=_json(r["hidden"]),
        reason=r["reason"],
        started=r["started"],
        finished=r["finished"],
        train_seconds=r["train_seconds"],
        eval_seconds=r["eval_seconds"],
        rungs=_floats(r["rungs"]),
    )
