"""Drawings of one architecture with matplotlib alone (no graphviz): chain layers as boxes and arrows,
with parallel branches and residual skips; cells as a DAG of nodes with one labelled edge per operation."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from nasforge.fmt import fmt_budget, fmt_count
from nasforge.report.importance import OP_NAMES
from nasforge.report.plots import message, new_figure, save
from nasforge.result import Result
from nasforge.space.cell import CellSpace, edge_name
from nasforge.space.chain import PARALLEL_KERNELS, Block, ChainSpace
from nasforge.types import METRIC_WORDS, Trial, score_metric

BLOCK_COLOURS = {"conv": "#cfe2f3", "parallel": "#d0f0ee", "pool": "#fce5cd", "dense": "#d9ead3",
                 "dropout": "#eeeeee", "batchnorm": "#e6d5f0", "io": "#ffffff", "head": "#fff2cc"}
OP_COLOURS = {"skip_connect": "#7f7f7f", "nor_conv_1x1": "#1f77b4", "nor_conv_3x3": "#d62728",
              "avg_pool_3x3": "#2ca02c"}
STEP = 0.9  # vertical distance between rows of a chain drawing, in data units
UNIT = 0.62  # inches per data unit


def title(t: Trial) -> str:
    cost = f", {fmt_count(t.cost.params)} params, {fmt_count(t.cost.flops)} FLOPs" if t.cost else ""
    name = score_metric(t.score, t.metrics)  # accuracy, or the metric the search ranked by
    score = (f"validation RMSE {t.metrics['rmse']:.4g}" if "rmse" in t.metrics else
             f"validation {METRIC_WORDS[name]} {t.score:.4f}")
    return f"best architecture: trial #{t.number}, {score} at {fmt_budget(t.budget)}{cost}"


def architecture(data: Result, path: Path) -> Path:
    """The best trial's network: layer boxes for a chain, the cell graph for a cell space."""
    best = data.best
    if best is None:
        fig = new_figure(8, 2.5)
        message(fig.subplots(), "no scored trial yet: nothing to draw")
        return save(fig, path)
    space = data.space
    try:
        if isinstance(space, ChainSpace):
            return draw_chain(space, best, path)
        if isinstance(space, CellSpace):
            return draw_cell(space, best, path)
    except (KeyError, ValueError, TypeError) as e:  # a sample this space cannot read (edited config)
        fig = new_figure(8, 2.5)
        message(fig.subplots(), f"cannot draw trial #{best.number}: {e}")
        return save(fig, path)
    fig = new_figure(10, 2.5)
    ax = fig.subplots()
    message(ax, data.describe(best))
    ax.set_title(title(best), fontsize=10)
    return save(fig, path)


# ---------------------------------------------------------------------- chains
class _Canvas:
    def __init__(self, ax: Axes) -> None:
        self.ax = ax

    def box(self, x: float, y: float, w: float, text: str, colour: str, h: float = 0.5) -> None:
        self.ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                         fc=colour, ec="#333333", lw=1))
        self.ax.text(x, y, text, ha="center", va="center", fontsize=8.5)

    def node(self, x: float, y: float, text: str) -> None:
        self.ax.add_patch(Circle((x, y), 0.2, fc="white", ec="#333333", lw=1))
        self.ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(self, a: tuple[float, float], b: tuple[float, float], colour: str = "#333333") -> None:
        self.ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=9, color=colour, lw=1,
                                          shrinkA=0, shrinkB=0))


def chain_rows(blocks: list[Block], head: str | None) -> int:
    rows = 2 + (1 if head else 0)  # input, output, head
    for b in blocks:
        rows += 1 + (b.type == "parallel") + bool(dict(b.args).get("skip"))
    return rows


def draw_chain(space: ChainSpace, t: Trial, path: Path) -> Path:
    blocks = space.blocks(t.sample)
    head = None if any(b.type == "dense" for b in blocks) else str(t.sample["head"])
    rows = chain_rows(blocks, head)
    fig = new_figure(10.4 * UNIT, max(2.5, (rows * STEP + 1.0) * UNIT))
    ax = fig.subplots()
    c = _Canvas(ax)
    w, h = 4.6, 0.5
    y = 0.0
    c.box(0, y, w, "input", BLOCK_COLOURS["io"], h)
    out = (0.0, y - h / 2)  # where the next arrow starts

    for b in blocks:
        skip = bool(dict(b.args).get("skip"))
        split = (out[0], out[1] - 0.12)  # where a residual leaves the main path
        extent = w / 2  # how far right the block reaches, so a skip passes beside it
        y -= STEP
        if b.type == "parallel":
            a = dict(b.args)
            ks = PARALLEL_KERNELS[: a["branches"]]
            bw = min(2.2, 9.6 / len(ks) - 0.2)
            xs = [(i - (len(ks) - 1) / 2) * (bw + 0.2) for i in range(len(ks))]
            extent = max(extent, xs[-1] + bw / 2)
            for x, k in zip(xs, ks, strict=True):
                c.arrow(out, (x, y + h / 2))
                c.box(x, y, bw, f"conv{a['width']} {k}x{k}" + (" bn" if a["bn"] else "") + f"\n{a['act']}",
                      BLOCK_COLOURS["parallel"], h + 0.1)
            y -= STEP
            c.node(0, y, "Σ" if a["merge"] == "sum" else "⧺")
            ax.text(0.3, y, "sum" if a["merge"] == "sum" else "concat", va="center", fontsize=8, color="#555")
            for x in xs:
                c.arrow((x, y + STEP - h / 2 - 0.05), (x * 0.1, y + 0.2))
            out = (0.0, y - 0.2)
        else:
            c.arrow(out, (0, y + h / 2))
            c.box(0, y, w, b.describe().replace(" +skip", ""), BLOCK_COLOURS.get(b.type, "#ffffff"), h)
            out = (0.0, y - h / 2)
        if skip:
            y -= STEP * 0.8
            c.arrow(out, (0, y + 0.2))
            c.node(0, y, "+")
            right = min(extent + 0.3, 5.0)
            ax.plot([split[0], right, right], [split[1], split[1], y], color="#2f5597", lw=1.3)
            c.arrow((right, y), (0.2, y), "#2f5597")
            ax.text(right + 0.1, (split[1] + y) / 2, "skip", rotation=90, va="center", fontsize=8, color="#2f5597")
            out = (0.0, y - 0.2)
    if head is not None:
        y -= STEP
        c.arrow(out, (0, y + h / 2))
        c.box(0, y, w, "global average pool" if head == "gap" else "flatten", BLOCK_COLOURS["head"], h)
        out = (0.0, y - h / 2)
    y -= STEP
    c.arrow(out, (0, y + h / 2))
    c.box(0, y, w, "linear → class scores", BLOCK_COLOURS["io"], h)
    ax.set_xlim(-5.2, 5.2)
    ax.set_ylim(y - 0.5, 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title(t), fontsize=9)
    return save(fig, path)


# ---------------------------------------------------------------------- cells
def draw_cell(space: CellSpace, t: Trial, path: Path) -> Path:
    n = space.n_nodes
    gap = 2.6
    top = 0.6 * (n - 2) + 0.8 if n > 2 else 0.8  # the highest arc (from node 0 to the output) and its label
    width, height = (n - 1) * gap + 1.6, 2 * top + 1.2
    fig_w = max(7.0, width * UNIT)
    fig = new_figure(fig_w, fig_w * height / width + 0.7)
    ax = fig.subplots()
    r = 0.36
    nodes = []
    for j in range(n):
        circle = Circle((j * gap, 0), r, fc="#fff2cc" if j in (0, n - 1) else "white", ec="#333333", lw=1.3, zorder=3)
        ax.add_patch(circle)
        nodes.append(circle)
        label = "in" if j == 0 else "out" if j == n - 1 else str(j)
        ax.text(j * gap, 0, label, ha="center", va="center", fontsize=10, zorder=4)
    omitted = 0
    for j in range(1, n):
        for i in range(j):
            op = t.sample[edge_name(j, i)]
            if op == "none":
                omitted += 1
                continue
            d = j - i
            height = 0.0 if d == 1 else (0.6 * (d - 1) + 0.35) * (1 if i % 2 == 0 else -1)
            rad = -2 * height / (d * gap)  # arc3's control point is rad*length off the chord; the arc peaks halfway
            colour = OP_COLOURS.get(op, "#333333")
            ax.add_patch(FancyArrowPatch((i * gap, 0), (j * gap, 0), patchA=nodes[i], patchB=nodes[j],
                                         connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=12,
                                         color=colour, lw=1.6, ls="--" if op == "skip_connect" else "-", zorder=2))
            ax.text((i + j) / 2 * gap, height, str(OP_NAMES.get(op, op)), ha="center",
                    va="center", fontsize=8.5, color=colour, zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": colour, "lw": 0.8})
    stages = []
    ch = space.channels
    for s in range(space.n_stages):
        if s:
            stages.append("reduction")
            ch *= 2
        stages.append(f"{space.cells_per_stage}× cell ({ch} ch)")
    skeleton = (f"network: stem conv 3x3 ({space.channels} ch) → " + " → ".join(stages)
                + " → BN, ReLU, global average pool, linear")
    note = f"{omitted} 'none' edge(s) omitted; " if omitted else ""
    ax.text((n - 1) * gap / 2, -top - 0.1, f"{space.describe(t.sample)}\n{note}each node sums its incoming "
            f"edges\n{skeleton}", ha="center", va="top", fontsize=8, color="#444")
    ax.set_xlim(-0.8, (n - 1) * gap + 0.8)
    ax.set_ylim(-top - 1.1, top + 0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title(t), fontsize=9)
    return save(fig, path)
