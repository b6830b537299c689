"""The report's figures as PNG files: matplotlib's object API on the Agg canvas, no pyplot state.

Every function writes its PNG even when the experiment gives it nothing to show (no trials, no
curves, too few trials), with a line saying why, so a report always has the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nasforge import atomic
from nasforge.fmt import fmt_budget
from nasforge.pareto import pareto_front
from nasforge.report.frame import best_seen, ranked
from nasforge.report.importance import Analysis
from nasforge.result import Result, scored_sample
from nasforge.types import Budget, Trial, TrialState

DPI = 110
MAX_POINTS = 3000  # above this many trials a figure shows their density, not one marker each
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically: a failed write leaves the previous figure, not half of one."""
    return atomic.replace(path, lambda tmp: fig.savefig(tmp, dpi=DPI, facecolor="white", format="png"))


def message(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def score_limits(values: Sequence[float]) -> tuple[float, float]:
    """A y range that shows the good trials: diverged outliers (e.g. 10% accuracy) are clipped to the bottom."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return 0.0, 1.0
    hi = float(v.max())
    lo = float(np.quantile(v, 0.1)) if v.size >= 10 else float(v.min())
    pad = 0.08 * (hi - lo) if hi > lo else 0.01
    return lo - pad, hi + pad


def clip(values: Sequence[float], lo: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=float)
    return np.maximum(v, lo), v < lo


def density(ax: Axes, x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, label: str, *,
            log_x: bool = False) -> None:
    """Where the trials lie, as hexagons shaded by count (log scale): 10^5 markers would hide each other."""
    ax.hexbin(np.asarray(x, dtype=float), np.asarray(y, dtype=float), gridsize=(60, 30), bins="log", mincnt=1,
              cmap="Blues", linewidths=0, zorder=2, xscale="log" if log_x else "linear")
    ax.scatter([], [], marker="h", s=40, color="#6baed6", label=label)  # the legend's entry for the shading


def budget_colours(trials: Sequence[Trial]) -> dict[Budget, str]:
    budgets = sorted({t.budget for t in trials}, key=lambda b: b.epochs * b.fraction)
    return {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(budgets)}


# ---------------------------------------------------------------------- best so far
def best_so_far(data: Result, path: Path) -> Path:
    """Best score so far against trial number and against search time, with every trial as a point."""
    fig = new_figure(11, 4.6)
    ax_n, ax_t = fig.subplots(1, 2)
    done = sorted((t for t in data.trial_list if t.state.finished), key=lambda t: t.number)
    if not any(t.ok for t in done):
        for ax in (ax_n, ax_t):
            message(ax, "no scored trial yet")
        return save(fig, path)
    scored = [t for t in done if t.ok]
    lo, hi = score_limits([t.score for t in scored if t.score is not None])
    colours = budget_colours(scored)
    top = data.ladder[-1] if data.ladder else max((t.budget for t in scored), key=lambda b: b.epochs * b.fraction)
    multi = len(colours) > 1
    starts = [t.started for t in data.trial_list if t.started is not None]
    t0 = min(starts) if starts else 0.0
    span = max((t.finished or t0) - t0 for t in done)
    unit, div = ("minutes", 60.0) if span >= 120 else ("seconds", 1.0)

    def xs(ts: Sequence[Trial], by_time: bool) -> np.ndarray:
        return np.array([((t.finished or t0) - t0) / div if by_time else t.number for t in ts], dtype=float)

    for ax, by_time in ((ax_n, False), (ax_t, True)):
        order = sorted(done, key=lambda t: (t.finished or 0.0) if by_time else t.number)
        x = xs(order, by_time)
        run = np.maximum.accumulate([t.score if t.ok and t.score is not None else -np.inf for t in order])
        run = np.where(np.isfinite(run), run, np.nan)
        ax.step(x, np.maximum(run, lo), where="post", color="black", lw=2,
                label="best so far" + (" (each trial at its final budget)" if multi else ""))
        if multi:
            full = np.maximum.accumulate([t.score if t.ok and t.budget == top and t.score is not None else -np.inf
                                          for t in order])
            if np.isfinite(full).any():
                ax.step(x, np.where(np.isfinite(full), full, np.nan), where="post", color="#2ca02c", lw=1.5,
                        ls="--", label=f"best at the full budget ({fmt_budget(top)})")
        clipped = False
        if len(scored) > MAX_POINTS:
            y, _ = clip([t.score or 0.0 for t in order if t.ok], lo)
            density(ax, xs([t for t in order if t.ok], by_time), y, f"{len(scored):,} scored trials (density)")
        for b, c in colours.items():
            group = [t for t in order if t.ok and t.budget == b] if len(scored) <= MAX_POINTS else []
            if group:
                y, low = clip([t.score or 0.0 for t in group], lo)
                ax.scatter(xs(group, by_time), y, s=18, color=c, alpha=0.75, zorder=3,
                           marker="o", label=f"trial, {fmt_budget(b)}" if multi else "trial")
                if low.any():
                    ax.scatter(xs(group, by_time)[low], y[low], s=30, color=c, marker="v", zorder=4,
                               label=None if clipped else "below the axis")
                    clipped = True
        pruned = [t for t in order if t.state is TrialState.PRUNED]
        n_pruned = len(pruned)
        pruned = scored_sample(pruned, MAX_POINTS)
        if pruned:
            seen = [best_seen(t) for t in pruned]
            ax.scatter(xs(pruned, by_time), np.maximum([v if v is not None else lo for v in seen], lo), s=22,
                       color="#7f7f7f", marker="x", zorder=3,
                       label=f"pruned ({n_pruned:,}" + (f", {len(pruned):,} shown)" if n_pruned > len(pruned) else ")"))
        failed = [t for t in order if t.state is TrialState.FAILED]
        n_failed = len(failed)
        failed = scored_sample(failed, MAX_POINTS)
        if failed:
            ax.scatter(xs(failed, by_time), np.full(len(failed), lo), s=26, color="#d62728", marker="x", zorder=3,
                       clip_on=False,
                       label=f"failed ({n_failed:,}" + (f", {len(failed):,} shown)" if n_failed > len(failed) else ")"))
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"search time ({unit})" if by_time else "trial number")
        ax.set_ylabel(data.score_name)
        ax.grid(alpha=0.3)
    ax_n.set_title("best so far, by trial")
    ax_t.set_title("best so far, by time")
    handles, labels = ax_n.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8, frameon=False)
    return save(fig, path)


# ---------------------------------------------------------------------- learning curves
def learning_curves(data: Result, path: Path, top: int = 8) -> Path:
    """Validation accuracy (a regression's score, -RMSE) per epoch of the best trials, the others faint behind
    them."""
    fig = new_figure(11, 4.2)
    ax = fig.subplots()
    # whole records only of the trials drawn: the top ones (the first ranked that have a curve) and a sample
    best = [t for t in data.detailed(ranked(data.trial_list)[: 5 * top]) if t.curve][:top]
    if not best:
        message(ax, "no learning curves stored (tabular-benchmark trials have none)" if data.trial_list
                else "no trial yet")
        return save(fig, path)
    others = data.detailed(scored_sample(data.trial_list, 300))
    key = "val_score" if data.regression else "val_accuracy"

    def curve(t: Trial) -> tuple[list[float], list[float]]:
        pts = [(float(r.get("epoch", i + 1)), float(r[key])) for i, r in enumerate(t.curve)
               if isinstance(r.get(key), int | float)]
        return [p[0] for p in pts], [p[1] for p in pts]

    chosen = {t.number for t in best}
    all_vals = [v for t in [*best, *others] for v in curve(t)[1]]
    lo, hi = score_limits(all_vals)
    for t in others:
        if t.number not in chosen and t.curve:
            x, y = curve(t)
            ax.plot(x, np.maximum(y, lo), color="#bbbbbb", lw=0.8, alpha=0.6,
                    ls=":" if t.state is TrialState.PRUNED else "-")
    for i, t in enumerate(best):
        x, y = curve(t)
        ax.plot(x, np.maximum(y, lo), marker="o", ms=3, lw=1.8, color=PALETTE[i % len(PALETTE)],
                label=f"#{t.number}  {t.score:.4f}  ({fmt_budget(t.budget)})")
    ax.set_ylim(lo, hi)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(data.score_name)
    grey = "the other trials" if len(others) == len(data.trial_list) else f"{len(others)} trials sampled"
    ax.set_title(f"learning curves of the top {len(best)} trials (grey: {grey}, dotted: pruned)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="trial, score, budget")
    return save(fig, path)


# ---------------------------------------------------------------------- train against validation
def _series(curve: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    pts = [(float(r.get("epoch", i + 1)), float(r[key])) for i, r in enumerate(curve)
           if isinstance(r.get(key), int | float) and math.isfinite(float(r[key]))]
    return [p[0] for p in pts], [p[1] for p in pts]


def train_curves(data: Result, path: Path) -> Path:
    """Training against validation, loss and accuracy per epoch, for the best trial; then the final training of
    each network (training loss and accuracy: it trains on the validation split too, so it has no validation)."""
    models = [m for m in (data.retrains[-1].get("models") or [] if data.retrains else []) if isinstance(m, dict)]
    first = models[0].get("seed", 0) if models else 0
    finals = [m for m in models if m.get("curve") and m.get("seed", 0) == first]  # the first seed's networks
    fig = new_figure(5.0 * (2 + len(finals)), 4.0)
    axes = fig.subplots(1, 2 + len(finals))
    best = data.best
    curve = best.curve if best is not None else ()
    measure = "rmse" if data.regression else "accuracy"  # a regression's curves: RMSE in the target's units
    for ax, what in ((axes[0], measure), (axes[1], "loss")):
        tx, ty = _series(curve, f"train_{what}")
        vx, vy = _series(curve, f"val_{what}")
        if not ty and not vy:
            message(ax, "no curve stored for the best trial" if best is not None else "no scored trial yet")
            continue
        ax.plot(tx, ty, marker="o", ms=3, color=PALETTE[0], label=f"training {what}")
        ax.plot(vx, vy, marker="s", ms=3, color=PALETTE[1], label=f"validation {what}")
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(tx + vx) + 0.5)  # one epoch still reads as epoch 1
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"best trial #{best.number if best else '?'}: {what}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax, m in zip(axes[2:], finals, strict=True):
        lx, ly = _series(m["curve"], "train_loss")
        ax.plot(lx, ly, color=PALETTE[0], label="training loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        acc = ax.twinx()
        ax_, ay = _series(m["curve"], f"train_{measure}")
        acc.plot(ax_, ay, color=PALETTE[2], label=f"training {measure}")
        acc.set_ylabel(f"training {measure}")
        test = m.get("test", {}).get(measure)
        said = f" (test {100 * test:.2f}%)" if isinstance(test, int | float) else ""
        if data.regression and isinstance(test, int | float):
            said = f" (test RMSE {test:.4g})"
        ax.set_title(f"final training: {m.get('name', '?')}{said}", fontsize=9.5)
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
        ax.legend(handles, [str(h.get_label()) for h in handles], fontsize=8, loc="center right")
    return save(fig, path)


# ---------------------------------------------------------------------- accuracy against cost
COSTS = {"params": "parameters", "flops": "FLOPs per example", "latency": "CPU latency per example (ms)"}


def cost_value(t: Trial, what: str) -> float | None:
    if t.cost is None:
        return None
    v = {"params": t.cost.params, "flops": t.cost.flops, "latency": t.cost.latency_ms}[what]
    return None if v is None or not v > 0 else float(v)


def accuracy_vs_cost(data: Result, path: Path) -> Path:
    """Accuracy against parameters and FLOPs (and latency, when it is an objective), each with its Pareto front."""
    kinds = ["params", "flops"] + (["latency"] if "latency" in data.objectives else [])
    fig = new_figure(5.5 * len(kinds), 4.4)
    axes = fig.subplots(1, len(kinds))
    scored = data.scored
    colours = budget_colours(scored)
    best = data.best
    for ax, kind in zip(axes, kinds, strict=True):
        pts = [t for t in scored if cost_value(t, kind) is not None]
        if not pts:
            message(ax, f"no trial with a measured {COSTS[kind].split(' (')[0]}")
            continue
        lo, hi = score_limits([t.score for t in pts if t.score is not None])
        xs = [cost_value(t, kind) or 1.0 for t in pts]
        log = max(xs) / min(xs) > 20
        if len(pts) > MAX_POINTS:
            y, _ = clip([t.score or 0.0 for t in pts], lo)
            density(ax, xs, y, f"{len(pts):,} trials (density)", log_x=log)
        for b, c in colours.items():
            group = [t for t in pts if t.budget == b] if len(pts) <= MAX_POINTS else []
            if group:
                y, _ = clip([t.score or 0.0 for t in group], lo)
                ax.scatter([cost_value(t, kind) for t in group], y, s=20, color=c, alpha=0.7, zorder=3,
                           label=f"trial, {fmt_budget(b)}" if len(colours) > 1 else "trial")
        front = sorted(pareto_front(pts, ["accuracy", kind]), key=lambda t: cost_value(t, kind) or 0.0)
        fx = [cost_value(t, kind) or 0.0 for t in front]
        fy = [t.score or 0.0 for t in front]
        ax.step(fx, fy, where="post", color="#d62728", lw=1.5, zorder=4)
        ax.scatter(fx, fy, s=48, facecolors="none", edgecolors="#d62728", lw=1.5, zorder=5,
                   label=f"Pareto front ({len(front)})")
        if best is not None and cost_value(best, kind) is not None:
            ax.scatter([cost_value(best, kind)], [best.score], marker="*", s=220, color="gold", edgecolors="black",
                       zorder=6, label=f"best, #{best.number}")
        if log:
            ax.set_xscale("log")
        label_front(ax, front, fx, fy, (min(xs), max(xs)), (lo, hi), log=log)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(COSTS[kind])
        ax.set_ylabel(data.score_name)
        ax.set_title(f"{'score' if data.regression else 'accuracy'} vs {COSTS[kind].split(' (')[0]}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    if len(data.objectives) > 1:
        fig.suptitle(f"search objectives: {', '.join(data.objectives)}", fontsize=10)
    return save(fig, path)


def label_front(ax: Axes, front: Sequence[Trial], fx: Sequence[float], fy: Sequence[float],
                xlim: tuple[float, float], ylim: tuple[float, float], *, log: bool) -> None:
    """Trial numbers beside the front's points, leaving out labels that would overlap one already placed."""
    def norm(v: float, lim: tuple[float, float], use_log: bool) -> float:
        a, b, v = (math.log(lim[0]), math.log(lim[1]), math.log(v)) if use_log else (lim[0], lim[1], v)
        return (v - a) / (b - a) if b > a else 0.5

    placed: list[tuple[float, float]] = []
    for t, x, y in zip(front, fx, fy, strict=True):
        p = (norm(x, xlim, log), norm(y, ylim, False))
        if y < ylim[0] or any(abs(p[0] - q[0]) < 0.07 and abs(p[1] - q[1]) < 0.05 for q in placed):
            continue
        placed.append(p)
        ax.annotate(f"#{t.number}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#d62728")


# ---------------------------------------------------------------------- importance
def importance(analysis: Analysis, path: Path) -> Path:
    """One horizontal bar chart per ranking: drop in cross-validated R² when the feature is shuffled."""
    panels = analysis.panels
    if not panels:
        fig = new_figure(11, 2.6)
        message(fig.subplots(), f"no importance analysis: {analysis.note}")
        return save(fig, path)
    rows = max(len(p.names) for p in panels)
    fig = new_figure(5.6 * len(panels), 1.2 + 0.32 * rows)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, p in zip(axes, panels, strict=True):
        y = np.arange(len(p.names))[::-1]
        colours = ["#4c72b0" if d is None else "#2ca02c" if d > 0 else "#d62728"
                   for d in (p.direction or [None] * len(p.names))]
        ax.barh(y, p.mean, xerr=p.std, color=colours, alpha=0.85, error_kw={"lw": 1, "ecolor": "#333"})
        ax.set_yticks(y, p.names, fontsize=8)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("drop in cross-validated R² when shuffled")
        weak = ": no better than guessing the mean, the ranking is noise" if p.r2 < 0.05 else ""
        ax.set_title(f"{p.title}\n(surrogate R² {p.r2:.2f}{weak})", fontsize=9.5)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"what mattered for the {analysis.target}, {analysis.n} trials", fontsize=10)
    return save(fig, path)
