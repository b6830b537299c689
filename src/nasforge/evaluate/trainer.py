"""The training loop every candidate, the final retrain and the baseline share.

Kept lean on purpose: data are in-memory tensors, batches are index slices of a per-epoch
permutation, the learning rate follows a per-step cosine (or one-cycle) schedule, and the only
synchronising work per step is the optimiser's own. Image models run in channels_last, which is
fastest for CPU convolutions. On a GPU (the recipe's ``device``) the model and, where they fit, the data
move there once; batches are drawn by the same CPU generator, so a device changes where the arithmetic
runs, not which examples or augmentations a step sees.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.evaluate.device import autocast, grad_scaler, model_device, place, resolve_device, resolve_precision
from nasforge.evaluate.metrics import classification_metrics, regression_metrics
from nasforge.evaluate.recipe import Recipe, TrainingFailed

log = logging.getLogger("nasforge")

EpochCallback = Callable[[int, Mapping[str, float]], None]
InterimVal = tuple[torch.Tensor, torch.Tensor] | Literal["full"] | None


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer; a network that carries ``nasforge_weight_decay`` (a space that searches weight
    decay sets it) trains with that weight decay instead of the recipe's."""
    # No weight decay on biases and norm parameters: the usual, measurably better practice.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    wd = getattr(model, "nasforge_weight_decay", None)
    wd = recipe.weight_decay if wd is None else float(wd)
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.base_lr, momentum=recipe.momentum, nesterov=True)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.base_lr)
    # Adam with decoupled-free L2 as configured; AdamW is the decoupled variant.
    return torch.optim.Adam(groups, lr=recipe.base_lr)


WARMUP_SHARE = 0.3  # of a one-cycle schedule, the steps its rate rises over
# of the time a training's pace says is left, what lengthening its schedule fills: a pace of a few epochs reads
# fast (a 20-minute sequence run lengthened its schedule after one epoch, then shortened it five times)
FILL_SHARE = 0.95


def balanced_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Per-class loss weights n / (classes x count), as scikit-learn's ``class_weight="balanced"``, over the classes
    present in ``y`` (an absent class gets weight 0: it adds no loss either way)."""
    counts = torch.bincount(y.long(), minlength=n_classes).float()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = len(y) / (int(present.sum()) * counts[present])
    return weights


def lr_factor(step: int, total: int, recipe: Recipe) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total``."""
    if recipe.schedule == "constant":
        return 1.0
    if recipe.schedule == "onecycle":
        peak = max(1, int(WARMUP_SHARE * total))
        if step < peak:
            return 0.04 + 0.96 * step / peak
        t = (step - peak) / max(1, total - peak)
        return 0.5 * (1 + math.cos(math.pi * t)) * 0.999 + 0.001
    warm = int(recipe.warmup_fraction * total)
    if step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * t))


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 2, *, crop: bool = True,
                  flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding and/or random horizontal flip, per example, as tensor ops."""
    n, _, h, w = x.shape
    dev = x.device  # the draws come from ``gen`` on the CPU whatever the device: the same on any of them
    out = x
    if crop:
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(dev)
        rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]
        out = xp[torch.arange(n, device=dev)[:, None, None, None],
                 torch.arange(x.shape[1], device=dev)[None, :, None, None], rows, cols]
    if flip:
        flipped = (torch.rand(n, generator=gen) < 0.5).to(dev)
        out = torch.where(flipped[:, None, None, None], out.flip(-1), out)
    return out


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024, channels_last: bool = True,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (fp32, on the CPU) for all of ``x`` in eval mode, on the model's device (under autocast to ``dtype``)."""
    model.eval()
    dev = model_device(model)
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        if channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(dev, dtype):
            outs.append(model(xb).float().cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int,
                   *, channels_last: bool = True, dtype: torch.dtype | None = None,
                   target: tuple[float, float] | None = None) -> dict[str, float]:
    """Loss, accuracy, macro precision / recall / F1 on one split; with ``target`` (a regression's ``(mean, std)``,
    :attr:`Dataset.target`) RMSE, MAE and R² in the original units, and the loss: the MSE as trained (standardised)."""
    logits = predict(model, x, channels_last=channels_last, dtype=dtype)
    y = y.cpu()
    if target is not None:
        pred = logits[:, 0]
        mean, std = target
        out = regression_metrics(pred.double() * std + mean, y.double() * std + mean)
        out["loss"] = float(F.mse_loss(pred, y.float()))
        return out
    out = classification_metrics(logits.argmax(1), y, n_classes)
    out["loss"] = float(F.cross_entropy(logits, y))
    return out


@dataclass(frozen=True)
class TrainStats:
    curve: tuple[Mapping[str, float], ...]
    train_seconds: float
    eval_seconds: float
    steps: int


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: float,
    recipe: Recipe,
    seed: int = 0,
    n_classes: int | None = None,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    on_epoch: EpochCallback | None = None,
    start_epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    done_epochs: int = 0,
    stop_epochs: float | None = None,
    interim_val: InterimVal = "full",
    flip_invariant: bool = False,
    deadline: float | None = None,
    target: tuple[float, float] | None = None,
    fill_time: bool = False,
    fill_cap: float | None = None,
) -> TrainStats:
    """Train ``model`` in place for ``epochs`` (fractions allowed) and evaluate after every epoch.

    The last epoch is always scored on the whole of ``x_val``; ``interim_val`` says what the epochs
    before it are scored on: ``"full"`` the whole split too, a smaller ``(x, y)`` split (cheaper; the
    curve stays drawn), or ``None`` (train loss only). Validation never changes what is trained. Each
    row's ``val_examples`` says how many examples scored it.

    ``flip_invariant`` is the data source's declaration that horizontal flips keep the class
    (:attr:`Dataset.flip_invariant`); with the recipe's ``flip`` unset, only such data are flipped.
    ``generator`` (default: a new one seeded with ``seed``) draws the shuffles and augmentations; a
    caller that checkpoints passes its own and saves its state. ``done_epochs`` resumes this same
    schedule after that many whole epochs (the model, ``optimizer`` and ``generator`` already carry
    them), so an interrupted and resumed run takes exactly the steps an uninterrupted one does.
    ``stop_epochs`` stops after that many epochs of the ``epochs``-long schedule (a checkpoint along
    it, as ASHA's ``lr_cycle: full`` rungs are).
    ``deadline`` (a ``time.time()``): after each epoch, where the pace so far says the rest would end
    past it, the schedule is shortened to the steps that fit, so it still anneals to its end in time
    (a timing before training can be 30% off on a shared machine, and a fixed-time plan must hold).
    ``fill_time``: where instead it would end over 10% early, the schedule is lengthened to the steps that
    fill 95% of the time left, from a pace of at least two epochs and while it is still warming up
    (one-cycle's rising 30%: the rate then rises more slowly, and the anneal is whole), so a training
    sized from a timing that read slow still fills its time. ``fill_cap`` (epochs) is the longest it is
    lengthened to: two networks sharing a final stop where converging is planned to end, not at their time.
    The recipe's ``device`` and ``precision`` say where and in what dtype the steps run (autocast, and a
    grad scaler for fp16); the model moves there, and so do ``x`` and ``y`` unless a GPU has too little memory
    for them (then each batch moves). An ``optimizer`` passed in must belong to the model on that device.
    ``target`` (a regression's ``(mean, std)``, :attr:`Dataset.target`): ``y`` holds standardised float targets,
    the model one output; the loss is the mean squared error and validation reports RMSE, MAE and R² in the
    original units, with ``val_score`` = -RMSE (what the search ranks by: higher is better).
    Raises :class:`TrainingFailed` on a non-finite loss so the caller can record why.
    """
    n = len(x)
    if n == 0:
        raise TrainingFailed("no training examples")
    n_classes = n_classes or int(y.max()) + 1
    device = resolve_device(recipe.device)
    dtype = resolve_precision(recipe.precision, device)
    model.to(device)
    x, y = place((x, y), device)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    image = x.ndim == 4
    crop, flip = recipe.augment and image, recipe.flips(flip_invariant) and image
    cl = recipe.channels_last and image
    if cl:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = optimizer or make_optimizer(model, recipe)
    scaler = grad_scaler(device, dtype)
    bs = min(recipe.batch_size, n)
    # a last batch of under an eighth of the batch (one example at least) is left out of the epoch (other examples
    # each epoch, as the order is reshuffled; timm drops every last batch): batch norm's statistics over a few
    # examples are noise, in the step (which weighs as much as a full batch's) and in its running statistics. A
    # fold of 1,154 digits at batch 128 ended each epoch on a batch of 2, and ResNet-20 did not learn (0.25)
    used = n - n % bs if n > bs and n % bs < max(2, bs // 8) else n
    steps_per_epoch = math.ceil(used / bs)
    total_steps = max(1, math.ceil(epochs * steps_per_epoch))
    end = total_steps if stop_epochs is None else min(total_steps, max(1, math.ceil(stop_epochs * steps_per_epoch)))
    base_lrs = [g["lr"] for g in opt.param_groups]
    regression = target is not None
    criterion: nn.Module = nn.MSELoss() if regression else nn.CrossEntropyLoss(
        weight=balanced_weights(y, n_classes).to(device) if recipe.class_weight else None,
        label_smoothing=recipe.label_smoothing)
    curve: list[Mapping[str, float]] = []
    step, train_s, eval_s = done_epochs * steps_per_epoch, 0.0, 0.0
    epoch = start_epoch + done_epochs
    first_step, started, shortened = step, time.time(), False
    cap = math.inf if fill_cap is None else math.ceil(fill_cap * steps_per_epoch)
    while step < end:
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen).to(x.device)  # drawn on the CPU: the same order on every device
        loss_sum = torch.zeros((), device=device)
        # accuracy on the batches as trained (augmented, dropout on), as Keras says
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for i in range(0, used, bs):
            if step >= end:
                break
            f = lr_factor(step, total_steps, recipe)
            for g, b in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = b * f
            idx = perm[i:i + bs]
            xb, yb = x[idx].to(device), y[idx].to(device)  # no-ops where the data are on the device already
            if crop or flip:
                xb = augment_batch(xb, gen, crop=crop, flip=flip)
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, dtype):
                out = model(xb)
                loss = criterion(out[:, 0], yb) if regression else criterion(out, yb)
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            loss_sum += loss.detach() * len(idx)
            if not regression:
                correct += (out.detach().argmax(1) == yb).sum()
            seen += len(idx)
            step += 1
            if step % 100 == 0 and not torch.isfinite(loss_sum):
                break
        train_loss = float(loss_sum) / max(seen, 1)
        train_s += time.perf_counter() - t0
        if not math.isfinite(train_loss):
            raise TrainingFailed(f"non-finite training loss in epoch {epoch + 1}; lower the learning rate")
        epoch += 1
        row: dict[str, float] = {"epoch": float(epoch), "train_loss": train_loss}
        if target is None:
            row["train_accuracy"] = float(correct) / max(seen, 1)
        else:  # the batches' RMSE as trained, in the original units
            row["train_rmse"] = math.sqrt(train_loss) * target[1]
        split = (x_val, y_val) if step >= end or interim_val == "full" else interim_val
        if isinstance(split, tuple) and split[0] is not None and split[1] is not None:
            t1 = time.perf_counter()
            m = evaluate_split(model, split[0], split[1], n_classes, channels_last=cl, dtype=dtype, target=target)
            eval_s += time.perf_counter() - t1
            row.update({f"val_{k}": v for k, v in m.items()})
            if regression:
                row["val_score"] = -m["rmse"]
            row["val_examples"] = float(len(split[1]))
        if deadline is not None and step < end and stop_epochs is None:
            pace = (time.time() - started) / (step - first_step)  # seconds a step, validation included
            fit = int((deadline - time.time()) / pace)
            if step + fit < end:  # compress what is left of the schedule into the time left
                was, end = end, step + max(0, fit)
                total_steps = end
                # said once a training (later shortenings go to the debug log): a line an epoch buries the progress.
                # "from" names the schedule it had: after a lengthening that is more than the plan's epochs
                (log.debug if shortened else log.warning)(
                    "training runs slower than timed: its schedule is shortened from %.1f to %.1f epochs (%d steps) "
                    "to end in time", was / steps_per_epoch, end / steps_per_epoch, end)
                shortened = True
            elif (fill_time and step < WARMUP_SHARE * end and step - first_step >= 2 * steps_per_epoch
                  and min(step + FILL_SHARE * fit, cap) > 1.1 * end):
                end = total_steps = int(min(step + FILL_SHARE * fit, cap))
                log.info("training runs faster than timed: its schedule is lengthened to %.1f epochs (%d steps) to "
                         "fill its time", end / steps_per_epoch, end)
        if deadline is not None and stop_epochs is None:  # the schedule followed, so a checkpoint resumes it
            row["schedule_epochs"] = total_steps / steps_per_epoch
        curve.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
    return TrainStats(tuple(curve), train_s, eval_s, step)
