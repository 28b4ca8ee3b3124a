"""PPO training throughput on CartPole-v1: ours against Stable-Baselines3, same hyperparameters.

Short runs alternate between the two implementations so that load from other processes on a
shared machine hits both alike; the reported figure is the median of the per-round ratios.

    .venv/bin/python -m pytest -m bench tests/bench/bench_rl_throughput.py -s
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from bicimad.rl.core import read_metrics
from bicimad.rl.envs import make_env
from bicimad.rl.runs import ALGORITHMS, make_config

pytest.importorskip("stable_baselines3")

STEPS = 16_384
ROUNDS = 3


def ours_sps(tmp_path, round_: int) -> float:
    config = make_config("ppo", "CartPole-v1", total_steps=STEPS, seed=round_)
    ALGORITHMS["ppo"][1](config, tmp_path / f"ours{round_}", progress=False)
    return float(read_metrics(tmp_path / f"ours{round_}", "charts/SPS")[1][-1])


def sb3_sps(round_: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    c = make_config("ppo", "CartPole-v1", total_steps=STEPS, seed=round_)
    envs = DummyVecEnv([lambda: make_env("CartPole-v1") for _ in range(c.num_envs)])
    model = PPO("MlpPolicy", envs, n_steps=c.num_steps, batch_size=c.batch_size // c.num_minibatches,
                n_epochs=c.update_epochs, learning_rate=lambda p: p * c.learning_rate, gamma=c.gamma,
                gae_lambda=c.gae_lambda, clip_range=c.clip_coef, clip_range_vf=c.clip_coef,
                ent_coef=c.ent_coef, vf_coef=c.vf_coef, max_grad_norm=c.max_grad_norm, seed=round_,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh},
                device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=c.num_iterations * c.batch_size)
    return c.num_iterations * c.batch_size / (time.perf_counter() - start)


@pytest.mark.bench
def test_ppo_cartpole_throughput_against_sb3(tmp_path):
    torch.set_num_threads(1)
    ratios = []
    for round_ in range(ROUNDS):
        ours, theirs = ours_sps(tmp_path, round_), sb3_sps(round_)
        ratios.append(ours / theirs)
        print(f"round {round_}: ours {ours:.0f} steps/s, SB3 {theirs:.0f} steps/s, ratio {ours / theirs:.2f}")
    median = statistics.median(ratios)
    print(f"PPO CartPole-v1 steps/s, ours / SB3 (median of {ROUNDS}): {median:.2f}")
    assert median > 1.0, "our PPO should not be slower than SB3's"
