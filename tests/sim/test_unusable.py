"""Unusable bikes and docks (``riders.unusable_bike_share`` / ``unusable_dock_share``).

A rider at ``b`` docked bikes finds none usable with chance ``q ** b``; a returning rider at
``f`` free docks finds none with chance ``r ** f`` and is diverted. Measured here over many
independent envs of one hand-built line, against those chances.
"""

from __future__ import annotations

import numpy as np
import pytest

from bicimad.sim.core import FleetSim
from bicimad.sim.scenario import Scenario, ScenarioError
from bicimad.sim.seeds import rider_rng

from .test_accounting import line, riders, run_idle, scenario

ENVS = 4000


def _lost_and_diverted(network, trips, **changes) -> tuple[np.ndarray, np.ndarray]:
    sim = FleetSim(network, scenario(1, **changes), trips, n_envs=ENVS)
    sim.reset([rider_rng(i) for i in range(ENVS)])
    run_idle(sim)
    return sim.totals["lost_trips"].copy(), sim.totals["diverted_returns"].copy()


@pytest.mark.parametrize("bikes", [1, 2])
def test_a_rider_finds_no_usable_bike_with_chance_q_to_the_bikes(bikes):
    trips = riders([(5, 0, 1, 10)], hours=1)
    lost, _ = _lost_and_diverted(line([bikes, 0], [4, 4]), trips, **{"riders.unusable_bike_share": 0.4})
    assert lost.mean() == pytest.approx(0.4 ** bikes, abs=4 * np.sqrt(0.4 ** bikes / ENVS))


def test_a_returning_rider_finds_no_usable_dock_with_chance_r_to_the_free_docks():
    # A rides to B, which has one free dock: turned away with chance r, then docks at C.
    trips = riders([(5, 0, 1, 10)], hours=1)
    lost, diverted = _lost_and_diverted(line([3, 3, 0], [4, 4, 4]), trips, **{"riders.unusable_dock_share": 0.3})
    assert lost.sum() == 0
    assert diverted.mean() == pytest.approx(0.3, abs=4 * np.sqrt(0.21 / ENVS))


def test_without_unusable_shares_every_rider_who_finds_a_bike_rides():
    trips = riders([(5, 0, 1, 10)], hours=1)
    lost, diverted = _lost_and_diverted(line([1, 3, 0], [4, 4, 4]), trips)
    assert lost.sum() == 0 and diverted.sum() == 0


def test_the_same_seed_gives_the_same_riders_with_unusable_shares(small_network, small_demand, small_scenario):
    small_scenario = small_scenario.override({"episode.hours": 24})
    changed = small_scenario.override({"riders.unusable_bike_share": 0.5, "riders.unusable_dock_share": 0.5})
    outcomes = []
    for _ in range(2):
        sim = FleetSim(small_network, changed, small_demand)
        sim.reset([rider_rng(3)])
        run_idle(sim)
        outcomes.append(sim.summary())
    assert outcomes[0] == outcomes[1]
    plain = FleetSim(small_network, small_scenario, small_demand)
    plain.reset([rider_rng(3)])
    run_idle(plain)
    assert plain.summary()["lost_trips"] < outcomes[0]["lost_trips"]            # unusable bikes lose riders
    assert plain.summary()["diverted_returns"] < outcomes[0]["diverted_returns"]  # unusable docks divert them


def test_a_copy_draws_the_same_whichever_copies_run_beside_it(small_network, small_demand, small_scenario):
    # Each copy's dock draws come from its own generator: copies 1 and 2 of three simulated
    # together are those copies simulated on their own (as when envs are split over workers).
    changed = small_scenario.override({"episode.hours": 24, "riders.unusable_bike_share": 0.5,
                                       "riders.unusable_dock_share": 0.5})
    together = FleetSim(small_network, changed, small_demand, n_envs=3)
    together.reset([rider_rng(i) for i in range(3)])
    while not together.done:
        together.step(np.full((3, together.k), -1, np.int64))
    alone = []
    for i in (1, 2):
        sim = FleetSim(small_network, changed, small_demand)
        sim.reset([rider_rng(i)])
        run_idle(sim)
        alone.append(sim.summary())
    assert [together.summary(1), together.summary(2)] == alone
    assert alone[0]["diverted_returns"] > 0 and alone[0] != alone[1]


@pytest.mark.parametrize("key, value", [("riders.unusable_bike_share", 1.0), ("riders.unusable_dock_share", -0.1),
                                        ("riders.counted_share", 0.0)])
def test_impossible_shares_are_refused_naming_the_key(key, value):
    with pytest.raises(ScenarioError, match=key.replace(".", r"\.")):
        Scenario(name="bad").override({key: value})


def test_riders_in_transit_at_the_start_bring_bikes_back(small_network, small_demand, small_scenario):
    # Little's law: the riders on their way at the start are the first hour's returns times their
    # mean riding time; they dock within the first hour, bikes no one took in the episode.
    envs = 200
    with_them = small_scenario.override({"riders.in_transit_at_start": True, "episode.hours": 1})
    sims = [FleetSim(small_network, scenario_, small_demand, n_envs=envs)
            for scenario_ in (small_scenario.override({"episode.hours": 1}), with_them)]
    for sim in sims:
        sim.reset([rider_rng(i) for i in range(envs)])
    expected = sims[1].sampler.in_transit.sum()
    assert expected > 1
    extra = sims[1].total_bikes() - sims[0].total_bikes()  # right after reset: in transit, not docked
    assert extra.mean() == pytest.approx(expected, abs=4 * np.sqrt(expected / envs))
    for sim in sims:
        while not sim.done:
            sim.step(np.full((envs, sim.k), -1, np.int64))
    docked = sims[1].bikes2d().sum(axis=1) - sims[0].bikes2d().sum(axis=1)
    assert docked.mean() > 0.9 * expected   # nearly all of them docked within the hour
