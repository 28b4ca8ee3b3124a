"""``bicimad/FleetPlanning-v0``: the simulator as the fleet policy's env, one step per hour.

:class:`FleetPlanningEnv` (one city) and :class:`FleetPlanningVectorEnv` (``num_envs`` copies
stepped in lockstep, its ``vector_entry_point``) share one implementation (:class:`_FleetDays`),
so they cannot disagree. This is the env PPO trains on (:mod:`bicimad.plan.training`), in
this process or split over Ray workers (:mod:`bicimad.plan.ray_envs`, which builds on the
``copies`` reset option); the minute-level ``bicimad/Rebalance-v0`` (:mod:`bicimad.sim.env`) is
the one for planners and external agents that move trucks slot by slot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from bicimad.plan.policy import FEATURES, ObservationConfig, decode, observe, plan_to_action
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
    all seeded from ``reset(seed=...)``. The vector env gives copy ``i`` its own generator,
    seeded ``s + i`` for ``reset(seed=s)`` (or ``seed[i]`` for a list; gymnasium's convention),
    and draws the day all copies replay from a generator of its own, seeded by all the copies'
    seeds: so a copy's riders do not depend on how many copies run beside it or where, and with
    one day copy ``i`` meets the riders of the scalar env reset with seed ``s + i``.

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
    ``info["final_obs"]``. Its ``reset(seed=seeds, options={"copies": range(a, b)})`` makes its
    ``b - a`` copies copies ``a..b-1`` of a vector env reset with ``seeds`` (one per copy of that
    whole env): how :class:`~bicimad.plan.ray_envs.RayFleetVectorEnv` splits one vector env over
    workers and still draws what this one draws.

    ## Version History
    * v0: initial version.
"""


def fleet_inputs(scenario: Scenario | str | None, network: Network | None,
                 days: list[tuple[object, object]] | None) -> tuple[Scenario, Network, list[tuple[object, object]]]:
    """(scenario, network, days) of the envs' arguments, defaults filled in (see Arguments)."""
    scenario = resolve_scenario(scenario)
    if days is None:
        network, truth = scenario_inputs(scenario, network)
        days = [(truth, None)]
    elif network is None:
        network, _ = scenario_inputs(scenario)
    if not days:
        raise ValueError("FleetPlanningVectorEnv needs at least one (truth, forecast) day")
    return scenario, network, list(days)


class _FleetDays:
    """What both envs share: one :class:`FleetSim` per day with ``num_envs`` copies, the views
    and observations of the current hour, and stepping an hour of decoded plans."""

    def _setup(self, scenario, network, days, num_envs: int, config, reward_scale: float) -> None:
        scenario, network, days = fleet_inputs(scenario, network, days)
        self.scenario, self.network, self.days = scenario, network, days
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

    def _start_episode(self, day_rng: np.random.Generator, copy_rngs: list[np.random.Generator]) -> None:
        """A day drawn from ``day_rng``; each copy's riders from a generator drawn from its own."""
        self.sim = self.sims[int(day_rng.integers(len(self.sims)))]
        self.sim.reset([child_rngs(rng, 1)[0] for rng in copy_rngs])
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
        self._start_episode(self.np_random, [self.np_random])
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
        self._day_rng: np.random.Generator | None = None  # seeded on the first reset
        self._copy_rngs: list[np.random.Generator] = []

    @property
    def day_hours(self) -> int:
        """Hours of the day now simulated (the steps to its end from its start)."""
        return self.sim.H

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        """Start a day. ``seed``: an int ``s`` (copy ``i`` seeded ``s + i``), one seed per copy, or
        None (go on with the generators of the last seeded reset; fresh entropy the first time).
        ``options={"copies": range(a, b)}``: ``seed`` names the seeds of a larger vector env and
        this one's copies are its copies ``a..b-1``."""
        options = dict(options or {})
        copies = options.pop("copies", None)
        if options:
            raise ValueError(f"reset: unknown option(s) {sorted(options)} (known: 'copies')")
        if copies is not None:
            if seed is None or isinstance(seed, (int, np.integer)):
                raise ValueError("reset: the copies option needs the seeds of every copy of the whole vector env")
            seeds = [int(s) for s in seed]
            if not (isinstance(copies, range) and copies.step == 1 and len(copies) == self.num_envs
                    and 0 <= copies.start and copies.stop <= len(seeds)):
                raise ValueError(f"reset: copies {copies!r} are not {self.num_envs} consecutive copies "
                                 f"of the {len(seeds)} seeded")
            self._seed(seeds, copies)
        elif seed is not None or self._day_rng is None:
            self._seed(copy_seeds(seed, self.num_envs), range(self.num_envs))
        self._start_episode(self._day_rng, self._copy_rngs)
        features, mask = self._observe()
        return features, {"action_mask": mask}

    def _seed(self, seeds: list[int], copies: range) -> None:
        """Generators of copies ``copies`` of a vector env whose copies have ``seeds``."""
        # The day's generator is spawned from all the copies' seeds: apart from every copy's own.
        self._day_rng = np.random.default_rng(np.random.SeedSequence(seeds).spawn(1)[0])
        self._copy_rngs = [seeding.np_random(seeds[i])[0] for i in copies]

    def planner_actions(self, planner) -> np.ndarray:
        """(num_envs, k * visits_per_hour): the action closest to ``planner``'s plan in each copy
        now (:func:`~bicimad.plan.policy.plan_to_action`), e.g. to imitate it."""
        visits = self.scenario.fleet.visits_per_hour
        return np.stack([plan_to_action(obs, planner.plan(view), visits) for view, obs in zip(self._views, self._obs)])

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
            self._start_episode(self._day_rng, self._copy_rngs)
            features, infos["action_mask"] = self._observe()
        return features, reward.astype(np.float32), terminated, truncated, infos


def copy_seeds(seed: int | Sequence[int] | None, num_envs: int) -> list[int]:
    """The seed of each of ``num_envs`` copies for ``reset(seed=seed)``: ``seed + i`` for an int,
    the sequence itself (one per copy), ``entropy + i`` for None (fresh entropy, drawn once)."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_envs:
        raise ValueError(f"reset: {len(seeds)} seeds for {num_envs} envs")
    return seeds
