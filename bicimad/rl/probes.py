"""Probe environments: tiny problems with a known optimal return, for testing learners.

Each isolates one thing an algorithm must get right. All randomness comes from ``np_random``.

| name           | tests                                  | optimal mean return |
|----------------|----------------------------------------|---------------------|
| ``contextual`` | the policy reads its observation       | 1.0                 |
| ``chain``      | credit assignment over several steps   | 1.0                 |
| ``masked``     | MultiDiscrete actions + action masking | 2.0                 |
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ContextualBandit(gym.Env):
    """One step: observation is +1 or -1; reward 1 for action 1 on +1 and action 0 on -1, else 0.

    Episode End: Termination after the single step.
    """

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._sign = 1.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._sign = 1.0 if self.np_random.random() < 0.5 else -1.0
        return np.array([self._sign], np.float32), {}

    def step(self, action):
        reward = float(int(action) == (1 if self._sign > 0 else 0))
        return np.array([self._sign], np.float32), reward, True, False, {}


class Chain(gym.Env):
    """A corridor of ``length`` cells; action 1 moves right, 0 left (floor at 0).

    Reward 1 on reaching the right end (Termination). Truncation after ``3 * length`` steps.
    Observation: one-hot position. The optimal return is 1 (undiscounted).
    """

    def __init__(self, length: int = 5):
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._pos = 0
        self._t = 0

    def _obs(self):
        obs = np.zeros(self.length, np.float32)
        obs[self._pos] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pos, self._t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        self._pos = max(0, self._pos + (1 if int(action) == 1 else -1))
        done = self._pos == self.length - 1
        truncated = not done and self._t >= 3 * self.length
        return self._obs(), float(done), done, truncated, {}


class MaskedChoice(gym.Env):
    """One step, ``MultiDiscrete([4, 3])``: a random subset of each component's choices is allowed.

    ``info["action_mask"]`` (length 7: 4 then 3 flags) says which. Reward per component: +1 for
    the highest allowed index, 0 for another allowed one, -10 for a forbidden one. The
    observation is the mask itself (as floats), so the optimum (2.0) is learnable.
    Episode End: Termination after the single step.
    """

    nvec = (4, 3)

    def __init__(self):
        self.observation_space = gym.spaces.Box(0.0, 1.0, (sum(self.nvec),), np.float32)
        self.action_space = gym.spaces.MultiDiscrete(self.nvec)
        self._mask = np.ones(sum(self.nvec), bool)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        parts = []
        for n in self.nvec:
            allowed = self.np_random.random(n) < 0.5
            allowed[self.np_random.integers(n)] = True  # at least one valid choice
            parts.append(allowed)
        self._mask = np.concatenate(parts)
        return self._mask.astype(np.float32), {"action_mask": self._mask.copy()}

    def step(self, action):
        reward, offset = 0.0, 0
        for n, choice in zip(self.nvec, np.asarray(action).ravel()):
            allowed = self._mask[offset:offset + n]
            if not allowed[int(choice)]:
                reward -= 10.0
            elif int(choice) == int(np.flatnonzero(allowed).max()):
                reward += 1.0
            offset += n
        return self._mask.astype(np.float32), reward, True, False, {"action_mask": self._mask.copy()}


PROBES = {"contextual": ContextualBandit, "chain": Chain, "masked": MaskedChoice}
OPTIMAL_RETURN = {"contextual": 1.0, "chain": 1.0, "masked": 2.0}


def make_probe(name: str) -> gym.Env:
    if name not in PROBES:
        raise ValueError(f"unknown probe env {name!r}: known are {sorted(PROBES)}")
    return PROBES[name]()
