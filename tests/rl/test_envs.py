"""Atari and retro preprocessing, and short PPO smoke runs on ALE Pong and Airstriker."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bicimad.rl.core import read_metrics
from bicimad.rl.envs import (
    RETRO_ACTIONS,
    GrayResize,
    RomNotFoundError,
    _area_weights,
    _make_single_threaded,
    make_env,
)
from bicimad.rl.runs import ALGORITHMS, make_config


def test_area_resize_keeps_a_two_pixel_ball_visible():
    weights = _area_weights(210, 84)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    env = gym.make("CartPole-v1")
    env.observation_space = gym.spaces.Box(0, 255, (210, 160), np.uint8)
    resize = GrayResize(env, 84)
    frame = np.zeros((210, 160), np.uint8)
    frame[100:104, 77:79] = 255  # Pong's ball: 2 wide, 4 high
    small = resize.observation(frame)
    assert small.shape == (84, 84) and small.dtype == np.uint8
    assert small.max() >= 100


def test_atari_preprocessing_shapes_and_whole_game_scores():
    env = make_env("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.action_space.n == 6
    _, reward, *_ = env.step(0)
    assert reward in (-1.0, 0.0, 1.0)  # clipped
    env.close()


def test_breakout_fires_on_reset_and_ends_learning_episodes_at_each_life():
    env = make_env("ALE/Breakout-v5")
    env.reset(seed=1)
    ale = env.unwrapped.ale
    lives = ale.lives()
    life_ends = 0
    for _ in range(2000):
        _, _, terminated, truncated, info = env.step(0)  # never move: lose every ball
        if terminated or truncated:
            if "episode" in info:          # the whole game is over
                break
            life_ends += 1
            assert ale.lives() < lives       # a life was lost, the game goes on
            lives = ale.lives()
            env.reset()
    assert life_ends == 4                  # 5 lives: 4 life-loss ends, then game over
    env.close()


def test_retro_discrete_actions():
    assert len(RETRO_ACTIONS["GradiusIII-Snes"]) == 11
    env = make_env("retro/Airstriker-Genesis")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84)
    assert env.action_space.n == len(RETRO_ACTIONS["Airstriker-Genesis"])
    env.close()


def _blas_threads_in_worker(queue) -> None:
    from threadpoolctl import threadpool_info

    env = _make_single_threaded("retro/Airstriker-Genesis")
    env.reset(seed=0)
    queue.put([pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"])
    env.close()


def test_retro_worker_processes_run_blas_on_one_thread():
    # One emulator per process: each process's BLAS pool spinning on every core made 8 envs
    # on 2 cores 12x slower. A forked worker inherits the parent's pool size, so the factory
    # the vector env hands its workers must bring it down to one.
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_blas_threads_in_worker, args=(queue,))
    worker.start()
    threads = queue.get(timeout=60)
    worker.join(timeout=60)
    assert worker.exitcode == 0
    assert threads and all(n == 1 for n in threads)


def test_gradius_without_rom_says_how_to_import_it():
    with pytest.raises(RomNotFoundError, match="python -m stable_retro.import"):
        make_env("retro/GradiusIII-Snes")


@pytest.mark.parametrize("env_id,steps", [("ALE/Pong-v5", 256), ("retro/Airstriker-Genesis", 128)])
def test_ppo_smoke_run_on_frames(tmp_path, env_id, steps):
    config = make_config("ppo", env_id, total_steps=steps, num_envs=2 if env_id.startswith("ALE") else 1,
                         num_steps=64, num_minibatches=2, update_epochs=1)
    ALGORITHMS["ppo"][1](config, tmp_path, progress=False)
    _, kl = read_metrics(tmp_path, "losses/approx_kl")
    assert len(kl) == config.num_iterations and np.isfinite(kl).all()
    assert (tmp_path / "checkpoint.pt").exists()


def test_native_atari_vector_env_ends_learning_episodes_at_lives_and_records_whole_games():
    from bicimad.rl.core import check_autoreset_mode
    from bicimad.rl.envs import NativeAtariVectorEnv, make_vector_env

    envs = make_vector_env("ALE/Breakout-v5", 2, 1)
    assert isinstance(envs, NativeAtariVectorEnv)
    check_autoreset_mode(envs)
    assert envs.single_observation_space.shape == (4, 84, 84) and envs.single_action_space.n == 4
    envs.reset(seed=[1, 2])
    rng = np.random.default_rng(0)
    life_ends, games, positive = np.zeros(2, int), [], np.zeros(2, int)
    for _ in range(3000):
        action = np.where(rng.random(2) < 0.3, 1, rng.integers(0, 4, 2))   # FIRE often: the ball gets served
        obs, reward, terminated, truncated, info = envs.step(action)
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        positive += reward > 0
        life_ends += terminated
        if "final_info" in info:
            done = info["final_info"]["_episode"]
            for i in np.flatnonzero(done):
                games.append((info["final_info"]["episode"]["r"][i], positive[i], life_ends[i]))
                positive[i], life_ends[i] = 0, 0
        if len(games) >= 3:
            break
    envs.close()
    assert len(games) >= 3
    for raw_score, bricks, learning_episodes in games:
        assert learning_episodes == 5               # one per life, the last one with the game
        assert raw_score >= bricks and (raw_score > 0) == (bricks > 0)  # raw score, rewards clipped
