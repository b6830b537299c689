"""Learning across searches: start from an earlier experiment's best networks, or from a predictor's prior.

Two uses, both read earlier databases read-only (one written by an older nasforge is upgraded to the current
schema once first, as every command that opens it does; its trials are never changed):

- ``search.initial: {from: runs/other.db, name: EXP, top: 5}`` warm-starts a search with another
  experiment's best networks (:func:`earlier_best`). A network from a space that differs is translated
  dimension by dimension: a value this space lacks becomes its nearest (numeric) value, a dimension it
  lacks that the network does not use takes this space's first value; a network that still does not fit
  (a dimension it uses is unknown here, or this space's check refuses it) is skipped, and the reason is
  logged.
- ``strategy.options.prior: runs/*.db`` gives ``bananas`` and ``tpe`` the trials of earlier experiments
  (:func:`prior_trials`), scores standardised within each experiment (a z-score: data sets differ in how
  high accuracies run); the strategies weigh them less as this search's own trials arrive.
"""

from __future__ import annotations

import glob
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nasforge.errors import ConfigError, NasforgeError, StoreError
from nasforge.space.base import SearchSpace
from nasforge.store import Store
from nasforge.study import rank_key
from nasforge.types import Sample, Trial, TrialState

log = logging.getLogger("nasforge")

FROM_KEYS = ("from", "name", "top")
PRIOR_MAX = 2000  # trials read from earlier experiments for a prior: the predictors train on a few hundred


def check_from(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A ``{from: DB, name: EXP, top: N}`` entry's shape; the database must exist (nothing is opened yet)."""
    unknown = sorted(set(spec) - set(FROM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; a transfer entry takes from, name and top")
    path = spec.get("from")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.from must be the path of an earlier nasforge database, e.g. runs/other.db")
    if not Path(path).is_file():
        raise ConfigError(f"{where}.from: no database at {path}; give the path of an earlier search's database")
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{where}.name must be an experiment name (a string), got {name!r}")
    top = spec.get("top", 5)
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"{where}.top must be a whole number of at least 1, got {top!r}")
    return {"from": path, "name": name, "top": top}


def _read(path: str, name: str | None, where: str, *, limit: int) -> tuple[str, list[Trial]]:
    """An earlier experiment's best completed trials, best first (read-only)."""
    try:
        with Store(path, readonly=True) as store:
            exp = store.experiment(name)
            if exp is None:
                held = store.experiment_names()
                raise StoreError(f"{where}: {path} has no experiment {name!r} (it holds "
                                 f"{', '.join(map(repr, held)) or 'none'}); set name")
            trials = store.top_trials(exp.id, limit)
    except StoreError as e:
        raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    return exp.name, [t for t in trials if t.state is TrialState.COMPLETE and t.score is not None]


def _nearest(value: Any, values: Sequence[Any]) -> Any:
    """The closest of ``values`` to a number (ties: the smaller); None if either side is not numeric."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums:
        return None
    return min(nums, key=lambda v: (abs(float(v) - float(value)), float(v)))


def translate(sample: Sample, space: SearchSpace, input_shape: tuple[int, ...], n_out: int
              ) -> tuple[dict[str, Any] | None, str]:
    """``sample`` (from another experiment) as a point of ``space``: (the point, what changed) or (None, why not)."""
    dims = space.dims()
    out: dict[str, Any] = {}
    changed: list[str] = []
    missing: list[str] = []
    for name, c in dims.items():
        if name not in sample:
            out[name] = c.values[0]
            missing.append(name)
            continue
        v = sample[name]
        try:
            c.index(v)
            out[name] = v
        except ValueError:
            near = _nearest(v, c.values)
            if near is None:
                return None, f"{name}={v!r} is not one of this space's values {list(c.values)}"
            out[name] = near
            changed.append(f"{name} {v!r}->{near!r}")
    try:
        used = set(space.active(out))
    except (KeyError, ValueError, TypeError, IndexError) as e:
        return None, f"it does not describe a network of this space ({e})"
    lacking = [n for n in missing if n in used]
    if lacking:
        return None, f"it has no value for {', '.join(lacking)}, which this space's network uses"
    reason = space.check(out, input_shape, n_out)
    if reason is not None:
        return None, f"this space refuses it: {reason}"
    return out, ", ".join(changed)


def earlier_best(spec: Mapping[str, Any], space: SearchSpace, input_shape: tuple[int, ...], n_out: int,
                 where: str = "search.initial") -> list[dict[str, Any]]:
    """The ``top`` best networks of the experiment ``spec`` names that fit ``space`` (translated), best first.

    Looks further down the ranking for networks that fit, up to ten times ``top``; each one skipped is
    logged with its reason. None fitting is a one-line error: the warm start would silently do nothing.
    """
    spec = check_from(spec, where)
    exp, trials = _read(spec["from"], spec["name"], where, limit=10 * spec["top"])
    out: list[dict[str, Any]] = []
    keys: set[str] = set()
    for t in sorted(trials, key=rank_key):
        if len(out) >= spec["top"]:
            break
        s, note = translate(t.sample, space, input_shape, n_out)
        if s is None:
            log.warning("%s: trial %d of %r in %s is skipped: %s", where, t.number, exp, spec["from"], note)
            continue
        if (k := space.key(s)) in keys:
            continue
        keys.add(k)
        if note:
            log.info("%s: trial %d of %r translated (%s)", where, t.number, exp, note)
        out.append(s)
    if not out:
        raise ConfigError(f"{where}: none of the best {len(trials)} networks of {exp!r} in {spec['from']} fits "
                          "this search space (the log says why for each); widen the space or drop the entry")
    return out


def prior_paths(value: Any, where: str = "strategy.options.prior") -> list[str]:
    """The databases a prior names: a path or glob, or a list of them; each must match at least one file."""
    pats = [value] if isinstance(value, str) else value
    if not isinstance(pats, list) or not pats or not all(isinstance(p, str) and p for p in pats):
        raise ConfigError(f"{where} must be a database path or glob (runs/*.db), or a list of them; got {value!r}")
    paths: list[str] = []
    for p in pats:
        found = sorted(glob.glob(p)) if glob.has_magic(p) else ([p] if Path(p).is_file() else [])
        if not found:
            raise ConfigError(f"{where}: {p!r} matches no database file; give the path of earlier searches")
        paths += [f for f in found if f not in paths]
    return paths


def prior_trials(value: Any, space: SearchSpace, input_shape: tuple[int, ...], n_out: int, *,
                 exclude: tuple[str, str] | None = None, where: str = "strategy.options.prior"
                 ) -> list[tuple[dict[str, Any], float]]:
    """Every earlier experiment's scored trials in the databases ``value`` names, translated to ``space``, as
    (sample, z-score within its experiment); ``exclude`` = (db, name) leaves this search's own out."""
    out: list[tuple[dict[str, Any], float]] = []
    for path in prior_paths(value, where):
        try:
            with Store(path, readonly=True) as store:
                names = store.experiment_names()
        except NasforgeError as e:
            raise ConfigError(f"{where}: {e}") from None
        for name in names:
            if exclude is not None and Path(path).resolve() == Path(exclude[0]).resolve() and name == exclude[1]:
                continue
            _, trials = _read(path, name, where, limit=PRIOR_MAX)
            fit = [(s, float(t.score)) for t in trials  # type: ignore[arg-type]
                   for s in [translate(t.sample, space, input_shape, n_out)[0]] if s is not None]
            if len(fit) < 2:
                continue
            mu = sum(v for _, v in fit) / len(fit)
            sd = math.sqrt(sum((v - mu) ** 2 for _, v in fit) / len(fit)) or 1.0
            out += [(s, (v - mu) / sd) for s, v in fit]
            log.info("%s: %d trials of %r in %s (%d did not fit this space)", where, len(fit), name, path,
                     len(trials) - len(fit))
    if not out:
        raise ConfigError(f"{where}: no earlier trial fits this search space; give databases of searches over "
                          "the same kind of space")
    return out


__all__ = ["FROM_KEYS", "check_from", "earlier_best", "prior_paths", "prior_trials", "translate"]
