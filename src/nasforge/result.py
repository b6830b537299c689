"""What ``nasforge.search`` gives back: the best trial, the Pareto front, every trial as a DataFrame, a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasforge.config import Config
from nasforge.loop import SearchOutcome, best_trial
from nasforge.store import Experiment
from nasforge.types import Trial

if TYPE_CHECKING:
    import pandas as pd

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
    _space: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_outcome(cls, outcome: SearchOutcome, cfg: Config) -> Result:
        return cls(db=Path(cfg.search.db), experiment=outcome.experiment, config=cfg,
                   trial_list=list(outcome.trials), best=outcome.best, stopped=outcome.stopped,
                   rejected=outcome.rejected, resumed_pending=outcome.resumed_pending)

    @classmethod
    def load(cls, db: str | Path, name: str | None = None) -> Result:
        """The stored experiment (the latest one unless named) as a Result; the database is only read."""
        from nasforge.api import stored

        store, exp, cfg = stored(db, name)
        with store:
            trials = store.trials(exp.id)
            rejected, _ = store.rejection_summary(exp.id)
        return cls(db=Path(db), experiment=exp, config=cfg, trial_list=trials, best=best_trial(trials),
                   rejected=rejected)

    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            from nasforge.space import make_space

            self._space = make_space(self.config.space)
        return self._space

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.config.search.objectives)

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

        return trials_frame(self.trial_list, self.space)

    def describe(self, t: Trial | None = None) -> str:
        """The architecture of a trial (the best by default) in one line."""
        t = t or self.best
        return "-" if t is None else str(self.space.describe(t.sample))

    def report(self, path: str | Path | None = None) -> Path:
        """Write the HTML report (default ``<db stem>-report/index.html`` beside the database); returns its path."""
        from nasforge.report.html import write_report

        return write_report(self.db, name=self.experiment.name, out=path)
