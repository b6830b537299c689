"""Search strategies on tabular NAS-Bench-201: final test accuracy after N queries, mean ± std over seeds.

Each run searches the NB201 cell space on the dataset's 12-epoch validation accuracy and reports the
200-epoch test accuracy of the best architecture it found (see ``nasforge.bench``). The table is
not part of the repository: pass its path (default: ``../shared/benchmarks/nasbench201/``).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/nb201.py     # all three datasets, 100 x 100
    .venv/bin/python benchmarks/nb201.py --datasets cifar10 --seeds 10 --strategies random,evolution

Writes ``benchmarks/results/nb201_<dataset>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _common import RESULTS, write_result

from nasforge.bench import run_bench

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TABLE = ROOT.parent / "shared" / "benchmarks" / "nasbench201" / "nb201_table.csv.gz"
STRATEGIES = "random,evolution,reinforce,tpe,bananas,local_search"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--datasets", default="cifar10,cifar100,imagenet16")
    ap.add_argument("--strategies", default=STRATEGIES)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=100)
    args = ap.parse_args()
    command = "OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/nb201.py " + " ".join(sys.argv[1:])
    for dataset in args.datasets.split(","):
        print(f"{dataset}:", flush=True)
        doc = run_bench(args.table, dataset, args.strategies.split(","), args.queries, args.seeds, out_json=None,
                        out_png=RESULTS / f"nb201_{dataset}.png",
                        on_done=lambda n, r: print(f"  {n:13s} {r['final_test_mean']:.2f} ± {r['final_test_std']:.2f}"
                                                   f"  ({r['seconds']:.1f} s)", flush=True))
        out = write_result(
            f"nb201_{dataset}",
            f"NB201 {dataset}: test accuracy (%) of the best-validation architecture after {args.queries} queries, "
            f"{args.seeds} seeds per strategy (search on {dataset}_valid_12, report {dataset}_test_200)",
            command.strip(), {"blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), **doc})
        print(f"  -> {out}", flush=True)


if __name__ == "__main__":
    main()
