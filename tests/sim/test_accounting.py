"""Hand-counted accounting on a three-station line, and the riders' conservation property.

Each test here pins one piece of the simulator's bookkeeping that a plausible slip would break:
several riders lost at one station in the same minute, the last allowed visit of an hour, a
station-hour that is both empty and full, and every drawn rider being served, walked or lost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bicimad.config import TZ
from bicimad.sim.core import FleetSim
from bicimad.sim.interface import Visit
from bicimad.sim.network import Network
from bicimad.sim.occupancy import problem_share
from bicimad.sim.riders import TripReplay
from bicimad.sim.scenario import Scenario
from bicimad.sim.seeds import rider_rng

KM_LON = 1 / (111.32 * np.cos(np.radians(40.42)))  # degrees of longitude per km at Madrid
DAY = pd.Timestamp("2018-09-27 08:00", tz=TZ)


def line(bikes, capacity) -> Network:
    """Stations with ids 1, 2, ... on an east-west line, 1 km apart."""
    n = len(bikes)
    return Network.build(np.arange(1, n + 1), [40.42] * n, -3.70 + KM_LON * np.arange(n), capacity, bikes)


def riders(rows, hours: int) -> TripReplay:
    """Riders as ``(minute, origin index, destination index, riding minutes)``."""
    rows = np.asarray(rows, dtype=np.int32).reshape(-1, 4)
    return TripReplay(DAY, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], whole_hours=False, n_hours=hours)


def scenario(hours: int, **changes) -> Scenario:
    return Scenario(name="line").override({"fleet.trucks": 0, "episode.hours": hours, **changes})


def run_idle(sim: FleetSim) -> list[dict]:
    outs = []
    while not sim.done:
        outs.append(sim.step(np.full((1, sim.k), -1, np.int64)))
    return outs


def test_three_riders_lost_at_one_station_in_one_minute_count_three():
    # B is empty; at 08:04 three riders want a bike there (all lost) and two at C (served; they
    # ride past the end of the hour).
    network = line([1, 0, 3], [2, 2, 3])
    trips = riders([(4, 1, 0, 61), (4, 1, 2, 61), (4, 1, 0, 61), (4, 2, 0, 61), (4, 2, 1, 61)], hours=1)
    sim = FleetSim(network, scenario(1), trips)
    sim.reset([rider_rng(0)])
    outs = run_idle(sim)
    table = sim.occupancy_table().set_index("station_id")
    assert table.loc[2, "lost_trips"] == 3 and table["lost_trips"].sum() == 3
    assert sum(int(out["lost_trips"][0]) for out in outs) == 3 == sim.summary()["lost_trips"]
    assert sim.bikes.tolist() == [1, 0, 1] and sim.in_transit()[0] == 2


def test_exactly_visits_per_hour_visits_accepted_and_one_more_rejected():
    # One truck based at B with every station in reach, three visits an hour: the plan's fourth
    # visit is rejected, the third (the last allowed one) is made.
    network = line([2, 0, 1], [2, 2, 3])
    sim = FleetSim(network, scenario(1, **{"fleet.trucks": 1, "fleet.bases": [2], "fleet.radius_km": 10.0,
                                            "fleet.visits_per_hour": 3}), riders([], hours=1))
    assert sim.reachable.all()
    sim.reset([rider_rng(0)])
    plan = [[Visit(0, 1), Visit(1, -1), Visit(0, 1), Visit(2, -1)]]
    total = sim.execute_plan(plan)
    assert total["bikes_moved"] == 3 and total["rejected_visits"] == 1
    assert sim.bikes.tolist() == [0, 1, 1] and sim.truck_load.tolist() == [[1]]
    assert sim.truck_pos.tolist() == [[0]] and total["truck_km"] > 0


def test_last_slot_of_the_hour_still_takes_a_visit():
    network = line([2, 0, 1], [2, 2, 3])
    sim = FleetSim(network, scenario(1, **{"fleet.trucks": 1, "fleet.bases": [2], "fleet.radius_km": 10.0,
                                            "fleet.visits_per_hour": 2}), riders([], hours=1))
    sim.reset([rider_rng(0)])
    first = sim.step(np.array([[0]]), take=np.array([[2]]))
    assert sim.action_mask()[0, 0, :3].all()          # one visit left: every station allowed
    last = sim.step(np.array([[1]]), take=np.array([[-2]]))
    assert first["rejected_visits"][0] == last["rejected_visits"][0] == 0
    assert sim.bikes.tolist() == [0, 2, 1]


def test_hand_counted_hour_both_empty_and_full():
    """08:00 A 1 bike of 2, B 0 of 2, C 3 of 3. 08:00 a rider takes A's bike (A empty) to B
    (arrives 08:03); 08:01 and 08:02 riders take two of C's to A, docking at 08:06 and 08:08
    (A 2 of 2: full). So at 08: A empty and full, B empty (at the start), C full (at the
    start); at 09, nothing moves: A full, B (1) and C (1) balanced."""
    network = line([1, 0, 3], [2, 2, 3])
    trips = riders([(0, 0, 1, 3), (1, 2, 0, 5), (2, 2, 0, 6)], hours=2)
    sim = FleetSim(network, scenario(2), trips)
    sim.reset([rider_rng(0)])
    outs = run_idle(sim)
    table = sim.occupancy_table()
    assert table["state"].tolist() == ["empty_and_full", "empty", "full", "full", "balanced", "balanced"]
    summary = sim.summary()
    assert (summary["balanced"], summary["empty"], summary["full"], summary["empty_and_full"]) == (2, 1, 2, 1)
    assert summary["problem_share"] == problem_share(summary) == 4 / 6
    assert sum(int(out["new_problem_hours"][0]) for out in outs) == 4
    assert sim.bikes.tolist() == [2, 1, 1] and table["lost_trips"].sum() == 0


@st.composite
def rider_days(draw):
    """A small line of stations, fill and riders drawn, many of them in the same few minutes so
    several riders often want one station's bike at once; every ride outlasts the episode."""
    n = draw(st.integers(2, 6))
    capacity = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    bikes = [draw(st.integers(0, c)) for c in capacity]
    hours = draw(st.integers(1, 2))
    minutes = st.one_of(st.integers(0, 3), st.integers(0, 60 * hours - 1))
    rows = draw(st.lists(st.tuples(minutes, st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40))
    walk_km = draw(st.sampled_from([0.0, 1.1, 10.0]))
    trucks = draw(st.integers(0, 2))
    return line(bikes, capacity), [(m, o, d, 60 * hours + 1) for m, o, d in rows], hours, walk_km, trucks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rider_days(), st.integers(0, 1000))
def test_every_drawn_rider_is_served_walked_or_lost(day, action_seed):
    """No rider docks within the episode, so each bike that leaves the docks and trucks is a
    pickup, at the rider's own station (served) or a nearby one (walked):
    served + walked + lost = riders drawn, with served counted from the bikes themselves."""
    network, rows, hours, walk_km, trucks = day
    scen = scenario(hours, **{"riders.walk_km": walk_km, "fleet.trucks": trucks, "fleet.radius_km": 10.0})
    sim = FleetSim(network, scen, riders(rows, hours))
    sim.reset([rider_rng(0)])
    start_bikes = sim.bikes.copy()
    start = sim.bikes.sum() + sim.truck_load.sum()
    rng = np.random.default_rng(action_seed)
    while not sim.done:
        station = rng.integers(-1, network.n, (1, trucks))
        sim.step(station, take=rng.integers(-3, 4, (1, trucks)))
    taken = int(start - sim.bikes.sum() - sim.truck_load.sum())   # bikes now ridden
    walked, lost = int(sim.totals["walked_pickups"][0]), int(sim.totals["lost_trips"][0])
    served = taken - walked                                        # taken at the rider's own station
    assert served >= 0 and served + walked + lost == len(rows)
    assert taken == sim.in_transit()[0]
    assert lost == sim.occupancy_table()["lost_trips"].sum()
    if walk_km == 0:
        assert walked == 0
        if trucks == 0:  # then per station too: each bike gone from it is one of its riders served
            drawn_at = np.bincount([o for _, o, _, _ in rows], minlength=network.n)
            lost_at = sim.occupancy_table().groupby("station_id", sort=False)["lost_trips"].sum().to_numpy()
            np.testing.assert_array_equal(start_bikes - sim.bikes + lost_at, drawn_at)
