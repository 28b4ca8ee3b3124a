"""Per-environment hyperparameter presets: the defaults of ``bicimad rl train`` and of
:func:`bicimad.rl.runs.make_config`.

A preset is looked up by algorithm and env: the exact env id first, then its family
(``atari`` for ``ALE/...``, ``retro`` for ``retro/...``); an env with no preset gets the
algorithm config's own defaults (CleanRL's classic-control settings for PPO). Values given on the
command line (``--total-steps``, ``--num-envs``, ``--set``) replace the preset's.

Sources:

* PPO CartPole-v1: rl-baselines3-zoo's tuned ``hyperparams/ppo.yml`` (8 envs × 32 steps, one
  minibatch of 256, gamma 0.98, lambda 0.8, no entropy bonus, learning rate 1e-3 and clip range
  0.2 both annealed linearly to 0, no value clipping, 100,000 steps) with 10 epochs per rollout
  instead of the zoo's 20: half the gradient steps, and 500 on each of seeds 1-15 at 100,000
  steps (BENCHMARKS.md, "CLI defaults on CartPole-v1").
* PPO Atari: CleanRL's ``ppo_atari.py`` (8 envs × 128 steps, 4 minibatches, 4 epochs, learning
  rate 2.5e-4 annealed, clip 0.1, entropy 0.01, 10 M agent steps = 40 M frames), which is also
  rl-baselines3-zoo's ``atari`` entry except that the zoo anneals the clip range too
  (``--set anneal_clip=true``).
* PPO retro: the Atari preset (the seed's Gradius III work used the Atari pipeline and PPO
  settings), with checkpoints every 10 iterations since emulator runs are long.
* A2C / REINFORCE on frames: the Atari A2C entry of rl-baselines3-zoo's ``a2c.yml`` keeps an
  entropy bonus of 0.01 with 8-16 envs; REINFORCE takes PPO's rollout shape and learning rate.
"""

from __future__ import annotations

from typing import Any

_PPO_ATARI = {"num_envs": 8, "num_steps": 128, "num_minibatches": 4, "update_epochs": 4,
              "learning_rate": 2.5e-4, "anneal_lr": True, "clip_coef": 0.1, "anneal_clip": False,
              "ent_coef": 0.01, "vf_coef": 0.5, "total_steps": 10_000_000, "checkpoint_every": 10}

#: algorithm -> env id or family -> config field -> value
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ppo": {
        "CartPole-v1": {"num_envs": 8, "num_steps": 32, "num_minibatches": 1, "update_epochs": 10,
                        "gamma": 0.98, "gae_lambda": 0.8, "ent_coef": 0.0, "learning_rate": 1e-3,
                        "anneal_lr": True, "clip_coef": 0.2, "anneal_clip": True, "clip_vloss": False,
                        "total_steps": 100_000},
        "atari": _PPO_ATARI,
        "retro": _PPO_ATARI,
    },
    "a2c": {
        "atari": {"num_envs": 8, "num_steps": 5, "ent_coef": 0.01},
        "retro": {"num_envs": 8, "num_steps": 5, "ent_coef": 0.01},
    },
    "reinforce": {
        "atari": {"num_envs": 8, "num_steps": 128, "ent_coef": 0.01, "learning_rate": 2.5e-4},
        "retro": {"num_envs": 8, "num_steps": 128, "ent_coef": 0.01, "learning_rate": 2.5e-4},
    },
}


def env_family(env_id: str) -> str | None:
    if env_id.startswith("ALE/"):
        return "atari"
    if env_id.startswith("retro/"):
        return "retro"
    return None


def preset(algo: str, env_id: str) -> dict[str, Any]:
    """The preset overrides for ``algo`` on ``env_id`` (empty when there is none)."""
    by_env = PRESETS.get(algo, {})
    if env_id in by_env:
        return dict(by_env[env_id])
    family = env_family(env_id)
    return dict(by_env.get(family, {})) if family else {}
