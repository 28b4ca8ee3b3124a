"""The synthetic city: determinism, EMT file shapes, realism, and docks consistent with trips."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bicimad.config import REPO_ROOT
from bicimad.opendata import schemas
from bicimad.opendata.synthetic import CityTruth, city_truth, generate_city, write_city

MADRID = ZoneInfo("Europe/Madrid")
SMALL = dict(n_stations=30, days=3, trips_per_day=900.0, trip_days=None)
STATION_KEYS = {"activate", "name", "reservations_count", "light", "total_bases", "free_bases", "number",
                "longitude", "no_available", "address", "latitude", "dock_bikes", "id"}
TRIP_KEYS = ["_id", "user_day_code", "idplug_base", "user_type", "idunplug_base", "travel_time",
             "idunplug_station", "ageRange", "idplug_station", "unplug_hourTime", "zip_code"]


@pytest.fixture(scope="module")
def week():
    """A full-size city over one week (Sat 1 – Fri 7 Sep 2018)."""
    return generate_city(0, days=7)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _local_hour(ts):
    return np.array([datetime.fromtimestamp(float(t), MADRID).hour for t in ts])


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    first = write_city(tmp_path / "a", seed=7, **SMALL)
    write_city(tmp_path / "b", seed=7, **SMALL)
    write_city(tmp_path / "c", seed=8, **SMALL)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert len(first) == len(a) == 3
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a)


def test_files_have_emt_shapes(tmp_path):
    paths = write_city(tmp_path, seed=1, **SMALL)
    folder = tmp_path / "synthetic"
    assert sorted(p.relative_to(folder).as_posix() for p in paths) == [
        "meta/stations.json", "stations/Bicimad_Estacions_201809.json", "trips/201809_Usage_Bicimad.json"]

    meta = json.loads((folder / "meta/stations.json").read_text(encoding="utf-8"))
    assert len(meta["stations"]) == 30
    assert all(set(s) == STATION_KEYS for s in meta["stations"])
    assert all(isinstance(s["latitude"], str) and isinstance(s["longitude"], str) for s in meta["stations"])

    snapshots = _read_lines(folder / "stations/Bicimad_Estacions_201809.json")
    assert 60 <= len(snapshots) <= 73  # about 24 a day over 3 days
    stamps = [datetime.fromisoformat(s["_id"]) for s in snapshots]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", s["_id"]) for s in snapshots)
    assert stamps == sorted(stamps) and stamps[0].tzinfo is None
    gaps = np.diff([s.timestamp() for s in stamps])
    assert np.median(gaps) == pytest.approx(3602, abs=1)  # EMT's drifting clock
    for snap in snapshots:
        assert set(snap) == {"_id", "stations"}
        for s in snap["stations"]:
            assert set(s) == STATION_KEYS
            assert 0 <= s["dock_bikes"] <= s["total_bases"]
            assert s["dock_bikes"] + s["free_bases"] == s["total_bases"]

    lines = (folder / "trips/201809_Usage_Bicimad.json").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith('{ "_id" : { "$oid" : "')  # mongoexport spacing
    ids = {s["id"] for s in meta["stations"]}
    for line in lines:
        trip = json.loads(line)
        assert list(trip) == TRIP_KEYS
        assert re.fullmatch(r"[0-9a-f]{24}", trip["_id"]["$oid"])
        assert re.fullmatch(r"[0-9a-f]{64}", trip["user_day_code"])
        assert re.fullmatch(r"2018-09-0[1-3]T\d\d:00:00\.000\+0200", trip["unplug_hourTime"]["$date"])
        assert trip["idunplug_station"] in ids and trip["idplug_station"] in ids
        assert trip["travel_time"] > 0 and trip["user_type"] in (1, 2, 3)


def test_station_and_trip_keys_match_real_emt_files(tmp_path, shared_data):
    write_city(tmp_path, seed=1, **SMALL)
    real_station = json.loads((shared_data / "raw/meta/javomorales_BiciMadAnalysis/EjEstaciones.json")
                              .read_text(encoding="utf-8"))["stations"][0]
    real_trip = json.loads((shared_data / "raw/trips/samples/MiguelGomezC_Sparkinson/sample_10e3.json")
                           .read_text(encoding="utf-8").splitlines()[0])
    ours = json.loads((tmp_path / "synthetic/trips/201809_Usage_Bicimad.json").read_text().splitlines()[0])
    snapshot = _read_lines(tmp_path / "synthetic/stations/Bicimad_Estacions_201809.json")[0]
    assert set(snapshot["stations"][0]) == set(real_station)
    assert {k: type(v) for k, v in snapshot["stations"][0].items()} == {k: type(v) for k, v in real_station.items()}
    assert list(ours) == list(real_trip)


def test_station_names_and_addresses_say_synthetic_and_names_are_unique(week, tmp_path):
    assert all(name.endswith(" [synthetic]") for name in week.name)
    assert all(address.endswith(" [synthetic]") for address in week.address)
    assert len(set(week.name)) == week.n == 172
    # The two stations of a sub-station pair share their address and differ by A / B.
    pairs = [k for k, number in enumerate(week.number) if number.endswith("b")]
    assert pairs
    for k in pairs:
        assert week.address[k] == week.address[k - 1]
        assert (week.name[k - 1], week.name[k]) == (week.name[k].replace(" B [synthetic]", " A [synthetic]"), week.name[k])
    # Other stations stand at distinct addresses.
    singles = [a for k, a in enumerate(week.address) if not week.number[k][-1].isalpha()]
    assert len(set(singles)) == len(singles)
    write_city(tmp_path, seed=1, **SMALL)
    listed = json.loads((tmp_path / "synthetic/meta/stations.json").read_text(encoding="utf-8"))["stations"]
    snapshot = _read_lines(tmp_path / "synthetic/stations/Bicimad_Estacions_201809.json")[-1]["stations"]
    for stations in (listed, snapshot):
        assert all(s["name"].endswith(" [synthetic]") and s["address"].endswith(" [synthetic]") for s in stations)
        assert len({s["name"] for s in stations}) == len(stations) == 30


def test_network_looks_like_bicimad(week):
    assert week.n == 172
    assert len(set(week.station_id.tolist())) == 172 and week.station_id.max() > 172  # ids with gaps
    assert np.median(week.capacity) == 24 and week.capacity.min() >= 12 and week.capacity.max() <= 30
    assert 40.38 < week.lat.min() and week.lat.max() < 40.46 and -3.74 < week.lon.min() and week.lon.max() < -3.66
    dist = week.distance_m()
    assert 4000 < dist.max() < 9000
    docked = week.snapshot_bikes.sum(axis=1)
    fill = docked.mean() / week.capacity.sum()
    assert 0.35 < fill < 0.43
    trips_per_day = len(week.trips["unplug_ts"]) / week.params.days
    assert 12_500 < trips_per_day < 16_000
    empty = (week.snapshot_bikes == 0).mean()
    full = (week.snapshot_bikes == week.capacity).mean()
    assert 0.03 < empty < 0.15 and full < 0.05


def test_weekday_docked_bikes_dip_at_commuting_hours(week):
    hour = _local_hour(week.snapshot_ts)
    weekday = np.array([datetime.fromtimestamp(t, MADRID).weekday() < 5 for t in week.snapshot_ts])
    docked = week.snapshot_bikes.sum(axis=1)
    by_hour = np.array([docked[weekday & (hour == h)].mean() for h in range(24)])
    assert by_hour[8] < by_hour[5] - 200 and by_hour[8] < by_hour[11] - 100
    assert by_hour[18:21].min() < by_hour[22] - 50
    assert by_hour.argmin() in (8, 18, 19, 20)
    # Weekends are flatter: their pickup profile varies less around its mean than weekdays'.
    profile = week.pickup_rate.sum(axis=2)
    assert (profile[1].std() / profile[1].mean()) < (profile[0].std() / profile[0].mean())


def test_hourly_profile_matches_real_september_2018(week, shared_data):
    """EMT's city-wide hourly ride counts of Sep 2018 against the city's expected pickups."""
    import pandas as pd

    real = pd.read_csv(shared_data / "raw/trips/derived/ireneromero_bicimad/bicimad_hourly.csv")
    profile = week.pickup_rate.sum(axis=2)
    for day_type, label in ((0, "weekday"), (1, "weekend")):
        real_profile = real[real.weekend == label].groupby("hour").rides.mean().reindex(range(24)).to_numpy()
        assert np.corrcoef(real_profile, profile[day_type])[0, 1] > 0.93, label
    real_ratio = (real[real.weekend == "weekend"].rides.mean() / real[real.weekend == "weekday"].rides.mean())
    assert profile[1].sum() / profile[0].sum() == pytest.approx(real_ratio, rel=0.1)


def test_commuting_flows_run_to_the_centre_in_the_morning_and_back_in_the_evening(week):
    trips = week.trips
    weekday = week.day_type[trips["day"]] == 0
    hour = trips["hour"]
    business_gain = week.business[trips["to_idx"]] - week.business[trips["from_idx"]]
    morning = weekday & (hour >= 7) & (hour <= 9)
    evening = weekday & (hour >= 17) & (hour <= 20)
    assert business_gain[morning].mean() > 0.05
    assert business_gain[evening].mean() < -0.02
    centre = np.hypot(week.lat - 40.4169, (week.lon + 3.7035) * 0.76)
    assert (centre[trips["from_idx"][morning]] - centre[trips["to_idx"][morning]]).mean() > 0


def test_snapshots_change_exactly_by_returns_minus_pickups_plus_truck_moves(week):
    trips, moves, n = week.trips, week.truck_moves, week.n
    assert len(moves["ts"]) > 0 and trips["diverted"].any() and len(week.lost_pickups["ts"]) > 0
    t = week.snapshot_ts
    for a in range(0, len(t) - 1, 7):
        lo, hi = t[a], t[a + 1]
        change = np.zeros(n, dtype=int)
        np.add.at(change, trips["to_idx"][(trips["plug_ts"] >= lo) & (trips["plug_ts"] < hi)], 1)
        np.add.at(change, trips["from_idx"][(trips["unplug_ts"] >= lo) & (trips["unplug_ts"] < hi)], -1)
        moved = (moves["ts"] >= lo) & (moves["ts"] < hi)
        np.add.at(change, moves["to_idx"][moved], moves["bikes"][moved])
        np.add.at(change, moves["from_idx"][moved], -moves["bikes"][moved])
        np.testing.assert_array_equal(week.snapshot_bikes[a + 1] - week.snapshot_bikes[a], change)


def test_fleet_is_conserved_docked_plus_riding(week):
    trips = week.trips
    fleet = week.initial_bikes.sum()
    for a in range(0, len(week.snapshot_ts), 11):
        t = week.snapshot_ts[a]
        riding = np.count_nonzero((trips["unplug_ts"] < t) & (trips["plug_ts"] >= t))
        assert week.snapshot_bikes[a].sum() + riding == fleet


def test_trip_file_net_flow_matches_snapshot_changes(tmp_path):
    """From the files alone (no trucks): per station and day, trip net inflow ≈ docked change."""
    write_city(tmp_path, seed=3, n_stations=60, days=4, trips_per_day=3000.0, trucks=0)
    folder = tmp_path / "synthetic"
    snapshots = _read_lines(folder / "stations/Bicimad_Estacions_201809.json")
    ids = sorted(s["id"] for s in snapshots[0]["stations"])
    col = {sid: k for k, sid in enumerate(ids)}
    first_of_day = {}
    for snap in snapshots:
        first_of_day.setdefault(snap["_id"][:10], {s["id"]: s["dock_bikes"] for s in snap["stations"]})
    days = sorted(first_of_day)
    net = np.zeros((len(days), len(ids)))
    for trip in _read_lines(folder / "trips/201809_Usage_Bicimad.json"):
        day = trip["unplug_hourTime"]["$date"][:10]
        if day in days:
            net[days.index(day), col[trip["idplug_station"]]] += 1
            net[days.index(day), col[trip["idunplug_station"]]] -= 1
    observed = np.array([[first_of_day[days[d + 1]][sid] - first_of_day[days[d]][sid] for sid in ids]
                         for d in range(len(days) - 1)])
    r = np.corrcoef(net[:-1].ravel(), observed.ravel())[0, 1]
    assert r > 0.9
    assert np.abs(net[:-1] - observed).mean() < 0.25 * np.abs(observed).mean() + 1


def test_truth_rates_are_recovered_from_the_draws():
    city = generate_city(5, n_stations=40, days=14, trips_per_day=4000.0, trucks=0, fill=0.6)
    trips, lost = city.trips, city.lost_pickups
    attempts = np.zeros((2, 24))
    np.add.at(attempts, (city.day_type[trips["day"]], trips["hour"]), 1)
    lost_hour = _local_hour(lost["ts"])
    lost_day = np.array([(datetime.fromtimestamp(t, MADRID).date() - city.dates[0]).days for t in lost["ts"]], int)
    np.add.at(attempts, (city.day_type[lost_day], lost_hour), 1)
    expected = np.zeros((2, 24))
    for d, dt in enumerate(city.day_type):
        expected[dt] += city.pickup_rate[dt].sum(axis=1) * city.day_factor[d]
    z = (attempts - expected) / np.sqrt(expected)
    assert np.abs(z).max() < 5
    # Every expected pickup is returned somewhere: returns by plug hour conserve the daily volume.
    np.testing.assert_allclose(city.return_rate.sum(axis=(1, 2)), city.pickup_rate.sum(axis=(1, 2)))
    np.testing.assert_allclose(city.od_prob(0, 8).sum(axis=1), 1.0)
    rates = city.rates_frame()
    assert len(rates) == 2 * 24 * 40
    monday_8 = rates[(rates.day_type == 0) & (rates.hour == 8)]
    np.testing.assert_allclose(monday_8.pickup_rate.to_numpy(), city.trip_rates[0, 8].sum(axis=1))
    od = schemas.conform(city.od_frame(1), "od").to_pandas()
    np.testing.assert_allclose(od.groupby("from_station").prob.sum(), 1.0)
    assert set(od.from_station) == set(city.station_id.tolist())


def test_truth_alone_is_the_generated_citys_truth(week):
    truth = city_truth(0, days=7)
    for f in fields(CityTruth):
        np.testing.assert_equal(getattr(truth, f.name), getattr(week, f.name), err_msg=f.name)
    assert not np.array_equal(city_truth(1, days=7).lat, truth.lat)


def test_dst_autumn_and_spring():
    autumn = generate_city(2, n_stations=20, days=2, start="2018-10-27", trips_per_day=2000.0)
    stamps = [datetime.fromtimestamp(t, MADRID) for t in autumn.snapshot_ts]
    offsets = {s.utcoffset().total_seconds() / 3600 for s in stamps}
    assert offsets == {1.0, 2.0}
    assert 47 <= len(stamps) <= 49  # 49 real hours over the two days
    spring = generate_city(2, n_stations=20, days=2, start="2019-03-30", trips_per_day=2000.0)
    sunday = spring.trips["day"] == 1
    assert np.count_nonzero(sunday & (spring.trips["hour"] == 2)) == 0
    assert np.count_nonzero(sunday & (spring.trips["hour"] == 3)) > 0


def test_dst_trip_offsets_in_files(tmp_path):
    write_city(tmp_path, seed=2, n_stations=20, days=2, start="2018-10-27", trips_per_day=2000.0)
    text = (tmp_path / "synthetic/trips/201810_Usage_Bicimad.json").read_text()
    assert '"2018-10-27T12:00:00.000+0200"' in text and '"2018-10-28T12:00:00.000+0100"' in text


def test_write_removes_files_of_an_earlier_city(tmp_path):
    write_city(tmp_path, seed=1, n_stations=10, days=3, start="2018-09-29", trips_per_day=300.0)
    assert (tmp_path / "synthetic/stations/Bicimad_Estacions_201810.json").exists()
    write_city(tmp_path, seed=1, n_stations=10, days=1, start="2018-09-01", trips_per_day=300.0)
    names = sorted(p.name for p in (tmp_path / "synthetic").rglob("*.json"))
    assert names == ["201809_Usage_Bicimad.json", "Bicimad_Estacions_201809.json", "stations.json"]


def test_default_writes_one_week_of_trips_and_every_day_of_snapshots(tmp_path):
    write_city(tmp_path, seed=0, n_stations=12, days=9, trips_per_day=400.0)
    folder = tmp_path / "synthetic"
    trip_days = {json.loads(line)["unplug_hourTime"]["$date"][:10]
                 for line in (folder / "trips/201809_Usage_Bicimad.json").read_text().splitlines()}
    snapshot_days = {s["_id"][:10] for s in _read_lines(folder / "stations/Bicimad_Estacions_201809.json")}
    assert trip_days == {f"2018-09-0{d}" for d in range(1, 8)}
    assert len(snapshot_days) == 9


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="n_stations"):
        generate_city(0, n_stations=1)
    with pytest.raises(ValueError, match="fill"):
        generate_city(0, fill=1.5)
    with pytest.raises(TypeError, match="colour"):
        generate_city(0, colour="red")


@pytest.mark.parametrize("first", ["bicimad.opendata.synthetic", "bicimad.sim.core", "bicimad.sim.network"])
def test_city_and_simulator_import_in_any_order(first):
    """The city runs its docks on the simulator's core, and the simulator imports opendata's
    schemas and builds its synthetic network from the city: no import cycle, whichever comes first."""
    code = (f"import {first}; from bicimad.opendata.synthetic import generate_city; "
            "from bicimad.sim.network import synthetic_network; synthetic_network(12, 0); "
            "generate_city(0, n_stations=12, days=1, trips_per_day=200.0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
