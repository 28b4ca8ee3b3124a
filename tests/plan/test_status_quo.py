"""The status quo replays EMT's inferred truck moves at their hours, whatever the fleet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bicimad.plan.status_quo import StatusQuoPlanner
from bicimad.sim import load_scenario, run_episode
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand


class Watch:
    """Records the docked bikes at every hour start."""

    def __init__(self, planner):
        self.planner, self.name, self.seen = planner, planner.name, []

    def plan(self, view):
        self.seen.append(view.bikes.copy())
        return self.planner.plan(view)


def _day(n=3, hours=4):
    network = Network(station_ids=np.array([11, 12, 13]), lat=np.array([40.41, 40.42, 40.43]),
                      lon=np.array([-3.70, -3.70, -3.70]), capacity=np.array([20, 20, 20]),
                      bikes=np.array([10, 3, 19]), available=np.ones(n, dtype=bool))
    stamps = pd.date_range("2018-09-10", periods=hours, freq="h", tz="Europe/Madrid")
    riders = Demand(stamps, np.zeros((hours, n)), np.zeros((hours, n)))  # no riders: only the moves act
    return network, riders


def test_moves_happen_at_their_hours_with_a_virtual_fleet():
    network, riders = _day()
    moves = np.zeros((4, 3))
    moves[1, 0] = 5      # EMT added 5 bikes at station 11 in hour 1
    moves[2, 1] = -3     # and emptied station 12 in hour 2
    moves[2, 2] = 4      # 19 + 4 exceeds 20 docks: the simulator keeps it within capacity
    planner = StatusQuoPlanner(moves)
    scenario = load_scenario("synthetic-default").override({"episode.hours": 4})
    fleet = planner.scenario_for(scenario, network)
    assert fleet.fleet.trucks == 3 and list(fleet.fleet.bases) == [11, 12, 13]
    watch = Watch(planner)
    result = run_episode(network, riders, None, fleet, watch, seed=0)
    seen = np.array(watch.seen)
    assert seen[0].tolist() == [10, 3, 19] and seen[1].tolist() == [10, 3, 19]
    assert seen[2].tolist() == [15, 3, 19]                  # hour 1's move is there at hour 2's start
    assert seen[3].tolist() == [15, 0, 20]                  # hour 2's: station 12 empty, 13 full
    assert result.summary.iloc[0]["bikes_moved"] > 0
    states = result.occupancy.set_index(["station_id", "hour"])["state"]
    assert states[(12, riders.hours[2])] == "empty" and states[(13, riders.hours[2])] == "full"


def test_status_quo_needs_the_observed_moves():
    with pytest.raises(ValueError, match="no operator moves observed"):
        StatusQuoPlanner().for_day(type("Day", (), {"date": "2018-09-10", "operator_moves": None})())
