"""Proximal Policy Optimisation (Schulman et al. 2017), clipped objective or adaptive KL penalty.

Follows the known implementation details: vectorised envs, orthogonal init, Adam with eps 1e-5,
linear LR annealing, GAE, shuffled minibatches over several epochs, advantage normalisation per
minibatch, clipped value loss, entropy bonus, global gradient clipping; logs approx_kl
(the low-variance ``(r - 1) - log r`` estimator), clipfrac and explained variance.
``kl_penalty=True`` replaces the clip by the TRPO-style penalty ``beta * KL`` with beta adapted
after each iteration towards ``kl_target`` (the PPO paper's second variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bicimad.rl.agents import AgentFactory
from bicimad.rl.core import CommonConfig, Run, explained_variance, gradient_step, linear_schedule


@dataclass
class PPOConfig(CommonConfig):
    """PPO hyperparameters (defaults: CleanRL's ppo.py for classic control)."""

    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """passes over each rollout"""
    clip_coef: float = 0.2
    """policy ratio clip range"""
    anneal_clip: bool = False
    """decay clip_coef linearly to zero over the run, as the learning rate (SB3's clip schedule)"""
    clip_vloss: bool = True
    """clip the value update to clip_coef around the rollout's values"""
    target_kl: float | None = None
    """stop the epochs early when approx_kl exceeds this (None: never)"""
    kl_penalty: bool = False
    """use the adaptive KL penalty instead of the clipped objective"""
    kl_beta: float = 1.0
    """initial KL penalty coefficient (kl_penalty only)"""
    kl_target: float = 0.01
    """KL the penalty aims for; beta doubles above 1.5x it, halves below 1/1.5 of it"""


def clipped_surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """The negated clipped surrogate objective, ``-mean(min(r A, clip(r, 1-eps, 1+eps) A))``.

    The min makes it a pessimistic bound: moving the ratio outside ``[1-eps, 1+eps]`` in the
    direction the advantage favours earns nothing (zero gradient), while moves that make the
    objective worse are never clipped.
    """
    clipped = ratio.clamp(1 - clip_coef, 1 + clip_coef)
    return -torch.min(advantages * ratio, advantages * clipped).mean()


def _minibatch_loss(config: PPOConfig, agent, batch: dict, mb, clip: float, kl_beta: float):
    """PPO's loss on minibatch ``mb`` of the flat ``batch``: (loss, (policy, value, entropy)
    terms, ratio, log ratio)."""
    masks = batch["masks"]
    _, newlogprob, entropy, newvalue = agent.get_action_and_value(
        batch["obs"][mb], batch["actions"][mb], None if masks is None else masks[mb])
    logratio = newlogprob - batch["logprobs"][mb]
    ratio = logratio.exp()
    mb_adv = batch["advantages"][mb]
    if config.norm_adv and len(mb) > 1:
        mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
    if config.kl_penalty:
        pg_loss = -(ratio * mb_adv).mean() + kl_beta * ((ratio - 1) - logratio).mean()
    else:
        pg_loss = clipped_surrogate_loss(ratio, mb_adv, clip)
    values, returns = batch["values"][mb], batch["returns"][mb]
    if config.clip_vloss:
        v_clipped = values + (newvalue - values).clamp(-clip, clip)
        v_loss = 0.5 * torch.max((newvalue - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((newvalue - returns) ** 2).mean()
    entropy_loss = entropy.mean()
    loss = pg_loss - config.ent_coef * entropy_loss + config.vf_coef * v_loss
    return loss, (pg_loss, v_loss, entropy_loss), ratio, logratio


def train(config: PPOConfig, out_dir: str | Path, *, make_agent: AgentFactory | None = None, envs=None,
          resume: bool = False, stop_after_steps: int | None = None, progress: bool = True) -> Path:
    """Train (or, with ``resume``, continue training) a PPO agent; artefacts go to ``out_dir``.

    ``make_agent(obs_space, action_space)`` builds the policy (default: MLP or Nature CNN);
    ``envs`` replaces the vector env built from ``config.env_id``; ``stop_after_steps`` ends this
    call early with a checkpoint, to be continued with ``resume=True``.
    """
    # -- setup: seeding, envs, agent, optimiser, storage, logger -----------------------------------
    run = Run("ppo", config, out_dir, make_agent=make_agent, envs=envs, progress=progress)
    agent, buf = run.agent, run.buffer
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5,
                                 fused=True)  # one kernel for all parameters
    scheduler = linear_schedule(optimizer, config.num_iterations, config.anneal_lr)
    extra = {"kl_beta": config.kl_beta}
    run.restore(optimizer, scheduler, extra, resume)
    minibatch_size = config.batch_size // config.num_minibatches

    while run.running(stop_after_steps):
        # -- rollout ----------------------------------------------------------------------------------
        run.collect_rollout()

        # -- advantages -------------------------------------------------------------------------------
        advantages, returns = run.advantages()
        batch = {"obs": buf.flat("obs"), "actions": buf.flat("actions"), "masks": buf.flat("masks"),
                 "logprobs": buf.flat("logprobs"), "values": buf.flat("values"),
                 "advantages": advantages.reshape(-1), "returns": returns.reshape(-1)}

        # -- optimisation: epochs of shuffled minibatches ---------------------------------------------
        clip = config.clip_coef * (1.0 - run.iteration / config.num_iterations if config.anneal_clip else 1.0)
        clipfracs, approx_kls = [], []
        first_ratio = None
        for _epoch in range(config.update_epochs):
            order = torch.randperm(config.batch_size)
            for start in range(0, config.batch_size, minibatch_size):
                mb = order[start:start + minibatch_size]
                loss, terms, ratio, logratio = _minibatch_loss(config, agent, batch, mb, clip, extra["kl_beta"])
                pg_loss, v_loss, entropy_loss = terms
                if first_ratio is None:
                    first_ratio = ratio.detach()  # policy unchanged yet: must be 1
                with torch.no_grad():  # kept as tensors: one conversion per iteration, not per minibatch
                    approx_kl = ((ratio - 1) - logratio).mean()
                    approx_kls.append(approx_kl)
                    clipfracs.append(((ratio - 1.0).abs() > clip).float().mean())
                gradient_step(optimizer, loss, agent.parameters(), config.max_grad_norm)

            if config.target_kl is not None and approx_kl.item() > config.target_kl:
                break

        mean_kl = float(torch.stack(approx_kls).mean())
        if config.kl_penalty:  # adapt beta towards the target KL
            if mean_kl > 1.5 * config.kl_target:
                extra["kl_beta"] *= 2.0
            elif mean_kl < config.kl_target / 1.5:
                extra["kl_beta"] /= 2.0

        # -- logging and checkpoint -------------------------------------------------------------------
        run.end_iteration({
            "losses/value_loss": v_loss.item(),
            "losses/policy_loss": pg_loss.item(),
            "losses/entropy": entropy_loss.item(),
            "losses/approx_kl": mean_kl,
            "losses/clipfrac": float(torch.stack(clipfracs).mean()),
            "losses/explained_variance": explained_variance(batch["values"].numpy(), batch["returns"].numpy()),
            "losses/first_ratio_max_dev": float((first_ratio - 1).abs().max()),
            "charts/kl_beta": extra["kl_beta"],
            "charts/clip_range": clip,
        }, optimizer, scheduler, extra)

    return run.close(optimizer, scheduler, extra)
