"""The simulator as a vector env for the fleet policy: one step is one hour of the whole fleet.

``FleetPlanningVectorEnv`` runs ``num_envs`` copies of one :class:`~bicimad.sim.core.FleetSim`
in lockstep (the simulator's own vectorisation). Each step it builds every copy's
:class:`~bicimad.sim.interface.FleetView`, turns it into the policy's observation
(:func:`bicimad.plan.policy.observe`), decodes the actions into plans (:func:`decode`) and runs
the hour's visit slots. So the policy is trained on exactly what the ``ppo`` planner later sees
and does through ``run_episode``.

=================  ==========================================================================
Observation        ``Box(k * candidates * len(FEATURES))`` float32: per truck, its candidate
                   stations' features (see :mod:`bicimad.plan.policy`)
Action             ``MultiDiscrete([candidates + 1] * (k * visits_per_hour))``: per truck and
                   visit slot, a candidate or "no visit"; ``info["action_mask"]`` masks them
Reward             ``reward_scale`` x the simulator's slot reward summed over the hour:
                   minus (problem station-hours + 0.2 lost trips + 0.1 diverted returns +
                   0.01 truck km) with the scenario's weights
Episode end        Truncation after the demand's hours (a day): the day ends, the city
                   does not, so the value of the final state is bootstrapped
=================  ==========================================================================

Every episode starts from the network's bikes; each copy's riders come from its own generator,
seeded from ``reset(seed=...)``. With several ``days`` (pairs of truth demand and forecast),
each episode takes the next day in a seeded random order, so the policy meets varied demand.
Autoreset is ``SAME_STEP``: the final observation is in ``info["final_obs"]``, and each ended
day's return, length and problem share in ``info["final_info"]["episode"]`` (``r``, ``l``,
``problem_share``; PPO logs the share as ``episode/problem_share``).
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from bicimad.plan.policy import FEATURES, ObservationConfig, decode, observe
from bicimad.plan.targets import expected_events
from bicimad.sim.core import FleetSim
from bicimad.sim.env import slot_reward
from bicimad.sim.interface import FleetView
from bicimad.sim.network import Network
from bicimad.sim.scenario import Scenario


class FleetPlanningVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` simulated cities stepped an hour at a time by fleet-policy actions."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, scenario: Scenario, network: Network, days: list[tuple[object, object]],
                 num_envs: int = 8, config: ObservationConfig | None = None, reward_scale: float = 0.01):
        if not days:
            raise ValueError("FleetPlanningVectorEnv needs at least one (truth, forecast) day")
        self.scenario, self.network, self.days = scenario, network, list(days)
        self.config = config or ObservationConfig(visits_per_hour=scenario.fleet.visits_per_hour)
        self.num_envs, self.reward_scale = int(num_envs), reward_scale
        self.sims = [FleetSim(network, scenario, truth, n_envs=self.num_envs, forecast=forecast)
                     for truth, forecast in self.days]
        k, c, v = scenario.fleet.trucks, self.config.candidates, scenario.fleet.visits_per_hour
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (k * c * len(FEATURES),), np.float32)
        self.single_action_space = gym.spaces.MultiDiscrete(np.full(k * v, c + 1, dtype=np.int64))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.sim = self.sims[0]
        self._obs: list = []
        self._return = np.zeros(self.num_envs)
        self._length = 0
        self._rng = np.random.default_rng()

    # -- helpers -----------------------------------------------------------------------------------
    def _view(self, env: int) -> FleetView:
        view = self.sim.fleet_view(env, self.config.horizon_hours)
        if view.pickup_rate.shape[0] == 0:  # past the last hour: a neutral one-hour forecast
            zeros = np.zeros((1, view.n_stations))
            view = dataclasses.replace(view, pickup_rate=zeros, return_rate=zeros)
        return view

    def _observe(self):
        self._views = [self._view(e) for e in range(self.num_envs)]
        # Same forecast and hour in every copy: the expected events are computed once.
        first = self._views[0]
        hours = max(1, min(self.config.horizon_hours, first.pickup_rate.shape[0]))
        events = expected_events(first.capacity, first.pickup_rate[:hours], first.return_rate[:hours])
        self._obs = [observe(view, self.config, events) for view in self._views]
        features = np.stack([o.features.reshape(-1) for o in self._obs])
        mask = np.stack([o.mask for o in self._obs])
        return features, mask

    def _start_episode(self) -> None:
        self.sim = self.sims[int(self._rng.integers(len(self.sims)))]
        seeds = self._rng.integers(2**63, size=self.num_envs)
        self.sim.reset([np.random.default_rng(int(s)) for s in seeds])
        self._return[:] = 0.0
        self._length = 0

    # -- gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed if isinstance(seed, int) else list(seed))
        self._start_episode()
        features, mask = self._observe()
        return features, {"action_mask": mask}

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1)
        plans = [decode(view, obs, action) for view, obs, action in zip(self._views, self._obs, actions)]
        sim, k = self.sim, self.scenario.fleet.trucks
        reward = np.zeros(self.num_envs)
        for slot in range(sim.vph):
            station = np.full((self.num_envs, k), -1, np.int64)
            take = np.zeros((self.num_envs, k), np.int64)
            for e, plan in enumerate(plans):
                for truck, route in enumerate(plan):
                    if slot < len(route):
                        station[e, truck], take[e, truck] = route[slot].station, route[slot].bikes
            reward += slot_reward(sim, sim.step(station, take=take))
        reward *= self.reward_scale
        self._return += reward
        self._length += 1

        truncated = np.full(self.num_envs, sim.done)
        terminated = np.zeros(self.num_envs, dtype=bool)
        features, mask = self._observe()
        infos: dict = {"action_mask": mask}
        if sim.done:
            summaries = [sim.summary(e) for e in range(self.num_envs)]
            infos["final_obs"] = features
            infos["final_info"] = {
                "episode": {"r": self._return.copy(), "l": np.full(self.num_envs, self._length),
                            "problem_share": np.array([s["problem_share"] for s in summaries])},
                "_episode": np.ones(self.num_envs, dtype=bool),
            }
            self._start_episode()
            features, infos["action_mask"] = self._observe()
        return features, reward.astype(np.float32), terminated, truncated, infos
