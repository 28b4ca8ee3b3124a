"""REINFORCE with a learnt baseline (Williams 1992; Sutton & Barto §13.4).

Monte Carlo returns (``gae_lambda = 1``) of long rollouts weight the log-probability of each
action, minus the value baseline ``V(s)``, which is regressed on the same returns. One gradient
step per rollout. Where a rollout cuts an episode (its last step, or a truncation) the tail is
bootstrapped with ``V``, which is the only departure from the textbook's complete episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bicimad.rl.agents import AgentFactory
from bicimad.rl.core import CommonConfig, Run, explained_variance, gradient_step, linear_schedule


@dataclass
class ReinforceConfig(CommonConfig):
    """REINFORCE hyperparameters."""

    num_envs: int = 4
    """parallel environments"""
    num_steps: int = 128
    """steps per environment in each rollout (long, so most returns are true Monte Carlo)"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    gae_lambda: float = 1.0
    """Monte Carlo returns; lower values turn this into an actor-critic"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """baseline (value) loss coefficient"""
    checkpoint_every: int = 50
    """write a checkpoint every this many iterations (and always at the end)"""


def train(config: ReinforceConfig, out_dir: str | Path, *, make_agent: AgentFactory | None = None, envs=None,
          resume: bool = False, stop_after_steps: int | None = None, progress: bool = True) -> Path:
    """Train (or continue) a REINFORCE agent; same arguments as :func:`bicimad.rl.ppo.train`."""
    # -- setup: seeding, envs, agent, optimiser, storage, logger -----------------------------------
    run = Run("reinforce", config, out_dir, make_agent=make_agent, envs=envs, progress=progress)
    agent, buf = run.agent, run.buffer
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5,
                                 fused=True)  # one kernel for all parameters
    scheduler = linear_schedule(optimizer, config.num_iterations, config.anneal_lr)
    extra: dict = {}
    run.restore(optimizer, scheduler, extra, resume)

    while run.running(stop_after_steps):
        # -- rollout ----------------------------------------------------------------------------------
        run.collect_rollout()

        # -- returns and baseline ---------------------------------------------------------------------
        advantages, returns = run.advantages()  # advantage = G_t - V(s_t) with lambda = 1
        b_advantages, b_returns = advantages.reshape(-1), returns.reshape(-1)
        if config.norm_adv:
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)

        # -- optimisation: one policy-gradient step, baseline regressed on the returns ----------------
        _, logprob, entropy, value = agent.get_action_and_value(buf.flat("obs"), buf.flat("actions"), buf.flat("masks"))
        pg_loss = -(b_advantages * logprob).mean()
        baseline_loss = ((value - b_returns) ** 2).mean()
        entropy_loss = entropy.mean()
        loss = pg_loss - config.ent_coef * entropy_loss + config.vf_coef * baseline_loss
        gradient_step(optimizer, loss, agent.parameters(), config.max_grad_norm)

        # -- logging and checkpoint -------------------------------------------------------------------
        run.end_iteration({
            "losses/value_loss": baseline_loss.item(),
            "losses/policy_loss": pg_loss.item(),
            "losses/entropy": entropy_loss.item(),
            "losses/explained_variance": explained_variance(buf.flat("values").numpy(), b_returns.numpy()),
        }, optimizer, scheduler, extra)

    return run.close(optimizer, scheduler, extra)
