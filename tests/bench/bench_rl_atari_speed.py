"""PPO training speed on Breakout: ours (ale-py's C++ vector env, and the gymnasium wrapper
stack) against Stable-Baselines3 on the gymnasium wrapper stack, in one run.

SB3 steps our ``bicimad.rl.envs.make_env`` wrappers (the same Python-level preprocessing as its
own ``AtariWrapper``, which needs OpenCV) on its ``DummyVecEnv``.

Each side trains PPO with the Atari preset's shape (8 envs × 128 steps, 4 epochs of 4
minibatches, Nature CNN) for ``STEPS`` agent steps (4 frames each) and is timed from building
its envs to the end of training, in wall-clock seconds and in CPU seconds of this process
(``time.process_time``, all its threads, ale-py's C++ ones included: the fair measure on a
shared machine); torch runs on each of ``BENCH_ATARI_THREADS`` thread counts. The budget is far too short for returns to mean anything: this measures
speed only. Sides run one after another, so load from other processes can bias single rows.

    BENCH_ATARI_STEPS=20480 BENCH_ATARI_THREADS=1,2 .venv/bin/python -m pytest -m bench tests/bench/bench_rl_atari_speed.py -s
"""

from __future__ import annotations

import os
import time

import gymnasium as gym
import pytest
import torch

from bicimad.rl.envs import make_env
from bicimad.rl.runs import ALGORITHMS, make_config

STEPS = int(os.environ.get("BENCH_ATARI_STEPS", "20480"))
THREADS = [int(n) for n in os.environ.get("BENCH_ATARI_THREADS", "1,2").split(",")]
ENV = "ALE/Breakout-v5"


def ours(tmp_path, threads: int, native: bool) -> tuple[float, float]:
    """(agent steps per wall second, per CPU second)."""
    config = make_config("ppo", ENV, total_steps=STEPS, seed=1, torch_threads=threads, tensorboard=False)
    start, cpu = time.perf_counter(), time.process_time()
    envs = None
    if not native:
        envs = gym.vector.SyncVectorEnv([lambda: make_env(ENV) for _ in range(config.num_envs)],
                                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    ALGORITHMS["ppo"][1](config, tmp_path / f"ours_{threads}_{native}", envs=envs, progress=False)
    steps = config.num_iterations * config.batch_size
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def sb3(threads: int) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    config = make_config("ppo", ENV, total_steps=STEPS, seed=1)
    torch.set_num_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    envs = DummyVecEnv([lambda: make_env(ENV) for _ in range(config.num_envs)])
    envs.seed(1)
    model = PPO("CnnPolicy", envs, n_steps=config.num_steps, batch_size=config.batch_size // config.num_minibatches,
                n_epochs=config.update_epochs, learning_rate=lambda p: p * config.learning_rate,
                clip_range=config.clip_coef, clip_range_vf=config.clip_coef, ent_coef=config.ent_coef,
                vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm, gamma=config.gamma,
                gae_lambda=config.gae_lambda, seed=1, device="cpu", verbose=0)
    steps = config.num_iterations * config.batch_size
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


@pytest.mark.bench
def test_breakout_training_speed_against_sb3(tmp_path):
    pytest.importorskip("stable_baselines3")
    rows = []
    for threads in THREADS:
        rows.append(("ours, ale-py vector env", threads, *ours(tmp_path, threads, native=True)))
        print(rows[-1])
        rows.append(("SB3, gymnasium wrappers", threads, *sb3(threads)))
        print(rows[-1])
        rows.append(("ours, gymnasium wrappers", threads, *ours(tmp_path, threads, native=False)))
        print(rows[-1])
    sb3_best = max(r[3] for r in rows if r[0].startswith("SB3"))
    print(f"\nPPO on {ENV}, {STEPS} agent steps each")
    print("| side | torch threads | agent steps / wall s | agent steps / CPU s | CPU speed / best SB3 |")
    print("|---|---|---|---|---|")
    for side, threads, wall, cpu in rows:
        print(f"| {side} | {threads} | {wall:.0f} | {cpu:.0f} | {cpu / sb3_best:.2f} |")
    assert all(r[2] > 0 and r[3] > 0 for r in rows)
