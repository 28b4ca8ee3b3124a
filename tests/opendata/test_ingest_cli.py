"""`bicimad ingest` with its other sources: a live GBFS feed served from 127.0.0.1, the
synthetic city; and `bicimad data summary` on what they build."""

from __future__ import annotations

import json
from functools import partial
from http.server import SimpleHTTPRequestHandler

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata import schemas

from .conftest import hourly_snapshots, loopback_server, write_lines


@pytest.fixture
def gbfs_server(tmp_path):
    """A GBFS v2 feed folder (discovery, station_information, station_status) over HTTP."""
    root = tmp_path / "gbfs"
    root.mkdir()
    stations = [(1, "1a", 24, 7), (2, "1b", 24, 0), (3, "2", 18, 18)]
    (root / "station_information.json").write_text(json.dumps({"last_updated": 1572136020, "data": {"stations": [
        {"station_id": str(i), "short_name": num, "name": f"Estación {num}", "address": "Calle", "lat": 40.41 + i / 1000,
         "lon": -3.70, "capacity": cap} for i, num, cap, _ in stations]}}))
    (root / "station_status.json").write_text(json.dumps({"last_updated": 1572136020, "data": {"stations": [
        {"station_id": str(i), "num_bikes_available": bikes, "num_docks_available": cap - bikes, "is_installed": 1,
         "is_renting": 1, "is_returning": 1} for i, _, cap, bikes in stations]}}))
    with loopback_server(partial(SimpleHTTPRequestHandler, directory=str(root))) as base:
        (root / "gbfs.json").write_text(json.dumps({"data": {"es": {"feeds": [
            {"name": n, "url": f"{base}/{n}.json"} for n in ("station_information", "station_status")]}}}))
        yield f"{base}/gbfs.json"


def test_live_gbfs_snapshot_joins_local_history(data_dir, raw_src, gbfs_server):
    write_lines(raw_src / "201910_stations_madrid.json", hourly_snapshots("2019-10-26 22:00", 3, n_stations=3))
    assert main(["ingest", "--from", str(raw_src), "--no-progress"]) == 0
    assert main(["ingest", "--live", "gbfs", "--gbfs-url", gbfs_server, "--no-progress"]) == 0
    snaps = schemas.read_table("snapshots", data_dir / "processed" / "snapshots.parquet")
    live = snaps[snaps["source"].str.startswith("live/")]
    # last_updated 1572136020 = 2019-10-27 00:27 UTC = 02:27 CEST, the first pass of the repeated hour.
    assert live["ts"].unique().tolist() == [pd.Timestamp("2019-10-27 02:27:00+02:00")]
    assert live.set_index("station_id")["bikes"].to_dict() == {1: 7, 2: 0, 3: 18}
    assert len(snaps) == 3 * 3 + 3  # history kept, live snapshot added
    sh = schemas.read_table("station_hours", data_dir / "processed" / "station_hours.parquet")
    assert bool(sh.loc[(sh["station_id"] == 2) & (sh["hour"] == pd.Timestamp("2019-10-27 02:00+02:00")), "empty"].item())
    manifest = json.loads((data_dir / "raw" / "manifest.json").read_text())
    assert sum(entry["origin"] == "live gbfs" for entry in manifest.values()) == 1


def test_live_gbfs_unreachable_is_a_clean_error(data_dir, capsys, monkeypatch):
    from bicimad.opendata import live

    monkeypatch.setattr(live, "fetch_gbfs", partial(live.fetch_gbfs, sleep=lambda _s: None))  # no backoff waits
    assert main(["ingest", "--live", "gbfs", "--gbfs-url", "http://127.0.0.1:9/gbfs.json", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--live gbfs" in err and "Traceback" not in err


def test_synthetic_city_ingests_alone(data_dir, raw_src, capsys, monkeypatch):
    from bicimad.opendata import synthetic

    # A small city keeps the test fast; `make run` ingests the full default one.
    monkeypatch.setattr(synthetic, "write_city", partial(synthetic.write_city, n_stations=30, days=3, trips_per_day=3000))
    write_lines(raw_src / "201907_stations_madrid.json", hourly_snapshots("2019-07-01 00:00", 5, n_stations=2))
    assert main(["ingest", "--from", str(raw_src), "--no-progress"]) == 0
    assert main(["ingest", "--synthetic", "--seed", "1", "--no-progress"]) == 2  # the folder holds real data
    assert main(["ingest", "--synthetic", "--seed", "1", "--replace-dataset", "--no-progress"]) == 0
    processed = data_dir / "processed"
    snaps = schemas.read_table("snapshots", processed / "snapshots.parquet")
    assert snaps["source"].str.startswith("synthetic/").all()  # the real files are not mixed in
    trips = schemas.read_table("trips", processed / "trips.parquet")
    assert snaps["station_id"].nunique() == 30 and len(trips) > 1000
    assert json.loads((processed / "ingest.json").read_text())["dataset"] == "synthetic"
    capsys.readouterr()
    assert main(["data", "summary"]) == 0
    out = capsys.readouterr().out
    assert "synthetic/" in out and "total:" in out
