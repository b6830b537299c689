"""``nasforge auto``: one data set and one time budget in; a searched, trained, tested network out, on time.

The planner measures instead of assuming: it loads the data, times training steps of the data
kind's hand-designed reference network on this machine, and sizes everything from that, in
optimizer steps rather than epochs (a 4,000-example set gets many epochs, a 60,000-example one
few): the final training of the searched network and of the reference (the same recipe, the same
time each), the search share, each trial's budget and the rung ladder, the expected number of
trials. No trial starts that is not expected to end inside the search share, and the final
trainings are sized from a timing of the very networks they train. Every number of the plan
comes with one line that says why.

The plan is stored with the experiment, so ``--resume`` continues it rather than re-planning.
(The module is ``autoplan``: ``nasforge.auto`` is the function that runs it.)
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from nasforge.config import parse_duration, with_overrides
from nasforge.data import Dataset
from nasforge.errors import ConfigError, NasforgeError, StoreError
from nasforge.evaluate.cost import count_flops
from nasforge.evaluate.device import resolve_device, resolve_precision
from nasforge.evaluate.timing import Timing, probe_window, time_steps
from nasforge.evaluate.trainer import Recipe
from nasforge.final.references import (
    FLAT,
    IMAGE,
    MLP_WIDTH,
    RESNET_WIDTH,
    SklearnFit,
    data_kind,
    default_reference,
    fit_reference,
    fit_sklearn,
    make_reference,
    others_record,
    resolve_baseline,
    score_sklearn,
    split_reference,
)
from nasforge.fmt import fmt_time
from nasforge.paths import check_name
from nasforge.types import METRIC_WORDS, check_metric

log = logging.getLogger("nasforge")

BUILT_IN = ("fashion_mnist", "mnist", "digits", "diabetes")  # data sets nasforge finds by name, with no path
SEARCH_SHARE_MAX = 0.5  # of the time left after loading and probing: the rest trains the two final networks
FINAL_ALONE_MAX = 0.6  # of the time left: a searched network training alone, short of converging, gets up to this
FINAL_EPOCHS_MAX = 200  # more epochs than this does not pay on the data sets measured; the time goes to search
FINAL_STEPS_TARGET = 20_000  # optimizer steps a final training aims at, when the budget allows
TRIALS_TARGET = 30  # lowest-rung trials the search share should hold, where trials are long enough to rank
# optimizer steps (per fold) the lowest rung trains at least, since most trials stop there. On digits, four
# stage networks after 18 steps scored 0.16-0.89, which measured how fast each starts (three searches of such
# trials all kept the fastest starter, and lost); after 54 steps all stood at 0.93-0.97 (four networks are too
# few for a finer horizon: benchmarks/rank_horizon.py). Lowest rungs of 5-7 steps scored every candidate at
# chance (0.10-0.14), so the search could only keep its warm start
MIN_TRIAL_STEPS = 60
# ranked trials a search needs to be worth its time (the reference and one population of its mutants): with
# fewer, the reference, where the search starts, trains for the whole budget instead. Digits in 3 minutes,
# 6-10 trials whose lowest rungs scored at chance: every seed kept the reference, trained for the 60% of the
# budget the search left, 0.65 points below the reference's own arm on average (3 seeds)
SEARCH_TRIALS_MIN = 5
# of the steps converging takes, what the whole budget must train the reference for a search to pay: on
# Fashion-MNIST in 15 minutes on an AVX2 2-core CPU (3.3 of 43 epochs, 8%), the networks of two searches,
# trained for the ~60% left, lost 1.0 and 2.4 points to ResNet-20 trained alone (92.19%); in an hour on a
# faster one (36 epochs, 84%) two came within 0.2 points
REACH_MIN = 0.25
# of the reference's parameters, the fewest an image or sequence candidate may have. Trials train a few percent of
# the final training's steps, and so short a horizon over-rates small networks, which start fast and plateau. Of
# the searches in benchmarks/results, the picks under 30% of the reference's parameters lost all four on the
# generated sequences, by 11-17 points (5-25K parameters; the 1-D ResNet has 94K), and on digits won 2, tied 1 and
# lost 3 (by up to 1.4); the eight at 57-100% ranged from 3.9 below to 3.7 above (on Fashion-MNIST in an hour, 59%
# and 78%: 0.06 and 0.19 below). Not on tables: trials there train about as long as the final, and logistic
# regression (a few dozen parameters) is often the best model
SIZE_FLOOR = 0.5
ETA = 3  # ASHA's reduction factor; three rungs
EQUAL_TIME_RUNG = 15.0  # seconds: lowest-rung trials at least this long get budgets in the reference's time
# the reference trains in the same run only if each network still gets this share of converging. At 0.5, a larger
# budget could train the searched network less: Fashion-MNIST's 1.5 hours gave it 39 epochs alone, 2 hours 22
# shared with the reference; the network delivered comes first, the reference has its own arm (--reference-only)
SHARE_MIN = 1.0
SAFETY = 1.08  # timings are of a quiet machine; plans leave this much slack
# where converging is cheap (small tables), each final network is the average of up to ENSEMBLE_AUTO trainings,
# which together take at most ENSEMBLE_SHARE of the time left: in 5-fold CV on four tables five trainings of the
# reference MLP averaged erred 0.7-1.1 points less than one (benchmarks/results/ensemble_cv.json)
ENSEMBLE_AUTO = 5
ENSEMBLE_SHARE = 0.2
RESERVE_MIN = 10.0  # seconds kept for testing, storing and the report
RESERVE_SHARE = 0.02  # of the budget, where that is more than RESERVE_MIN
# of data that comes without a test split, the share auto holds out as one (scikit-learn's train_test_split
# holds out 25%; digits here 20%)
TEST_FRACTION = 0.2
# of the budget, the most scikit-learn's references (logistic regression, gradient boosting) may take on a table:
# a model still fitting then stops between chunks of iterations, and says so. Gradient boosting's 100 trees took
# 41 s on 6,000 rows of 784 columns here; on ten times the rows, a 5-minute budget would go to them alone
SKLEARN_SHARE = 0.1
# trials at once on a CPU: several single-threaded workers (a process pool) where that trains the reference more
# steps a second than one trial on all the threads. Measured on a 2-core machine (2026-12-06): two 1-thread
# trainings at once against one 2-thread training, ResNet-20 on 28x28 images 1.00-1.17x, the 1-D ResNet on 128
# steps 1.39-1.45x, ResNet-20 on 8x8 images 1.56-1.6x (small inputs keep two threads of one network half idle)
POOL_GAIN_MIN = 1.2  # the measured gain a pool must promise: one worker's timing misses the two sharing memory
POOL_SEARCH_MIN = 60.0  # seconds of search, at least, to spread starting the workers (~2-4 s) over
POOL_WORKERS_MAX = 8


# ------------------------------------------------------------------------------------------ data

# formats a user may well have that nasforge does not read, and how to write them as one it does
SAVE_AS = (((".xlsx", ".xls", ".xlsm", ".ods"), "a spreadsheet is not read: save the sheet as CSV (File > Save As), "
            "or "),
           ((".parquet", ".feather", ".json", ".jsonl", ".pkl", ".pickle"),
            "a data frame file is not read: write it with pandas' DataFrame.to_csv, or "),
           ((".npy",), "a bare array has no labels: np.savez(path, x_train=x, y_train=y) writes an .npz, or "))


def resolve_data(data: str) -> dict[str, Any]:
    """The config (a raw mapping: at least ``data``) that DATA names: a built-in name, a path, or a YAML config."""
    key = data.strip().lower().replace("-", "_")
    if key in BUILT_IN:
        return {"data": {"source": key}}
    from nasforge.data.files import table_pair, table_stem

    p = Path(data).expanduser()
    if not p.exists():
        raise NasforgeError(f"unknown data {data!r}: give {', '.join(BUILT_IN)}, a .npz or .csv file, a folder of "
                            "IDX, CSV (train.csv, test.csv) or CIFAR files or of class folders of images, or a YAML "
                            "config")
    if p.is_file() and p.suffix.lower() in (".yaml", ".yml"):
        from nasforge.config import load_config

        cfg = load_config(p)
        return {"data": dict(cfg.raw.get("data") or {"source": cfg.data.source}),
                **{k: cfg.raw[k] for k in ("name", "seed") if k in cfg.raw}}
    if p.is_file() and p.suffix.lower() == ".npz":
        return {"data": {"source": "npz", "path": str(p)}}
    if p.is_file() and table_stem(p) is not None:
        return {"data": {"source": "csv", "path": str(p)}}
    if p.is_dir():
        names = {q.name for q in p.iterdir()}
        if table_pair(p) is not None:
            return {"data": {"source": "csv", "path": str(p)}}
        if any(n.startswith("data_batch_") for n in names) or (p / "cifar-10-batches-py").is_dir():
            return {"data": {"source": "cifar10", "path": str(p)}}
        if {"train", "test", "meta"} <= names or (p / "cifar-100-python").is_dir():
            return {"data": {"source": "cifar100", "path": str(p)}}
        if any("idx3-ubyte" in n for n in names):
            return {"data": {"source": "idx", "path": str(p)}}
        from nasforge.data.folder import image_folder_split

        if image_folder_split(p) is not None:
            return {"data": {"source": "images", "path": str(p)}}
    low = p.name.lower()
    hint = next((h for suffixes, h in SAVE_AS if low.endswith(suffixes)), "") if p.is_file() else ""
    raise NasforgeError(f"cannot tell what data {data!r} holds: {hint}give a .npz or .csv file, a folder with "
                        "train.csv, IDX files, CIFAR batches or one subfolder of images per class, or a YAML config "
                        "with a data section")


VALIDATION_MIN = 500  # examples: a validation split smaller than this ranks networks by noise
FOLDS = 5


def validation_for(n: int, *, regression: bool = False) -> tuple[float, int, str]:
    """``(val_fraction, folds, why)``: a 10% split where it holds ~500 examples, else 5-fold cross-validation."""
    if 0.1 * n >= VALIDATION_MIN:
        return 0.1, 1, f"a 10% validation split holds {int(0.1 * n):,} examples"
    noise = "the RMSE of so few is mostly noise" if regression else "many tie at 100%"
    return (1 / FOLDS, FOLDS, f"{FOLDS}-fold cross-validation over all {n:,} training examples: a 10% split would "
            f"hold {int(0.1 * n)}, too few to rank networks ({noise}); each trial trains {FOLDS} times")


# ------------------------------------------------------------------------------------------ plan

@dataclass(frozen=True)
class Plan:
    """What ``auto`` will do, in seconds and steps, with the reason for each number."""

    data: dict[str, Any]
    kind: str
    n_train: int
    input_shape: tuple[int, ...]
    classes: int
    time_budget: float
    reference: str
    reference_timing: Timing
    batch_size: int
    search_seconds: float
    final_seconds_each: float
    final_epochs_reference: int
    trial_epochs: float
    trial_fraction: float
    rungs: str
    min_epochs: float | None
    min_fraction: float | None
    expected_trials: int
    trial_timeout: float
    population: int
    val_fraction: float
    folds: int
    reference_only: bool = False
    with_reference: bool = True
    equal_time: bool = False
    why: dict[str, str] = field(default_factory=dict)
    task: str = "classification"  # regression: one output, scored by RMSE (plans stored before it: classification)
    metric: str = "accuracy"  # what the search ranks a classification by (plans stored before it: accuracy)
    workers: int = 1  # trials at once (a process pool where above 1; plans stored before it: one at a time)
    threads_per_worker: int = 0  # each worker's torch threads (0: one trial at a time, on all of them)
    worker_step_seconds: float | None = None  # the reference's step on one worker's threads, as measured
    max_params: int | None = None  # --max-params: every candidate, and the reference (narrowed), within it
    members: int = 1  # trainings averaged into each final network (final.ensemble; plans stored before it: 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Plan:
        d = {k: v for k, v in d.items() if k in Plan.__dataclass_fields__}  # a key of another version: ignored
        rt = dict(d["reference_timing"])
        d["reference_timing"] = Timing(**{**rt, "parts": tuple(rt.get("parts", ()))})  # JSON gave a list
        d["input_shape"] = tuple(d["input_shape"])
        return Plan(**d)

    def trial_seconds(self, epochs: float, fraction: float) -> float:
        """Expected seconds of a trial of this budget, at the reference's speed (validation included): with
        ``equal_time`` every candidate trains that long, whatever its speed."""
        steps = math.ceil(epochs * math.ceil(self.n_train * fraction / self.batch_size))
        timing = 2.0 if self.equal_time else 0.0  # equal_time times each candidate first (~1 s and a warm-up)
        step = self.worker_step_seconds or self.reference_timing.seconds_per_step  # on the threads it runs on
        return SAFETY * steps * step * 1.1 * self.folds + timing

    def lines(self) -> list[str]:
        fmt = _fmt_s
        what = ("regression (scored by RMSE)" if self.task == "regression" else f"{self.classes} classes"
                + (f", ranked by {METRIC_WORDS[self.metric]}" if self.metric != "accuracy" else ""))
        out = [f"plan for {self.data.get('source')} ({self.kind}, {self.n_train:,} training examples, "
               f"{what}, input {self.input_shape}) in {fmt(self.time_budget)}:"]
        if self.reference_only:
            out.append(f"  reference only: {self.reference}, {self.final_epochs_reference} epochs "
                       f"(~{fmt(self.final_seconds_each)})")
        else:
            at_once = f", {self.workers} at a time" if self.workers > 1 else ""
            out += [f"  search {fmt(self.search_seconds)}: about {self.expected_trials} trials{at_once}, "
                    f"full budget {self.trial_epochs:g} epochs on {self.trial_fraction:.0%} of the data, "
                    f"rungs {self.rungs}" + (f", each scored by {self.folds}-fold cross-validation" if self.folds > 1
                                              else ""),
                    f"  final training {fmt(2 * self.final_seconds_each)}: the searched network and the reference "
                    f"({self.reference}) {fmt(self.final_seconds_each)} each; the reference gets "
                    f"{self.final_epochs_reference} epochs" if self.with_reference else
                    f"  final training {fmt(self.final_seconds_each)}: the searched network alone (about "
                    f"{self.final_epochs_reference} epochs at the reference's speed)"]
        if self.members > 1:
            out.append(f"  each final network: the average of {self.members} trainings with different seeds")
        out += [f"  why {k}: {v}" for k, v in self.why.items()]
        return out


def _fmt_s(s: float) -> str:
    """:func:`~nasforge.fmt.fmt_time`, with a tenth of a second below 10 s (an epoch of a small set is 0.4s)."""
    s = max(0.0, s)
    return f"{s:.1f}s" if s < 10 else fmt_time(s)


def _budget_text(seconds: float) -> str:
    """A --time-budget value of at least ``seconds``: 45s, 3m, 2h."""
    if seconds < 120:
        return f"{math.ceil(seconds)}s"
    return f"{math.ceil(seconds / 60)}m" if seconds < 7200 else f"{math.ceil(seconds / 3600)}h"


def recipe_for(kind: str) -> dict[str, Any]:
    """The training recipe of a data kind (search and final alike): SGD with one-cycle and label smoothing
    for images and sequences, random crops for images (flips as the source declares), Adam for tables."""
    if kind == FLAT:
        return {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 1e-4, "schedule": "onecycle",
                "label_smoothing": 0.0, "augment": False}
    return {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle", "label_smoothing": 0.1,
            "augment": kind == IMAGE}


def reserve_for(budget: float) -> float:
    """Seconds of ``budget`` kept for testing, storing and the report."""
    return max(RESERVE_MIN, RESERVE_SHARE * budget)


def fractional_epochs(fit: float) -> float:
    """The epochs a network training alone gets from the epochs its time holds: whole ones from 10 up, tenths
    below (at least 1), so a short budget on a slow machine does not leave most of an epoch unused."""
    return float(int(fit)) if fit >= 10 else max(1.0, math.floor(10 * fit) / 10)


def converge_epochs(steps_per_epoch: int) -> int:
    """The epochs a final training aims at: FINAL_STEPS_TARGET steps, at most FINAL_EPOCHS_MAX epochs."""
    return max(1, min(FINAL_EPOCHS_MAX, math.ceil(FINAL_STEPS_TARGET / steps_per_epoch)))


def ensemble_members(seconds: float, converge_s: float) -> int:
    """How many converged trainings of ``converge_s`` to average in ``seconds``: 1 to ENSEMBLE_AUTO."""
    return max(1, min(ENSEMBLE_AUTO, int(seconds / max(converge_s, 1e-9))))


def make_plan(*, raw: Mapping[str, Any], data: Dataset, time_budget: float, spent: float, reference: str,
              timing: Timing, recipe: Recipe, reference_flops: int, reference_only: bool = False,
              folds: int = 1, warm_starts: int = 1, workers: int = 1, worker_timing: Timing | None = None,
              threads_per_worker: int = 0, average: bool = True) -> Plan:
    """Size every phase from the measured step time of the reference; refuse a budget that cannot hold it.

    ``average``: each final network may be the average of several trainings where converging is cheap; not
    under a size limit (``--max-params``), which holds for the network delivered, and an average of N trainings
    has N times the parameters of one.

    ``warm_starts``: the networks the search starts from, each trained at the full trial budget first; the
    search's share holds all of them, with room for the trials that follow. ``workers`` trials at once, each
    at ``worker_timing`` (the reference timed on ``threads_per_worker`` threads): the search's seconds below are
    then of all workers together (a full trial of ``full_s`` takes ``workers * full_s`` on its worker)."""
    worker_step = worker_timing.seconds_per_step if worker_timing is not None and workers > 1 else None
    if worker_step is None:
        workers = 1
    search_timing = timing if worker_timing is None or worker_step is None else replace(
        worker_timing, seconds_per_step=worker_step / workers)
    n, bs = len(data.x_train) + len(data.x_val), recipe.batch_size  # the final trainings see train+val
    n_search = len(data.x_train)
    kind = data_kind(data.input_shape)
    epoch_s = timing.epoch_seconds(n, bs) * SAFETY
    reserve = reserve_for(time_budget)
    left = time_budget - spent - reserve
    why: dict[str, str] = {}
    # a trial's epoch: its training examples (all but one fold, with folds) once per fold, and validation
    fold_n = n - n // folds if folds > 1 else n_search
    search_epoch_s = search_timing.epoch_seconds(fold_n, bs) * SAFETY * 1.1 * folds
    lowest = ETA ** 2 * 2 * min(bs, n_search) / n_search  # the lowest rung still trains on two batches
    # one epoch of the final training (the searched network alone; the reference is then its own arm), and a
    # search that sees the search data once and holds the (first) warm start's full trial (the smallest the rungs
    # allow) and half as much again: short of that, no trial would finish and there is nothing to search with
    search_min = 0.0 if reference_only else max(search_timing.epoch_seconds(n_search, bs) * SAFETY,
                                                1.5 * lowest * search_epoch_s * workers)
    if left < epoch_s:
        raise NasforgeError(f"a time budget of {_fmt_s(time_budget)} cannot train the reference ({reference}) even "
                            f"once here: one epoch takes {_fmt_s(epoch_s)} on this machine, and loading and timing "
                            f"took {_fmt_s(spent)}; give at least --time-budget "
                            f"{_budget_text(spent + reserve + epoch_s)}")
    steps_per_epoch = math.ceil(n / min(bs, n))
    why["timing"] = (f"{reference} ({timing.params:,} parameters) trains {1 / timing.seconds_per_step:.1f} steps/s "
                     f"at batch {bs} here (measured over {timing.steps} steps, the median of {len(timing.parts) or 1} "
                     f"parts): {_fmt_s(epoch_s)} an epoch")
    base: dict[str, Any] = {"data": dict(raw["data"]), "kind": kind, "n_train": n_search,
                            "input_shape": tuple(data.input_shape), "classes": data.n_classes,
                            "time_budget": time_budget, "reference": reference, "reference_timing": timing,
                            "batch_size": bs, "val_fraction": float(raw["data"].get("val_fraction", 0.1)),
                            "folds": folds, "task": data.task}

    def reference_alone_plan() -> Plan:
        """--reference-only, or no search: the reference trains alone for all that is left."""
        alone = fractional_epochs(left / epoch_s)
        why["final"] = f"the whole budget but {_fmt_s(reserve)} for testing goes to the reference: {alone:g} epochs"
        # averaged where auto's final would average (converging fits ENSEMBLE_SHARE of the time twice or more),
        # so this arm's recipe is the one the reference gets beside a searched network
        converge_s = converge_epochs(steps_per_epoch) * epoch_s
        members = ensemble_members(ENSEMBLE_SHARE * left, converge_s) if average else 1
        if members > 1:
            alone = fractional_epochs(left / members / epoch_s)
            why["final"] = (f"the whole budget but {_fmt_s(reserve)} for testing goes to the reference, as the "
                            f"average of {members} trainings with different seeds ({alone:g} epochs each): converging "
                            f"takes {_fmt_s(converge_s)} here, and "
                            f"{members} of them fit {ENSEMBLE_SHARE:.0%} of the time left (retrain.ensemble)")
        return Plan(**base, search_seconds=0.0, final_seconds_each=alone * epoch_s,
                    final_epochs_reference=max(1, int(alone)),
                    trial_epochs=0.0, trial_fraction=1.0, rungs="-", min_epochs=None, min_fraction=None,
                    expected_trials=0, trial_timeout=0.0, population=0, reference_only=True,
                    with_reference=False, why=why, members=members)

    if reference_only:
        return reference_alone_plan()
    if left < epoch_s + search_min:  # the reference fits, the smallest search beside it does not: it trains alone
        # (1,000 images of 96x96 px in 4 minutes: 22 s an epoch, but 5-fold trials make the smallest search 7m37s)
        folded = f" x {folds} folds" if folds > 1 else ""
        why["search"] = (f"none: the smallest search here (its first full trial{folded}, {_fmt_s(search_min)}) "
                         f"and one epoch of the final do not fit the {_fmt_s(left)} left; "
                         "the reference, where the search would start, trains instead (a search needs about "
                         f"--time-budget {_budget_text(spent + reserve + epoch_s + search_min)})")
        return reference_alone_plan()

    # final: each of the two networks gets what the reference needs to converge, within half of what is left;
    # where sharing would leave each short of that, the searched network trains alone (the reference is then its
    # own arm: --reference-only): a comparison in the same run is not worth a shorter training of the network
    # delivered, and so more budget never trains it less
    want_epochs = converge_epochs(steps_per_epoch)
    final_share = (1 - SEARCH_SHARE_MAX) * left
    with_reference = final_share / 2 >= SHARE_MIN * want_epochs * epoch_s
    # training alone means converging takes more than half of what is left: each final epoch then counts, so
    # the final gets more than the search (which keeps enough for ~TRIALS_TARGET trials of ASHA)
    each = min(want_epochs * epoch_s, final_share / 2 if with_reference else FINAL_ALONE_MAX * left)
    final_epochs = max(1, int(each / epoch_s))
    # two networks sharing the final time get whole epochs each; one training alone gets all of its share, in
    # tenths of an epoch (on a slow machine an epoch is minutes, too much of a short budget to leave unused)
    each = final_epochs * epoch_s if with_reference else max(epoch_s, fractional_epochs(each / epoch_s) * epoch_s)
    networks = 2 if with_reference else 1
    members = ensemble_members(ENSEMBLE_SHARE * left / networks, want_epochs * epoch_s) if (
        average and final_epochs >= want_epochs) else 1
    if members > 1:  # converging is cheap: each final network averages several trainings, each converged
        each = members * want_epochs * epoch_s
        why["ensemble"] = (f"each final network is the average of {members} trainings with different seeds, "
                           f"{want_epochs} epochs each: converging takes {_fmt_s(want_epochs * epoch_s)} here, and "
                           f"{members} of them fit {ENSEMBLE_SHARE:.0%} of the time left; on small tables the "
                           "average errs less than one training (retrain.ensemble)")
    search = left - networks * each
    if search < search_min:  # a short budget: the final gives the search what its first trials need
        each = (left - search_min) / (2 if with_reference else 1)
        final_epochs = max(1, int(each / epoch_s))
        search = search_min
    converge = min(FINAL_STEPS_TARGET, FINAL_EPOCHS_MAX * steps_per_epoch)
    who = "each network" if with_reference else "the searched network"
    shown = final_epochs if with_reference else round(each / epoch_s, 1)
    why["final"] = (f"{shown:g} epochs ({math.ceil(shown * steps_per_epoch):,} steps) for {who}: "
                    + (f"as many as converging takes ({converge:,} steps, at most {FINAL_EPOCHS_MAX} epochs)"
                       if final_epochs >= want_epochs else
                       (f"the most that half of the {_fmt_s(left)} left holds for two networks" if with_reference
                        else f"the most that {FINAL_ALONE_MAX:.0%} of the {_fmt_s(left)} left holds: it trains "
                        "alone, short of converging, so each epoch counts more than a longer search")))
    if not with_reference:
        why["reference"] = (f"not trained in this run: sharing the final time would give each network "
                            f"{int(final_share / 2 / epoch_s)} of the {want_epochs} epochs converging takes; run "
                            "the same command with --reference-only for the reference's arm (it gets the whole "
                            "budget)")
    # search: as many rungs (up to 3) as keep the lowest one at MIN_TRIAL_STEPS a fold, and at least
    # SEARCH_TRIALS_MIN trials; the full trial sized so that ~TRIALS_TARGET fit, and no longer than a final
    steps_s = search_epoch_s / math.ceil(fold_n / min(bs, fold_n))  # a step of a trial, all its folds
    rank_s = MIN_TRIAL_STEPS * steps_s  # the shortest trial that ranks networks
    chosen: tuple[int, float, int] | None = None
    for n_rungs in (3, 2, 1):
        spread = ETA ** (n_rungs - 1)  # the full budget over the lowest rung's
        per_trial = n_rungs / spread  # a new trial's cost under ASHA, in full trials (1/3 with three rungs)
        # no longer than one final training (one member of an average: averaging does not lengthen a trial)
        full_s = min(each / members * folds, max(epoch_s / 8, search / (per_trial * TRIALS_TARGET), rank_s * spread))
        # a warm start trains the full budget, not a new trial's share of it: the first is counted as a new
        # trial (as plans always did), each further one whole, and all of them must fit the search. With one rung
        # that is the one-warm-start condition (for up to 4), so more warm starts cost rungs, never the search
        extra = (warm_starts - 1) * full_s
        expected = warm_starts - 1 + int(max(0.0, search - extra) / (full_s * per_trial))
        # on its worker a full trial takes workers * full_s, and the warm starts run that many at once
        if (full_s >= rank_s * spread * 0.999 and expected >= SEARCH_TRIALS_MIN
                and math.ceil(warm_starts / workers) * workers * full_s < search):
            chosen = (n_rungs, full_s, expected)
            break
    reach = left / epoch_s * steps_per_epoch / converge  # of converging, the whole budget trains the reference
    if chosen is None or (not with_reference and reach < REACH_MIN):
        if chosen is None:  # trials long enough to rank do not fit: the search would pick at random
            why["search"] = (f"none: a trial long enough to rank networks ({MIN_TRIAL_STEPS} steps"
                             f"{f' x {folds} folds' if folds > 1 else ''}) takes {_fmt_s(rank_s)} here, so the "
                             f"{_fmt_s(search)} a search would get holds {int(search / rank_s)}, fewer than the "
                             f"{SEARCH_TRIALS_MIN} a search needs; the reference, where the search would start, "
                             "trains instead (a search needs about --time-budget "
                             f"{_budget_text(time_budget * SEARCH_TRIALS_MIN * rank_s / max(search, 1e-9))})")
        else:  # the final is far short of converging: each of its steps is worth more than a search returns
            target = REACH_MIN * converge / steps_per_epoch * epoch_s + spent  # left = budget - spent - reserve
            need = max(target / (1 - RESERVE_SHARE), target + RESERVE_MIN)  # the budget whose left is target
            why["search"] = (f"none: the whole budget trains {reference} {left / epoch_s:.1f} epochs, {reach:.0%} "
                             f"of the {converge:,} steps converging takes; below {REACH_MIN:.0%} each step of the "
                             "final training is worth more than a search returns, so the reference trains instead "
                             f"(a search needs about --time-budget {_budget_text(need)})")
        why.pop("reference", None)  # this run is the reference's arm: no other to run
        return reference_alone_plan()
    n_rungs, full_trial_s, expected = chosen
    spread = ETA ** (n_rungs - 1)
    trial_epochs = full_trial_s / search_epoch_s
    lowest_rung = spread * 2 * min(bs, n_search) / n_search  # the lowest rung still trains on two batches
    min_epochs: float | None = None
    min_fraction: float | None = None
    rung_ks = range(n_rungs - 1, -1, -1)
    # a small set on a short budget: a share of the data on the lowest rung would hold less than a batch (a
    # 282-row table in 40 s), so the rungs grow epochs there too, from the two batches the lowest rung needs
    if trial_epochs >= 1 or n_search / spread < min(bs, n_search):
        epochs, fraction = round(max(trial_epochs, lowest_rung), 2), 1.0
        min_epochs = epochs / spread if n_rungs > 1 else None
        rung_text = " -> ".join(f"{epochs / ETA ** k:.3g} ep" for k in rung_ks)
    else:  # a large data set: every trial trains 1 epoch on a share of it, rungs grow the share
        epochs, fraction = 1.0, round(min(1.0, max(trial_epochs, lowest_rung)), 4)
        min_fraction = fraction / spread if n_rungs > 1 else None
        rung_text = " -> ".join(f"{fraction / ETA ** k:.1%}" for k in rung_ks)
    if n_rungs == 1:
        rung_text += " (one rung: no ASHA)"
    equal_time = workers * full_trial_s / spread >= EQUAL_TIME_RUNG  # on its worker
    if equal_time:
        why["equal_time"] = (f"budgets are in {reference}'s time: each candidate is timed (~1s) and trains the "
                             "epochs it would get in that time, as the final training (a fixed time) will treat it; "
                             f"a lowest-rung trial of {_fmt_s(workers * full_trial_s / spread)} amortises the timing")
    population = int(min(20, max(4, expected // 4)))
    on_worker = f" on one of {workers} workers" if workers > 1 else ""
    why["search"] = (f"{_fmt_s(search)} left after the final trainings; a full trial of "
                     f"{_fmt_s(workers * full_trial_s)}{on_worker} lets ~{expected} trials through "
                     + (f"ASHA (eta {ETA}: most stop at the lowest rung)" if n_rungs > 1 else "the search")
                     + (f"; {'fewer rungs and ' if n_rungs < 3 else ''}fewer than {TRIALS_TARGET} trials, since "
                        f"the lowest rung trains at least {MIN_TRIAL_STEPS} steps (shorter trials ranked networks "
                        "at random)" if expected < TRIALS_TARGET * 0.95 else ""))
    why["budget"] = (f"{epochs:g} epochs on {fraction:.0%} of the data = "
                     f"{math.ceil(epochs * math.ceil(n_search * fraction / bs)):,} steps a full trial"
                     + (": the data set is large, so rungs grow the data share" if fraction < 1 else ""))
    why["space"] = (f"candidates may cost up to the reference's {reference_flops:,} FLOPs an example: in the same "
                    "final-training time a costlier network would get fewer epochs than the reference"
                    + ("" if kind == FLAT else
                       f"; and have at least {SIZE_FLOOR:.0%} of its {timing.params:,} parameters: trials this short "
                       "over-rate small networks, which start fast and then plateau"))
    why["population"] = (f"evolution keeps {population} networks: about a quarter of the expected trials"
                         + ("" if kind == FLAT else f"; the first are mutations of the "
                            f"{'reference (a warm start)' if warm_starts == 1 else 'best-scoring of the warm starts'}, "
                            f"since ~{expected} trials are too few to find much by random draws of the space"))
    why["validation"] = (validation_for(n, regression=data.regression)[2] if folds > 1 else
                         f"a {len(data.x_val) / n:.0%} validation split holds {len(data.x_val):,} examples")
    return Plan(**base, search_seconds=search, final_seconds_each=each, final_epochs_reference=final_epochs,
                trial_epochs=epochs, trial_fraction=fraction, rungs=rung_text, min_epochs=min_epochs,
                min_fraction=min_fraction, expected_trials=expected,
                trial_timeout=max(30.0, 3 * workers * full_trial_s), population=population,
                with_reference=with_reference, equal_time=equal_time, why=why, workers=workers,
                threads_per_worker=threads_per_worker if workers > 1 else 0, worker_step_seconds=worker_step,
                members=members)


# ------------------------------------------------------------------------------------------ config

def space_limits(kind: str, reference_params: int, reference_flops: int,
                 max_params: int | None = None) -> dict[str, int]:
    """The search space's size class: up to the reference's FLOPs (and ``max_params``, a user's size limit), and
    (not on tables) down to SIZE_FLOOR of its
    parameters."""
    floor = {} if kind == FLAT else {"min_params": math.ceil(SIZE_FLOOR * reference_params)}
    return {"max_flops": int(reference_flops), **floor, **({"max_params": max_params} if max_params else {})}


def search_config(plan: Plan, *, name: str, seed: int, db: str, initial: list[dict[str, Any]],
                  space: Mapping[str, Any], train: Mapping[str, Any], reference_flops: int) -> dict[str, Any]:
    """The YAML config that runs this plan's search with ``nasforge search`` (and its final with ``retrain``)."""
    if plan.reference_only:  # --reference-only, or no search: the config records data, recipe and reference
        return {"name": name, "seed": seed, "data": {**plan.data, "val_fraction": plan.val_fraction},
                "space": dict(space), "search": {"db": db, **_metric_key(plan)}, "train": dict(train),
                "retrain": {"epochs": plan.final_epochs_reference, **dict(train), "baseline": plan.reference,
                            **({"ensemble": plan.members} if plan.members > 1 else {})}}
    sched: dict[str, Any] | None = None  # one rung: every trial trains the full budget
    if plan.min_fraction is not None:
        sched = {"name": "asha", "eta": ETA, "min_fraction": plan.min_fraction}
    elif plan.min_epochs is not None:
        sched = {"name": "asha", "eta": ETA, "min_epochs": plan.min_epochs}
    return {
        "name": name, "seed": seed, "data": {**plan.data, "val_fraction": plan.val_fraction},
        "space": {**space, **space_limits(plan.kind, plan.reference_timing.params, reference_flops, plan.max_params)},
        "strategy": {"name": "evolution", "options": {"population_size": plan.population,
                                                      "sample_size": max(2, plan.population // 4),
                                                      # not on tables: there the reference MLP sits at the
                                                      # FLOP cap and its few valid neighbours ran out (a
                                                      # 5-minute run failed on 2000 invalid mutants in a row)
                                                      **({"init": "mutants"} if plan.kind != FLAT else {})}},
        "search": {"trials": 100_000, "time_budget": f"{math.ceil(plan.search_seconds)}s",
                   "budget": {"epochs": plan.trial_epochs, "fraction": plan.trial_fraction},
                   **({"scheduler": sched} if sched is not None else {}), "db": db, "initial": initial,
                   "initial_budget": "full",
                   **({"folds": plan.folds} if plan.folds > 1 else {}),
                   **({"equal_time": plan.reference} if plan.equal_time else {}), **_metric_key(plan),
                   "trial_timeout": f"{math.ceil(plan.trial_timeout)}s"},
        "train": dict(train),
        "retrain": {"epochs": plan.final_epochs_reference, **dict(train), "baseline": plan.reference,
                    **({"ensemble": plan.members} if plan.members > 1 else {})},
        **({"executor": {"kind": "pool", "workers": plan.workers, "threads_per_worker": plan.threads_per_worker}}
           if plan.workers > 1 else {}),
    }


def check_workers_option(value: Any) -> int | None:
    """``--workers``: None (measured), or a whole number of at least 1, else a one-line ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--workers must be a whole number of at least 1 (1: one trial at a time), got {value!r}")
    return value


def layouts(threads: int, asked: int | None) -> list[tuple[int, int]]:
    """``(workers, threads each)`` a pool could use on ``threads`` threads: all of them in use, 2 to
    POOL_WORKERS_MAX workers (or the ``asked`` number)."""
    if asked is not None:
        return [(asked, max(1, threads // asked))] if asked > 1 else []
    out = []
    k = 1
    while threads // k >= 2:
        if threads // k <= POOL_WORKERS_MAX:
            out.append((threads // k, k))
        k *= 2
    return out


def worker_layout(model: torch.nn.Module, data: Dataset, recipe: Recipe, *, timing: Timing, window: float,
                  asked: int | None) -> tuple[int, int, Timing | None, str]:
    """How many trials to run at once: each layout of :func:`layouts` timed (the reference, on one worker's
    threads), and the one training the most steps a second kept where it beats one trial at a time on all
    threads by POOL_GAIN_MIN (or as ``asked``). ``(workers, threads each, that timing, why)``; 1 worker: inline."""
    threads = torch.get_num_threads()  # what one trial at a time trains on, restored after
    best: tuple[float, int, int, Timing] | None = None
    seen = []
    try:
        for w, k in layouts(threads, asked):
            torch.set_num_threads(k)
            t = time_steps(model, data, recipe, window=window)
            rate = w / t.seconds_per_step
            seen.append(f"{w} x {k} thread{'s' if k > 1 else ''} {rate:.1f}")
            if best is None or rate > best[0]:
                best = (rate, w, k, t)
    finally:
        torch.set_num_threads(threads)
    alone = 1 / timing.seconds_per_step
    if best is None:
        return 1, 0, None, ""
    rate, w, k, t = best
    gain = rate / alone
    measured = (f"the reference trains {alone:.1f} steps/s one trial at a time on {threads} threads, and "
                f"{'; '.join(seen)} steps/s in all as several at once (timed one worker's threads): {gain:.2f}x")
    if asked is None and gain < POOL_GAIN_MIN:
        return 1, 0, None, f"one trial at a time: {measured}, short of the {POOL_GAIN_MIN:g}x that pays for workers"
    return w, k, t, (f"{w} trials at once, {k} thread{'s' if k > 1 else ''} each (a process pool): {measured}"
                     + (" (--workers)" if asked is not None else ""))


def _metric_key(plan: Plan) -> dict[str, str]:
    """``search.metric`` where the plan ranks by other than accuracy (the default stays out of the YAML)."""
    return {"metric": plan.metric} if plan.metric != "accuracy" else {}


IMBALANCE = 3.0  # a largest class this many times the smallest: the plan's why-metric line says so


def metric_why(metric: str, y: Any, n_classes: int, tables: bool = False) -> str | None:
    """The plan's why-metric line: the metric asked for, or, where the classes are imbalanced and accuracy ranks,
    a hint that accuracy rewards predicting the large classes (None: balanced and accuracy, nothing to say).
    ``tables``: scikit-learn's references are fitted too, and so weighted alike."""
    counts = np.bincount(np.asarray(y, dtype=np.int64).ravel(), minlength=n_classes)
    counts = counts[counts > 0]
    ratio = float(counts.max() / counts.min()) if len(counts) else 1.0
    shape = (f"the largest class has {ratio:.1f}x the training examples of the smallest ({int(counts.max()):,} vs "
             f"{int(counts.min()):,})")
    if metric == "balanced_accuracy":
        return (f"balanced accuracy (the mean recall over classes), as --metric asked; {shape}; every network "
                "trains with its loss weighted per class (train.class_weight: n / (classes x count))"
                + (", and scikit-learn's references with class_weight=balanced" if tables else ""))
    if metric == "f1":
        return f"macro F1 (the mean F1 over classes), as --metric asked; {shape}"
    if ratio >= IMBALANCE:
        return (f"accuracy, the default, though {shape}: accuracy rewards predicting the large classes; "
                "--metric balanced_accuracy ranks by the mean recall over classes")
    return None


def to_yaml(cfg: Mapping[str, Any]) -> str:
    return yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False)


def check_max_params(value: Any) -> int | None:
    """``--max-params``: None, or a positive whole number of parameters (``100000``, ``1e5``, ``"100k"``)."""
    if value is None:
        return None
    text = str(value).strip()
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:].lower(), 1.0)
    try:
        n = float(text[:-1] if scale != 1.0 else text) * scale
    except ValueError:
        n = math.nan
    if isinstance(value, bool) or not (math.isfinite(n) and n >= 1 and n == int(n)):
        raise ConfigError(f"--max-params must be a whole number of parameters such as 100000 or 100k, got {value!r}")
    return int(n)


def check_budget(value: Any) -> float:
    seconds = parse_duration(value, "--time-budget")
    if seconds is None:
        raise ConfigError("auto needs --time-budget, e.g. 15m or 1h")
    return seconds


# weight decays the table space searches (AdamW's, decoupled: a step shrinks weights by lr x wd); the first
# is the table recipe's own, so the warm starts are the plain reference MLP and logistic regression
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
FINAL_SIDE = 4  # the stage space stops halving the resolution here: 4 is where ResNets end on 32 px (8) and 28 px (7)


def stage_options(input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The stage space's settings that follow from the input: as many stages as halvings keep >= 4 positions a
    side (a 128-step sequence needs 6 to see motifs far apart, an 8x8 image no more than ResNet-20's 3), and
    kernel 7 as well on sequences, where a wide kernel costs little."""
    side = min(input_shape[1:])
    stages = max(3, min(8, 1 + int(math.log2(max(side, 1) / FINAL_SIDE))))
    opts: dict[str, Any] = {"kind": "stage", "max_stages": stages}
    if len(input_shape) == 2:
        opts["kernels"] = [3, 5, 7]
    return opts


def warm_start(kind: str, input_shape: tuple[int, ...], limits: Mapping[str, int] | None = None,
               width: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The search space of a data kind and the hand-designed networks it starts from, as points of it.

    Images and sequences: ResNet-20 (2-D or 1-D) in a stage space as deep as the input allows, and where the
    input is longer than ResNet-20's receptive field (81 positions: sequences), also the network of its kind
    that covers it (:meth:`StageSpace.covering`), where it keeps within ``limits`` (:func:`space_limits`).
    A few trials of mutants of ResNet-20 never reach it: on generated 128-step sequences, trained 30 epochs
    alike, it scored 58.8% held out to ResNet-20's 51.4%, at the same time an epoch. Tables:
    the reference MLP and a linear model (the space's depth 0: logistic regression, or linear regression on a
    regression task), so the search begins
    from the classical baselines, in an MLP space that searches weight decay too.
    ``width``: the reference's narrowed base width (:func:`~nasforge.final.references.fit_reference`, under a
    size limit); the space then holds that network and widths scaled as it is, beside its own.
    """
    if kind == FLAT:
        from nasforge.space.mlp import MLP_WIDTHS, MlpSpace

        opts: dict[str, Any] = {"kind": "mlp", "weight_decays": list(WEIGHT_DECAYS)}
        if width is not None:
            opts["widths"] = sorted({*MLP_WIDTHS, width, max(4, width // 2 // 8 * 8)})
        mlp = MlpSpace(**{k: v for k, v in opts.items() if k != "kind"}).reference(width or MLP_WIDTH)
        return opts, [mlp, {**mlp, "depth": 0}]
    from nasforge.space import make_space
    from nasforge.space.stage import STAGE_STEMS, STAGE_WIDTHS, StageSpace

    opts = stage_options(input_shape)
    if width is not None:  # ResNet-20 narrowed to w: its widths, and the space's scaled by w / 16 in multiples of 8
        def scaled(values: tuple[int, ...]) -> set[int]:  # channels in 8s train fastest (_IN_EIGHTS)
            return {max(8, 8 * round(v * width / RESNET_WIDTH / 8)) for v in values}

        opts["widths"] = sorted({*STAGE_WIDTHS, *scaled(STAGE_WIDTHS), width, 2 * width, 4 * width})
        opts["stems"] = sorted({*STAGE_STEMS, *scaled(STAGE_STEMS), width})
    space = make_space({**opts, **(limits or {})}, input_shape)
    assert isinstance(space, StageSpace)
    deeper = space.covering(max(input_shape[1:]))
    if deeper is not None and space.check(deeper, input_shape) is not None:
        deeper = None
    return opts, [space.resnet20(width or RESNET_WIDTH), *([deeper] if deeper is not None else [])]


def covering_why(opts: Mapping[str, Any], initial: list[dict[str, Any]], input_shape: tuple[int, ...]) -> str:
    """The plan's line for a search that starts from ResNet-20 and the deeper network covering the input too."""
    from nasforge.space import make_space
    from nasforge.space.stage import StageSpace

    space = make_space(opts, input_shape)
    assert isinstance(space, StageSpace)
    ref, deeper = initial[0], initial[1]
    return (f"the search starts from the reference and from {space.describe(deeper)}: the reference sees "
            f"{space.receptive_field(ref)} positions of the input's {max(input_shape[1:])}, this network "
            f"{space.receptive_field(deeper)}; the first mutants are of whichever scores better")


Say = Callable[[str], None]


def run_auto(data: str, *, time_budget: Any, db: str | Path = "runs/auto.db", seed: int = 0, name: str | None = None,
             resume: bool = False, reference_only: bool = False, print_config: bool = False,
             reference: str = "auto", device: str | None = None, precision: str | None = None,
             label: str | int | None = None, layout: str | None = None, metric: str | None = None,
             workers: int | None = None, max_params: Any = None, say: Say = lambda line: None,
             progress: Callable[[Callable[[Any], str]], Callable[[Any], None]] | None = None,
             on_epoch: Callable[[str, int, Mapping[str, float]], None] | None = None) -> dict[str, Any]:
    """Plan, search, train the final network and the reference, test once, write the report; within ``time_budget``.

    Returns the result record (``nasforge status --json``'s shape) with ``time_budget_s``, ``seconds``
    per phase and the plan; with ``print_config`` only ``{"config": YAML}``, nothing run or stored.
    ``progress``, given the search space's ``describe``, returns the search's progress callback.
    ``device`` (``train.device``: auto, cpu, cuda, ...) is where everything trains, the timing that plans it included;
    ``precision`` (``train.precision``: auto, fp32, bf16, fp16) how. ``label``: a CSV's label column (a name,
    or an index such as -1), where it is not the one named as labels are (``label``, ``target``, ...) nor the last;
    ``layout`` (``data.layout``:
    image, sequence, tabular) how the features are read, where their shape does not say (a table of signals).
    ``metric`` (``search.metric``: accuracy, balanced_accuracy, f1) what a classification's search ranks by and the
    final comparison reads first (None: accuracy, or on ``resume`` what the stored plan has). ``workers``: trials the
    search runs at once on a CPU (None: measured, :func:`worker_layout`; 1: one at a time on all threads).
    ``max_params`` (``100000``, ``"100k"``): a size limit on the searched network; the reference is narrowed to fit
    it (``resnet20-w8``: :func:`~nasforge.final.references.fit_reference`) and measured under it alike.
    """
    from nasforge import api
    from nasforge.data import load_dataset
    from nasforge.loop import Deadline
    from nasforge.report.record import result_record
    from nasforge.space import make_space
    from nasforge.store import Store

    t0 = time.time()
    budget = check_budget(time_budget)
    sklearn_fits: list[SklearnFit] | None = None  # fitted before the plan (tables), else where they are scored
    if device is not None or precision is not None:  # what this machine lacks: before anything is timed or written
        where = resolve_device(device or "auto", "device")
        if precision is not None:
            resolve_precision(precision, where, "precision")
    overrides = {k: v for k, v in (("device", device), ("precision", precision)) if v is not None}
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"--seed must be a whole number of at least 0, got {seed!r}")
    if metric is not None:
        check_metric(metric, "--metric")
    workers = check_workers_option(workers)
    if resume and workers is not None:
        raise ConfigError("--resume continues the stored plan, its workers included; leave out --workers")
    max_params = check_max_params(max_params)
    if resume and max_params is not None:
        raise ConfigError("--resume continues the stored plan, its size limit included; leave out --max-params")
    raw = resolve_data(data)
    source = str(raw["data"].get("source"))
    if label is not None:
        if source != "csv":
            raise ConfigError(f"--label names a CSV's label column, and {data!r} is {source} data; remove --label")
        raw = {**raw, "data": {**raw["data"], "label_column": label}}
    if layout is not None:
        raw = {**raw, "data": {**raw["data"], "layout": layout}}
    name = check_name(name or raw.get("name") or ("reference" if reference_only else f"auto-{source}"))
    db = str(db)
    if resume:
        store, exp, cfg = api.stored(db, name)
        with store:
            plans = store.results(exp.id, "auto_plan")
        if not plans:
            raise StoreError(f"experiment {name!r} in {db} was not made by nasforge auto: resume it with "
                             "`nasforge search CONFIG --resume`")
        plan = Plan.from_json(plans[-1]["plan"])
        if metric is not None and metric != plan.metric:
            raise ConfigError(f"experiment {name!r} in {db} ranks by {plan.metric}; --resume continues its plan, so "
                              f"leave out --metric {metric} (or start a new run with another --name)")
        raw_cfg: dict[str, Any] = dict((with_overrides(cfg, **overrides) if overrides else cfg).raw)
        say(f"resuming the plan of {name!r} in {db}")
    else:
        if Path(db).exists():
            with Store(db, readonly=True) as st:
                if st.experiment(name) is not None:
                    raise StoreError(f"experiment {name!r} already exists in {db}: add --resume to continue it, "
                                     "or give another --db or --name")
        d = dict(raw["data"])

        def load() -> Dataset:
            return load_dataset(d["source"], d.get("path"), seed=seed, layout=d.get("layout", "auto"),
                                label_column=d.get("label_column"), limit=d.get("limit"),
                                val_fraction=float(d.get("val_fraction", 0.1)), task=d.get("task", "auto"),
                                test_fraction=d.get("test_fraction"))

        loaded = load()
        held_out = not loaded.has_test
        if held_out:  # a single CSV, an .npz without x_test: the run still ends with a test, on rows it never saw
            d["test_fraction"] = TEST_FRACTION
            loaded = load()
            if not loaded.has_test:  # refused now, not after the whole budget was spent (as an (N, 1) y once was)
                raise NasforgeError(f"{data}: no test split could be held out of these data; give test data "
                                    "(x_test/y_test in the .npz, test.csv beside train.csv)")
        folds = 1
        if "val_fraction" not in d:
            vf, folds, _ = validation_for(len(loaded.x_train) + len(loaded.x_val))
            d["val_fraction"] = vf
            if vf != 0.1:
                loaded = load()
        raw = {**raw, "data": d}
        if loaded.regression and metric not in (None, "accuracy"):
            raise ConfigError(f"--metric {metric} ranks classifiers, and {data} is a regression (its target is a "
                              "number; it is ranked by RMSE): leave out --metric")
        kind = data_kind(loaded.input_shape)
        ref = resolve_baseline(reference, loaded.input_shape) or default_reference(loaded.input_shape)
        if max_params is not None:
            ref = fit_reference(ref, loaded.input_shape, loaded.n_classes, max_params)
        narrowed = split_reference(ref)[1]  # the base width a size limit narrowed the reference to, or None
        # balanced accuracy counts every class alike: the loss does too (and scikit-learn's references, alike)
        recipe_kw = recipe_for(kind) | ({"class_weight": True} if metric == "balanced_accuracy" else {}) | overrides
        recipe = Recipe(**recipe_kw)
        trains_on = resolve_device(recipe.device)
        on_cpu = trains_on.type == "cpu"
        if workers is not None and workers > 1 and not on_cpu:  # before anything is timed
            raise ConfigError(f"--workers {workers} runs trials at once on the CPU's threads, and this run trains on "
                              f"{trains_on}: leave out --workers")
        _, ref_model = make_reference(ref, loaded.input_shape, loaded.n_classes)
        flops = count_flops(ref_model, loaded.input_shape)
        if kind == FLAT and not reference_only and not print_config:
            # fitted now, scored with the searched network at the end: their time (seconds on a small table, 42 s
            # on 6,000 rows of 784 pixels, where fitting them at the end overran a 3-minute budget by 19%) is
            # then measured before the plan divides what is left
            say("fitting scikit-learn's references on the training data ...")
            sklearn_fits = fit_sklearn(loaded, seed=seed, seconds=SKLEARN_SHARE * budget,
                                       class_weight=recipe.class_weight)
        say(f"timing {ref} on this machine ...")
        timing = time_steps(ref_model, loaded, recipe, window=probe_window(budget))
        space, initial = warm_start(kind, tuple(loaded.input_shape),
                                    space_limits(kind, timing.params, flops, max_params), narrowed)
        plan_kw: dict[str, Any] = {"raw": raw, "data": loaded, "time_budget": budget, "reference": ref,
                                   "timing": timing, "recipe": recipe, "reference_flops": flops,
                                   "reference_only": reference_only, "folds": folds, "warm_starts": len(initial),
                                   "average": max_params is None}
        plan = make_plan(spent=time.time() - t0, **plan_kw)
        if (not plan.reference_only and on_cpu and workers != 1
                and (workers is not None or plan.search_seconds >= POOL_SEARCH_MIN)):
            say("timing trials at once on this machine ...")
            w, k, wt, why_workers = worker_layout(ref_model, loaded, recipe, timing=timing,
                                                  window=probe_window(budget), asked=workers)
            if w > 1:  # planned again: the probe took time, and the search's pace is the pool's
                pooled = make_plan(spent=time.time() - t0, workers=w, worker_timing=wt, threads_per_worker=k,
                                   **plan_kw)
                # a trial on one worker's threads is slower: where none then fits, one at a time still searches
                plan = pooled if not pooled.reference_only else make_plan(spent=time.time() - t0, **plan_kw)
                if plan.workers == 1:
                    why_workers = ("one trial at a time: on one worker's threads no trial long enough to rank "
                                   f"networks fits the search ({why_workers.split(': ', 1)[1]})")
            if why_workers and not plan.reference_only:
                plan = replace(plan, why={**plan.why, "workers": why_workers})
        if max_params is not None:
            plan = replace(plan, max_params=max_params, why={**plan.why, "size": (
                f"at most {max_params:,} parameters (--max-params): "
                + (f"the reference narrowed to {ref} ({timing.params:,}), the same depth and shape at a lower "
                   "width, so both networks are measured within the limit" if narrowed is not None
                   else f"the reference {ref} ({timing.params:,}) fits as it is")
                + ("" if plan.reference_only else "; candidates above the limit are rejected before training")
                + "; each final network is one training, not an average, which would multiply its parameters")})
        if not loaded.regression:
            plan = replace(plan, metric=metric or "accuracy")
            said = metric_why(plan.metric, loaded.y_train, loaded.n_classes, tables=kind == FLAT and not reference_only)
            if said is not None:
                plan = replace(plan, why={**plan.why, "metric": said})
        if len(initial) > 1 and kind != FLAT and not plan.reference_only:  # no search: no warm start to explain
            plan = replace(plan, why={**plan.why, "warm start": covering_why(space, initial, loaded.input_shape)})
        if loaded.notes:
            plan = replace(plan, why={**plan.why, "data": "; ".join(loaded.notes)})
        if sklearn_fits:
            plan = replace(plan, why={**plan.why, "others": (
                f"{' and '.join(f.name.replace('_', ' ') for f in sklearn_fits)} fitted on the training data in "
                f"{_fmt_s(sum(f.seconds for f in sklearn_fits))} (at most {SKLEARN_SHARE:.0%} of the budget), "
                "before this plan, so the time left is what it divides; they are scored on the test split with the "
                "searched network"
                + "".join(f"; {f.name.replace('_', ' ')} stopped at {f.cut}" for f in sklearn_fits if f.cut))})
        if held_out:
            plan = replace(plan, why={**plan.why, "test": (
                f"the data has no test split, so {TEST_FRACTION:.0%} of it ({loaded.test_examples:,} examples"
                f"{'' if loaded.regression else ', stratified'}) is held out as one, the same whatever --seed; "
                "give a test file (test.csv beside train.csv, x_test in the .npz) to choose it")})
        raw_cfg = search_config(plan, name=name, seed=seed, db=db, initial=initial, space=space,
                                train=recipe_kw, reference_flops=flops)
        for line in plan.lines():  # with --print-config too: the plan (on stderr) says why the YAML is as it is
            say(line)
        if print_config:
            return {"config": to_yaml(raw_cfg)}
    cfg = api.as_config(raw_cfg)
    phases: dict[str, float] = {}
    if not plan.reference_only:
        t1 = time.time()
        with Store(db) as store:
            exp = store.experiment(name) or store.create_experiment(name, cfg.to_json(), cfg.fingerprint())
            if not store.results(exp.id, "auto_plan"):
                store.add_result(exp.id, "auto_plan", {"plan": plan.to_json(), "time_budget": budget})
            left = plan.search_seconds - exp.elapsed
        deadline = Deadline(time.time() + max(0.0, left), lambda b: plan.trial_seconds(b.epochs, b.fraction))
        if left > 0:
            on_progress = progress(make_space(cfg.space).describe) if progress is not None else None
            api.run_config(cfg, resume=True, on_progress=on_progress, deadline=deadline)
        phases["search"] = time.time() - t1
    t2 = time.time()
    left = budget - (t2 - t0) - reserve_for(budget)  # what the search left: the final fits in it
    final: dict[str, Any] = {"with_reference": False, "why": (  # the reference alone: no search in this run
        "no search fitted: the reference trained for the whole budget" if plan.why.get("search", "").startswith("none:")
        else "--reference-only: the reference trained for the whole budget")}
    if plan.reference_only:
        reference_alone(db, name, plan, cfg, seconds=left, say=say, on_epoch=on_epoch, sklearn_fits=sklearn_fits)
    else:
        # the final gets all the search left, so time the search did not use is not lost (two networks sharing it
        # still stop at the epochs converging takes)
        final = final_training(db, name, plan, cfg, shared=left / 2, alone=left, say=say, on_epoch=on_epoch,
                               sklearn_fits=sklearn_fits)
    phases["final"] = time.time() - t2
    t3 = time.time()
    page = api.report(db, name=name)
    phases["report"] = time.time() - t3
    with Store(db, readonly=True) as store:
        stored = store.experiment(name)
        assert stored is not None
        trials = store.trials(stored.id)
        retrains = store.results(stored.id, "retrain")
    record = result_record(stored, trials, retrains[-1] if retrains else None, data=source,
                           describe=make_space(cfg.space).describe)
    record.update({"time_budget_s": budget, "report": str(page), "db": db,
                   "plan": json.loads(json.dumps(plan.to_json())),  # as stored: lists, not tuples
                   "final": final})
    record["seconds"].update({k: round(v, 1) for k, v in phases.items()}, total=round(time.time() - t0, 1))
    return record


def _epoch_printer(say: Say, plans: Mapping[str, tuple[int, float]],
                   on_epoch: Callable[[str, int, Mapping[str, float]], None] | None
                   ) -> Callable[[str, int, Mapping[str, float]], None]:
    """Epoch lines with the final phase's ETA: this model's measured pace, then the planned time of those after it.

    ``plans`` maps each model, in training order, to (epochs, planned seconds); a member of an average reports as
    ``searched[2/5]``, and the members after it count at their share of the model's planned seconds.
    """
    order = list(plans)
    last = [time.time()]  # the previous epoch's end: a model's first epoch starts there
    began: dict[str, float] = {}

    def report(name: str, epoch: int, row: Mapping[str, float]) -> None:
        now = time.time()
        start = began.setdefault(name, last[0])
        last[0] = now
        # the schedule the training follows, where a time limit shortened or lengthened the planned one
        model, _, part = name.partition("[")  # "searched[2/5]": the second of five members
        j, k = (int(v) for v in part.rstrip("]").split("/")) if part else (1, 1)
        total = math.ceil(row["schedule_epochs"]) if "schedule_epochs" in row else plans.get(model, (epoch, 0.0))[0]
        later = ((k - j) * plans[model][1] / k + sum(plans[n][1] for n in order[order.index(model) + 1:])
                 if model in plans else 0.0)
        eta = (now - start) / max(epoch, 1) * max(total - epoch, 0) + later
        if epoch % max(1, total // 10) == 0 or epoch == total:  # about ten lines a network
            say(f"  {name} epoch {epoch}/{total}: train loss {row['train_loss']:.4f}  (final phase ETA {_fmt_s(eta)})")
        if on_epoch is not None:
            on_epoch(name, epoch, row)

    return report


def final_training(db: str, name: str, plan: Plan, cfg: Any, *, shared: float, alone: float, say: Say,
                   on_epoch: Callable[[str, int, Mapping[str, float]], None] | None,
                   sklearn_fits: list[SklearnFit] | None = None) -> dict[str, Any]:
    """Train the best searched network and, where the plan has it, the reference, ``shared`` seconds each; or the
    searched network alone for ``alone`` seconds. Epochs come from a timing of each network.

    Where the search kept the reference itself (its warm start: nothing it tried scored higher), the two would be
    one architecture trained twice, and their difference noise (2.1 points on the 10-minute sequences, 4 test
    examples of 359 on digits): it trains once, alone, for all the time, and the reference is its own arm.
    Returns ``{"with_reference": ..., "why": ...}`` for the record.
    """
    from nasforge import api
    from nasforge.space import make_space
    from nasforge.store import Store
    from nasforge.study import best_trial

    with Store(db, readonly=True) as store:
        exp = store.experiment(name)
        assert exp is not None
        best = best_trial(store.trials(exp.id))
    if best is None:
        raise NasforgeError(f"the search of {name!r} finished no trial in its share of the budget; give a larger "
                            "--time-budget (the plan printed above says how long one trial takes)")
    data = api.load_data(cfg)
    space = make_space(cfg.space, data.input_shape)
    with_reference = plan.with_reference
    why = "the plan trains the reference in this run" if with_reference else (
        "the plan gave the searched network the whole final share")
    if with_reference and cfg.search.initial and space.key(best.sample) == space.key(cfg.search.initial[0]):
        with_reference = False
        why = (f"the search kept the reference itself (trial {best.number}): trained once, alone, for the whole "
               "final share")
        say(f"the search's best is the reference itself (trial {best.number}); it trains once, alone, for all "
            f"{_fmt_s(alone)} (two trainings of one network would differ only by noise)")
    seconds = shared if with_reference else alone
    recipe = cfg.retrain.recipe
    n = len(data.x_train) + len(data.x_val)
    timing = time_steps(space.build(best.sample, data.input_shape, data.n_classes), data, recipe,
                        window=probe_window(seconds))
    epoch_s = timing.epoch_seconds(n, recipe.batch_size) * SAFETY
    ref_epoch_s = plan.reference_timing.epoch_seconds(n, recipe.batch_size) * SAFETY
    steps_per_epoch = math.ceil(n / min(recipe.batch_size, n))
    # the plan's cap, where the two networks share the final time: each fills its half up to the cap (a timing
    # that read slow left 26 s of 3 minutes unused on digits). A network training alone fills all the time the
    # search left, as the reference's own arm (--reference-only) fills its budget: the search is over, so time
    # a cap leaves would go unused (a searched network faster than the reference met the cap early)
    cap = converge_epochs(steps_per_epoch)
    # the plan's averaging, where this network's measured pace still fits it: each member converged, in its share
    members = min(plan.members, ensemble_members(seconds, cap * max(epoch_s, ref_epoch_s if with_reference else 0)))
    share = seconds / members
    epochs: dict[str, float] = {"searched": max(1, min(cap, int(share / epoch_s))) if with_reference or members > 1
                                else fractional_epochs(share / epoch_s)}
    plans = {"searched": (math.ceil(epochs["searched"]), epochs["searched"] * epoch_s * members)}
    if with_reference:
        epochs["baseline"] = max(1, min(cap, int(share / ref_epoch_s)))
        plans["baseline"] = (math.ceil(epochs["baseline"]), epochs["baseline"] * ref_epoch_s * members)
    averaged = f" each, the average of {members} trainings" if members > 1 else ""
    say(f"final training: trial {best.number} ({space.describe(best.sample)}) {epochs['searched']:g} epochs at "
        f"{_fmt_s(epoch_s)} an epoch (measured)"
        + (f", the reference {plan.reference} {epochs['baseline']} epochs" if with_reference else ", alone")
        + f"{averaged}; ~{_fmt_s(seconds)}{' each' if with_reference else ''}; the test split is read once, at the end")
    api.retrain(db, name=name, trial=best.number, baseline=plan.reference if with_reference else False,
                on_epoch=_epoch_printer(say, plans, on_epoch), epochs=float(epochs["searched"]), model_epochs=epochs,
                time_limit=seconds, fill_time=True, fill_cap=cap if with_reference or members > 1 else None,
                scikit_learn=True, sklearn_fits=sklearn_fits, members=members)
    return {"with_reference": with_reference, "why": why, **({"members": members} if members > 1 else {})}


def reference_alone(db: str, name: str, plan: Plan, cfg: Any, *, seconds: float, say: Say,
                    on_epoch: Callable[[str, int, Mapping[str, float]], None] | None,
                    sklearn_fits: list[SklearnFit] | None = None) -> None:
    """``--reference-only``, or no search fitted: the reference trained for the whole budget with the same recipe,
    tested once, stored. ``sklearn_fits`` (fitted before the plan where no search fitted a table) are scored on
    that one read of the test split, as beside a searched network."""
    from nasforge import api
    from nasforge.evaluate.cost import measure_cost
    from nasforge.evaluate.trainer import evaluate_split
    from nasforge.final.ensemble import MEMBER_SEED, train_members
    from nasforge.final.models import FinalModel, Fitted, final_to_json, summarize
    from nasforge.final.retrain import RETRAIN_FILES, data_record, fit_final, save_final
    from nasforge.paths import owned_dir
    from nasforge.store import Store

    # where the network goes, as a retrain's (export, compress and predict read it): made before training, so a
    # folder that cannot be used fails now, not after the budget
    folder = owned_dir(api.models_dir(db, cfg, name, None), RETRAIN_FILES)
    data = api.load_data(cfg)
    recipe = cfg.retrain.recipe
    n = len(data.x_train) + len(data.x_val)
    epoch_s = plan.reference_timing.epoch_seconds(n, recipe.batch_size) * SAFETY
    members = plan.members
    epochs = fractional_epochs(seconds / members / epoch_s)
    desc = make_reference(plan.reference, data.input_shape, data.n_classes)[0]
    averaged = f", the average of {members} trainings with different seeds" if members > 1 else ""
    say(f"training the reference {desc} alone{averaged}: {epochs:g} epochs{' each' if members > 1 else ''} at "
        f"{_fmt_s(epoch_s)} an epoch")
    printer = _epoch_printer(say, {"baseline": (math.ceil(epochs), epochs * epoch_s * members)}, on_epoch)

    def fit(model: torch.nn.Module, j: int) -> Fitted:
        who = "baseline" if members == 1 else f"baseline[{j + 1}/{members}]"
        return fit_final(model, data, epochs=epochs, recipe=recipe, seed=cfg.seed + MEMBER_SEED * j,
                         on_epoch=functools.partial(printer, who), time_limit=seconds / members, fill_time=True)

    # member 0 is the single reference of this seed (final.ensemble's seeds)
    model, fitted = train_members(lambda: make_reference(plan.reference, data.input_shape, data.n_classes)[1],
                                  members, init_seed=cfg.seed, regression=data.regression, fit=fit)
    x_test, y_test = data.open_test()
    test = evaluate_split(model, x_test, y_test, data.n_classes, channels_last=recipe.channels_last,
                          target=data.target)
    others = others_record(score_sklearn(sklearn_fits, data, x_test, y_test)) if sklearn_fits else {}
    cost = measure_cost(model, data.input_shape)
    weights = save_final(folder, "baseline", model, {
        "name": "baseline", "description": desc, "trial": None, **({"members": members} if members > 1 else {}),
        "sample": None, "seed": cfg.seed, "input_shape": list(data.input_shape), "classes": list(data.classes),
        "test": test, "reference": plan.reference})
    m = FinalModel("baseline", desc, test, cost.params, cost.flops, cost.latency_ms, fitted.seconds, weights,
                   cfg.seed, reference=plan.reference, curve=fitted.curve, latency_device=cost.latency_device,
                   members=members)
    with Store(db) as store:
        exp = store.experiment(name) or store.create_experiment(name, cfg.to_json(), cfg.fingerprint())
        if not store.results(exp.id, "auto_plan"):
            store.add_result(exp.id, "auto_plan", {"plan": plan.to_json(), "time_budget": plan.time_budget})
        store.add_result(exp.id, "retrain", {
            "trial": None, "epochs": epochs, "models": [final_to_json(m)], "seeds": [cfg.seed],
            "summary": summarize([m]), "others": others, **data_record(data)})


__all__ = ["Plan", "Timing", "check_budget", "make_plan", "recipe_for", "resolve_data", "run_auto", "search_config",
           "time_steps", "to_yaml", "validation_for"]
