"""Small seeded networks and demand for the simulator tests (generated here, no real data)."""

from __future__ import annotations

import pytest

from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand
from bicimad.sim.scenario import Scenario


@pytest.fixture(scope="session")
def small_network():
    return synthetic_network(30, seed=7)


@pytest.fixture(scope="session")
def small_demand(small_network):
    return synthetic_demand(small_network, daily_trips=2500, seed=7)


@pytest.fixture(scope="session")
def small_scenario():
    return Scenario(name="small").override({"fleet.trucks": 3, "fleet.radius_km": 3.0, "episode.hours": 6,
                                            "network.stations": 30})
