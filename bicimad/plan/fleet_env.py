"""``bicimad/FleetPlanning-v0``: the simulator as the fleet policy's env, one step per hour.

:class:`FleetPlanningEnv` (one city) and :class:`FleetPlanningVectorEnv` (``num_envs`` copies
stepped in lockstep, its ``vector_entry_point``) share one implementation (:class:`_FleetDays`),
so they cannot disagree. This is the env PPO trains on (:mod:`bicimad.plan.training`); the
minute-level ``bicimad/Rebalance-v0`` (:mod:`bicimad.sim.env`) is the one for planners and
external agents that move trucks slot by slot.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from bicimad.plan.policy import FEATURES, ObservationConfig, decode, observe
from bicimad.plan.targets import expected_events
from bicimad.sim.core import FleetSim
from bicimad.sim.env import resolve_scenario, scenario_inputs, slot_reward
from bicimad.sim.interface import FleetView
from bicimad.sim.network import Network
from bicimad.sim.scenario import Scenario
from bicimad.sim.seeds import child_rngs

_DOC = """
    ## Description
    A day of a BiciMAD-like bike-share network (the simulator of :mod:`bicimad.sim.core`) seen
    an hour at a time by a fleet policy. Each hour every truck looks at ``candidates`` stations
    within its radius (half to load at, half to unload at, while both kinds last; see
    :mod:`bicimad.plan.policy`) and picks, for each of its ``visits_per_hour`` visit slots, one
    of them or "no visit". A chosen station is moved towards its forecast target as far as the
    truck's load or room allows (:func:`bicimad.plan.policy.decode`), so every plan keeps the
    fleet limits. The policy is trained on exactly what the ``ppo`` planner later sees and does
    through :func:`bicimad.sim.rollout.run_episode`.

    ## Action Space
    ``MultiDiscrete([candidates + 1] * (k * visits_per_hour))`` for ``k`` trucks, truck-major:
    component ``truck * visits_per_hour + slot`` is a candidate index or ``candidates`` for "no
    visit". ``info["action_mask"]`` (same layout, ``candidates + 1`` booleans per component)
    rules out padding candidates and, in the first slot, moves the truck cannot make (unloading
    an empty truck, loading a full one). A masked choice is skipped, never an error.

    ## Observation Space
    ``Box(-inf, inf, (k * candidates * 15,), float32)``: per truck, per candidate (best first),
    the 15 features of :data:`bicimad.plan.policy.FEATURES`; flat index
    ``(truck * candidates + candidate) * 15 + feature``. Padding candidates are all zeros.

    | feature | meaning | scale |
    |---------|---------|-------|
    | fill | docked bikes / capacity | 0-1 |
    | target_fill | forecast target inventory / capacity | 0-1 |
    | gap | (bikes - target) / truck capacity, clipped | -1-1 |
    | value_full | expected events the full move to target avoids (capped by truck capacity) | events |
    | value_now | the same for the move the truck can make now (its load, its room) | events |
    | distance | road km from the truck's station / the scenario's ``fleet.radius_km`` | >= 0 |
    | net_next_hour | forecast returns - pickups in the next hour / capacity | any |
    | net_horizon | the same over the forecast horizon / capacity | any |
    | risk_now | expected lost pickups + diverted returns at the current inventory | events |
    | capacity | docks / the scenario's ``episode.capacity_scale`` | >= 0 |
    | truck_load | truck load / truck capacity | 0-1 |
    | hour_sin, hour_cos | time of day | -1-1 |
    | here | the candidate is the truck's own station | 0 or 1 |
    | valid | a real candidate (0: padding) | 0 or 1 |

    ## Rewards
    ``reward_scale`` (0.01) times the simulator's slot rewards summed over the hour: minus the
    weighted counts of the scenario's ``[reward]`` (problem station-hours 1.0, lost trips 0.2,
    diverted returns 0.1, truck km 0.01), so a day's undiscounted return is minus
    ``reward_scale`` times its weighted cost.

    ## Starting State
    Docked bikes from the network (a snapshot, or the synthetic network's draw); trucks at their
    bases holding ``fleet.initial_load`` bikes. Each episode takes one of ``days`` (pairs of
    truth demand and forecast) at random and draws each city's riders from its own generator,
    all seeded from ``reset(seed=...)``.

    ## Episode End
    1. Truncation: the day is over (``episode.hours`` steps, the demand's hours; 24 by default).
    There is no termination: the city goes on after the day, so the value of the final state is
    bootstrapped. At the end, the day's return, length and problem share are in
    ``info["episode"]`` (``r``, ``l``, ``problem_share``; the vector env puts them in
    ``info["final_info"]["episode"]``, and PPO logs the share as ``episode/problem_share``).

    ## Arguments
    ``gymnasium.make("bicimad/FleetPlanning-v0", scenario=None, network=None, days=None,
    config=None, reward_scale=0.01)``: ``scenario`` a :class:`~bicimad.sim.scenario.Scenario`,
    a TOML path or a bundled name (default: the synthetic default); ``network`` a
    :class:`~bicimad.sim.network.Network`; ``days`` a list of ``(truth, forecast)`` pairs
    (truth: a ``Demand`` or ``TripReplay``; forecast: the ``Demand`` the policy sees, None:
    the truth rates); ``network`` and ``days`` default to the synthetic scenario's city and its
    weekday demand. ``config`` the :class:`~bicimad.plan.policy.ObservationConfig` (candidates,
    horizon). ``gymnasium.make_vec(..., num_envs=8, vectorization_mode="vector_entry_point")``
    builds :class:`FleetPlanningVectorEnv`, which autoresets in ``SAME_STEP`` mode: the step
    that ends a day returns the next day's first observation, with the final one in
    ``info["final_obs"]``.

    ## Version History
    * v0: initial version.
"""


class _FleetDays:
    """What both envs share: one :class:`FleetSim` per day with ``num_envs`` copies, the views
    and observations of the current hour, and stepping an hour of decoded plans."""

    def _setup(self, scenario, network, days, num_envs: int, config, reward_scale: float) -> None:
        scenario = resolve_scenario(scenario)
        if days is None:
            network, truth = scenario_inputs(scenario, network)
            days = [(truth, None)]
        elif network is None:
            network, _ = scenario_inputs(scenario)
        if not days:
            raise ValueError("FleetPlanningVectorEnv needs at least one (truth, forecast) day")
        self.scenario, self.network, self.days = scenario, network, list(days)
        self.config = config or ObservationConfig(visits_per_hour=scenario.fleet.visits_per_hour)
        self.reward_scale = reward_scale
        self.sims = [FleetSim(network, scenario, truth, n_envs=num_envs, forecast=forecast)
                     for truth, forecast in self.days]
        k, c, v = scenario.fleet.trucks, self.config.candidates, scenario.fleet.visits_per_hour
        self._obs_space = gym.spaces.Box(-np.inf, np.inf, (k * c * len(FEATURES),), np.float32)
        self._act_space = gym.spaces.MultiDiscrete(np.full(k * v, c + 1, dtype=np.int64))
        self.sim = self.sims[0]
        self._copies = int(num_envs)
        self._views: list[FleetView] = []
        self._obs: list = []
        self._return = np.zeros(self._copies)
        self._length = 0

    def _view(self, env: int) -> FleetView:
        view = self.sim.fleet_view(env, self.config.horizon_hours)
        if view.pickup_rate.shape[0] == 0:  # past the last hour: a neutral one-hour forecast
            zeros = np.zeros((1, view.n_stations))
            view = dataclasses.replace(view, pickup_rate=zeros, return_rate=zeros)
        return view

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        """(features, mask) of every copy now, one row each."""
        self._views = [self._view(e) for e in range(self._copies)]
        # Same forecast and hour in every copy: the expected events are computed once.
        first = self._views[0]
        hours = max(1, min(self.config.horizon_hours, first.pickup_rate.shape[0]))
        events = expected_events(first.capacity, first.pickup_rate[:hours], first.return_rate[:hours])
        self._obs = [observe(view, self.config, events) for view in self._views]
        features = np.stack([o.features.reshape(-1) for o in self._obs])
        mask = np.stack([o.mask for o in self._obs])
        return features, mask

    def _start_episode(self, rng: np.random.Generator) -> None:
        """A day drawn from ``rng``, each copy's riders from its own generator drawn from it."""
        self.sim = self.sims[int(rng.integers(len(self.sims)))]
        self.sim.reset(child_rngs(rng, self._copies))
        self._return[:] = 0.0
        self._length = 0

    def _run_hour(self, actions) -> np.ndarray:
        """Decode each copy's action into a plan, run the hour's slots; the scaled reward per copy."""
        actions = np.asarray(actions, dtype=np.int64).reshape(self._copies, -1)
        plans = [decode(view, obs, action) for view, obs, action in zip(self._views, self._obs, actions)]
        sim, k = self.sim, self.scenario.fleet.trucks
        reward = np.zeros(self._copies)
        for slot in range(sim.vph):
            station = np.full((self._copies, k), -1, np.int64)
            take = np.zeros((self._copies, k), np.int64)
            for e, plan in enumerate(plans):
                for truck, route in enumerate(plan):
                    if slot < len(route):
                        station[e, truck], take[e, truck] = route[slot].station, route[slot].bikes
            reward += slot_reward(sim, sim.step(station, take=take))
        reward *= self.reward_scale
        self._return += reward
        self._length += 1
        return reward

    def _episode_stats(self) -> dict[str, np.ndarray]:
        """The ended day's return, length and problem share per copy."""
        shares = [self.sim.summary(e)["problem_share"] for e in range(self._copies)]
        return {"r": self._return.copy(), "l": np.full(self._copies, self._length),
                "problem_share": np.array(shares)}


class FleetPlanningEnv(_FleetDays, gym.Env):
    __doc__ = "One simulated city stepped an hour at a time by fleet-policy actions.\n" + _DOC

    metadata = {"render_modes": []}

    def __init__(self, scenario: Scenario | str | None = None, network: Network | None = None,
                 days: list[tuple[object, object]] | None = None, config: ObservationConfig | None = None,
                 reward_scale: float = 0.01, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError("the fleet planning env does not render")
        self.render_mode = None
        self._setup(scenario, network, days, 1, config, reward_scale)
        self.observation_space, self.action_space = self._obs_space, self._act_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._start_episode(self.np_random)
        features, mask = self._observe()
        return features[0], {"action_mask": mask[0]}

    def step(self, action):
        reward = float(self._run_hour(np.asarray(action)[None])[0])
        truncated = self.sim.done
        features, mask = self._observe()
        info: dict[str, Any] = {"action_mask": mask[0]}
        if truncated:
            info["episode"] = {key: value[0] for key, value in self._episode_stats().items()}
        return features[0], reward, False, truncated, info


class FleetPlanningVectorEnv(_FleetDays, gym.vector.VectorEnv):
    __doc__ = ("``num_envs`` simulated cities stepped in lockstep, an hour at a time (the simulator's "
               "own vectorisation: one FleetSim per day with a leading env axis).\n" + _DOC)

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, scenario: Scenario | str | None = None, network: Network | None = None,
                 days: list[tuple[object, object]] | None = None, num_envs: int = 8,
                 config: ObservationConfig | None = None, reward_scale: float = 0.01,
                 render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError("the fleet planning env does not render")
        self.render_mode = None
        self._setup(scenario, network, days, num_envs, config, reward_scale)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = self._obs_space, self._act_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed if isinstance(seed, int) else list(seed))
        self._start_episode(self._rng)
        features, mask = self._observe()
        return features, {"action_mask": mask}

    def step(self, actions):
        reward = self._run_hour(actions)
        sim = self.sim
        truncated = np.full(self.num_envs, sim.done)
        terminated = np.zeros(self.num_envs, dtype=bool)
        features, mask = self._observe()
        infos: dict = {"action_mask": mask}
        if sim.done:
            infos["final_obs"] = features
            infos["final_info"] = {"episode": self._episode_stats(), "_episode": np.ones(self.num_envs, dtype=bool)}
            self._start_episode(self._rng)
            features, infos["action_mask"] = self._observe()
        return features, reward.astype(np.float32), terminated, truncated, infos
