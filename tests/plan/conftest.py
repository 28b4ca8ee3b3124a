"""Hand-made fleet views for planner tests, and a small synthetic city for the fleet envs."""

from __future__ import annotations

import numpy as np
import pytest

from bicimad.sim.interface import FleetView
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand
from bicimad.sim.scenario import Scenario

#: Observations scale capacities as the default scenario does.
CAPACITY_SCALE = Scenario().episode.capacity_scale


def line_view(
    bikes,
    capacity,
    *,
    truck_station=(0,),
    truck_load=(0,),
    radius_km=100.0,
    spacing_km=1.0,
    pickup_rate=None,
    return_rate=None,
    hours=3,
    truck_capacity=22,
    visits_per_hour=2,
) -> FleetView:
    """Stations on a line ``spacing_km`` apart; each truck's base is where it stands now."""
    bikes = np.asarray(bikes, dtype=np.int64)
    capacity = np.asarray(capacity, dtype=np.int64)
    n = len(bikes)
    position = np.arange(n) * spacing_km
    distance = np.abs(position[:, None] - position[None, :])
    truck_station = np.asarray(truck_station, dtype=np.int64)
    rates = np.full((hours, n), 2.0)
    return FleetView(
        hour_index=0,
        hour_of_day=8,
        station_ids=np.arange(1, n + 1),
        bikes=bikes,
        capacity=capacity,
        truck_station=truck_station,
        truck_load=np.asarray(truck_load, dtype=np.int64),
        truck_capacity=truck_capacity,
        visits_per_hour=visits_per_hour,
        reachable=distance[truck_station] <= radius_km,
        distance_km=distance,
        pickup_rate=rates if pickup_rate is None else np.asarray(pickup_rate, dtype=float),
        return_rate=rates if return_rate is None else np.asarray(return_rate, dtype=float),
        radius_km=radius_km,
        capacity_scale=CAPACITY_SCALE,
    )


def random_view(rng: np.random.Generator, n=40, k=4) -> FleetView:
    """A random city: stations in a 6 km square, trucks at random stations, 2 km radius."""
    capacity = rng.integers(12, 31, n)
    bikes = rng.integers(0, capacity + 1)
    xy = rng.uniform(0, 6, (n, 2))
    distance = np.linalg.norm(xy[:, None] - xy[None, :], axis=-1)
    truck_station = rng.choice(n, k, replace=False)
    radius_km = 2.0
    return FleetView(
        hour_index=int(rng.integers(0, 100)),
        hour_of_day=int(rng.integers(0, 24)),
        station_ids=np.arange(100, 100 + n),
        bikes=bikes,
        capacity=capacity,
        truck_station=truck_station,
        truck_load=rng.integers(0, 23, k),
        truck_capacity=22,
        visits_per_hour=int(rng.integers(1, 4)),
        reachable=distance[truck_station] <= radius_km,
        distance_km=distance,
        pickup_rate=rng.gamma(2.0, 2.0, (3, n)),
        return_rate=rng.gamma(2.0, 2.0, (3, n)),
        radius_km=radius_km,
        capacity_scale=CAPACITY_SCALE,
    )


@pytest.fixture
def make_line_view():
    return line_view


@pytest.fixture
def make_random_view():
    return random_view


@pytest.fixture(scope="module")
def small_city():
    """(scenario, network, demand): 40 synthetic stations, 2 trucks, 10-hour days."""
    scenario = Scenario().override({"network.stations": 40, "fleet.trucks": 2, "episode.hours": 10})
    network = synthetic_network(40, seed=3)
    demand = synthetic_demand(network, seed=3, daily_trips=8000)
    return scenario, network, demand
