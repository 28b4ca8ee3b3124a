"""The simulator trips, long trips, system-wide ride counts and the station graph read by
bicimad.opendata.auxiliary: counts as PROVENANCE.md states them, and bad input named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.jobs.demand import load_weather
from bicimad.opendata import schemas
from bicimad.opendata.auxiliary import (
    daily_weather,
    read_long_trips,
    read_simulator_trips,
    read_station_affinity,
    read_system_daily_rides,
    read_system_hourly_rides,
)
from bicimad.opendata.rejects import IngestError

from .conftest import station_record

DERIVED = "raw/trips/derived"
CONF = f"{DERIVED}/gia-urjc_Bike3S-Simulator/conf_27-06-2018"
STATION_LIST = "raw/meta/javomorales_BiciMadAnalysis/EjEstaciones.json"
IRENE = f"{DERIVED}/ireneromero_bicimad"
TZ = "Europe/Madrid"


# --------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------

def test_simulator_trips_join_stations_by_position(shared_data):
    trips = read_simulator_trips(shared_data / CONF / "users_configuration.json", shared_data / STATION_LIST)
    assert len(trips) == 4_011
    assert trips["from_station"].nunique() == 170 and trips["to_station"].nunique() == 170
    assert int((trips["from_station"] == trips["to_station"]).sum()) == 47
    # Trips per local hour (PROVENANCE), the unplug hour truncated as EMT's are.
    per_hour = trips["unplug_ts"].dt.hour.value_counts().sort_index()
    assert per_hour.tolist() == [518, 292, 200, 95, 65, 61, 123, 500, 1189, 943, 25]
    assert (trips["unplug_ts"].dt.minute == 0).all()
    assert trips["unplug_ts"].min() == pd.Timestamp("2018-06-27 00:00", tz=TZ)
    # No duration for round trips or a zero velocity; plug = unplug + duration elsewhere.
    round_trip = trips["from_station"] == trips["to_station"]
    assert trips.loc[round_trip, "duration_s"].isna().all()
    timed = trips["duration_s"].notna()
    assert timed.sum() > 3_900
    assert ((trips.loc[timed, "plug_ts"] - trips.loc[timed, "unplug_ts"]).dt.total_seconds() == trips.loc[timed, "duration_s"]).all()
    assert 300 < trips["duration_s"].median() < 1_200
    assert schemas.conform(trips, "trips").num_rows == 4_011


def test_simulator_trips_keep_seconds(shared_data):
    users = shared_data / CONF / "users_configuration.json"
    exact = read_simulator_trips(users, shared_data / STATION_LIST, keep_seconds=True)
    first = json.loads(users.read_text(encoding="utf-8"))["initialUsers"][0]["timeInstant"]
    assert exact["unplug_ts"].iloc[0] == pd.Timestamp("2018-06-27", tz=TZ) + pd.Timedelta(seconds=first)
    assert (exact["unplug_ts"].dt.floor("h").dt.hour.value_counts().sort_index().tolist()
            == [518, 292, 200, 95, 65, 61, 123, 500, 1189, 943, 25])


def test_simulator_station_positions_are_the_station_list(shared_data, tmp_path):
    """The simulator's own 172 stations each lie within 0.22 m of a distinct listed station."""
    doc = json.loads((shared_data / CONF / "stations_configuration.json").read_text(encoding="utf-8"))
    users = {"initialUsers": [{"position": s["position"], "userType": {"parameters": {"destinationPlace": s["position"]}},
                               "cyclingVelocity": 0, "timeInstant": 0} for s in doc["stations"]]}
    fake = tmp_path / "stations_as_users.json"
    fake.write_text(json.dumps(users), encoding="utf-8")
    ids = read_simulator_trips(fake, shared_data / STATION_LIST, max_distance_m=0.22, day="2018-06-27")["from_station"]
    assert len(ids) == 172 and ids.is_unique


def test_ingested_simulator_trips_count_in_station_hours(real_ingest):
    """Ingest's pickups for 2018-06-27 come from the simulator's trips: hours 0-9 covered, the
    last, partial hour (10 h, 25 trips) left out as for any source not known to be complete."""
    _root, tables, _log = real_ingest
    sh = tables["station_hours"]
    day = sh[sh["hour"].dt.strftime("%Y-%m-%d") == "2018-06-27"]
    covered = day[day["pickups"].notna()]
    assert sorted(covered["hour"].dt.hour.unique()) == list(range(10))
    assert int(covered["pickups"].sum()) == 4_011 - 25
    assert day["snapshot_ts"].isna().all()  # no snapshots that day


def test_long_trips(shared_data):
    trips = read_long_trips(shared_data / DERIVED / "javomorales_BiciMadAnalysis/TiempoUsoBiciSep17_18.xlsx")
    assert trips["sheet"].value_counts().to_dict() == {"092017": 14_421, "092018": 13_790}
    assert (trips["duration_s"] > 3_600).all()
    sep18 = trips[trips["sheet"] == "092018"]["unplug_ts"]
    assert sep18.min() == pd.Timestamp("2018-09-01 01:00", tz=TZ)
    assert sep18.max() == pd.Timestamp("2018-09-28 06:00", tz=TZ)
    assert (trips[trips["sheet"] == "092017"]["unplug_ts"].dt.strftime("%Y-%m") == "2017-09").all()


def test_system_rides_hourly_sum_to_daily(shared_data):
    hourly = read_system_hourly_rides(shared_data / IRENE / "bicimad_hourly.csv")
    daily = read_system_daily_rides(shared_data / IRENE / "bicimad_daily.csv")
    assert len(hourly) == 656 and int(hourly["rides"].sum()) == 345_397
    assert len(daily) == 28 and daily["date"].iloc[-1] == pd.Timestamp("2018-09-28")
    assert hourly["hour"].min() == pd.Timestamp("2018-09-01 01:00", tz=TZ)
    assert hourly["hour"].max() == pd.Timestamp("2018-09-28 08:00", tz=TZ)
    assert hourly["hour"].is_unique and hourly["hour"].is_monotonic_increasing
    per_day = hourly.groupby(hourly["hour"].dt.tz_localize(None).dt.normalize())["rides"].sum()
    assert per_day.to_numpy().tolist() == daily["rides"].tolist()
    assert per_day.index.equals(pd.DatetimeIndex(daily["date"]))
    for col in ("tmax", "tmin", "rain", "wind", "temp"):
        assert hourly[col].dtype == np.float64 and hourly[col].notna().all()
    first = daily.iloc[0]
    assert (first["tmax"], first["tmin"], first["prec"]) == (33.6, 21.0, 0.0)  # "33,6" and "21,0" in the file


def test_daily_weather_matches_the_demand_weather_input(shared_data, tmp_path):
    weather = daily_weather(read_system_daily_rides(shared_data / IRENE / "bicimad_daily.csv"))
    csv = tmp_path / "weather.csv"
    weather.reset_index().assign(date=lambda d: d["date"].dt.strftime("%Y-%m-%d")).to_csv(csv, index=False)
    loaded = load_weather(csv)
    pd.testing.assert_frame_equal(weather, loaded, check_freq=False)


def test_station_affinity_graph(shared_data):
    edges = read_station_affinity(shared_data / DERIVED / "Catedra-Cabify-ETSIT-UPM_bicimad_dashboard/bicimad.gexf")
    assert len(edges.attrs["stations"]) == 180 and len(edges) == 15_467
    assert int(edges["weight"].sum()) == 221_471
    loops = edges["station_a"] == edges["station_b"]
    assert int(loops.sum()) == 180 and int(edges.loc[loops, "weight"].sum()) == 9_615
    assert (edges["station_a"] <= edges["station_b"]).all()
    assert 2008 in edges.attrs["stations"]


# --------------------------------------------------------------------------------------------
# Bad input: generated files, each error names the file, the record and the field
# --------------------------------------------------------------------------------------------

def _user(lat, lon, dlat, dlon, velocity=3.0, instant=10):
    return {"position": {"latitude": lat, "longitude": lon},
            "userType": {"typeName": "USER_COMMUTER", "parameters": {"destinationPlace": {"latitude": dlat, "longitude": dlon}}},
            "cyclingVelocity": velocity, "timeInstant": instant}


STATIONS = pd.DataFrame({"station_id": [1, 2], "lat": [40.4000, 40.4100], "lon": [-3.7000, -3.7000]})


def test_simulator_trips_generated(tmp_path):
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"initialUsers": [_user(40.4, -3.7, 40.41, -3.7, velocity=4.0, instant=3_700),
                                                 _user(40.41, -3.7, 40.41, -3.7, velocity=2.0)]}))
    trips = read_simulator_trips(path, STATIONS, day="2019-01-10")
    assert trips["from_station"].tolist() == [1, 2] and trips["to_station"].tolist() == [2, 2]
    assert trips["unplug_ts"].tolist() == [pd.Timestamp("2019-01-10 01:00", tz=TZ), pd.Timestamp("2019-01-10 00:00", tz=TZ)]
    assert trips["duration_s"].iloc[0] == pytest.approx(1_112 / 4, abs=1) and np.isnan(trips["duration_s"].iloc[1])


def test_ingest_matches_simulator_trips_to_the_station_lists(data_dir, raw_src):
    """Ingest reads a simulator's users into trips.parquet, stations from the lists ingested
    with it; a position near no station is rejected, naming the file, record and field."""
    near = [station_record(1, 5), station_record(2, 5)]  # (40.411, -3.699) and (40.412, -3.698)
    (raw_src / "stations.json").write_text(json.dumps({"stations": near}), encoding="utf-8")
    conf = raw_src / "conf_10-01-2019"
    conf.mkdir()
    (conf / "users_configuration.json").write_text(json.dumps({"initialUsers": [
        _user(40.411, -3.699, 40.412, -3.698, velocity=3.0, instant=8 * 3600 + 125),
        _user(40.412, -3.698, 40.412, -3.698, velocity=2.0, instant=9 * 3600),
        _user(40.5, -3.699, 40.412, -3.698, instant=9 * 3600),
    ]}), encoding="utf-8")
    assert main(["--data-dir", str(data_dir), "ingest", "--from", str(raw_src), "--no-progress",
                 "--max-reject-share", "0.5"]) == 0
    trips = schemas.read_table("trips", data_dir / "processed" / "trips.parquet")
    assert trips[["from_station", "to_station"]].values.tolist() == [[1, 2], [2, 2]]
    assert trips["unplug_ts"].tolist() == [pd.Timestamp("2019-01-10 08:00", tz=TZ), pd.Timestamp("2019-01-10 09:00", tz=TZ)]
    assert trips["duration_s"].iloc[0] == pytest.approx(140.5 / 3, abs=1) and pd.isna(trips["duration_s"].iloc[1])
    rejects = pd.read_csv(data_dir / "processed" / "rejects.csv", dtype=str)
    (row,) = rejects.itertuples()
    assert row.file.endswith("conf_10-01-2019/users_configuration.json") and row.line == "3" and row.field == "position"
    assert row.reason == "no station within 5.0 m"


def test_resumed_ingest_reads_a_file_an_older_version_skipped(data_dir, raw_src):
    """A parts manifest that recorded the simulator's users as a skipped auxiliary file (before
    they had a reader) does not hide them: the next ingest reads the file."""
    (raw_src / "stations.json").write_text(json.dumps({"stations": [station_record(1, 5), station_record(2, 5)]}))
    conf = raw_src / "conf_10-01-2019"
    conf.mkdir()
    (conf / "users_configuration.json").write_text(json.dumps({"initialUsers": [_user(40.411, -3.699, 40.412, -3.698)]}))
    assert main(["--data-dir", str(data_dir), "ingest", "--from", str(raw_src), "--no-progress"]) == 0
    parts = data_dir / "processed" / "parts"
    manifest = json.loads((parts / "manifest.json").read_text())
    (sha,) = [k for k, e in manifest.items() if e["format"] == "trips-sim-users"]
    manifest[sha].update(format="auxiliary", rows={})
    (parts / "manifest.json").write_text(json.dumps(manifest))
    (parts / f"{sha[:16]}.trip_positions.parquet").unlink()
    assert main(["--data-dir", str(data_dir), "ingest", "--no-progress"]) == 0
    assert len(schemas.read_table("trips", data_dir / "processed" / "trips.parquet")) == 1
    assert json.loads((parts / "manifest.json").read_text())[sha]["rows"] == {"trip_positions": 1}


def test_ingest_without_a_station_list_rejects_simulator_trips(data_dir, raw_src):
    conf = raw_src / "conf_10-01-2019"
    conf.mkdir()
    (conf / "users_configuration.json").write_text(json.dumps({"initialUsers": [_user(40.411, -3.699, 40.412, -3.698)]}))
    assert main(["--data-dir", str(data_dir), "ingest", "--from", str(raw_src), "--no-progress"]) == 0
    assert len(schemas.read_table("trips", data_dir / "processed" / "trips.parquet")) == 0
    (row,) = pd.read_csv(data_dir / "processed" / "rejects.csv", dtype=str).itertuples()
    assert (row.line, row.field) == ("1", "position") and row.reason.startswith("no station list with positions")


def test_simulator_trips_bad_input(tmp_path):
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"initialUsers": [_user(40.4, -3.7, 40.41, -3.7), _user(40.4, -3.7, 40.41, -3.7, velocity="fast")]}))
    with pytest.raises(IngestError, match=r"users\.json: cannot tell the day of the trips"):
        read_simulator_trips(path, STATIONS)  # no conf_DD-MM-YYYY folder and no day given
    with pytest.raises(IngestError, match=r"users\.json: record 2: field cyclingVelocity: expected a non-negative number, got 'fast'"):
        read_simulator_trips(path, STATIONS, day="2018-06-27")
    path.write_text(json.dumps({"initialUsers": [_user(40.4, -3.7, 40.41, -3.7), _user(40.4, -3.7, 40.42, -3.7)]}))
    with pytest.raises(IngestError, match=r"users\.json: record 2: field userType\.parameters\.destinationPlace: no station "
                                          r"within 5\.0 m \(nearest 1112\.\d m away, id 2\)"):
        read_simulator_trips(path, STATIONS, day="2018-06-27")


def test_long_trips_bad_input(tmp_path):
    import openpyxl

    path = tmp_path / "long.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "092018"
    ws.append(["2018-09-02T17:00:00.000+0200", 5000])
    ws.append(["2018-09-03T08:00:00.000+0200", "long"])
    wb.save(path)
    with pytest.raises(IngestError, match=r"long\.xlsx#092018: row 2: column B \(travel_time\): expected seconds, got 'long'"):
        read_long_trips(path)
    ws["A1"] = "yesterday"
    ws["B2"] = 4000
    wb.save(path)
    with pytest.raises(IngestError, match=r"long\.xlsx#092018: row 1: column A \(unplug_hourTime\): unparsable time 'yesterday'"):
        read_long_trips(path)


def test_system_rides_bad_input(tmp_path):
    hourly = tmp_path / "hourly.csv"
    head = "day_of_week,hour,rides,weekend,mean_for_weekday_and_hour,tmax,tmin,rain,wind,temp\n"
    hourly.write_text(head + 'Sat,23,5,weekend,4.0,"33,6","21,0",0.0,1.1,"21,0"\nSun,0,7,weekend,4.0,"30,1","20,0",0.0,1.1,warm\n')
    with pytest.raises(IngestError, match=r"hourly\.csv: line 3: field temp: not a number 'warm'"):
        read_system_hourly_rides(hourly)
    # A new day starts where the hour goes back; Sep 2 2018 is a Sunday, not a Monday.
    hourly.write_text(head + 'Sat,23,5,weekend,4.0,"33,6","21,0",0.0,1.1,"21,0"\nMon,0,7,weekday,4.0,"30,1","20,0",0.0,1.1,20.5\n')
    with pytest.raises(IngestError, match=r"hourly\.csv: line 3: field day_of_week: 'Mon', but row-day 2018-09-02 is a Sun"):
        read_system_hourly_rides(hourly)
    daily = tmp_path / "daily.csv"
    daily.write_text("day_of_week,rides,weekend,mean_for_weekday,tmed,prec,velmedia,tmax,tmin\n"
                     'Sat,8232,weekend,9161.0,27.3,0.0,1.1,"33,6","21,0"\nSun,-4,weekend,9269.25,27.5,1.2,1.7,"34,8","20,2"\n')
    with pytest.raises(IngestError, match=r"daily\.csv: line 3: field rides: expected a whole number, got '-4'"):
        read_system_daily_rides(daily)


def test_station_affinity_bad_input(tmp_path):
    path = tmp_path / "graph.gexf"
    path.write_text('<?xml version="1.0"?><gexf xmlns="http://www.gexf.net/1.2draft" version="1.2">'
                    '<graph defaultedgetype="undirected"><nodes><node id="1"/><node id="2"/></nodes><edges>'
                    '<edge source="2" target="1" id="0" weight="3"/><edge source="1" target="1" id="1" weight="2.5"/>'
                    '</edges></graph></gexf>')
    with pytest.raises(IngestError, match=r"graph\.gexf: edge 2: field weight: expected an integer, got '2\.5'"):
        read_station_affinity(path)
    path.write_text(path.read_text().replace('weight="2.5"', 'weight="2"').replace('target="1" id="0"', 'target="7" id="0"'))
    with pytest.raises(IngestError, match=r"graph\.gexf: edge 1: field target: node 7 is not declared"):
        read_station_affinity(path)
    path.write_text(path.read_text().replace('target="7"', 'target="1"'))
    edges = read_station_affinity(path)
    assert edges.values.tolist() == [[1, 2, 3], [1, 1, 2]] and edges.attrs["stations"] == [1, 2]
