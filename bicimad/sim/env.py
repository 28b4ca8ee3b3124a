"""``bicimad/Rebalance-v0``: the minute-level gymnasium env of the rebalancing simulator.

It is for planners and external agents that drive the trucks themselves, one visit slot at a
time, with the simulator's own action (a station and a target fill level per truck) and its
whole state as the observation; its hand-vectorised twin is :mod:`bicimad.sim.vector`. The
learnt fleet policy trains on ``bicimad/FleetPlanning-v0`` (:mod:`bicimad.plan.fleet_env`)
instead: an hour per step, candidate stations per truck, the planners' interface.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from bicimad.sim.core import SLOT_KEYS, FleetSim
from bicimad.sim.network import Network, synthetic_network
from bicimad.sim.riders import Demand, synthetic_demand
from bicimad.sim.scenario import Scenario, load_scenario
from bicimad.sim.seeds import child_rngs


def resolve_scenario(scenario: Scenario | str | None) -> Scenario:
    if scenario is None:
        return Scenario()
    if isinstance(scenario, Scenario):
        return scenario
    return load_scenario(scenario)


def scenario_inputs(scenario: Scenario, network: Network | None = None, demand=None):
    """(network, demand) of a scenario: a synthetic one builds, where not given, the synthetic
    city's stations and its truth demand on a weekday (``synthetic_demand``'s default date);
    a processed one needs both passed in (see bicimad.sim.data)."""
    if network is None or demand is None:
        if scenario.network.source != "synthetic":
            raise ValueError(f"scenario {scenario.name!r} (network.source = {scenario.network.source!r}) "
                             "needs a network and demand: build them with bicimad.sim.data")
        network = network or synthetic_network(scenario.network.stations, scenario.network.seed)
        demand = demand or synthetic_demand(network, seed=scenario.network.seed)
    return network, demand


def build_sim(scenario=None, network: Network | None = None, demand=None, forecast: Demand | None = None,
              n_envs: int = 1) -> FleetSim:
    """A :class:`FleetSim` for a scenario (a :class:`Scenario`, TOML path or bundled name)."""
    scenario = resolve_scenario(scenario)
    network, demand = scenario_inputs(scenario, network, demand)
    return FleetSim(network, scenario, demand, n_envs=n_envs, forecast=forecast)


def spaces_for(sim: FleetSim) -> tuple[spaces.Box, spaces.MultiDiscrete]:
    """(observation, action) spaces of one env."""
    obs = spaces.Box(-1.0, 1.0, shape=(sim.observation_size,), dtype=np.float32)
    act = spaces.MultiDiscrete(np.tile([sim.n + 1, len(sim.fill_levels)], sim.k).astype(np.int64))
    return obs, act


def decode_action(sim: FleetSim, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, 2k) actions -> station (E, k; -1 idle) and target fill level (E, k)."""
    action = np.asarray(action, dtype=np.int64).reshape(sim.E, sim.k, 2)
    station = np.where(action[:, :, 0] >= sim.n, -1, action[:, :, 0])
    levels = action[:, :, 1]
    if sim.k and (levels.min() < 0 or levels.max() >= len(sim.fill_levels)):
        raise ValueError(f"action: fill level index outside 0..{len(sim.fill_levels) - 1}: {levels.tolist()}")
    return station, sim.fill_levels[levels]


def slot_reward(sim: FleetSim, out: dict[str, np.ndarray]) -> np.ndarray:
    """Reward of a slot per env: minus the weighted counts (see the env docstring)."""
    w = sim.scenario.reward
    return -(w.problem_hour * out["new_problem_hours"] + w.lost_trip * out["lost_trips"]
             + w.diverted_return * out["diverted_returns"] + w.truck_km * out["truck_km"])


class RebalanceEnv(gym.Env):
    """
    ## Description
    A day of a BiciMAD-like bike-share network with a fleet of rebalancing trucks
    (by default the seed fleet: 6 trucks of 22 bikes, 2 station visits per truck per hour,
    3.5 km action radius around each truck's base), simulated minute by minute, for planners
    and external agents that move the trucks themselves (the learnt fleet policy trains on the
    hour-level ``bicimad/FleetPlanning-v0`` of :mod:`bicimad.plan.fleet_env`). Riders pick up and return bikes minute by minute
    (Poisson at the demand's hourly rates, or replayed trips); a pickup at an empty station
    is lost, a return at a full one is diverted to the nearest station with a free dock.
    Each step is one visit slot (half an hour with 2 visits per hour): every truck is sent
    to one station, where it loads or unloads bikes towards a target fill level.

    ## Action Space
    `MultiDiscrete([n + 1, L] * k)` for `n` stations, `L` fill levels and `k` trucks, flat:
    `[station_0, level_0, station_1, level_1, ...]`. `station = n` keeps the truck idle
    where it is; a station outside the truck's radius is rejected (the truck stays idle;
    counted in `info["rejected_visits"]`). The truck then loads (or unloads) bikes until the
    station holds `round(fill_levels[level] * capacity)`, limited by the station's bikes and
    free docks and the truck's load and capacity. `info["action_mask"]` and
    `action_mask()` give the allowed stations per truck, shape `(k, n + 1)`.
    A planner's `Visit(station, bikes)` is the same move with a bike count instead of a level.

    ## Observation Space
    `Box(-1, 1, (5n + 4k + 4,), float32)`:

    | slice | observation | scale |
    |-------|-------------|-------|
    | 0 : n | docked bikes / capacity | 0-1 |
    | n : 2n | capacity / `episode.capacity_scale` (30), at most 1 | 0-1 |
    | 2n : 3n | station available | 0 or 1 |
    | 3n : 4n | forecast pickups this hour, r / (r + capacity) | 0-1 |
    | 4n : 5n | forecast returns this hour, r / (r + capacity) | 0-1 |
    | 5n : 5n+k | truck load / truck capacity | 0-1 |
    | 5n+k : 5n+2k | truck position (station index / (n - 1)) | 0-1 |
    | 5n+2k : 5n+3k | truck base (station index / (n - 1)) | 0-1 |
    | 5n+3k : 5n+4k | visits left this hour / visits per hour | 0-1 |
    | 5n+4k : +2 | sin, cos of the time of day | -1-1 |
    | +2 | slot within the hour / visits per hour | 0-1 |
    | +3 | fraction of the episode done | 0-1 |

    ## Rewards
    Per step, minus the weighted sum (scenario `[reward]`) of: station-hours that turned
    empty, full or both during the step (`problem_hour`, 1.0; a station-hour counts once,
    when it first turns problematic, so an episode's sum is the number of problem
    station-hours), lost pickups (`lost_trip`, 0.2), diverted returns (`diverted_return`,
    0.1) and truck kilometres (`truck_km`, 0.01).

    ## Starting State
    Docked bikes from the network (a real snapshot, or the synthetic network's draw); trucks
    at their bases holding `fleet.initial_load` bikes; the day's riders drawn from the seed.

    ## Episode End
    1. Truncation: the day (`episode.hours` x `visits_per_hour` steps, 48 by default) is over.
    There is no termination: the system goes on after the horizon, so bootstrap.

    ## Arguments
    `gymnasium.make("bicimad/Rebalance-v0", scenario=None, network=None, demand=None,
    forecast=None)`: `scenario` a :class:`Scenario`, a TOML path or a bundled name (default:
    the synthetic default); `network` a :class:`Network`; `demand` the truth riders (a
    :class:`Demand` of rates or a :class:`TripReplay`); `forecast` the :class:`Demand` the
    agent sees (default: the truth rates). `reset(options={"bikes": array})` overrides the
    initial docked bikes. At the last step `info` also holds the episode's `occupancy_table`
    (the `occupancy` schema) and `summary` (`OCCUPANCY_SUMMARY_COLUMNS`).

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 2}

    def __init__(self, scenario: Scenario | str | None = None, network: Network | None = None,
                 demand=None, forecast: Demand | None = None, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.sim = build_sim(scenario, network, demand, forecast, n_envs=1)
        self.observation_space, self.action_space = spaces_for(self.sim)

    @property
    def scenario(self) -> Scenario:
        return self.sim.scenario

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        bikes = (options or {}).get("bikes")
        # Riders get their own generator, drawn from the env's: actions never consume randomness.
        self.sim.reset(child_rngs(self.np_random, 1), bikes=bikes)
        return self.sim.observe()[0], self._info(None)

    def step(self, action):
        station, level = decode_action(self.sim, action)
        out = self.sim.step(station, level=level)
        reward = float(slot_reward(self.sim, out)[0])
        truncated = self.sim.done
        info = self._info(out)
        if truncated:
            info["occupancy_table"] = self.sim.occupancy_table(0)
            info["summary"] = self.sim.summary(0, planner="env")
        return self.sim.observe()[0], reward, False, truncated, info

    def _info(self, out: dict | None) -> dict[str, Any]:
        info: dict[str, Any] = {key: 0.0 if out is None else float(out[key][0]) for key in SLOT_KEYS}
        info["action_mask"] = self.sim.action_mask()[0]
        info["hour_index"] = self.sim.hour
        info["occupancy"] = self.sim.occupancy_counts()[0]
        return info

    def action_mask(self) -> np.ndarray:
        """(k, n + 1) bool: allowed stations per truck now (last column: idle)."""
        return self.sim.action_mask()[0]

    def fleet_view(self, horizon: int | None = None):
        """The planner's view now (state + forecast, never the realised demand)."""
        return self.sim.fleet_view(0, horizon)

    def execute_plan(self, plan) -> dict[str, float]:
        """Run the coming hour with a :class:`~bicimad.sim.interface.Plan`."""
        return self.sim.execute_plan(plan)

    def render(self):
        if self.render_mode != "ansi":
            return None
        b = self.sim.bikes2d()[0]
        cap = self.sim.network.capacity
        return (f"hour {self.sim.hour:2d} slot {self.sim.slot}: {int(b.sum())} docked, "
                f"{int((b == 0).sum())} empty, {int((b >= cap).sum())} full, "
                f"truck loads {self.sim.truck_load[0].tolist()}")
