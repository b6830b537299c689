"""Final training: the best architecture and the hand-designed baseline, same recipe, test read once per seed.

Both models train on train+validation (the search is over, validation has done its job). With
``seeds=N`` each is trained N times (seeds ``seed, seed+1, ...``); only when every model of a seed
has finished training is the sealed test split opened, once for that seed, and the models scored.
The mean and standard deviation over seeds say how much of a difference is the architecture and
how much the luck of the draw.

Training is checkpointed after every epoch (model, optimiser, both RNG states), atomically, under
``<out_dir>/checkpoints/``; a retrain killed part-way continues from the last epoch and ends with
the numbers an uninterrupted run gives. Seeds already scored are not trained or tested again. The
checkpoints are removed when the whole retrain has finished, so the next retrain starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge import atomic
from nasforge.data.base import Dataset
from nasforge.errors import NasforgeError
from nasforge.evaluate.cost import measure_cost
from nasforge.evaluate.device import resolve_device, resolve_precision
from nasforge.evaluate.recipe import TrainingFailed, trial_seed
from nasforge.evaluate.trainer import Recipe, evaluate_split, make_optimizer, train
from nasforge.final.ensemble import MEMBER_SEED, train_members
from nasforge.final.models import FinalModel, Fitted, final_from_json, final_to_json
from nasforge.final.references import make_reference, resolve_baseline
from nasforge.paths import owned_dir, remove_owned
from nasforge.space.base import SearchSpace
from nasforge.types import Trial

log = logging.getLogger("nasforge")
# what a retrain leaves in its folder: a folder holding only these (a retrain of an older nasforge) is reused
RETRAIN_FILES = re.compile(r"(searched|baseline|seed\d+)[^/]*|checkpoints|export|\..*")


def _load_checkpoint(path: Path | None, run: str) -> dict[str, Any] | None:
    """The checkpoint of this very training run (same model, data, recipe, epochs, seed), else None."""
    if path is None or not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)  # saved on any device
    except Exception as e:  # a foreign or damaged file: train from scratch rather than fail
        log.warning("ignoring unreadable checkpoint %s (%s); training from scratch", path, e)
        return None
    if state.get("run") != run:
        log.info("checkpoint %s belongs to another retrain; training from scratch", path)
        return None
    return state


def fit_final(model: nn.Module, data: Dataset, *, epochs: float, recipe: Recipe, seed: int,
              on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
              checkpoint: Path | None = None, run: str = "", time_limit: float | None = None,
              fill_time: bool = False, fill_cap: float | None = None) -> Fitted:
    """Train on train+validation; returns the training seconds and curve. No validation: the search is over.

    ``time_limit`` (seconds from now) shortens the schedule where the measured pace says it would
    overrun (see :func:`~nasforge.evaluate.trainer.train`'s ``deadline``); with ``fill_time`` it also lengthens
    it, early on, where the pace says it would end well short of the limit, to at most ``fill_cap`` epochs.

    With ``checkpoint``, the state after every epoch is written there (atomically) and a checkpoint
    of the same ``run`` found there is continued from, with the result an uninterrupted run gives.
    """
    x, y = data.train_plus_val()
    device = resolve_device(recipe.device)
    model.to(device)  # before the optimizer and its loaded state, which follow the parameters there
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, recipe)
    done, seconds = 0, 0.0
    rows: list[dict[str, float]] = []
    state = _load_checkpoint(checkpoint, run)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        for g in opt.param_groups:
            g["lr"] = recipe.base_lr  # the trainer scales the base rate along the (resumed) schedule
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:  # dropout draws on the GPU there
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        done, seconds = int(state["epoch"]), float(state["train_seconds"])
        rows = [dict(r) for r in state.get("curve", [])]  # older checkpoints kept no curve
        log.info("resuming from %s after epoch %d", checkpoint, done)
        if rows and "schedule_epochs" in rows[-1]:  # the schedule a time limit had shortened or lengthened
            epochs = rows[-1]["schedule_epochs"]
    if done >= math.ceil(epochs):  # trained to the end before the interruption
        if recipe.channels_last and x.ndim == 4:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # as training leaves it
        return Fitted(seconds, tuple(rows))
    t0 = time.perf_counter()

    def after_epoch(epoch: int, row: Mapping[str, float]) -> None:
        rows.append(dict(row))
        if checkpoint is not None:
            atomic.torch_save({"run": run, "epoch": epoch, "model": model.state_dict(),
                               "optimizer": opt.state_dict(), "generator": gen.get_state(),
                               "torch_rng": torch.get_rng_state(), "curve": rows,
                               **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                               "train_seconds": seconds + time.perf_counter() - t0}, checkpoint)
        if on_epoch is not None:
            on_epoch(epoch, row)

    train(model, x, y, epochs=epochs, recipe=recipe, seed=seed, n_classes=data.n_classes, on_epoch=after_epoch,
          optimizer=opt, generator=gen, done_epochs=done, flip_invariant=data.flip_invariant,
          deadline=None if time_limit is None else time.time() + time_limit, target=data.target,
          fill_time=fill_time, fill_cap=fill_cap)
    return Fitted(seconds + time.perf_counter() - t0, tuple(rows))


def _run_id(**what: Any) -> str:
    """A fingerprint of what a checkpoint or a scored seed holds, so stale state is never reused."""
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def retrain_best(
    *,
    best: Trial,
    space: SearchSpace,
    data: Dataset,
    epochs: float,
    recipe: Recipe,
    seed: int,
    baseline: bool | str = True,
    out_dir: Path | None = None,
    on_epoch: Callable[[str, int, Mapping[str, float]], None] | None = None,
    seeds: int = 1,
    on_test: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    model_epochs: Mapping[str, float] | None = None,
    time_limit: float | None = None,
    fill_time: bool = False,
    fill_cap: float | None = None,
    members: int = 1,
) -> list[FinalModel]:
    """Train the best searched network (and the baseline) with one recipe, ``seeds`` times; test once per seed.

    ``baseline`` is ``True`` (the classic 2-conv reference), ``False`` (none), ``"auto"`` (the data
    kind's default) or a name in :data:`~nasforge.final.references.REFERENCES`; the model is named
    ``baseline`` whichever it is, and its ``reference`` says which.
    Returns one FinalModel per model and seed, seed by seed (``[searched, baseline]`` for one seed).
    ``on_epoch`` gets the model's name, with ``/seed<S>`` appended when there are several seeds.
    ``model_epochs`` gives a model (``searched``, ``baseline``) its own number of epochs instead of
    ``epochs``: ``nasforge auto`` trains both for the same time, which is not the same epochs.
    ``time_limit`` (seconds a model) holds each training to that time, shortening its schedule where
    the pace says it would overrun (``nasforge auto``'s fixed-time final training), and with ``fill_time``
    lengthening it early where the pace says it would end well short of that time (to at most ``fill_cap``
    epochs: two networks sharing a fixed-time final stop where converging was planned to end).
    ``on_test(seed, x_test, y_test)`` gets the test arrays right after each read, so other
    references can be scored on the same read rather than a second one.
    With ``out_dir`` the weights are saved there (``searched.pt`` for the first seed,
    ``searched-seed<S>.pt`` for the others) and training checkpoints under ``out_dir/checkpoints``.
    ``members`` > 1 makes each model the average of that many trainings (:mod:`nasforge.final.ensemble`), each
    with its own seed and ``time_limit / members`` seconds; member 0 is the single network of that seed.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    shape, k = data.input_shape, data.n_classes
    reference = resolve_baseline(baseline, shape)  # an unknown or misfitting reference fails before training
    # the classic baseline keeps the fingerprints of earlier retrains, so their interrupted state still resumes
    tag: bool | str = True if reference == "classic" else (reference or False)
    work = owned_dir(out_dir / "checkpoints", RETRAIN_FILES) if out_dir is not None else None
    x_all, _ = data.train_plus_val()
    per_model = dict(model_epochs or {})  # e.g. {"searched": 12, "baseline": 15}: the same time each, not epochs
    dtype = resolve_precision(recipe.precision, resolve_device(recipe.device))  # the test is read as trained
    common = {"key": best.key, "epochs": epochs, "recipe": recipe.identity(),
              "data": [data.name, len(x_all), *shape, k], **({"model_epochs": per_model} if per_model else {})}
    out: list[FinalModel] = []
    for i in range(seeds):
        s = seed + i
        seed_run = _run_id(**common, seed=s, baseline=tag, **({"members": members} if members > 1 else {}))
        scored = _load_scored(work, s, seed_run)
        if scored is not None:  # scored before an interruption: neither trained nor tested again
            log.info("seed %d was scored before the interruption; reusing it", s)
            out += scored
            continue
        builders: list[tuple[str, str, Callable[[], nn.Module], int]] = [
            ("searched", space.describe(best.sample), lambda: space.build(best.sample, shape, k),
             trial_seed(s, best.key))]
        if reference is not None:
            desc = make_reference(reference, shape, k)[0]
            builders.append(("baseline", desc, lambda: make_reference(str(reference), shape, k)[1], s))
        models: list[tuple[str, str, nn.Module]] = []
        fitted: dict[str, Fitted] = {}
        for name, desc, build, init_seed in builders:
            label = name if seeds == 1 else f"{name}/seed{s}"
            n_epochs = per_model.get(name, epochs)
            which = name if name == "searched" or tag is True else f"{name}:{reference}"

            def fit(model: nn.Module, j: int, name: str = name, n_epochs: float = n_epochs,
                    which: str = which, label: str = label, s: int = s) -> Fitted:
                who = label if members == 1 else f"{label}[{j + 1}/{members}]"
                cb = (lambda e, row: on_epoch(who, e, row)) if on_epoch else None
                log.info("retraining %s for %s epochs", who, n_epochs)
                ckpt = work / f"seed{s}-{name}{'' if j == 0 else f'-m{j}'}.pt" if work is not None else None
                try:
                    return fit_final(model, data, epochs=n_epochs, recipe=recipe, seed=s + MEMBER_SEED * j,
                                     on_epoch=cb, checkpoint=ckpt,
                                     run=_run_id(**common, seed=s, model=which, **({"member": j} if j else {})),
                                     time_limit=None if time_limit is None else time_limit / members,
                                     fill_time=fill_time, fill_cap=fill_cap)
                except TrainingFailed as e:  # a diverged training is the recipe's to fix: one line, not a traceback
                    raise NasforgeError(f"the final training of {who} failed: {e} (retrain.lr; on a regression "
                                        "task retrain.optimizer: adamw is the safer choice)") from None

            # the description stays the architecture's; FinalModel.members says how many were averaged
            model, fitted[name] = train_members(build, members, init_seed=init_seed, regression=data.regression,
                                                fit=fit)
            models.append((name, desc, model))
        x_test, y_test = data.open_test()  # every model of this seed is trained: the one read for this seed
        if on_test is not None:
            on_test(s, x_test, y_test)
        results: list[FinalModel] = []
        for name, desc, model in models:
            test = evaluate_split(model, x_test, y_test, k, channels_last=recipe.channels_last, dtype=dtype,
                                  target=data.target)
            cost = measure_cost(model, shape)  # on the device it trained on, which the record names
            path = None
            ref = reference if name == "baseline" else None
            if out_dir is not None:
                path = save_final(out_dir, name if i == 0 else f"{name}-seed{s}", model, {
                    "name": name, "description": desc, "trial": best.number if name == "searched" else None,
                    **({"members": members} if members > 1 else {}),
                    "sample": dict(best.sample) if name == "searched" else None, "seed": s,
                    "input_shape": list(shape), "classes": list(data.classes), "test": test,
                    **({"reference": ref} if ref is not None else {})})
            results.append(FinalModel(name, desc, test, cost.params, cost.flops, cost.latency_ms,
                                      fitted[name].seconds, path, s, ref, fitted[name].curve, cost.latency_device,
                                      members))
        if work is not None:  # the seed's record replaces its checkpoints as the resume state
            atomic.write_text(work / f"seed{s}.json", json.dumps(
                {"run": seed_run, "models": [final_to_json(m) for m in results]}))
            for name, _, _ in models:
                for j in range(members):
                    (work / f"seed{s}-{name}{'' if j == 0 else f'-m{j}'}.pt").unlink(missing_ok=True)
        out += results
    if work is not None:
        remove_owned(work)  # finished: the next retrain starts afresh
    return out


def save_final(out_dir: Path, stem: str, model: nn.Module, meta: Mapping[str, Any]) -> str:
    """A final network's weights as ``<stem>.pt`` (on the CPU) and what it is as ``<stem>.json`` beside them (which
    :func:`nasforge.api.load_retrained` checks); returns the weights' path."""
    p = out_dir / f"{stem}.pt"
    atomic.torch_save({n: t.cpu().contiguous() for n, t in model.state_dict().items()}, p)
    atomic.write_text(out_dir / f"{stem}.json", json.dumps(dict(meta), indent=2))
    return str(p)


def _load_scored(work: Path | None, seed: int, run: str) -> list[FinalModel] | None:
    """The models of a seed scored before an interruption (same retrain), else None."""
    if work is None or not (work / f"seed{seed}.json").exists():
        return None
    try:
        saved = json.loads((work / f"seed{seed}.json").read_text())
        if saved.get("run") != run:
            return None
        return [final_from_json(m) for m in saved["models"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable retrain state for seed %d (%s)", seed, e)
        return None


def data_record(data: Dataset) -> dict[str, Any]:
    """What a retrain record keeps of its data so its networks can be used without it: the input shape, the
    classes, the normalisation, and how new examples are read (``nasforge predict``)."""
    return {"input_shape": list(data.input_shape), "classes": list(data.classes), "data": data.name,
            "preprocess": data.preprocess.to_json() if data.preprocess else None, "reader": data.reader}
