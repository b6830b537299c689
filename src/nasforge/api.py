"""The Python API: the same pipeline the CLI runs, one function per command.

``search(config)`` wires config -> data -> space -> strategy -> evaluator -> store -> loop;
``retrain(db)`` trains the best architecture and the baseline and scores them on test once;
``report(db)`` writes the HTML report. ``search`` also takes keyword arguments and returns a Result.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from nasforge.config import Config, from_dict, from_keywords, load_config
from nasforge.data import Dataset, Preprocess, load_dataset, read_new
from nasforge.errors import ConfigError, DataError, NasforgeError, StoreError
from nasforge.evaluate.device import gpu_count, resolve_device, resolve_precision
from nasforge.evaluate.memory import memory_limit
from nasforge.evaluate.recipe import PRECISIONS
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.execute import make_executor
from nasforge.execute.factories import TorchEvaluatorFactory
from nasforge.final import check_members
from nasforge.final.models import FinalModel, final_to_json, summarize
from nasforge.final.references import (
    REFERENCES,
    SklearnFit,
    check_baseline,
    fit_reference,
    make_reference,
    others_record,
    resolve_baseline,
    score_sklearn,
    sklearn_references,
    split_reference,
)
from nasforge.final.retrain import RETRAIN_FILES, data_record, retrain_best
from nasforge.fmt import fmt_budget
from nasforge.loop import Deadline, Progress, SearchOutcome, best_trial, preflight, run_search
from nasforge.oneshot.darts import NAME as DARTS
from nasforge.oneshot.darts import DartsProgress, darts_options, run_darts_search
from nasforge.paths import check_name, inside, is_owned, owned_dir
from nasforge.result import Result
from nasforge.screen.screener import ProxyScreener, latency_limit
from nasforge.space import SPACES, CellSpace, SearchSpace, make_space
from nasforge.store import Experiment, Store
from nasforge.stored import stored
from nasforge.strategy import STRATEGIES, make_strategy
from nasforge.strategy.warm import WarmStart, initial_samples
from nasforge.transfer import earlier_best, prior_trials
from nasforge.types import Sample, Trial

log = logging.getLogger("nasforge")


def as_config(config: Config | Mapping[str, Any] | str | Path) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, str | Path):
        return load_config(config)
    return from_dict(config)


def load_data(cfg: Config, inputs: str | Path | None = None) -> Dataset:
    """The config's data; ``inputs``: new examples in the test split's place (:func:`predict`)."""
    d = cfg.data
    return load_dataset(d.source, d.path, val_fraction=d.val_fraction, seed=cfg.seed, layout=d.layout,
                        label_column=d.label_column, limit=d.limit, task=d.task, test_fraction=d.test_fraction,
                        inputs=inputs)


def open_experiment(cfg: Config, store: Store, *, resume: bool) -> Experiment:
    """The experiment to run: a new one, or (with resume) the stored one if its config matches."""
    exp = store.experiment(cfg.name)
    if not resume:
        return store.create_experiment(cfg.name, cfg.to_json(), cfg.fingerprint())
    if exp is None:
        held = store.experiment_names()
        what = f"it holds {', '.join(map(repr, held))}" if held else "it is empty"
        raise StoreError(f"{store.path} has no experiment {cfg.name!r} to resume ({what}); "
                         "drop --resume to start it, or give the matching config or --db")
    if exp.fingerprint != cfg.fingerprint():
        raise StoreError(f"experiment {cfg.name!r} in {store.path} was run with different data, space, training or "
                         "budget settings; resume it with its original config, or give a new --db or name")
    return exp


def search(config: Config | Mapping[str, Any] | str | Path | None = None, *,
           space: Mapping[str, Any] | str | None = None, data: Mapping[str, Any] | str | None = None,
           strategy: Mapping[str, Any] | str | None = None, budget: Mapping[str, Any] | int | str | None = None,
           objectives: Any = None, scheduler: Mapping[str, Any] | str | None = None,
           train: Mapping[str, Any] | None = None, db: str | Path | None = None, name: str | None = None,
           seed: int | None = None, resume: bool = False,
           on_progress: Callable[[Progress | DartsProgress], None] | None = None) -> Result:
    """Run (or resume) a search; every trial is stored in the config's database as it finishes.

    Give a config (a YAML path, a mapping or a Config), keyword arguments, or both (the keywords
    override the config's sections)::

        nasforge.search(data="digits", space={"kind": "chain", "max_blocks": 4}, strategy="evolution",
                        budget={"trials": 8, "epochs": 2}, db="runs/digits.db")

    ``budget`` takes ``trials``, ``time_budget`` (``"5m"``), ``epochs`` and ``fraction`` (per trial).
    Returns a :class:`~nasforge.result.Result`: ``.best``, ``.pareto``, ``.trials`` (a DataFrame), ``.report()``.
    """
    keywords = {"space": space, "data": data, "strategy": strategy, "budget": budget, "objectives": objectives,
                "scheduler": scheduler, "train": train, "db": db, "name": name, "seed": seed}
    given = {k: v for k, v in keywords.items() if v is not None}
    if config is None and not given:
        raise ConfigError("search needs a config (a YAML path or mapping) or keyword arguments such as "
                          "data='digits', budget={'trials': 8}")
    if given:
        cfg = from_keywords(as_config(config).raw if config is not None else None, **given)
    else:
        assert config is not None
        cfg = as_config(config)
    return Result.from_outcome(run_config(cfg, resume=resume, on_progress=on_progress), cfg)


def reference_builder(name: str | None, data: Dataset) -> Callable[[], torch.nn.Module] | None:
    """``search.equal_time``'s yardstick: a picklable builder of the named reference for this data (None: off);
    each evaluator times it in its own process, as it times the candidates."""
    ref = resolve_baseline(name, data.input_shape)
    return None if ref is None else functools.partial(reference_model, ref, data.input_shape, data.n_classes)


def reference_model(name: str, input_shape: tuple[int, ...], n_out: int) -> torch.nn.Module:
    return make_reference(name, input_shape, n_out)[1]


def run_config(cfg: Config, *, resume: bool = False,
               on_progress: Callable[[Progress | DartsProgress], None] | None = None,
               deadline: Deadline | None = None) -> SearchOutcome:
    """Run (or resume) the search a checked config describes; returns the loop's outcome.

    ``deadline`` (``nasforge auto``'s) ends the search by a wall-clock time, trials in flight included.
    """
    device = resolve_device(cfg.train.device)  # a device or precision this machine lacks: before anything is written
    resolve_precision(cfg.train.precision, device)
    if cfg.strategy.name == DARTS:
        return search_darts(cfg, resume=resume, on_progress=on_progress)
    data = load_data(cfg).search_view()
    space = make_space(cfg.space, data.input_shape)
    options = dict(cfg.strategy.options)
    if getattr(STRATEGIES.get(cfg.strategy.name), "multi_objective", False):
        options.setdefault("objectives", list(cfg.search.objectives))
    if "prior" in options:  # earlier experiments' trials, read here: strategies never open a database
        if "prior" not in inspect.signature(STRATEGIES.get(cfg.strategy.name, object)).parameters:
            raise ConfigError(f"strategy.options.prior: {cfg.strategy.name} takes no prior (bananas and tpe do)")
        options["prior"] = prior_trials(options["prior"], space, data.input_shape, data.n_classes,
                                        exclude=(str(cfg.search.db), cfg.name))
    strategy = make_strategy(cfg.strategy.name, space, seed=cfg.seed, **options)
    preflight(space, data.input_shape, data.n_classes)
    scheduler = cfg.search.make_scheduler()  # one object: the loop's rungs and the evaluator's schedule agree
    if cfg.search.initial:
        strategy = WarmStart(strategy, initial_networks(cfg.search.initial, space, data.input_shape, data.n_classes),
                             budget=scheduler.ladder[-1] if cfg.search.initial_budget == "full" else None)
    for rung in scheduler.ladder:
        check_trains(rung.epochs, rung.fraction, len(data.x_train), cfg.train.batch_size,
                     "search.budget" if len(scheduler.ladder) == 1 else f"the scheduler's rung {fmt_budget(rung)}")
    factory = TorchEvaluatorFactory(data, space, cfg.train, cfg.seed, cfg.search.measure_latency,
                                    scheduler.schedule_epochs, cfg.search.interim, cfg.search.folds,
                                    reference_builder(cfg.search.equal_time, data),
                                    int8_latency="latency_int8" in cfg.search.objectives, metric=cfg.search.metric)
    screener = ProxyScreener(space, data, seed=cfg.seed, **cfg.search.screen) if cfg.search.screen else None
    extra_check = candidate_checks(cfg, space, data)
    with Store(cfg.search.db) as store:
        exp = open_experiment(cfg, store, resume=resume)
        if cfg.executor.kind == "inline" and cfg.executor.threads_per_worker is not None:
            torch.set_num_threads(cfg.executor.threads_per_worker)
        gpus = gpu_count() if device.type == "cuda" and cfg.train.device in ("auto", "cuda") else 0  # cuda:N: one GPU
        executor = make_executor(cfg.executor.kind, factory, **cfg.executor.options(gpus))  # workers start here
        try:
            return run_search(store=store, experiment=exp, space=space, strategy=strategy, executor=executor,
                              input_shape=data.input_shape, n_out=data.n_classes, budget=cfg.search.budget,
                              max_trials=cfg.search.trials, time_budget=cfg.search.time_budget,
                              on_progress=on_progress, scheduler=scheduler,
                              stopping=cfg.search.make_stopping(),
                              checkpoint_dir=checkpoint_dir(cfg.search.db, exp.name), screener=screener,
                              extra_check=extra_check, max_retries=cfg.search.max_retries,
                              trial_timeout=cfg.search.trial_timeout, deadline=deadline)
        finally:
            executor.shutdown()


def initial_networks(specs: Sequence[Mapping[str, Any]], space: SearchSpace, input_shape: tuple[int, ...],
                     n_out: int) -> list[Sample]:
    """``search.initial`` as samples: networks as given, and each ``{from: DB}`` entry's earlier best, in order."""
    out: list[Sample] = []
    for i, spec in enumerate(specs):
        if "from" in spec:
            out += earlier_best(spec, space, input_shape, n_out, where=f"search.initial[{i}]")
        else:
            out += initial_samples([spec], space, input_shape, n_out)
    return out


def candidate_checks(cfg: Config, space: SearchSpace, data: Dataset) -> Callable[[Sample], str | None] | None:
    """The config's checks before training beyond the space's own: estimated memory, then measured latency."""
    checks: list[Callable[[Sample], str | None]] = []
    if cfg.search.max_memory_mb is not None:
        checks.append(memory_limit(space, data.input_shape, data.n_classes, cfg.search.max_memory_mb,
                                   batch_size=cfg.train.batch_size, optimizer=cfg.train.optimizer))
    if cfg.search.max_latency_ms is not None:
        checks.append(latency_limit(space, data.input_shape, data.n_classes, cfg.search.max_latency_ms,
                                    device=resolve_device(cfg.train.device)))
    if not checks:
        return None

    def check(s: Sample) -> str | None:
        return next((r for c in checks if (r := c(s)) is not None), None)

    return check


def search_darts(cfg: Config, *, resume: bool = False,
                 on_progress: Callable[[Progress | DartsProgress], None] | None = None) -> SearchOutcome:
    """DARTS trains a supernet instead of asking a strategy; the cell it derives is then one regular trial."""
    options = darts_options(cfg.strategy.options)
    cells = [k for k, c in SPACES.items() if issubclass(c, CellSpace)]
    if cfg.space.get("kind") not in cells:
        raise ConfigError(f"strategy darts searches cell spaces, not space kind {cfg.space.get('kind')!r}: "
                          f"set space.kind to {' or '.join(cells)}")
    data = load_data(cfg).search_view()
    if data.regression:
        raise ConfigError("strategy darts trains a classification supernet; for a regression task use another "
                          f"strategy ({', '.join(sorted(STRATEGIES))})")
    space = make_space(cfg.space, data.input_shape)
    assert isinstance(space, CellSpace)
    check_trains(cfg.search.epochs, cfg.search.fraction, len(data.x_train), cfg.train.batch_size, "search.budget")
    evaluator = TorchEvaluator(data, space, recipe=cfg.train, seed=cfg.seed,
                               measure_latency=cfg.search.measure_latency, interim_validation=cfg.search.interim)
    with Store(cfg.search.db) as store:
        exp = open_experiment(cfg, store, resume=resume)
        with store.lease(exp.id):  # the supernet phase writes too: one driver at a time, as for any search
            return run_darts_search(store=store, experiment=exp, space=space, data=data, evaluator=evaluator,
                                    budget=cfg.search.budget, options=options, seed=cfg.seed,
                                    time_budget=cfg.search.time_budget, on_progress=on_progress)


def checkpoint_dir(db: str | Path, name: str) -> Path:
    """Where a search keeps the checkpoints of trials a scheduler may still promote: beside its database."""
    p = Path(db)
    root = p.parent / f"{p.stem}-checkpoints"
    return inside(root / check_name(name), root, "checkpoint")


def positive_number(value: Any, what: str, example: str) -> float:
    """A finite number above 0 (``--epochs``, ``epochs:``), else a one-line error naming an example."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise NasforgeError(f"{what} must be a finite number above 0, got {value!r}: use e.g. {example}")
    return float(value)


def check_whole(value: Any, what: str, *, minimum: int) -> None:
    """None, or a whole number of at least ``minimum`` (trial numbers, parameter limits)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise NasforgeError(f"{what} must be a whole number of at least {minimum}, got {value!r}")


def check_trains(epochs: float, fraction: float, n_train: int, batch_size: int, what: str) -> None:
    """Refuse a budget that trains on fewer examples than one batch (or on none): its score would mean nothing."""
    subset = round(n_train * fraction)  # the size of the stratified subset a fraction trains on
    seen = subset * epochs
    need = min(batch_size, n_train)
    if subset < 1 or seen < need:
        raise NasforgeError(f"{what} trains on {seen:.3g} examples ({epochs:g} epochs of {fraction:g} of "
                            f"{n_train} examples), fewer than one batch of {need}: raise its epochs or fraction")


def models_dir(db: str | Path, cfg: Config, name: str, out_dir: str | Path | None) -> Path:
    """Where a retrain writes: ``--out``, else the config's ``retrain.out``, else ``<db stem>-models``, plus the name.

    The stored ``retrain.out`` comes from the database, which may be someone else's: it is used only
    if it lies inside the database's folder or the current one; ``--out`` says anywhere else.
    """
    check_name(name)
    if out_dir is not None:
        root = Path(out_dir)
    elif cfg.retrain.out is not None:
        root = Path(cfg.retrain.out)
        near = [Path(db).parent.resolve(), Path.cwd().resolve()]
        if not any(root.resolve() == b or root.resolve().is_relative_to(b) for b in near):
            raise NasforgeError(f"the stored retrain.out {str(root)!r} lies outside the database's folder and the "
                                "current one; give --out to write the weights there (or elsewhere)")
    else:
        root = Path(db).parent / f"{Path(db).stem}-models"
    return inside(root / name, root, "retrain output")


def choose_trial(trials: list[Trial], *, trial: int | None = None, max_params: int | None = None) -> Trial | None:
    """The trial to retrain: a given number, the best under a parameter limit, or the best."""
    if trial is not None:
        match = [t for t in trials if t.number == trial]
        if not match or not match[0].ok:
            raise NasforgeError(f"trial {trial} is not a completed trial of this experiment; "
                                "pick one from `nasforge status`")
        cost = match[0].cost
        if max_params is not None and cost is None:
            raise NasforgeError(f"trial {trial} has no measured size to hold to --max-params; leave out --trial for "
                                f"the best trial under the limit, or --max-params to retrain trial {trial}")
        if max_params is not None and cost is not None and cost.params > max_params:
            raise NasforgeError(f"trial {trial} has {cost.params:,} parameters, over the limit of {max_params:,} "
                                "(--max-params); pick a trial under it, or leave out --trial for the best one under it")
        return match[0]
    if max_params is not None:
        small = [t for t in trials if t.cost is not None and t.cost.params <= max_params]
        if not small and any(t.ok for t in trials):
            raise NasforgeError(f"no completed trial has at most {max_params} parameters; raise --max-params")
        return best_trial(small)
    return best_trial(trials)


def retrain(db: str | Path, *, name: str | None = None, epochs: float | None = None, seed: int | None = None,
            baseline: bool | str | None = None, out_dir: str | Path | None = None, trial: int | None = None,
            max_params: int | None = None,
            on_epoch: Callable[[str, int, Mapping[str, float]], None] | None = None,
            seeds: int = 1, model_epochs: Mapping[str, float] | None = None,
            time_limit: float | None = None, device: str | None = None,
            precision: str | None = None, fill_time: bool = False, fill_cap: float | None = None,
            scikit_learn: bool | None = None, sklearn_fits: list[SklearnFit] | None = None,
            members: int | None = None) -> list[FinalModel]:
    """Train the best stored architecture (and the baseline) on train+val; score on test once each.

    ``model_epochs`` ({"searched": E1, "baseline": E2}) overrides ``epochs`` per model, and
    ``time_limit`` (seconds) holds each model's training to that time (its schedule shortened if needed;
    with ``fill_time`` also lengthened early on, where the pace says it would end well short of it, to at most
    ``fill_cap`` epochs where given).

    ``trial`` picks a stored trial by number instead (e.g. a member of the Pareto front), and
    ``max_params`` the best trial with at most that many parameters; a reference with a width (resnet20, resnet1d,
    mlp) is then narrowed to fit the limit too (``resnet20-w8``), as ``auto --max-params`` does. The limit holds for
    the network delivered: with ``members`` N, each of the N trainings averaged gets a limit N times lower.
    ``seeds=N`` trains each model N times (seeds ``seed .. seed+N-1``) and reads the test split once per seed,
    after that seed's training; the stored result holds every seed and the mean and standard deviation. An interrupted
    retrain continues from its last epoch checkpoint when run again with the same settings. A retrain
    holds the experiment's lease as a search does: a second retrain or search of it meanwhile is refused.
    ``baseline`` overrides ``retrain.baseline``: ``True`` the classic 2-conv network, ``False`` none,
    ``"auto"`` the data kind's strong reference (resnet20, resnet1d, mlp) or a name in
    :data:`~nasforge.final.references.REFERENCES`. On flat data with a baseline, scikit-learn's
    logistic regression and gradient boosting (regression: ridge regression and gradient boosting) are
    scored on the same read of the test split and stored under ``"others"`` (``scikit_learn``: True scores them
    without a baseline too, as ``auto`` does where the searched network trains alone; False never).
    ``members`` overrides ``retrain.ensemble``: each model the average of that many trainings, each its own seed
    (:mod:`nasforge.final.ensemble`).
    ``sklearn_fits``: those references fitted already (:func:`~nasforge.final.references.fit_sklearn`, as ``auto``
    fits them before planning, so their time is planned): scored, not fitted again.
    ``device`` (``cpu``, ``cuda``, ...) overrides the stored config's: a search run on one machine retrains on another;
    ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) likewise.
    Returns one FinalModel per model and seed, seed by seed (``[searched, baseline]`` for one seed).
    """
    if device is not None:
        resolve_device(device, "device")  # a device this machine lacks: before anything is opened
    if precision is not None and precision not in PRECISIONS:  # the device it needs is checked with the config's
        raise ConfigError(f"precision must be {', '.join(PRECISIONS)}, got {precision!r}")
    if baseline is not None:
        check_baseline(baseline, "baseline")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise NasforgeError(f"seeds must be a positive whole number, got {seeds!r}: use e.g. --seeds 3")
    if epochs is not None:
        epochs = positive_number(epochs, "epochs", "--epochs 10")
    model_epochs = {k: positive_number(v, f"epochs of {k}", "10") for k, v in (model_epochs or {}).items()}
    check_whole(trial, "trial", minimum=0)
    check_whole(seed, "seed", minimum=0)
    check_whole(max_params, "max_params", minimum=1)
    if members is not None:
        try:
            check_members(members, "members (--ensemble)")
        except ValueError as e:
            raise NasforgeError(str(e)) from None
    store, exp, cfg = stored(db, name, readonly=False)
    n_members = cfg.retrain.ensemble if members is None else members
    # the size limit holds for the network delivered: an average of N trainings has N times one's parameters
    limit = None if max_params is None else max_params // n_members
    each = "" if limit is None or n_members == 1 else (
        f" (the limit holds for the average of {n_members} trainings, retrain.ensemble / --ensemble: {limit:,} "
        "parameters each; --ensemble 1 trains one network)")
    with store:
        # every check before anything is written (the lease included), trained or tested
        if limit == 0:
            raise NasforgeError(f"--max-params {max_params} leaves no parameter for each of the {n_members} "
                                "trainings averaged (retrain.ensemble / --ensemble): raise it, or give --ensemble 1")
        try:
            best = choose_trial(store.trials(exp.id), trial=trial, max_params=limit)
        except NasforgeError as e:
            raise NasforgeError(f"{e}{each}") from None
        if best is None:
            raise NasforgeError(f"experiment {exp.name!r} in {db} has no completed trial yet; "
                                "run or resume the search first")
        n_epochs = epochs if epochs is not None else cfg.retrain.epochs
        recipe = dataclasses.replace(cfg.retrain.recipe, device=device or cfg.retrain.recipe.device,
                                     precision=precision or cfg.retrain.recipe.precision)
        resolve_precision(recipe.precision, resolve_device(recipe.device, "retrain.device"), "retrain.precision")
        out = models_dir(db, cfg, exp.name, out_dir)
        data = load_data(cfg)
        if not data.has_test:
            raise DataError(f"{data.name} has no test split, and retrain scores on one (once, at the end): give "
                            "test data (a test.csv beside train.csv, x_test/y_test in the .npz), then retrain")
        x_all, _ = data.train_plus_val()
        check_trains(n_epochs, 1.0, len(x_all), recipe.batch_size, "the retrain (--epochs)")
        space = make_space(cfg.space, data.input_shape)
        wanted = cfg.retrain.baseline if baseline is None else baseline
        reference = resolve_baseline(wanted, data.input_shape)  # a reference for other data fails here
        if limit is not None and reference is not None and REFERENCES[split_reference(reference)[0]].width:
            # the searched network is held to the limit, so the reference is too, narrowed as auto --max-params
            # narrows it (the classic network has no width to narrow: it trains as it is)
            try:
                narrowed = fit_reference(reference, data.input_shape, data.n_classes, limit)
            except ConfigError as e:  # retrain, unlike auto, can leave the reference out
                raise ConfigError(f"{e}, or retrain with --no-baseline{each}") from None
            if narrowed != reference:
                log.info("the reference %s is narrowed to %s to fit --max-params %d%s", reference, narrowed,
                         max_params, each)
                wanted = reference = narrowed
        first = cfg.seed if seed is None else seed
        others: dict[str, dict[str, Any]] | None = None  # the scikit-learn references, once scored
        with_sklearn = reference is not None if scikit_learn is None else scikit_learn

        def on_test(s: int, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
            # the first read of this retrain serves the scikit-learn references too: no second look at test
            nonlocal others
            if with_sklearn and others is None:
                others = others_record(sklearn_references(data, x_test, y_test, seed=first,
                                                          class_weight=recipe.class_weight)
                                       if sklearn_fits is None else score_sklearn(sklearn_fits, data, x_test, y_test))

        # the experiment's lease, as a search takes it: two retrains would share one checkpoint folder
        with store.lease(exp.id, then="run the retrain again") as lease:
            models = retrain_best(best=best, space=space, data=data, epochs=n_epochs,
                                  recipe=recipe, seed=first, baseline=wanted,
                                  out_dir=owned_dir(out, RETRAIN_FILES), on_epoch=lease.guard(on_epoch),
                                  seeds=seeds, on_test=on_test, model_epochs=model_epochs,
                                  time_limit=time_limit, fill_time=fill_time, fill_cap=fill_cap,
                                  members=n_members)
            if with_sklearn and len(data.input_shape) == 1 and others is None:
                log.warning("scikit-learn references skipped: every seed was scored before an interruption, and "
                            "the test split is not read again for them")
            store.add_result(exp.id, "retrain", {
                "trial": best.number, "epochs": n_epochs, **({"model_epochs": model_epochs} if model_epochs else {}),
                "models": [final_to_json(m) for m in models],
                "seeds": sorted({m.seed for m in models}), "summary": summarize(models),
                "others": others or {}, **data_record(data)})
        return models


@dataclasses.dataclass(frozen=True)
class Retrained:
    """The searched network of an experiment's last retrain, with its weights loaded, and where they lie."""

    model: torch.nn.Module
    info: Any  # final.export.ModelInfo
    weights: Path
    record: dict[str, Any]  # the stored retrain result
    experiment: Experiment
    config: Config
    default_models: Path  # where a retrain writes by default: a folder nasforge may write beside
    again: str  # the command that retrains it again

    def folder(self, out_dir: str | Path | None, sub: str | None = None) -> Path:
        """Where output goes: ``out_dir``, else beside the weights (``sub`` inside), where nasforge made that folder."""
        if out_dir is not None:
            return Path(out_dir)
        if is_owned(self.weights.parent) or self.weights.parent.resolve() == self.default_models.resolve():
            return owned_dir(self.weights.parent / sub) if sub else self.weights.parent
        # the database names a folder nasforge did not make: write nothing there unless told
        raise NasforgeError(f"the recorded weights {self.weights} lie in a folder nasforge did not create; give --out "
                            "to choose where the output goes")


def load_retrained(db: str | Path, *, name: str | None = None, trial: int | None = None,
                   data: Dataset | None = None) -> Retrained:
    """The last retrain's searched network (of ``trial``, if given), built and loaded with its first seed's weights;
    where the run trained its reference alone (``nasforge auto`` without a search, ``--reference-only``), that.

    Reads the database only; a one-line error when there is no retrain or its weights are missing or changed.
    """
    import json

    from nasforge.final.ensemble import build_ensemble
    from nasforge.final.export import ModelInfo

    check_whole(trial, "trial", minimum=0)
    store, exp, cfg = stored(db, name)
    with store:
        results = store.results(exp.id, "retrain")
        trials = {t.number: t for t in store.trials(exp.id)}
    if trial is not None:
        results = [r for r in results if r.get("trial") == trial]
    again = f"nasforge retrain {db}" + (f" --trial {trial}" if trial is not None else "")
    if not results:
        what = f"trial {trial} of experiment" if trial is not None else "experiment"
        raise NasforgeError(f"{what} {exp.name!r} in {db} has no retrained model yet: run `{again}` first")
    r = results[-1]
    # the searched network; where the run delivered the reference alone (`nasforge auto` without a search, or
    # --reference-only: no trial), the reference
    alone = r.get("trial") is None
    m = next((m for m in r["models"] if m["name"] == ("baseline" if alone else "searched")), None)
    t = None if alone else trials.get(int(r["trial"]))
    reference = str(m["reference"]) if alone and m is not None and m.get("reference") else None
    weights = Path(m["weights"]) if m is not None and m.get("weights") else None
    default_models = Path(cfg.retrain.out or Path(db).parent / f"{Path(db).stem}-models") / exp.name
    if weights is not None and not weights.exists():  # a relative path from another working directory
        weights = default_models / weights.name
    if alone and (reference is None or weights is None or not weights.exists()):
        raise NasforgeError(f"experiment {exp.name!r} trained its reference alone and kept no weights (an older "
                            "nasforge kept none): run the same `nasforge auto` command again, with a new --db")
    if m is None or (t is None and not alone) or weights is None or not weights.exists():
        raise NasforgeError(f"the weights of the last retrain of {exp.name!r} are missing: run `{again}` again")
    side = weights.with_suffix(".json")
    meta: dict[str, Any] = json.loads(side.read_text()) if side.exists() else {}
    if (t is not None and meta.get("sample") is not None and meta["sample"] != dict(t.sample)) or (
            alone and meta and meta.get("reference") != reference):
        raise NasforgeError(f"{weights} now holds the weights of another retrain (trial {meta.get('trial')}): "
                            f"run `{again}` again")
    shape = tuple(int(d) for d in r.get("input_shape") or meta.get("input_shape") or ())
    classes = tuple(str(c) for c in r.get("classes") or meta.get("classes") or ())
    if not shape or not classes:
        raise NasforgeError(f"the last retrain of {exp.name!r} did not record its input shape: run `{again}` again")
    if r.get("preprocess"):
        pre: Preprocess | None = Preprocess.from_json(r["preprocess"])
    else:  # a retrain recorded before preprocessing was: the statistics are the data's, refit the same way
        pre = (data or load_data(cfg)).preprocess
    members = int(m.get("members", 1))
    regression = pre is not None and pre.target is not None
    if t is None:
        assert reference is not None
        model = build_ensemble(lambda: make_reference(reference, shape, len(classes))[1], members,
                               regression=regression)
        what = f"the reference {reference}"
    else:
        space, sample = make_space(cfg.space, shape), t.sample
        model = build_ensemble(lambda: space.build(sample, shape, len(classes)), members, regression=regression)
        what = f"trial {t.number}'s network"
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as e:
        raise NasforgeError(f"{weights} does not hold {what} ({str(e).splitlines()[0][:200]}): "
                            f"run `{again}` again") from None
    info = ModelInfo(input_shape=shape, classes=classes,
                     description=str(m.get("description", "")) if t is None else space.describe(t.sample),
                     sample=None if t is None else dict(t.sample), space=None if t is None else dict(cfg.space),
                     experiment=exp.name, trial=None if t is None else t.number, seed=m.get("seed"),
                     test=m.get("test"), preprocess=pre, members=members, reference=reference,
                     reader=r.get("reader"))
    return Retrained(model, info, weights, r, exp, cfg, default_models, again)


def export(db: str | Path, *, format: str = "python", out_dir: str | Path | None = None, name: str | None = None,
           trial: int | None = None, compressed: str | None = None) -> list[Path]:
    """Export the searched network of the last retrain (of ``trial``, if given), or the reference where the run
    trained it alone; returns the files written.

    ``format`` is ``python`` (standalone source + state dict), ``torchscript``, ``onnx`` or ``json``
    (the genotype). The weights are those the retrain saved for its first seed; the files go to
    ``out_dir`` (default: ``export/`` beside those weights). ``compressed`` (``int8`` or ``pruned``) exports
    the network the last :func:`compress` made of it instead, as ``torchscript`` or ``onnx``.
    """
    from nasforge.final import FORMATS
    from nasforge.final.export import export_model

    if format not in FORMATS:
        raise NasforgeError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    check_whole(trial, "trial", minimum=0)
    if compressed is not None:
        return export_compressed(db, compressed, format=format, out_dir=out_dir, name=name, trial=trial)
    r = load_retrained(db, name=name, trial=trial)
    return export_model(r.model, format, r.folder(out_dir, "export"), r.info)


def compress(db: str | Path, *, name: str | None = None, quantize: str | None = None, prune: float | None = None,
             prune_mode: str = "structured", finetune_epochs: float = 1.0, calibration: int = 512,
             seed: int | None = None, trial: int | None = None, out_dir: str | Path | None = None,
             threads: int | None = 1, windows: int = 5, repeats: int = 30) -> dict[str, Any]:
    """Quantize (``quantize="int8"``) and/or prune (``prune=0.5``) the searched network of the last retrain;
    returns the stored record (``nasforge status`` and the report show it).

    Each compression starts from the retrained network. ``int8``: static FX quantization (x86 backend),
    calibrated on ``calibration`` training examples (seeded), else dynamic quantization of the Linear
    layers (the record's ``method`` and ``note`` say which and why). ``prune``: the share of each prunable
    layer's channels removed (``prune_mode="structured"``) or of each layer's weights zeroed
    (``"unstructured"``), then ``finetune_epochs`` epochs with the retraining recipe at a tenth of its rate.
    Every version (the fp32 original too) is traced to TorchScript and measured alike: test accuracy and
    F1, parameters (and nonzero ones), file size, and batch-1 CPU latency on ``threads`` threads (the median
    of ``windows`` windows of ``repeats`` runs, the versions taking turns). The test split is read once more
    here, after every version is made; the compressed files (``searched-int8.pt``, ``searched-pruned.pt``,
    TorchScript) go beside the retrained weights or to ``out_dir``.
    """
    import hashlib

    from nasforge.final.compress import Plan, check_plan, check_prunable, compress_model, write_script

    plan = Plan(quantize=quantize, prune=prune, prune_mode=prune_mode, finetune_epochs=finetune_epochs,
                calibration=calibration, seed=0 if seed is None else seed, threads=threads, windows=windows,
                repeats=repeats)
    check_plan(plan)  # every check before anything is loaded, trained, tested or written
    r = load_retrained(db, name=name, trial=trial)
    if seed is None:
        plan = dataclasses.replace(plan, seed=r.config.seed)
    folder = r.folder(out_dir)
    data = load_data(r.config)
    if data.regression:
        raise NasforgeError(f"compress measures classification networks (test accuracy); {r.experiment.name!r} is a "
                            "regression: export it as it is (nasforge export)")
    if not data.has_test:
        raise DataError(f"{data.name} has no test split, and compress scores on one: give test data, then compress")
    if tuple(data.input_shape) != tuple(r.info.input_shape) or len(data.classes) != len(r.info.classes):
        raise NasforgeError(f"the data of {r.experiment.name!r} no longer match its retrained network (input "
                            f"{data.input_shape}, {len(data.classes)} classes): run `{r.again}` again")
    if r.info.members > 1:
        raise NasforgeError(f"the last retrain of {r.experiment.name!r} averages {r.info.members} trainings "
                            "(retrain.ensemble); compress takes one network: export the ensemble as it is, or "
                            "retrain with retrain.ensemble: 1 to compress")
    check_prunable(r.model, plan)
    source_sha = hashlib.sha256(r.weights.read_bytes()).hexdigest()

    def save(which: str, script: bytes) -> str:
        return str(write_script(folder / f"{r.weights.stem}-{which}.pt", script))  # searched-, or baseline-int8.pt

    with Store(db, create=False) as store, store.lease(r.experiment.id, then="run the compress again"):
        done = compress_model(r.model, data, plan=plan, recipe=r.config.retrain.recipe, save=save)
        record = {"trial": r.info.trial, "source": str(r.weights), "source_sha256": source_sha, "seed": plan.seed,
                  "data": data.name, "input_shape": list(data.input_shape), "quantize": quantize, "prune": prune,
                  "prune_mode": prune_mode if prune is not None else None,
                  "finetune_epochs": finetune_epochs if prune is not None else None,
                  "calibration": calibration if quantize is not None else None, **done}
        store.add_result(r.experiment.id, "compress", record)
    return record


def export_compressed(db: str | Path, which: str, *, format: str = "torchscript", out_dir: str | Path | None = None,
                      name: str | None = None, trial: int | None = None) -> list[Path]:
    """Write the network the last :func:`compress` made (``int8`` or ``pruned``) as ``torchscript`` or ``onnx``."""
    import hashlib

    from nasforge.final import COMPRESSED, COMPRESSED_FORMATS
    from nasforge.final.export import export_script

    if which not in COMPRESSED:
        raise NasforgeError(f"unknown compressed network {which!r}: choose {' or '.join(COMPRESSED)}")
    if format not in COMPRESSED_FORMATS:
        raise NasforgeError(f"a compressed network exports as {' or '.join(COMPRESSED_FORMATS)}, not {format}: it is "
                            "no longer a network of the search space, which the python and json formats rebuild")
    r = load_retrained(db, name=name, trial=trial)
    store, exp, _ = stored(db, name)
    with store:
        records = [c for c in store.results(exp.id, "compress") if trial is None or c.get("trial") == trial]
    found = [(c, row) for c in records for row in c.get("rows", []) if row.get("name") == which and row.get("file")]
    how = "--quantize int8" if which == "int8" else "--prune 0.5"
    if not found:
        raise NasforgeError(f"experiment {exp.name!r} in {db} has no {which} network yet: run "
                            f"`nasforge compress {db} {how}` first")
    c, row = found[-1]
    path = Path(row["file"])
    sha = hashlib.sha256(r.weights.read_bytes()).hexdigest()
    if c.get("source_sha256") != sha or not path.exists():
        raise NasforgeError(f"the {which} network of {exp.name!r} is missing or was made from an earlier retrain: "
                            f"run `nasforge compress {db} {how}` again")
    return export_script(path, format, r.folder(out_dir, "export"), stem=which,
                         input_shape=tuple(int(d) for d in c.get("input_shape") or r.info.input_shape))


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What the retrained searched network (or the reference a run trained alone) says of new examples, in order.

    ``labels``: the predicted class names (classification), with ``probabilities`` (examples x ``classes``); or
    ``values``: predictions in the target's units (regression). ``metrics`` (accuracy, F1, ...; or RMSE, MAE, R²)
    where the examples came with labels, else None.
    """

    classes: tuple[str, ...]
    labels: tuple[str, ...] | None
    probabilities: Any  # numpy array (examples x classes), or None for a regression
    values: Any  # numpy array of predictions, or None for a classification
    metrics: dict[str, float] | None
    trial: int | None  # None where the network is the reference a run trained alone (``reference`` names it)
    description: str
    members: int
    reference: str | None = None
    ids: tuple[str, ...] | None = None  # what names each example where the rows' numbers do not: image files

    def __len__(self) -> int:
        return len(self.labels) if self.labels is not None else len(self.values)

    def to_csv(self) -> str:
        """One row an example: ``row`` (or ``file``: :attr:`ids`), ``prediction`` and, for classes, each class's
        probability (``p_<class>``)."""
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        ids = self.ids or range(len(self))
        first = "row" if self.ids is None else "file"
        if self.labels is not None:
            w.writerow([first, "prediction", *(f"p_{c}" for c in self.classes)])
            for i, label, probs in zip(ids, self.labels, self.probabilities, strict=True):
                w.writerow([i, label, *(f"{p:.6g}" for p in probs)])
        else:
            w.writerow([first, "prediction"])
            for i, v in zip(ids, self.values, strict=True):
                w.writerow([i, f"{v:.8g}"])
        return buf.getvalue()


def _refit_inputs(r: Retrained, given: Path) -> tuple[torch.Tensor, Any, tuple[str, ...] | None, tuple[float, float]]:
    """New examples read through the training data, its encoding and statistics refitted and checked against those
    the retrain stored: for a retrain recorded before it stored how to read them (:attr:`Dataset.reader`)."""
    import numpy as np

    d = r.config.data
    data = load_data(r.config, inputs=given)
    pre, stored_pre = data.preprocess, r.info.preprocess
    if stored_pre is not None and pre is not None and not (
            np.allclose(pre.mean, stored_pre.mean, rtol=1e-4, atol=1e-6)
            and np.allclose(pre.std, stored_pre.std, rtol=1e-4, atol=1e-6)):
        raise NasforgeError(f"the training data of {r.experiment.name!r} ({d.path or d.source}) is not what it was "
                            "when the network was retrained (its statistics differ), so new examples cannot be read "
                            f"as it read them; restore that data, or run `{r.again}` on the data as it is now")
    x, y = data.open_test()
    if tuple(x.shape[1:]) != tuple(r.info.input_shape):
        raise NasforgeError(f"{given} holds examples of shape {tuple(x.shape[1:])}, the network takes "
                            f"{tuple(r.info.input_shape)}; give examples shaped as the training data")
    target = data.target or (0.0, 1.0)
    ids = None
    if d.source == "images":  # a folder of image files: each prediction names its file
        from nasforge.data.folder import image_inputs

        ids = tuple(str(f.relative_to(given)) for f in image_inputs(given, tuple(r.info.classes))[0])
    if not data.test_labelled:
        return x, None, ids, target
    return x, (y.double() * target[1] + target[0]) if data.regression else y, ids, target


def predict(db: str | Path, inputs: str | Path, *, name: str | None = None, trial: int | None = None,
            out: str | Path | None = None) -> Predictions:
    """Predict new examples with the searched network of the last retrain (of ``trial``, if given), or the reference
    where the run trained it alone (``nasforge auto`` without a search, ``--reference-only``).

    ``inputs`` is read as the training data was: for a CSV, a table with the training file's feature columns
    (the label column optional), encoded, filled and normalised as the training rows were; for a folder of class
    folders of images, a folder of images (or of class folders of them, to score), read at the training images'
    size and colour; for other array data (built-in images, .npz, IDX, CIFAR), an .npz with ``x`` (and ``y``) or
    an .npy of ``x``. Where every example has a label the record says how good the predictions are. ``out``: also
    write them as CSV (:meth:`Predictions.to_csv`). No training data is read: the retrain stored how its data was
    read (a CSV's column encoding, an image folder's size and colour) and normalised; a retrain stored before it
    kept that refits the encoding from its training data, which must then still be where the experiment read it,
    unchanged.
    """
    from nasforge import atomic
    from nasforge.evaluate.metrics import classification_metrics, regression_metrics
    from nasforge.evaluate.trainer import predict as forward

    given = Path(inputs).expanduser()
    if out is not None and Path(out).expanduser().resolve() == given.resolve():
        raise NasforgeError(f"--out {out} is the file of examples itself; give another path for the predictions")
    if out is not None and Path(out).expanduser().is_dir():
        raise NasforgeError(f"--out {out} is a folder; give a file path for the predictions, such as "
                            f"{Path(out) / 'predictions.csv'}")
    r = load_retrained(db, name=name, trial=trial)
    classes = tuple(r.info.classes)
    regression = r.info.preprocess is not None and r.info.preprocess.target is not None
    if r.info.reader and r.info.preprocess is not None:  # read as training read, without its data
        new = read_new(dict(r.info.reader), given, input_shape=tuple(r.info.input_shape), classes=classes,
                       preprocess=r.info.preprocess, regression=regression)
        x, y, ids = new.x, new.y, new.ids
        target = r.info.preprocess.target or (0.0, 1.0)
    else:  # a retrain stored before readers were: the training data, refitted, reads the new examples
        x, y, ids, target = _refit_inputs(r, given)
    out_t = forward(r.model, x, channels_last=r.config.retrain.recipe.channels_last)
    metrics: dict[str, float] | None = None
    if regression:
        mean, std = target
        values = out_t[:, 0].double() * std + mean
        if y is not None:
            metrics = regression_metrics(values, torch.as_tensor(y, dtype=torch.float64))
        result = Predictions(classes, None, None, values.numpy(), metrics, r.info.trial, r.info.description,
                             r.info.members, r.info.reference, ids)
    else:
        probs = torch.softmax(out_t.double(), dim=1)
        index = probs.argmax(1)
        if y is not None:
            metrics = classification_metrics(index, torch.as_tensor(y), len(classes))
        result = Predictions(classes, tuple(classes[int(i)] for i in index), probs.numpy(), None, metrics,
                             r.info.trial, r.info.description, r.info.members, r.info.reference, ids)
    if out is not None:
        atomic.write_text(Path(out).expanduser(), result.to_csv())
    return result


def load(db: str | Path, name: str | None = None) -> Result:
    """A stored experiment (the latest unless named) as a Result: ``.best``, ``.pareto``, ``.trials``, ``.report()``."""
    return Result.load(db, name)


def report(db: str | Path, *, name: str | None = None, out: str | Path | None = None) -> Path:
    """Write the HTML report of a stored experiment (PNGs beside it); returns the HTML file's path.

    The default place is beside the database: ``runs/x.db`` -> ``runs/x-report/index.html``.
    """
    from nasforge.report.html import write_report

    return write_report(db, name=name, out=out)


def auto(data: str, *, time_budget: str | float, db: str | Path = "runs/auto.db", seed: int = 0,
         name: str | None = None, resume: bool = False, reference_only: bool = False, reference: str = "auto",
         say: Callable[[str], None] | None = None, device: str | None = None,
         precision: str | None = None, label: str | int | None = None,
         layout: str | None = None, metric: str | None = None, workers: int | None = None,
         max_params: int | str | None = None) -> dict[str, Any]:
    """Plan, search, train the final network and the data kind's reference, test once and report, within
    ``time_budget`` (``"15m"``, ``"1h"`` or seconds); returns the result record (see ``nasforge status --json``).

    ``data`` is a built-in name (``fashion_mnist``, ``mnist``, ``digits``), a path (``.npz``, ``.csv``, a
    folder of IDX, CSV or CIFAR files) or a YAML config; ``label`` a CSV's label column (a name or an index) where
    it is neither the one column named as labels are (``label``, ``target``, ``class``, ``y``) nor the last;
    ``layout`` (image, sequence, tabular) how the features are read where neither their shape nor their columns
    say (2-D columns that correlate with their neighbours are pixels or signal steps already); ``metric``
    (accuracy, balanced_accuracy, f1) what a classification's search ranks by; ``workers`` how many trials the
    search runs at once on a CPU (by default measured: a process pool of single-threaded workers where that
    trains more steps a second than one trial on all threads; 1: one at a time). ``max_params`` (``100000`` or
    ``"100k"``) limits the searched network's size; the reference is narrowed to fit it (``resnet20-w8``: ResNet-20
    at base width 8) so both are measured under the limit. ``say`` hears the plan and progress lines.
    ``device`` (auto, cpu, cuda, cuda:N, mps) is where it trains: by default ``auto`` (a resumed run, its stored one);
    ``precision`` (auto, fp32, bf16, fp16) how: by default ``auto`` (bf16 or fp16 on a GPU, fp32 on the CPU).
    Where the budget is too short for a search to pay (too few trials long enough to rank networks, or the
    whole budget trains the reference under a quarter of converging), there is no search: the reference
    trains for the whole budget, the record's ``searched`` is None and ``plan["why"]["search"]`` says why.
    """
    from nasforge.autoplan import run_auto

    return run_auto(data, time_budget=time_budget, db=db, seed=seed, name=name, resume=resume,
                    reference_only=reference_only, reference=reference, device=device, precision=precision,
                    label=label, layout=layout, metric=metric, workers=workers, max_params=max_params,
                    say=say or (lambda line: log.info("%s", line)))

