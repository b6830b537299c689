"""Trials per hour on the process pool, 1 worker against 2 (1 thread each), the same trials on Fashion-MNIST;
then the same search on the Ray executor: it completes, and resumes after its driver is killed with -9.

    .venv/bin/python benchmarks/executors.py            # ~8 minutes on 2 cores; writes results/executors.json
    .venv/bin/python benchmarks/executors.py --smoke    # a one-minute check on digits; writes nothing

The pool runs go in the order 1, 2, 2, 1 workers so that drift in the machine's load cancels out. The
random strategy proposes the same trials whatever runs them, so both pool sizes train the very same
networks (checked). Throughput counts whole searches, worker start-up included ("wall"), and also the
span from the first trial's start to the last one's end ("steady").
"""

from __future__ import annotations

import argparse
import contextlib
import os
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

from nasforge import api
from nasforge.config import from_dict
from nasforge.store import Store


def config(args: argparse.Namespace, db: Path, executor: dict[str, Any]) -> dict[str, Any]:
    data = {"source": "digits"} if args.smoke else {"source": "fashion_mnist", "limit": args.limit}
    return {
        "name": "executors", "seed": 0, "data": data,
        "space": {"kind": "chain", "max_blocks": 4, "widths": [16, 32], "kernels": [3, 5],
                  "types": ["conv", "pool", "dense", "batchnorm"]},
        "strategy": {"name": "random"},
        "search": {"trials": args.trials, "budget": {"epochs": 1}, "measure_latency": False, "db": str(db)},
        "executor": executor,
    }


def pool_run(args: argparse.Namespace, tmp: Path, workers: int, i: int) -> dict[str, Any]:
    db = tmp / f"pool{workers}-{i}.db"
    t0 = time.time()
    out = api.run_config(from_dict(config(args, db, {"kind": "pool", "workers": workers, "threads_per_worker": 1})))
    wall = time.time() - t0
    trials = out.trials
    span = max(t.finished or 0 for t in trials) - min(t.started or t0 for t in trials)
    n = sum(t.state.finished for t in trials)
    print(f"pool {workers} worker(s): {n} trials in {wall:.1f} s ({span:.1f} s of trials)", flush=True)
    return {"workers": workers, "trials": n, "wall_s": round(wall, 2), "steady_s": round(span, 2),
            "trials_per_hour_wall": round(3600 * n / wall, 1), "trials_per_hour_steady": round(3600 * n / span, 1),
            "keys": sorted(t.key for t in trials), "failed": sum(not t.ok for t in trials)}


def completed(db: Path) -> set[tuple[int, str, float]]:
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return set(con.execute("SELECT number, key, finished FROM trials WHERE state='COMPLETE'").fetchall())
        finally:
            con.close()
    except sqlite3.OperationalError:
        return set()


def ray_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """A CLI search on Ray, killed with -9 after a third of its trials, then resumed to the end."""
    db = tmp / "ray.db"
    cfg = tmp / "ray.yaml"
    cfg.write_text(yaml.safe_dump(config(args, db, {"kind": "ray", "workers": 2, "threads_per_worker": 1})))
    cmd = [sys.executable, "-m", "nasforge", "search", str(cfg)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(completed(db)) < max(1, args.trials // 3) and proc.poll() is None:
        time.sleep(0.2)
    started = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = completed(db)
    t_kill = time.time() - t0
    r = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
    for pid in started:  # a local Ray instance's node agents outlive a driver killed with -9
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    after = completed(db)
    with Store(db) as st:
        ok = st.integrity_ok()
        exp = st.experiment("executors")
        assert exp is not None
        states = [t.state.value for t in st.trials(exp.id)]
    res = {"killed_after_s": round(t_kill, 1), "complete_at_kill": len(before), "resume_exit_code": r.returncode,
           "complete_at_end": len(after), "trials": len(states), "lost": len(before - after),
           "integrity_ok": ok, "total_s": round(time.time() - t0, 1)}
    print(f"ray: {res}", flush=True)
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=None, help="trials per search (default 24; 6 with --smoke)")
    ap.add_argument("--limit", type=int, default=6000, help="Fashion-MNIST training examples")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on digits, to check that it runs")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    args.trials = args.trials or (6 if args.smoke else 24)
    with tempfile.TemporaryDirectory(prefix="nf-executors-") as d:
        tmp = Path(d)
        runs = [pool_run(args, tmp, w, i) for i, w in enumerate((1, 2, 2, 1))]
        rate = {w: sum(r["trials_per_hour_wall"] for r in runs if r["workers"] == w) / 2 for w in (1, 2)}
        steady = {w: sum(r["trials_per_hour_steady"] for r in runs if r["workers"] == w) / 2 for w in (1, 2)}
        same = len({tuple(r["keys"]) for r in runs}) == 1
        ray = None if args.no_ray else ray_run(args, tmp)
    for r in runs:
        r.pop("keys")
    payload = {"trials_per_search": args.trials, "data": "digits" if args.smoke else f"fashion_mnist[{args.limit}]",
               "pool_runs": runs, "trials_per_hour": {"1 worker": round(rate[1], 1), "2 workers": round(rate[2], 1)},
               "ratio_2_vs_1_wall": round(rate[2] / rate[1], 3), "ratio_2_vs_1_steady": round(steady[2] / steady[1], 3),
               "same_trials_in_every_run": same, "ray_kill_and_resume": ray}
    print({k: v for k, v in payload.items() if k != "pool_runs"})
    if not args.smoke:
        print("wrote", write_result("executors", "trials/hour: process pool 1 vs 2 workers (1 thread each), "
                                    "same trials; Ray search killed with -9 and resumed",
                                    "python benchmarks/executors.py", payload))


if __name__ == "__main__":
    main()
