"""The report page: one self-contained HTML file (figures embedded as data URIs, inline CSS and a small
inline table sorter, nothing fetched from anywhere), with the figures also written as PNGs beside it.

The page carries a strict Content-Security-Policy: nothing loads from anywhere (``default-src 'none'``),
images only as data URIs, and the one style sheet and the one script run only because their exact
text is hashed into the policy; any other script or style that found its way into the page would not
run. Every text from the experiment (names, descriptions, failure reasons) is HTML-escaped, in
attributes too. The page and its PNGs are written atomically (:mod:`nasforge.atomic`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasforge import atomic
from nasforge.fmt import fmt_budget, fmt_count, fmt_model, fmt_time
from nasforge.report.frame import load, ranked, state_counts
from nasforge.result import Result
from nasforge.types import METRIC_SHORT, METRIC_WORDS, Trial

log = logging.getLogger("nasforge")
TABLE_ROWS = 1000  # rows in the page's trial table; a larger study's trials all go to CSV beside it
CSV = "trials.csv"


@dataclass(frozen=True)
class FigureSpec:
    id: str
    title: str
    caption: str


FIGURES = (
    FigureSpec("best_so_far", "Best so far",
           "The best validation accuracy found so far, against trial number and against search time; every "
           "finished trial is a point. With a scheduler each trial counts at the last budget it reached, and the "
           "dashed line counts only trials trained on the full budget."),
    FigureSpec("learning_curves", "Learning curves",
           "Validation accuracy after each epoch for the top trials (ranked as `nasforge status` ranks them: "
           "longest-trained first, then by score). The last epoch of each budget is scored on the whole validation "
           "split; with the default `search.interim_validation` the epochs before it use a 1,000-example subset, "
           "so they are noisier."),
    FigureSpec("train_curves", "Training against validation",
           "Left: the best trial's training and validation accuracy and loss per epoch (training figures are "
           "averaged over each epoch's batches as trained: augmented, dropout on). A validation curve that falls "
           "behind a rising training curve is over-fitting; both low is under-fitting. Right: the last final "
           "training of each network (its first seed), training loss and accuracy per epoch; it trains on the "
           "validation split too, so it has no validation curve, and its test accuracy is read once, after it."),
    FigureSpec("accuracy_vs_cost", "Accuracy against cost",
           "Each scored trial by its validation accuracy and deployment cost. The red steps join the Pareto front: "
           "no other trial is both more accurate and cheaper. The star is the best trial."),
    FigureSpec("architecture", "Best architecture", "The network of the best trial, as it is built for training."),
    FigureSpec("importance", "What mattered", ""),
)


# a regression's captions: its score is -RMSE (higher is better) and its curves RMSE, where a classification's
# are accuracy
REGRESSION_WORDS = (("training and validation accuracy", "training and validation RMSE"),
                    ("training loss and accuracy", "training loss and RMSE"), ("test accuracy", "test RMSE"),
                    ("Validation accuracy", "The validation score (-RMSE, higher is better)"),
                    ("validation accuracy", "validation score (-RMSE, higher is better)"),
                    ("more accurate", "better scoring"))


def caption_for(data: Result, text: str) -> str:
    """A figure's caption as it reads for this experiment (a regression's score and curves are not accuracy; a
    search ranked by balanced accuracy or macro F1 scores by that, while its curves stay accuracy)."""
    if data.regression:
        for a, b in REGRESSION_WORDS:
            text = text.replace(a, b)
    elif data.metric != "accuracy":
        words = METRIC_WORDS[data.metric]
        curves = "training and validation accuracy"  # the per-epoch curves are accuracy whatever the ranking
        text = curves.join(part.replace("validation accuracy", f"validation {words}").replace(
            "Validation accuracy", f"Validation {words}") for part in text.split(curves))
    return text


def default_out(db: str | Path) -> Path:
    """``runs/x.db`` -> ``runs/x-report/index.html``."""
    p = Path(db)
    return p.parent / f"{p.stem}-report" / "index.html"


def out_path(db: str | Path, out: str | Path | None) -> Path:
    """The HTML file to write: ``out`` itself when it names an .html file, else ``out/index.html``."""
    if out is None:
        return default_out(db)
    p = Path(out)
    return p if p.suffix.lower() in (".html", ".htm") else p / "index.html"


def write_report(db: str | Path, *, name: str | None = None, out: str | Path | None = None, seed: int = 0) -> Path:
    """Write the report of an experiment (the latest in ``db`` unless named); returns the HTML file's path."""
    data = load(db, name)
    page = out_path(db, out)
    page.parent.mkdir(parents=True, exist_ok=True)
    if len(data.trial_list) > TABLE_ROWS:
        write_csv(data, page.parent / CSV)
    images, importance_text = make_figures(data, page.parent, seed=seed)
    atomic.write_text(page, render(data, images, importance_text))
    log.info("report written to %s", page)
    return page


def make_figures(data: Result, folder: Path, *, seed: int = 0) -> tuple[dict[str, str], str]:
    """Draw every figure as ``folder/<id>.png``; returns each one's PNG in base64 and the importance caption.

    Shared by the report and the live dashboard (:mod:`nasforge.report.live`), so both show the same figures."""
    from nasforge.report import draw, plots
    from nasforge.report.importance import analyse_beside

    analysis = analyse_beside(data, seed=seed)  # the slowest part; on a large study, in a process of its own
    makers: dict[str, Callable[[Path], Path]] = {
        "best_so_far": lambda p: plots.best_so_far(data, p),
        "learning_curves": lambda p: plots.learning_curves(data, p),
        "train_curves": lambda p: plots.train_curves(data, p),
        "accuracy_vs_cost": lambda p: plots.accuracy_vs_cost(data, p),
        "architecture": lambda p: draw.architecture(data, p),
        "importance": lambda p: plots.importance(analysis(), p),
    }
    images: dict[str, str] = {}
    for fig in FIGURES:
        png = makers[fig.id](folder / f"{fig.id}.png")
        images[fig.id] = base64.b64encode(png.read_bytes()).decode("ascii")
    done = analysis()
    return images, done.method + (f" Not shown: {done.note}." if done.note else "")


# ---------------------------------------------------------------------- HTML
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1d1d1f; background: #f6f7f9; }
header { background: #23395d; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: 0.85; font-size: 13px; }
nav { background: white; border-bottom: 1px solid #ddd; padding: 8px 32px; font-size: 13px;
      position: sticky; top: 0; z-index: 2; }
nav a { margin-right: 16px; color: #23395d; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1280px; }
section { background: white; border: 1px solid #e1e4e8; border-radius: 6px; padding: 14px 20px; margin: 16px 0; }
h2 { font-size: 17px; margin: 4px 0 10px; }
p.caption { color: #555; font-size: 13px; margin: 6px 0; max-width: 1100px; }
img.plot { max-width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; font-size: 12.5px; }
table.kv td { padding: 3px 14px 3px 0; vertical-align: top; }
table.kv td:first-child { color: #555; white-space: nowrap; }
table.trials th, table.trials td { padding: 4px 8px; border-bottom: 1px solid #eee; text-align: right; }
table.trials td.arch, table.trials th.arch, table.trials td.note { text-align: left; }
table.trials td.arch { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 11.5px; }
table.trials th { cursor: pointer; background: #f0f2f5; position: sticky; top: 0; user-select: none; }
table.trials th[aria-sort=ascending]::after { content: " \\25B2"; }
table.trials th[aria-sort=descending]::after { content: " \\25BC"; }
tr.best td { background: #fff5cc; }
tr.pareto td:first-child { box-shadow: inset 3px 0 #d62728; }
.state-FAILED { color: #c00; } .state-PRUNED { color: #777; }
.tag { font-size: 11px; border-radius: 3px; padding: 0 4px; margin-left: 4px; }
.tag.best { background: #f1c232; } .tag.pareto { background: #f4cccc; }
.scroll { max-height: 720px; overflow: auto; }
.cols { display: flex; gap: 48px; flex-wrap: wrap; }
h2.sub { font-size: 15px; }
"""

SORTER = """
function sortKey(cell) {
  var v = cell.getAttribute("data-v");
  if (v === null) { v = cell.textContent.trim(); }
  if (v === "" || v === "-") { return null; }
  var n = Number(v);
  return isNaN(n) ? v.toLowerCase() : n;
}
document.addEventListener("click", function (e) {  // delegated: a table the live view swaps in sorts too
  var th = e.target instanceof Element ? e.target.closest("table.sortable th") : null;
  if (th === null) { return; }
  var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
  var asc = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
    if (x === y) { return 0; }
    if (x === null) { return 1; }
    if (y === null) { return -1; }
    return (x < y ? -1 : 1) * (asc ? 1 : -1);
  });
  rows.forEach(function (r) { body.appendChild(r); });
});
window.addEventListener("load", function () {  // how many figures decoded: a check for headless browsers
  var ok = 0;
  document.querySelectorAll("img.plot").forEach(function (im) { if (im.naturalWidth > 0) { ok += 1; } });
  document.body.setAttribute("data-plots-loaded", String(ok));
});
"""


def csp_hash(text: str) -> str:
    """A CSP source that allows exactly the inline ``<script>`` or ``<style>`` whose content is ``text``."""
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


# Nothing from anywhere (no fetch, frame, font, form target or base URL), figures only as data URIs,
# and only this page's own style sheet and script, by hash. It has no double quote, so it stands in the
# page's double-quoted attribute with its single quotes as they are (a test holds it to that).
CSP = (f"default-src 'none'; img-src data:; style-src {csp_hash(CSS)}; script-src {csp_hash(SORTER)}; "
       "base-uri 'none'; form-action 'none'")


def esc(x: Any) -> str:
    """HTML-escaped text, safe in element content and in quoted attribute values (both quote kinds)."""
    return html.escape(str(x), quote=True)


def kv_table(rows: Sequence[tuple[str, str]]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in rows) + "</table>"


def summary_rows(data: Result) -> list[tuple[str, str]]:
    cfg = data.config
    counts = state_counts(data.trial_list)
    opts = ", ".join(f"{k}={v}" for k, v in cfg.strategy.options.items())
    rows = [
        ("experiment", esc(data.experiment.name)),
        ("database", esc(data.db)),
        ("data", esc(cfg.data.source + (f" ({cfg.data.path})" if cfg.data.path else ""))),
        ("search space", esc(data.space.kind)),
        ("strategy", esc(cfg.strategy.name + (f" ({opts})" if opts else ""))),
        ("training per trial", esc(fmt_budget(cfg.search.budget) + " (epochs @ share of the training split)")),
    ]
    with contextlib.suppress(Exception):  # an older config: say nothing rather than fail
        rows.append(("scheduler", esc(cfg.search.make_scheduler().describe())))
    if cfg.search.stopping:
        rows.append(("early stopping", esc(", ".join(f"{k}={v}" for k, v in cfg.search.stopping.items()))))
    named = " (accuracy names the score: -RMSE on a regression)" if data.regression else ""
    rows.append(("objectives", esc(", ".join(data.objectives) + named)))
    rows.append(("trials", esc(", ".join(f"{n} {s}" for s, n in counts.items()) or "none")))
    rej = f"{data.rejected}"
    if data.rejection_common:
        rej += " (" + "; ".join(f"{k}: {n}" for k, n in data.rejection_common) + ")"
    rows.append(("rejected before training", esc(rej)))
    rows.append(("search time", esc(fmt_time(data.experiment.elapsed))))
    return rows


def best_block(data: Result) -> str:
    b = data.best
    if b is None:
        return "<p class='caption'>No trial has a score yet.</p>"
    rows = [("trial", esc(b.number)), (data.score_name, esc(f"{b.score:.4f}")) if "rmse" not in b.metrics else
            ("validation RMSE", esc(f"{b.metrics['rmse']:.4g} (MAE {b.metrics.get('mae', float('nan')):.4g}, "
                                    f"R² {b.metrics.get('r2', float('nan')):.4f})")),
            ("trained for", esc(fmt_budget(b.budget))),
            ("parameters", esc(fmt_count(b.cost.params if b.cost else None))),
            ("FLOPs per example", esc(fmt_count(b.cost.flops if b.cost else None))),
            ("latency per example", esc(f"{b.cost.latency_ms:.3f} ms" + (
                f" on {b.cost.latency_device}" if b.cost.latency_device else "")
                if b.cost and b.cost.latency_ms is not None else "-")),
            ("architecture", f"<code>{esc(data.describe(b))}</code>")]
    f1 = b.metrics.get("f1")
    if isinstance(f1, int | float):
        rows.insert(2, ("validation macro F1", esc(f"{f1:.4f}")))
    out = kv_table(rows)
    if len(data.objectives) > 1:
        out += (f"<p class='caption'>{len(data.pareto)} trials are on the Pareto front of "
                f"{esc(', '.join(data.objectives))}; retrain one with <code>nasforge retrain DB --trial N</code>.</p>")
    return out + retrain_block(data) + compress_block(data)


def compress_block(data: Result) -> str:
    """The last ``nasforge compress`` record, if any: each version's test accuracy, size and CPU latency."""
    if not data.compressions:
        return ""
    c = data.compressions[-1]
    rows = []
    found: list[Any] = c["rows"] if isinstance(c.get("rows"), list) else []
    for r in found:
        if not isinstance(r, dict):
            continue
        acc, size, lat, speed = r.get("accuracy"), r.get("size_bytes"), r.get("latency_ms"), r.get("speedup")
        cells = [esc(r.get("name", "?")), esc(f"{100 * acc:.2f}%" if isinstance(acc, int | float) else "-"),
                 esc(fmt_count(r.get("params"))), esc(fmt_count(r.get("nonzero_params"))),
                 esc(f"{size / 1024:.0f} KiB" if isinstance(size, int | float) else "-"),
                 esc(f"{lat:.3f}" if isinstance(lat, int | float) else "-"),
                 esc(f"{speed:.2f}x" if isinstance(speed, int | float) else "-")]
        note = f" ({r['note']})" if r.get("note") else ""
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells)
                    + f"<td class='note'>{esc(str(r.get('method', '')) + note)}</td></tr>")
    if not rows:
        return ""
    head = (f"Last compression (trial {esc(c.get('trial', '?'))}), test split read once more; latency per example "
            "at batch 1 on the CPU, size of the TorchScript file:")
    names = ("model", "test accuracy", "params", "nonzero", "size", "latency ms", "speedup")
    return (f"<p class='caption'>{head}</p><table class='trials' id='compression'><thead><tr>"
            + "".join(f"<th>{esc(n)}</th>" for n in names) + "<th class='arch'>method</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def retrain_block(data: Result) -> str:
    """The last final retraining stored with the experiment, if any (test accuracy read once)."""
    if not data.retrains:
        return ("<p class='caption'>Not retrained yet: <code>nasforge retrain "
                f"{esc(data.db)}</code> trains it on train+validation and tests it once.</p>")
    r = data.retrains[-1]
    models: list[Any] = r["models"] if isinstance(r.get("models"), list) else []
    summary: dict[str, Any] = r["summary"] if isinstance(r.get("summary"), dict) else {}
    rows = []
    seen: set[str] = set()
    for m in models:
        if not isinstance(m, dict) or m.get("name") in seen:
            continue
        name = str(m.get("name", "?"))
        seen.add(name)
        test: dict[str, Any] = m["test"] if isinstance(m.get("test"), dict) else {}
        s: dict[str, Any] = summary[name] if isinstance(summary.get(name), dict) else {}
        acc, std, n = s.get("accuracy_mean", test.get("accuracy")), s.get("accuracy_std"), s.get("n", 1)
        acc_text = "-" if not isinstance(acc, int | float) else f"{100 * acc:.2f}%" + (
            f" ± {100 * std:.2f} over {n} seeds" if isinstance(std, int | float) else "")
        if "rmse" in test:  # a regression: RMSE (± over seeds), MAE and R², in the target's units
            rmse, std = s.get("rmse_mean", test["rmse"]), s.get("rmse_std")
            acc_text = (f"{rmse:.4g}" + (f" ± {std:.3g} over {n} seeds" if isinstance(std, int | float) else "")
                        + f" (MAE {s.get('mae_mean', test.get('mae', 0.0)):.4g}, "
                        f"R² {s.get('r2_mean', test.get('r2', 0.0)):.4f})")
        desc = fmt_model(m.get("description", ""), m.get("members", 1))
        rows.append(f"<tr><td>{esc(name)}</td><td>{esc(acc_text)}</td>"
                    f"<td>{esc(fmt_count(m.get('params')))}</td><td class='arch'>{esc(desc)}</td></tr>")
    regression = any(isinstance(m, dict) and "rmse" in (m.get("test") or {}) for m in models)
    others: dict[str, Any] = r["others"] if regression and isinstance(r.get("others"), dict) else {}
    for name, o in others.items():  # scikit-learn's ridge and gradient boosting, on the same read of test
        if isinstance(o, dict) and isinstance(o.get("rmse"), int | float):
            text = f"{o['rmse']:.4g} (MAE {o.get('mae', 0.0):.4g}, R² {o.get('r2', 0.0):.4f})"
            rows.append(f"<tr><td>{esc(name)}</td><td>{esc(text)}</td><td>-</td>"
                        f"<td class='arch'>{esc(o.get('description', ''))}</td></tr>")
    if not rows:
        return ""
    epochs = r.get("epochs")
    head = f"Last retrain (trial {esc(r.get('trial', '?'))}" + (
        f", {epochs:g} epochs" if isinstance(epochs, int | float) else "") + "), test split read once:"
    return (f"<p class='caption'>{head}</p><table class='trials'><thead><tr><th>model</th>"
            f"<th>{'test RMSE' if regression else 'test accuracy'}</th>"
            "<th>params</th><th class='arch'>architecture</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def num_cell(v: float | None, text: str) -> str:
    return f"<td data-v='{esc(v)}'>{esc(text)}</td>" if v is not None else "<td>-</td>"


def trial_row(data: Result, t: Trial, best: Trial | None, front: set[int]) -> str:
    cls = []
    tags = ""
    if best is not None and t.number == best.number:
        cls.append("best")
        tags += "<span class='tag best'>best</span>"
    if t.number in front:
        cls.append("pareto")
        tags += "<span class='tag pareto'>Pareto</span>"
    c = t.cost
    seconds = t.train_seconds + t.eval_seconds
    cells = [
        num_cell(t.number, str(t.number)),
        f"<td class='{esc('state-' + t.state.value)}'>{esc(t.state.value.lower())}</td>",
        num_cell(t.score, f"{t.score:.4f}") if t.score is not None else "<td>-</td>",
        num_cell(t.budget.epochs * t.budget.fraction, fmt_budget(t.budget)),
        num_cell(c.params if c else None, fmt_count(c.params) if c else "-"),
        num_cell(c.flops if c else None, fmt_count(c.flops) if c else "-"),
        num_cell(c.latency_ms if c else None, f"{c.latency_ms:.3f}" if c and c.latency_ms is not None else "-"),
        num_cell(seconds if seconds else None, fmt_time(seconds)),
        f"<td class='arch'>{esc(data.describe(t))}</td>",
        f"<td class='note'>{tags}{esc(t.reason or '')}</td>",
    ]
    return f"<tr class='{esc(' '.join(cls))}'>" + "".join(cells) + "</tr>"


def table_trials(data: Result) -> list[Trial]:
    """The rows of the page's table: every trial, or for a large study the ``TABLE_ROWS`` best-ranked ones
    (then every trial is in the CSV file beside the page)."""
    if len(data.trial_list) <= TABLE_ROWS:
        return data.detailed(data.trial_list)
    return data.detailed(ranked(data.trial_list)[:TABLE_ROWS])


def write_csv(data: Result, path: Path) -> Path:
    """Every trial, one row each, the network by its canonical key (no sample is read): the table's other pages."""
    atomic.write_text(path, csv_text(data))
    return path


def csv_text(data: Result) -> str:
    """:func:`write_csv`'s text (the live view serves it as ``/trials.csv``)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    # the score column: val_acc, or the metric the search ranks by (val_balanced_accuracy, val_f1)
    score = "val_acc" if data.metric == "accuracy" else f"val_{data.metric}"
    w.writerow(["trial", "state", score, "epochs", "fraction", "params", "flops", "latency_ms", "seconds",
                "reason", "key"])
    for t in data.trial_list:
        c = t.cost
        w.writerow([t.number, t.state.value, t.score, t.budget.epochs, t.budget.fraction, c.params if c else None,
                    c.flops if c else None, c.latency_ms if c else None, t.train_seconds + t.eval_seconds,
                    t.reason, t.key])
    return buf.getvalue()


def trials_table(data: Result) -> str:
    if not data.trial_list:
        return "<p class='caption'>No trials yet.</p>"
    best = data.best
    front = {t.number for t in data.pareto} if len(data.objectives) > 1 else set()
    names = ("trial", "state", f"val {METRIC_SHORT[data.metric]}", "budget", "params", "FLOPs", "latency ms", "time",
             "architecture", "note")
    head = "".join(f"<th class='arch'>{esc(h)}</th>" if h in ("architecture", "note") else f"<th>{esc(h)}</th>"
                   for h in names)
    rows = table_trials(data)
    body = "".join(trial_row(data, t, best, front) for t in rows)
    more = "" if len(rows) == len(data.trial_list) else (
        f"<p class='caption'>The {len(rows):,} best-ranked of {len(data.trial_list):,} trials; every trial is in "
        f"<code>{esc(CSV)}</code> beside this page.</p>")
    return (f"{more}<div class='scroll'><table class='trials sortable' id='trials'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def report_sections(data: Result, images: dict[str, str], importance_text: str) -> str:
    """The page's sections: the summary, one per figure, the trial table (the live view swaps these in place)."""
    sections = []
    for fig in FIGURES:
        caption = importance_text if fig.id == "importance" else caption_for(data, fig.caption)
        sections.append(
            f"<section id='{esc(fig.id)}'><h2>{esc(fig.title)}</h2>"
            f"<img class='plot' id='{esc('plot-' + fig.id)}' data-plot='{esc(fig.id)}' alt='{esc(fig.title)}' "
            f"src='{esc('data:image/png;base64,' + images[fig.id])}'>"
            f"<p class='caption'>{esc(caption)}</p></section>")
    return f"""<section id="summary"><h2>Summary</h2>
<div class="cols"><div>{kv_table(summary_rows(data))}</div>
<div><h2 class="sub">Best trial</h2>{best_block(data)}</div></div></section>
{"".join(sections)}
<section id="trials"><h2>Trials</h2>
<p class="caption">Click a column to sort. Highlighted: the best trial; red edge: on the Pareto front (multi-objective
searches). Budget is epochs @ share of the training split.</p>
{trials_table(data)}</section>"""


def nav_links(first: Sequence[tuple[str, str]] = ()) -> str:
    """The bar of links to the page's sections (``first``: (id, title) pairs before the summary)."""
    return "".join(f"<a href='{esc('#' + i)}'>{esc(t)}</a>" for i, t in
                   [*first, ("summary", "Summary"), *[(f.id, f.title) for f in FIGURES], ("trials", "Trials")])


def page_html(*, title: str, subtitle: str, nav: str, body: str, style: str = CSS, script: str = SORTER,
              csp: str = CSP) -> str:
    """The page around ``body`` (HTML): ``csp`` must allow ``style`` and ``script`` by hash (see :data:`CSP`)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.escape(csp, quote=False)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{style}</style></head>
<body>
<header><h1>{esc(title)}</h1>
<p>{esc(subtitle)}</p></header>
<nav>{nav}</nav>
<main>
{body}
</main>
<script>{script}</script>
</body></html>
"""


def render(data: Result, images: dict[str, str], importance_text: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return page_html(title=f"nasforge report: {data.experiment.name}",
                     subtitle=f"{data.db} · {len(data.trial_list):,} trials · generated {stamp}",
                     nav=nav_links(), body=report_sections(data, images, importance_text))
