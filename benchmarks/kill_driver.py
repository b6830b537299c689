"""Ten kill -9s of the search driver at random moments of one search: no completed trial lost, none re-run,
database integrity clean after every kill, and the search still ends with every trial done once.

    .venv/bin/python benchmarks/kill_driver.py                      # pool of 2 workers, Fashion-MNIST slice;
                                                                    # ~6 minutes; writes results/kill_driver.json
    .venv/bin/python benchmarks/kill_driver.py --executor inline    # the same on the inline executor
    .venv/bin/python benchmarks/kill_driver.py --smoke              # 3 kills on digits; writes nothing

Each round starts the CLI (`nasforge search`, then `--resume`), waits a random time (seeded), and
sends SIGKILL: kills land in start-up, mid-trial and between trials. After each kill the COMPLETE rows
(number, key, finish time) seen so far must all still be there, unchanged (a re-run trial would get a
new finish time), `PRAGMA integrity_check` must pass, and no pool worker may outlive its driver by more
than 15 s (a running worker dies with it at once; one still starting up exits when it gets ready).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import descendants, write_result

Row = tuple[int, str, float]


def completed(db: Path) -> set[Row]:
    if not db.exists():
        return set()
    con = sqlite3.connect(db, timeout=30)
    try:
        return set(con.execute("SELECT number, key, finished FROM trials WHERE state='COMPLETE'").fetchall())
    except sqlite3.OperationalError:  # killed before the schema was written
        return set()
    finally:
        con.close()


def integrity(db: Path) -> str:
    if not db.exists():
        return "ok"
    con = sqlite3.connect(db, timeout=30)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", choices=["inline", "pool", "ray"], default="pool")
    ap.add_argument("--kills", type=int, default=None, help="default 10 (3 with --smoke)")
    ap.add_argument("--trials", type=int, default=None, help="default 400 (10 with --smoke)")
    ap.add_argument("--limit", type=int, default=6000, help="Fashion-MNIST training examples")
    ap.add_argument("--max-wait", type=float, default=None, help="longest wait before a kill, seconds (default 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on digits, to check that it runs")
    args = ap.parse_args()
    kills = args.kills or (3 if args.smoke else 10)
    n = args.trials or (10 if args.smoke else 400)  # long enough that all ten kills land mid-search
    max_wait = args.max_wait or (8.0 if args.smoke else 30.0)
    rng = random.Random(args.seed)
    executor: dict[str, Any] = {"kind": args.executor}
    if args.executor != "inline":
        executor.update(workers=2, threads_per_worker=1)
    with tempfile.TemporaryDirectory(prefix="nf-kill-") as d:
        tmp = Path(d)
        db = tmp / "kill.db"
        cfg = {"name": "kill", "seed": args.seed,
               "data": {"source": "digits"} if args.smoke else {"source": "fashion_mnist", "limit": args.limit},
               "space": {"kind": "chain", "max_blocks": 4, "widths": [16, 32], "kernels": [3, 5]},
               "strategy": {"name": "evolution", "options": {"population_size": 8, "sample_size": 3}},
               "search": {"trials": n, "budget": {"epochs": 1}, "measure_latency": False, "db": str(db)},
               "executor": executor}
        path = tmp / "kill.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cmd = [sys.executable, "-m", "nasforge", "search", str(path)]
        seen: set[Row] = set()
        rounds: list[dict[str, Any]] = []
        problems: list[str] = []
        t0 = time.time()
        for k in range(kills):
            wait = rng.uniform(0.5, max_wait)
            proc = subprocess.Popen([*cmd, *(["--resume"] if db.exists() else [])], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            end = time.time() + wait
            family: set[int] = set()
            while time.time() < end and proc.poll() is None:
                family.update(descendants(proc.pid))
                time.sleep(0.1)
            finished_early = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            grace = time.time() + 15  # a worker still starting up notices its driver is gone when it is ready
            while time.time() < grace and any(alive(p) for p in family):
                time.sleep(0.2)
            left = [p for p in family if alive(p)]
            for p in left:  # count them, then clear them so the next round starts clean
                os.kill(p, signal.SIGKILL)
            now = completed(db)
            lost = seen - now
            check = integrity(db)
            if lost:
                problems.append(f"kill {k + 1}: completed trials lost or re-run: {sorted(lost)[:5]}")
            if check != "ok":
                problems.append(f"kill {k + 1}: integrity_check says {check}")
            if left and args.executor == "pool":
                problems.append(f"kill {k + 1}: {len(left)} worker process(es) outlived the driver")
            rounds.append({"kill": k + 1, "after_s": round(wait, 2), "complete": len(now), "new": len(now - seen),
                           "lost_or_rerun": len(lost), "integrity": check, "orphans": len(left),
                           "driver_had_finished": finished_early})
            print(rounds[-1], flush=True)
            seen |= now
        r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
        final = completed(db)
        con = sqlite3.connect(db)
        states = con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall()
        numbers = [x[0] for x in con.execute("SELECT number FROM trials ORDER BY number")]
        keys = [x[0] for x in con.execute("SELECT key FROM trials")]
        con.close()
        if r.returncode != 0:
            problems.append(f"final resume exited {r.returncode}: {r.stderr.strip()[-300:]}")
        if seen - final:
            problems.append(f"completed trials lost or re-run by the final resume: {sorted(seen - final)[:5]}")
        if numbers != list(range(n)) or len(set(keys)) != len(keys):
            problems.append(f"trial numbers {numbers[:5]}... or keys not unique")
        payload = {"executor": executor, "trials": n, "kills": kills, "rounds": rounds,
                   "final_states": dict(states), "final_complete": len(final), "final_integrity": integrity(db),
                   "problems": problems, "passed": not problems, "total_s": round(time.time() - t0, 1)}
    print({k: v for k, v in payload.items() if k != "rounds"})
    if not args.smoke:
        name = "kill_driver" if args.executor == "pool" else f"kill_driver_{args.executor}"
        print("wrote", write_result(name, "ten kill -9s of the driver at random moments of one search",
                                    f"python benchmarks/kill_driver.py --executor {args.executor}", payload))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
