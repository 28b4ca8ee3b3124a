"""The CLI's CartPole preset against Stable-Baselines3 with rl-baselines3-zoo's tuned settings.

One run, five seeds, alternating the two sides seed by seed so machine load hits both alike:
ours is ``bicimad rl train --env CartPole-v1 --total-steps 100000 --seed S`` (its defaults are
the preset in ``bicimad/rl/presets.py``), SB3 is ``PPO("MlpPolicy")`` on ``make_vec_env`` with
the zoo's ``CartPole-v1`` entry. Both run torch on one thread; each is timed in wall-clock
seconds from the call (ours: the whole command, checkpoint and learning curve included; SB3: from
building its envs to the end of ``learn``). Both are evaluated on 20 episodes of the same
seeded envs, sampling actions from the policy.

    .venv/bin/python -m pytest -m bench tests/bench/bench_rl_cartpole_preset.py -s
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from bicimad.cli import main
from bicimad.rl.envs import make_vector_env
from bicimad.rl.runs import evaluate, play

SEEDS = (1, 2, 3, 4, 5)
STEPS = 100_000
EPISODES = 20
EVAL_SEED = 10_000


class _SB3Agent:
    """An SB3 policy behind the interface our ``play`` uses (sampled actions)."""

    def __init__(self, model):
        self.model = model

    def get_action_and_value(self, obs, action=None, mask=None):
        act, _ = self.model.predict(obs.numpy(), deterministic=False)
        return torch.as_tensor(act).reshape(len(obs), -1), None, None, None


def sb3_zoo(seed: int):
    """SB3 PPO with rl-baselines3-zoo's tuned CartPole-v1 hyperparameters; (model, wall seconds)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    def linear(start):
        return lambda progress_remaining: progress_remaining * start

    start = time.perf_counter()
    envs = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", envs, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu",
                verbose=0)
    model.learn(total_timesteps=STEPS)
    return model, time.perf_counter() - start


@pytest.mark.bench
def test_cartpole_preset_solves_at_twice_sb3_speed(tmp_path):
    pytest.importorskip("stable_baselines3")
    torch.set_num_threads(1)
    rows = []
    for seed in SEEDS:
        out = tmp_path / f"ours{seed}"
        start = time.perf_counter()
        assert main(["rl", "train", "--env", "CartPole-v1", "--total-steps", str(STEPS), "--seed", str(seed),
                     "--out", str(out)]) == 0
        ours_s = time.perf_counter() - start
        ours_ret = evaluate(out, EPISODES, seed=EVAL_SEED).mean()
        model, sb3_s = sb3_zoo(seed)
        sb3_ret = play(_SB3Agent(model), make_vector_env("CartPole-v1", 1, EVAL_SEED), EPISODES, EVAL_SEED).mean()
        rows.append((seed, ours_ret, ours_s, sb3_ret, sb3_s))
        print(f"seed {seed}: ours {ours_ret:.1f} in {ours_s:.1f} s, SB3 zoo {sb3_ret:.1f} in {sb3_s:.1f} s, "
              f"speed ratio {sb3_s / ours_s:.2f}")
    ours_total, sb3_total = sum(r[2] for r in rows), sum(r[4] for r in rows)
    solved_ours = sum(r[1] >= 475 for r in rows)
    solved_sb3 = sum(r[3] >= 475 for r in rows)
    print("| seed | ours return | ours wall s | SB3 zoo return | SB3 wall s | SB3 s / ours s |")
    print("|---|---|---|---|---|---|")
    for seed, o_ret, o_s, s_ret, s_s in rows:
        print(f"| {seed} | {o_ret:.1f} | {o_s:.1f} | {s_ret:.1f} | {s_s:.1f} | {s_s / o_s:.2f} |")
    print(f"| all | {solved_ours}/5 ≥ 475 | {ours_total:.1f} | {solved_sb3}/5 ≥ 475 | {sb3_total:.1f} | "
          f"{sb3_total / ours_total:.2f} |")
    assert solved_ours >= 4
    assert sb3_total / ours_total >= 2.0
    assert np.isfinite(ours_total)
