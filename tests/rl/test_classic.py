"""The numpy CartPole vector env against gymnasium's CartPole-v1, step for step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from bicimad.rl.classic import CartPoleVectorEnv
from bicimad.rl.envs import make_vector_env


def test_steps_match_gymnasium_cartpole_from_the_same_states():
    ours = CartPoleVectorEnv(16)
    obs, _ = ours.reset(seed=3)
    refs = [gym.make("CartPole-v1").unwrapped for _ in range(16)]
    for ref in refs:
        ref.reset(seed=0)
    rng = np.random.default_rng(0)
    compared = ended = 0
    for _ in range(400):
        for ref, state in zip(refs, ours.state):
            ref.state, ref.steps_beyond_terminated = state.copy(), None
        actions = rng.integers(0, 2, 16)
        obs, reward, terminated, truncated, info = ours.step(actions)
        for i, ref in enumerate(refs):
            ref_obs, ref_reward, ref_terminated, _, _ = ref.step(int(actions[i]))
            assert ref_terminated == terminated[i]
            assert ref_reward == reward[i]
            # A finished episode's last observation is in final_obs; obs is the next start.
            last = info["final_obs"][i] if terminated[i] else obs[i]
            np.testing.assert_array_equal(last, ref_obs)
            compared += 1
            ended += bool(terminated[i])
    assert ended > 50 and compared == 6400  # many failures and restarts were compared


def test_truncation_final_obs_and_episode_statistics():
    env = CartPoleVectorEnv(4, max_episode_steps=5)
    env.reset(seed=1)
    for step in range(1, 6):
        obs, reward, terminated, truncated, info = env.step(np.array([0, 1, 0, 1]))
        if step < 5:
            assert not truncated.any() and "final_info" not in info
    assert truncated.all() and not terminated.any()  # 5 steps cannot fail from a ±0.05 start
    episode = info["final_info"]["episode"]
    np.testing.assert_array_equal(episode["l"], 5)
    np.testing.assert_array_equal(episode["r"], 5.0)
    assert info["final_info"]["_episode"].all()
    assert np.abs(obs).max() <= 0.05  # restarted in the same step
    assert not np.array_equal(info["final_obs"], obs)


def test_same_seed_same_episodes_and_clear_errors():
    a, b = CartPoleVectorEnv(3), CartPoleVectorEnv(3)
    np.testing.assert_array_equal(a.reset(seed=7)[0], b.reset(seed=7)[0])
    assert not np.array_equal(a.reset(seed=8)[0], b.reset(seed=7)[0])
    with pytest.raises(ValueError, match="0 or 1"):
        a.step(np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="at least 1"):
        CartPoleVectorEnv(0)


def test_make_vector_env_uses_it_for_cartpole():
    envs = make_vector_env("CartPole-v1", 8, seed=0)
    assert isinstance(envs, CartPoleVectorEnv) and envs.num_envs == 8
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
