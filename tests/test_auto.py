"""`nasforge auto`: what DATA means, plans sized from measurement, the deadline, and runs that end on time.

The end-to-end runs use a small generated table (seconds of training) with budgets of tens of
seconds; the planner's arithmetic is checked on its own with a given timing, so no test waits for
the clock beyond those runs.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from nasforge import api
from nasforge.autoplan import (
    MIN_TRIAL_STEPS,
    SEARCH_TRIALS_MIN,
    SIZE_FLOOR,
    Plan,
    Timing,
    check_max_params,
    converge_epochs,
    layouts,
    make_plan,
    resolve_data,
    run_auto,
    search_config,
    space_limits,
    stage_options,
    time_steps,
    validation_for,
    warm_start,
    worker_layout,
)
from nasforge.cli import main, metric_difference, print_final, score_label
from nasforge.config import from_dict
from nasforge.data import load_dataset
from nasforge.data.base import Dataset
from nasforge.data.files import hold_out
from nasforge.errors import NasforgeError
from nasforge.evaluate.trainer import Recipe
from nasforge.final.export import load_python, model_from_genotype
from nasforge.final.references import data_kind
from nasforge.loop import Deadline, run_search
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.testing import TOY_SHAPE, FunctionEvaluator, toy_objective, toy_space
from nasforge.types import Budget


def table(folder: Path, n: int = 400, features: int = 8, seed: int = 0, cut: float = 0.0) -> Path:
    """A two-class table where a linear rule with noise decides: train.csv and test.csv in ``folder``; ``cut``
    above 0 makes class 1 the smaller (1.0: about one example in five)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", n), ("test.csv", n // 4)):
        x = rng.normal(size=(rows, features))
        y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=rows) > cut).astype(int)
        lines = [",".join([*(f"f{i}" for i in range(features)), "label"])]
        lines += [",".join([*(f"{v:.4f}" for v in r), str(c)]) for r, c in zip(x, y, strict=True)]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def fake(n: int, shape: tuple[int, ...] = (1, 8, 8), classes: int = 10) -> Dataset:
    """A Dataset of zeros with ``n`` training examples: the planner reads only sizes and shapes."""
    y = torch.arange(n) % classes
    yv = torch.arange(max(n // 9, classes)) % classes
    return Dataset("fake", torch.zeros(n, *shape), y, torch.zeros(len(yv), *shape), yv,
                   tuple(str(i) for i in range(classes)))


# ------------------------------------------------------------------------------------------ DATA

def test_data_names_paths_and_configs(tmp_path):
    assert resolve_data("digits") == {"data": {"source": "digits"}}
    assert resolve_data("Fashion-MNIST") == {"data": {"source": "fashion_mnist"}}
    folder = table(tmp_path / "t")
    assert resolve_data(str(folder))["data"] == {"source": "csv", "path": str(folder)}
    assert resolve_data(str(folder / "train.csv"))["data"]["source"] == "csv"
    ucr = tmp_path / "ucr"
    ucr.mkdir()
    (ucr / "ECG200_TRAIN.tsv").write_text("1\t0.5\t0.7\n-1\t0.1\t0.2\n")
    assert resolve_data(str(ucr))["data"] == {"source": "csv", "path": str(ucr)}
    assert resolve_data(str(ucr / "ECG200_TRAIN.tsv"))["data"]["source"] == "csv"
    (tmp_path / "kaggle.CSV.gz").write_bytes(b"")  # gzipped tables are tables (any case)
    assert resolve_data(str(tmp_path / "kaggle.CSV.gz"))["data"]["source"] == "csv"
    for name, hint in (("sales.xlsx", "save the sheet as CSV"), ("frame.parquet", "DataFrame.to_csv"),
                       ("x.npy", "np.savez(path, x_train=x, y_train=y)")):  # read by no source: how to write one
        (tmp_path / name).write_bytes(b"PK")
        with pytest.raises(NasforgeError, match=rf"cannot tell what data .*{name}.* holds: .*{re.escape(hint)}"):
            resolve_data(str(tmp_path / name))
    for name in ("iris.data", "train.txt", "points.DAT"):  # the UCI repository's and older archives' names
        (tmp_path / name).write_text("1,2,a\n")
        assert resolve_data(str(tmp_path / name))["data"]["source"] == "csv"
    np.savez(tmp_path / "a.npz", x_train=np.zeros((4, 3)), y_train=np.arange(4) % 2)
    assert resolve_data(str(tmp_path / "a.npz"))["data"]["source"] == "npz"
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte.gz").touch()
    assert resolve_data(str(idx))["data"]["source"] == "idx"
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    (cifar / "data_batch_1").touch()
    assert resolve_data(str(cifar))["data"]["source"] == "cifar10"
    from PIL import Image

    for cls in ("cat", "dog"):  # one subfolder of images per class
        (tmp_path / "photos" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "photos" / cls / "a.png")
    assert resolve_data(str(tmp_path / "photos"))["data"] == {"source": "images", "path": str(tmp_path / "photos")}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "mine", "data": {"source": "digits", "limit": 500}}))
    assert resolve_data(str(cfg)) == {"data": {"source": "digits", "limit": 500}, "name": "mine"}


@pytest.mark.parametrize("data", ["no_such_data", "/nonexistent/x.npz"])
def test_unknown_data_is_one_line(tmp_path, capsys, data):
    assert main(["auto", data, "--time-budget", "1m", "--db", str(tmp_path / "a.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nasforge: error: unknown data") and "Traceback" not in "".join(err)
    assert not (tmp_path / "a.db").exists()


@pytest.mark.parametrize("budget", ["0", "-5m", "soon", "inf"])
def test_bad_budgets_are_one_line(tmp_path, capsys, budget):
    assert main(["auto", "digits", f"--time-budget={budget}", "--db", str(tmp_path / "a.db")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("nasforge: error: ")
    assert not (tmp_path / "a.db").exists()


# ------------------------------------------------------------------------------------------ plans

def plan_for(n: int, budget: float, step: float = 0.05, **kw) -> Plan:
    data = fake(n)
    return make_plan(raw={"data": {"source": "fake"}}, data=data, time_budget=budget, spent=5.0, reference="resnet20",
                     timing=Timing(step, 40, 272_000), recipe=Recipe(), reference_flops=5_000_000, **kw)


def test_the_probe_keeps_the_median_of_three_timed_parts_and_a_stored_plan_reads_it_back():
    """A plan is made from the median of three parts of the timing window (one part slowed by another
    process must not become the plan); the parts are stored with the plan, and a resumed plan reads them."""
    from nasforge.space.stage import StageSpace

    data = fake(600)
    space = StageSpace(max_stages=3)
    model = space.build(space.resnet20(), data.input_shape, data.n_classes)
    t = time_steps(model, data, Recipe(), window=0.3)
    assert len(t.parts) == 3 and t.seconds_per_step == sorted(t.parts)[1] and t.steps > 0
    assert len(time_steps(model, data, Recipe(), window=0.3, parts=1).parts) == 1
    p = make_plan(raw={"data": {"source": "fake"}}, data=fake(4000), time_budget=600, spent=5.0,
                  reference="resnet20", timing=t, recipe=Recipe(), reference_flops=5_000_000)
    back = Plan.from_json(json.loads(json.dumps(p.to_json())))
    assert back.reference_timing == t and "median of 3 parts" in p.why["timing"]


def test_a_plan_fits_its_budget_and_says_why():
    p = plan_for(4000, 600)
    assert p.search_seconds > 0 and p.final_seconds_each > 0 and p.expected_trials >= 1
    assert 5.0 + p.search_seconds + (2 if p.with_reference else 1) * p.final_seconds_each <= 600
    assert set(p.why) >= {"timing", "final", "search", "budget", "validation", "space"}
    text = "\n".join(p.lines())
    assert f"about {p.expected_trials} trials" in text and "final training" in text


def test_budgets_are_steps_so_small_data_get_more_epochs():
    small, large = plan_for(4000, 1200), plan_for(60000, 1200)
    assert small.trial_epochs * small.trial_fraction > large.trial_epochs * large.trial_fraction
    assert small.final_epochs_reference > large.final_epochs_reference
    # a large set (over 540 batches: a lowest rung of MIN_TRIAL_STEPS is under a ninth of an epoch): rungs grow
    # the data share
    slow = plan_for(200_000, 1200, step=0.2)
    assert slow.trial_fraction < 1 and slow.min_fraction is not None
    longer = plan_for(4000, 2400)  # more time: longer (more faithful) trials, about as many
    assert longer.trial_epochs > small.trial_epochs and longer.expected_trials >= small.expected_trials


def test_the_reference_shares_the_final_time_only_where_both_networks_still_converge():
    roomy = plan_for(1000, 1200, step=0.01)  # hundreds of epochs each in half the final time
    assert roomy.with_reference and "reference" not in roomy.why
    assert "the searched network and the reference" in "\n".join(roomy.lines())
    tight = plan_for(60000, 3600, step=0.16)  # Fashion-MNIST's hour: sharing would give each ~10 of 43 epochs
    assert not tight.with_reference and "--reference-only" in tight.why["reference"]
    assert "the searched network alone" in "\n".join(tight.lines())
    # alone, short of converging: the final gets more of what is left than the search
    assert tight.final_seconds_each > tight.search_seconds and "each epoch counts" in tight.why["final"]
    assert 5.0 + tight.search_seconds + tight.final_seconds_each <= 3600


def test_more_budget_never_trains_the_searched_network_less():
    """The reference shares the final only where both networks still converge: at half of converging each (the rule
    before), Fashion-MNIST's 2 hours gave the searched network 22 epochs where 1.5 hours gave it 39 alone."""
    for n, step, budgets in ((60000, 0.14, (1800, 3600, 5400, 7200, 10800, 14400, 21600)),
                             (1800, 0.03, (120, 180, 360, 720, 1440)), (4000, 0.05, (300, 600, 1200, 2400))):
        plans = [plan_for(n, b, step=step) for b in budgets]
        each = [p.final_seconds_each / p.members for p in plans]  # one training of the searched network
        assert each == sorted(each), (n, each)
        shared = [p for p in plans if p.with_reference]
        converge = converge_epochs(math.ceil((n + max(n // 9, 10)) / 128))  # fake(n): train + validation
        assert all(p.final_epochs_reference >= converge for p in shared)
    assert [plan_for(60000, b, step=0.14).with_reference for b in (3600, 7200, 14400)] == [False, False, True]


def test_long_trials_get_budgets_in_the_reference_time():
    assert plan_for(60000, 3600, step=0.16).equal_time  # lowest-rung trials of tens of seconds
    short = plan_for(1000, 120, step=0.01)
    assert not short.equal_time and "equal_time" not in short.why  # a 1 s timing would double a 1 s trial
    cfg = search_config(plan_for(60000, 3600, step=0.16), name="x", seed=0, db="x.db", initial=[],
                        space={"kind": "stage"}, train={}, reference_flops=1)
    assert cfg["search"]["equal_time"] == "resnet20"
    assert from_dict({**cfg, "data": {"source": "digits"}}).search.equal_time == "resnet20"  # search accepts it


def test_trials_at_once_plan_the_search_at_the_pools_pace_and_time_each_trial_on_its_worker():
    """Two single-thread workers at 0.08 s a step each train 25 steps/s in all against 20 on two threads: the
    search's ~30 trials get longer (more faithful) budgets, a trial's expected time and timeout are one worker's,
    and the config runs a pool."""
    one = plan_for(4000, 1200, step=0.05)
    two = plan_for(4000, 1200, step=0.05, workers=2, worker_timing=Timing(0.08, 40, 272_000), threads_per_worker=1)
    assert (one.workers, two.workers, two.threads_per_worker, two.worker_step_seconds) == (1, 2, 1, 0.08)
    assert two.expected_trials >= one.expected_trials and "2 at a time" in "\n".join(two.lines())
    assert two.trial_epochs * two.trial_fraction > 1.2 * one.trial_epochs * one.trial_fraction
    b = Budget(epochs=two.trial_epochs, fraction=two.trial_fraction)
    steps_only = replace(two, equal_time=False)  # without equal_time's fixed ~2 s of timing each candidate
    assert steps_only.trial_seconds(b.epochs, b.fraction) == pytest.approx(
        replace(steps_only, workers=1, worker_step_seconds=None).trial_seconds(b.epochs, b.fraction) * 0.08 / 0.05)
    assert two.trial_timeout >= 2.9 * two.trial_seconds(b.epochs, b.fraction) - 6
    cfg = search_config(two, name="x", seed=0, db="x.db", initial=[], space={"kind": "stage"}, train={},
                        reference_flops=1)
    assert cfg["executor"] == {"kind": "pool", "workers": 2, "threads_per_worker": 1}
    assert from_dict({**cfg, "data": {"source": "digits"}}).executor.kind == "pool"  # search accepts it
    assert "executor" not in search_config(one, name="x", seed=0, db="x.db", initial=[], space={"kind": "stage"},
                                           train={}, reference_flops=1)
    assert Plan.from_json(json.loads(json.dumps(two.to_json()))) == two
    old = {k: v for k, v in one.to_json().items() if k not in ("workers", "threads_per_worker", "worker_step_seconds")}
    assert Plan.from_json(old).workers == 1  # a plan stored before workers: one trial at a time


@pytest.mark.parametrize("argv, needle", [
    (["--workers", "0"], "--workers must be a whole number of at least 1 (1: one trial at a time), got 0"),
    (["--workers", "2", "--resume"], "--resume continues the stored plan, its workers included; leave out --workers"),
])
def test_bad_workers_are_one_line(tmp_path, capsys, argv, needle):
    assert main(["auto", "digits", "--time-budget", "1m", "--db", str(tmp_path / "a.db"), *argv]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and not (tmp_path / "a.db").exists()


def test_a_pool_whose_trials_would_not_fit_keeps_the_one_at_a_time_plan(tmp_path, monkeypatch, short_rungs):
    """Where a trial on one worker's threads is too slow for the search's share, the plan stays one trial at a
    time (a search) rather than becoming no search, and its why-workers line says so."""
    import nasforge.autoplan as autoplan

    monkeypatch.setattr(autoplan, "POOL_SEARCH_MIN", 0.0)
    monkeypatch.setattr(autoplan, "worker_layout", lambda *a, **k: (2, 1, Timing(100.0, 10, 1), (
        "2 trials at once, 1 thread each (a process pool): the reference trains 2 steps/s ...: 1.50x")))
    lines: list[str] = []
    out = run_auto(str(table(tmp_path / "t")), time_budget="18s", db=tmp_path / "a.db", print_config=True,
                   say=lines.append)
    cfg = yaml.safe_load(out["config"])
    assert "executor" not in cfg and cfg["search"]["trials"] > 0  # one at a time, and a search
    assert any(line.startswith("  why workers: one trial at a time: on one worker's threads no trial long enough "
                               "to rank networks fits the search (the reference trains 2 steps/s") for line in lines)


def test_worker_layouts_use_every_thread_and_a_pool_must_pay():
    assert layouts(2, None) == [(2, 1)] and layouts(1, None) == [] and layouts(16, None) == [(8, 2), (4, 4), (2, 8)]
    assert layouts(16, 4) == [(4, 4)] and layouts(2, 1) == [] and layouts(2, 3) == [(3, 1)]
    from nasforge.space.stage import StageSpace

    data = fake(600)
    space = StageSpace(max_stages=3)
    model = space.build(space.resnet20(), data.input_shape, data.n_classes)
    threads = torch.get_num_threads()
    slow = Timing(10.0, 10, 1)  # one trial at a time "measured" at 10 s a step: any pool is faster
    w, k, t, why = worker_layout(model, data, Recipe(), timing=slow, window=0.2, asked=None)
    assert (w, k) == (2, 1) and t is not None and "2 trials at once, 1 thread each" in why
    fast = Timing(1e-6, 10, 1)  # and at a microsecond a step: none pays
    w, k, t, why = worker_layout(model, data, Recipe(), timing=fast, window=0.2, asked=None)
    assert (w, k, t) == (1, 0, None) and why.startswith("one trial at a time") and "short of the 1.2x" in why
    w, k, t, why = worker_layout(model, data, Recipe(), timing=fast, window=0.2, asked=2)  # --workers 2 holds
    assert (w, k) == (2, 1) and why.endswith("(--workers)")
    assert torch.get_num_threads() == threads  # each layout timed on its threads, then the driver's restored


def test_image_and_sequence_searches_keep_to_networks_of_the_reference_size_class():
    """Up to the reference's FLOPs and down to SIZE_FLOOR of its parameters: short trials over-rate small networks.
    Tables have no floor (logistic regression, a few dozen parameters, is a point there)."""
    from nasforge.space import make_space
    from nasforge.space.stage import stage_sample

    opts, resnet20 = warm_start("image", (1, 8, 8))
    plan = plan_for(60000, 3600, step=0.16)
    cfg = search_config(plan, name="x", seed=0, db="x.db", initial=resnet20, space=opts, train={},
                        reference_flops=5_065_984)
    assert cfg["space"]["min_params"] == math.ceil(SIZE_FLOOR * 272_000) and "50% of its 272,000" in plan.why["space"]
    space = make_space(cfg["space"], (1, 8, 8))
    assert space.check(resnet20[0], (1, 8, 8)) is None  # the warm start
    basic = {"block": "basic", "depth": 3, "kernel": 3, "se": False, "down": "stride"}
    one_stage = stage_sample(space, [{**basic, "width": 16}], stem=16)  # 14K parameters: led short trials, lost
    assert "below the floor" in space.check(one_stage, (1, 8, 8))
    flat = make_plan(raw={"data": {"source": "fake"}}, data=fake(400, (8,), 2), time_budget=300, spent=1.0,
                     reference="mlp", timing=Timing(0.002, 40, 74_754), recipe=Recipe(), reference_flops=147_456)
    mlp, initial = warm_start("flat", (8,))
    flat_cfg = search_config(flat, name="x", seed=0, db="x.db", initial=initial, space=mlp, train={},
                             reference_flops=147_456)
    assert "min_params" not in flat_cfg["space"] and "parameters" not in flat.why["space"]


@pytest.mark.parametrize(("shape", "stages", "kernels"), [((1, 28, 28), 3, None), ((3, 32, 32), 4, None),
                                                          ((1, 8, 8), 3, None), ((1, 128), 6, [3, 5, 7])])
def test_the_stage_space_is_as_deep_as_the_input_allows(shape, stages, kernels):
    opts = stage_options(shape)
    assert opts["max_stages"] == stages and opts.get("kernels") == kernels
    space, initial = warm_start(data_kind(shape), shape)
    assert space == opts and initial[0]["n_stages"] == 3  # ResNet-20 is a point of every one of them
    # ResNet-20 sees 81 positions: the 128-step sequence gets a second warm start that sees it whole
    assert [int(s["n_stages"]) for s in initial[1:]] == ([5] if shape == (1, 128) else [])


def test_the_covering_warm_start_keeps_to_the_size_class_and_the_plan_says_why():
    from nasforge.autoplan import covering_why

    shape = (1, 128)
    opts, initial = warm_start("sequence", shape, space_limits("sequence", 93_914, 7_877_888))  # the 1-D ResNet's
    assert len(initial) == 2
    assert covering_why(opts, initial, shape).startswith(
        "the search starts from the reference and from stem16 > 2x basic16 k3 > 2x basic32 k3 /2 > 2x basic64 k3 "
        "/2 > 2x basic64 k3 /2 > 2x basic64 k3 /2 > gap: the reference sees 81 positions of the input's 128, this "
        "network 221")
    _, only = warm_start("sequence", shape, space_limits("sequence", 93_914, 7_000_000))
    assert len(only) == 1  # it costs 7,681,280 FLOPs: over a lower cap it is no candidate, so no warm start


def test_a_budget_too_small_names_the_measured_minimum():
    with pytest.raises(NasforgeError, match=r"cannot train the reference .* give at least --time-budget \d+"):
        plan_for(60000, 30, step=0.2)


@pytest.mark.parametrize(("n", "budget", "step", "folds"), [(1151, 27, 0.066, 5), (1151, 30, 0.02, 5),
                                                          (364, 20, 0.003, 5), (60000, 900, 0.5, 1),
                                                          (3200, 600, 0.07, 5), (3600, 600, 0.045, 5)])
@pytest.mark.parametrize("warm", [1, 2])
def test_the_search_share_holds_the_warm_start_full_trial(n, budget, step, folds, warm):
    """The warm start trains at the full trial budget first: a search share shorter than that finished no
    trial (digits in 30 s on an AVX2 2-core CPU, 5-fold CV), so a short budget moves time from the final to it.
    Two warm starts (a sequence's covering network, a table's linear model) need two: on the generated sequences
    a plan of 3 rungs had 4m15s for two full trials of 2m32s each, so the second never started."""
    p = plan_for(n, budget, step=step, folds=folds, warm_starts=warm)
    # a second warm start may cost rungs (the last case: 3 with one, 2 with two), never the search itself
    assert p.reference_only == plan_for(n, budget, step=step, folds=folds).reference_only
    if p.reference_only:  # trials that rank do not fit: no search at all, rather than one that picks at random
        assert p.search_seconds == 0 and p.why["search"].startswith("none:")
    else:
        assert warm * p.trial_seconds(p.trial_epochs, p.trial_fraction) < p.search_seconds
        assert p.expected_trials >= SEARCH_TRIALS_MIN
        assert ("best-scoring of the warm starts" in p.why["population"]) == (warm == 2)
    assert 5.0 + p.search_seconds + p.final_seconds_each * (2 if p.with_reference else 1) <= budget


@pytest.mark.parametrize(("n", "budget", "step", "folds", "rungs"), [
    (1151, 180, 0.064, 5, 0), (1151, 600, 0.064, 5, 2), (3200, 600, 0.12, 5, 1), (3200, 600, 0.07, 5, 1),
    (4000, 600, 0.05, 1, 3), (60000, 900, 0.16, 1, 3), (60000, 3600, 0.16, 1, 3)])
def test_the_lowest_rung_trains_the_steps_that_rank_networks(n, budget, step, folds, rungs):
    """Digits in 3 minutes on an AVX2 2-core CPU planned 18-step trials, whose scores measured how fast each
    network starts, and 5-7-step lowest rungs scored at chance; most trials stop there: that rung now trains
    MIN_TRIAL_STEPS a fold, with fewer rungs (down to one, no ASHA) and fewer trials where the search is short;
    where not even SEARCH_TRIALS_MIN such trials fit, there is no search and the reference trains instead."""
    p = plan_for(n, budget, step=step, folds=folds)
    if rungs == 0:
        assert p.reference_only and p.search_seconds == 0 and p.expected_trials == 0
        assert re.search(r"^none: .* holds \d, fewer than the 5 .* --time-budget \d+m\)$", p.why["search"])
        assert "reference only" in "\n".join(p.lines()) and "reference" not in p.why  # no other arm to run
        cfg = search_config(p, name="x", seed=0, db="x.db", initial=[], space={"kind": "stage"}, train={},
                            reference_flops=1)
        assert "strategy" not in cfg and cfg["retrain"]["baseline"] == "resnet20"
        return
    total = n + max(n // 9, 10)  # fake(n)'s training and validation examples: folds split them all
    fold_n = total - total // folds if folds > 1 else n
    full_steps = p.trial_epochs * math.ceil(fold_n * p.trial_fraction / 128)
    assert full_steps / 3 ** (rungs - 1) >= MIN_TRIAL_STEPS - 1 and p.rungs.count("->") == rungs - 1
    assert p.expected_trials >= SEARCH_TRIALS_MIN
    assert p.trial_seconds(p.trial_epochs, p.trial_fraction) < p.search_seconds
    cfg = search_config(p, name="x", seed=0, db="x.db", initial=[], space={"kind": "stage"}, train={},
                        reference_flops=1)
    parsed = from_dict({**cfg, "data": {"source": "digits"}})
    assert (parsed.search.scheduler is None) == (rungs == 1)  # one rung: every trial the full budget, no ASHA
    if rungs > 1:
        assert len(parsed.search.make_scheduler().ladder) == rungs


def test_a_budget_far_short_of_converging_trains_the_reference_and_no_search():
    """A slow machine (an AVX2-only 2-core CPU: 0.5 s a ResNet-20 step, ~4 minutes an epoch) and the demo's
    15 minutes: the whole budget trains ResNet-20 ~3 of the ~43 epochs converging takes, so every final step
    counts more than a search returns (two searches lost 1.0 and 2.4 points there): no search, the reference trains for
    the whole budget, and the plan names the budget a search needs. An hour there, or 15 minutes on a machine
    4x faster, searches."""
    p = plan_for(60000, 900, step=0.5)
    assert p.reference_only and p.search_seconds == 0 and p.final_epochs_reference >= 1
    assert re.search(r"^none: the whole budget trains resnet20 \d\.\d epochs, \d+% of .* --time-budget \d+m\)$",
                     p.why["search"])
    assert 5.0 + p.final_seconds_each <= 900
    need = int(re.findall(r"--time-budget (\d+)m", p.why["search"])[0])
    assert plan_for(60000, 60 * need, step=0.5).search_seconds > 0  # the budget it names searches
    assert plan_for(60000, 3600, step=0.5).search_seconds > 0 and plan_for(60000, 900, step=0.12).search_seconds > 0
    # the reference fits once, the smallest search beside it does not: the reference trains, and the plan says what
    # budget a search needs (this was refused, though the reference alone fitted)
    p = plan_for(60000, 400, step=0.5)
    assert p.reference_only and p.final_epochs_reference >= 1
    assert re.search(r"^none: the smallest search here .* do not fit the .* left; the reference, where the search "
                     r"would start, trains instead \(a search needs about --time-budget \d+m\)$", p.why["search"])
    with pytest.raises(NasforgeError, match=r"cannot train the reference \(resnet20\) even once here: one epoch "
                                            r"takes .* give at least --time-budget (\d+)m"):
        plan_for(60000, 200, step=0.5)


def test_small_data_are_cross_validated():
    assert validation_for(60000)[:2] == (0.1, 1)
    vf, folds, why = validation_for(455)
    assert folds == 5 and vf == 0.2 and "cross-validation" in why
    p = plan_for(400, 300, step=0.01, folds=5)
    assert p.folds == 5 and not p.equal_time
    assert p.trial_seconds(1, 1.0) == pytest.approx(5 * plan_for(400, 300, step=0.01).trial_seconds(1, 1.0))


# ------------------------------------------------------------------------------------------ deadline

def test_no_trial_starts_that_cannot_end_before_the_deadline(tmp_path):
    space = toy_space()
    ev = FunctionEvaluator(lambda s: toy_objective(space, s), delay=0.2)
    with Store(tmp_path / "d.db") as st:
        exp = st.create_experiment("toy", {}, "fp")
        t0 = time.time()
        out = run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=0),
                         evaluator=ev, input_shape=TOY_SHAPE, budget=Budget(), max_trials=1000,
                         deadline=Deadline(t0 + 1.5, lambda b: 0.3))
    assert out.stopped == "time"
    assert time.time() - t0 < 1.5 + 0.3  # the last trial started with its 0.3 s estimate still fitting
    assert 3 <= len(out.trials) <= 7


# ------------------------------------------------------------------------------------------ end to end

@pytest.fixture
def short_rungs(monkeypatch):
    """Ranking trials of 10 steps, not 60, and 5 s kept for testing and the report, not 10: these tests' budgets of
    18 s then plan a search of ~10-30 trials on any machine (with 60 steps a slow one plans none, which a test of its
    own covers), and the suite spends its minutes on the paths, not on waiting for a long search."""
    import nasforge.autoplan as autoplan

    monkeypatch.setattr(autoplan, "MIN_TRIAL_STEPS", 10)
    monkeypatch.setattr(autoplan, "RESERVE_MIN", 5.0)


@pytest.fixture
def shared_final(monkeypatch):
    """The final always shared by the searched network and the reference: whether 15 s holds half of what converging
    takes is the machine's speed (a run with ~25% steal planned the searched network alone and failed this test);
    the path where it does not is a test of its own."""
    import nasforge.autoplan as autoplan

    monkeypatch.setattr(autoplan, "SHARE_MIN", 0.0)


def test_auto_on_a_table_ends_on_time_and_records_everything(tmp_path, capsys, short_rungs, shared_final):
    data = table(tmp_path / "t")
    t0 = time.time()
    code = main(["auto", str(data), "--time-budget", "18s", "--db", str(tmp_path / "a.db"),
                 "--json", str(tmp_path / "r.json")])
    wall = time.time() - t0
    out = capsys.readouterr()
    assert code == 0, out.err
    assert wall <= 18 * 1.05
    assert "plan for csv" in out.err and "why timing" in out.err
    rec = json.loads((tmp_path / "r.json").read_text())
    assert set(rec) >= {"data", "time_budget_s", "seconds", "searched", "reference", "others", "trials", "final"}
    assert rec["time_budget_s"] == 18 and rec["seconds"]["total"] <= 18 * 1.05
    assert 0 <= rec["searched"]["test_accuracy"] <= 1 and rec["plan"]["with_reference"] is True
    if rec["final"]["with_reference"]:  # the search found another network: both trained, side by side
        assert rec["reference"]["name"] == "mlp" and "searched minus reference (mlp)" in out.out
    else:  # it kept the reference itself: trained once (the test below makes this case happen)
        assert rec["reference"] is None and "kept the reference itself" in rec["final"]["why"]
    assert set(rec["others"]) == {"logistic_regression", "gradient_boosting"}
    # fitted before the plan, so the plan divides what their time left; scored once, with the searched network
    assert "why others: logistic regression and gradient boosting fitted on the training data in" in out.err
    assert all(0 <= o["accuracy"] <= 1 and o["seconds"] > 0 for o in rec["others"].values())
    assert rec["trials"]["complete"] >= 2
    assert Path(rec["report"]).exists()


def test_auto_on_a_raw_single_csv_encodes_it_and_holds_out_a_test_split(tmp_path, capsys):
    """A CSV as a user has it (an id column, a text column, missing numbers) and no test file: auto encodes it and
    holds out 20% as the test split, where before it refused the text and, given numbers only, searched and trained
    for the whole budget and then failed for want of a test split."""
    rng = np.random.default_rng(0)
    lines = ["id,f0,f1,f2,colour,label"]
    for i in range(200):
        x = rng.normal(size=3)
        c = int(x[0] + 0.5 * x[1] > 0)
        cells = [f"{v:.3f}" for v in x]
        if i % 9 == 0:
            cells[2] = "NA"
        lines.append(",".join([f"row{i}", *cells, ["red", "green", "blue"][(i + c) % 3], str(c)]))
    (tmp_path / "raw.csv").write_text("\n".join(lines) + "\n")
    code = main(["auto", str(tmp_path / "raw.csv"), "--time-budget", "20s", "--db", str(tmp_path / "a.db"),
                 "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "why data: raw.csv: the label is column 'label' (of 6 columns: by its name); give --label" in out.err
    assert "raw.csv: 1 text column(s) one-hot encoded into 3 features" in out.err
    assert "'id' dropped" in out.err and "missing numbers in 1 column(s)" in out.err
    assert "why test: the data has no test split, so 20% of it (40 examples, stratified)" in out.err
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["plan"]["data"]["test_fraction"] == 0.2
    tested = rec["searched"] or rec["reference"]  # a 20 s budget may leave no room for a search
    assert tested is not None and 0.5 < tested["test_accuracy"] <= 1
    # the held-out rows as a file of new examples: predicted as the test split was, the id dropped, the colour
    # one-hot and the NA filled by what the training rows fitted, whichever network the run delivered
    _, held = hold_out(np.array([line.rsplit(",", 1)[1] for line in lines[1:]]), 0.2, False)
    (tmp_path / "held.csv").write_text("\n".join([lines[0], *(lines[1 + i] for i in held)]) + "\n")
    p = api.predict(tmp_path / "a.db", tmp_path / "held.csv")
    assert len(p) == 40 and p.metrics is not None
    assert p.metrics["accuracy"] == pytest.approx(tested["test_accuracy"])
    # --label picks another column to predict (here the colour, which the label and f0, f1 decide); a name or index
    code = main(["auto", str(tmp_path / "raw.csv"), "--time-budget", "12s", "--db", str(tmp_path / "b.db"),
                 "--label", "-2", "--layout", "tabular", "--print-config"])
    out = capsys.readouterr()
    assert code == 0 and "label_column: -2" in out.out and "layout: tabular" in out.out
    code = main(["auto", "digits", "--time-budget", "12s", "--db", str(tmp_path / "c.db"), "--label", "colour"])
    assert code != 0 and "--label names a CSV's label column, and 'digits' is digits data" in capsys.readouterr().err


def auto_on_table(tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str) -> tuple[Any, dict[str, Any]]:
    """`nasforge auto` on the test table with --json: its captured output and its record (it must exit 0)."""
    data = table(tmp_path / "t")
    code = main(["auto", str(data), "--time-budget", budget, "--db", str(tmp_path / "a.db"),
                 "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out, json.loads((tmp_path / "r.json").read_text())


def test_where_sharing_costs_too_much_the_searched_network_trains_alone(tmp_path, capsys, monkeypatch, short_rungs):
    import nasforge.autoplan as autoplan

    monkeypatch.setattr(autoplan, "SHARE_MIN", 100.0)  # no budget is roomy enough to share: the path a big set takes
    out, rec = auto_on_table(tmp_path, capsys, "18s")
    assert "the searched network alone" in out.err and "why reference: not trained in this run" in out.err
    assert "--reference-only" in out.out and "searched minus reference" not in out.out
    assert rec["reference"] is None and rec["plan"]["with_reference"] is False
    assert rec["final"] == {"with_reference": False, "why": "the plan gave the searched network the whole final share"}
    assert rec["searched"]["test_accuracy"] is not None and rec["seconds"]["total"] <= 18 * 1.05
    with Store(tmp_path / "a.db", readonly=True) as st:
        models = st.results(st.experiment().id, "retrain")[-1]["models"]
    assert [m["name"] for m in models] == ["searched"]


def test_where_the_search_keeps_the_reference_itself_it_trains_once_alone(tmp_path, capsys, monkeypatch, short_rungs,
                                                                          shared_final):
    """A search whose best is its warm start, the reference, would train one architecture twice in a shared final
    and report noise as a difference: it trains once, alone, for the whole final share, and says why."""
    import nasforge.autoplan as autoplan

    real = autoplan.search_config

    def reference_only_search(plan: Any, **kw: Any) -> dict[str, Any]:
        cfg = real(plan, **kw)  # the search trains its first network, the reference, and nothing else
        cfg["search"] = {**cfg["search"], "trials": 1, "initial": cfg["search"]["initial"][:1]}
        return cfg

    monkeypatch.setattr(autoplan, "search_config", reference_only_search)
    out, rec = auto_on_table(tmp_path, capsys, "18s")
    assert rec["plan"]["with_reference"] is True  # the plan shared the final; the search's outcome changed that
    assert "the search's best is the reference itself (trial 0)" in out.err
    assert rec["final"]["with_reference"] is False and "kept the reference itself" in rec["final"]["why"]
    assert rec["reference"] is None and "--reference-only (the search kept the reference itself" in out.out
    assert rec["searched"]["architecture"] == "mlp 256-256 batchnorm relu dropout0.1 wd0.0001"
    assert rec["seconds"]["total"] <= 18 * 1.05
    with Store(tmp_path / "a.db", readonly=True) as st:
        assert [m["name"] for m in st.results(st.experiment().id, "retrain")[-1]["models"]] == ["searched"]


def test_where_no_ranking_trial_fits_the_reference_trains_for_the_whole_budget(tmp_path, capsys, monkeypatch):
    """A search of trials too short to rank networks picks at random and lost to the reference's own arm;
    where not even SEARCH_TRIALS_MIN trials of MIN_TRIAL_STEPS fit, auto trains the reference instead, says
    why and what budget a search needs, and the record has the reference and no searched network."""
    import nasforge.autoplan as autoplan

    monkeypatch.setattr(autoplan, "MIN_TRIAL_STEPS", 10**6)  # no budget holds a ranking trial: a slow machine's path
    out, rec = auto_on_table(tmp_path, capsys, "20s")
    assert "reference only: mlp" in out.err and "why search: none: a trial long enough to rank" in out.err
    assert re.search(r"no search: .*search needs about --time-budget \d+", out.out)
    assert rec["searched"] is None and rec["reference"]["name"] == "mlp" and rec["reference"]["test_accuracy"] > 0.5
    assert rec["trials"] == {"complete": 0, "pruned": 0, "failed": 0} and rec["plan"]["search_seconds"] == 0
    assert rec["final"]["why"] == "no search fitted: the reference trained for the whole budget"
    # the scikit-learn references fitted before the plan are scored beside it (they were fitted, then dropped)
    assert set(rec["others"]) == {"logistic_regression", "gradient_boosting"}
    assert "logistic_regression" in out.out
    assert rec["seconds"]["total"] <= 20 * 1.05
    # benchmarks/auto_small.py reads such a record as the reference standing in for the searched network
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from auto_small import run

    row = run("t", str(tmp_path / "t"), "20s", tmp_path, record=tmp_path / "r.json")
    assert row["searched"]["no_search"].startswith("none:") and row["beats_reference"] is False
    assert row["searched"]["test_accuracy"] == row["reference"]["test_accuracy"]
    assert "no search" in row["reference"]["arm"]


def test_print_config_reproduces_the_plan_with_search(tmp_path, capsys):
    data = table(tmp_path / "t")
    assert main(["auto", str(data), "--time-budget", "2m", "--db", str(tmp_path / "a.db"), "--print-config"]) == 0
    cfg = from_dict(yaml.safe_load(capsys.readouterr().out))
    assert cfg.search.scheduler is not None and cfg.search.scheduler["name"] == "asha"
    assert cfg.space["kind"] == "mlp" and cfg.search.initial and cfg.search.folds == 5
    assert not (tmp_path / "a.db").exists()  # planned, nothing stored


def test_metric_ranks_the_search_and_imbalanced_classes_get_a_hint(tmp_path, capsys):
    data = table(tmp_path / "t", cut=1.0)  # class 1 about one example in five
    assert main(["auto", str(data), "--time-budget", "2m", "--db", str(tmp_path / "a.db"), "--print-config"]) == 0
    out = capsys.readouterr()
    assert "metric" not in yaml.safe_load(out.out)["search"]  # the default stays out of the YAML
    assert re.search(r"why metric: accuracy, the default, though the largest class has \d\.\dx the training "
                     r"examples of the smallest .*--metric balanced_accuracy ranks by the mean recall", out.err)
    assert main(["auto", str(data), "--time-budget", "2m", "--db", str(tmp_path / "a.db"), "--print-config",
                 "--metric", "balanced_accuracy"]) == 0
    out = capsys.readouterr()
    cfg = from_dict(yaml.safe_load(out.out))
    assert cfg.search.metric == "balanced_accuracy" and cfg.search.stopping is None
    assert cfg.train.class_weight and cfg.retrain.recipe.class_weight  # the loss counts every class alike too
    assert "2 classes, ranked by balanced accuracy" in out.err
    assert "why metric: balanced accuracy (the mean recall over classes), as --metric asked; the largest" in out.err
    assert "and scikit-learn's references with class_weight=balanced" in out.err  # a table: they are fitted
    # a balanced table and the default: nothing to say
    assert main(["auto", str(table(tmp_path / "b")), "--time-budget", "2m", "--db", str(tmp_path / "a.db"),
                 "--print-config"]) == 0
    assert "why metric" not in capsys.readouterr().err
    # a regression is ranked by RMSE: --metric refused in one line, before anything is timed
    assert main(["auto", "diabetes", "--time-budget", "2m", "--db", str(tmp_path / "a.db"),
                 "--metric", "f1"]) == 2
    err = capsys.readouterr().err
    assert "--metric f1 ranks classifiers, and diabetes is a regression" in err and "Traceback" not in err
    with pytest.raises(NasforgeError, match="--metric must be accuracy, balanced_accuracy, f1, got 'recall'"):
        run_auto(str(data), time_budget="2m", db=tmp_path / "a.db", metric="recall", print_config=True)


def test_the_comparison_reads_the_metric_first():
    s = {"test_accuracy": 0.90, "test_balanced_accuracy": 0.85, "test_f1": 0.80}
    r = {"test_accuracy": 0.92, "test_balanced_accuracy": 0.75, "test_f1": 0.70}
    assert metric_difference(s, r, "accuracy") == "-2.00 points of test accuracy"
    assert metric_difference(s, r, "balanced_accuracy") == (
        "+10.00 points of test balanced accuracy (the metric the search ranked by); -2.00 of test accuracy")
    assert metric_difference(s, r, "f1").startswith("+10.00 points of test macro F1")
    old = {"test_accuracy": 0.92, "test_balanced_accuracy": None}  # a record from before balanced accuracy
    assert metric_difference(s, old, "balanced_accuracy").startswith("test balanced accuracy not recorded (")
    out = io.StringIO()
    model = {"name": "searched", "test": {"accuracy": 0.9, "f1": 0.8, "balanced_accuracy": 0.85}, "params": 10,
             "flops": 20, "latency_ms": None, "train_seconds": 1.0, "description": "mlp"}
    print_final([model], out, {"logistic_regression": {"accuracy": 0.8, "f1": 0.7, "seconds": 0.1}},
                metric="balanced_accuracy")
    lines = out.getvalue().splitlines()
    assert "test_bacc" in lines[0] and "85.00%" in lines[2] and " - " in lines[3]  # not recorded: a dash
    out = io.StringIO()
    print_final([model], out)
    assert "test_bacc" not in out.getvalue()
    # a trial's progress line names what its score is: the metric ranked by, else the figure it equals
    m = {"accuracy": 0.9, "balanced_accuracy": 0.8, "f1": 0.7}
    assert score_label(0.8, m, "balanced_accuracy") == "bacc" and score_label(0.8, m) == "bacc"
    assert score_label(0.9, m, "balanced_accuracy") == "acc" and score_label(0.7, m) == "f1"
    assert score_label(0.5, m) == "acc" and score_label(0.5, m, "f1") == "f1"  # no figure equals it: the ranking


def test_interrupted_auto_resumes_its_stored_plan(tmp_path, short_rungs, monkeypatch):
    """Ctrl-C after two trials, then --resume: the stored plan goes on. Its search runs two trials at once in a
    process pool (forced: a search this short plans none), so the pool's path is run end to end, interrupted too."""
    import nasforge.autoplan as autoplan

    monkeypatch.setattr(autoplan, "POOL_SEARCH_MIN", 0.0)
    monkeypatch.setattr(autoplan, "POOL_GAIN_MIN", 0.0)
    data = table(tmp_path / "t")
    db = tmp_path / "a.db"
    seen = []

    def stop_after_two(p):
        if p.event == "trial":
            seen.append(p.trial.number)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_auto(str(data), time_budget="18s", db=db, progress=lambda describe: stop_after_two)
    with Store(db, readonly=True) as st:
        exp = st.experiment()
        plan = st.results(exp.id, "auto_plan")[-1]["plan"]
        assert len([t for t in st.trials(exp.id) if t.ok]) >= 2
        pool = torch.get_num_threads() >= 2  # a 1-thread machine has no layout to try (CI has 2 cores)
        assert (plan["workers"], plan["threads_per_worker"]) == ((2, 1) if pool else (1, 0))
        assert exp.config.get("executor", {}).get("kind") == ("pool" if pool else None)
    with pytest.raises(NasforgeError, match="ranks by accuracy; --resume continues its plan, so leave out --metric"):
        run_auto(str(data), time_budget="18s", db=db, resume=True, metric="f1")
    rec = run_auto(str(data), time_budget="18s", db=db, resume=True)
    assert rec["plan"] == plan  # the stored plan, not a new one
    assert rec["searched"]["test_accuracy"] is not None and rec["trials"]["complete"] >= 2
    with pytest.raises(NasforgeError, match="already exists"):
        run_auto(str(data), time_budget="18s", db=db)


def test_reference_only_trains_the_reference_for_the_budget(tmp_path, capsys):
    data = table(tmp_path / "t")
    assert main(["auto", str(data), "--time-budget", "20s", "--reference-only", "--db", str(tmp_path / "a.db"),
                 "--json", str(tmp_path / "r.json"), "--metric", "balanced_accuracy"]) == 0
    said = capsys.readouterr().out
    assert "test_bacc" in said  # the metric asked for: a column of the final table
    assert re.search(rf"network: {re.escape(str(tmp_path / 'a-models'))}/[^/]+/baseline\.pt; use it: nasforge "
                     rf"predict {re.escape(str(tmp_path / 'a.db'))} NEW_EXAMPLES", said)
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["searched"] is None and rec["reference"]["name"] == "mlp"
    assert rec["metric"] == "balanced_accuracy" and 0 < rec["reference"]["test_balanced_accuracy"] <= 1
    assert rec["trials"] == {"complete": 0, "pruned": 0, "failed": 0}
    assert rec["seconds"]["total"] <= 20 * 1.05
    assert rec["final"]["why"] == "--reference-only: the reference trained for the whole budget"
    # the reference is what this run delivers: kept, so it exports, reloads and predicts (it once kept no weights,
    # and export, compress and predict failed with an internal error)
    db = tmp_path / "a.db"
    p = api.predict(db, data / "test.csv")
    assert p.trial is None and p.reference == "mlp" and p.metrics is not None
    assert p.metrics["accuracy"] == pytest.approx(rec["reference"]["test_accuracy"])
    x = load_dataset("csv", data).open_test()[0][:5]
    (genotype, _) = api.export(db, format="json")
    (source, _) = api.export(db, format="python")
    r = api.load_retrained(db)
    with torch.no_grad():
        want = r.model.eval()(x)
        assert torch.allclose(model_from_genotype(genotype)(x), want, atol=1e-5)
        assert torch.allclose(load_python(source)(x), want, atol=1e-5)
    rows = api.compress(db, quantize="int8", windows=1, repeats=2)["rows"]
    assert [Path(row["file"]).name for row in rows if row.get("file")] == ["baseline-int8.pt"]


@pytest.mark.parametrize("value, want", [("100000", 100_000), ("100k", 100_000), ("1e5", 100_000), ("1.5M", 1_500_000),
                                         (30000, 30_000), (None, None)])
def test_max_params_reads_numbers_as_people_write_them(value, want):
    assert check_max_params(value) == want


@pytest.mark.parametrize("argv, needle", [
    (["--max-params", "lots"], "--max-params must be a whole number of parameters such as 100000 or 100k, got 'lots'"),
    (["--max-params", "0.5"], "--max-params must be a whole number of parameters such as 100000 or 100k, got '0.5'"),
    (["--max-params", "1000"], "a size limit of 1,000 parameters is below the narrowest resnet20 for these data "
                               "(17,462 parameters at width 4): raise the limit"),
    (["--max-params", "30k", "--resume"], "--resume continues the stored plan, its size limit included; leave out "
                                          "--max-params"),
])
def test_bad_size_limits_are_one_line(tmp_path, capsys, argv, needle):
    assert main(["auto", "digits", "--time-budget", "1m", "--db", str(tmp_path / "a.db"), *argv]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and not (tmp_path / "a.db").exists()


def test_a_size_limit_narrows_the_reference_and_bounds_the_search(tmp_path, capsys):
    """``--max-params``: the plan's reference is ResNet-20 narrowed to fit, the search starts from it and rejects
    candidates over the limit; the YAML reproduces both with `nasforge search`/`retrain`."""
    from nasforge.space import make_space

    assert main(["auto", "digits", "--time-budget", "3m", "--max-params", "30k", "--db", str(tmp_path / "a.db"),
                 "--print-config"]) == 0
    out, err = capsys.readouterr()
    cfg = from_dict(yaml.safe_load(out))
    assert cfg.retrain.baseline == "resnet20-w4" and cfg.space["max_params"] == 30_000
    assert "why size: at most 30,000 parameters (--max-params): the reference narrowed to resnet20-w4 (17," in err
    space = make_space(cfg.space, (1, 8, 8))
    assert cfg.search.initial and space.check(cfg.search.initial[0], (1, 8, 8)) is None  # the narrowed warm start
    assert space.describe(cfg.search.initial[0]).startswith("stem4 > 3x basic4 k3 > 3x basic8 k3 /2")
    wide = {**cfg.search.initial[0], "stem": 32, "s0.width": 32, "s1.width": 64, "s2.width": 128}
    assert "exceed the limit of 30,000" in str(space.check(wide, (1, 8, 8)))


def test_reference_only_under_a_size_limit_trains_the_narrowed_reference(tmp_path):
    assert main(["auto", "digits", "--time-budget", "20s", "--max-params", "30000", "--reference-only",
                 "--db", str(tmp_path / "a.db"), "--json", str(tmp_path / "r.json")]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["reference"]["name"] == "resnet20-w4" and rec["reference"]["params"] <= 30_000
    assert rec["plan"]["max_params"] == 30_000 and rec["seconds"]["total"] <= 20 * 1.05


def test_a_narrowed_reference_is_the_warm_start_of_its_kind():
    """Under a size limit each kind's search starts from its reference as narrowed, a point of the space; the
    covering network (sequences) is left out where it breaks the limit."""
    from nasforge.space import make_space

    opts, initial = warm_start("flat", (784,), width=104)
    space = make_space(opts, (784,))
    assert [s["depth"] for s in initial] == [2, 0] and initial[0]["l0.width"] == initial[0]["l1.width"] == 104
    assert space.check(initial[0], (784,)) is None and 48 in opts["widths"]
    limits = {"max_params": 20_000}
    opts, initial = warm_start("sequence", (1, 128), limits, width=4)
    space = make_space({**opts, **limits}, (1, 128))
    assert len(initial) == 1 and space.check(initial[0], (1, 128)) is None
    assert space.describe(initial[0]).startswith("stem4 > 3x basic4 k3 > 3x basic8 k3 /2 > 3x basic16 k3 /2")
    assert set(opts["widths"]) >= {4, 8, 16} and all(w % 8 == 0 for w in opts["widths"] if w not in (4,))
