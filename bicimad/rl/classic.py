"""CartPole-v1 as one numpy vector env: every sub-env stepped by the same array operations.

gymnasium's ``CartPole-v1`` behind a ``SyncVectorEnv`` costs a Python call chain per sub-env and
step (the env, its checker, order enforcer, time limit and episode-statistics wrappers), which for
8 envs is most of a rollout's time. :class:`CartPoleVectorEnv` steps all sub-envs at once with
the same dynamics (Barto, Sutton & Anderson 1983, as gymnasium writes them: Euler integration
every 0.02 s, a force of ±10 N, the pole failing beyond 12° or the cart beyond 2.4 m, reward 1
per step including the failing one, episodes cut at 500 steps), the same start distribution
(each state variable uniform in ±0.05) and the same-step autoreset the policy-gradient rollout
expects (``info["final_obs"]``, and ``info["final_info"]["episode"]`` as
``RecordEpisodeStatistics`` writes it). ``tests/rl/test_envs.py`` checks its steps against
gymnasium's env from the same states.

One difference: the start states are drawn from one generator for the whole vector env (seeded
by the first seed given to :meth:`reset`), not one per sub-env, so for a given seed the episodes
differ from a ``SyncVectorEnv``'s; they are as random and as reproducible.
"""

from __future__ import annotations

import math
import time

import gymnasium as gym
import numpy as np

GRAVITY, MASS_CART, MASS_POLE, HALF_LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASS_CART + MASS_POLE
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4
MAX_STEPS = 500


class CartPoleVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` CartPole-v1 envs in numpy arrays, auto-resetting in the same step."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}
    plain_state = True  #: its attributes are its whole state: checkpoints save and restore them exactly

    def __init__(self, num_envs: int, max_episode_steps: int = MAX_STEPS):
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        high = np.array([X_LIMIT * 2, np.finfo(np.float32).max, THETA_LIMIT * 2, np.finfo(np.float32).max],
                        dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self.state = np.zeros((self.num_envs, 4), np.float64)
        self.lengths = np.zeros(self.num_envs, np.int64)
        self.starts = np.zeros(self.num_envs, np.float64)
        self.np_random = np.random.default_rng()

    def _start(self, which: np.ndarray | slice) -> None:
        n = len(self.state[which])
        self.state[which] = self.np_random.uniform(-0.05, 0.05, size=(n, 4))
        self.lengths[which] = 0
        self.starts[which] = time.perf_counter()

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            first = seed if isinstance(seed, int) else int(list(seed)[0])
            self.np_random = np.random.default_rng(first)
            self.action_space.seed(first)
        self._start(slice(None))
        return self.state.astype(np.float32), {}

    def step(self, actions):
        actions = np.asarray(actions).reshape(self.num_envs)
        bad = (actions != 0) & (actions != 1)
        if bad.any():
            raise ValueError(f"CartPole actions must be 0 or 1, got {actions[bad][:5]}")
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(actions == 1, FORCE, -FORCE)
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + POLE_MASS_LENGTH * theta_dot ** 2 * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos ** 2 / TOTAL_MASS))
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
        self.state = np.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot,
                               theta_dot + TAU * theta_acc], axis=1)
        self.lengths += 1
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (x < -X_LIMIT) | (x > X_LIMIT) | (theta < -THETA_LIMIT) | (theta > THETA_LIMIT)
        truncated = (self.lengths >= self.max_episode_steps) & ~terminated
        reward = np.ones(self.num_envs, np.float64)
        obs = self.state.astype(np.float32)
        done = terminated | truncated
        info: dict = {}
        if done.any():
            now = time.perf_counter()
            info["final_obs"] = np.where(done[:, None], obs, 0.0).astype(np.float32)
            info["_final_obs"] = done.copy()
            info["final_info"] = {"episode": {"r": np.where(done, self.lengths.astype(np.float64), 0.0),
                                              "l": np.where(done, self.lengths, 0),
                                              "t": np.where(done, np.round(now - self.starts, 6), 0.0)},
                                  "_episode": done.copy()}
            self._start(done)
            obs[done] = self.state[done].astype(np.float32)
        return obs, reward, terminated, truncated, info
