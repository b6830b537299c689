"""Configuration: a YAML file (or a dict) mapped onto typed sections, checked strictly.

Unknown keys, wrong types and impossible values are reported in one line that names the key and
the fix; nothing downstream sees an unchecked value. Inside the library, keyword arguments rule:
each section maps onto the keyword arguments of one constructor.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from nasforge.errors import ConfigError, NasforgeError
from nasforge.evaluate.recipe import DEVICES, PRECISIONS, WHERE, Recipe, check_device, check_interim, check_precision
from nasforge.execute import EXECUTORS
from nasforge.execute.base import default_workers
from nasforge.final import check_members
from nasforge.final.references import AUTO, REFERENCES, check_baseline, is_reference
from nasforge.pareto import check_objectives
from nasforge.paths import check_name
from nasforge.schedule.schedulers import Scheduler, make_scheduler
from nasforge.schedule.stopping import StoppingRule, make_stopping
from nasforge.space import SPACES
from nasforge.types import Budget, check_metric, check_task

log = logging.getLogger("nasforge")
# 1h30m, 1.5h, 90s; the words too (2 hours, 30 mins, 45 sec), as people write them in a shell
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h(?:(?:ou)?rs?)?)?\s*(?:(\d+(?:\.\d+)?)\s*m(?:in(?:ute)?s?)?)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*s(?:ec(?:ond)?s?)?)?\s*$", re.IGNORECASE)
_CLOCK = re.compile(r"^\s*(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)\s*$")  # hh:mm:ss, as `timeout` and SLURM write it


def parse_duration(value: Any, what: str = "time_budget") -> float | None:
    """Seconds from 90, "90s", "20m", "1h30m", "2 hours", "01:30:00"; None stays None (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a duration such as 20m, 1h or 90s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value)) or _CLOCK.match(str(value))
        if not m or not any(m.groups()):
            raise ConfigError(f"{what} {value!r} is not a duration: write it like 20m, 1h30m or 90s")
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = 3600 * h + 60 * mi + s
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{what} must be a positive duration, got {value!r}")
    return seconds


@dataclass(frozen=True)
class DataConfig:
    source: str = "fashion_mnist"
    path: str | None = None
    val_fraction: float = 0.1
    layout: str = "auto"
    label_column: str | int | None = None
    limit: int | None = None
    task: str = "auto"  # classification | regression; auto: regression where the labels are numbers, not classes
    # where the source has no test split: this share held out as one (stratified, the same whatever the seed)
    test_fraction: float | None = None




@dataclass(frozen=True)
class StrategyConfig:
    name: str = "evolution"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchConfig:
    trials: int = 100
    time_budget: float | None = None
    epochs: float = 2.0
    fraction: float = 1.0
    db: str = "runs/nasforge.db"
    measure_latency: bool = True
    scheduler: Mapping[str, Any] | None = None  # {name: asha, eta: 3, min_epochs: 1}; None: full budget for all
    stopping: Mapping[str, Any] | None = None  # {rule: median, warmup_epochs: 1}; None: no early stopping
    objectives: tuple[str, ...] = ("accuracy",)  # more than one: a multi-objective search (Pareto front)
    max_latency_ms: float | None = None  # measured per image, checked before training
    screen: Mapping[str, Any] | None = None  # {proxy: synflow, sample: 30, keep: 0.1}; None: no screening
    max_retries: int = 0  # reruns of a trial whose worker died or went silent, before it is FAILED
    trial_timeout: float | None = None  # seconds; a trial running longer fails
    max_memory_mb: float | None = None  # estimated training memory above this: rejected before training
    initial: tuple[Mapping[str, Any], ...] = ()  # networks tried first (warm start), then the strategy's own
    interim_validation: int | str = "auto"  # what epochs before a budget's last are scored on
    initial_budget: str = "lowest"  # search.initial networks start on the lowest rung, or get the full budget
    folds: int = 1  # more than one: trials scored by stratified cross-validation over train+validation (small data)
    equal_time: str | None = None  # a reference name: budgets are in its training time, each network its own epochs
    metric: str = "accuracy"  # what a classification ranks by: accuracy, balanced_accuracy or f1 (macro)

    @property
    def interim(self) -> int | str:
        """``interim_validation`` resolved: ``auto`` is the whole split when a stopping rule reads the
        curves, else a 1,000-example subset (the curves stay drawn at a sixth of the cost)."""
        if self.interim_validation != "auto":
            return self.interim_validation
        return "full" if self.stopping else AUTO_INTERIM_EXAMPLES

    @property
    def budget(self) -> Budget:
        return Budget(epochs=self.epochs, fraction=self.fraction)

    def make_scheduler(self) -> Scheduler:
        opts = dict(self.scheduler or {"name": "fifo"})
        sched = make_scheduler(str(opts.pop("name", "fifo")), self.budget, **opts)
        sched.objectives = self.objectives
        return sched

    def make_stopping(self) -> StoppingRule | None:
        if not self.stopping:
            return None
        opts = dict(self.stopping)
        if self.metric != "accuracy":  # a rule compares networks by what the search ranks them by, unless told
            opts.setdefault("metric", f"val_{self.metric}")
        return make_stopping(str(opts.pop("rule", "median")), **opts)


@dataclass(frozen=True)
class RetrainConfig:
    epochs: float = 10.0
    recipe: Recipe = field(default_factory=lambda: Recipe(optimizer="sgd", schedule="onecycle", augment=True))
    baseline: bool | str = True  # true: classic; false: none; auto or a name in final.references.REFERENCES
    out: str | None = None
    ensemble: int = 1  # trainings averaged into each final network (final.ensemble); 1: a single network


@dataclass(frozen=True)
class ExecutorConfig:
    """Where trials run: ``inline`` (default), a local process ``pool``, or ``ray``; never part of the fingerprint."""

    kind: str = "inline"
    workers: int | None = None  # None: 1 inline; pool and ray: one per GPU where trials train on GPUs, else
    # cores / threads_per_worker
    threads_per_worker: int | None = None  # None: torch's default inline; 1 for pool and ray
    address: str | None = None  # ray: auto, ray://head:10001 or host:port joins a cluster; None starts one
    heartbeat_timeout: float = 60.0  # a running trial not heard from for this long has lost its worker
    gpus_per_worker: float | None = None  # None: 1 where trials train on CUDA GPUs, else 0; below 1 GPUs are shared

    def options(self, gpus: int = 0) -> dict[str, Any]:
        """Keyword arguments of the executor's constructor, where trials see ``gpus`` CUDA GPUs (0: they train on
        the CPU, and the options are what they were before GPUs were)."""
        if self.kind == "inline":
            return {}
        share = self.gpus_per_worker if self.gpus_per_worker is not None else (1.0 if gpus else 0.0)
        threads = self.threads_per_worker or 1
        workers = self.workers or default_workers(os.cpu_count() or 1, threads, gpus, share)
        opts: dict[str, Any] = {"workers": workers, "threads_per_worker": threads,
                                "stale_after": self.heartbeat_timeout}
        if share:  # only then: a CPU search's options stay exactly as they were
            opts["gpus_per_worker"] = share
            if self.kind == "pool":
                opts["gpus"] = gpus
        if self.kind == "ray":
            opts["address"] = self.address
        return opts


EXECUTOR_KINDS = tuple(EXECUTORS)  # the registry's names


@dataclass(frozen=True)
class Config:
    name: str = "nasforge"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    space: Mapping[str, Any] = field(default_factory=lambda: {"kind": "chain"})
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: Recipe = field(default_factory=Recipe)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def fingerprint(self) -> str:
        """What must match to resume: the data, the space and the search-time training."""
        parts = {k: self.raw.get(k) for k in ("data", "space", "train")}
        train = parts["train"]
        if isinstance(train, Mapping) and any(k in WHERE for k in train):  # where it trains is not what: a search
            kept = {k: v for k, v in train.items() if k not in WHERE}  # resumes on another device
            parts["train"] = kept or None  # a train section of device/precision alone: as if there were none
        parts["budget"] = {"epochs": self.search.epochs, "fraction": self.search.fraction}
        parts["seed"] = self.seed
        for k in ("scheduler", "stopping"):  # only when set, so older experiments keep their fingerprint
            if getattr(self.search, k):
                parts[k] = dict(getattr(self.search, k))
        if len(self.search.objectives) > 1:
            parts["objectives"] = list(self.search.objectives)
        if self.search.max_latency_ms is not None:
            parts["max_latency_ms"] = self.search.max_latency_ms
        if self.search.max_memory_mb is not None:  # it decides which candidates are trained
            parts["max_memory_mb"] = self.search.max_memory_mb
        if self.search.screen:
            parts["screen"] = dict(self.search.screen)
        if self.search.initial:
            parts["initial"] = [dict(x) for x in self.search.initial]
        if self.search.initial_budget != "lowest":
            parts["initial_budget"] = self.search.initial_budget
        if self.search.folds > 1:  # it changes every score
            parts["folds"] = self.search.folds
        if self.search.equal_time is not None:  # so does this
            parts["equal_time"] = self.search.equal_time
        if self.search.metric != "accuracy":  # and this
            parts["metric"] = self.search.metric
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.raw))


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; configs mean a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

TOP_KEYS = ("name", "seed", "data", "space", "strategy", "search", "train", "retrain", "executor")
EXECUTOR_KEYS = tuple(f.name for f in fields(ExecutorConfig))
RECIPE_KEYS = tuple(f.name for f in fields(Recipe))
SEARCH_KEYS = ("trials", "time_budget", "budget", "db", "measure_latency", "scheduler", "stopping", "objectives",
               "max_latency_ms", "screen", "max_retries", "trial_timeout",
               "max_memory_mb", "initial", "interim_validation", "folds", "initial_budget", "equal_time", "metric")
AUTO_INTERIM_EXAMPLES = 1000
RETRAIN_KEYS = ("epochs", "baseline", "out", "ensemble", *RECIPE_KEYS)
SPACE_KINDS = tuple(SPACES)


def _unknown(keys: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in keys:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(allowed)}"
            raise ConfigError(f"unknown key {k!r} in {where}: {hint}")


def _finite(value: Any, where: str) -> None:
    """Refuse NaN and infinity anywhere in a config (YAML's .nan, .inf): no setting means "unlimited" by them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where or 'the config'} must be a finite number, got {value!r}; leave a limit out "
                          "for none")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _finite(v, f"{where}[{i}]")


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    sec = raw.get(name)
    if sec is None:
        return {}
    if not isinstance(sec, Mapping):
        raise ConfigError(f"section {name!r} must be a mapping of keys to values, got {type(sec).__name__}")
    return dict(sec)


def _ensemble(value: Any) -> int:
    """``retrain.ensemble``: a whole number of trainings to average (1: a single network)."""
    try:
        return check_members(value, "retrain.ensemble")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _typed(value: Any, kind: type | tuple[type, ...], where: str, *, positive: bool = False) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{where} must be {names}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if positive and not value > 0:  # type: ignore[operator]
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return value


def _recipe(d: Mapping[str, Any], where: str, base: Recipe) -> Recipe:
    kw: dict[str, Any] = {}
    for k, v in d.items():
        if k in ("optimizer", "schedule"):
            kw[k] = _typed(v, str, f"{where}.{k}")
        elif k in ("augment", "channels_last", "class_weight"):
            kw[k] = _typed(v, bool, f"{where}.{k}")
        elif k == "flip":  # unset (or auto): as the data source declares
            if v is not None and v != "auto" and not isinstance(v, bool):
                raise ConfigError(f"{where}.flip must be true, false or auto (as the data source declares), "
                                  f"got {v!r}")
            kw[k] = None if v == "auto" else v
        elif k == "device":
            try:
                kw[k] = check_device(v)
            except ValueError:
                raise ConfigError(f"{where}.device must be {DEVICES}, got {v!r}") from None
        elif k == "precision":
            try:
                kw[k] = check_precision(v)
            except ValueError:
                raise ConfigError(f"{where}.precision must be {', '.join(PRECISIONS)} (auto: bf16 on a GPU that has "
                                  f"it, else fp32), got {v!r}") from None
        elif k == "batch_size":
            kw[k] = _typed(v, int, f"{where}.{k}", positive=True)
        elif k == "lr":
            kw[k] = None if v is None else _typed(v, float, f"{where}.{k}", positive=True)
        else:
            num: float = _typed(v, float, f"{where}.{k}")
            kw[k] = num
            if num < 0:
                raise ConfigError(f"{where}.{k} must not be negative, got {v!r}")
    try:
        merged = {f.name: getattr(base, f.name) for f in fields(Recipe)} | kw
        return Recipe(**merged)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def _initial(v: Any) -> tuple[Mapping[str, Any], ...]:
    """The warm-start list's shape; each entry is checked against the space when the search starts.

    An entry ``{from: DB, name: EXP, top: N}`` (or that mapping alone) stands for an earlier experiment's
    best networks (:mod:`nasforge.transfer`); its database must exist now."""
    from nasforge.transfer import check_from

    if v is None:
        return ()
    if isinstance(v, Mapping) and "from" in v:
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, Mapping) for x in v):
        raise ConfigError("search.initial must be a list of networks, e.g. "
                          "[{blocks: [{type: conv, width: 32}, {type: pool}]}], or {from: runs/other.db, top: 5}")
    for i, x in enumerate(v):
        if "from" in x:
            check_from(x, f"search.initial[{i}]")
    return tuple(copy.deepcopy(dict(x)) for x in v)


def _screen(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = {"proxy": v}
    if not isinstance(v, Mapping):
        raise ConfigError(f"search.screen must be a mapping such as {{proxy: synflow, sample: 30, keep: 0.1}}, "
                          f"got {v!r}")
    from nasforge.screen.screener import check_screen  # imports torch: only a config that screens pays for it

    return check_screen(v)


def _objectives(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(o, str) for o in v):
        raise ConfigError(f"search.objectives must be a list such as [accuracy, params], got {v!r}")
    return check_objectives(v)


def _options(se: Mapping[str, Any], key: str, name_key: str, example: str) -> dict[str, Any] | None:
    v = se.get(key)
    if v is None:
        return None
    if isinstance(v, str):
        v = {name_key: v}
    if not isinstance(v, Mapping) or not isinstance(v.get(name_key), str):
        raise ConfigError(f"search.{key} must be a mapping with a {name_key!r}, such as {example}")
    return dict(v)


def _count(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"{where} must be a whole number of at least 0, got {v!r}")
    return v


def _executor(ex: Mapping[str, Any]) -> ExecutorConfig:
    _unknown(ex, EXECUTOR_KEYS, "executor")
    kind = ex.get("kind", "inline")
    if kind not in EXECUTOR_KINDS:
        raise ConfigError(f"unknown executor kind {kind!r}: choose one of {', '.join(EXECUTOR_KINDS)}")
    threads = ex.get("threads_per_worker")
    if threads is not None:
        threads = _typed(threads, int, "executor.threads_per_worker", positive=True)
    workers = ex.get("workers", 1 if kind == "inline" else None)  # None: one per GPU, else by cores (options())
    if workers is not None:
        workers = _typed(workers, int, "executor.workers", positive=True)
    if kind == "inline" and workers != 1:
        raise ConfigError(f"executor kind inline runs one trial at a time, not workers: {workers}; "
                          "set executor.kind: pool (or ray) for more")
    address = ex.get("address")
    if address is not None:
        if kind != "ray":
            raise ConfigError(f"executor.address applies to kind ray only, not {kind}; remove it or set kind: ray")
        address = _typed(address, str, "executor.address")
        if not address.strip():
            raise ConfigError("executor.address must be auto, ray://host:port or host:port, got an empty string")
    timeout = parse_duration(ex.get("heartbeat_timeout"), "executor.heartbeat_timeout") or 60.0
    gpus = ex.get("gpus_per_worker")
    if gpus is not None:
        if kind == "inline":
            raise ConfigError("executor.gpus_per_worker applies to kinds pool and ray (inline trains on train.device); "
                              "remove it or set kind: pool")
        gpus = _typed(gpus, float, "executor.gpus_per_worker")
        if gpus < 0 or (gpus > 1 and not gpus.is_integer()):
            raise ConfigError(f"executor.gpus_per_worker must be 0, a share below 1 (workers share a GPU) or a whole "
                              f"number of GPUs, got {gpus!r}")
    return ExecutorConfig(kind=kind, workers=workers, threads_per_worker=threads, address=address,
                          heartbeat_timeout=timeout, gpus_per_worker=gpus)


def from_dict(raw: Mapping[str, Any]) -> Config:
    """Check a configuration mapping and build the typed Config."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    _unknown(raw, TOP_KEYS, "the config")
    _finite(raw, "")
    try:
        name = check_name(raw.get("name", "nasforge"))
    except NasforgeError as e:
        raise ConfigError(str(e)) from None
    seed = _count(raw.get("seed", 0), "seed")

    d = _section(raw, "data")
    _unknown(d, tuple(f.name for f in fields(DataConfig)), "data")
    vf = _typed(d.get("val_fraction", 0.1), float, "data.val_fraction")
    if not 0 < vf < 1:
        raise ConfigError(f"data.val_fraction must be between 0 and 1, got {vf}: use e.g. 0.1")
    limit = d.get("limit")
    if limit is not None:
        limit = _typed(limit, int, "data.limit", positive=True)
    tf = d.get("test_fraction")
    if tf is not None:
        tf = _typed(tf, float, "data.test_fraction")
        if not 0 < tf < 1:
            raise ConfigError(f"data.test_fraction must be between 0 and 1, got {tf}: use e.g. 0.2")
    data = DataConfig(source=_typed(d.get("source", "fashion_mnist"), str, "data.source"),
                      path=None if d.get("path") is None else str(d["path"]), val_fraction=vf,
                      layout=_typed(d.get("layout", "auto"), str, "data.layout"),
                      label_column=d.get("label_column"), limit=limit,
                      task=check_task(d.get("task", "auto"), "data.task", ConfigError), test_fraction=tf)

    sp = _section(raw, "space")
    kind = sp.get("kind", "chain")
    if kind not in SPACE_KINDS:
        raise ConfigError(f"unknown space kind {kind!r}: choose one of {', '.join(SPACE_KINDS)}")
    sp["kind"] = kind

    st = _section(raw, "strategy")
    _unknown(st, ("name", "options"), "strategy")
    opts = st.get("options") or {}
    if not isinstance(opts, Mapping):
        raise ConfigError("strategy.options must be a mapping such as {population_size: 20}")
    strategy = StrategyConfig(name=_typed(st.get("name", "evolution"), str, "strategy.name"), options=dict(opts))

    se = _section(raw, "search")
    _unknown(se, SEARCH_KEYS, "search")
    bud = se.get("budget") or {}
    if not isinstance(bud, Mapping):
        raise ConfigError("search.budget must be a mapping such as {epochs: 2, fraction: 0.2}")
    _unknown(bud, ("epochs", "fraction"), "search.budget")
    epochs = _typed(bud.get("epochs", 2.0), float, "search.budget.epochs", positive=True)
    fraction = _typed(bud.get("fraction", 1.0), float, "search.budget.fraction", positive=True)
    if fraction > 1:
        raise ConfigError(f"search.budget.fraction must be at most 1 (the share of training data), got {fraction}")
    search = SearchConfig(
        trials=_typed(se.get("trials", 100), int, "search.trials", positive=True),
        time_budget=parse_duration(se.get("time_budget"), "search.time_budget"),
        epochs=epochs, fraction=fraction, db=str(se.get("db", "runs/nasforge.db")),
        measure_latency=_typed(se.get("measure_latency", True), bool, "search.measure_latency"),
        scheduler=_options(se, "scheduler", "name", "{name: asha, eta: 3, min_epochs: 1}"),
        stopping=_options(se, "stopping", "rule", "{rule: median, warmup_epochs: 1}"),
        objectives=_objectives(se.get("objectives", ["accuracy"])),
        max_latency_ms=None if se.get("max_latency_ms") is None else _typed(
            se["max_latency_ms"], float, "search.max_latency_ms", positive=True),
        screen=_screen(se.get("screen")),
        max_retries=_count(se.get("max_retries", 0), "search.max_retries"),
        trial_timeout=parse_duration(se.get("trial_timeout"), "search.trial_timeout"),
        max_memory_mb=None if se.get("max_memory_mb") is None else _typed(
            se["max_memory_mb"], float, "search.max_memory_mb", positive=True),
        initial=_initial(se.get("initial")),
        interim_validation=_interim(se.get("interim_validation", "auto"), bool(se.get("stopping"))),
        folds=_folds(se.get("folds", 1)),
        initial_budget=_initial_budget(se.get("initial_budget", "lowest")),
        equal_time=_equal_time(se.get("equal_time")),
        metric=check_metric(se.get("metric", "accuracy")),
    )
    scheduler = search.make_scheduler()  # a bad name or option fails here, before anything runs
    search.make_stopping()
    if search.equal_time is not None and (search.stopping or scheduler.schedule_epochs is not None):
        raise ConfigError("search.equal_time gives each network its own number of epochs, which a stopping rule "
                          "(it compares networks epoch by epoch) and lr_cycle: full (whole-epoch rungs) cannot "
                          "follow: drop one of them")

    tr = _section(raw, "train")
    _unknown(tr, RECIPE_KEYS, "train")
    train = _recipe(tr, "train", Recipe())

    rt = _section(raw, "retrain")
    _unknown(rt, RETRAIN_KEYS, "retrain")
    # train's device and precision, and its class weighting (a property of the data's classes, not of the recipe)
    base = dataclasses.replace(RetrainConfig().recipe, device=train.device, precision=train.precision,
                               class_weight=train.class_weight)
    rrecipe = _recipe({k: v for k, v in rt.items() if k in RECIPE_KEYS}, "retrain", base)
    retrain = RetrainConfig(
        epochs=_typed(rt.get("epochs", 10.0), float, "retrain.epochs", positive=True), recipe=rrecipe,
        baseline=check_baseline(rt.get("baseline", True)),
        out=None if rt.get("out") is None else str(rt["out"]),
        ensemble=_ensemble(rt.get("ensemble", 1)),
    )
    return Config(name=name, seed=seed, data=data, space=sp, strategy=strategy, search=search, train=train,
                  executor=_executor(_section(raw, "executor")),
                  retrain=retrain, raw=copy.deepcopy(dict(raw)))


def _initial_budget(value: Any) -> str:
    if value not in ("lowest", "full"):
        raise ConfigError(f"search.initial_budget must be lowest (a warm start starts on the lowest rung, as any "
                          f"trial) or full (it trains for the full budget at once), got {value!r}")
    return str(value)


def _equal_time(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not (is_reference(value) or value == AUTO):
        raise ConfigError(f"search.equal_time must be {AUTO} (the data kind's reference) or a reference name "
                          f"({', '.join(REFERENCES)}): budgets are then in its measured training time; got {value!r}")
    return value


def _folds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        raise ConfigError(f"search.folds must be a whole number from 1 (one validation split) to 20, got {value!r}; "
                          "5 is usual for small data")
    return value


def _interim(value: Any, stopping: bool) -> int | str:
    if isinstance(value, str) and value == "auto":
        return value
    try:
        how = check_interim(value)
    except ValueError:
        raise ConfigError(f"search.interim_validation must be auto, full, none or a positive number of examples, "
                          f"got {value!r}") from None
    if how == "none" and stopping:
        raise ConfigError("search.stopping reads the learning curve after every epoch, but "
                          "search.interim_validation is none: set it to full, auto or a number of examples")
    return how


def load_config(path: str | Path) -> Config:
    """Read and check a YAML config file (safe loader: no Python objects from YAML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found: check the path (examples/ has ready-made configs)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {p} ({type(e).__name__}); give a readable UTF-8 YAML file") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader that reads 1e-4 as a number
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "malformed YAML"
        raise ConfigError(f"config {p} is not valid YAML{where} ({problem}); fix the syntax there") from None
    if raw is None:
        raise ConfigError(f"config {p} is empty; see examples/fashion_mnist.yaml for a complete one")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config {p} must be a mapping of sections (data:, space:, ...), not a {type(raw).__name__}")
    return from_dict(raw)


def with_overrides(cfg: Config, **over: Any) -> Config:
    """The config with CLI overrides applied (None means "not given"), re-checked as a whole."""
    raw = copy.deepcopy(dict(cfg.raw))
    if over.get("strategy") is not None:
        raw.setdefault("strategy", {})
        if raw["strategy"] is None or not isinstance(raw["strategy"], Mapping):
            raw["strategy"] = {}
        if raw["strategy"].get("name") != over["strategy"]:
            raw["strategy"] = {"name": over["strategy"], **_carried_options(raw["strategy"], over["strategy"])}
    search = dict(raw.get("search") or {})
    for k in ("trials", "time_budget", "db"):
        if over.get(k) is not None:
            search[k] = over[k]
    raw["search"] = search
    if over.get("seed") is not None:
        raw["seed"] = over["seed"]
    if over.get("name") is not None:
        raw["name"] = over["name"]
    for key in ("device", "precision"):  # --device, --precision: search and retrain alike (retrain inherits
        if over.get(key) is None:           # train's unless it sets its own)
            continue
        for sec in ("train", "retrain"):
            cur = raw.get(sec)
            if (cur is None and sec == "train") or (isinstance(cur, Mapping) and (sec == "train" or key in cur)):
                raw[sec] = {**(cur or {}), key: over[key]}
    return from_dict(raw)


def _carried_options(section: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The config's strategy options that the strategy named on the command line also takes; says which it drops."""
    import inspect

    from nasforge.strategy import STRATEGIES

    opts = section.get("options")
    if not isinstance(opts, Mapping) or not opts or name not in STRATEGIES:
        return {}
    takes = set(inspect.signature(STRATEGIES[name]).parameters) - {"space", "seed"}
    kept = {k: v for k, v in opts.items() if k in takes}
    dropped = [str(k) for k in opts if k not in takes]
    if dropped:
        log.warning("--strategy %s: strategy.options %s of %s do not apply to %s and are left out", name,
                    ", ".join(dropped), section.get("name"), name)
    return {"options": kept} if kept else {}


BUDGET_KEYS = ("trials", "time_budget", "epochs", "fraction")


def from_keywords(base: Mapping[str, Any] | None = None, *, space: Mapping[str, Any] | str | None = None,
                  data: Mapping[str, Any] | str | None = None, strategy: Mapping[str, Any] | str | None = None,
                  budget: Mapping[str, Any] | int | str | None = None, objectives: Any = None,
                  scheduler: Mapping[str, Any] | str | None = None, train: Mapping[str, Any] | None = None,
                  db: str | Path | None = None, name: str | None = None, seed: int | None = None) -> Config:
    """A Config from the Python API's keyword arguments, laid over ``base`` (a raw config mapping).

    ``space="cell"`` means ``{"kind": "cell"}``; ``data="digits"`` means ``{"source": "digits"}``;
    ``strategy`` is a name or ``{"name": ..., **options}`` (or ``{"name": ..., "options": {...}}``);
    ``budget`` is ``{"trials", "time_budget", "epochs", "fraction"}``, an int (trials) or a
    duration string such as ``"5m"``. Everything is checked as a YAML config would be.
    """
    raw = copy.deepcopy(dict(base or {}))
    if space is not None:
        raw["space"] = {"kind": space} if isinstance(space, str) else dict(space)
    if data is not None:
        raw["data"] = {"source": data} if isinstance(data, str) else dict(data)
    if strategy is not None:
        if isinstance(strategy, str):
            raw["strategy"] = {"name": strategy}
        elif isinstance(strategy, Mapping):
            st = dict(strategy)
            opts = st.pop("options", None) or {}
            if not isinstance(opts, Mapping):
                raise ConfigError("strategy options must be a mapping such as {population_size: 20}")
            opts = {**opts, **{k: v for k, v in st.items() if k != "name"}}
            raw["strategy"] = {"name": st.get("name", "evolution"), **({"options": opts} if opts else {})}
        else:
            raise ConfigError(f"strategy must be a name such as 'evolution' or a mapping, got {strategy!r}")
    search = dict(raw.get("search") or {})
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, Mapping | int | str):
            raise ConfigError(f"budget must be a mapping such as {{'trials': 20, 'epochs': 2}}, a number of trials "
                              f"or a duration such as '5m', got {budget!r}")
        bud = {"trials": budget} if isinstance(budget, int) else {"time_budget": budget} if isinstance(
            budget, str) else dict(budget)
        _unknown(bud, BUDGET_KEYS, "budget")
        for k in ("trials", "time_budget"):
            if k in bud:
                search[k] = bud[k]
        train_budget = {k: bud[k] for k in ("epochs", "fraction") if k in bud}
        if train_budget:
            search["budget"] = {**dict(search.get("budget") or {}), **train_budget}
    for k, v in (("objectives", objectives), ("scheduler", scheduler), ("db", db)):
        if v is not None:
            search[k] = str(v) if k == "db" else v
    if search:
        raw["search"] = search
    if train is not None:
        raw["train"] = dict(train)
    if name is not None:
        raw["name"] = name
    if seed is not None:
        raw["seed"] = seed
    return from_dict(raw)
