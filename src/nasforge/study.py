"""``Study``: one search as ask and tell, the object every driver goes through.

``study.ask()`` hands out the next trial to run, stored PENDING with its budget: a waiting one (a
retry, or one interrupted by a crash), a scheduler's promotion, or a new valid, never-tried
proposal of the strategy. ``study.tell(trial, score=...)`` stores how it ended and teaches the
strategy. What runs the trial is the caller's: nasforge's own loop (:func:`nasforge.loop.run_search`
with its executors), ``nasforge bench``, the strategy test suite, or a user's own training code in
any framework, as with Optuna's study.

The study keeps indexes (keys tried, trials by number, waiting trials, the best) that each ask and
tell update, so neither scans the whole history. With a store, every state change reaches SQLite
before the call returns, so a study killed at any moment resumes where it stopped; without one
(``store=None``) it lives in memory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from nasforge.errors import ConfigError, NasforgeError, StoreError
from nasforge.schedule.schedulers import FIFO, Scheduler
from nasforge.space.base import SearchSpace
from nasforge.store import Experiment, Store, process_token
from nasforge.strategy.base import History, Strategy
from nasforge.types import Budget, Cost, EvalResult, Sample, Suggestion, Trial, TrialState

log = logging.getLogger("nasforge")
QUEUE = "_screened_queue"  # key of the screened-candidate queue inside the saved strategy state


class Screener(Protocol):
    """Zero-cost screening: of ``sample`` valid candidates, the ones worth training, best first."""

    sample: int

    def __call__(self, samples: Sequence[Sample]) -> list[Sample]: ...


def rank_key(t: Trial) -> tuple[float, float, int]:
    """Order of merit, best first when sorted: trained longest (a scheduler's top rung), then score, then oldest."""
    return (-t.budget.epochs * t.budget.fraction, -(t.score or 0.0), t.number)


def best_trial(trials: Sequence[Trial]) -> Trial | None:
    """The best scored trial among those trained the longest (a scheduler's top rung beats lower rungs)."""
    ok = [t for t in trials if t.ok]
    return min(ok, key=rank_key) if ok else None


def propose(
    strategy: Strategy,
    space: SearchSpace,
    history: Sequence[Trial],
    input_shape: tuple[int, ...],
    n_out: int,
    rejected: dict[str, str],
    *,
    on_reject: Callable[[str, str], None] | None = None,
    max_rejections: int = 2000,
    max_duplicates: int = 50,
    extra_check: Callable[[Sample], str | None] | None = None,
    taken: set[str] | None = None,
    seen: set[str] | None = None,
) -> tuple[Suggestion, str] | None:
    """One new, valid, never-tried suggestion and its key; None when the space looks exhausted.

    Invalid proposals are checked once (``rejected`` caches key -> reason, ``on_reject`` hears of new
    ones) and never count as trials; many invalid proposals in a row mean the space is unusable.
    ``extra_check`` runs after the space's own (e.g. a measured-latency limit); ``taken`` holds keys
    already proposed but not yet in the history; ``seen``, the keys of ``history`` when the caller keeps
    them (else they are collected here, a pass over the history).
    """
    keys = seen if seen is not None else {t.key for t in history}
    dups = bad = 0
    while True:
        (sug,) = strategy.ask(history, 1)
        key = space.key(sug.sample)
        if key in keys or (taken is not None and key in taken):
            dups += 1
            if dups >= max_duplicates:
                return None
            continue
        reason = rejected.get(key) or space.check(sug.sample, input_shape, n_out)
        if reason is None and extra_check is not None:
            reason = extra_check(sug.sample)
        if reason is None:
            return sug, key
        if key not in rejected:
            rejected[key] = reason
            if on_reject is not None:
                on_reject(key, reason)
        bad += 1
        if bad >= max_rejections:
            raise NasforgeError(f"{bad} candidates in a row were invalid (last: {reason}); "
                                "relax the space or the parameter/FLOP limits")


class Study:
    """One search: ``ask`` the next trial, run it however you like, ``tell`` how it ended.

    ``budget`` is a full trial's budget; a ``scheduler`` (default: every trial gets ``budget``) hands
    new trials less and promotes the best. With a ``store`` and ``experiment`` every change is stored
    at once and the study resumes from them (the caller holds the experiment's lease, as
    :func:`open_study` and :func:`nasforge.loop.run_search` do); trials left RUNNING by a killed
    process are waiting again. ``screener``: zero-cost screening of many valid candidates at once,
    its queue saved with the strategy state.
    """

    def __init__(self, space: SearchSpace, strategy: Strategy, *, budget: Budget | None = None,
                 scheduler: Scheduler | None = None, store: Store | None = None, experiment: Experiment | None = None,
                 input_shape: tuple[int, ...] = (), n_out: int = 10, max_rejections: int = 2000,
                 max_duplicates: int = 50, extra_check: Callable[[Sample], str | None] | None = None,
                 screener: Screener | None = None) -> None:
        if (store is None) != (experiment is None):
            raise TypeError("Study takes a store and its experiment together, or neither")
        self.space, self.strategy = space, strategy
        self.scheduler = scheduler or FIFO(budget or Budget())
        self.store, self.experiment = store, experiment
        self.input_shape, self.n_out = tuple(input_shape), n_out
        self.max_rejections, self.max_duplicates = max_rejections, max_duplicates
        self.extra_check, self.screener = extra_check, screener
        self.stopped: str | None = None  # why the last ask returned None: "time", "exhausted" or "trials"
        self.resumed = 0
        self._trials = History()
        self.rejected: dict[str, str] = {}
        self._queue: list[dict[str, Any]] = []
        self._mark = time.time()
        if store is not None and experiment is not None:
            self.resumed = store.reset_interrupted(experiment.id)
            self._trials = History(store.trials(experiment.id))
            state = dict(experiment.strategy_state or {})
            self._queue = list(state.pop(QUEUE, []))
            if state and state.get("name") == strategy.name:
                strategy.load_state_dict(state)
            self.rejected = dict(store.rejections(experiment.id))
        self._waiting = {t.number for t in self._trials if t.state is TrialState.PENDING}
        self._finished = sum(t.state.finished for t in self._trials)
        self._best = best_trial(self._trials)

    # ------------------------------------------------------------------ reading
    @property
    def trials(self) -> Sequence[Trial]:
        """Every trial so far, in number order (pending and running ones included); do not change it."""
        return self._trials

    @property
    def finished(self) -> int:
        """How many trials are finished (complete, pruned or failed)."""
        return self._finished

    @property
    def best(self) -> Trial | None:
        """The best scored trial among those trained the longest (:func:`best_trial`)."""
        return self._best

    def pareto(self, objectives: Sequence[str] = ("accuracy", "params")) -> list[Trial]:
        """The non-dominated complete trials for ``objectives`` (see :mod:`nasforge.pareto`)."""
        from nasforge.pareto import check_objectives, pareto_front

        return pareto_front(self._trials, check_objectives(objectives))

    def trial(self, number: int) -> Trial:
        return self._trials[self._trials.pos[number]]

    def build(self, trial: Trial) -> Any:
        """The PyTorch network of ``trial``'s sample (the space's builder), for a user's own training code."""
        return self.space.build(trial.sample, self.input_shape, self.n_out)

    # ------------------------------------------------------------------ ask
    def ask(self, *, fits: Callable[[Budget], bool] | None = None, new: bool = True) -> Trial | None:
        """The next trial to run, stored PENDING: a waiting one, a promotion, or a new proposal.

        ``fits(budget)`` says whether a trial of that budget may still start (a deadline); a promotion
        that does not fit gives way to a cheaper new trial. ``new=False`` asks for waiting trials and
        promotions only. None, with :attr:`stopped` saying why, when nothing may start now: ``"time"``
        (nothing fits), ``"exhausted"`` (the strategy proposes only tried networks) or ``"trials"``
        (``new=False`` and nothing waits).
        """
        return self._ask(fits, new, start=False)

    def _ask(self, fits: Callable[[Budget], bool] | None, new: bool, *, start: bool) -> Trial | None:
        """:meth:`ask`; ``start``: hand the trial out RUNNING, a new one stored so in the one commit that adds it."""
        self.stopped = None
        pending = self.trial(min(self._waiting)) if self._waiting else None
        if pending is None:
            promo = self.scheduler.promotion(self._trials)
            if promo is not None and (fits is None or fits(promo.budget)):
                pending = promo.trial.with_(state=TrialState.PENDING, budget=promo.budget)
                if not start:
                    self._write(pending)
                log.debug("promoting trial %d to %s", pending.number, promo.budget)
        if pending is not None:
            if fits is not None and not fits(pending.budget):
                self.stopped = "time"
                return None
            return self.start(pending) if start else pending
        if not new:
            self.stopped = "trials"
            return None
        if self.screener is not None and not self._queue:
            self._queue = self._screened()
        if self.screener is not None and self._queue:
            sample = self._queue.pop(0)
            sug, key = Suggestion(sample), self.space.key(sample)
        else:
            found = self._one()
            if found is None:
                self.stopped = "exhausted"
                return None
            sug, key = found
        budget = sug.budget or self.scheduler.new_budget(self._trials)
        if fits is not None and not fits(budget):
            self.stopped = "time"
            return None
        number = self._trials[-1].number + 1 if self._trials else 0
        now = time.time()
        trial = Trial(number=number, key=key, sample=dict(sug.sample), budget=budget,
                      state=TrialState.RUNNING if start else TrialState.PENDING, started=now if start else None)
        if self.store is not None and self.experiment is not None:
            saved = self.strategy.state_dict()
            self.store.add_trial(self.experiment.id, trial,
                                 {**saved, QUEUE: self._queue} if self.screener is not None else saved,
                                 heartbeat=now if start else None)
        self._trials.add(trial)
        if not start:
            self._waiting.add(number)
        return trial

    def _one(self, taken: set[str] | None = None) -> tuple[Suggestion, str] | None:
        return propose(self.strategy, self.space, self._trials, self.input_shape, self.n_out, self.rejected,
                       on_reject=self._reject, max_rejections=self.max_rejections,
                       max_duplicates=self.max_duplicates, extra_check=self.extra_check, taken=taken,
                       seen=self._trials.keys)

    def _reject(self, key: str, reason: str) -> None:
        if self.store is not None and self.experiment is not None:
            self.store.add_rejection(self.experiment.id, key, reason)
        log.debug("rejected %s: %s", key, reason)

    def _screened(self) -> list[dict[str, Any]]:
        """Up to ``screener.sample`` distinct valid candidates, the screener's choice best first; suggestions
        marked ``screen=False`` (networks the user queued) are kept unscreened, ahead of the rest."""
        assert self.screener is not None
        pool: list[Sample] = []
        exempt: list[Sample] = []
        taken: set[str] = set()
        for _ in range(self.screener.sample):
            found = self._one(taken)
            if found is None:
                break
            sug, key = found
            (pool if sug.screen else exempt).append(sug.sample)
            taken.add(key)
        return [dict(s) for s in exempt] + ([dict(s) for s in self.screener(pool)] if pool else [])

    # ------------------------------------------------------------------ run and tell
    def start(self, trial: Trial) -> Trial:
        """Mark ``trial`` RUNNING (stored with a first heartbeat); returns the running record."""
        running = trial.with_(state=TrialState.RUNNING, started=time.time())
        if self.store is not None and self.experiment is not None:
            self.store.start_trial(self.experiment.id, running)
        self._put(running)
        return running

    def requeue(self, before: Trial) -> None:
        """A trial that did not end (its worker was lost, or the driver stops) waits again as ``before`` was."""
        self._write(before.with_(state=TrialState.PENDING, started=None))

    def tell(self, trial: Trial | int, score: float | None = None, *, state: TrialState | str | None = None,
             metrics: Mapping[str, float] | None = None, cost: Cost | None = None, reason: str | None = None,
             curve: Sequence[Mapping[str, float]] | None = None, hidden: Mapping[str, float] | None = None,
             result: EvalResult | None = None) -> Trial:
        """Store how ``trial`` (or its number) ended and teach the strategy; returns the finished record.

        ``state`` defaults to COMPLETE with a ``score`` (or a ``result``), else FAILED. A COMPLETE trial
        adds its score to its rungs; train and evaluation seconds add up over promotions.
        """
        number = trial if isinstance(trial, int) else trial.number
        if number not in self._trials.pos:
            raise NasforgeError(f"trial {number} was never asked of this study")
        current = self.trial(number)
        if current.state.finished:
            raise NasforgeError(f"trial {number} is already {current.state.value}; ask for a new one")
        if result is not None:
            score = result.score if score is None else score
        st = TrialState(state) if state is not None else (
            TrialState.COMPLETE if score is not None else TrialState.FAILED)
        now = time.time()
        base = current if current.started is not None else current.with_(started=now)
        if st is TrialState.COMPLETE:
            if score is None:
                raise NasforgeError(f"trial {number}: a COMPLETE trial needs a score")
            r = result
            done = base.with_(state=st, score=float(score), reason=None, finished=now,
                              metrics=dict(metrics if metrics is not None else r.metrics if r else {}),
                              curve=tuple(curve if curve is not None else r.curve if r else ()),
                              cost=cost if cost is not None else r.cost if r else None,
                              hidden=dict(hidden if hidden is not None else r.hidden if r else {}),
                              train_seconds=current.train_seconds + (r.train_seconds if r else 0.0),
                              eval_seconds=current.eval_seconds + (r.eval_seconds if r else 0.0),
                              rungs=(*current.rungs, float(score)))
        elif st is TrialState.PRUNED:
            done = base.with_(state=st, score=None, reason=reason, finished=now,
                              curve=tuple(curve) if curve is not None else current.curve)
        elif st is TrialState.FAILED:
            done = base.with_(state=st, score=None, reason=reason or "failed", finished=now)
        else:
            raise NasforgeError(f"trial {number}: tell takes COMPLETE, PRUNED or FAILED, not {st.value}")
        self._write(done, elapsed=now - self._mark)  # one commit for the record and the time
        self._mark = now
        self.strategy.tell(done)
        return done

    def add_elapsed(self) -> None:
        """Store the time since the last tell (a driver that stops calls it once more)."""
        now = time.time()
        if self.store is not None and self.experiment is not None:
            self.store.add_elapsed(self.experiment.id, now - self._mark)
        self._mark = now

    # ------------------------------------------------------------------ indexes
    def _write(self, trial: Trial, elapsed: float = 0.0) -> None:
        if self.store is not None and self.experiment is not None:
            self.store.update_trial(self.experiment.id, trial, elapsed=elapsed)
        self._put(trial)

    def _put(self, trial: Trial) -> None:
        old = self._trials.put(trial)
        self._finished += int(trial.state.finished) - int(old.state.finished)
        if trial.state is TrialState.PENDING:
            self._waiting.add(trial.number)
        else:
            self._waiting.discard(trial.number)
        best = self._best
        if best is not None and best.number == trial.number:
            # the best itself changed: still the best if it got no worse, else look again (rare)
            self._best = trial if trial.ok and rank_key(trial) <= rank_key(best) else best_trial(self._trials)
        elif trial.ok and (best is None or rank_key(trial) < rank_key(best)):
            self._best = trial


# ------------------------------------------------------------------------------------------ public opening

class OpenStudy(Study):
    """The :class:`Study` :func:`open_study` returns: on a SQLite file it holds the experiment's lease until
    :meth:`close` (or the ``with`` block's end), so no second process drives it at the same time.

    Its :meth:`ask` hands the trial out (RUNNING), as Optuna's does: asking again before telling gives
    another trial, so several workers can each ask for one; trials handed out when the process died
    are handed out again when the study is reopened.
    """

    _lease_cm: Any = None

    def ask(self, *, fits: Callable[[Budget], bool] | None = None, new: bool = True) -> Trial | None:
        return self._ask(fits, new, start=True)

    def close(self) -> None:
        if self._lease_cm is not None:
            self.add_elapsed()
            cm, self._lease_cm = self._lease_cm, None
            cm.__exit__(None, None, None)
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> OpenStudy:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


_OPENED = itertools.count()


def _strategy_spec(strategy: str | Mapping[str, Any] | Strategy) -> tuple[str, dict[str, Any]] | None:
    if isinstance(strategy, Strategy):
        return None
    if isinstance(strategy, str):
        return strategy, {}
    if isinstance(strategy, Mapping) and isinstance(strategy.get("name"), str):
        return str(strategy["name"]), dict(strategy.get("options") or {})
    raise ConfigError(f"strategy must be a registry name, {{'name': ..., 'options': {{...}}}} or a Strategy, "
                      f"got {strategy!r}")


def open_study(db: str | Path | None = None, *, name: str = "study", space: SearchSpace | Mapping[str, Any],
               strategy: str | Mapping[str, Any] | Strategy = "random", seed: int = 0,
               input_shape: Sequence[int] = (), n_out: int = 10, budget: Budget | None = None,
               scheduler: str | Mapping[str, Any] | Scheduler | None = None) -> OpenStudy:
    """Create, or resume, the study ``name`` in the SQLite file ``db`` (in memory when ``db`` is None).

    ``space``: a search space object or its config mapping (``{"kind": "chain", ...}``, as in a YAML
    config); ``strategy``: a registry name, a name with options, or a Strategy object; ``scheduler``:
    a registry name (``asha``, ...), a mapping with ``name`` and options, or a Scheduler, over the full
    ``budget`` (default one epoch on all the data). Reopening an existing study resumes it: the space
    and strategy given must be those it was made with (compared by their config; objects by class).
    """
    from nasforge.paths import check_name
    from nasforge.schedule.schedulers import make_scheduler
    from nasforge.space import make_space
    from nasforge.strategy import make_strategy

    check_name(name)
    shape = tuple(int(d) for d in input_shape)
    sp = space if isinstance(space, SearchSpace) else make_space(dict(space), shape or None)
    spec = _strategy_spec(strategy)
    strat = strategy if isinstance(strategy, Strategy) else make_strategy(spec[0], sp, seed=seed, **spec[1])  # type: ignore[index]
    full = budget or Budget()
    if scheduler is None or isinstance(scheduler, Scheduler):
        sched = scheduler or FIFO(full)
    else:
        s_name, s_opts = (scheduler, {}) if isinstance(scheduler, str) else (
            str(scheduler.get("name")), {k: v for k, v in scheduler.items() if k != "name"})
        sched = make_scheduler(s_name, full, **s_opts)
    described = {"space": dict(space) if isinstance(space, Mapping) else type(space).__name__,
                 "strategy": {"name": spec[0], "options": spec[1]} if spec else type(strategy).__name__,
                 "seed": seed, "input_shape": list(shape), "n_out": n_out, "budget": full.to_json()}
    fingerprint = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if db is None:
        return OpenStudy(sp, strat, scheduler=sched, input_shape=shape, n_out=n_out)
    store = Store(db)
    try:
        exp = store.experiment(name)
        if exp is None:
            # stored as a config (data "user": the caller's own code evaluates), so status and report read it
            strat_cfg = described["strategy"] if spec else {"name": strat.name}
            config = {"name": name, "seed": seed, "data": {"source": "user"},
                      "space": dict(space) if isinstance(space, Mapping) else {"kind": sp.kind},
                      "strategy": strat_cfg, "search": {"budget": full.to_json()}}
            exp = store.create_experiment(name, config, fingerprint)
        elif exp.fingerprint != fingerprint:
            raise StoreError(f"study {name!r} in {db} was made with another space, strategy, seed or budget; "
                             "open it with the same ones, or give another name")
        # a token of its own: a second open of the same study, even in this process, is refused while this holds it
        cm = store.lease(exp.id, token=f"{process_token()}:study{next(_OPENED)}", then="open the study again")
        cm.__enter__()
    except BaseException:
        store.close()
        raise
    try:
        study = OpenStudy(sp, strat, scheduler=sched, store=store, experiment=exp, input_shape=shape, n_out=n_out)
    except BaseException:
        cm.__exit__(None, None, None)
        store.close()
        raise
    study._lease_cm = cm
    return study


__all__ = ["OpenStudy", "Screener", "Study", "best_trial", "open_study", "propose", "rank_key"]
