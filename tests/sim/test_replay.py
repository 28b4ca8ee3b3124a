"""Replaying trips: a hand-counted three-station morning, and real EMT trips."""

import numpy as np
import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.sim.core import FleetSim
from bicimad.sim.network import Network
from bicimad.sim.riders import TripReplay
from bicimad.sim.rollout import rider_rng, run_episode
from bicimad.sim.scenario import Scenario

# Three stations on an east-west line, 1 km apart: A(1) - B(2) - C(3).
KM_LON = 1 / (111.32 * np.cos(np.radians(40.42)))
LINE = Network.build([1, 2, 3], [40.42] * 3, [-3.70, -3.70 + KM_LON, -3.70 + 2 * KM_LON],
                     capacity=[2, 2, 3], bikes=[1, 0, 3])
DAY = pd.Timestamp("2018-09-27 08:00", tz=TZ)

# (unplug minute after 08:00, from, to, duration minutes) and what happens, counted by hand:
TRIPS = [
    (0, 1, 2, 5),    # A 1->0 served; arrives B at 08:05 (B 0->1)
    (2, 1, 3, 5),    # A empty: LOST at A
    (3, 3, 1, 10),   # C 3->2; arrives A at 08:13 (A 0->1)
    (6, 2, 3, 4),    # B 1->0; arrives C at 08:10 (C 2->3, full again)
    (7, 2, 1, 5),    # B empty: LOST at B
    (11, 1, 2, 5),   # A empty: LOST at A
    (14, 1, 3, 2),   # A 1->0; arrives C at 08:16: C full -> DIVERTED to B (nearest with a dock)
]


def trips_frame(rows) -> pd.DataFrame:
    return pd.DataFrame({
        "unplug_ts": [DAY + pd.Timedelta(minutes=m) for m, *_ in rows],
        "plug_ts": [DAY + pd.Timedelta(minutes=m + d) for m, _, _, d in rows],
        "duration_s": [60.0 * d for *_, d in rows],
        "from_station": [f for _, f, _, _ in rows],
        "to_station": [t for _, _, t, _ in rows],
        "user_type": 1,
        "source": "hand",
    })


def replay(walk_km=0.0):
    scenario = Scenario(name="line").override({"fleet.trucks": 0, "episode.hours": 2, "riders.walk_km": walk_km})
    trips = TripReplay.from_trips(trips_frame(TRIPS), LINE, DAY, hours=2)
    sim = FleetSim(LINE, scenario, trips)
    sim.reset([rider_rng(0)])
    while not sim.done:
        sim.step(np.zeros((1, 0), np.int64))
    return sim


def test_hand_counted_morning():
    sim = replay()
    table = sim.occupancy_table().set_index(["station_id", "hour"])
    eight, nine = DAY, DAY + pd.Timedelta(hours=1)
    assert table.loc[(1, eight), "lost_trips"] == 2
    assert table.loc[(2, eight), "lost_trips"] == 1
    assert table.loc[(3, eight), "lost_trips"] == 0
    assert table["lost_trips"].sum() == 3
    assert table.loc[(3, eight), "diverted_returns"] == 1 and table["diverted_returns"].sum() == 1
    # A: 0 bikes after the first pickup; B starts empty; C starts full and fills again
    assert list(table.xs(eight, level="hour")["state"]) == ["empty", "empty", "full"]
    # end of the morning: A 0, B 1 (the diverted rider, 1.3 km road at 12 km/h), C 3 (full)
    np.testing.assert_array_equal(sim.bikes, [0, 1, 3])
    assert list(table.xs(nine, level="hour")["state"]) == ["empty", "balanced", "full"]
    assert sim.total_bikes()[0] == 4 and sim.in_transit()[0] == 0


def test_hand_counted_with_walking():
    """Within 1.1 km the 08:07 rider at empty B walks to C (A is empty too) and rides to A,
    arriving 08:12 (A 0->1); the 08:11 rider at A still finds none (the bike arrives a minute
    later) and C (2 km) is too far; the 08:13 arrival fills A (2/2); the 08:14 rider takes
    one (A 1); C never overflows: 3 - 1 - 1 + 1 + 1 = 3."""
    sim = replay(walk_km=1.1)
    table = sim.occupancy_table()
    assert table["lost_trips"].sum() == 2
    assert int(sim.totals["walked_pickups"][0]) == 1
    assert table["diverted_returns"].sum() == 0
    np.testing.assert_array_equal(sim.bikes, [1, 0, 3])
    assert list(table[table["hour"] == DAY]["state"]) == ["empty_and_full", "empty", "full"]


def test_whole_hour_times_are_spread_with_the_seed():
    rows = [(0, 1, 2, 5), (0, 3, 1, 5), (60, 2, 3, 5)]
    trips = TripReplay.from_trips(trips_frame(rows), LINE, DAY, hours=2)
    assert trips.whole_hours
    sampler = trips.sampler(LINE, Scenario(name="x").override({"episode.hours": 2}))
    a, b = sampler.draw(rider_rng(1)), sampler.draw(rider_rng(1))
    np.testing.assert_array_equal(a.minute, b.minute)
    assert np.all(a.minute // 60 == np.sort([0, 0, 1]))


@pytest.mark.parametrize("start_hour", [7, 17])
def test_replay_real_trips_2018_09_27(real_processed, start_hour):
    """The real 2018-09-27 origin-destination trips (hours 7-10 and 17-20) replayed on the
    real network from the snapshot at the window's start, with no trucks: a trip is lost only
    at a station the replay has emptied, and bikes are conserved."""
    _, processed = real_processed
    start = pd.Timestamp(f"2018-09-27 {start_hour:02d}:00", tz=TZ)
    network = processed.network_at(start)
    assert 160 <= network.n <= 172
    trips = processed.trips[processed.trips["source"].str.contains("Usos092018")]
    replay_ = TripReplay.from_trips(trips, network, start, hours=4)
    n_window = ((trips["unplug_ts"] >= start) & (trips["unplug_ts"] < start + pd.Timedelta(hours=4))).sum()
    assert len(replay_.minute) > 0.95 * n_window > 2500
    scenario = Scenario(name="replay").override({"fleet.trucks": 0, "episode.hours": 4})
    sim = FleetSim(network, scenario, replay_)
    sim.reset([rider_rng(0)])
    total = sim.total_bikes()[0]
    while not sim.done:
        sim.step(np.zeros((1, 0), np.int64))
        assert sim.total_bikes()[0] == total
    occ = sim.occupancy_table()
    lost = occ[occ["lost_trips"] > 0]
    assert 0 < occ["lost_trips"].sum() < 0.5 * len(replay_.minute)
    assert set(lost["state"]) <= {"empty", "empty_and_full"}
    assert len(occ) == 4 * network.n


def test_replay_real_april_2020_day(real_processed):
    """A full lockdown-exit day of real trips (Apr 2020, real durations, 20 % EMT staff) on the
    stations table's network: runs a whole day, conserves bikes, leaves long trips riding."""
    _, processed = real_processed
    trips = processed.trips[processed.trips["source"].str.contains("202004_movements")]
    day = pd.Timestamp("2020-04-28", tz=TZ)
    stations = processed.stations[processed.stations["station_id"].isin(trips["from_station"])]
    network = Network.from_tables(stations)
    replay_ = TripReplay.from_trips(trips, network, day, hours=24)
    on_day = trips[(trips["unplug_ts"] >= day) & (trips["unplug_ts"] < day + pd.Timedelta(days=1))]
    assert len(replay_.minute) == on_day["to_station"].notna().sum() > 500
    assert replay_.whole_hours  # EMT truncates unplug times to the hour: minutes are drawn
    result = run_episode(network, replay_, None, Scenario(name="apr").override({"fleet.trucks": 0}), None, seed=1)
    row = result.summary.iloc[0]
    occ = result.occupancy
    assert row["balanced"] + row["empty"] + row["full"] + row["empty_and_full"] == 24 * network.n
    assert row["lost_trips"] == occ["lost_trips"].sum() > 0
    assert set(occ.loc[occ["lost_trips"] > 0, "state"]) <= {"empty", "empty_and_full"}
    assert set(occ.loc[occ["diverted_returns"] > 0, "state"]) <= {"full", "empty_and_full"}
