"""DARTS on real (digits) data: alphas learn, the derived cell is a valid sample, the search stores one trial."""

from __future__ import annotations

import pytest
import torch

from nasforge import api
from nasforge.cli import main
from nasforge.errors import ConfigError
from nasforge.oneshot.darts import DartsOptions, Supernet, darts_options, default_skip_limit, discretise, run_darts
from nasforge.space.cell import CellSpace, edge_names
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.types import TrialState

SPACE = {"kind": "cell", "channels": 4, "n_stages": 2, "cells_per_stage": 1}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is faster


@pytest.fixture(scope="module")
def space() -> CellSpace:
    return CellSpace(channels=4, n_stages=2)


def config(tmp_path, **options) -> dict:
    return {"name": "darts", "data": {"source": "digits"}, "space": SPACE,
            "strategy": {"name": "darts", "options": {"epochs": 2, **options}},
            "search": {"budget": {"epochs": 1}, "db": str(tmp_path / "s.db"), "measure_latency": False},
            "retrain": {"epochs": 1}}


def test_alphas_learn_and_a_seed_repeats_the_run(digits, space):
    opts = DartsOptions(epochs=2, remedy="none", fraction=0.5, a_lr=3e-3)
    a = run_darts(space, digits, options=opts, seed=0)
    b = run_darts(space, digits, options=opts, seed=0)
    c = run_darts(space, digits, options=opts, seed=1)
    assert a.steps == a.history[-1]["steps"] > 0 and a.stopped == "epochs"
    first, last = torch.tensor(a.history[0]["alphas"]), torch.tensor(a.history[-1]["alphas"])
    assert (last - first).abs().max() > 1e-3  # the softmax weights moved between epochs
    assert torch.tensor(a.alphas).abs().max() > 0.02  # from their 1e-3 initial scale
    assert a.alphas == b.alphas and a.history[-1]["val_loss"] == b.history[-1]["val_loss"]
    assert a.alphas != c.alphas
    assert [r["epoch"] for r in a.history] == [1, 2] and 0 <= a.history[-1]["val_accuracy"] <= 1


def test_derived_cell_is_a_valid_sample_and_an_nb201_string(digits, space):
    run = run_darts(space, digits, options=DartsOptions(epochs=1), seed=0)
    assert space.check(run.sample, digits.input_shape, digits.n_classes) is None
    assert space.from_arch_str(run.arch) == run.sample and space.to_arch_str(run.sample) == run.arch
    assert run.history[-1]["skips"] == list(run.sample.values()).count("skip_connect")
    narrow = run_darts(space, digits, options=DartsOptions(epochs=1, channels=2, fraction=0.3), seed=0)
    assert space.check(narrow.sample, digits.input_shape) is None  # a narrower supernet, the same space


def test_discretise_keeps_none_but_never_disconnects(space):
    e, k = len(edge_names(4)), len(space.ops)
    alphas = torch.zeros(e, k)
    alphas[:, space.ops.index("nor_conv_3x3")] = 1.0
    alphas[0, space.ops.index("none")] = 5.0  # edge 1<-0 dropped: allowed, node 2 and 3 still reach the input
    s = discretise(space, alphas)
    assert s["edge_1_0"] == "none" and space.function_key(s)
    alphas[:, space.ops.index("none")] = 5.0  # every edge 'none': the argmax would be disconnected
    alphas[3, space.ops.index("avg_pool_3x3")] = 4.0  # edge 3<-0 has the strongest other operation
    s = discretise(space, alphas)
    assert s == {**{n: "none" for n in edge_names(4)}, "edge_3_0": "avg_pool_3x3"}
    assert space.check(s, (1, 8, 8)) is None


def test_supernet_shares_the_discrete_skeleton(space):
    net = Supernet(space, (1, 8, 8), 10)
    discrete = space.build(space.sample(__import__("numpy").random.default_rng(0)), (1, 8, 8), 10)
    assert [type(m).__name__ for m in net.net] == [type(m).__name__ for m in discrete]
    assert net.alphas.shape == (6, 5) and all(p is not net.alphas for p in net.weights())
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_search_stores_one_complete_trial_and_the_history(tmp_path, capsys):
    outcome = api.search(config(tmp_path))
    assert outcome.best is not None and outcome.stopped == "epochs"
    with Store(tmp_path / "s.db") as st:
        exp = st.experiment("darts")
        trials = st.trials(exp.id)
        (res,) = st.results(exp.id, "darts")
    assert [t.state for t in trials] == [TrialState.COMPLETE]
    assert trials[0].sample == res["sample"] and 0 <= trials[0].score <= 1
    assert len(res["history"]) == 2 and res["options"]["remedy"] == "darts_plus" and res["arch"]
    # resuming a finished search changes nothing; status and retrain work as for any search
    again = api.search(config(tmp_path), resume=True)
    assert [t.number for t in again.trial_list] == [0]
    assert main(["status", str(tmp_path / "s.db")]) == 0
    assert "strategy darts" in capsys.readouterr().out
    assert main(["retrain", str(tmp_path / "s.db"), "--no-baseline"]) == 0
    assert "searched" in capsys.readouterr().out


def test_cli_shows_supernet_epochs(tmp_path, capsys):
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(config(tmp_path, epochs=1)))
    assert main(["search", str(p), "--strategy", "darts"]) == 0
    err = capsys.readouterr().err
    assert "DARTS: training the supernet, 1 epochs" in err and "supernet epoch 1/1" in err and "1 complete" in err


def test_time_budget_stops_between_steps(digits, space):
    run = run_darts(space, digits, options=DartsOptions(epochs=1000), seed=0, time_budget=0.5)
    assert run.stopped == "time" and run.history[-1]["partial"]
    assert 0 < run.steps < 1000 and run.seconds < 10
    assert space.check(run.sample, digits.input_shape) is None


def test_darts_plus_stops_at_the_skip_limit_and_beta_changes_the_alphas(digits):
    skips_only = CellSpace(channels=4, n_stages=2, ops=("skip_connect", "nor_conv_1x1"))
    plain = run_darts(skips_only, digits, options=DartsOptions(epochs=3, remedy="none"), seed=0)
    plus = run_darts(skips_only, digits, options=DartsOptions(epochs=3, remedy="darts_plus", skip_limit=1), seed=0)
    assert plain.stopped == "epochs" and len(plain.history) == 3
    assert plus.stopped == "darts_plus" and len(plus.history) < 3 and plus.history[-1]["skips"] >= 1
    assert default_skip_limit(4) == 2 and default_skip_limit(5) == 3  # 6 and 10 edges
    space = CellSpace(channels=4, n_stages=2)
    none = run_darts(space, digits, options=DartsOptions(epochs=1, remedy="none", a_lr=3e-3), seed=0)
    beta = run_darts(space, digits, options=DartsOptions(epochs=1, remedy="beta", a_lr=3e-3, beta_lambda=50.0), seed=0)
    assert beta.history[-1]["beta_lambda"] == pytest.approx(50.0) and none.history[-1]["beta_lambda"] == 0
    spread = [torch.tensor(r.alphas).std(1).mean() for r in (none, beta)]
    assert spread[1] < spread[0]  # the regulariser keeps the alphas closer together


@pytest.mark.parametrize(("options", "needle"), [
    ({"epoch": 3}, "unknown option 'epoch' in strategy.options for darts: did you mean 'epochs'?"),
    ({"remedy": "pdarts"}, "remedy must be one of none, darts_plus, beta"),
    ({"epochs": "ten"}, "strategy.options.epochs for darts must be int"),
    ({"a_lr": 0}, "a_lr must be positive"),
])
def test_bad_options_give_one_line(options, needle):
    with pytest.raises(ConfigError, match=needle.replace("?", r"\?")) as e:
        darts_options(options)
    assert "\n" not in str(e.value)


def test_refused_setups_leave_no_experiment(tmp_path, capsys):
    cfg = config(tmp_path, remedy="pdarts")
    with pytest.raises(ConfigError):
        api.search(cfg)
    with pytest.raises(ConfigError, match="searches cell spaces"):
        api.search({**config(tmp_path), "space": {"kind": "chain"}})
    assert not (tmp_path / "s.db").exists()
    with pytest.raises(ConfigError, match="not an ask/tell strategy"):
        make_strategy("darts", CellSpace())


def test_class_weight_weights_both_losses_so_a_rare_class_is_recalled(digits, space):
    """Digit 0 against the rest (about 1 in 10): the supernet trained on plain cross-entropy recalls less of the rare
    class than the same run with ``train.class_weight`` (the trainer's balanced weights on both of DARTS's losses)."""
    from nasforge.data.base import Dataset

    def binary(y: torch.Tensor) -> torch.Tensor:
        return (y == 0).long()

    data = Dataset("digits0", digits.x_train, binary(digits.y_train), digits.x_val, binary(digits.y_val),
                   ("other", "zero"))
    opts = DartsOptions(epochs=1, remedy="none")
    plain = run_darts(space, data, options=opts, seed=0)
    weighted = run_darts(space, data, options=opts, seed=0, class_weight=True)
    # seeds 0-2: plain 0.50 (every prediction the common class), weighted 0.93-0.97
    bacc = plain.history[-1]["val_balanced_accuracy"], weighted.history[-1]["val_balanced_accuracy"]
    assert bacc[1] > bacc[0] + 0.2, bacc
