"""Scale of the ask/tell core: trials a second through ``Study`` and SQLite, from the first trial to the last.

A user's own loop (``nasforge.open_study``, ask, a synthetic objective that answers at once, tell) on a
chain space of 6 to 10 conv, dropout and batch-norm blocks, with random search and with regularized
evolution, each into its own SQLite file. Every draw of that space is valid and draws rarely repeat;
the toy space's do (60,000 random draws hold 36,608 distinct networks), so there a late trial costs
many draws and the benchmark would measure the space running out, not the loop. The rate is measured
over windows of 1% of the trials, so a loop that slows as the history grows shows it (the issue's bar:
>= 1,000 trials/s sustained, the last 10% no more than 20% slower than the first 10%), in wall time and in
this process's CPU time (which other programs on a shared machine do not change). Then the
database as a user reads it: its size per trial, ``nasforge status`` and ``nasforge report`` (wall
time and peak memory of each, in a process of its own). One heavy job at a time: run it on a quiet
machine.

    .venv/bin/python benchmarks/scale.py [--trials 100000] [--strategies random evolution]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result

import nasforge
from nasforge.space.chain import ChainSpace
from nasforge.testing import toy_objective

SHAPE = (1, 16, 16)


def space() -> ChainSpace:
    return ChainSpace(min_blocks=6, max_blocks=10, types=("conv", "dropout", "batchnorm"), strides=(1,),
                      paddings=("same",), activations=("relu", "tanh", "sigmoid"))  # those toy_objective scores


OPTIONS: dict[str, dict[str, Any]] = {"evolution": {"population_size": 50, "sample_size": 10}}


def timed(cmd: list[str], limit: float = 60.0) -> dict[str, Any]:
    """Wall seconds and peak resident memory (MiB, from /usr/bin/time) of one command, stopped at ``limit``
    with its whole process group (killing /usr/bin/time alone left the command running)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "maxrss_kib=%M", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"seconds": None, "timed_out_after_s": limit}
    wall = time.perf_counter() - t0
    rss = [int(x.split("=")[1]) for x in err.split() if x.startswith("maxrss_kib=")]
    return {"seconds": round(wall, 2), "peak_mib": round(rss[-1] / 1024, 1) if rss else None,
            "rc": proc.returncode, "last_line": (out.strip().splitlines() or [""])[-1][:200]}


def run(strategy: str, trials: int, folder: Path) -> dict[str, Any]:
    sp = space()
    db = folder / f"{strategy}.db"
    window = max(1, trials // 100)
    rates: list[float] = []
    cpu_rates: list[float] = []  # the same windows in this process's CPU time: what other tenants' load leaves out
    t0 = mark = time.perf_counter()
    cpu_mark = time.process_time()
    with nasforge.open_study(db, name=strategy, space=sp, seed=0, input_shape=SHAPE,
                             strategy={"name": strategy, "options": OPTIONS.get(strategy, {})}) as study:
        for i in range(1, trials + 1):
            trial = study.ask()
            if trial is None:
                raise SystemExit(f"{strategy}: the space ran out after {i - 1} trials")
            study.tell(trial, toy_objective(sp, trial.sample))
            if i % window == 0:
                now, cpu = time.perf_counter(), time.process_time()
                rates.append(window / (now - mark))
                cpu_rates.append(window / max(cpu - cpu_mark, 1e-9))
                mark, cpu_mark = now, cpu
        best = study.best
    total = time.perf_counter() - t0
    tenth = max(1, len(rates) // 10)
    first, last = sum(rates[:tenth]) / tenth, sum(rates[-tenth:]) / tenth
    cpu_first, cpu_last = sum(cpu_rates[:tenth]) / tenth, sum(cpu_rates[-tenth:]) / tenth
    size = db.stat().st_size + sum(p.stat().st_size for p in folder.glob(f"{strategy}.db-*"))
    py = [sys.executable, "-m", "nasforge"]
    return {"strategy": strategy, "trials": trials, "seconds": round(total, 2),
            "trials_per_s": round(trials / total, 1), "first_10pct_per_s": round(first, 1),
            "last_10pct_per_s": round(last, 1), "last_vs_first": round(last / first, 3),
            "min_window_per_s": round(min(rates), 1), "rates_per_window": [round(r, 1) for r in rates],
            "cpu_first_10pct_per_s": round(cpu_first, 1), "cpu_last_10pct_per_s": round(cpu_last, 1),
            "cpu_last_vs_first": round(cpu_last / cpu_first, 3),
            "cpu_rates_per_window": [round(r, 1) for r in cpu_rates],
            "db_bytes": size, "bytes_per_trial": round(size / trials, 1),
            "best_score": best.score if best else None,
            "status": timed([*py, "status", str(db), "--name", strategy]),
            "report": timed([*py, "report", str(db), "--name", strategy, "--out", str(folder / f"{strategy}-report")])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100_000)
    p.add_argument("--strategies", nargs="+", default=["random", "evolution"])
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.strategies:
            row = run(s, args.trials, Path(tmp))
            rows.append(row)
            print({k: v for k, v in row.items() if not k.endswith("rates_per_window")}, flush=True)
    write_result(f"scale_{args.trials}", __doc__.splitlines()[0],
                 "python benchmarks/scale.py " + " ".join(sys.argv[1:]), {"runs": rows})


if __name__ == "__main__":
    main()
