"""Simulation scenarios: the fleet, the network, riders, the episode and the reward, as TOML.

A scenario is a frozen :class:`Scenario` loaded from ``sim/scenarios/<name>.toml`` and
written next to every run it produced. Every key is optional (defaults below, which are
also ``synthetic-default.toml``), read by the one TOML loader of :mod:`bicimad.config`; an
unknown key or a value of the wrong type is a :class:`ScenarioError` naming the file and the
dotted key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bicimad.config import REPO_ROOT, ConfigError, build_config, config_to_dict, read_toml, write_config

#: Where the bundled scenarios live (a checkout's ``sim/scenarios``).
SCENARIO_DIR = REPO_ROOT / "sim" / "scenarios"


class ScenarioError(ConfigError):
    """A scenario file is missing, unreadable or has a bad key or value (named in the message)."""


@dataclass(frozen=True)
class NetworkSpec:
    """Which stations the simulator runs on."""

    source: str = "synthetic"   #: "synthetic" (generated, seeded) or "processed" (the stations table)
    stations: int = 210         #: number of stations of a synthetic network
    seed: int = 0               #: seed of the synthetic network and its demand
    date: str = ""              #: processed: stations in service on this local date (YYYY-MM-DD)


@dataclass(frozen=True)
class FleetSpec:
    """The trucks (defaults: the seed fleet, 6 trucks x 22 bikes, 2 visits per hour, 3.5 km around a base)."""

    trucks: int = 6             #: number of trucks
    truck_capacity: int = 22    #: bikes a truck carries at most
    visits_per_hour: int = 2    #: station visits per truck per hour (each hour splits into this many slots)
    radius_km: float = 3.5      #: action radius (straight line) around the truck's base
    speed_kmh: float = 20.0     #: truck speed on the road distance
    initial_load: int = 0       #: bikes on each truck at the start (taken from the fleet total)
    bases: tuple[int, ...] = () #: EMT station ids of the bases; empty = demand-weighted k-medoids


@dataclass(frozen=True)
class RiderSpec:
    """How riders move."""

    speed_kmh: float = 12.0         #: riding speed on the road distance
    detour: float = 1.3             #: road distance / straight-line distance
    walk_km: float = 0.0            #: a rider at an empty station walks to a station with a bike this close (0: never)
    round_trip_min: int = 20        #: duration of a trip back to its own station
    round_trip_share: float = 0.05  #: share of round trips in the distance-based OD fallback
    od_scale_km: float = 1.5        #: length scale of the distance-based OD fallback
    demand_multiplier: float = 1.0  #: scales pickup and return rates (what-if)
    #: chance that a docked bike cannot be rented (broken, reserved): a rider at a station with
    #: ``b`` bikes finds none usable with chance ``q ** b`` and walks on or is lost. Snapshots
    #: count such bikes as docked, so a station reads 1-2 bikes while no rider can leave.
    unusable_bike_share: float = 0.0
    #: the same for free docks: a rider returning to ``f`` free docks finds none usable with
    #: chance ``r ** f`` and rides on to the nearest station with a free dock (a diverted return).
    unusable_dock_share: float = 0.0
    #: share of the riders' attempted pickups that EMT's daily count sees (those served under
    #: EMT's own operation); demand calibrated to counts aims at ``count / counted_share`` riders.
    counted_share: float = 1.0
    #: start the day with the riders already riding (as many as the first hour's returns times
    #: their mean riding time), so the bikes in use at the first snapshot come back as in reality
    in_transit_at_start: bool = False


@dataclass(frozen=True)
class EpisodeSpec:
    """Length of an episode, the RL action's quantity levels and the observations' scale."""

    hours: int = 24  #: hours simulated (at most the hours the demand covers)
    fill_levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  #: target fill levels a truck can set
    capacity_scale: float = 30.0  #: docks that observations scale a station's capacity by (envs and fleet policy)


@dataclass(frozen=True)
class RewardSpec:
    """The declared objective (``[objective]``, or ``[reward]`` as the envs call it): one weight per counted event. Every planner is
    judged on ``sum of weight x count`` per day (:mod:`bicimad.sim.objective`; lower is better),
    the OR-Tools planner values its stops with it, and the envs' reward is its negative per step.
    Defaults: a problem station-hour counts 1, a lost pickup or a diverted return 0.2 (five
    riders turned away weigh as much as a station empty or full for an hour), a truck km 0.01."""

    problem_hour: float = 1.0     #: per station-hour that turns empty, full or both
    lost_trip: float = 0.2        #: per pickup lost at an empty station
    diverted_return: float = 0.2  #: per return diverted from a full station
    truck_km: float = 0.01        #: per truck kilometre


@dataclass(frozen=True)
class Scenario:
    """One simulation scenario (see the module docstring)."""

    name: str = "synthetic-default"
    description: str = ""
    network: NetworkSpec = field(default_factory=NetworkSpec)
    fleet: FleetSpec = field(default_factory=FleetSpec)
    riders: RiderSpec = field(default_factory=RiderSpec)
    episode: EpisodeSpec = field(default_factory=EpisodeSpec)
    reward: RewardSpec = field(default_factory=RewardSpec)

    def __post_init__(self):
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to TOML."""
        return config_to_dict(self)

    def override(self, changes: dict[str, Any]) -> Scenario:
        """A copy with dotted keys replaced, e.g. ``{"fleet.trucks": 10}`` (what-if sweeps)."""
        data = self.to_dict()
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ScenarioError(f"override: unknown key {dotted!r}")
                node = node[part]
            if leaf not in node:
                raise ScenarioError(f"override: unknown key {dotted!r}")
            node[leaf] = value
        return from_dict(data, source="override")


def _validate(s: Scenario) -> None:
    checks = [
        ("network.source", s.network.source in ("synthetic", "processed"), "must be 'synthetic' or 'processed'"),
        ("network.stations", s.network.stations >= 2, "must be >= 2"),
        ("fleet.trucks", s.fleet.trucks >= 0, "must be >= 0"),
        ("fleet.truck_capacity", s.fleet.truck_capacity >= 1, "must be >= 1"),
        ("fleet.visits_per_hour", 1 <= s.fleet.visits_per_hour <= 60, "must be in 1..60"),
        ("fleet.radius_km", s.fleet.radius_km >= 0, "must be >= 0"),
        ("fleet.speed_kmh", s.fleet.speed_kmh > 0, "must be > 0"),
        ("fleet.initial_load", 0 <= s.fleet.initial_load <= s.fleet.truck_capacity, "must be in 0..truck_capacity"),
        ("fleet.bases", not s.fleet.bases or len(s.fleet.bases) == s.fleet.trucks, "must list one station id per truck"),
        ("riders.speed_kmh", s.riders.speed_kmh > 0, "must be > 0"),
        ("riders.detour", s.riders.detour >= 1, "must be >= 1"),
        ("riders.walk_km", s.riders.walk_km >= 0, "must be >= 0"),
        ("riders.round_trip_min", s.riders.round_trip_min >= 1, "must be >= 1"),
        ("riders.round_trip_share", 0 <= s.riders.round_trip_share < 1, "must be in [0, 1)"),
        ("riders.od_scale_km", s.riders.od_scale_km > 0, "must be > 0"),
        ("riders.demand_multiplier", s.riders.demand_multiplier >= 0, "must be >= 0"),
        ("riders.unusable_bike_share", 0 <= s.riders.unusable_bike_share < 1, "must be in [0, 1)"),
        ("riders.counted_share", 0 < s.riders.counted_share <= 1, "must be in (0, 1]"),
        ("riders.unusable_dock_share", 0 <= s.riders.unusable_dock_share < 1, "must be in [0, 1)"),
        ("episode.hours", s.episode.hours >= 1, "must be >= 1"),
        ("episode.fill_levels", len(s.episode.fill_levels) >= 1 and all(0 <= x <= 1 for x in s.episode.fill_levels),
         "must be a non-empty list of fractions in [0, 1]"),
        ("episode.capacity_scale", s.episode.capacity_scale > 0, "must be > 0"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise ScenarioError(f"scenario {s.name!r}: {key} {why}")


def from_dict(data: dict[str, Any], source: str = "<dict>") -> Scenario:
    """Build a scenario from a nested dict, checking every key and type (the one TOML loader
    of :mod:`bicimad.config`; its errors come as :class:`ScenarioError`)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a table, got {data!r}")
    if "objective" in data:  # the declared objective's own name; [reward] is the same table
        if "reward" in data:
            raise ScenarioError(f"{source}: give the objective's weights as [objective] or [reward], not both")
        data = {("reward" if key == "objective" else key): value for key, value in data.items()}
    try:
        return build_config(Scenario, data, source)
    except ScenarioError:
        raise
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None


def load_scenario(name_or_path: str | os.PathLike) -> Scenario:
    """Load a scenario from a TOML path, or by name from the bundled ``sim/scenarios``."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
        raise ScenarioError(f"no scenario at {path} (bundled: {known})")
    try:
        data = read_toml(path)
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    data.setdefault("name", path.stem)
    return from_dict(data, source=str(path))


def write_scenario(scenario: Scenario, path: str | os.PathLike) -> Path:
    """Write the scenario as TOML (atomically), e.g. next to a run's results."""
    return write_config(scenario, path)
