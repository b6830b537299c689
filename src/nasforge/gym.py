"""A Gymnasium environment over a search space: any RL agent can search architectures.

One episode builds one network, one step per architectural decision (a dimension of the space, in
the space's own order), and the last step trains or looks it up: the reward is the finished network's
validation score (or ``reward_fn`` of its trial record), every earlier reward is 0. This is the
sequential formulation of Zoph & Le's controller, which :mod:`nasforge.strategy.reinforce` implements
in-house; here the agent is the user's (Stable-Baselines3's PPO, for instance).

- ``action_space`` is ``Discrete(K)``, K the largest number of values of any decision. A decision with
  fewer values takes ``action % len(values)``, and ``info["action_mask"]`` (also :meth:`NASEnv.action_masks`,
  what sb3-contrib's MaskablePPO reads) says which actions are distinct.
- ``observation_space`` is ``Dict(decisions=MultiDiscrete([len+1 ...]), step=Discrete(D+1))``: the values
  chosen so far (0 = not yet decided, i+1 = the i-th value) and the index of the decision to take now.
- A candidate the space rejects (``space.check``) ends the episode with ``invalid_reward`` and the reason
  in ``info["rejected"]``; nothing trains.
- An architecture met before (the space's key: isomorphic cells are one network) is answered from the
  env's memory and is not a new query (``info["query"]`` counts queries), as ``nasforge bench`` counts.
- The last step's ``info`` holds ``trial`` (a :class:`~nasforge.types.Trial`, with the hidden values an
  evaluator keeps from strategies, e.g. NB201's 200-epoch test accuracy: the env's user decides what to
  read), ``cost`` and ``sample``.

gymnasium is an optional dependency (``pip install 'nasforge[gym]'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.errors import ConfigError
from nasforge.types import Budget, Trial, TrialState

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ConfigError("nasforge.gym needs gymnasium: pip install 'nasforge[gym]' (or pip install gymnasium)") from e

Sample = Mapping[str, Any]


class NASEnv(gym.Env[dict[str, Any], np.int64]):
    """Architecture search as an episodic MDP: D decisions, then one evaluation.

    ``evaluator`` has nasforge's evaluator interface (``evaluate(sample, budget)``, e.g.
    :class:`~nasforge.evaluate.tabular.TabularEvaluator` or a trained one); or give ``config`` (a search
    config: mapping, YAML path or :class:`~nasforge.config.Config`) and the env trains each network on
    its data with its recipe and first budget, as ``nasforge search`` would (test split untouched).
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 (gymnasium declares it an instance attribute)

    def __init__(self, space: Any = None, evaluator: Any = None, *, config: Any = None,
                 input_shape: tuple[int, ...] | None = None, n_out: int = 10, budget: Budget | None = None,
                 invalid_reward: float = 0.0, reward_fn: Callable[[Trial], float] | None = None,
                 render_mode: str | None = None) -> None:
        if config is not None:
            if evaluator is not None:
                raise ConfigError("give NASEnv an evaluator or a config, not both")
            space, evaluator, input_shape, n_out, budget = _from_config(config, budget)
        if space is None or evaluator is None:
            raise ConfigError("NASEnv needs a search space and an evaluator (or a config to build both from)")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"unknown render_mode {render_mode!r}: choose ansi or leave it out")
        self.space, self.evaluator = space, evaluator
        self.input_shape, self.n_out = input_shape, n_out
        self.budget = budget or Budget()
        self.invalid_reward, self.reward_fn, self.render_mode = float(invalid_reward), reward_fn, render_mode
        self.dims = dict(space.dims())
        self.names = list(self.dims)
        self.sizes = [len(self.dims[n].values) for n in self.names]
        if not self.names:
            raise ConfigError("the search space has no decisions to take")
        self.n_actions = max(self.sizes)
        self.action_space = spaces.Discrete(self.n_actions)
        self.observation_space = spaces.Dict({
            "decisions": spaces.MultiDiscrete(np.array([k + 1 for k in self.sizes], dtype=np.int64)),
            "step": spaces.Discrete(len(self.names) + 1),
        })
        self.trials: list[Trial] = []  # every distinct network evaluated, in query order
        self._seen: dict[str, Trial] = {}
        self._picks: list[int] = []

    # --------------------------------------------------------------------------------- the MDP

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self._picks = []
        return self._obs(), {"action_mask": self.action_masks()}

    def step(self, action: np.int64 | int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if len(self._picks) >= len(self.names):
            raise RuntimeError("the episode has ended: call reset() first")
        a = int(action)
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        self._picks.append(a % self.sizes[len(self._picks)])
        if len(self._picks) < len(self.names):
            return self._obs(), 0.0, False, False, {"action_mask": self.action_masks()}
        sample = self.sample()
        info: dict[str, Any] = {"sample": sample, "query": len(self.trials)}
        reason = self.space.check(sample, self.input_shape, self.n_out) if self.input_shape is not None else None
        if reason is not None:
            info["rejected"] = reason
            return self._obs(), self.invalid_reward, True, False, info
        key = self.space.key(sample)
        trial = self._seen.get(key)
        info["repeat"] = trial is not None
        if trial is None:
            trial = self._evaluate(key, sample)
        info.update(trial=trial, cost=trial.cost, query=len(self.trials))
        reward = self.reward_fn(trial) if self.reward_fn is not None else float(trial.score or 0.0)
        return self._obs(), float(reward), True, False, info

    def action_masks(self) -> np.ndarray:
        """Which actions are distinct values at the current decision (all False once the episode ended)."""
        mask = np.zeros(self.n_actions, dtype=np.bool_)
        if len(self._picks) < len(self.names):
            mask[: self.sizes[len(self._picks)]] = True
        return mask

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if len(self._picks) < len(self.names):
            return f"{len(self._picks)}/{len(self.names)} decisions: " + ", ".join(
                f"{n}={self.dims[n].values[i]!r}" for n, i in zip(self.names, self._picks, strict=False))
        return str(self.space.describe(self.sample()))

    # --------------------------------------------------------------------------------- helpers

    def sample(self) -> dict[str, Any]:
        """The architecture the decisions so far make (the episode must have taken every decision)."""
        if len(self._picks) < len(self.names):
            raise RuntimeError(f"only {len(self._picks)} of {len(self.names)} decisions taken")
        return {n: self.dims[n].values[i] for n, i in zip(self.names, self._picks, strict=True)}

    @property
    def best(self) -> Trial | None:
        """The best network evaluated so far (ties keep the earlier, as :class:`~nasforge.study.Study` does)."""
        best: Trial | None = None
        for t in self.trials:
            if t.score is not None and (best is None or best.score is None or t.score > best.score):
                best = t
        return best

    def _obs(self) -> dict[str, Any]:
        decided = np.zeros(len(self.names), dtype=np.int64)
        decided[: len(self._picks)] = np.asarray(self._picks, dtype=np.int64) + 1
        return {"decisions": decided, "step": len(self._picks)}

    def _evaluate(self, key: str, sample: Sample) -> Trial:
        started = time.time()
        res = self.evaluator.evaluate(dict(sample), self.budget)
        trial = Trial(number=len(self.trials), key=key, sample=dict(sample), state=TrialState.COMPLETE,
                      budget=self.budget, score=res.score, metrics=dict(res.metrics), curve=tuple(res.curve),
                      cost=res.cost, hidden=dict(res.hidden), started=started, finished=time.time(),
                      train_seconds=res.train_seconds, eval_seconds=res.eval_seconds)
        self.trials.append(trial)
        self._seen[key] = trial
        return trial


def _from_config(config: Any, budget: Budget | None) -> tuple[Any, Any, tuple[int, ...], int, Budget]:
    """The space, a training evaluator on the config's data (search view), and the config's first budget."""
    from nasforge import api
    from nasforge.execute.factories import TorchEvaluatorFactory
    from nasforge.space import make_space

    cfg = api.as_config(config if not isinstance(config, str) else Path(config))
    data = api.load_data(cfg).search_view()
    space = make_space(cfg.space, data.input_shape)
    ladder = cfg.search.make_scheduler().ladder
    factory = TorchEvaluatorFactory(data, space, cfg.train, cfg.seed, cfg.search.measure_latency,
                                    folds=cfg.search.folds, metric=cfg.search.metric)
    return space, factory(), tuple(data.input_shape), data.n_classes, budget or ladder[-1]


__all__ = ["NASEnv"]
