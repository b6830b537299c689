"""The `nasforge` command. It owns the console: progress, tables and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, TextIO

from nasforge.bench import DEFAULT_STRATEGIES
from nasforge.errors import ConfigError, NasforgeError
from nasforge.evaluate.tabular import DATASETS as NB201_DATASETS
from nasforge.final import COMPRESSED, FORMATS, PRUNE_MODES
from nasforge.final.references import AUTO, CLASSIC, DEFAULTS, FLAT, IMAGE, KINDS, REFERENCES, SEQUENCE, check_baseline
from nasforge.fmt import fmt_budget, fmt_count, fmt_model, fmt_time
from nasforge.strategy import DARTS, STRATEGIES
from nasforge.types import METRIC_SHORT, METRIC_WORDS, METRICS, score_metric

log = logging.getLogger("nasforge")
DEVICE_CHOICES = "auto (CUDA, then Apple MPS, else the CPU), cpu, cuda, cuda:N or mps"
PRECISION_CHOICES = "auto (bf16 on a GPU that has it, else fp16 there; fp32 on the CPU), fp32, bf16 or fp16"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], out: TextIO) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        padded = [c.ljust(w) if i == len(r) - 1 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        line = "  ".join(padded)
        print(line.rstrip(), file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)


class ProgressPrinter:
    """One line per finished trial; on a terminal also a live status line."""

    def __init__(self, out: TextIO, describe: Any, header: str | None = None, metric: str = "accuracy") -> None:
        self.out, self.describe, self.metric = out, describe, metric
        self.header = header  # printed with the first event: after the whole config has been checked and built
        self.tty = out.isatty()
        self.darts = False  # a DARTS search: supernet epochs first, then its one trial

    def __call__(self, p: Any) -> None:
        from nasforge.types import TrialState

        if self.header is not None:
            print(self.header, file=self.out, flush=True)
            self.header = None
        if p.event in ("supernet_start", "supernet"):  # DARTS trains a supernet before its one trial
            self.supernet(p)
            return
        best = f"{p.best.score:.4f}" if p.best else "-"
        if p.best and is_regression(p.best.metrics):
            best = f"RMSE {p.best.metrics['rmse']:.4g}"
        left = fmt_time(p.remaining) if p.time_budget is not None else "-"
        status = (f"[{p.done}/{p.max_trials}] best {best} | elapsed {fmt_time(p.elapsed)} | left {left}"
                  f" | rejected {p.rejected}")
        if p.event == "trial" and p.trial is not None:
            t = p.trial
            if t.state is TrialState.COMPLETE:
                score = (f"val RMSE {t.metrics['rmse']:.4g}" if is_regression(t.metrics) else
                         f"val {score_label(t.score, t.metrics, self.metric)} {t.score:.4f}")
                what = (f"{score} after {fmt_budget(t.budget)}  "
                        f"{fmt_count(t.cost.params if t.cost else None)} params")
            else:
                what = f"{t.state.value}: {t.reason}"
            dur = fmt_time(t.duration)
            # a scheduler's promotion reports the same trial again, at a higher rung; the tally counts it once
            rung = len(t.rungs) + (t.state is not TrialState.COMPLETE)  # 1 for a trial's first result
            again = f"promoted, rung {rung}: " if rung > 1 else ""
            line = f"trial {t.number:4d}  {again}{what}  ({dur})  {self.describe(t.sample)}"
            print(("\r\033[K" if self.tty else "") + line, file=self.out)
        elif p.event == "start" and self.darts:
            print("scoring the derived cell like any trial", file=self.out)
        elif p.event == "start":
            print(f"searching: {p.done} trials done so far" if p.done else "searching", file=self.out)
        if self.tty:
            print("\r\033[K" + status, end="" if p.event != "end" else "\n", file=self.out, flush=True)
        elif p.event == "trial":
            print("  " + status, file=self.out, flush=True)


    def supernet(self, p: Any) -> None:
        self.darts = True
        if p.event == "supernet_start":
            budget = f", stops after {fmt_time(p.time_budget)}" if p.time_budget is not None else ""
            print(f"DARTS: training the supernet, {p.epochs} epochs of {p.steps_per_epoch} steps, "
                  f"remedy {p.remedy}{budget}", file=self.out, flush=True)
            return
        r = p.row
        print(f"supernet epoch {p.epoch}/{p.epochs}{' (partial)' if r['partial'] else ''}  val acc "
              f"{r['val_accuracy']:.4f}  skips {r['skips']}  ({fmt_time(p.elapsed)})  {r['arch']}",
              file=self.out, flush=True)


def score_label(score: float | None, metrics: Mapping[str, Any], metric: str = "accuracy") -> str:
    """What a trial's score is, short, for its progress line (:func:`~nasforge.types.score_metric`: a resumed auto
    run, its metric not given again, still names it right)."""
    return METRIC_SHORT[score_metric(score, metrics, metric)]


def is_regression(metrics: Mapping[str, Any]) -> bool:
    """A regression's figures hold RMSE, MAE and R² (its score is -RMSE) where a classification's hold accuracy."""
    return "rmse" in metrics


def check_device(spec: str | None) -> None:
    """``--device``: a device present here, checked before anything is read or written (else a one-line error)."""
    if spec is not None:
        from nasforge.evaluate.device import resolve_device

        resolve_device(spec, "--device")


def cmd_search(args: argparse.Namespace) -> int:
    from nasforge import api
    from nasforge.config import load_config, with_overrides

    check_device(args.device)
    cfg = with_overrides(load_config(args.config), strategy=args.strategy, trials=args.trials,
                         time_budget=args.time_budget, seed=args.seed, db=args.db, name=args.name,
                         device=args.device, precision=args.precision)
    data_shape: dict[str, Any] = {}

    def describe(sample: Any) -> str:
        if "space" not in data_shape:
            from nasforge.space import make_space

            data_shape["space"] = make_space(cfg.space)
        return str(data_shape["space"].describe(sample))

    header = (f"nasforge search: experiment {cfg.name!r}, strategy {cfg.strategy.name}, "
              f"{cfg.search.make_scheduler().describe()}, db {cfg.search.db}")
    printer = ProgressPrinter(sys.stderr, describe, header, cfg.search.metric)
    outcome = api.search(cfg, resume=args.resume, on_progress=printer)
    states = Counter(t.state.value for t in outcome.trial_list)
    why = {"trials": "trial budget reached", "time": "time budget reached",
           "exhausted": "no untried candidate left", "epochs": "supernet trained, derived cell scored",
           "darts_plus": "DARTS+ stop: the derived cell has too many skip connections"}.get(
               outcome.stopped or "", outcome.stopped or "stopped")
    print(f"done ({why}): " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
          + f", {outcome.rejected} rejected before training", file=sys.stderr)
    if outcome.best is not None:
        b = outcome.best
        score = (f"validation RMSE {b.metrics['rmse']:.4g} (R² {b.metrics['r2']:.3f})" if is_regression(b.metrics)
                 else f"validation {METRIC_WORDS[cfg.search.metric]} {b.score:.4f}")
        print(f"best: trial {b.number}, {score}: {describe(b.sample)}")
        print(f"next: nasforge retrain {cfg.search.db}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    # no nasforge.api here: it imports torch, and status reads the database and formats it, nothing more
    from nasforge.space import make_space
    from nasforge.stored import stored

    if args.top < 1:
        raise NasforgeError(f"--top must be at least 1, got {args.top}")
    store, exp, cfg = stored(args.db, args.name)
    multi = len(cfg.search.objectives) > 1
    with store:
        # counts and the top trials come sorted from SQL; every trial is read only for a record or a front
        trials = store.trials(exp.id) if args.json is not None or multi else []
        states = store.state_counts(exp.id)
        ok = store.top_trials(exp.id, args.top)
        failed = store.top_trials(exp.id, 5, "FAILED")
        n_rej, common = store.rejection_summary(exp.id)
        results = store.results(exp.id, "retrain")
        compressions = store.results(exp.id, "compress")
        epochs = store.progress(exp.id)  # running trials' latest epochs, as the search stored them with its heartbeat
    space = make_space(cfg.space)
    if args.json is not None:
        from nasforge.report.record import data_name, result_record

        record = result_record(exp, trials, results[-1] if results else None,
                               data=data_name(cfg.data.source, cfg.data.path), describe=space.describe)
        if write_record(record, args.json):
            return 0  # the record alone on stdout
    print(f"experiment {exp.name!r} in {args.db}: strategy {cfg.strategy.name}, searched {fmt_time(exp.elapsed)}")
    print("trials: " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) or "none")
          + f"; rejected before training: {n_rej}"
          + (" (" + "; ".join(f"{k}: {n}" for k, n in common) + ")" if common else ""))
    for number, at in sorted(epochs.items()):
        if "epoch" in at:
            print(f"running trial {number}: epoch {at['epoch']:g}" + (f" of {at['epochs']:g}" if "epochs" in at else "")
                  + (f", val_acc {at['val_accuracy']:.4f}" if "val_accuracy" in at else ""))
    reg = any(is_regression(t.metrics) for t in ok)  # a regression: RMSE and R² in place of accuracy and F1
    metric = cfg.search.metric
    if ok:  # with a scheduler, trials trained longest rank first; "budget" says how long
        rows = [(i + 1, t.number, *val_figures(t.score, t.metrics, reg, metric),
                 fmt_budget(t.budget),
                 fmt_count(t.cost.params if t.cost else None), fmt_count(t.cost.flops if t.cost else None),
                 f"{t.cost.latency_ms:.2f}" if t.cost and t.cost.latency_ms is not None else "-",
                 fmt_time(t.train_seconds + t.eval_seconds), space.describe(t.sample)) for i, t in enumerate(ok)]
        table(rows, ("rank", "trial", *(("val_rmse", "val_r2") if reg else val_columns(metric)), "budget",
                     "params", "FLOPs", "lat_ms", "time", "architecture"), sys.stdout)
        say_latency_device([t.cost.latency_device for t in ok if t.cost], sys.stdout)
    if multi:
        from nasforge.pareto import pareto_front

        front = pareto_front(trials, cfg.search.objectives)
        int8 = "latency_int8" in cfg.search.objectives  # the int8 version's CPU latency, measured for it
        print(f"Pareto front ({' vs '.join(cfg.search.objectives)}), {len(front)} trials, cheapest first; "
              "retrain one with `nasforge retrain DB --trial N`:")
        table([(t.number, val_figures(t.score, t.metrics, reg)[0], fmt_budget(t.budget),
                fmt_count(t.cost.params if t.cost else None), fmt_count(t.cost.flops if t.cost else None),
                f"{t.cost.latency_ms:.2f}" if t.cost and t.cost.latency_ms is not None else "-",
                *((f"{t.cost.latency_int8_ms:.2f}" if t.cost and t.cost.latency_int8_ms is not None else "-",)
                  if int8 else ()),
                space.describe(t.sample)) for t in front],
              ("trial", "val_rmse" if reg else val_columns(metric)[0], "budget", "params", "FLOPs", "lat_ms",
               *(("int8_ms",) if int8 else ()), "architecture"), sys.stdout)
    for t in failed:
        print(f"failed trial {t.number}: {t.reason}")
    for r in results[-1:]:
        n_seeds = len({m.get("seed", 0) for m in r["models"]})
        print(f"last retrain (trial {r['trial']}, {r['epochs']:g} epochs"
              + (f", {n_seeds} seeds" if n_seeds > 1 else "") + "):")
        print_final(r["models"], sys.stdout, r.get("others"), metric=metric)
        print_summary(r["models"], sys.stdout)
    for c in compressions[-1:]:
        print(f"last compression (trial {c.get('trial')}, test split read once more):")
        print_compress(c, sys.stdout)
    if not ok:
        print("no completed trial yet")
    return 0


def val_figures(score: float | None, metrics: Mapping[str, float], regression: bool,
                metric: str = "accuracy") -> tuple[str, str]:
    """A trial's two validation columns (:func:`val_columns`): its score and F1 (accuracy where the score is F1),
    or for a regression RMSE and R²."""
    if regression:
        return f"{metrics.get('rmse', float('nan')):.4g}", f"{metrics.get('r2', float('nan')):.4f}"
    other = "accuracy" if metric == "f1" else "f1"
    return f"{score:.4f}", f"{metrics.get(other, float('nan')):.4f}"


def val_columns(metric: str) -> tuple[str, str]:
    """The headers of :func:`val_figures` for a classification ranked by ``metric``: val_acc and val_f1, val_bacc
    and val_f1, or val_f1 and val_acc."""
    return f"val_{METRIC_SHORT[metric]}", "val_acc" if metric == "f1" else "val_f1"


def print_final(models: Sequence[dict[str, Any]], out: TextIO,
                others: Mapping[str, Mapping[str, Any]] | None = None, metric: str = "accuracy") -> None:
    """The final table; ``others`` (scikit-learn references, stored by a retrain on flat data) as extra rows.
    A regression's columns are test RMSE, MAE and R² (in the target's units) in place of accuracy and F1; a search
    ranked by balanced accuracy adds its column (``test_bacc``)."""
    seeds = len({m.get("seed", 0) for m in models}) > 1  # several seeds: a seed column
    reg = any(is_regression(m["test"]) for m in models)
    bacc = not reg and metric == "balanced_accuracy"

    def figures(test: Mapping[str, Any]) -> tuple[str, ...]:
        b = test.get("balanced_accuracy")
        return (*final_figures(test, reg), *((f"{100 * b:.2f}%" if b is not None else "-",) if bacc else ()))

    rows = [(m["name"], *((m.get("seed", 0),) if seeds else ()), *figures(m["test"]), fmt_count(m["params"]),
             fmt_count(m["flops"]), f"{m['latency_ms']:.2f}" if m["latency_ms"] is not None else "-",
             fmt_time(m["train_seconds"]), fmt_model(m["description"], m.get("members", 1))) for m in models]
    rows += [(name, *(("-",) if seeds else ()), *figures(o), "-", "-", "-",
              fmt_time(o["seconds"]), o.get("description", name)) for name, o in (others or {}).items()]
    table(rows, ("model", *(("seed",) if seeds else ()), *TEST_COLUMNS[reg], *(("test_bacc",) if bacc else ()),
                 "params", "FLOPs", "lat_ms", "train", "architecture"), out)
    say_latency_device([m.get("latency_device") for m in models], out)


TEST_COLUMNS = {False: ("test_acc", "test_f1"), True: ("test_rmse", "test_mae", "test_r2")}


def metric_difference(searched: Mapping[str, Any], reference: Mapping[str, Any], metric: str) -> str:
    """Searched minus reference in the metric the search ranked by, then in accuracy where that is another: the
    record's ``test_<metric>`` (``test_f1`` is macro F1); a record from before balanced accuracy says so."""
    def points(key: str) -> float | None:
        a, b = searched.get(key), reference.get(key)
        return None if a is None or b is None else 100 * (a - b)

    acc = points("test_accuracy")
    if metric == "accuracy":
        return f"{acc:+.2f} points of test accuracy"
    d = points(f"test_{metric}")
    words = METRIC_WORDS[metric]
    first = f"{d:+.2f} points of test {words}" if d is not None else f"test {words} not recorded"
    return f"{first} (the metric the search ranked by); {acc:+.2f} of test accuracy"


def final_figures(test: Mapping[str, Any], regression: bool) -> tuple[str, ...]:
    """A model's test columns (:data:`TEST_COLUMNS`): accuracy and F1, or RMSE, MAE and R²."""
    if regression:
        return f"{test['rmse']:.4g}", f"{test['mae']:.4g}", f"{test['r2']:.4f}"
    return f"{100 * test['accuracy']:.2f}%", f"{test['f1']:.4f}"


def say_latency_device(devices: Sequence[str | None], out: TextIO) -> None:
    """Where the lat_ms above were measured (records from before devices were say nothing)."""
    named = sorted({d for d in devices if d})
    if named:
        print(f"lat_ms measured on {', '.join(named)}", file=out)


def print_summary(models: Sequence[dict[str, Any]], out: TextIO) -> None:
    """Mean and sample standard deviation over seeds, per model; nothing for a single seed."""
    from nasforge.final.models import summarize

    summary = summarize(models)
    n = max((v["n"] for v in summary.values()), default=0)
    if n < 2:
        return
    print(f"test over {n} seeds, mean ± standard deviation:", file=out)
    if any("rmse_mean" in v for v in summary.values()):  # regression
        table([(name, f"{v['rmse_mean']:.4g} ± {v['rmse_std']:.3g}", f"{v['mae_mean']:.4g} ± {v['mae_std']:.3g}",
                f"{v['r2_mean']:.4f} ± {v['r2_std']:.4f}", v["n"]) for name, v in summary.items()],
              ("model", *TEST_COLUMNS[True], "seeds"), out)
        return
    rows = [(name, f"{100 * v['accuracy_mean']:.2f}% ± {100 * v['accuracy_std']:.2f}",
             f"{v['f1_mean']:.4f} ± {v['f1_std']:.4f}", v["n"]) for name, v in summary.items()]
    table(rows, ("model", "test_acc", "test_f1", "seeds"), out)


def write_record(record: Mapping[str, Any], target: str) -> bool:
    """Write a ``--json`` record to PATH (atomically) or, for ``-``, to stdout; True when it went to stdout."""
    from nasforge import atomic
    from nasforge.report.record import record_json

    if target == "-":
        sys.stdout.write(record_json(record))
        return True
    atomic.write_text(target, record_json(record))
    return False


def cmd_retrain(args: argparse.Namespace) -> int:
    from nasforge import api
    from nasforge.final.models import final_to_json, summarize
    from nasforge.report.record import class_fields

    if args.baseline is not None:
        if args.no_baseline:
            raise NasforgeError("give --baseline NAME or --no-baseline, not both")
        check_baseline(args.baseline, "--baseline")
    check_device(args.device)
    out = sys.stderr if args.json == "-" else sys.stdout  # with the record on stdout, the tables go to stderr

    def on_epoch(name: str, epoch: int, row: Any) -> None:
        print(f"  {name} epoch {epoch}: train loss {row['train_loss']:.4f}", file=sys.stderr, flush=True)

    t0 = time.time()
    models = api.retrain(args.db, name=args.name, epochs=args.epochs, seed=args.seed, trial=args.trial,
                         max_params=args.max_params,
                         baseline=False if args.no_baseline else args.baseline, out_dir=args.out,
                         on_epoch=on_epoch, seeds=args.seeds, device=args.device, precision=args.precision,
                         members=args.ensemble)
    store, exp, cfg = api.stored(args.db, args.name)  # what the retrain stored: the others and the record
    with store:
        stored = store.results(exp.id, "retrain")[-1]
        trials = store.trials(exp.id) if args.json is not None else []
    per_seed = " per seed, after its training" if args.seeds > 1 else ""
    print(f"final training done in {fmt_time(time.time() - t0)}; test split read once{per_seed}", file=out)
    rows = [final_to_json(m) for m in models]
    print_final(rows, out, stored.get("others"), metric=cfg.search.metric)
    print_summary(rows, out)
    summary = summarize(models)
    if "baseline" in summary:
        reg = "rmse_mean" in summary["searched"]
        # the record's test_* fields, means over seeds: the difference reads the search's metric first
        a, b = (class_fields(summary[name]) for name in ("searched", "baseline")) if not reg else ({}, {})
        which = next((m.reference for m in models if m.name == "baseline"), None)
        rmse = summary["searched"].get("rmse_mean", 0.0) - summary["baseline"].get("rmse_mean", 0.0)
        print(f"searched minus baseline{f' ({which})' if which not in (None, 'classic') else ''}: "
              + (f"{rmse:+.4g} test RMSE (lower is better)" if reg else metric_difference(a, b, cfg.search.metric))
              + (f" (means over {args.seeds} seeds)" if args.seeds > 1 else ""), file=out)
    for m in models:
        if m.weights:
            print(f"weights: {m.weights}", file=out)
    if args.json is not None:
        from nasforge.report.record import data_name, result_record
        from nasforge.space import make_space

        if not write_record(result_record(exp, trials, stored, data=data_name(cfg.data.source, cfg.data.path),
                                          describe=make_space(cfg.space).describe), args.json):
            print(f"record: {args.json}", file=out)
    return 0


def _column(text: str | None) -> str | int | None:
    """A --label value: an index where it is a whole number (-1: the last column), else a column name."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def cmd_auto(args: argparse.Namespace) -> int:
    from nasforge.autoplan import run_auto

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    out = sys.stderr if args.json == "-" else sys.stdout
    check_device(args.device)
    record = run_auto(args.data, time_budget=args.time_budget, db=args.db, seed=args.seed, name=args.name,
                      resume=args.resume, reference_only=args.reference_only, print_config=args.print_config,
                      reference=args.baseline, device=args.device, precision=args.precision,
                      label=_column(args.label), layout=args.layout, metric=args.metric, workers=args.workers,
                      max_params=args.max_params, say=say,
                      progress=lambda describe: ProgressPrinter(sys.stderr, describe,
                                                                metric=args.metric or "accuracy"))
    if args.print_config:
        sys.stdout.write(record["config"])
        return 0
    from nasforge.stored import stored

    store, exp, _ = stored(args.db, record["experiment"])
    with store:
        last = store.results(exp.id, "retrain")[-1]
    sec = record["seconds"]
    print(f"nasforge auto: done in {fmt_time(sec['total'])} of {fmt_time(record['time_budget_s'])} "
          f"(search {fmt_time(sec.get('search', 0.0))}, final training {fmt_time(sec['final'])}); "
          "test split read once", file=out)
    metric = record.get("metric", "accuracy")
    print_final(last["models"], out, last.get("others"), metric=metric)
    s, r = record.get("searched"), record.get("reference")
    if s and r and record.get("task") == "regression":
        print(f"searched minus reference ({r['name']}): {s['test_rmse'] - r['test_rmse']:+.4g} test RMSE (lower is "
              "better)", file=out)
    elif s and r:
        print(f"searched minus reference ({r['name']}): {metric_difference(s, r, metric)}", file=out)
    elif not s and str(record["plan"]["why"].get("search", "")).startswith("none:"):
        print(f"no search: {record['plan']['why']['search'][len('none: '):]}", file=out)
    elif s and not r:
        why = record.get("final", {}).get("why", "the plan gave the searched network the whole final share")
        size = f" --max-params {args.max_params}" if args.max_params else ""  # its reference is the narrowed one
        print(f"the reference trains in its own arm: nasforge auto {args.data} --time-budget {args.time_budget}{size} "
              f"--reference-only ({why})", file=out)
    print(f"report: {record['report']}", file=out)
    delivered = next((m for m in last["models"] if m["name"] == ("searched" if s else "baseline")), None)
    if delivered is not None and delivered.get("weights"):  # where the network is, and how to use it
        print(f"network: {delivered['weights']}; use it: nasforge predict {args.db} NEW_EXAMPLES, or nasforge export "
              f"{args.db} --format onnx", file=out)
    if args.json is not None and not write_record(record, args.json):
        print(f"record: {args.json}", file=out)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nasforge import api

    files = api.export(args.db, format=args.format, out_dir=args.out, name=args.name, trial=args.trial,
                       compressed=args.compressed)
    print(f"exported ({args.format}{f', {args.compressed}' if args.compressed else ''}):")
    for f in files:
        print(f"  {f}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from nasforge import api

    p = api.predict(args.db, args.inputs, name=args.name, trial=args.trial, out=args.out)
    if args.out is None:  # the predictions are the output: a pipe gets them alone, the summary goes aside
        sys.stdout.write(p.to_csv())
    info = sys.stdout if args.out is not None else sys.stderr
    averaged = f" (average of {p.members} trainings)" if p.members > 1 else ""
    who = f"trial {p.trial}" if p.trial is not None else "the reference trained alone"
    print(f"predicted {len(p)} examples with {who} ({p.description}){averaged}"
          + (f": {args.out}" if args.out is not None else ""), file=info)
    if p.metrics is not None:
        shown = ("accuracy", "f1", "balanced_accuracy") if p.labels is not None else ("rmse", "mae", "r2")
        print("on their labels: " + ", ".join(f"{k} {p.metrics[k]:.4f}" for k in shown if k in p.metrics),
              file=info)
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from nasforge import api  # it checks every argument before it reads, trains or writes anything

    out = sys.stderr if args.json == "-" else sys.stdout
    t0 = time.time()
    record = api.compress(args.db, name=args.name, quantize=args.quantize, prune=args.prune,
                          prune_mode=args.prune_mode, finetune_epochs=args.finetune_epochs,
                          calibration=args.calibration, seed=args.seed, trial=args.trial, out_dir=args.out)
    print(f"compressed trial {record['trial']} in {fmt_time(time.time() - t0)}; test split read once more "
          f"({record['test_examples']} examples), after compression", file=out)
    print_compress(record, out)
    for row in record["rows"]:
        if row.get("file"):
            print(f"{row['name']}: {row['file']}", file=out)
    if args.json is not None and not write_record(record, args.json):
        print(f"record: {args.json}", file=out)
    return 0


def print_compress(record: Mapping[str, Any], out: TextIO) -> None:
    """A compression record's table: each version's test accuracy, size and batch-1 CPU latency against fp32."""
    rows = []
    for r in record.get("rows", []):
        size = r.get("size_bytes")
        lat, speed = r.get("latency_ms"), r.get("speedup")
        rows.append((r.get("name", "?"), f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else "-",
                     fmt_count(r.get("params")), fmt_count(r.get("nonzero_params")), fmt_count(r.get("flops")),
                     f"{size / 1024:.0f}K" if isinstance(size, int | float) else "-",
                     f"{lat:.3f}" if isinstance(lat, int | float) else "-",
                     f"{speed:.2f}x" if isinstance(speed, int | float) else "-", r.get("method", "")))
    table(rows, ("model", "test_acc", "params", "nonzero", "FLOPs", "size", "lat_ms", "speedup", "method"), out)
    lat = record.get("latency") or {}
    if lat:
        print(f"lat_ms: batch {lat.get('batch', 1)} on the {lat.get('device', 'cpu')}, {lat.get('threads')} "
              f"thread(s), {lat.get('how', '')}; size: the TorchScript file", file=out)
    for r in record.get("rows", []):
        if r.get("note"):
            print(f"{r['name']}: {r['note']}", file=out)


def cmd_report(args: argparse.Namespace) -> int:
    from nasforge.report.html import write_report  # what api.report calls, without api's torch import

    page = write_report(args.db, name=args.name, out=args.out)
    print(f"report: {page} (self-contained; the figures are also PNGs beside it)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from nasforge.report.live import DEFAULT_HOST, Dashboard  # no nasforge.api: it imports torch

    view = Dashboard(args.db, name=args.name, host=DEFAULT_HOST if args.host is None else args.host,
                     port=args.port, interval=args.interval)
    print(f"dashboard: {view.url} (experiment {view.name!r} in {args.db}; Ctrl-C stops it)", flush=True)
    try:
        view.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the server is closed, nothing was written
        print("\nnasforge dashboard: stopped", file=sys.stderr)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nasforge.data.download import REMOTE, default_cache_dir, download

    name = args.dataset.replace("-", "_")
    if name not in REMOTE:
        raise NasforgeError(f"cannot download {args.dataset!r}: nasforge downloads "
                            f"{' and '.join(n.replace('_', '-') for n in REMOTE)}; give other data with data.path")
    dest = download(name, Path(args.dest) if args.dest else default_cache_dir(name))
    print(f"{args.dataset} ready in {dest}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the NB201 benchmark and print one row per strategy."""
    from nasforge.bench import run_bench

    names = [s.strip() for s in str(args.strategies).split(",") if s.strip()]
    if not names:
        raise ConfigError("--strategies is empty: name at least one, e.g. random,evolution")
    if args.queries < 1 or args.seeds < 1:
        raise ConfigError("--queries and --seeds must be at least 1")

    def done(name: str, r: Mapping[str, Any]) -> None:
        print(f"  {name}: {r['final_test_mean']:.2f} ± {r['final_test_std']:.2f} ({r['seconds']:.1f}s)",
              file=sys.stderr, flush=True)

    print(f"nasforge bench: NB201 {args.dataset}, {len(names)} strategies x {args.seeds} seeds x "
          f"{args.queries} queries", file=sys.stderr)
    doc = run_bench(args.table, args.dataset, names, args.queries, args.seeds, out_json=args.out,
                    out_png=args.png, on_done=done)
    rows = [(n, f"{r['final_test_mean']:.2f}", f"{r['final_test_std']:.2f}", f"{r['final_valid_mean']:.2f}",
             f"{r['seconds']:.1f}") for n, r in doc["strategies"].items()]
    table(rows, ("strategy", "test_mean", "test_std", "valid_mean", "seconds"), sys.stdout)
    print(f"optimum test accuracy {doc['optimum_test']:.2f}; results in {args.out}"
          + (f", plot in {args.png}" if args.png else ""))
    return 0


def reference_names() -> str:
    """The references for help, from their registry: ``classic (the default), resnet20 (images), ...``."""
    words = {IMAGE: "images", SEQUENCE: "sequences", FLAT: "tables"}
    for_kinds = {n: "/".join(words[k] for k in KINDS if k in r.kinds) for n, r in REFERENCES.items()}
    return ", ".join(f"{n} (the default)" if n == CLASSIC else f"{n} ({for_kinds[n]})" for n in REFERENCES)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, as nasforge's own are: the problem, then where the options are listed
    (argparse prints the whole usage first: seven lines for ``auto`` before the one that says what is wrong)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nasforge", description="Neural architecture search that runs on a CPU.")
    p.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="search architectures as a YAML config describes")
    s.add_argument("config", help="YAML config (see examples/)")
    s.add_argument("--strategy", help=f"override strategy.name ({', '.join(STRATEGIES)}; {DARTS}: one-shot); "
                                      "the config's strategy.options that the new strategy takes are kept")
    s.add_argument("--trials", type=int, help="override search.trials (finished trials in all)")
    s.add_argument("--time-budget", help="override search.time_budget, e.g. 20m, 1h, 90s")
    s.add_argument("--seed", type=int, help="override the seed")
    s.add_argument("--db", help="override search.db, the SQLite file")
    s.add_argument("--name", help="override the experiment name")
    s.add_argument("--resume", action="store_true", help="continue the experiment stored in the database")
    s.add_argument("--device", help=f"override train.device: {DEVICE_CHOICES}")
    s.add_argument("--precision", help=f"override train.precision: {PRECISION_CHOICES}")
    s.set_defaults(func=cmd_search)

    st = sub.add_parser("status", help="show an experiment's best trials")
    st.add_argument("db")
    st.add_argument("--name", help="experiment name (default: the latest)")
    st.add_argument("--top", type=int, default=10)
    st.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="write the experiment's record (search, final retrain, references; accuracies as fractions) "
                         "as JSON to PATH, or alone on stdout without PATH")
    st.set_defaults(func=cmd_status)

    r = sub.add_parser("retrain", help="train the best architecture and the baseline, test once")
    r.add_argument("db")
    r.add_argument("--name", help="experiment name (default: the latest)")
    r.add_argument("--epochs", type=float, help="override retrain.epochs")
    r.add_argument("--seed", type=int)
    r.add_argument("--out", help="directory for weights (default: next to the database)")
    r.add_argument("--no-baseline", action="store_true", help="skip the hand-designed baseline")
    r.add_argument("--baseline", metavar="NAME",
                   help=f"the hand-designed reference to train: {reference_names()}, or {AUTO} (the data kind's); "
                        "overrides retrain.baseline")
    r.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="also write the record (as `status --json`) to PATH, or to stdout without PATH "
                        "(the tables then go to stderr)")
    r.add_argument("--trial", type=int, help="retrain this trial (e.g. a Pareto-front member) instead of the best")
    r.add_argument("--max-params", type=int, help="retrain the best trial with at most this many parameters, "
                   "and the reference narrowed to fit (resnet20-w8; the classic network as it is)")
    r.add_argument("--seeds", type=int, default=1,
                   help="train each model this many times (seeds SEED, SEED+1, ...); report test mean and std")
    r.add_argument("--ensemble", type=int, metavar="N",
                   help="each model the average of N trainings with different seeds (overrides retrain.ensemble)")
    r.add_argument("--device", help=f"override the stored retrain.device: {DEVICE_CHOICES}")
    r.add_argument("--precision", help=f"override the stored retrain.precision: {PRECISION_CHOICES}")
    r.set_defaults(func=cmd_retrain)

    au = sub.add_parser("auto", help="plan, search, train and test within one time budget, from data alone")
    au.add_argument("data", help="fashion_mnist, mnist, digits, a .npz/.csv/.csv.gz file, a folder of IDX/CSV/CIFAR "
                                 "files or of class folders of images, or a YAML config (its data section)")
    au.add_argument("--time-budget", required=True, help="the whole run, e.g. 15m, 1h: it ends within it")
    au.add_argument("--db", default="runs/auto.db", help="the SQLite file (default: runs/auto.db)")
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--name", help="experiment name (default: auto-<data source>)")
    au.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="write the result record as JSON to PATH, or to stdout without PATH")
    au.add_argument("--print-config", action="store_true",
                    help="print the YAML that runs this plan with `nasforge search` and `retrain`, and stop")
    au.add_argument("--reference-only", action="store_true",
                    help="no search: train the data kind's reference for the whole budget (the side-by-side arm)")
    au.add_argument("--resume", action="store_true", help="continue an interrupted auto run of this --db and --name")
    au.add_argument("--baseline", default=AUTO, metavar="NAME",
                    help=f"the reference: {AUTO} (the data kind's: {', '.join(DEFAULTS.values())}) or {CLASSIC} "
                         f"(the 2-conv network), {', '.join(n for n in REFERENCES if n != CLASSIC)}")
    au.add_argument("--label", metavar="COLUMN",
                    help="a CSV's label column, by name or index (default: the one column named label, target, "
                         "class or y and the like, else the last; the plan's why-data line says which)")
    au.add_argument("--layout", choices=("auto", "image", "sequence", "tabular"),
                    help="how the features are read (default auto: from their shape, and for 2-D data from whether "
                         "neighbouring columns correlate as pixels or signal steps do)")
    au.add_argument("--metric", choices=METRICS,
                    help="what a classification's search ranks by and the comparison reads first (default accuracy; "
                         "balanced_accuracy: the mean recall over classes, for imbalanced classes; f1: macro F1)")
    au.add_argument("--workers", type=int, metavar="N",
                    help="trials the search runs at once on a CPU (default: measured; a process pool of "
                         "single-threaded workers where that trains more steps a second; 1: one at a time)")
    au.add_argument("--max-params", metavar="N",
                    help="a size limit: the searched network has at most N parameters (100000, 100k), and the "
                         "reference is narrowed to fit it (resnet20-w8: ResNet-20 at base width 8)")
    au.add_argument("--device", help=f"where it trains (default auto): {DEVICE_CHOICES}")
    au.add_argument("--precision", help=f"how it trains (default auto): {PRECISION_CHOICES}")
    au.set_defaults(func=cmd_auto)

    e = sub.add_parser("export", help=f"export the retrained searched network ({', '.join(FORMATS)})")
    e.add_argument("db")
    e.add_argument("--format", required=True, choices=FORMATS,
                   help="python: standalone source + state dict; torchscript; onnx (nasforge[onnx]); json: genotype")
    e.add_argument("--out", help="directory (default: export/ beside the retrained weights)")
    e.add_argument("--name", help="experiment name (default: the latest)")
    e.add_argument("--trial", type=int, help="export the last retrain of this trial (default: the last retrain)")
    e.add_argument("--compressed", choices=COMPRESSED,
                   help="export the network `nasforge compress` made instead (--format torchscript or onnx)")
    e.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="predict new examples with the retrained searched network (CSV out)")
    pr.add_argument("db")
    pr.add_argument("inputs", help="the new examples, as the training data was given: for a CSV, a CSV with its "
                                   "feature columns (the label column optional: given, the predictions are scored); "
                                   "else an .npz with x (and y) or an .npy")
    pr.add_argument("--out", help="write the predictions to this CSV file (default: to stdout, the summary to stderr)")
    pr.add_argument("--name", help="experiment name (default: the latest)")
    pr.add_argument("--trial", type=int, help="use the last retrain of this trial (default: the last retrain)")
    pr.set_defaults(func=cmd_predict)

    c = sub.add_parser("compress", help="quantize (int8) or prune the retrained network; measure accuracy, size "
                                        "and CPU latency before and after")
    c.add_argument("db")
    c.add_argument("--name", help="experiment name (default: the latest)")
    c.add_argument("--quantize", metavar="int8", help="post-training int8 quantization (static, calibrated on "
                                                      "training examples; dynamic Linear-only where that fails)")
    c.add_argument("--prune", type=float, metavar="RATIO", help="remove this share (0 < RATIO < 1) of the prunable "
                                                                "channels, then fine-tune")
    c.add_argument("--prune-mode", default="structured", metavar="MODE",
                   help=f"{' or '.join(PRUNE_MODES)} (default structured: whole channels, a smaller, faster network; "
                        "unstructured zeroes single weights)")
    c.add_argument("--finetune-epochs", type=float, default=1.0,
                   help="epochs of fine-tuning after pruning, with the retraining recipe at a tenth of its rate "
                        "(default 1; 0: none)")
    c.add_argument("--calibration", type=int, default=512, help="training examples int8 calibrates on (default 512)")
    c.add_argument("--seed", type=int, help="seed of the calibration draw and the fine-tune (default: the config's)")
    c.add_argument("--trial", type=int, help="compress the last retrain of this trial (default: the last retrain)")
    c.add_argument("--out", help="directory for the compressed networks (default: beside the retrained weights)")
    c.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="also write the record to PATH, or to stdout without PATH (the table then goes to stderr)")
    c.set_defaults(func=cmd_compress)

    rp = sub.add_parser("report", help="write an HTML report with plots, importance analysis and a trial table")
    rp.add_argument("db")
    rp.add_argument("--name", help="experiment name (default: the latest)")
    rp.add_argument("--out", help="HTML file, or a directory for index.html (default: <db stem>-report/ beside it)")
    rp.set_defaults(func=cmd_report)

    dash = sub.add_parser("dashboard", help="serve a live view of a search (the report, refreshing) on 127.0.0.1")
    dash.add_argument("db")
    dash.add_argument("--name", help="experiment name (default: the latest)")
    dash.add_argument("--port", type=int, default=8050, help="TCP port (default 8050; 0: any free port)")
    dash.add_argument("--host", help="address to listen on (default 127.0.0.1, this machine only); another, such as "
                                     "0.0.0.0, exposes the page, which has no authentication, to the network")
    dash.add_argument("--interval", type=float, default=2.0, help="seconds between the page's polls (default 2)")
    dash.set_defaults(func=cmd_dashboard)

    d = sub.add_parser("download", help="fetch and checksum Fashion-MNIST or MNIST (needs internet)")
    d.add_argument("dataset", help="fashion-mnist or mnist")
    d.add_argument("--dest", help="directory (default: ~/.cache/nasforge/<name>, where loaders look)")
    d.set_defaults(func=cmd_download)

    b = sub.add_parser("bench", help="compare strategies on the tabular NAS-Bench-201 benchmark (lookups, no training)")
    b.add_argument("--table", required=True, help="path of nb201_table.csv.gz")
    b.add_argument("--dataset", default="cifar10", choices=NB201_DATASETS)
    b.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help=f"comma-separated strategy names ({', '.join(STRATEGIES)})")
    b.add_argument("--queries", type=int, default=100, help="queries (scored architectures) per run")
    b.add_argument("--seeds", type=int, default=100, help="runs per strategy, seeds 0..N-1")
    b.add_argument("--out", default="results.json", help="JSON file for the results")
    b.add_argument("--png", help="also plot best-so-far test accuracy to this PNG (needs matplotlib)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import signal

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    terminated: list[int] = []

    def terminate(signum: int, frame: object) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt  # Ctrl-C's path: finally blocks release leases and stop workers, a message, an exit

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: signals stay as they are
        previous = terminate
    try:
        return int(args.func(args))
    except NasforgeError as e:
        print(f"nasforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        code = 128 + signal.SIGTERM if terminated else 130  # 143 after SIGTERM, as a shell reports a kill by it
        if args.command == "retrain":
            print("\nnasforge: interrupted; run the same retrain command again to continue from the last epoch",
                  file=sys.stderr)
            return code
        print("\nnasforge: interrupted; everything finished so far is stored, continue with --resume",
              file=sys.stderr)
        return code
    except Exception as e:
        if args.debug:
            raise
        print(f"nasforge: internal error: {type(e).__name__}: {e} (rerun with --debug for details and report it)",
              file=sys.stderr)
        return 1
    finally:
        if previous is not terminate:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
