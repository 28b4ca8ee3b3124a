"""Advantage actor-critic, synchronous (A2C; Mnih et al. 2016 without the asynchrony).

Short rollouts from several envs, n-step (GAE) advantages, and one gradient step per rollout on
the combined loss ``policy - ent_coef * entropy + vf_coef * value``. RMSprop with alpha 0.99 and
eps 1e-5 as in the reference implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bicimad.rl.agents import AgentFactory
from bicimad.rl.core import CommonConfig, Run, explained_variance, gradient_step, linear_schedule


@dataclass
class A2CConfig(CommonConfig):
    """A2C hyperparameters (defaults: the reference A2C's, 8 envs × 5 steps)."""

    num_envs: int = 8
    """parallel environments"""
    num_steps: int = 5
    """steps per environment in each rollout (the n of n-step returns)"""
    learning_rate: float = 7e-4
    """RMSprop learning rate"""
    gae_lambda: float = 1.0
    """1.0: plain n-step returns"""
    norm_adv: bool = False
    """normalise advantages per rollout"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    rmsprop_alpha: float = 0.99
    """RMSprop smoothing constant"""
    checkpoint_every: int = 500
    """write a checkpoint every this many iterations (and always at the end)"""


def train(config: A2CConfig, out_dir: str | Path, *, make_agent: AgentFactory | None = None, envs=None,
          resume: bool = False, stop_after_steps: int | None = None, progress: bool = True) -> Path:
    """Train (or continue) an A2C agent; same arguments as :func:`bicimad.rl.ppo.train`."""
    # -- setup: seeding, envs, agent, optimiser, storage, logger -----------------------------------
    run = Run("a2c", config, out_dir, make_agent=make_agent, envs=envs, progress=progress)
    agent, buf = run.agent, run.buffer
    optimizer = torch.optim.RMSprop(agent.parameters(), lr=config.learning_rate, alpha=config.rmsprop_alpha, eps=1e-5)
    scheduler = linear_schedule(optimizer, config.num_iterations, config.anneal_lr)
    extra: dict = {}
    run.restore(optimizer, scheduler, extra, resume)

    while run.running(stop_after_steps):
        # -- rollout ----------------------------------------------------------------------------------
        run.collect_rollout()

        # -- advantages -------------------------------------------------------------------------------
        advantages, returns = run.advantages()
        b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
        if config.norm_adv:
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)

        # -- optimisation: one step on the whole rollout ----------------------------------------------
        _, logprob, entropy, value = agent.get_action_and_value(buf.flat("obs"), buf.flat("actions"), buf.flat("masks"))
        pg_loss = -(b_advantages * logprob).mean()
        v_loss = ((value - b_returns) ** 2).mean()  # plain MSE, as the reference A2C (no 1/2)
        entropy_loss = entropy.mean()
        loss = pg_loss - config.ent_coef * entropy_loss + config.vf_coef * v_loss
        gradient_step(optimizer, loss, agent.parameters(), config.max_grad_norm)

        # -- logging and checkpoint -------------------------------------------------------------------
        run.end_iteration({
            "losses/value_loss": v_loss.item(),
            "losses/policy_loss": pg_loss.item(),
            "losses/entropy": entropy_loss.item(),
            "losses/explained_variance": explained_variance(buf.flat("values").numpy(), b_returns.numpy()),
        }, optimizer, scheduler, extra)

    return run.close(optimizer, scheduler, extra)
