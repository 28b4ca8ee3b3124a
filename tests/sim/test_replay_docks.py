"""The core's event-by-event entry point (``replay_docks``), on a network small enough to follow by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bicimad.sim.core import replay_docks
from bicimad.sim.network import Network
from bicimad.sim.riders import TripReplay
from bicimad.sim.scenario import FleetSpec, Scenario

START = pd.Timestamp("2018-09-03", tz="Europe/Madrid")


def _line():
    """Three stations on a meridian at 0, 1 and 2.5 km; one dock each; bikes 1, 0, 1."""
    lat = 40.40 + np.array([0.0, 1.0, 2.5]) / 111.2
    return Network.build([1, 2, 3], lat, np.full(3, -3.70), [1, 1, 1], [1, 0, 1])


def _riders(rows):
    minute, origin, dest, travel = (np.array(c, dtype=np.int32) for c in zip(*rows))
    return TripReplay(START, minute, origin, dest, travel, False, 1)


def test_lost_pickups_diversions_and_readings_follow_the_docks():
    riders = _riders([
        (0, 0, 1, 3),  # takes station 0's bike; docks at 1 at minute 3
        (0, 0, 1, 3),  # same station-minute, listed second: finds no bike (lost)
        (1, 2, 1, 2),  # takes station 2's bike; reaches 1 at minute 3 too: one of the two rides on
    ])
    log = replay_docks(_line(), Scenario(fleet=FleetSpec(trucks=0)), riders, read_minutes=[0, 1, 3, 4, 20])
    assert log["lost_minute"].tolist() == [0] and log["lost_station"].tolist() == [0] and log["lost_count"].tolist() == [1]
    # At minute 3 station 1 fills; the second rider rides on to the nearest free dock (0, 1 km away;
    # 2, also empty by then, is 1.5 km away).
    assert log["divert_minute"].tolist() == [3] and log["divert_from"].tolist() == [1]
    assert log["divert_to"].tolist() == [0]
    ride = int(np.ceil(1.0 * 1.3 / 12.0 * 60))  # road km at the riders' speed, whole minutes
    assert log["divert_arrival"].tolist() == [3 + ride]
    np.testing.assert_array_equal(log["bikes"], [[1, 0, 1], [0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 0]])


def test_truck_visits_are_made_in_their_minute_and_logged():
    network = Network.build([1, 2], [40.40, 40.41], [-3.70, -3.70], [10, 10], [8, 0])

    def trucks(minute, bikes):
        with pytest.raises(ValueError):
            bikes[0] = 0  # the docks are read-only to the caller
        return {5: ([0], [4]), 6: ([1], [-4])}.get(minute)

    scenario = Scenario(fleet=FleetSpec(trucks=1, truck_capacity=6, radius_km=5.0))
    log = replay_docks(network, scenario, _riders([(30, 1, 1, 5)]), read_minutes=[5, 6, 7], trucks=trucks)
    np.testing.assert_array_equal(log["bikes"], [[8, 0], [4, 0], [4, 4]])
    assert log["visit_minute"].tolist() == [5, 6] and log["visit_station"].tolist() == [0, 1]
    assert log["visit_bikes"].tolist() == [4, -4] and log["visit_truck"].tolist() == [0, 0]
    assert len(log["lost_minute"]) == len(log["divert_minute"]) == 0


def test_bad_readings_and_drawn_minutes_are_refused():
    scenario = Scenario(fleet=FleetSpec(trucks=0))
    with pytest.raises(ValueError, match="read_minutes"):
        replay_docks(_line(), scenario, _riders([(0, 0, 1, 3)]), read_minutes=[5, 2])
    hourly = TripReplay(START, np.array([0], np.int32), np.array([0], np.int32), np.array([1], np.int32),
                        np.array([3], np.int32), True, 1)
    with pytest.raises(ValueError, match="whole_hours"):
        replay_docks(_line(), scenario, hourly)
