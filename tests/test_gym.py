"""nasforge.gym.NASEnv: Gymnasium's own checker, the episode's shape, rewards from real evaluators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
from gymnasium.utils.env_checker import check_env  # noqa: E402

from nasforge.errors import ConfigError  # noqa: E402
from nasforge.gym import NASEnv  # noqa: E402
from nasforge.space import make_space  # noqa: E402

TABLE = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "nasbench201" / "nb201_table.csv.gz"


@pytest.fixture(scope="module")
def nb201_env_parts():
    if not TABLE.is_file():
        pytest.skip(f"NB201 table not found at {TABLE}")
    from nasforge.evaluate.tabular import NB201Table, TabularEvaluator

    space = make_space({"kind": "nb201"})
    return space, TabularEvaluator(NB201Table(TABLE), space)


def play(env: NASEnv, actions: list[int]) -> tuple[float, dict]:
    env.reset(seed=0)
    reward, info = 0.0, {}
    for i, a in enumerate(actions):
        _, reward, terminated, truncated, info = env.step(a)
        assert terminated == (i == len(actions) - 1) and not truncated
    return reward, info


def test_the_env_passes_gymnasiums_checker(nb201_env_parts):
    space, ev = nb201_env_parts
    check_env(NASEnv(space, ev, input_shape=(3, 32, 32)), skip_render_check=True)


def test_an_episode_is_one_decision_a_step_and_the_reward_is_the_table_score(nb201_env_parts):
    space, ev = nb201_env_parts
    env = NASEnv(space, ev, input_shape=(3, 32, 32))
    assert env.action_space.n == 5 and len(env.names) == 6  # NB201: 6 edges, 5 operations
    obs, info = env.reset(seed=0)
    assert obs["step"] == 0 and not obs["decisions"].any() and info["action_mask"].all()
    ops = list(env.dims[env.names[0]].values)
    conv = ops.index("nor_conv_3x3")
    reward, info = play(env, [conv] * 6)
    sample = {n: "nor_conv_3x3" for n in env.names}
    assert info["sample"] == sample and not info["repeat"]
    assert reward == pytest.approx(ev.lookup(sample)["score"])  # the 12-epoch validation accuracy
    assert info["trial"].hidden["test_200"] == pytest.approx(ev.lookup(sample)["test_200"])
    assert info["cost"].params > 0 and info["query"] == 1
    # the same network again is remembered, not a new query
    reward2, info2 = play(env, [conv] * 6)
    assert reward2 == reward and info2["repeat"] and info2["query"] == 1 and len(env.trials) == 1
    assert env.best is env.trials[0]


def test_a_rejected_cell_ends_the_episode_with_the_invalid_reward_and_a_reason(nb201_env_parts):
    space, ev = nb201_env_parts
    env = NASEnv(space, ev, input_shape=(3, 32, 32), invalid_reward=-1.0)
    none = list(env.dims[env.names[0]].values).index("none")
    reward, info = play(env, [none] * 6)  # every edge cut: the output is disconnected from the input
    assert reward == -1.0 and "rejected" in info and not env.trials


def test_smaller_decisions_fold_actions_and_mask_the_rest_on_a_trained_mlp(digits):
    """A real training evaluator (digits as a table, MLP space): decisions of unequal size, a reward in [0, 1]."""
    from nasforge.evaluate.recipe import Recipe
    from nasforge.evaluate.torch_eval import TorchEvaluator
    from nasforge.types import Budget

    flat = digits.search_view()
    space = make_space({"kind": "mlp", "max_depth": 2, "widths": [16, 32]}, tuple(flat.input_shape))
    ev = TorchEvaluator(flat, space, recipe=Recipe(batch_size=64), seed=0, measure_latency=False)
    env = NASEnv(space, ev, input_shape=tuple(flat.input_shape), n_out=flat.n_classes, budget=Budget(epochs=1))
    sizes = env.sizes
    assert env.action_space.n == max(sizes)
    env.reset(seed=0)
    reward, info, done, step = 0.0, {}, False, 0
    while not done:
        mask = env.action_masks()
        assert mask.sum() == sizes[step]
        _, reward, done, _, info = env.step(env.action_space.n - 1)  # folded onto a valid value
        step += 1
    assert step == len(sizes) and 0.0 <= reward <= 1.0 and info["trial"].score == reward
    assert env.action_masks().sum() == 0


def test_bad_use_gets_clear_errors(nb201_env_parts):
    space, ev = nb201_env_parts
    with pytest.raises(ConfigError, match="evaluator"):
        NASEnv(space, None)
    env = NASEnv(space, ev, input_shape=(3, 32, 32))
    env.reset()
    with pytest.raises(ValueError, match="outside"):
        env.step(7)
    play(env, [1] * 6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_random_agent_finds_better_cells_over_episodes(nb201_env_parts):
    """A smoke test of the agent loop: the best-so-far of 30 random episodes is at least the first's."""
    space, ev = nb201_env_parts
    env = NASEnv(space, ev, input_shape=(3, 32, 32))
    env.action_space.seed(0)
    firsts = []
    for _ in range(30):
        env.reset()
        done = False
        while not done:
            _, r, done, _, _ = env.step(env.action_space.sample())
        firsts.append(r)
    best = env.best
    assert best is not None and best.score == max(t.score for t in env.trials)
    assert np.isclose(best.score, max(firsts))


def test_a_config_builds_the_space_a_training_evaluator_and_the_budget():
    """The config route trains on the config's data (search view) with its recipe and budget."""
    env = NASEnv(config={"data": {"source": "digits"}, "space": {"kind": "mlp", "max_depth": 1, "widths": [8]},
                         "search": {"budget": {"epochs": 1}}, "train": {"batch_size": 64}})
    assert env.budget.epochs == 1 and env.input_shape is not None and env.n_out == 10
    env.reset(seed=0)
    done, reward, info = False, 0.0, {}
    while not done:
        _, reward, done, _, info = env.step(0)
    assert info["trial"].metrics and 0.0 < reward <= 1.0
    with pytest.raises(ConfigError, match="not both"):
        NASEnv(env.space, env.evaluator, config={"data": {"source": "digits"}})
