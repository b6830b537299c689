"""Schedulers and early stopping over the real loop and store: rungs, promotions, continuation, resume."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from nasforge.config import from_dict
from nasforge.errors import ConfigError
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.loop import best_trial, run_search
from nasforge.schedule import ASHA, Hyperband, SuccessiveHalving, make_scheduler, make_stopping
from nasforge.schedule.schedulers import make_ladder
from nasforge.space.chain import ChainSpace, chain_sample
from nasforge.store import SCHEMA_VERSION, Store
from nasforge.strategy import make_strategy
from nasforge.strategy.warm import WarmStart
from nasforge.testing import TOY_SHAPE, FunctionEvaluator, toy_objective, toy_space
from nasforge.types import Budget, TrialState

FULL = Budget(epochs=9)


def search(db, n, scheduler=None, *, stopping=None, seed=0, resume=False, evaluator=None, strategy="random"):
    space = toy_space()
    ev = evaluator or FunctionEvaluator(lambda s: toy_objective(space, s), curves=True)
    with Store(db) as st:
        exp = st.experiment("toy") if resume else st.create_experiment("toy", {}, "fp")
        strat = make_strategy(strategy, space, seed=seed)
        out = run_search(store=st, experiment=exp, space=space, strategy=strat, evaluator=ev, input_shape=TOY_SHAPE,
                         budget=FULL, max_trials=n, scheduler=scheduler, stopping=stopping,
                         checkpoint_dir=db.parent / "ckpt")
    return out, ev


def test_ladders_grow_by_eta_and_end_at_the_full_budget():
    assert [b.epochs for b in make_ladder(FULL, 3, min_epochs=1)] == [1, 3, 9]
    assert [b.epochs for b in make_ladder(Budget(epochs=6, fraction=0.2), 3, min_epochs=2)] == [2, 6]
    assert [b.fraction for b in make_ladder(Budget(epochs=2), 2, min_fraction=0.25)] == [0.25, 0.5, 1.0]
    with pytest.raises(ConfigError, match="min_epochs"):
        make_ladder(FULL, 3, min_epochs=9)
    with pytest.raises(ConfigError, match="exactly one"):
        make_ladder(FULL, 3)


def test_successive_halving_promotes_exactly_the_best_third_of_each_rung(tmp_path):
    out, ev = search(tmp_path / "a.db", 9, SuccessiveHalving(FULL, eta=3, min_epochs=1))
    trials = out.trials
    assert len(trials) == 9 and all(t.state is TrialState.COMPLETE for t in trials)
    by_r0 = sorted(trials, key=lambda t: -t.rungs[0])
    assert {t.number for t in trials if len(t.rungs) >= 2} == {t.number for t in by_r0[:3]}
    top = [t for t in trials if len(t.rungs) == 3]
    assert len(top) == 1 and top[0].budget == FULL
    assert best_trial(trials) == top[0]
    # promotions continued from checkpoints: 9 x 1 epoch, 3 x 2 more, 1 x 6 more
    assert ev.epochs_trained == 9 + 3 * 2 + 6
    assert not list((tmp_path / "ckpt").glob(f"trial{top[0].number}.*"))  # the top rung keeps no checkpoint


def test_asha_promotes_only_from_the_top_share_and_never_waits(tmp_path):
    out, _ = search(tmp_path / "a.db", 30, ASHA(FULL, eta=3, min_epochs=1))
    trials = out.trials
    promoted = [t for t in trials if len(t.rungs) >= 2]
    # asynchronous: each promotion is judged against the trials finished so far, so somewhat more than
    # a third may move up, but far from all
    assert 30 // 3 <= len(promoted) <= 30 // 2
    assert 0 < sum(len(t.rungs) == 3 for t in trials) <= len(promoted) // 2
    # a promotion happens when the trial is in the top third of those finished so far, so the promoted
    # ones sit in the upper part of the final rung-0 ranking
    ranked = sorted(trials, key=lambda t: -t.rungs[0])
    assert all(ranked.index(t) < len(trials) // 2 for t in promoted)
    assert best_trial(trials).budget == FULL


def test_hyperband_brackets_start_on_every_rung():
    hb = Hyperband(FULL, eta=3, min_epochs=1)
    assert hb.brackets() == [(0, 9), (1, 5), (2, 3)]
    budgets = [hb.new_budget([type("T", (), {"number": i})() for i in range(n)]) for n in (0, 8, 9, 13, 14, 16, 17)]
    assert [b.epochs for b in budgets] == [1, 1, 3, 3, 9, 9, 1]


def test_hyperband_runs_whole_brackets(tmp_path):
    out, _ = search(tmp_path / "a.db", 17, Hyperband(FULL, eta=3, min_epochs=1))
    first = [t for t in out.trials if t.number < 9]
    assert sum(len(t.rungs) >= 2 for t in first) == 3 and sum(len(t.rungs) == 3 for t in first) == 1
    assert {t.budget.epochs for t in out.trials if 14 <= t.number < 17} == {9}


@pytest.mark.parametrize("name", ["asha", "successive_halving", "hyperband"])
def test_resume_after_an_interrupted_promotion_matches_an_uninterrupted_run(tmp_path, name):
    sched = make_scheduler(name, FULL, eta=3, min_epochs=1)
    straight, _ = search(tmp_path / "a.db", 20, sched)
    space = toy_space()

    class KilledOnPromotion(FunctionEvaluator):
        def evaluate(self, sample, budget, report=None, checkpoint=None):
            if budget.epochs > 1 and not self.killed:
                self.killed = True
                raise KeyboardInterrupt
            return super().evaluate(sample, budget, report, checkpoint)

    killer = KilledOnPromotion(lambda s: toy_objective(space, s), curves=True)
    killer.killed = False
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path / "b.db", 20, sched, evaluator=killer)
    resumed, _ = search(tmp_path / "b.db", 20, sched, resume=True)
    key = [(t.key, t.rungs, t.budget, t.state) for t in straight.trials]
    assert [(t.key, t.rungs, t.budget, t.state) for t in resumed.trials] == key


def test_median_rule_prunes_the_weak_and_keeps_the_best(tmp_path):
    full = Budget(epochs=4)
    space = toy_space()
    ev = FunctionEvaluator(lambda s: toy_objective(space, s), curves=True)
    with Store(tmp_path / "a.db") as st:
        exp = st.create_experiment("toy", {}, "fp")
        out = run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=1),
                         evaluator=ev, input_shape=TOY_SHAPE, budget=full, max_trials=25,
                         stopping=make_stopping("median", warmup_epochs=1, min_trials=3))
    pruned = [t for t in out.trials if t.state is TrialState.PRUNED]
    done = [t for t in out.trials if t.state is TrialState.COMPLETE]
    assert pruned and done
    assert all("median rule" in t.reason and 1 < len(t.curve) < 4 and t.score is None for t in pruned)
    assert max(toy_objective(space, t.sample) for t in done) > max(toy_objective(space, t.sample) for t in pruned)
    assert ev.epochs_trained < 25 * 4


def test_curve_rule_stops_what_cannot_reach_the_top_k(tmp_path):
    rule = make_stopping("curve", top_k=2, min_trials=2, warmup_epochs=1)
    hist = [t for t in search(tmp_path / "a.db", 4)[0].trials]  # four full-budget (9-epoch) trials
    bar = sorted(t.score for t in hist)[-2]
    slow = [{"epoch": 1.0, "val_accuracy": 0.10}, {"epoch": 2.0, "val_accuracy": 0.11}]
    fast = [{"epoch": 1.0, "val_accuracy": 0.10}, {"epoch": 2.0, "val_accuracy": 0.30}]
    assert 0.11 + 0.01 * 7 < bar < 0.30 + 0.2 * 7
    assert "curve rule" in rule.check(99, FULL, slow, hist)
    assert rule.check(99, FULL, fast, hist) is None


def test_bad_scheduler_settings_fail_in_the_config():
    base = {"search": {"budget": {"epochs": 6}}}
    with pytest.raises(ConfigError, match="unknown scheduler 'ashaa'"):
        from_dict({**base, "search": {**base["search"], "scheduler": {"name": "ashaa", "min_epochs": 1}}})
    with pytest.raises(ConfigError, match="min_epochs"):
        from_dict({**base, "search": {**base["search"], "scheduler": {"name": "asha", "min_epochs": 6}}})
    with pytest.raises(ConfigError, match="does not take"):
        from_dict({**base, "search": {**base["search"], "scheduler": {"name": "asha", "min_epochs": 1, "eat": 3}}})
    with pytest.raises(ConfigError, match="unknown stopping rule"):
        from_dict({**base, "search": {**base["search"], "stopping": "mean"}})
    plain = from_dict(base)
    asha = from_dict({**base, "search": {**base["search"], "scheduler": {"name": "asha", "min_epochs": 2}}})
    assert plain.fingerprint() != asha.fingerprint()
    assert [b.epochs for b in asha.search.make_scheduler().ladder] == [2, 6]


def test_torch_promotion_continues_from_the_checkpoint(tmp_path, digits):
    space = ChainSpace(max_blocks=3, widths=(8,), kernels=(3,))
    s = chain_sample(space, [{"type": "conv", "width": 8, "kernel": 3, "stride": 1, "padding": "same",
                              "act": "relu", "bn": True}], head="gap")
    ev = TorchEvaluator(digits, space, seed=0, measure_latency=False)
    ck = tmp_path / "t.pt"
    one = ev.evaluate(s, Budget(epochs=1), checkpoint=ck)
    three = ev.evaluate(s, Budget(epochs=3), checkpoint=ck)
    assert [r["epoch"] for r in three.curve] == [1, 2, 3]
    assert three.curve[0] == one.curve[0]
    assert three.train_seconds < 3 * one.train_seconds  # two epochs trained, not three
    again = ev.evaluate(s, Budget(epochs=3), checkpoint=ck)  # killed after saving: nothing to train
    assert again.curve == three.curve and again.train_seconds == 0
    stranger = dict(s, head="flatten")  # another network left under the same path: never continued
    fresh = ev.evaluate(stranger, Budget(epochs=3), checkpoint=ck)
    assert fresh.train_seconds > 0 and fresh.curve != three.curve
    other = ev.evaluate(s, Budget(epochs=1, fraction=0.5), checkpoint=ck)  # other data: a fresh start
    assert [r["epoch"] for r in other.curve] == [1]


def test_with_one_lr_cycle_promotions_train_exactly_what_a_full_budget_run_does(tmp_path, digits):
    space = ChainSpace(max_blocks=3, widths=(8,), kernels=(3,))
    s = chain_sample(space, [{"type": "conv", "width": 8, "kernel": 3, "stride": 1, "padding": "same",
                              "act": "relu", "bn": True}, {"type": "dropout", "rate": 0.25}], head="gap")
    recipe = from_dict({"train": {"optimizer": "sgd", "lr": 0.05, "schedule": "onecycle", "augment": True}}).train
    along = TorchEvaluator(digits, space, seed=0, measure_latency=False, recipe=recipe, schedule_epochs=3)
    ck = tmp_path / "t.pt"
    along.evaluate(s, Budget(epochs=1), checkpoint=ck)
    two = along.evaluate(s, Budget(epochs=2), checkpoint=ck)
    three = along.evaluate(s, Budget(epochs=3), checkpoint=ck)
    fixed = TorchEvaluator(digits, space, seed=0, measure_latency=False, recipe=recipe).evaluate(s, Budget(epochs=3))
    assert three.curve == fixed.curve  # augmentation, shuffles and dropout draws all continued exactly
    # stopping part-way along the cycle and going on is the same as getting there in one go
    assert along.evaluate(s, Budget(epochs=2)).curve == two.curve
    restarted = TorchEvaluator(digits, space, seed=0, measure_latency=False, recipe=recipe)  # lr_cycle: rung
    ck2 = tmp_path / "r.pt"
    restarted.evaluate(s, Budget(epochs=1), checkpoint=ck2)
    assert restarted.evaluate(s, Budget(epochs=3), checkpoint=ck2).curve != fixed.curve
    # a checkpoint written under the other cycle is not continued: that trial starts again
    assert along.evaluate(s, Budget(epochs=3), checkpoint=ck2).curve == fixed.curve


def test_every_rung_ends_on_the_whole_validation_split_whatever_interim_epochs_use(tmp_path, digits):
    """ASHA promotes on rung-end scores: they are on the whole split even when the epochs between are not."""
    space = ChainSpace(max_blocks=3, widths=(8,), kernels=(3,))
    s = chain_sample(space, [{"type": "conv", "width": 8, "kernel": 3, "stride": 1, "padding": "same",
                              "act": "relu", "bn": True}], head="gap")
    n_val = len(digits.y_val)
    along = TorchEvaluator(digits, space, seed=0, measure_latency=False, schedule_epochs=4, interim_validation=50)
    ck = tmp_path / "t.pt"
    one = along.evaluate(s, Budget(epochs=1), checkpoint=ck)
    four = along.evaluate(s, Budget(epochs=4), checkpoint=ck)
    assert [r["val_examples"] for r in four.curve] == [n_val, 50, 50, n_val]  # epoch 1 ended rung 1
    assert four.curve[0] == one.curve[0]
    fixed = TorchEvaluator(digits, space, seed=0, measure_latency=False).evaluate(s, Budget(epochs=4))
    assert four.score == fixed.score and four.metrics == fixed.metrics


def test_fraction_rungs_retrain_so_a_promoted_trial_scores_what_a_full_budget_run_does(tmp_path, digits):
    """The property the Fashion-MNIST ASHA benchmark rests on: with data-fraction rungs a promotion
    trains the network afresh on the larger share, so its top-rung score is exactly a fixed run's."""
    space = ChainSpace(max_blocks=3, widths=(8, 16), kernels=(3,))
    full = Budget(epochs=2)
    sched = ASHA(full, eta=2, min_fraction=0.25)
    assert not sched.continues and [b.fraction for b in sched.ladder] == [0.25, 0.5, 1.0]
    with Store(tmp_path / "s.db") as st:
        exp = st.create_experiment("frac", {}, "fp")
        run_search(store=st, experiment=exp, space=space, strategy=make_strategy("random", space, seed=0),
                   evaluator=TorchEvaluator(digits, space, seed=0, measure_latency=False),
                   input_shape=digits.input_shape, n_out=digits.n_classes, budget=full, max_trials=4,
                   scheduler=sched, checkpoint_dir=tmp_path / "ck")
        trials = st.trials(exp.id)
    top = [t for t in trials if t.budget == full]
    assert top and all(len(t.rungs) == 3 for t in top)
    fixed = TorchEvaluator(digits, space, seed=0, measure_latency=False)
    for t in top:
        assert [r["epoch"] for r in t.curve] == [1, 2]  # trained from scratch on the full share
        assert t.rungs[-1] == t.score == fixed.evaluate(t.sample, full).score
        assert t.rungs[0] != t.rungs[-1]  # the lower rungs were scored on less data


def test_lr_cycle_full_needs_whole_epoch_rungs():
    base = {"search": {"budget": {"epochs": 6}}}
    cfg = from_dict({"search": {**base["search"], "scheduler": {"name": "asha", "min_epochs": 1, "lr_cycle": "full"}}})
    sched = cfg.search.make_scheduler()
    assert sched.schedule_epochs == 6 and "one learning-rate cycle" in sched.describe()
    assert from_dict({"search": {**base["search"], "scheduler": {"name": "asha", "min_epochs": 2}}}).search \
        .make_scheduler().schedule_epochs is None
    for bad, msg in (({"min_epochs": 1.5, "eta": 2}, "whole"), ({"min_fraction": 0.2}, "whole"),
                     ({"min_epochs": 1, "lr_cycle": "both"}, "rung or full")):
        with pytest.raises(ConfigError, match=msg):
            from_dict({"search": {**base["search"], "scheduler": {"name": "asha", "lr_cycle": "full", **bad}}}) \
                .search.make_scheduler()


def test_a_schema_1_database_is_migrated_in_place(tmp_path):
    db = tmp_path / "old.db"
    with Store(db) as st:
        exp = st.create_experiment("toy", {}, "fp")
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE trials DROP COLUMN rungs")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    out, _ = search(db, 3, resume=True)
    assert len(out.trials) == 3 and all(t.rungs for t in out.trials)
    with Store(db) as st:
        assert st.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert st.integrity_ok() and exp.id == st.experiment("toy").id


@pytest.mark.parametrize("name", ["asha", "successive_halving", "hyperband"])
def test_a_warm_start_given_the_full_budget_keeps_it_and_is_not_ranked_on_the_lowest_rung(tmp_path, name):
    # search.initial_budget: full (as nasforge auto does): the hand-designed network trains the top rung
    # first. Rungs counted from a trial's own first rung made it "rung 0", ranked it among the lowest
    # rung's scores and "promoted" it to the second rung: retrained for less, its full-budget score lost.
    space = toy_space()
    sched = make_scheduler(name, FULL, eta=3, min_epochs=1)
    warm = space.sample(np.random.default_rng(5))
    ev = FunctionEvaluator(lambda s: toy_objective(space, s), curves=True)
    with Store(tmp_path / "w.db") as st:
        exp = st.create_experiment("toy", {}, "fp")
        strat = WarmStart(make_strategy("random", space, seed=0), [warm], budget=sched.ladder[-1])
        out = run_search(store=st, experiment=exp, space=space, strategy=strat, evaluator=ev, input_shape=TOY_SHAPE,
                         budget=FULL, max_trials=30, scheduler=sched, checkpoint_dir=tmp_path / "ckpt")
    first = out.trials[0]
    assert space.key(first.sample) == space.key(warm)
    assert first.budget == FULL and len(first.rungs) == 1 and first.score == first.rungs[0]
    assert sched.reached(first) == len(sched.ladder) - 1 and sched.has(first, 2) and not sched.has(first, 0)
    promoted = [t for t in out.trials if len(t.rungs) > 1]
    assert promoted, "the ladder promoted nothing: the check above saw no promotions at all"
    for t in promoted:  # every promotion climbed from its bracket's first rung, one rung at a time
        start = sched._bracket_of(t.number)[1] if isinstance(sched, SuccessiveHalving) else 0
        assert t.budget == sched.ladder[start + len(t.rungs) - (1 if t.state is TrialState.COMPLETE else 0)]
