"""Config loading: the example is valid; mistakes are named with their fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasforge.config import from_dict, load_config, parse_duration, with_overrides
from nasforge.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_and_build_their_space(path):
    from nasforge.space import make_space

    cfg = load_config(path)
    make_space(cfg.space, (1, 28, 28))


def test_durations():
    assert parse_duration("20m") == 1200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90s") == 90
    assert parse_duration(45) == 45
    assert parse_duration(None) is None
    # as people write them: words, any case, and a clock's hh:mm:ss
    assert [parse_duration(v) for v in ("2 hours", "1 hr", "30 mins", "5 Minutes", "45sec", "1h 30m", "01:30:00")] \
        == [7200, 3600, 1800, 300, 45, 5400, 5400]
    for bad in ("soon", "-5m", 0, "m", True, "500ms", "1:75:00", "2 days"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


@pytest.mark.parametrize("raw, match", [
    ({"serach": {}}, "unknown key 'serach' in the config: did you mean 'search'"),
    ({"search": {"trails": 3}}, "did you mean 'trials'"),
    ({"search": {"trials": "many"}}, "search.trials must be int"),
    ({"search": {"trials": -1}}, "search.trials must be positive"),
    ({"search": {"budget": {"fraction": 2}}}, "at most 1"),
    ({"data": {"val_fraction": 1.5}}, "between 0 and 1"),
    ({"data": {"test_fraction": 0}}, "data.test_fraction must be between 0 and 1"),
    ({"train": {"optimizer": "lbfgs"}}, "unknown optimizer 'lbfgs'"),
    ({"train": {"lr": 0}}, "train.lr must be positive"),
    ({"strategy": {"options": [1, 2]}}, "strategy.options must be a mapping"),
    ({"space": {"kind": "graph"}}, "unknown space kind"),
    ({"data": "mnist"}, "section 'data' must be a mapping"),
    ({"name": ""}, "experiment name .* is not allowed"),
    ({"search": {"interim_validation": "some"}}, "interim_validation must be auto, full, none or a positive"),
    ({"search": {"interim_validation": 0}}, "interim_validation must be"),
    ({"search": {"interim_validation": "none", "stopping": {"rule": "median"}}}, "set it to full, auto"),
])
def test_bad_values_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(raw)


def test_yaml_problems(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(empty)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listy)
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_and_fingerprint():
    cfg = from_dict({"strategy": {"name": "evolution", "options": {"population_size": 5}}})
    o = with_overrides(cfg, strategy="random", trials=7, time_budget="2m", seed=3, db="x.db")
    assert o.strategy.name == "random" and o.strategy.options == {}
    assert (o.search.trials, o.search.time_budget, o.seed, o.search.db) == (7, 120, 3, "x.db")
    # Trials, time and strategy may change on resume; the seed changes what scores mean.
    assert with_overrides(cfg, trials=9, strategy="genetic").fingerprint() == cfg.fingerprint()
    assert o.fingerprint() != cfg.fingerprint()


def test_interim_validation_auto_keeps_full_curves_for_stopping_rules():
    assert from_dict({}).search.interim == 1000
    assert from_dict({"search": {"stopping": {"rule": "median"}}}).search.interim == "full"
    assert from_dict({"search": {"interim_validation": 300}}).search.interim == 300
    assert from_dict({"search": {"interim_validation": "none"}}).search.interim == "none"
    # what interim epochs are scored on never changes a score, so a resume may change it
    assert from_dict({"search": {"interim_validation": "full"}}).fingerprint() == from_dict({}).fingerprint()


@pytest.mark.parametrize("value", [True, 3, "resnet50", ""])
def test_equal_time_names_a_reference(value):
    with pytest.raises(ConfigError, match=r"search\.equal_time must be auto .* or a reference name"):
        from_dict({"data": {"source": "digits"}, "search": {"equal_time": value}})


def test_equal_time_changes_the_fingerprint():
    base = {"data": {"source": "digits"}}
    on = from_dict({**base, "search": {"equal_time": "resnet20"}})
    assert on.search.equal_time == "resnet20" and from_dict(base).search.equal_time is None
    assert on.fingerprint() != from_dict(base).fingerprint()


def test_equal_time_refuses_what_compares_networks_epoch_by_epoch():
    base = {"data": {"source": "digits"}, "search": {"equal_time": "auto", "budget": {"epochs": 3}}}
    with pytest.raises(ConfigError, match=r"equal_time .* stopping rule"):
        from_dict({**base, "search": {**base["search"], "stopping": {"rule": "median"}}})
    with pytest.raises(ConfigError, match="lr_cycle: full"):
        from_dict({**base, "search": {**base["search"],
                                      "scheduler": {"name": "asha", "min_epochs": 1, "lr_cycle": "full"}}})


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {source: digits}\ntrain: {lr: 1e-3, weight_decay: 5E-4}\n"
                 "space: {kind: mlp, weight_decays: [1e-4, 1e-2]}\n")
    cfg = load_config(p)
    assert cfg.train.lr == 1e-3 and cfg.train.weight_decay == 5e-4
    assert cfg.space["weight_decays"] == [1e-4, 1e-2]


def test_search_metric_is_checked_and_changes_the_fingerprint():
    base = {"data": {"source": "digits"}, "space": {"kind": "chain"}}
    plain = from_dict(base)
    ranked = from_dict({**base, "search": {"metric": "balanced_accuracy", "stopping": {"rule": "median"}}})
    assert plain.search.metric == "accuracy" and ranked.search.metric == "balanced_accuracy"
    assert plain.fingerprint() != ranked.fingerprint()
    assert ranked.search.make_stopping().metric == "val_balanced_accuracy"  # a rule compares what the search ranks
    with pytest.raises(ConfigError, match=r"search.metric must be accuracy, balanced_accuracy, f1, got 'f2'"):
        from_dict({**base, "search": {"metric": "f2"}})


def test_train_class_weight_is_a_boolean_and_reaches_the_retrain():
    base = {"data": {"source": "digits"}, "space": {"kind": "chain"}}
    cfg = from_dict({**base, "train": {"class_weight": True}})
    assert cfg.train.class_weight and cfg.retrain.recipe.class_weight  # retrain starts from train's recipe
    assert not from_dict(base).train.class_weight
    assert from_dict(base).fingerprint() != cfg.fingerprint()
    with pytest.raises(ConfigError, match=r"train.class_weight must be bool, got 'balanced'"):
        from_dict({**base, "train": {"class_weight": "balanced"}})
