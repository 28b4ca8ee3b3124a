"""Hand-computed values of PPO's clipped surrogate and of advantages on a mixed terminated /
truncated batch: each check fails if the clip's min becomes a max, or a truncation is treated
as a termination."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from bicimad.rl.core import CommonConfig, Run, linear_schedule
from bicimad.rl.ppo import clipped_surrogate_loss


def test_clipped_surrogate_matches_hand_computation():
    # clip 0.2; per sample min(r*A, clip(r)*A):
    #   r=0.5 A=+1: min(0.5, 0.8) = 0.5     (worse than before: not clipped)
    #   r=1.5 A=+1: min(1.5, 1.2) = 1.2     (too far in the favoured direction: clipped)
    #   r=1.5 A=-1: min(-1.5, -1.2) = -1.5  (not clipped)
    #   r=0.5 A=-1: min(-0.5, -0.8) = -0.8  (clipped)
    # objective mean = (0.5 + 1.2 - 1.5 - 0.8) / 4 = -0.15, loss = 0.15 (max instead: -0.15)
    ratio = torch.tensor([0.5, 1.5, 1.5, 0.5], requires_grad=True)
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss = clipped_surrogate_loss(ratio, advantages, 0.2)
    assert loss.item() == pytest.approx(0.15, abs=1e-6)
    loss.backward()
    # d loss / d r = -A/4 where not clipped, 0 where the clip holds the ratio
    torch.testing.assert_close(ratio.grad, torch.tensor([-0.25, 0.0, 0.25, 0.0]))


def test_surrogate_inside_the_clip_range_is_the_plain_ratio_objective():
    ratio = torch.tensor([0.9, 1.0, 1.1])
    advantages = torch.tensor([2.0, -1.0, 3.0])
    expected = -(0.9 * 2.0 - 1.0 + 1.1 * 3.0) / 3
    assert clipped_surrogate_loss(ratio, advantages, 0.2).item() == pytest.approx(expected, rel=1e-6)


class _Scripted(gym.Env):
    """Observation = steps taken in the episode; reward 1 a step; the episode ends after two
    steps, terminated or truncated as ``ending`` says."""

    def __init__(self, ending: str):
        self.ending = ending
        self.observation_space = gym.spaces.Box(0.0, 10.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self._t += 1
        end = self._t == 2
        return (np.array([float(self._t)], np.float32), 1.0,
                end and self.ending == "terminated", end and self.ending == "truncated", {})


class _KnownValue(nn.Module):
    """V(obs) = 10 + obs; always action 0."""

    def __init__(self, *_):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def get_value(self, obs):
        return 10.0 + obs[:, 0] + 0 * self.dummy

    def get_action_and_value(self, obs, action=None, mask=None):
        batch = obs.shape[0]
        action = torch.zeros((batch, 1), dtype=torch.int64) if action is None else action
        half = torch.full((batch,), np.log(0.5))
        return action, half, -half, self.get_value(obs)


def test_mixed_terminated_and_truncated_batch_gives_hand_computed_advantages(tmp_path):
    gamma, lam = 0.5, 0.5
    envs = gym.vector.SyncVectorEnv([lambda: _Scripted("terminated"), lambda: _Scripted("truncated")],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    config = CommonConfig(env_id="scripted", num_envs=2, num_steps=3, total_steps=6, gamma=gamma, gae_lambda=lam)
    run = Run("test", config, tmp_path, make_agent=_KnownValue, envs=envs, progress=False)
    optimizer = torch.optim.Adam(run.agent.parameters())
    run.restore(optimizer, linear_schedule(optimizer, 1, anneal=False), {}, resume=False)
    run.collect_rollout()
    advantages, returns = run.advantages()

    # Both envs see obs 0, 1 (episode ends with step 1, final obs 2), then 0 again; after the
    # rollout the obs is 1, so the last value is V(1) = 11. Values: 10, 11, 10.
    # Terminated env:  d2 = 1 + 0.5*11 - 10 = -3.5;  d1 = 1 - 11 = -10 (no bootstrap);
    #                  d0 = 1 + 0.5*11 - 10 = -3.5;  A0 = d0 + 0.25*d1 = -6.
    # Truncated env:   step 1's reward is bootstrapped with V(final obs 2) = 12: 1 + 0.5*12 = 7;
    #                  d1 = 7 - 11 = -4 (nothing flows back across the episode boundary);
    #                  A0 = -3.5 + 0.25*(-4) = -4.5.
    np.testing.assert_allclose(run.buffer.rewards.numpy(), [[1, 1], [1, 7], [1, 1]])
    np.testing.assert_allclose(run.buffer.dones.numpy(), [[0, 0], [1, 1], [0, 0]])
    np.testing.assert_allclose(advantages.numpy(), [[-6.0, -4.5], [-10.0, -4.0], [-3.5, -3.5]], rtol=1e-6)
    np.testing.assert_allclose(returns.numpy(), advantages.numpy() + [[10, 10], [11, 11], [10, 10]], rtol=1e-6)
    envs.close()
