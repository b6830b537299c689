"""Tabular NAS-Bench-201 evaluation: a search on the NB201 cell space answered by table lookups.

The table (``nb201_table.csv.gz``, see ``shared/benchmarks/nasbench201/SOURCE.md``) is never part of
nasforge: users pass its path. Looking results up instead of training makes a 100-query search take
milliseconds, so strategies can be compared over hundreds of seeds on the same footing as published
NB201 results.

Units: accuracies are *fractions* in [0, 1] here, as everywhere else in nasforge (the table stores
percentages). ``score`` is the search signal, by default the 12-epoch validation accuracy that the
NB201/NATS protocols search on; the 200-epoch test accuracy goes to ``EvalResult.hidden`` so it can
be reported but never reaches a strategy.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nasforge.errors import ConfigError, DataError
from nasforge.types import Budget, Cost, EvalResult, Sample

DATASETS = ("cifar10", "cifar100", "imagenet16")
METRICS = ("valid_12", "test_12", "test_200")
_NUMERIC = [f"{d}_{m}" for d in DATASETS for m in METRICS] + [
    f"{k}_{d}_M" for d in DATASETS for k in ("params", "flops")
]
_FIX = "pass the path of nb201_table.csv.gz (see shared/benchmarks/nasbench201/SOURCE.md)"


class NB201Table:
    """The 15,625-row NB201 table in memory: one float64 array per numeric column, rows by ``arch_str``.

    Read with the standard library (csv + gzip) so no pandas is needed; loading takes about 0.2 s.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"NB201 table {self.path} not found: {_FIX}")
        try:
            with gzip.open(self.path, "rt", newline="") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                missing = [c for c in ("arch_str", "unique_str", *_NUMERIC) if c not in header]
                if missing:
                    raise DataError(f"NB201 table {self.path} lacks column(s) {', '.join(missing[:4])}: {_FIX}")
                arch: list[str] = []
                unique: list[str] = []
                cols: dict[str, list[float]] = {c: [] for c in _NUMERIC}
                for row in reader:
                    arch.append(row["arch_str"])
                    unique.append(row["unique_str"])
                    for c in _NUMERIC:
                        cols[c].append(float(row[c]))
        except DataError:
            raise
        except (OSError, EOFError, csv.Error, ValueError, TypeError, UnicodeDecodeError) as e:
            raise DataError(f"NB201 table {self.path} is unreadable ({type(e).__name__}: {e}); {_FIX}") from None
        if not arch:
            raise DataError(f"NB201 table {self.path} has no rows: {_FIX}")
        self.arch_strs: tuple[str, ...] = tuple(arch)
        self.unique_strs: tuple[str, ...] = tuple(unique)
        self.columns: dict[str, np.ndarray] = {c: np.asarray(v, dtype=np.float64) for c, v in cols.items()}
        self.row_of: dict[str, int] = {a: i for i, a in enumerate(arch)}
        if len(self.row_of) != len(arch):
            raise DataError(f"NB201 table {self.path} repeats architectures: {_FIX}")

    def __len__(self) -> int:
        return len(self.arch_strs)

    def row(self, arch_str: str) -> int:
        try:
            return self.row_of[arch_str]
        except KeyError:
            raise DataError(f"architecture {arch_str!r} is not in the NB201 table {self.path}; "
                            "the space and the table disagree: use the NB201 cell space") from None

    def value(self, arch_str: str, column: str) -> float:
        return float(self.columns[column][self.row(arch_str)])


@runtime_checkable
class ArchStrSpace(Protocol):
    """A space whose samples name NB201 cells (``CellSpace`` is one)."""

    def to_arch_str(self, s: Sample) -> str: ...


class TabularEvaluator:
    """Answers ``evaluate`` from the table: no training, one query per call.

    The loop's trial budget is the number of queries; the ``Budget`` itself is ignored. ``metric``
    (default ``valid_12``) becomes the score, ``report`` (default ``test_200``) goes to ``hidden``
    under its own name, both as fractions. The cost is the table's parameter and FLOP counts; note
    that NB201 counts FLOPs as multiply-adds (torch's counter, used for trained candidates, counts 2
    per multiply-add), so the numbers match the NB201 papers.
    """

    def __init__(self, table: NB201Table | str | os.PathLike[str], space: Any, dataset: str = "cifar10",
                 metric: str = "valid_12", report: str = "test_200") -> None:
        if dataset not in DATASETS:
            raise ConfigError(f"unknown NB201 dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
        for what, m in (("metric", metric), ("report", report)):
            if m not in METRICS:
                raise ConfigError(f"unknown NB201 {what} {m!r}: choose one of {', '.join(METRICS)}")
        if not isinstance(space, ArchStrSpace):
            raise ConfigError("the tabular NB201 evaluator needs the NB201 cell space (space kind 'nb201')")
        self.table = table if isinstance(table, NB201Table) else NB201Table(table)
        self.space = space
        self.dataset, self.metric, self.report = dataset, metric, report
        self._score = self.table.columns[f"{dataset}_{metric}"]
        self._report = self.table.columns[f"{dataset}_{report}"]
        self._params = self.table.columns[f"params_{dataset}_M"]
        self._flops = self.table.columns[f"flops_{dataset}_M"]
        self.calls = 0

    def lookup(self, s: Sample) -> Mapping[str, float]:
        """Score, reported value (fractions), params and FLOPs of one sample, without counting a query."""
        i = self.table.row(self.space.to_arch_str(s))
        return {"score": self._score[i] / 100, self.report: self._report[i] / 100,
                "params": self._params[i] * 1e6, "flops": self._flops[i] * 1e6}

    def evaluate(self, sample: Sample, budget: Budget, report: Any = None, checkpoint: Any = None) -> EvalResult:
        """One table lookup; a query has no epochs to report or checkpoint, so both are ignored."""
        self.calls += 1
        v = self.lookup(sample)
        return EvalResult(score=float(v["score"]), metrics={"accuracy": float(v["score"])},
                          cost=Cost(params=round(v["params"]), flops=round(v["flops"])),
                          hidden={self.report: float(v[self.report])})
