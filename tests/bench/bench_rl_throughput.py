"""PPO training throughput on CartPole-v1: ours against Stable-Baselines3, same hyperparameters.

Short runs alternate between the two implementations, and each is timed in CPU seconds of this
process (``time.process_time``, torch on one thread) rather than wall time, so load from other
processes on a shared machine does not bias the ratio. Each side is timed from building its
envs and model to the end of training (ours also writes its checkpoint and learning curve).
The reported figure is the median of the per-round ratios.

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


@pytest.fixture(scope="module")
def warmed_up():
    """SB3 present, and one-off import costs (matplotlib for our learning curve; torch._dynamo,
    which the first optimiser pulls in, for both) paid before the timed runs."""
    pytest.importorskip("stable_baselines3")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


STEPS = 32_768
ROUNDS = 3


def ours_sps(tmp_path, round_: int) -> float:
    config = make_config("ppo", "CartPole-v1", total_steps=STEPS, seed=round_)
    start = time.process_time()
    ALGORITHMS["ppo"][1](config, tmp_path / f"ours{round_}", progress=False)
    seconds = time.process_time() - start
    assert read_metrics(tmp_path / f"ours{round_}", "charts/SPS")[0][-1] == config.num_iterations * config.batch_size
    return config.num_iterations * config.batch_size / seconds


def sb3_sps(round_: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    c = make_config("ppo", "CartPole-v1", total_steps=STEPS, seed=round_)
    clip = (lambda progress: progress * c.clip_coef) if c.anneal_clip else c.clip_coef
    start = time.process_time()
    envs = DummyVecEnv([lambda: make_env("CartPole-v1") for _ in range(c.num_envs)])
    model = PPO("MlpPolicy", envs, n_steps=c.num_steps, batch_size=c.batch_size // c.num_minibatches,
                n_epochs=c.update_epochs, learning_rate=lambda p: p * c.learning_rate, gamma=c.gamma,
                gae_lambda=c.gae_lambda, clip_range=clip, clip_range_vf=clip if c.clip_vloss else None,
                ent_coef=c.ent_coef, vf_coef=c.vf_coef, max_grad_norm=c.max_grad_norm, seed=round_,
                policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh},
                device="cpu", verbose=0)
    model.learn(total_timesteps=c.num_iterations * c.batch_size)
    return c.num_iterations * c.batch_size / (time.process_time() - start)


@pytest.mark.bench
def test_ppo_cartpole_throughput_against_sb3(tmp_path, warmed_up):
    torch.set_num_threads(1)
    ratios = []
    for round_ in range(ROUNDS):
        ours, theirs = ours_sps(tmp_path, round_), sb3_sps(round_)
        ratios.append(ours / theirs)
        print(f"round {round_}: ours {ours:.0f} steps/s, SB3 {theirs:.0f} steps/s, ratio {ours / theirs:.2f}")
    median = statistics.median(ratios)
    print(f"PPO CartPole-v1 steps/s, ours / SB3 (median of {ROUNDS}): {median:.2f}")
    assert median > 1.0, "our PPO should not be slower than SB3's"
