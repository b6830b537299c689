"""Schedulers: how much budget each trial gets, and which trials are promoted to more.

The strategy decides *what* to try; the scheduler decides *how much* training it gets. Budgets lie
on a ladder of rungs (``min * eta**k`` epochs or data fractions, up to the search's full budget).
A trial starts on its bracket's lowest rung; the best share ``1/eta`` of a rung is promoted to the
next one, continuing from its checkpoint where the unit is epochs.

``lr_cycle`` says what a continuation does with the learning-rate schedule: ``rung`` (the default)
gives every rung its own cycle (a warm restart), so each rung's score comes from an annealed model;
``full`` lays one cycle over the full budget and makes the rungs checkpoints along it, so a trial
promoted to the top is exactly the model a fixed full-budget run trains (same steps, same random
draws), while its lower-rung scores are read mid-cycle.

Like the strategies, schedulers are derived from the stored history alone (each trial records the
score it reached on every rung in ``Trial.rungs``), so a resumed search promotes exactly what an
uninterrupted one would, and they hold no state of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nasforge.errors import ConfigError
from nasforge.fmt import fmt_budget
from nasforge.types import Budget, Trial, TrialState


@dataclass(frozen=True)
class Promotion:
    """Continue ``trial`` (finished at its current rung) up to ``budget``."""

    trial: Trial
    budget: Budget


def make_ladder(full: Budget, eta: int, *, min_epochs: float | None = None,
                min_fraction: float | None = None) -> tuple[Budget, ...]:
    """Rungs ``min, min*eta, ...`` in one unit, the last one the full budget."""
    if (min_epochs is None) == (min_fraction is None):
        raise ConfigError("a scheduler needs exactly one of min_epochs or min_fraction (the lowest rung's budget)")
    top = full.epochs if min_epochs is not None else full.fraction
    low = float(min_epochs if min_epochs is not None else min_fraction)  # type: ignore[arg-type]
    if not 0 < low < top:
        unit = "epochs" if min_epochs is not None else "fraction"
        raise ConfigError(f"scheduler min_{unit} must be above 0 and below the full budget's {top} {unit}; "
                          f"got {low}: lower it or raise search.budget.{unit}")
    values: list[float] = []
    v = low
    while v < top * (1 - 1e-9):
        values.append(v)
        v *= eta
    values.append(top)
    if min_epochs is not None:
        return tuple(Budget(epochs=e, fraction=full.fraction) for e in values)
    return tuple(Budget(epochs=full.epochs, fraction=f) for f in values)


def resting(t: Trial) -> bool:
    """Finished its current rung and waiting (not running, not failed): may be promoted."""
    return t.state is TrialState.COMPLETE and bool(t.rungs)


class Scheduler:
    """Decides each trial's budget and what to promote; the base class gives every trial the full budget."""

    name: ClassVar[str] = "fifo"

    def __init__(self, full: Budget) -> None:
        self.full = full
        self.ladder: tuple[Budget, ...] = (full,)
        self.objectives: tuple[str, ...] = ("accuracy",)  # set by a multi-objective search
        self.lr_cycle = "rung"

    @property
    def continues(self) -> bool:
        """Whether promotions resume from a checkpoint (epoch rungs) rather than retrain (fraction rungs)."""
        return len(self.ladder) > 1 and self.ladder[0].fraction == self.ladder[-1].fraction

    @property
    def schedule_epochs(self) -> float | None:
        """The length of every trial's learning-rate schedule when it spans the full budget, else None."""
        return self.full.epochs if self.lr_cycle == "full" and self.continues else None

    def new_budget(self, history: Sequence[Trial]) -> Budget:
        """The budget of the next new trial."""
        return self.ladder[0]

    def promotion(self, history: Sequence[Trial]) -> Promotion | None:
        """A trial to continue before any new one starts, or None."""
        return None

    def level(self, t: Trial) -> int:
        """A trial's rung on the absolute ladder (its budget's position), for comparing across brackets."""
        return self.ladder.index(t.budget) if t.budget in self.ladder else len(self.ladder) - 1

    def describe(self) -> str:
        cycle = " (one learning-rate cycle over the full budget)" if self.schedule_epochs is not None else ""
        return f"{self.name}: " + " -> ".join(fmt_budget(b) for b in self.ladder) + cycle


class FIFO(Scheduler):
    """Every trial gets the full budget; nothing is promoted (the default)."""

    name = "fifo"


class _Rungs(Scheduler):
    def __init__(self, full: Budget, *, eta: int = 3, min_epochs: float | None = None,
                 min_fraction: float | None = None, lr_cycle: str = "rung") -> None:
        super().__init__(full)
        if not isinstance(eta, int) or eta < 2:
            raise ConfigError(f"scheduler eta must be an integer of at least 2, got {eta!r}")
        self.eta = eta
        self.ladder = make_ladder(full, eta, min_epochs=min_epochs, min_fraction=min_fraction)
        if lr_cycle not in ("rung", "full"):
            raise ConfigError(f"scheduler lr_cycle must be rung or full, got {lr_cycle!r}")
        if lr_cycle == "full" and (min_epochs is None or any(b.epochs != int(b.epochs) for b in self.ladder)):
            raise ConfigError("scheduler lr_cycle: full needs rungs of whole epochs (min_epochs, and a whole "
                              f"number of epochs on every rung; the ladder is {self.describe()}): "
                              "change min_epochs or eta, or use lr_cycle: rung")
        self.lr_cycle = lr_cycle

    def reached(self, t: Trial) -> int:
        """The highest rung a trial has finished, on the absolute ladder; -1 before it finished any.

        Absolute, not counted from the trial's first rung: a warm start given the full budget
        (``search.initial_budget: full``) has finished the top rung with one score, and must neither be
        promoted "up" to the second rung nor be ranked among the lowest rung's scores.
        """
        if not t.rungs:
            return -1
        # a resting trial's budget is the rung it finished; a promoted one (running, or failed or pruned
        # there) already carries the next rung's budget
        return self.level(t) - (0 if t.state is TrialState.COMPLETE else 1)

    def has(self, t: Trial, k: int) -> bool:
        """Whether the trial finished rung ``k`` (it started on it or below and got that far)."""
        top = self.reached(t)
        return 0 <= top - k < len(t.rungs)

    def score_at(self, t: Trial, k: int) -> float:
        """The trial's score on absolute rung ``k`` (it must have it: ``has(t, k)``)."""
        return t.rungs[len(t.rungs) - 1 - (self.reached(t) - k)]

    def order(self, trials: Sequence[Trial], k: int) -> list[Trial]:
        """Trials that finished rung ``k``, best first: by score, or with several objectives by Pareto
        rank and crowding on (score at rung ``k``, cost), as in multi-objective ASHA (Schmucker et al. 2021).
        """
        if len(self.objectives) == 1:
            return sorted(trials, key=lambda t: (-self.score_at(t, k), t.number))
        from nasforge.pareto import point, rank

        ordered = sorted(trials, key=lambda t: t.number)
        return [ordered[i] for i in rank([point(t, self.objectives, self.score_at(t, k)) for t in ordered])]


class ASHA(_Rungs):
    """Asynchronous successive halving (Li et al. 2020): promote whenever a trial is in its rung's top 1/eta.

    Never waits for a rung to fill, so no worker idles; the price is a few promotions that
    synchronous halving would not have made.
    """

    name = "asha"

    def promotion(self, history: Sequence[Trial]) -> Promotion | None:
        for k in reversed(range(len(self.ladder) - 1)):  # the highest rung first, as in the paper
            done = [t for t in history if self.has(t, k)]
            n_top = len(done) // self.eta
            if n_top == 0:
                continue
            top = self.order(done, k)[:n_top]
            for t in top:
                if self.reached(t) == k and resting(t):
                    return Promotion(t, self.ladder[k + 1])
        return None


class SuccessiveHalving(_Rungs):
    """Synchronous successive halving (Jamieson & Talwalkar 2016) in brackets of ``bracket_size`` trials.

    A bracket's rung must be complete before its best 1/eta move up; then the next bracket starts.
    """

    name = "successive_halving"

    def __init__(self, full: Budget, *, eta: int = 3, min_epochs: float | None = None,
                 min_fraction: float | None = None, bracket_size: int | None = None, lr_cycle: str = "rung") -> None:
        super().__init__(full, eta=eta, min_epochs=min_epochs, min_fraction=min_fraction, lr_cycle=lr_cycle)
        # eta**(rungs - 1) brings exactly one trial to the top; at least eta**2 so two rungs still compare 9
        self.bracket_size = bracket_size or eta ** max(len(self.ladder) - 1, 2)
        if self.bracket_size < eta:
            raise ConfigError(f"successive_halving bracket_size must be at least eta ({eta}), got {bracket_size}")

    def brackets(self) -> list[tuple[int, int]]:
        """(starting rung, size) of each bracket in one round; one bracket for plain halving."""
        return [(0, self.bracket_size)]

    def _bracket_of(self, number: int) -> tuple[int, int, int]:
        """(bracket index, starting rung, size) of the trial with this creation number."""
        plan = self.brackets()
        per_round = sum(n for _, n in plan)
        rnd, pos = divmod(number, per_round)
        for i, (start, n) in enumerate(plan):
            if pos < n:
                return rnd * len(plan) + i, start, n
            pos -= n
        raise AssertionError("unreachable")

    def new_budget(self, history: Sequence[Trial]) -> Budget:
        number = max((t.number for t in history), default=-1) + 1
        return self.ladder[self._bracket_of(number)[1]]

    def promotion(self, history: Sequence[Trial]) -> Promotion | None:
        by_bracket: dict[int, list[Trial]] = {}
        for t in history:
            by_bracket.setdefault(self._bracket_of(t.number)[0], []).append(t)
        for b in sorted(by_bracket):
            members = by_bracket[b]
            _, start, size = self._bracket_of(members[0].number)
            if len(members) < size or not all(t.state.finished for t in members):
                continue  # the bracket's first rung is still filling or running
            n_k = len(members)
            for k in range(start, len(self.ladder) - 1):  # rungs on the absolute ladder
                n_next = max(1, n_k // self.eta)
                ranked = self.order([t for t in members if self.has(t, k)], k)
                chosen = ranked[:n_next]
                waiting = [t for t in chosen if self.reached(t) == k and resting(t)]
                if waiting:
                    return Promotion(waiting[0], self.ladder[k + 1])
                if any(self.reached(t) == k for t in chosen):
                    break  # a chosen one is running or failed at this rung; nothing above can move yet
                n_k = n_next
        return None


class Hyperband(SuccessiveHalving):
    """Hyperband (Li et al. 2018): successive-halving brackets that start on every rung in turn.

    Bracket ``s`` starts ``ceil((s_max + 1) / (s + 1) * eta**s)`` trials ``s`` rungs below the top, so
    aggressive early stopping and few full-budget trials are both tried, hedging against a low
    rung that ranks badly.
    """

    name = "hyperband"

    def brackets(self) -> list[tuple[int, int]]:
        s_max = len(self.ladder) - 1
        return [(s_max - s, math.ceil((s_max + 1) / (s + 1) * self.eta ** s)) for s in range(s_max, -1, -1)]


SCHEDULERS: dict[str, type[Scheduler]] = {
    "fifo": FIFO,
    "asha": ASHA,
    "successive_halving": SuccessiveHalving,
    "hyperband": Hyperband,
}


def make_scheduler(name: str, full: Budget, **options: Any) -> Scheduler:
    """A scheduler by registry name over the search's full budget; bad names or options: one-line ConfigError."""
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")
    try:
        return SCHEDULERS[name](full, **options)
    except TypeError as e:
        raise ConfigError(f"scheduler {name!r} does not take those options ({e}); "
                          "use eta, min_epochs or min_fraction, lr_cycle (and bracket_size for successive_halving)"
                          ) from None
