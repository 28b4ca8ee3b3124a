"""Training the fleet policy: optional imitation of the OR-Tools planner, then PPO.

PPO starts from a policy whose logits already prefer valuable stops (the prior in
:class:`~bicimad.plan.policy.FleetAgent`). With ``imitation_days > 0`` it first clones the
OR-Tools planner's decisions (a warm start: cross-entropy on the planner's stops mapped to the
policy's candidates, on states the planner itself visits), so PPO fine-tunes a policy that
starts close to the optimiser instead of exploring from scratch. PPO itself is the generic core
(:mod:`bicimad.rl.ppo`) driving :class:`~bicimad.plan.fleet_env.FleetPlanningVectorEnv`, in
this process or, with ``workers > 0``, split over Ray actors
(:class:`~bicimad.plan.ray_envs.RayFleetVectorEnv`) while the learner stays here; the same seed
gives the same policy either way. One exception, with ``imitation_days > 0``: the OR-Tools
planner's search also stops at a wall-clock limit (``time_limit_s``), and a solve that reaches
it (a slow or busy machine or worker) may return another plan, so the demonstrations, and the
policy after them, are the same for the same seed only where no solve hits that limit, in this
process as on workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bicimad.plan.fleet_env import FleetPlanningVectorEnv
from bicimad.plan.policy import FleetAgent, ObservationConfig, save_policy
from bicimad.sim.seeds import derive_seed

#: Seed key of the demonstrations' rider draws: other days than PPO's (its copies are seeded seed + i).
IMITATION_STREAM = 1


@dataclass
class TrainingConfig:
    """What ``bicimad train-agent`` trains with (written into the model card)."""

    seed: int = 0                   #: seeds torch, numpy and the simulated riders
    total_steps: int = 20_000       #: PPO env steps (fleet-hours summed over the envs)
    num_envs: int = 8               #: simulated cities stepped in lockstep
    learning_rate: float = 3e-4     #: Adam learning rate (annealed to 0)
    gamma: float = 0.9              #: discount per hour
    ent_coef: float = 0.01          #: entropy bonus
    imitation_days: int = 0         #: days of OR-Tools demonstrations per env before PPO (0: none)
    imitation_epochs: int = 100     #: passes over the demonstrations
    torch_threads: int = 1          #: small networks on a shared machine: one thread is fastest
    workers: int = 0                #: Ray actors the envs are split over (0: envs in this process)
    ray_address: str | None = None  #: Ray cluster of the workers (None: a fresh local one)
    observation: ObservationConfig = field(default_factory=ObservationConfig)


def fleet_envs(scenario, network, days, config: TrainingConfig):
    """The vector env PPO trains on: in this process (``config.workers`` 0) or split over that
    many Ray workers; the caller closes it."""
    if config.workers < 0:
        raise ValueError(f"workers must be >= 0 (0: the envs in this process), got {config.workers}")
    if config.workers == 0:
        if config.ray_address is not None:
            raise ValueError(f"ray_address {config.ray_address!r} needs workers >= 1")
        return FleetPlanningVectorEnv(scenario, network, days, num_envs=config.num_envs, config=config.observation)
    from bicimad.plan.ray_envs import RayFleetVectorEnv

    return RayFleetVectorEnv(scenario, network, days, num_envs=config.num_envs, config=config.observation,
                             workers=config.workers, ray_address=config.ray_address)


def demonstrations(envs, planner, days: int, seed: int):
    """(features, masks, actions) of ``planner`` driving ``envs`` (a fleet vector env, in process
    or on Ray) for ``days`` episodes."""
    features, masks, actions = [], [], []
    obs, info = envs.reset(seed=seed)
    for _ in range(days * envs.day_hours):
        step_actions = envs.planner_actions(planner)
        features.append(obs)
        masks.append(info["action_mask"])
        actions.append(step_actions)
        obs, _, _, _, info = envs.step(step_actions)
    return np.concatenate(features), np.concatenate(masks), np.concatenate(actions)


def behaviour_clone(agent: FleetAgent, features, masks, actions, epochs: int, seed: int,
                    lr: float = 3e-3, batch: int = 64) -> list[float]:
    """Fit the policy to demonstrated actions (cross-entropy); returns the loss per epoch."""
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(agent.parameters(), lr=lr)
    x, m, a = (torch.as_tensor(v) for v in (features, masks, actions))
    # Demonstrated choices the mask forbids (rare: a stop the planner makes after loading
    # elsewhere) are allowed, so the loss is finite.
    k = a.shape[1]
    width = m.shape[1] // k
    m = m.clone().reshape(len(m), k, width)
    m.scatter_(2, a[:, :, None], True)
    m = m.reshape(len(m), -1)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = torch.as_tensor(order[start:start + batch])
            _, logprob, _, _ = agent.get_action_and_value(x[idx], a[idx], m[idx])
            loss = -logprob.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
    return losses


def train_fleet_policy(scenario, network, days, config: TrainingConfig, out_dir: str | Path,
                       progress: bool = True) -> dict:
    """Train a fleet policy on ``days`` (pairs of truth demand and forecast); saves it in
    ``out_dir`` (policy files) with PPO's metrics and checkpoint in ``out_dir/ppo``. The envs
    (and Ray workers, if any) are closed at the end, also when training fails."""
    out_dir = Path(out_dir)
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    envs = fleet_envs(scenario, network, days, config)
    try:
        return _train(envs, scenario, config, out_dir, progress)
    finally:
        envs.close()


def _train(envs, scenario, config: TrainingConfig, out_dir: Path, progress: bool) -> dict:
    from bicimad.rl.ppo import PPOConfig, train

    agent = FleetAgent(config.observation)
    report: dict = {}
    t0 = time.perf_counter()
    if config.imitation_days > 0:
        from bicimad.plan.ortools_planner import ORToolsPlanner

        demo = demonstrations(envs, ORToolsPlanner(), config.imitation_days,
                              derive_seed(config.seed, IMITATION_STREAM))
        losses = behaviour_clone(agent, *demo, epochs=config.imitation_epochs, seed=config.seed)
        report["imitation"] = {"samples": int(len(demo[0])), "loss_first": losses[0], "loss_last": losses[-1],
                               "wall_s": time.perf_counter() - t0}

    ppo = PPOConfig(env_id=f"fleet/{scenario.name}", seed=config.seed, total_steps=config.total_steps,
                    num_envs=config.num_envs, num_steps=envs.day_hours, learning_rate=config.learning_rate,
                    torch_threads=config.torch_threads,
                    gamma=config.gamma, ent_coef=config.ent_coef, num_minibatches=4, update_epochs=4)
    t1 = time.perf_counter()
    if config.total_steps > 0:
        # The core seeds torch again and builds the agent through this factory: hand it ours.
        train(ppo, out_dir / "ppo", make_agent=lambda obs_space, action_space: agent, envs=envs, progress=progress)
    report["ppo"] = {"steps": config.total_steps, "iterations": ppo.num_iterations if config.total_steps else 0,
                     "wall_s": time.perf_counter() - t1}
    save_policy(agent, out_dir)
    return report
