"""Transfer across searches: search.initial from an earlier database, and a predictor prior (bananas, tpe)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from nasforge import api
from nasforge.errors import ConfigError
from nasforge.space import make_space
from nasforge.store import Store
from nasforge.strategy import make_strategy
from nasforge.transfer import earlier_best, prior_trials, translate

SPACE = {"kind": "mlp", "max_depth": 2, "widths": [8, 16, 32]}


def cfg(db: Path, name: str, **over):
    base = {"name": name, "seed": 0, "data": {"source": "digits"}, "space": dict(SPACE),
            "strategy": {"name": "random"}, "train": {"batch_size": 64},
            "search": {"trials": 6, "budget": {"epochs": 1}, "db": str(db), "measure_latency": False}}
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and k in base and isinstance(base[k], dict) else v
    return base


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A real earlier search: 6 MLPs trained on digits."""
    db = tmp_path_factory.mktemp("transfer") / "earlier.db"
    api.search(cfg(db, "earlier"))
    return db


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_search_starts_from_an_earlier_experiments_best_networks(earlier, tmp_path):
    before = digest(earlier)
    with Store(earlier, readonly=True) as st:
        exp = st.experiment("earlier")
        best = sorted(st.trials(exp.id), key=lambda t: -(t.score or 0))[:2]
    api.search(cfg(tmp_path / "new.db", "new", search={"trials": 3, "initial": {"from": str(earlier), "top": 2}}))
    with Store(tmp_path / "new.db", readonly=True) as st:
        firsts = st.trials(st.experiment("new").id)[:2]
    space = make_space(SPACE)
    assert [space.key(t.sample) for t in firsts] == [space.key(t.sample) for t in best]
    assert digest(earlier) == before  # read only


def test_a_network_from_another_space_is_translated_or_skipped_with_a_reason(earlier, caplog):
    narrow = make_space({"kind": "mlp", "max_depth": 2, "widths": [12, 24]})  # no 8/16/32: nearest widths
    s = {"depth": 1, "l0.width": 32, "l1.width": 8, "norm": "batch", "dropout": 0.0, "act": "relu",
         "residual": False}
    s = {k: v for k, v in s.items() if k in make_space(SPACE).dims()}
    out, note = translate(s, narrow, (64,), 10)
    assert out is not None and out["l0.width"] == 24 and "l0.width 32->24" in note
    deeper = make_space({"kind": "mlp", "min_depth": 3, "max_depth": 3, "widths": [8]})
    out, why = translate(s, deeper, (64,), 10)
    assert out is None and "no value for l2.width" in why  # depth 1 became 3: a third layer it never had
    with caplog.at_level(logging.WARNING, logger="nasforge"), pytest.raises(ConfigError, match="fits"):
        earlier_best({"from": str(earlier)}, deeper, (1, 8, 8), 10)
    assert "skipped" in caplog.text


def test_bad_transfer_entries_are_one_line_errors_before_anything_is_written(earlier, tmp_path):
    new = tmp_path / "new.db"
    for initial, match in (({"from": str(tmp_path / "none.db")}, "no database"),
                           ({"from": str(earlier), "top": 0}, "top"),
                           ({"from": str(earlier), "bogus": 1}, "unknown key"),
                           ({"from": str(earlier), "name": "nope"}, "no experiment")):
        with pytest.raises(ConfigError, match=match):
            api.search(cfg(new, "new", search={"initial": initial}))
    with pytest.raises(ConfigError, match="takes no prior"):
        api.search(cfg(new, "new", strategy={"name": "evolution", "options": {"prior": str(earlier)}}))
    with pytest.raises(ConfigError, match="matches no database"):
        api.search(cfg(new, "new", strategy={"name": "bananas", "options": {"prior": str(tmp_path / "*.db")}}))
    with Store(new) as st:  # a refused config may leave the file, never an experiment
        assert st.experiment_names() == []


def test_the_prior_is_z_scored_per_experiment_and_excludes_the_search_itself(earlier):
    space = make_space(SPACE)
    prior = prior_trials(str(earlier), space, (1, 8, 8), 10)
    assert len(prior) == 6
    z = np.array([v for _, v in prior])
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-6
    with pytest.raises(ConfigError, match="no earlier trial"):
        prior_trials(str(earlier), space, (1, 8, 8), 10, exclude=(str(earlier), "earlier"))


@pytest.mark.parametrize("name", ["bananas", "tpe"])
def test_a_prior_steers_the_first_asks_toward_the_priors_best(name):
    """Without a prior the first asks are random; with one they come from around its best networks."""
    pytest.importorskip("optuna") if name == "tpe" else None
    space = make_space({"kind": "mlp", "max_depth": 2, "widths": [8, 16, 32, 64, 128]})
    rng = np.random.default_rng(0)
    pts = [space.sample(rng) for _ in range(60)]
    # a synthetic earlier task: wider first layers score higher
    prior = [(p, float(np.log2(p["l0.width"]) if p["depth"] > 0 else 0.0)) for p in pts]
    z = np.array([v for _, v in prior])
    prior = [(p, float((v - z.mean()) / z.std())) for p, v in prior]
    widths = []
    for with_prior in (False, True):
        st = make_strategy(name, space, seed=1, **({"prior": prior} if with_prior else {}))
        sugg = st.ask([], 8)
        widths.append(np.mean([s.sample["l0.width"] if s.sample["depth"] > 0 else 0 for s in sugg]))
    assert widths[1] > widths[0]


def test_bananas_prior_is_checked(tmp_path):
    space = make_space(SPACE)
    with pytest.raises(ConfigError, match="pairs"):
        make_strategy("bananas", space, prior="runs/*.db")
    with pytest.raises(ConfigError, match="prior_strength"):
        make_strategy("bananas", space, prior=[], prior_strength=0)
