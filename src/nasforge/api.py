"""The Python API: the same pipeline the CLI runs, one function per command.

``search(config)`` wires config -> data -> space -> strategy -> evaluator -> store -> loop;
``retrain(db)`` trains the best architecture and the baseline and scores them on test once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nasforge.config import Config, from_dict, load_config
from nasforge.data import Dataset, load_dataset
from nasforge.errors import NasforgeError, StoreError
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.loop import Progress, SearchOutcome, best_trial, preflight, run_search
from nasforge.report.retrain import FinalModel, final_to_json, retrain_best
from nasforge.space import make_space
from nasforge.store import Experiment, Store
from nasforge.strategy import make_strategy

log = logging.getLogger("nasforge")


def as_config(config: Config | Mapping[str, Any] | str | Path) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, str | Path):
        return load_config(config)
    return from_dict(config)


def load_data(cfg: Config) -> Dataset:
    d = cfg.data
    return load_dataset(d.source, d.path, val_fraction=d.val_fraction, seed=cfg.seed, layout=d.layout,
                        label_column=d.label_column, limit=d.limit)


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


def search(config: Config | Mapping[str, Any] | str | Path, *, resume: bool = False,
           on_progress: Callable[[Progress], None] | None = None) -> SearchOutcome:
    """Run (or resume) the search a config describes; every trial is in the config's database."""
    cfg = as_config(config)
    data = load_data(cfg).search_view()
    space = make_space(cfg.space, data.input_shape)
    strategy = make_strategy(cfg.strategy.name, space, seed=cfg.seed, **cfg.strategy.options)
    preflight(space, data.input_shape, data.n_classes)
    evaluator = TorchEvaluator(data, space, recipe=cfg.train, seed=cfg.seed,
                               measure_latency=cfg.search.measure_latency)
    with Store(cfg.search.db) as store:
        exp = open_experiment(cfg, store, resume=resume)
        return run_search(store=store, experiment=exp, space=space, strategy=strategy, evaluator=evaluator,
                          input_shape=data.input_shape, n_out=data.n_classes, budget=cfg.search.budget,
                          max_trials=cfg.search.trials, time_budget=cfg.search.time_budget, on_progress=on_progress,
                          scheduler=cfg.search.make_scheduler(), stopping=cfg.search.make_stopping(),
                          checkpoint_dir=checkpoint_dir(cfg.search.db, exp.name))


def checkpoint_dir(db: str | Path, name: str) -> Path:
    """Where a search keeps the checkpoints of trials a scheduler may still promote: beside its database."""
    p = Path(db)
    return p.parent / f"{p.stem}-checkpoints" / name


def stored(db: str | Path, name: str | None = None) -> tuple[Store, Experiment, Config]:
    """Open an existing database and its experiment (the latest one unless named)."""
    store = Store(db, create=False)
    exp = store.experiment(name)
    if exp is None:
        held = store.experiment_names()
        store.close()
        if name is not None and held:
            raise StoreError(f"{db} has no experiment {name!r} (it holds {', '.join(map(repr, held))}); "
                             "pick one with --name")
        raise StoreError(f"{db} holds no experiment yet: run `nasforge search CONFIG --db {db}` first")
    return store, exp, from_dict(exp.config)


def retrain(db: str | Path, *, name: str | None = None, epochs: float | None = None, seed: int | None = None,
            baseline: bool | None = None, out_dir: str | Path | None = None,
            on_epoch: Callable[[str, int, Mapping[str, float]], None] | None = None) -> list[FinalModel]:
    """Train the best stored architecture (and the baseline) on train+val; score on test once each."""
    store, exp, cfg = stored(db, name)
    with store:
        best = best_trial(store.trials(exp.id))
        if best is None:
            raise NasforgeError(f"experiment {exp.name!r} in {db} has no completed trial yet; "
                                "run or resume the search first")
        data = load_data(cfg)
        space = make_space(cfg.space, data.input_shape)
        out = Path(out_dir or cfg.retrain.out or Path(db).parent / f"{Path(db).stem}-models") / exp.name
        models = retrain_best(best=best, space=space, data=data,
                              epochs=epochs if epochs is not None else cfg.retrain.epochs,
                              recipe=cfg.retrain.recipe, seed=cfg.seed if seed is None else seed,
                              baseline=cfg.retrain.baseline if baseline is None else baseline,
                              out_dir=out, on_epoch=on_epoch)
        store.add_result(exp.id, "retrain", {"trial": best.number, "epochs": epochs or cfg.retrain.epochs,
                                             "models": [final_to_json(m) for m in models]})
        return models
