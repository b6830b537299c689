"""The one read model of a search: what ``nasforge.search`` and ``nasforge.load`` return, and what ``nasforge
status``, the report and the record read: the best trial, the Pareto front, every trial, a report.

Read with ``detail=False`` (the report does), a study's trials come without samples and curves, so a
100,000-trial study loads in seconds in a fraction of the memory; :meth:`Result.detailed` reads the whole
records of the trials a reader shows (a table's rows, the trials an analysis samples).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nasforge.config import Config
from nasforge.store import Experiment
from nasforge.study import best_trial
from nasforge.types import METRIC_WORDS, Budget, Trial

T = TypeVar("T")

if TYPE_CHECKING:
    import pandas as pd

    from nasforge.loop import SearchOutcome
    from nasforge.space.base import SearchSpace


@dataclass
class Result:
    """A finished (or stopped) search, read back from its database.

    - ``best``: the best trial (longest-trained first, then by score), or None;
    - ``pareto``: the trials on the Pareto front of ``search.objectives``; with accuracy alone, ``[best]``;
    - ``trials``: a pandas DataFrame, one row per trial (see :func:`nasforge.report.frame.trials_frame`);
    - ``trial_list``: the same trials as :class:`~nasforge.types.Trial` records;
    - ``report(path=None)``: writes the HTML report and returns its path.
    """

    db: Path
    experiment: Experiment
    config: Config
    trial_list: list[Trial]
    best: Trial | None = None
    stopped: str | None = None  # why the search ended; None for a Result loaded from a database
    rejected: int = 0
    resumed_pending: int = 0
    rejection_common: list[tuple[str, int]] = field(default_factory=list)  # the commonest reasons, with counts
    retrains: list[dict[str, Any]] = field(default_factory=list)  # final trainings stored with the experiment
    compressions: list[dict[str, Any]] = field(default_factory=list)  # `nasforge compress` records (int8, pruned)
    light: bool = False  # trial_list holds no samples or curves (see detailed)
    _space: Any = field(default=None, repr=False, compare=False)
    _details: dict[int, Trial] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_outcome(cls, outcome: SearchOutcome, cfg: Config) -> Result:
        return cls(db=Path(cfg.search.db), experiment=outcome.experiment, config=cfg,
                   trial_list=list(outcome.trials), best=outcome.best, stopped=outcome.stopped,
                   rejected=outcome.rejected, resumed_pending=outcome.resumed_pending)

    @classmethod
    def load(cls, db: str | Path, name: str | None = None, *, detail: bool = True) -> Result:
        """The stored experiment (the latest one unless named); the database is only read. ``detail=False``:
        trials without samples and curves (see the module's docstring)."""
        from nasforge.stored import stored

        store, exp, cfg = stored(db, name)
        with store:
            trials = store.trials(exp.id, detail=detail)
            rejected, common = store.rejection_summary(exp.id)
            retrains = store.results(exp.id, "retrain")
            compressions = store.results(exp.id, "compress")
        result = cls(db=Path(db), experiment=exp, config=cfg, trial_list=trials, rejected=rejected,
                     rejection_common=common, retrains=retrains, compressions=compressions,
                     light=not detail)
        if result.light and trials:  # the best one whole: the summary, the figure and the record show it
            found = best_trial(trials)
            result.best = result.detailed([found])[0] if found is not None else None
        else:
            result.best = best_trial(trials)
        return result

    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            from nasforge.space import make_space

            self._space = make_space(self.config.space)
        return self._space

    @property
    def regression(self) -> bool:
        """Whether the experiment is a regression: its score is -RMSE and its figures RMSE, MAE and R²."""
        if self.best is not None:
            return "rmse" in self.best.metrics
        return any("rmse" in (m.get("test") or {}) for r in self.retrains[-1:] for m in r.get("models") or [])

    @property
    def score_name(self) -> str:
        """What the score is, for an axis or a table: validation accuracy (or the metric the search ranks by), or
        for a regression -RMSE."""
        return "validation score (-RMSE)" if self.regression else f"validation {METRIC_WORDS[self.metric]}"

    @property
    def metric(self) -> str:
        """What a classification search ranks by (``search.metric``): accuracy, balanced_accuracy or f1."""
        return self.config.search.metric

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.config.search.objectives)

    @property
    def scored(self) -> list[Trial]:
        return [t for t in self.trial_list if t.ok]

    @property
    def ladder(self) -> tuple[Budget, ...]:
        """The scheduler's budgets, lowest first (one budget without a scheduler)."""
        try:
            return tuple(self.config.search.make_scheduler().ladder)
        except Exception:  # a config from an older nasforge: fall back to the budgets the trials had
            return tuple(sorted({t.budget for t in self.trial_list}, key=lambda b: b.epochs * b.fraction))

    @property
    def pareto(self) -> list[Trial]:
        from nasforge.pareto import pareto_front

        if len(self.objectives) > 1:
            return pareto_front(self.trial_list, self.objectives)
        return [self.best] if self.best is not None else []

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: number, state, score, budget, cost, timings, metrics, architecture and one column
        per sample dimension (missing where the dimension does not shape that trial's network)."""
        from nasforge.report.frame import trials_frame

        return trials_frame(self.detailed(self.trial_list), self.space)

    def detailed(self, trials: Iterable[Trial]) -> list[Trial]:
        """The whole records (sample, curve) of ``trials``, in the order given; read from the database when
        this Result was loaded light, and kept."""
        wanted = list(trials)
        if not self.light:
            return wanted
        missing = {t.number for t in wanted} - self._details.keys()
        if missing:
            from nasforge.stored import stored

            store, exp, _ = stored(self.db, self.experiment.name)
            with store:
                self._details.update((t.number, t) for t in store.trials_by_number(exp.id, missing))
        return [self._details.get(t.number, t) for t in wanted]

    def describe(self, t: Trial | None = None) -> str:
        """The architecture of a trial (the best by default) in one line; "?" where the space cannot read it."""
        t = t or self.best
        if t is None:
            return "-"
        if self.light and not t.sample:
            t = self.detailed([t])[0]
        try:
            return str(self.space.describe(t.sample))
        except (KeyError, ValueError, TypeError):
            return "?"

    def report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report (default ``<db stem>-report/index.html`` beside the database); returns its path."""
        from nasforge.report.html import write_report

        return write_report(self.db, name=self.experiment.name, out=path)


def scored_sample(trials: Sequence[T], n: int, seed: int = 0) -> list[T]:
    """At most ``n`` of ``trials`` (or of any sequence), a seeded uniform sample in their order (all of them when
    there are few): what a figure or an analysis of a very large study reads instead of every trial."""
    if len(trials) <= n:
        return list(trials)
    import numpy as np

    pick = np.sort(np.random.default_rng(seed).choice(len(trials), size=n, replace=False))
    return [trials[int(i)] for i in pick]
