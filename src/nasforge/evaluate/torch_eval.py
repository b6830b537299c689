"""Budgeted training of one candidate on the search splits (train / validation, never test)."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge import atomic
from nasforge.data.base import Dataset, shuffled_split, stratified_split
from nasforge.errors import ConfigError
from nasforge.evaluate.cost import measure_cost
from nasforge.evaluate.device import place, resolve_device, resolve_precision
from nasforge.evaluate.recipe import check_interim, trial_seed
from nasforge.evaluate.trainer import InterimVal, Recipe, TrainingFailed, make_optimizer, train
from nasforge.space.base import SearchSpace
from nasforge.types import Budget, Cost, EvalResult, Sample, check_metric

log = logging.getLogger("nasforge")
Reporter = Callable[[int, Mapping[str, float]], None]
PROBE_SECONDS = 1.0  # how long equal_time times a candidate for
MAX_FACTOR = 4.0  # equal_time gives a candidate at most 4x (at least 1/4x) the budget's epochs


class TorchEvaluator:
    """Trains a candidate for its budget and reports validation metrics per epoch and its cost.

    A budget fraction below 1 trains on a stratified subset of the training split that is fixed for
    the whole experiment, so every candidate is compared on the same examples.

    On regression data (:attr:`Dataset.regression`) the subsets and folds are seeded shuffles instead (no
    classes to stratify by), the metrics are RMSE, MAE and R² and the score is -RMSE (higher is better).

    ``interim_validation`` says what the epochs before a budget's last are scored on: ``"full"``
    (the whole validation split), ``"none"``, or a number of examples (a fixed stratified subset of
    validation). The score is always the last epoch's, on the whole split. On short low-rung trials
    full validation after every epoch took 15-25% of an ASHA search's time.

    ``equal_time`` (the reference network, as a picklable zero-argument builder, or its seconds per
    training step) turns budgets into time: the reference is timed in this process, under the
    conditions the candidates meet (threads, other workers), and each candidate is timed once
    (about a second of training steps) and trains
    ``budget.epochs`` x (reference step time / its step time) epochs, within 1/4x..4x, so candidates
    are ranked by what they reach in the time the reference would take, as the final training (a
    fixed time) will treat them. The factor is kept for the trial's promotions (in its checkpoint).
    Timings vary a little from run to run, so a search with it repeats only approximately.

    The recipe's ``device`` is resolved where the evaluator is built (in a pool worker, after its
    ``CUDA_VISIBLE_DEVICES`` is set): the search splits move there once, when they fit, not once a trial.
    """

    def __init__(self, data: Dataset, space: SearchSpace, *, recipe: Recipe | None = None, seed: int = 0,
                 measure_latency: bool = True, schedule_epochs: float | None = None,
                 interim_validation: int | str = "full", folds: int = 1,
                 equal_time: float | Callable[[], torch.nn.Module] | None = None,
                 int8_latency: bool = False, metric: str = "accuracy") -> None:
        if data.has_test:
            data = data.search_view()  # the search never holds the test split
        self.data, self.space = data, space
        self.recipe = recipe or Recipe()
        self.device = resolve_device(self.recipe.device)
        resolve_precision(self.recipe.precision, self.device)  # a precision the device lacks fails here, not per trial
        self.seed = seed
        self.measure_latency = measure_latency
        self.int8_latency = int8_latency  # the latency_int8 objective: time each candidate's int8 version too
        self.schedule_epochs = schedule_epochs  # one schedule this long, budgets stop along it (lr_cycle: full)
        self._subsets: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self.interim: InterimVal = interim_split(data, interim_validation, seed)
        self._val = place((data.x_val, data.y_val), self.device)  # on the device once (the same tensors on the CPU)
        if isinstance(self.interim, tuple):
            self.interim = place(self.interim, self.device)
        self._placed: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
            raise ValueError(f"folds must be a whole number of at least 1, got {folds!r}")
        self.folds = folds
        self._fold_evaluators: list[TorchEvaluator] | None = None
        if isinstance(equal_time, (int, float)) and not (equal_time > 0 and math.isfinite(equal_time)):
            raise ValueError(f"equal_time must be a positive number of seconds per step, got {equal_time!r}")
        self.equal_time = equal_time
        self.metric = metric_for(data, metric)
        self._factors: dict[str, float] = {}  # architecture key -> epochs factor, for promotions in this process

    def time_factor(self, sample: Sample, key: str, model: torch.nn.Module | None = None) -> float:
        """Epochs a candidate gets per budget epoch under ``equal_time`` (1.0 without it): measured once per key."""
        if self.equal_time is None:
            return 1.0
        if key not in self._factors:
            from nasforge.evaluate.timing import time_steps

            if not isinstance(self.equal_time, (int, float)):  # the reference, timed here once, as candidates are
                ref = self.equal_time()
                self.equal_time = time_steps(ref, self.data, self.recipe, window=PROBE_SECONDS,
                                             parts=1).seconds_per_step
            if model is None:
                model = self.space.build(sample, self.data.input_shape, self.data.n_classes)
            own = time_steps(model, self.data, self.recipe, window=PROBE_SECONDS, parts=1).seconds_per_step
            raw = float(self.equal_time) / max(own, 1e-9)
            # quarter-octave steps: noise in the timing moves the factor less often
            self._factors[key] = float(min(MAX_FACTOR, max(1 / MAX_FACTOR, 2 ** (round(4 * math.log2(raw)) / 4))))
        return self._factors[key]

    def training_split(self, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        if fraction >= 1.0:
            return self.data.x_train, self.data.y_train
        if fraction not in self._subsets:
            if self.data.regression:
                _, keep = shuffled_split(len(self.data.y_train), fraction, self.seed + 7919)
            else:
                _, keep = stratified_split(self.data.y_train.numpy(), fraction, self.seed + 7919)
            idx = torch.from_numpy(np.asarray(keep, dtype=np.int64))
            self._subsets[fraction] = (self.data.x_train[idx], self.data.y_train[idx])
        return self._subsets[fraction]

    def _on_device(self, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`training_split` on the evaluator's device, moved there once per fraction."""
        if fraction not in self._placed:
            self._placed[fraction] = place(self.training_split(fraction), self.device)
        return self._placed[fraction]

    def _timed_factor(self, sample: Sample, key: str) -> float:
        """:meth:`time_factor`, where a network that cannot even be timed fails as its training would."""
        try:
            return self.time_factor(sample, key)
        except (RuntimeError, ValueError) as e:
            raise TrainingFailed(f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from e

    def evaluate(self, sample: Sample, budget: Budget, report: Reporter | None = None,
                 checkpoint: Path | None = None) -> EvalResult:
        """Train for ``budget``; with a ``checkpoint`` holding fewer epochs on the same data, continue from it.

        A continuation restarts the learning-rate schedule for the extra epochs (a warm restart, as in
        SGDR), so every rung ends annealed and its score is comparable with a fresh run's. With
        ``schedule_epochs`` (ASHA's ``lr_cycle: full``) there is one schedule of that length instead:
        a budget stops along it, and a continuation resumes it with the saved optimiser and random
        states, so reaching the full budget in steps trains exactly what one run to it would.
        """
        if self.folds > 1:
            return self._cross_validate(sample, budget, report)
        key = self.space.key(sample)
        seed = trial_seed(self.seed, key)
        shape, k = self.data.input_shape, self.data.n_classes
        schedule_epochs = self.schedule_epochs
        if self.equal_time is not None:  # budgets in the reference's time: this network's epochs in that time
            kept = _factor_from(checkpoint, key)
            if kept is not None:  # what this trial's earlier rungs trained under
                self._factors[key] = kept
            factor = self._timed_factor(sample, key)
            budget = Budget(epochs=budget.epochs * factor, fraction=budget.fraction)
            schedule_epochs = None if schedule_epochs is None else schedule_epochs * factor
        torch.manual_seed(seed)
        along = schedule_epochs is not None and budget.epochs <= schedule_epochs
        state = _load_checkpoint(checkpoint, budget, key)
        if state is not None and along != ("generator" in state):  # written under the other lr_cycle
            state = None
        if state is not None and float(state["epochs"]) >= budget.epochs:  # killed after saving, before storing
            return _result(tuple(state["curve"]), Cost.from_json(state["cost"]), 0.0, 0.0, self.metric)
        gen = torch.Generator().manual_seed(seed)
        try:
            model = self.space.build(sample, shape, k).to(self.device)  # before the optimizer: its state goes there
            if state is not None:
                model.load_state_dict(state["model"])
                cost = Cost.from_json(state["cost"])
            else:
                cost = measure_cost(model, shape, latency=self.measure_latency)  # latency on the device it trains on
                if self.int8_latency:  # untrained, as the fp32 latency: the weights do not change the time
                    from nasforge.evaluate.quantize import int8_latency_ms

                    cost = dataclasses.replace(cost, latency_int8_ms=int8_latency_ms(model, shape))
            opt = make_optimizer(model, self.recipe)
            done = 0.0
            if state is not None:
                opt.load_state_dict(state["optimizer"])
                for g in opt.param_groups:
                    g["lr"] = self.recipe.base_lr  # the schedule scales the base rate (a new cycle starts at its top)
                done = float(state["epochs"])
            x, y = self._on_device(budget.fraction)
            common: dict[str, Any] = {"recipe": self.recipe, "n_classes": k, "x_val": self._val[0],
                                      "y_val": self._val[1], "on_epoch": report, "optimizer": opt,
                                      "interim_val": self.interim, "flip_invariant": self.data.flip_invariant,
                                      "target": self.data.target}
            if along:
                if state is not None:
                    gen.set_state(state["generator"])
                    torch.set_rng_state(state["torch_rng"])  # dropout's draws continue where they stopped
                    if self.device.type == "cuda" and "cuda_rng" in state:  # on a GPU dropout draws there
                        torch.cuda.set_rng_state(state["cuda_rng"], self.device)
                stats = train(model, x, y, epochs=float(schedule_epochs or budget.epochs), seed=seed,
                              generator=gen, done_epochs=int(done), stop_epochs=budget.epochs, **common)
            else:
                stats = train(model, x, y, epochs=budget.epochs - done, seed=seed + int(done * 1000),
                              start_epoch=int(done), **common)
        except TrainingFailed:
            raise
        except (RuntimeError, ValueError) as e:  # shape errors, OOM: this candidate fails alone
            raise TrainingFailed(f"{type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
        curve = tuple(state["curve"]) + stats.curve if state is not None else stats.curve
        if checkpoint is not None:
            saved = {"model": model.state_dict(), "optimizer": opt.state_dict(), "key": key,
                     "epochs": budget.epochs, "fraction": budget.fraction,
                     "curve": [dict(r) for r in curve], "cost": cost.to_json()}
            if self.equal_time is not None:
                saved["time_factor"] = self._factors[key]
            if along:
                saved.update(generator=gen.get_state(), torch_rng=torch.get_rng_state())
                if self.device.type == "cuda":
                    saved["cuda_rng"] = torch.cuda.get_rng_state(self.device)
            _save_checkpoint(checkpoint, saved)
        return _result(curve, cost, stats.train_seconds, stats.eval_seconds, self.metric)


    def _cross_validate(self, sample: Sample, budget: Budget, report: Reporter | None) -> EvalResult:
        """The mean over ``folds`` stratified folds (plain shuffled ones for regression) of train+validation, each
        trained afresh for ``budget``.

        For small data: one validation split of a few hundred examples ranks networks by noise (many
        tie at 100%), while every example scores once across the folds. Promotions retrain (no
        checkpoint), and only the first fold reports its epochs (to a stopping rule or the log).
        """
        if self._fold_evaluators is None:
            x = torch.cat([self.data.x_train, self.data.x_val])
            y = torch.cat([self.data.y_train, self.data.y_val])
            order = np.random.default_rng(self.seed + 31337).permutation(len(y))
            ys = y.numpy()[order]
            fold_of = np.empty(len(y), dtype=np.int64)
            if self.data.regression:  # no classes: the shuffled examples dealt round-robin over the folds
                fold_of[order] = np.arange(len(y)) % self.folds
            else:
                for c in np.unique(ys):  # stratified: each class dealt round-robin over the folds
                    idx = np.flatnonzero(ys == c)
                    fold_of[order[idx]] = np.arange(len(idx)) % self.folds
            self._fold_evaluators = []
            for f in range(self.folds):
                val = torch.from_numpy(np.flatnonzero(fold_of == f))
                tr = torch.from_numpy(np.flatnonzero(fold_of != f))
                part = Dataset(f"{self.data.name}/fold{f}", x[tr], y[tr], x[val], y[val], self.data.classes,
                               preprocess=self.data.preprocess, flip_invariant=self.data.flip_invariant,
                               task=self.data.task)
                self._fold_evaluators.append(TorchEvaluator(
                    part, self.space, recipe=self.recipe, seed=self.seed + f, measure_latency=self.measure_latency
                    and f == 0, interim_validation="none", equal_time=self.equal_time,
                    int8_latency=self.int8_latency and f == 0, metric=self.metric))
        if self.equal_time is not None:  # timed once, on the whole data, for every fold
            key = self.space.key(sample)
            factor = self._timed_factor(sample, key)
            for ev in self._fold_evaluators:
                ev._factors[key] = factor
        results = [ev.evaluate(sample, budget, report if f == 0 else None)
                   for f, ev in enumerate(self._fold_evaluators)]
        metrics = {m: float(np.mean([r.metrics[m] for r in results])) for m in results[0].metrics}
        last = {**results[0].curve[-1], **{f"val_{m}": v for m, v in metrics.items() if not m.startswith("train_")},
                "val_examples": float(sum(len(ev.data.y_val) for ev in self._fold_evaluators)),
                "folds": float(self.folds)}
        if "rmse" in metrics:  # regression: the folds' mean RMSE, negated (higher is better)
            last["val_score"] = -metrics["rmse"]
        score = -metrics["rmse"] if "rmse" in metrics else metrics[self.metric]
        return EvalResult(score=score, metrics=metrics, curve=(*results[0].curve[:-1], last),
                          cost=results[0].cost, train_seconds=sum(r.train_seconds for r in results),
                          eval_seconds=sum(r.eval_seconds for r in results))


def interim_split(data: Dataset, how: int | str, seed: int) -> InterimVal:
    """The split interim epochs are scored on (see :class:`TorchEvaluator`); a subset at least as large
    as the validation split is the whole split."""
    how = check_interim(how)
    if how == "none":
        return None
    if how == "full" or int(how) >= len(data.y_val):
        return "full"
    share = int(how) / len(data.y_val)
    if data.regression:
        _, keep = shuffled_split(len(data.y_val), share, seed + 104729)
    else:
        _, keep = stratified_split(data.y_val.numpy(), share, seed + 104729)
    idx = torch.from_numpy(np.asarray(keep, dtype=np.int64))
    return data.x_val[idx], data.y_val[idx]


def metric_for(data: Dataset, metric: str) -> str:
    """``metric`` where ``data`` can be ranked by it: a regression is ranked by RMSE whatever search.metric says."""
    metric = check_metric(metric)
    if data.regression and metric != "accuracy":
        raise ConfigError(f"search.metric {metric} ranks classes, and {data.name} is a regression (ranked by RMSE); "
                          "remove search.metric")
    return metric


def _result(curve: tuple[Mapping[str, float], ...], cost: Cost, train_s: float, eval_s: float,
            metric: str = "accuracy") -> EvalResult:
    last = curve[-1]
    if "val_rmse" in last:  # regression: RMSE, MAE, R² in the target's units; the score is -RMSE
        reg = {m: float(last[f"val_{m}"]) for m in ("rmse", "mae", "r2", "loss")}
        reg["train_loss"] = float(last["train_loss"])
        if not math.isfinite(reg["rmse"]):
            raise TrainingFailed("non-finite validation RMSE (the network's predictions diverged); lower the "
                                 "learning rate")
        return EvalResult(score=-reg["rmse"], metrics=reg, curve=curve, cost=cost, train_seconds=train_s,
                          eval_seconds=eval_s)
    metrics = {m: float(last[f"val_{m}"]) for m in ("accuracy", "loss", "precision", "recall", "f1")}
    if "val_balanced_accuracy" in last:  # curves stored before it was recorded lack it
        metrics["balanced_accuracy"] = float(last["val_balanced_accuracy"])
    metrics["train_loss"] = float(last["train_loss"])
    if "train_accuracy" in last:  # curves stored before it was recorded lack it
        metrics["train_accuracy"] = float(last["train_accuracy"])
    return EvalResult(score=metrics[metric], metrics=metrics, curve=curve, cost=cost, train_seconds=train_s,
                      eval_seconds=eval_s)


def _load_checkpoint(path: Path | None, budget: Budget, key: str) -> dict[str, Any] | None:
    """A checkpoint this budget can continue from (same data fraction, no more epochs), else None."""
    if path is None or not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: start over rather than fail the trial
        log.warning("ignoring unreadable checkpoint %s (%s); training from scratch", path, e)
        return None
    if state.get("key") != key:  # left by another run that reused this trial number: not ours
        return None
    if state.get("fraction") != budget.fraction or float(state.get("epochs", 0)) > budget.epochs:
        return None
    return state


def _factor_from(path: Path | None, key: str) -> float | None:
    """The equal_time factor a checkpoint of this architecture was trained under (a promotion keeps it)."""
    if path is None or not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable: _load_checkpoint says so and trains from scratch
        return None
    factor = state.get("time_factor") if state.get("key") == key else None
    return float(factor) if factor is not None else None


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a kill mid-write leaves the previous checkpoint, never a torn one."""
    atomic.torch_save(state, path)
