"""``bicimad replan``: the rest of the planned day re-planned from a live GBFS state (served on 127.0.0.1)."""

from __future__ import annotations

import json
from functools import partial
from http.server import SimpleHTTPRequestHandler

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata.schemas import read_table
from tests.jobs.conftest import small_city_config
from tests.opendata.conftest import loopback_server

DATE = "2018-09-08"   # the night; the planned day is the 9th


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A finished nightly run on a small synthetic city."""
    root = tmp_path_factory.mktemp("replan")
    config = small_city_config(root, seed=6, n_stations=30, trips_per_day=2500)
    data = root / "data"
    assert main(["--data-dir", str(data), "nightly", "--date", DATE, "--config", str(config), "--no-progress"]) == 0
    return data / "runs" / "nightly" / DATE


def _gbfs(folder, stations: pd.DataFrame, bikes: dict[int, int], when: pd.Timestamp):
    """GBFS v2 feeds for ``stations`` with ``bikes`` docked, last updated at ``when``."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = int(when.timestamp())
    info = [{"station_id": str(s.station_id), "name": s.name, "lat": s.lat, "lon": s.lon, "capacity": int(s.capacity)}
            for s in stations.itertuples()]
    status = [{"station_id": str(s.station_id), "num_bikes_available": bikes[s.station_id],
               "num_docks_available": int(s.capacity) - bikes[s.station_id], "is_installed": 1, "is_renting": 1,
               "is_returning": 1} for s in stations.itertuples()]
    (folder / "station_information.json").write_text(json.dumps({"last_updated": stamp, "data": {"stations": info}}))
    (folder / "station_status.json").write_text(json.dumps({"last_updated": stamp, "data": {"stations": status}}))


def test_replan_starts_from_the_live_state_and_plans_the_remaining_hours(night, tmp_path, capsys):
    stations = read_table("stations", night / "stations.parquet").drop_duplicates("station_id")
    start = read_table("snapshots", night / "start.parquet").set_index("station_id")["bikes"]
    stations = stations[stations["station_id"].isin(start.index)]
    # at 14:10 of the planned day half the stations are empty, the others full: work for the trucks
    bikes = {sid: (0 if i % 2 else int(cap)) for i, (sid, cap) in enumerate(zip(stations["station_id"], stations["capacity"]))}
    when = pd.Timestamp("2018-09-09 14:10", tz="Europe/Madrid")
    _gbfs(tmp_path / "feed", stations, bikes, when)
    with loopback_server(partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "feed"))) as base:
        assert main(["replan", str(night), "--now", "--gbfs-url", base + "/"]) == 0
    out = night / "replan-1410"
    plan = pd.read_csv(out / "plan.csv")
    assert len(plan) > 0
    hours = pd.to_datetime(plan["hour"], utc=True).dt.tz_convert("Europe/Madrid")
    assert hours.min() == pd.Timestamp("2018-09-09 14:00", tz="Europe/Madrid")    # the rest of the day only
    live = json.loads((out / "live.json").read_text())
    assert live["hour_index"] == 14 and live["planner"] == "greedy" and live["stations"] == len(stations)
    # greedy unloads at stations the live state shows empty, loads at full ones, in its first hour
    first = plan[hours == hours.min()]
    for row in first.itertuples():
        assert (bikes[row.station_id] == 0) == (row.action == "unload")
    assert "replan from the live state of 2018-09-09 14:10" in capsys.readouterr().out
    assert (night / "plan.csv").is_file()      # the night's plan is kept beside it


def test_replan_refuses_a_state_from_another_day(night, tmp_path, capsys):
    stations = read_table("stations", night / "stations.parquet").drop_duplicates("station_id")
    _gbfs(tmp_path / "feed", stations, dict.fromkeys(stations["station_id"], 1), pd.Timestamp("2018-09-11 09:00", tz="UTC"))
    with loopback_server(partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "feed"))) as base:
        assert main(["replan", str(night), "--now", "--gbfs-url", base + "/"]) == 2
    assert "outside the planned day 2018-09-09" in capsys.readouterr().err


def test_replan_refuses_the_default_policy_on_a_network_it_was_not_trained_on(night, tmp_path, capsys):
    stations = read_table("stations", night / "stations.parquet").drop_duplicates("station_id")
    _gbfs(tmp_path / "feed", stations, dict.fromkeys(stations["station_id"], 1),
          pd.Timestamp("2018-09-09 10:00", tz="Europe/Madrid"))
    with loopback_server(partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "feed"))) as base:
        assert main(["replan", str(night), "--now", "--gbfs-url", base + "/", "--planner", "ppo"]) == 2
    err = capsys.readouterr().err
    # the run planned the 30-station synthetic city (its ledger says so); the policy knows 210 stations
    assert "network.stations is 210, the live network at 2018-09-09 10:00:00+02:00's is 30" in err
    assert "(210 synthetic stations trained on, 30 synthetic here)" in err and "bicimad train-agent" in err
    assert not (night / "replan-1000").exists()
