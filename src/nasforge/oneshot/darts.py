"""DARTS: gradient-based one-shot search on the cell space (first order), with a remedy for its collapse.

DARTS (Liu et al. 2019) relaxes the choice of one operation per edge into a softmax over all of
them: a *supernet* whose every edge is a :class:`MixedOp`, weighted by architecture parameters
``alphas`` (one vector per edge, shared by every cell, as in NAS-Bench-201's DARTS). Training
alternates one Adam step on ``alphas`` with a validation batch and one SGD step on the network
weights with a training batch (the first-order approximation). The search ends with each edge's
argmax: an ordinary sample of the space, which the caller trains and retrains like any other.

It trains, so it is not an ask/tell :class:`~nasforge.strategy.base.Strategy` and stays out of the
``STRATEGIES`` registry; :func:`nasforge.search` runs it when ``strategy.name`` is ``darts``.

Collapse: on NB201's space plain DARTS drifts towards cells of skip connections (Dong & Yang 2020).
Every epoch records the derived cell, its number of ``skip_connect`` edges and the softmax alphas,
and two published remedies can be switched on (``remedy``):

- ``darts_plus`` (the default; Liang et al. 2019, DARTS+ criterion 1): stop the search once the
  derived cell has ``skip_limit`` skip connections or more, and take that cell. DARTS+ stops at 2
  skips in DARTS's 8-edge normal cell; a 4-node cell has 6 edges, and a quarter of the edges
  rounded up keeps the limit at 2 (``max(2, ceil(edges / 4))`` for other cell sizes). It changes
  nothing until a collapse starts, so it is a safe guard on a search that may not collapse at all.
- ``beta`` (Ye et al. 2022, beta-DARTS): adds ``lambda * mean_edges logsumexp(alpha_edge)`` to the
  architecture loss, ``lambda`` rising linearly from 0 to ``beta_lambda`` over the planned steps.
  Its gradient is the softmax itself, so it damps whichever operation runs away. The paper's ramp
  reaches about 25; under Adam that swamps the validation gradient of a short CPU search, the
  alphas freeze at uniform and the argmax is decided by noise (measured on Fashion-MNIST: 4 of 6
  edges became skips), hence the default of 2.

Measured on a 3000-image Fashion-MNIST slice (channels 8, 132 steps, ``a_lr`` 3e-3 to move the
alphas as far as a longer run would): plain DARTS put skip_connect *last* on every edge and
derived no skip; the full-size collapse test is the 20-minute example, whose per-epoch history is
stored with the experiment.
"""

from __future__ import annotations

import difflib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasforge.data.base import Dataset, stratified_split
from nasforge.errors import ConfigError, NasforgeError
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.evaluate.trainer import balanced_weights, evaluate_split
from nasforge.loop import Progress, SearchOutcome, run_search
from nasforge.space.cell import CellSpace, edge_names
from nasforge.space.cell_nn import Cell, Nd, make_op
from nasforge.store import Experiment, Store
from nasforge.strategy import DARTS
from nasforge.strategy.base import Strategy
from nasforge.types import Budget, Sample, Suggestion, Trial

log = logging.getLogger("nasforge")

NAME = DARTS  # the strategy name that runs this search
REMEDIES = ("none", "darts_plus", "beta")


# ---------------------------------------------------------------------- options
@dataclass(frozen=True)
class DartsOptions:
    """``strategy.options`` of a DARTS search; defaults are DARTS's own, except where noted."""

    epochs: int = 10
    batch_size: int = 64
    fraction: float = 1.0  # share of the training split the supernet trains on (stratified, fixed)
    w_lr: float = 0.025  # weights: SGD, cosine from w_lr to w_lr_min
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    nesterov: bool = False
    grad_clip: float = 5.0
    a_lr: float = 3e-4  # alphas: Adam(betas=(0.5, 0.999))
    a_weight_decay: float = 1e-3
    remedy: str = "darts_plus"
    beta_lambda: float = 2.0  # beta-DARTS: the regulariser's weight at the end of the search (see the module doc)
    skip_limit: int | None = None  # DARTS+: None -> max(2, ceil(edges / 4))
    channels: int | None = None  # the supernet's stem width; None: the space's (DARTS searches narrower)
    affine: bool = False  # BN scale/shift inside mixed operations (DARTS: off)

    def __post_init__(self) -> None:
        if self.remedy not in REMEDIES:
            raise ValueError(f"remedy must be one of {', '.join(REMEDIES)}, got {self.remedy!r}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("w_lr", "a_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("w_lr_min", "w_momentum", "w_weight_decay", "grad_clip", "a_weight_decay", "beta_lambda"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("skip_limit", "channels"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def darts_options(options: Mapping[str, Any]) -> DartsOptions:
    """Check ``strategy.options`` for DARTS; every mistake is a one-line ConfigError naming the key."""
    kinds = {f.name: f.type for f in fields(DartsOptions)}
    kw: dict[str, Any] = {}
    for k, v in options.items():
        if k not in kinds:
            close = difflib.get_close_matches(str(k), list(kinds), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(kinds)}"
            raise ConfigError(f"unknown option {k!r} in strategy.options for darts: {hint}")
        kind = str(kinds[k])
        if "bool" in kind:
            ok = isinstance(v, bool)
        elif "int" in kind:
            ok = (isinstance(v, int) and not isinstance(v, bool)) or (v is None and "None" in kind)
        elif "float" in kind:
            ok = isinstance(v, int | float) and not isinstance(v, bool)
            v = float(v) if ok else v
        else:
            ok = isinstance(v, str)
        if not ok:
            raise ConfigError(f"strategy.options.{k} for darts must be {kind.replace(' | ', ' or ')}, got {v!r}")
        kw[k] = v
    try:
        return DartsOptions(**kw)
    except ValueError as e:
        raise ConfigError(f"strategy.options for darts: {e}") from None


# ---------------------------------------------------------------------- the supernet
class _ArchWeights:
    """The softmax of the alphas for the current forward pass, shared by every mixed operation."""

    value: torch.Tensor


class MixedOp(nn.Module):
    """Sum over the space's operations of ``softmax(alpha_edge)[k] * op_k(x)``; ``none`` adds nothing."""

    def __init__(self, ops: Sequence[str], row: int, arch: _ArchWeights, c: int, nd: Nd, affine: bool) -> None:
        super().__init__()
        self.row, self.arch = row, arch
        self.index = [k for k, name in enumerate(ops) if name != "none"]
        self.ops = nn.ModuleList(make_op(ops[k], c, nd, affine) for k in self.index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.arch.value[self.row]
        out: torch.Tensor | None = None
        for k, op in zip(self.index, self.ops, strict=True):
            y = w[k] * op(x)
            out = y if out is None else out + y
        return out if out is not None else torch.zeros_like(x)


class Supernet(nn.Module):
    """The space's own skeleton (stem, stages, reductions, head) with a mixed operation on every edge.

    ``alphas`` has one row per edge (NB201 order) and one column per operation of the space.
    """

    def __init__(self, space: CellSpace, input_shape: tuple[int, ...], n_out: int, *, affine: bool = False,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.space = space
        self.edge_names = edge_names(space.n_nodes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(self.edge_names), len(space.ops), generator=generator))
        self._arch = _ArchWeights()
        pairs = [(j, i) for j in range(1, space.n_nodes) for i in range(j)]

        def cell(c: int, nd: Nd) -> nn.Module:
            return Cell([(j, i, MixedOp(space.ops, row, self._arch, c, nd, affine))
                         for row, (j, i) in enumerate(pairs)], space.n_nodes)

        self.net = space.skeleton(input_shape, n_out, cell)

    def weights(self) -> list[nn.Parameter]:
        """The network weights: every parameter but the alphas."""
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._arch.value = F.softmax(self.alphas, dim=-1)
        return self.net(x)

    def probabilities(self) -> torch.Tensor:
        return F.softmax(self.alphas.detach(), dim=-1)

    def derive(self) -> dict[str, Any]:
        return discretise(self.space, self.alphas.detach())


def discretise(space: CellSpace, alphas: torch.Tensor) -> dict[str, Any]:
    """Each edge keeps its highest-weighted operation, ``none`` included (NB201's DARTS convention).

    Keeping ``none`` lets the search drop an edge, as NB201's DARTS does. If that disconnects the
    cell's output from its input (not a trainable network), the ``none`` edge whose best other
    operation weighs most gets that operation, until the cell is connected.
    """
    w = F.softmax(alphas.detach().float(), dim=-1)
    names = edge_names(space.n_nodes)
    s: dict[str, Any] = {n: space.ops[int(w[e].argmax())] for e, n in enumerate(names)}
    while space.function_key(s) == "":
        cands = [(float(w[e, k]), e, k) for e, n in enumerate(names) if s[n] == "none"
                 for k, op in enumerate(space.ops) if op != "none"]
        _, e, k = max(cands, key=lambda c: (c[0], -c[1], -c[2]))
        s[names[e]] = space.ops[k]
    return s


def count_skips(s: Sample) -> int:
    return sum(1 for v in s.values() if v == "skip_connect")


def default_skip_limit(n_nodes: int) -> int:
    """DARTS+'s 2 skips of 8 edges, scaled: a quarter of the cell's edges, rounded up, at least 2."""
    return max(2, math.ceil(len(edge_names(n_nodes)) / 4))


# ---------------------------------------------------------------------- the search
@dataclass(frozen=True)
class DartsProgress:
    """What the CLI shows: ``event`` is "supernet_start" once, then "supernet" after every epoch."""

    event: str
    epoch: int
    epochs: int
    steps_per_epoch: int
    row: Mapping[str, Any]
    elapsed: float
    time_budget: float | None
    remedy: str


@dataclass(frozen=True)
class DartsRun:
    """The outcome of the supernet phase: the derived sample and the per-epoch history."""

    sample: dict[str, Any]
    arch: str
    stopped: str  # "epochs" | "time" | "darts_plus"
    history: list[dict[str, Any]]
    alphas: list[list[float]]
    steps: int
    seconds: float
    options: DartsOptions
    skip_limit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"sample": self.sample, "arch": self.arch, "stopped": self.stopped, "skips": count_skips(self.sample),
                "history": self.history, "alphas": self.alphas, "steps": self.steps, "seconds": self.seconds,
                "options": asdict(self.options), "skip_limit": self.skip_limit}


def run_darts(
    space: CellSpace,
    data: Dataset,
    *,
    options: DartsOptions | None = None,
    seed: int = 0,
    time_budget: float | None = None,
    on_progress: Callable[[DartsProgress], None] | None = None,
    channels_last: bool = True,
    class_weight: bool = False,
) -> DartsRun:
    """Train the supernet on the search splits and derive a cell; stops between steps once out of time.

    Deterministic on CPU for a seed: the weights come from ``torch.manual_seed(seed)`` (as every
    trial's do), alphas and batch order from a ``torch.Generator`` seeded alike. ``class_weight`` (the recipe's
    ``train.class_weight``) weights both losses as the trainer does, so the cell is chosen for what balanced
    accuracy rewards, not for the common classes.
    """
    opts = options or DartsOptions()
    if data.has_test:
        data = data.search_view()  # the search never holds the test split
    t0 = time.perf_counter()
    x, y = data.x_train, data.y_train
    if opts.fraction < 1:
        _, keep = stratified_split(y.numpy(), opts.fraction, seed + 7919)  # the evaluator's subset for this fraction
        idx = torch.from_numpy(np.asarray(keep, dtype=np.int64))
        x, y = x[idx], y[idx]
    xv, yv = data.x_val, data.y_val
    if len(x) == 0 or len(xv) == 0:
        raise NasforgeError("DARTS needs both a training and a validation split; raise data.val_fraction or data.limit")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if opts.channels is not None and opts.channels != space.channels:  # a narrower proxy of the same cell space
        space = CellSpace(n_nodes=space.n_nodes, ops=space.ops, channels=opts.channels, n_stages=space.n_stages,
                          cells_per_stage=space.cells_per_stage)
    net = Supernet(space, data.input_shape, data.n_classes, affine=opts.affine, generator=gen)
    cl = channels_last and x.ndim == 4
    if cl:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    weights = net.weights()
    w_opt = torch.optim.SGD(weights, lr=opts.w_lr, momentum=opts.w_momentum, weight_decay=opts.w_weight_decay,
                            nesterov=opts.nesterov and opts.w_momentum > 0)
    a_opt = torch.optim.Adam([net.alphas], lr=opts.a_lr, betas=(0.5, 0.999), weight_decay=opts.a_weight_decay)
    bs = min(opts.batch_size, len(x))
    steps_per_epoch = math.ceil(len(x) / bs)
    total = opts.epochs * steps_per_epoch
    skip_limit = (opts.skip_limit or default_skip_limit(space.n_nodes)) if opts.remedy == "darts_plus" else None
    val_batches = _cycle(len(xv), min(bs, len(xv)), gen)
    # from the training labels, as the trainer's: the validation batches are weighted alike
    cw = balanced_weights(y, data.n_classes) if class_weight else None
    history: list[dict[str, Any]] = []

    def elapsed() -> float:
        return time.perf_counter() - t0

    def report(event: str, epoch: int, row: Mapping[str, Any]) -> None:
        if on_progress is not None:
            on_progress(DartsProgress(event, epoch, opts.epochs, steps_per_epoch, row, elapsed(), time_budget,
                                      opts.remedy))

    def batch(xs: torch.Tensor) -> torch.Tensor:
        return xs.contiguous(memory_format=torch.channels_last) if cl else xs

    report("supernet_start", 0, {})
    step, stopped = 0, "epochs"
    lam, lr = 0.0, opts.w_lr
    for epoch in range(1, opts.epochs + 1):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        loss_sum, correct, seen = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
        for i in range(0, len(x), bs):
            if time_budget is not None and elapsed() >= time_budget:
                stopped = "time"
                break
            # architecture step on a validation batch; only the alphas' gradient is computed
            vi = next(val_batches)
            a_loss = F.cross_entropy(net(batch(xv[vi])), yv[vi], weight=cw)
            if opts.remedy == "beta":
                lam = opts.beta_lambda * step / max(1, total - 1)
                a_loss = a_loss + lam * torch.logsumexp(net.alphas, dim=-1).mean()
            (grad,) = torch.autograd.grad(a_loss, [net.alphas])
            net.alphas.grad = grad
            a_opt.step()
            # weight step on a training batch, with the alphas held fixed
            lr = opts.w_lr_min + 0.5 * (opts.w_lr - opts.w_lr_min) * (1 + math.cos(math.pi * step / total))
            for g in w_opt.param_groups:
                g["lr"] = lr
            ti = perm[i:i + bs]
            net.alphas.requires_grad_(False)
            logits = net(batch(x[ti]))
            loss = F.cross_entropy(logits, y[ti], weight=cw)
            w_opt.zero_grad(set_to_none=True)
            loss.backward()
            net.alphas.requires_grad_(True)
            if opts.grad_clip > 0:
                nn.utils.clip_grad_norm_(weights, opts.grad_clip)
            w_opt.step()
            loss_sum += loss.detach() * len(ti)
            correct += (logits.detach().argmax(1) == y[ti]).sum()
            seen += len(ti)
            step += 1
        if seen == 0 and epoch > 1:
            break  # out of time right at an epoch boundary: the last row already holds this state
        if not math.isfinite(float(loss_sum)):
            raise NasforgeError(f"DARTS: non-finite training loss in epoch {epoch}; lower strategy.options.w_lr")
        val = evaluate_split(net, xv, yv, data.n_classes, channels_last=cl)
        s = net.derive()
        row: dict[str, Any] = {
            "epoch": epoch, "steps": step, "partial": stopped == "time", "lr": lr,
            "train_loss": float(loss_sum) / max(seen, 1), "train_accuracy": float(correct) / max(seen, 1),
            "val_loss": val["loss"], "val_accuracy": val["accuracy"],
            "val_balanced_accuracy": val["balanced_accuracy"], "arch": space.to_arch_str(s),
            "skips": count_skips(s), "beta_lambda": lam,
            "alphas": [[round(float(p), 4) for p in r] for r in net.probabilities()], "elapsed": elapsed()}
        history.append(row)
        log.info("darts epoch %d: val acc %.4f, %d skips, %s", epoch, val["accuracy"], row["skips"], row["arch"])
        report("supernet", epoch, row)
        if stopped == "time":
            break
        if skip_limit is not None and row["skips"] >= skip_limit:
            stopped = "darts_plus"
            break
    s = net.derive()
    return DartsRun(sample=s, arch=space.to_arch_str(s), stopped=stopped, history=history,
                    alphas=[[float(a) for a in r] for r in net.alphas.detach()], steps=step, seconds=elapsed(),
                    options=opts, skip_limit=skip_limit)


def _cycle(n: int, bs: int, gen: torch.Generator) -> Any:
    """Endless index batches over ``n`` examples, a fresh permutation per pass."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - bs + 1, bs):
            yield perm[i:i + bs]


# ---------------------------------------------------------------------- store and loop integration
class DerivedCell(Strategy):
    """Proposes the one cell DARTS derived, so the regular loop trains, scores and stores it."""

    name = NAME

    def __init__(self, space: CellSpace, sample: Sample, *, seed: int = 0) -> None:
        super().__init__(space, seed=seed)
        self.sample = dict(sample)

    def ask(self, history: Sequence[Trial], n: int = 1) -> list[Suggestion]:
        return [Suggestion(dict(self.sample)) for _ in range(n)]


def run_darts_search(
    *,
    store: Store,
    experiment: Experiment,
    space: CellSpace,
    data: Dataset,
    evaluator: TorchEvaluator,
    budget: Budget,
    options: DartsOptions,
    seed: int = 0,
    time_budget: float | None = None,
    on_progress: Callable[[Progress | DartsProgress], None] | None = None,
) -> SearchOutcome:
    """Supernet search, then the derived cell as the experiment's one trial (COMPLETE, scored as usual).

    The history goes to ``store.add_result(exp, "darts", ...)`` before the cell is trained, so a
    resumed search (killed while training the cell) skips the supernet and reruns only that trial;
    one killed during the supernet trains it again from the start (same seed, same run).
    ``time_budget`` bounds the supernet; the one derived cell is trained after it, as the loop lets
    a started trial finish.
    """
    exp_id = experiment.id
    done = store.results(exp_id, NAME)
    if done:
        payload = done[-1]
    else:
        if store.trials(exp_id):
            raise NasforgeError(f"experiment {experiment.name!r} holds trials of another strategy; "
                                "give a new --name or --db for the darts search")
        left = None if time_budget is None else max(0.0, time_budget - experiment.elapsed)
        run = run_darts(space, data, options=options, seed=seed, time_budget=left, on_progress=on_progress,
                        class_weight=evaluator.recipe.class_weight)
        payload = run.to_json()
        store.add_elapsed(exp_id, run.seconds)
        store.add_result(exp_id, NAME, payload)
    sample = dict(payload["sample"])
    reason = space.check(sample, data.input_shape, data.n_classes)
    if reason is not None:
        raise NasforgeError(f"the cell DARTS derived ({payload['arch']}) cannot be trained: {reason}; "
                            "relax the space's limits (its history is stored)")
    exp = store.experiment(experiment.name)
    assert exp is not None
    outcome = run_search(store=store, experiment=exp, space=space, strategy=DerivedCell(space, sample, seed=seed),
                         evaluator=evaluator, input_shape=data.input_shape, n_out=data.n_classes, budget=budget,
                         max_trials=1, time_budget=None, on_progress=on_progress)
    outcome.stopped = str(payload["stopped"])
    return outcome
