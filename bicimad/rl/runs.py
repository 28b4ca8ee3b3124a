"""Runs as a whole: the algorithm registry, configs from presets, loading and evaluating agents."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from bicimad.rl import a2c, checkpoints, ppo, reinforce
from bicimad.rl.agents import Agent, AgentFactory, MultiCategorical, action_nvec
from bicimad.rl.agents import make_agent as default_make_agent
from bicimad.rl.core import CHECKPOINT, CommonConfig, seed_everything
from bicimad.rl.envs import episode_returns, make_vector_env
from bicimad.rl.presets import preset

#: name -> (config class, train function)
ALGORITHMS = {
    "reinforce": (reinforce.ReinforceConfig, reinforce.train),
    "a2c": (a2c.A2CConfig, a2c.train),
    "ppo": (ppo.PPOConfig, ppo.train),
}

def make_config(algo: str, env_id: str, **overrides) -> CommonConfig:
    """The algorithm's config for ``env_id``: its defaults, then the env's preset
    (:mod:`bicimad.rl.presets`), then ``overrides``."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}: choose from {sorted(ALGORITHMS)}")
    config_cls = ALGORITHMS[algo][0]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown {algo} config field(s) {sorted(unknown)}; known: {sorted(fields)}")
    values = preset(algo, env_id)
    values.update(overrides)
    return config_cls(env_id=env_id, **values)


def load_checkpoint(out_dir: str | Path) -> dict:
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no {CHECKPOINT} in {out_dir}: not a training run folder")
    return checkpoints.load(path)


def load_config(out_dir: str | Path) -> tuple[str, CommonConfig]:
    """``(algo, config)`` of the run saved in ``out_dir``."""
    state = load_checkpoint(out_dir)
    if state["algo"] not in ALGORITHMS:
        raise checkpoints.CheckpointError(f"{Path(out_dir) / CHECKPOINT}: unknown algorithm {state['algo']!r}")
    try:
        return state["algo"], ALGORITHMS[state["algo"]][0](**state["config"])
    except (TypeError, ValueError) as exc:
        raise checkpoints.CheckpointError(f"{Path(out_dir) / CHECKPOINT}: bad config: {exc}") from exc


def evaluate(out_dir: str | Path, episodes: int, *, seed: int = 10_000, deterministic: bool = False,
             make_agent: AgentFactory | None = None) -> np.ndarray:
    """Returns of ``episodes`` whole episodes played by the trained agent of ``out_dir``.

    Scores are the env's raw ones (for Atari: whole games, unclipped). The eval seed defaults
    to one far from the training seeds.
    """
    state = load_checkpoint(out_dir)
    env_id = state["config"]["env_id"]
    envs = make_vector_env(env_id, 1, seed)
    agent = (make_agent or default_make_agent)(envs.single_observation_space, envs.single_action_space)
    agent.load_state_dict(state["agent"])
    return play(agent, envs, episodes, seed, deterministic)


def play(agent: Agent | None, envs, episodes: int, seed: int, deterministic: bool = False) -> np.ndarray:
    """Returns of ``episodes`` episodes; ``agent=None`` plays uniformly random (valid) actions.

    ``deterministic`` takes each component's most likely action (needs the agent's
    ``distribution(obs, mask)``, which the default agents have).
    """
    seed_everything(seed)
    obs, infos = envs.reset(seed=[seed + i for i in range(envs.num_envs)])
    nvec = action_nvec(envs.single_action_space)
    uniform = torch.zeros((envs.num_envs, sum(nvec)))
    returns: list[float] = []
    while len(returns) < episodes:
        mask = infos.get("action_mask")
        mask = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=bool))
        with torch.inference_mode():
            if agent is None:
                action = MultiCategorical(uniform, nvec, mask).sample()
            elif deterministic:
                action = agent.distribution(torch.as_tensor(obs), mask).mode()
            else:
                action = agent.get_action_and_value(torch.as_tensor(obs), mask=mask)[0]
        obs, _, _, _, infos = envs.step(action[:, 0].numpy() if len(nvec) == 1 else action.numpy())
        returns.extend(ret for ret, _ in episode_returns(infos))
    envs.close()
    return np.array(returns[:episodes])
