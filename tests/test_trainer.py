"""Trainer, metrics, cost and evaluator on real data (scikit-learn digits, a Fashion-MNIST slice)."""

from __future__ import annotations

import math

import pytest
import torch

from nasforge.evaluate.cost import count_flops, count_params, measure_cost
from nasforge.evaluate.metrics import classification_metrics
from nasforge.evaluate.torch_eval import TorchEvaluator
from nasforge.evaluate.trainer import (
    Recipe,
    TrainingFailed,
    TrainStats,
    augment_batch,
    balanced_weights,
    lr_factor,
    train,
)
from nasforge.space.chain import ChainSpace, chain_sample
from nasforge.types import Budget

SMALL = [{"type": "conv", "width": 8, "kernel": 3, "stride": 1, "padding": "same", "act": "relu", "bn": True},
         {"type": "pool", "pool": "max", "pool_size": 2}]


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score, recall_score

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (500,), generator=g)
    p = torch.where(torch.rand(500, generator=g) < 0.6, y, torch.randint(0, 5, (500,), generator=g))
    m = classification_metrics(p, y, 5)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["precision"] == pytest.approx(precision_score(y, p, average="macro"))
    assert m["recall"] == pytest.approx(recall_score(y, p, average="macro"))
    assert m["f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))
    # a class predicted but absent from the labels lowers macro recall, not balanced accuracy (as scikit-learn's)
    y2, p2 = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 2, 0, 1])
    assert classification_metrics(p2, y2, 3)["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y2, p2))


def test_flops_come_from_torch_and_params_from_the_module():
    space = ChainSpace(max_blocks=3)
    m = space.build(chain_sample(space, SMALL, head="flatten"), (1, 8, 8), 10)
    # conv 1->8 3x3 on 8x8 (2*72*64 = 9216 FLOPs) + linear 128->10 (2*1280 = 2560)
    assert count_flops(m, (1, 8, 8)) == 9216 + 2560
    assert count_params(m) == 8 * 9 + 16 + 128 * 10 + 10
    c = measure_cost(m, (1, 8, 8))
    assert c.latency_ms is not None and c.latency_ms > 0


def test_schedules_start_and_end_where_expected():
    cos = Recipe(schedule="cosine")
    assert lr_factor(0, 100, cos) == pytest.approx(1.0)
    assert lr_factor(99, 100, cos) < 0.01
    one = Recipe(schedule="onecycle")
    assert lr_factor(0, 100, one) < 0.1 and lr_factor(30, 100, one) == pytest.approx(1.0, abs=0.01)
    assert lr_factor(99, 100, one) < 0.01


def test_augmentation_keeps_shape_and_content():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    assert set(out.unique().tolist()) <= set(x.unique().tolist()) | {0.0}
    # With 32 examples, some are shifted or flipped: augmentation is not the identity.
    big = torch.randn(32, 1, 6, 6)
    assert not torch.equal(augment_batch(big, torch.Generator().manual_seed(1)), big)


def test_training_learns_digits_and_is_deterministic(digits):
    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, SMALL, head="flatten")
    ev = TorchEvaluator(digits, space, seed=0, measure_latency=False)
    a = ev.evaluate(s, Budget(epochs=3))
    b = ev.evaluate(s, Budget(epochs=3))
    assert a.score > 0.5, a.score  # chance is 0.1; 33 steps of a tiny net
    assert a.score == b.score and a.curve == b.curve
    assert len(a.curve) == 3 and {"val_accuracy", "val_f1", "val_loss", "train_loss"} <= set(a.curve[0])
    assert a.cost is not None and a.cost.params > 0


@pytest.mark.parametrize("metric", ["balanced_accuracy", "f1"])
def test_a_search_metric_is_the_score_and_a_regression_refuses_it(digits, metric):
    from nasforge.data.base import Dataset
    from nasforge.errors import ConfigError

    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, SMALL, head="flatten")
    r = TorchEvaluator(digits, space, seed=0, measure_latency=False, metric=metric).evaluate(s, Budget(epochs=1))
    assert r.score == r.metrics[metric] == r.curve[-1][f"val_{metric}"]
    assert r.score != r.metrics["accuracy"]  # one epoch: the metrics differ, so the score is not accuracy renamed
    reg = Dataset("reg", digits.x_train, digits.y_train.float(), digits.x_val, digits.y_val.float(), (),
                  task="regression")
    with pytest.raises(ConfigError, match=rf"search\.metric {metric} ranks classes, and reg is a regression"):
        TorchEvaluator(reg, space, metric=metric)
    with pytest.raises(ConfigError, match=r"search\.metric must be accuracy, balanced_accuracy, f1, got 'acc'"):
        TorchEvaluator(digits, space, metric="acc")


def test_class_weight_weights_the_loss_as_scikit_learn_balances_classes():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0] * 90 + [1] * 8 + [3] * 2)  # class 2 absent: weight 0, no loss to weigh
    w = balanced_weights(y, 4)
    present = [0, 1, 3]
    expected = compute_class_weight("balanced", classes=torch.tensor(present).numpy(), y=y.numpy())
    assert w[present].tolist() == pytest.approx(expected.tolist()) and w[2] == 0
    assert "class_weight" not in Recipe().identity()  # state stored before the field still matches
    assert Recipe(class_weight=True).identity()["class_weight"] is True
    with pytest.raises(ValueError, match="class_weight must be true or false"):
        Recipe(class_weight="balanced")  # type: ignore[arg-type]


def test_class_weight_makes_a_rare_class_predicted_more_often():
    """Two overlapping Gaussians, one class in 20: plain cross-entropy mostly predicts the common class; weighted
    per class, the same network, seed and steps predicts the rare one more often and recalls more of it."""
    g = torch.Generator().manual_seed(0)
    n = 2000
    y = (torch.arange(n) % 20 == 0).long()
    x = torch.randn(n, 2, generator=g) + y[:, None] * 1.5
    recalls, rare = [], []
    for weighted in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        train(model, x, y, epochs=5, recipe=Recipe(optimizer="adam", lr=0.05, class_weight=weighted), seed=0)
        with torch.no_grad():
            pred = model(x).argmax(1)
        recalls.append(classification_metrics(pred, y, 2)["balanced_accuracy"])
        rare.append(int((pred == 1).sum()))
    assert rare[1] > rare[0] and recalls[1] > recalls[0] + 0.05, (rare, recalls)


def test_fraction_budget_uses_a_fixed_stratified_subset(digits):
    space = ChainSpace(max_blocks=3)
    ev = TorchEvaluator(digits, space, seed=0, measure_latency=False)
    x1, y1 = ev.training_split(0.25)
    x2, _ = ev.training_split(0.25)
    assert x1 is x2 and abs(len(x1) - 0.25 * len(digits.x_train)) <= 10
    assert len(y1.unique()) == digits.n_classes


def test_evaluator_never_holds_the_test_split(digits):
    ev = TorchEvaluator(digits, ChainSpace(max_blocks=3), measure_latency=False)
    assert not ev.data.has_test and digits.has_test


def test_non_finite_loss_fails_with_a_reason(digits):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with pytest.raises(TrainingFailed, match="non-finite training loss"):
        train(model, digits.x_train, digits.y_train, epochs=1, recipe=Recipe())


def test_fractional_epochs_take_the_matching_number_of_steps(digits):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    n = len(digits.x_train)
    st = train(model, digits.x_train, digits.y_train, epochs=1.5, recipe=Recipe(batch_size=100))
    assert st.steps == math.ceil(1.5 * math.ceil(n / 100))
    assert len(st.curve) == 2


def test_a_last_batch_of_a_few_examples_is_left_out_so_batch_norm_trains(digits):
    # 129 rows at batch 128 (a fold of a small table): a batch of one would make batch norm raise in training
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                                torch.nn.ReLU(), torch.nn.Linear(16, 10))
    x, y = digits.x_train[:129], digits.y_train[:129]
    st = train(model, x, y, epochs=3, recipe=Recipe(batch_size=128))
    assert st.steps == 3  # one batch an epoch, the 129th example another each epoch
    # a last batch of 2 (a fold of 1,154 digits ended each epoch on one, and ResNet-20 stayed at chance in it):
    # left out too, as any under an eighth of the batch; one of 16 trains
    st = train(model, digits.x_train[:130], digits.y_train[:130], epochs=1, recipe=Recipe(batch_size=128))
    assert st.steps == 1
    st = train(model, digits.x_train[:144], digits.y_train[:144], epochs=1, recipe=Recipe(batch_size=128))
    assert st.steps == 2


@pytest.mark.parametrize("how", ["none", 60])
def test_interim_validation_changes_the_curve_not_the_training(digits, how):
    """Cheaper interim validation scores epochs before the last on less (or nothing), trains the same
    steps, and scores the last epoch on the whole validation split, so the trial's score is unchanged."""
    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, SMALL, head="flatten")
    full = TorchEvaluator(digits, space, seed=0, measure_latency=False).evaluate(s, Budget(epochs=3))
    cheap = TorchEvaluator(digits, space, seed=0, measure_latency=False,
                           interim_validation=how).evaluate(s, Budget(epochs=3))
    n_val = len(digits.y_val)
    assert cheap.score == full.score and cheap.metrics == full.metrics
    assert [r["train_loss"] for r in cheap.curve] == [r["train_loss"] for r in full.curve]
    assert [r["val_examples"] for r in full.curve] == [n_val] * 3
    assert cheap.curve[-1]["val_examples"] == n_val
    if how == "none":
        assert all("val_accuracy" not in r for r in cheap.curve[:-1])
    else:
        assert [r["val_examples"] for r in cheap.curve[:-1]] == [60, 60]
        assert cheap.curve[0]["val_accuracy"] != full.curve[0]["val_accuracy"]  # a different, smaller split


def test_interim_subset_is_fixed_and_stratified(digits):
    from nasforge.evaluate.torch_eval import interim_split

    a, b = interim_split(digits, 100, 0), interim_split(digits, 100, 0)
    assert isinstance(a, tuple) and isinstance(b, tuple)
    assert torch.equal(a[1], b[1]) and abs(len(a[1]) - 100) <= 10
    assert len(a[1].unique()) == digits.n_classes
    assert interim_split(digits, 10**6, 0) == "full" and interim_split(digits, "none", 0) is None
    with pytest.raises(ValueError, match="interim_validation"):
        interim_split(digits, 0, 0)


@pytest.mark.parametrize(("reference_step", "epochs"), [(1e3, 4), (1e-9, 1)])
def test_equal_time_gives_a_network_the_epochs_of_the_reference_time(digits, tmp_path, reference_step, epochs):
    """A reference 1000 s a step: any network is >4x faster, so it trains 4x the budget's epochs; a reference
    infinitely fast: 1/4x (one partial epoch). The factor survives a promotion, through the checkpoint."""
    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, SMALL, head="flatten")
    ev = TorchEvaluator(digits, space, seed=0, measure_latency=False, equal_time=reference_step)
    ck = tmp_path / "t.pt"
    first = ev.evaluate(s, Budget(epochs=1), checkpoint=ck)
    assert len(first.curve) == epochs
    assert torch.load(ck, weights_only=True)["time_factor"] == (4.0 if epochs == 4 else 0.25)
    later = TorchEvaluator(digits, space, seed=0, measure_latency=False, equal_time=1.0)  # another process
    promoted = later.evaluate(s, Budget(epochs=2), checkpoint=ck)  # keeps the checkpoint's factor, not re-timed
    assert len(promoted.curve) == 2 * epochs
    plain = TorchEvaluator(digits, space, seed=0, measure_latency=False).evaluate(s, Budget(epochs=1))
    assert len(plain.curve) == 1 and ev.time_factor(s, space.key(s)) in (4.0, 0.25)


def test_equal_time_must_be_a_positive_time(digits):
    with pytest.raises(ValueError, match="equal_time must be a positive number"):
        TorchEvaluator(digits, ChainSpace(max_blocks=3), equal_time=0.0)


def test_equal_time_times_the_reference_in_the_evaluator_process(digits):
    """Given the reference as a builder, the evaluator times it where it times candidates: the same network
    as the reference gets about its budget (in quarter-octave steps; timings of a tiny network are noisy)."""
    import functools

    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, SMALL, head="flatten")
    build = functools.partial(space.build, s, digits.input_shape, digits.n_classes)
    ev = TorchEvaluator(digits, space, seed=0, measure_latency=False, equal_time=build)
    factor = ev.time_factor(s, space.key(s))
    assert isinstance(ev.equal_time, float) and ev.equal_time > 0  # measured once, then kept
    quarters = math.log2(factor) * 4
    assert 2 ** -0.5 <= factor <= 2 ** 0.5 and abs(quarters - round(quarters)) < 1e-9  # 2**(1/4) steps


def test_a_deadline_shortens_the_schedule_to_end_in_time(digits):
    import time

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    lrs: list[float] = []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    t0 = time.time()
    st = train(model, digits.x_train, digits.y_train, epochs=10_000, recipe=Recipe(batch_size=32), optimizer=opt,
               deadline=t0 + 1.0, on_epoch=lambda e, row: lrs.append(opt.param_groups[0]["lr"]))
    wall = time.time() - t0
    spe = math.ceil(len(digits.x_train) / 32)
    assert 2 * spe <= st.steps < 10_000 * spe  # cut short, after at least the epoch that measures the pace
    assert wall < 1.0 + 2 * wall / len(st.curve)  # ends within about an epoch of the deadline
    assert lrs[-1] < 0.1 * 0.1  # and the shortened schedule still annealed (near) to its end


def test_fill_time_lengthens_a_schedule_that_would_end_early_and_only_then(digits):
    """A training sized from a timing that read slow fills its time (nasforge auto's final); without
    ``fill_time`` a deadline only ever shortens, so `retrain --epochs N` trains N epochs."""
    import time

    def run(fill: bool) -> tuple[TrainStats, float, list[float]]:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                    torch.nn.Linear(64, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        lrs: list[float] = []
        t0 = time.time()
        st = train(model, digits.x_train, digits.y_train, epochs=8, recipe=Recipe(batch_size=32), optimizer=opt,
                   deadline=t0 + 1.5, fill_time=fill, on_epoch=lambda e, row: lrs.append(opt.param_groups[0]["lr"]))
        return st, time.time() - t0, lrs

    spe = math.ceil(len(digits.x_train) / 32)
    plain, _, _ = run(False)
    assert plain.steps == 8 * spe and plain.curve[-1]["schedule_epochs"] == 8
    filled, wall, lrs = run(True)
    assert filled.steps > 16 * spe  # 8 epochs take a small share of the 1.5 s
    assert filled.curve[-1]["schedule_epochs"] == filled.steps / spe  # it followed the lengthened schedule
    assert wall < 1.5 + 2 * wall / len(filled.curve)  # and still ended about on time
    assert lrs[-1] < 0.1 * 0.1  # annealed to its end


def test_fill_time_lengthens_no_further_than_its_cap(digits):
    """Two networks sharing auto's final fill their halves only up to the epochs converging takes: the cap
    holds though the time would allow many more epochs, and the schedule still anneals at the cap."""
    import time

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lrs: list[float] = []
    st = train(model, digits.x_train, digits.y_train, epochs=8, recipe=Recipe(batch_size=32), optimizer=opt,
               deadline=time.time() + 30.0, fill_time=True, fill_cap=12,
               on_epoch=lambda e, row: lrs.append(opt.param_groups[0]["lr"]))
    spe = math.ceil(len(digits.x_train) / 32)
    assert st.steps == 12 * spe  # lengthened from 8 epochs, to the cap and no further (30 s hold hundreds)
    assert st.curve[-1]["schedule_epochs"] == 12
    assert lrs[-1] < 0.1 * 0.1  # annealed to the capped end
