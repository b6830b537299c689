"""`nasforge auto fashion_mnist --time-budget 1h` against ResNet-20 trained alone for the same hour.

The two arms are the two commands a user runs, one after the other (one heavy job at a time):

    nasforge auto fashion_mnist --time-budget 1h --seed S
    nasforge auto fashion_mnist --time-budget 1h --seed S --reference-only

Both use the same recipe (SGD, one-cycle, label smoothing 0.1, random crops) and see the test split
once. Writes benchmarks/results/auto_fmnist_<budget>.json.

    .venv/bin/python benchmarks/auto_fmnist.py [--budget 1h] [--seeds 0 1 2]
        [--record auto.json] [--reference-record ref.json] [--auto-options '--max-params 100k'] [--name NAME]

``--auto-only`` runs the searched arm alone (for a goal of its own, 95.0% within two hours).
``--record`` and ``--reference-record`` take an arm's ``--json`` record from an earlier run of exactly
that command (same budget and seed) instead of running it again; the arm's wall time is then the
record's own ``seconds.total`` (the process's start-up, a few seconds, is not in it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from auto_small import arm, both_arms, run


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default="1h")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--record", type=Path, help="the auto arm's --json record, already run (first seed)")
    p.add_argument("--reference-record", type=Path, help="the --reference-only arm's --json record, already run")
    p.add_argument("--auto-options", default="", metavar="OPTS",
                   help="more options of `nasforge auto`, e.g. '--max-params 100k' (which the reference's arm gets "
                        "too: it narrows the reference)")
    p.add_argument("--name", default=None, help="results file name (default: auto_fmnist_<budget>)")
    p.add_argument("--auto-only", action="store_true",
                   help="the searched arm alone (a goal of its own, as 95.0%% in two hours): no reference arm")
    args = p.parse_args()
    options = tuple(args.auto_options.split())
    for given in (args.record, args.reference_record):
        if given is not None and not given.is_file():
            p.error(f"no record at {given}: give the --json file an earlier run of that arm wrote")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for seed in args.seeds:
            print(f"seed {seed}: nasforge auto fashion_mnist --time-budget {args.budget} {args.auto_options}",
                  flush=True)
            row = run(f"fmnist-{seed}", "fashion_mnist", args.budget, folder, seed=seed,
                      record=args.record if seed == args.seeds[0] else None,
                      reference_record=args.reference_record if seed == args.seeds[0] else None,
                      options=options, auto_only=args.auto_only)
            if "error" not in row and (row["reference"] or {}).get("arm", "").startswith("in the same run"):
                ref, wall, err = arm("fashion_mnist", args.budget, folder / f"ref-{seed}.db",
                                     folder / f"ref-{seed}.json", "--seed", str(seed), *both_arms(options),
                                     "--reference-only")
                row["reference_alone"] = ({**ref["reference"], "wall_s": round(wall, 1)} if ref is not None
                                          else {"error": err})
            rows.append(row)
            print(json.dumps({k: row.get(k) for k in ("wall_s", "beats_reference", "error")}), flush=True)
    ok = [r for r in rows if "error" not in r]
    write_result(args.name or f"auto_fmnist_{args.budget}", __doc__.splitlines()[0],
                 "python benchmarks/auto_fmnist.py " + " ".join(sys.argv[1:]),
                 {"runs": rows,
                  "mean_searched_test": mean([r["searched"]["test_accuracy"] for r in ok]),
                  # the reference trained alone for the whole budget (the arm the issue compares with)
                  "mean_reference_alone_test": mean(
                      [r["reference"]["test_accuracy"] for r in ok
                       if (r["reference"] or {}).get("arm", "").startswith("--ref")]
                      + [r["reference_alone"]["test_accuracy"] for r in ok if "test_accuracy" in
                         r.get("reference_alone", {})])})


if __name__ == "__main__":
    main()
