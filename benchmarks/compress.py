"""What int8 quantization and 50% channel pruning cost in accuracy and gain in size and CPU latency.

Runs ``nasforge compress DB --quantize int8 --prune 0.5`` (one epoch of fine-tuning by default) on a copy
of DB (the retrained Fashion-MNIST network of ``nasforge auto`` by default): the original database and
its models are only read; the copy and the compressed networks go to a temporary folder. Latency is the
median of many sustained windows (``--windows`` of ``--repeats`` batch-1 runs, the versions taking turns),
on one thread, of each version's frozen TorchScript file.

    .venv/bin/python benchmarks/compress.py /tmp/fm/auto0.db
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from _common import write_result

from nasforge import api

ROW_KEYS = ("name", "method", "note", "accuracy", "f1", "params", "nonzero_params", "size_bytes", "latency_ms",
            "speedup", "channels", "finetune_epochs", "finetune_seconds", "finetune_lr", "calibration_examples")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("db", nargs="?", default="/tmp/fm/auto0.db", help="a database with a retrained network")
    p.add_argument("--prune", type=float, default=0.5)
    p.add_argument("--finetune-epochs", type=float, default=1.0)
    p.add_argument("--calibration", type=int, default=512)
    p.add_argument("--windows", type=int, default=15)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--out", help="write the JSON here instead of benchmarks/results/compress.json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="nasforge-compress-") as tmp:
        work = Path(tmp)
        db = work / Path(args.db).name
        src = sqlite3.connect(f"file:{Path(args.db).resolve()}?mode=ro", uri=True)  # a consistent copy, WAL too
        with sqlite3.connect(db) as dst:
            src.backup(dst)
        src.close()  # the record goes into the copy; the original is only read
        t0 = time.time()
        record = api.compress(db, quantize="int8", prune=args.prune, finetune_epochs=args.finetune_epochs,
                              calibration=args.calibration, out_dir=work / "compressed", windows=args.windows,
                              repeats=args.repeats)
        seconds = time.time() - t0
    rows = {r["name"]: {k: r[k] for k in ROW_KEYS if k in r} for r in record["rows"]}
    fp32 = rows["fp32"]
    for r in rows.values():
        r["accuracy_change_points"] = 100 * (r["accuracy"] - fp32["accuracy"])
        r["size_ratio"] = r["size_bytes"] / fp32["size_bytes"]
    payload = {"db": str(args.db), "trial": record["trial"], "data": record["data"],
               "test_examples": record["test_examples"], "latency": record["latency"], "seconds": seconds,
               "settings": {"prune": args.prune, "finetune_epochs": args.finetune_epochs,
                            "calibration": args.calibration, "windows": args.windows, "repeats": args.repeats},
               "rows": rows}
    purpose = ("int8 (static FX, x86) and 50% structured channel pruning with fine-tuning of the retrained "
               "network: test accuracy, size and batch-1 CPU latency before and after")
    command = "benchmarks/compress.py " + " ".join(sys.argv[1:])
    if args.out:
        import json

        Path(args.out).write_text(json.dumps({"purpose": purpose, "command": command, **payload}, indent=2) + "\n")
        out = Path(args.out)
    else:
        out = write_result("compress", purpose, command, payload)
    for name, r in rows.items():
        print(f"{name:7s} {100 * r['accuracy']:.2f}% ({r['accuracy_change_points']:+.2f})  "
              f"{r['size_bytes'] / 1024:.0f} KiB  {r['latency_ms']:.3f} ms  {r['speedup']:.2f}x  {r['method']}")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
