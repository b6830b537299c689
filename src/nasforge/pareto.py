"""Objectives and Pareto fronts: accuracy against what a network costs to deploy.

Every objective is turned into one to minimise (``-score``, parameters, FLOPs, latency, int8 latency), so one
non-dominated sort serves the multi-objective strategy, the scheduler's promotions and ``status``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nasforge.errors import ConfigError
from nasforge.types import Trial

OBJECTIVES = ("accuracy", "params", "flops", "latency", "latency_int8")  # latency_int8: the int8 version's, on the CPU


def check_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    obj = tuple(objectives)
    if not obj or obj[0] != "accuracy":
        raise ConfigError(f"search.objectives must start with accuracy (the score), got {list(obj)}; "
                          "e.g. [accuracy, params]")
    for o in obj:
        if o not in OBJECTIVES:
            raise ConfigError(f"unknown objective {o!r}: choose from {', '.join(OBJECTIVES)}")
    if len(set(obj)) != len(obj):
        raise ConfigError(f"search.objectives lists an objective twice: {list(obj)}")
    return obj


def point(t: Trial, objectives: Sequence[str], score: float | None = None) -> tuple[float, ...]:
    """The trial as a vector to minimise; a missing cost counts as infinitely expensive."""
    out = []
    for o in objectives:
        if o == "accuracy":
            v = t.score if score is None else score
            out.append(-v if v is not None else math.inf)
        elif t.cost is None:
            out.append(math.inf)
        elif o == "params":
            out.append(float(t.cost.params))
        elif o == "flops":
            out.append(float(t.cost.flops))
        elif o == "latency_int8":
            out.append(math.inf if t.cost.latency_int8_ms is None else float(t.cost.latency_int8_ms))
        else:
            out.append(math.inf if t.cost.latency_ms is None else float(t.cost.latency_ms))
    return tuple(out)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices grouped into fronts, best front first (Deb et al. 2002, the O(M N^2) version)."""
    n = len(points)
    dominated_by: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by[j].append(i)
                count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(current)
        nxt = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        current = sorted(nxt)
    return fronts


def crowding(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance within one front: larger means a lonelier, more valuable point; ends are infinite."""
    dist = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for m in range(len(points[front[0]])):
        order = sorted(front, key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            dist[i] += (points[b][m] - points[a][m]) / (hi - lo)
    return dist


def rank(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices best first: by front, then by crowding distance (NSGA-II's order)."""
    out: list[int] = []
    for front in non_dominated_sort(points):
        cd = crowding(points, front)
        out.extend(sorted(front, key=lambda i: (-cd[i], i)))
    return out


def pareto_front(trials: Sequence[Trial], objectives: Sequence[str]) -> list[Trial]:
    """The scored trials no other scored trial dominates, cheapest first."""
    ok = [t for t in trials if t.ok]
    if not ok:
        return []
    pts = [point(t, objectives) for t in ok]
    front = [ok[i] for i in non_dominated_sort(pts)[0]]
    return sorted(front, key=lambda t: (*point(t, objectives)[1:], -(t.score or 0.0)))
