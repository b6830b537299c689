"""Which dimensions and operations mattered: grouped permutation importance on a surrogate of the trials.

A random forest learns to predict a trial's validation score from an encoding of its architecture.
With k-fold cross-validation every trial is predicted by a forest that never saw it, once as it is
and once per shuffle of one group of features across the held-out trials. A group's importance is
how much the shuffles lower the cross-validated R² (Breiman 2001; grouped, as in Gregorutti et al.
2015, so a family of correlated features counts once). The forest's own cross-validated R² is
reported with it: near zero, the ranking is noise.

Encodings, one fixed-length vector per architecture:

- chain space: counts and means over the *active* blocks (depth, blocks of each type, conv and dense
  widths, kernels, strides and padding, activations, batch-norm, pooling, dropout, head, skips,
  parallel blocks), so a setting counts wherever its block sits; grouped into those families, and
  also ranked feature by feature.
- cell space: one-hot operation per edge, grouped per edge; and, in a second forest, how many edges
  use each operation, one feature per operation.
- any other space: the index of each dimension's value (-1 when inactive), one group per dimension.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasforge.fmt import fmt_budget
from nasforge.report.frame import scores_by_budget
from nasforge.result import Result, scored_sample
from nasforge.space.base import SearchSpace
from nasforge.space.cell import CellSpace
from nasforge.space.chain import ChainSpace
from nasforge.types import Budget, Sample

MIN_TRIALS = 8
MAX_ANALYSED = 500  # trials the forests see at most; more are sampled


@dataclass(frozen=True)
class Panel:
    """One ranking: names with mean and standard deviation of the drop in cross-validated R²."""

    title: str
    names: list[str]
    mean: list[float]
    std: list[float]
    r2: float  # cross-validated R² of this panel's surrogate
    direction: list[float | None] = field(default_factory=list)  # Spearman rho of a feature with the score


@dataclass(frozen=True)
class Analysis:
    panels: list[Panel]
    target: str  # what was explained, e.g. "validation accuracy after 2ep@20%"
    n: int  # trials used
    method: str
    note: str | None = None  # why there is no ranking, when there is none


# ---------------------------------------------------------------------- encodings
Features = dict[str, float]
Families = dict[str, str]  # feature -> family


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if xs else 0.0


def chain_features(space: ChainSpace, s: Sample) -> tuple[Features, Families]:
    blocks = space.blocks(s)
    f: Features = {}
    fam: Families = {}

    def put(name: str, value: float, family: str) -> None:
        f[name], fam[name] = float(value), family

    convs = [b for b in blocks if b.type in ("conv", "parallel")]
    dense = [b for b in blocks if b.type == "dense"]
    put("blocks", len(blocks), "depth")
    for t in space.types:
        put(f"{t} blocks", sum(b.type == t for b in blocks), "block types")
    put("conv width (mean log2)", _mean([math.log2(b.get("width")) for b in convs]), "width")
    put("dense width (mean log2)", _mean([math.log2(b.get("width")) for b in dense]), "width")
    plain = [b for b in blocks if b.type == "conv"]
    put("conv kernel (mean)", _mean([b.get("kernel") for b in plain]), "kernel")
    put("stride-2 convs", sum(b.get("stride") > 1 for b in plain), "stride & padding")
    put("valid-padding convs", sum(b.get("padding") == "valid" for b in plain), "stride & padding")
    for a in space.activations:
        put(f"{a} activations", sum(b.get("act") == a for b in convs + dense), "activation")
    put("batch-norm convs", sum(bool(b.get("bn")) for b in convs), "batch norm")
    pools = [b for b in blocks if b.type == "pool"]
    for p in space.pools:
        put(f"{p} pools", sum(b.get("pool") == p for b in pools), "pooling")
    put("pool size (mean)", _mean([b.get("pool_size") for b in pools]), "pooling")
    put("dropout rate (mean)", _mean([b.get("rate") for b in blocks if b.type == "dropout"]), "dropout")
    if len(space.heads) > 1:
        put("global-average-pool head", -1.0 if dense else float(s["head"] == "gap"), "head")
    put("skip connections", sum(bool(b.get("skip")) for b in convs), "skips")
    par = [b for b in blocks if b.type == "parallel"]
    put("parallel branches (mean)", _mean([b.get("branches") for b in par]), "parallel blocks")
    put("concat merges", sum(b.get("merge") == "concat" for b in par), "parallel blocks")
    return f, fam


OP_NAMES = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv 1x1", "nor_conv_3x3": "conv 3x3",
            "avg_pool_3x3": "avg-pool 3x3"}


def edge_label(name: str) -> str:
    """``edge_2_0`` -> ``edge 2←0`` (into node 2 from node 0)."""
    _, j, i = name.split("_")
    return f"edge {j}←{i}"


def cell_edge_features(space: CellSpace, s: Sample) -> tuple[Features, Families]:
    f: Features = {}
    fam: Families = {}
    for e in space.dims():
        for op in space.ops:
            name = f"{edge_label(e)}: {OP_NAMES.get(op, op)}"
            f[name], fam[name] = float(s[e] == op), edge_label(e)
    return f, fam


def cell_op_features(space: CellSpace, s: Sample) -> tuple[Features, Families]:
    f: Features = {}
    for op in space.ops:
        f[f"{OP_NAMES.get(op, op)} edges"] = float(sum(s[e] == op for e in space.dims()))
    return f, {k: k for k in f}


def generic_features(space: SearchSpace, s: Sample) -> tuple[Features, Families]:
    active = set(space.active(s))
    f: Features = {}
    for name, d in space.dims().items():
        f[name] = float(d.index(s[name])) if name in active else -1.0
    return f, {k: k for k in f}


# ---------------------------------------------------------------------- the surrogate
def grouped_permutation_importance(x: np.ndarray, y: np.ndarray, groups: Mapping[str, Sequence[int]], *,
                                   seed: int = 0, repeats: int = 20,
                                   n_estimators: int = 100) -> tuple[float, dict[str, tuple[float, float]]]:
    """Cross-validated R² of a random forest, and per group the mean and std (over shuffles) of its drop."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    n = len(y)
    var = float(np.var(y))
    rng = np.random.default_rng(seed)
    names = list(groups)
    base = np.empty(n)
    shuffled = np.empty((len(names), repeats, n))
    folds = 3 if n > 300 else max(2, min(5, n // 3))  # many trials: fewer, larger folds cost less, estimate as well
    for train, test in KFold(n_splits=folds, shuffle=True, random_state=seed).split(x):
        model = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1)
        model.fit(x[train], y[train])
        xt = x[test]
        stack = [xt]
        for g in names:
            cols = list(groups[g])
            for _ in range(repeats):
                xp = xt.copy()
                xp[:, cols] = xt[rng.permutation(len(test))][:, cols]
                stack.append(xp)
        pred = model.predict(np.vstack(stack)).reshape(1 + len(names) * repeats, len(test))
        base[test] = pred[0]
        shuffled[:, :, test] = pred[1:].reshape(len(names), repeats, len(test))
    mse = float(np.mean((base - y) ** 2))
    drops = (np.mean((shuffled - y) ** 2, axis=2) - mse) / var  # (groups, repeats)
    return 1 - mse / var, {g: (float(drops[i].mean()), float(drops[i].std())) for i, g in enumerate(names)}


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(a, b).statistic)
    return rho if math.isfinite(rho) else None


def _panel(title: str, rows: list[Features], families: Families, y: np.ndarray, *, grouped: bool, seed: int,
           repeats: int, top: int) -> Panel | None:
    names = [k for k in rows[0] if np.ptp([r[k] for r in rows]) > 0]  # constant features carry nothing
    if not names:
        return None
    x = np.array([[r[k] for k in names] for r in rows], dtype=float)
    if grouped:
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(names):
            groups.setdefault(families[k], []).append(i)
    else:
        groups = {k: [i] for i, k in enumerate(names)}
    r2, imp = grouped_permutation_importance(x, y, groups, seed=seed, repeats=repeats)
    order = sorted(imp, key=lambda g: -imp[g][0])[:top]
    direction = [None if grouped else spearman(x[:, names.index(g)], y) for g in order]
    return Panel(title=title, names=order, mean=[imp[g][0] for g in order], std=[imp[g][1] for g in order],
                 r2=r2, direction=direction)


def target_scores(data: Result) -> tuple[list[int], np.ndarray, str]:
    """Trial indices and the scores to explain: at the budget most trials finished (with a scheduler,
    lower rungs are the only budget every trial reached), and what that score is."""
    ladder = data.ladder
    pos = {b: i for i, b in enumerate(ladder)}
    per = [scores_by_budget(t, ladder, pos) for t in data.trial_list]
    counts: dict[Budget, int] = {}
    for d in per:
        for b in d:
            counts[b] = counts.get(b, 0) + 1
    if not counts:
        return [], np.zeros(0), "validation score"
    budget = max(counts, key=lambda b: (counts[b], b.epochs * b.fraction))
    idx = [i for i, d in enumerate(per) if budget in d]
    y = np.array([per[i][budget] for i in idx], dtype=float)
    what = f"validation score after {fmt_budget(budget)}"
    if len(counts) > 1:
        what += f" (the budget most trials reached: {len(idx)} of {sum(bool(d) for d in per)})"
    return idx, y, what


def analyse(data: Result, *, seed: int = 0, repeats: int = 20, top: int = 12) -> Analysis:
    """Rank what mattered in this experiment's trials; an Analysis with a note instead when it cannot."""
    space = data.space
    idx, y, what = target_scores(data)
    encoders: list[tuple[str, Any, bool]]
    if isinstance(space, ChainSpace):
        encoders = [("dimension families", chain_features, True), ("single features", chain_features, False)]
        enc_text = ("counts and means over the active blocks (depth, blocks of each type, widths, kernels, strides and "
                    "padding, activations, batch-norm, pooling, dropout, head, skips), so a setting counts wherever "
                    "its block sits; ranked by family, and feature by feature")
    elif isinstance(space, CellSpace):
        encoders = [("edges of the cell", cell_edge_features, True), ("operations", cell_op_features, False)]
        enc_text = ("the operation on each edge (one-hot, grouped per edge) and, in a second forest, how many edges "
                    "use each operation")
    else:
        encoders = [("dimensions", generic_features, True)]
        enc_text = "the index of each dimension's value (-1 where inactive)"
    method = (f"A random forest (100 trees) predicts each trial's {what} from its architecture, encoded as {enc_text}. "
              "In k-fold cross-validation every trial is predicted by a forest that did not see it, as it is and "
              f"with one group of features shuffled across the held-out trials ({repeats} shuffles). Importance is "
              "the drop in cross-validated R² (the share of score variance the forest explains) the shuffle causes; "
              "bars show the mean and one standard deviation over shuffles. In feature rankings green means more "
              "of the feature goes with higher scores, red with lower (Spearman correlation).")
    if len(idx) < MIN_TRIALS:
        return Analysis([], what, len(idx), method, note=f"{len(idx)} scored trial(s): an importance analysis "
                        f"needs at least {MIN_TRIALS}; run more trials")
    if float(np.ptp(y)) == 0:
        return Analysis([], what, len(idx), method, note="every trial scored the same: nothing to explain")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return Analysis([], what, len(idx), method, note="the importance analysis needs scikit-learn: "
                        "pip install scikit-learn")
    n_all = len(idx)
    if n_all > MAX_ANALYSED:  # a seeded sample: the forests' cost grows with the trials, the ranking hardly does
        pick = scored_sample(range(n_all), MAX_ANALYSED, seed)
        idx, y = [idx[i] for i in pick], y[pick]
        method += f" It analyses a seeded random sample of {MAX_ANALYSED:,} of the {n_all:,} trials."
    samples = [t.sample for t in data.detailed([data.trial_list[i] for i in idx])]
    panels: list[Panel] = []
    for title, enc, grouped in encoders:
        rows: list[Features] = []
        fams: Families = {}
        keep: list[int] = []
        for j, sample in enumerate(samples):
            try:
                feats, fams = enc(space, sample)
            except (KeyError, ValueError, TypeError):  # a sample this space cannot read: leave it out
                continue
            rows.append(feats)
            keep.append(j)
        if len(rows) < MIN_TRIALS:
            continue
        p = _panel(title, rows, fams, y[keep], grouped=grouped, seed=seed, repeats=repeats, top=top)
        if p is not None:
            panels.append(p)
    note = None if panels else "the trials do not differ in any encoded feature"
    return Analysis(panels, what, len(idx), method, note=note)


BESIDE_OVER = 5000  # trials above which the analysis runs in a forked process while the report draws the rest


def analyse_beside(data: Result, *, seed: int = 0) -> Callable[[], Analysis]:
    """:func:`analyse`, started now; call the result for the Analysis (the same either way).

    On a large study it runs in a forked process, so a second core imports scikit-learn and fits the forests
    while this one draws the other figures: a 100,000-trial report's longest part. Only on a platform that
    forks and where torch is not loaded (its OpenMP pool does not survive a fork); a child that dies, or a fork
    that fails, leaves the analysis to run here.
    """
    import multiprocessing as mp
    import os
    import sys

    def here() -> Analysis:
        return analyse(data, seed=seed)

    if (len(data.trial_list) <= BESIDE_OVER or (os.cpu_count() or 1) < 2 or "torch" in sys.modules
            or "fork" not in mp.get_all_start_methods()):
        done = here()
        return lambda: done
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child() -> None:
        send.send(here())

    try:
        proc = ctx.Process(target=child, daemon=True)
        proc.start()
    except OSError:
        done = here()
        return lambda: done
    finally:
        send.close()
    got: list[Analysis] = []

    def result() -> Analysis:
        if not got:
            try:
                got.append(recv.recv())
            except (EOFError, OSError):  # the child died (e.g. out of memory): do it here
                got.append(here())
            finally:
                recv.close()
                proc.join()
        return got[0]

    return result
