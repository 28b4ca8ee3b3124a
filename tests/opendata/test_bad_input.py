"""Bad input: each case names file, line and field; rejects are written; exit codes tell."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.io import sha256_file
from bicimad.opendata import schemas
from bicimad.opendata.formats import read_file
from bicimad.opendata.readers import read_snapshot_jsonl, read_trips_jsonl
from bicimad.opendata.rejects import IngestError, Rejects

from .conftest import hourly_snapshots, snapshot_line, station_record, trip_line, write_lines


def _trips(text: bytes, rejects: Rejects, source="t.json") -> pd.DataFrame:
    chunks = list(read_trips_jsonl(io.BytesIO(text), source, rejects))
    return pd.concat([c.frame for c in chunks], ignore_index=True) if chunks else pd.DataFrame()


def _snapshots(text: bytes, rejects: Rejects, source="s.json") -> pd.DataFrame:
    return pd.concat([c.frame for c in read_snapshot_jsonl(io.BytesIO(text), source, rejects) if c.kind == "snapshots"],
                     ignore_index=True)


GOOD = [trip_line(f"id{i}", "2019-07-01T06:00:00Z", 1 + i % 3, 2) for i in range(4)]


def test_truncated_last_line():
    rejects = Rejects()
    text = "".join(GOOD) + GOOD[0][:57]  # cut mid-record, no newline
    trips = _trips(text.encode(), rejects)
    assert len(trips) == 4
    assert rejects.rows == [("t.json", 5, "", "truncated last line (no closing newline, invalid JSON)", GOOD[0][:57])]


def test_invalid_json_record_names_its_line():
    rejects = Rejects()
    lines = GOOD[:2] + ['{"_id": {"$oid": "x"}, "idunplug_station": 3,,}\n'] + GOOD[2:]
    trips = _trips("".join(lines).encode(), rejects)
    assert len(trips) == 4
    (row,) = rejects.rows
    assert row[1] == 3 and row[3].startswith("invalid JSON")


@pytest.mark.parametrize("field,value,reason", [
    ("idunplug_station", None, "missing field"),
    ("unplug_hourTime", None, "missing field"),
    ("unplug_hourTime", "yesterday", "unparsable time"),
    ("idunplug_station", "abc", "not an integer"),
    ("idplug_station", -4, "station id must be positive"),
    ("travel_time", -10, "negative travel time"),
])
def test_missing_or_impossible_trip_field(field, value, reason):
    rec = json.loads(GOOD[0])
    if value is None:
        del rec[field]
    else:
        rec[field] = value
    rejects = Rejects()
    trips = _trips(("".join(GOOD[1:3]) + json.dumps(rec) + "\n").encode(), rejects)
    assert len(trips) == 2
    ((file, line, got_field, got_reason, got_value),) = rejects.rows
    assert (file, line, got_field, got_reason) == ("t.json", 3, field, reason)
    if value is not None:
        assert got_value.removesuffix(".0") == str(value)


def test_unknown_field_is_kept_and_reported():
    rejects = Rejects()
    trips = _trips(trip_line("u1", "2019-07-01T06:00:00Z", 1, 2, new_field=1).encode(), rejects)
    assert len(trips) == 1 and not rejects.rows
    assert any("new_field" in msg for (_f, msg) in rejects.warnings)


@pytest.mark.parametrize("change,field,reason", [
    ({"dock_bikes": -1}, "dock_bikes", "negative bikes"),
    ({"dock_bikes": 25, "free_bases": 0}, "dock_bikes", "more bikes than docks (dock_bikes > total_bases)"),
    ({"free_bases": 15}, "free_bases", "dock_bikes + free_bases > total_bases"),
    ({"total_bases": "many"}, "total_bases", "not an integer"),
    ({"dock_bikes": None}, "dock_bikes", "missing field"),
    ({"id": None, "number": None}, "id", "missing field (neither id nor number)"),
])
def test_impossible_snapshot_values(change, field, reason):
    stations = [station_record(1, 5), {**station_record(2, 10), **change}, station_record(3, 0)]
    rejects = Rejects()
    snaps = _snapshots(snapshot_line("2019-07-01T00:29:26.018083", stations).encode(), rejects)
    assert sorted(snaps["station_id"]) == [1, 3]
    (row,) = rejects.rows
    assert row[:4] == ("s.json", 1, field, reason)


def test_wrong_encoding_is_decoded_per_line():
    rejects = Rejects()
    line = snapshot_line("2019-07-01T00:29:26", [station_record(1, 5, name="Plaza de España")])
    snaps_text = json.dumps(json.loads(line), ensure_ascii=False) + "\n"
    snaps = list(read_snapshot_jsonl(io.BytesIO(snaps_text.encode("latin-1")), "s.json", rejects))
    stations = next(c.frame for c in snaps if c.kind == "stations")
    assert stations.loc[0, "name"] == "Plaza de España"
    assert rejects.warnings[("s.json", "line(s) not UTF-8, decoded as Latin-1")] == 1


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text("station list\n", encoding="utf-16")
    with pytest.raises(IngestError, match=r"odd\.json: unrecognised format"):
        list(read_file(path, "odd.json", Rejects()))


def _ingest(data_dir, src, *extra) -> int:
    return main(["--data-dir", str(data_dir), "ingest", "--from", str(src), "--no-progress", *extra])


def test_duplicate_snapshots_and_missing_hours(data_dir, raw_src):
    lines = hourly_snapshots("2019-07-01 00:00", 10, n_stations=2, skip=(4, 5))
    write_lines(raw_src / "201907_stations_madrid.json", lines + lines[:3])  # three snapshots repeated
    assert _ingest(data_dir, raw_src) == 0
    processed = data_dir / "processed"
    snaps = schemas.read_table("snapshots", processed / "snapshots.parquet")
    assert len(snaps) == 8 * 2
    sh = schemas.read_table("station_hours", processed / "station_hours.parquet")
    assert len(sh) == 10 * 2
    missing = sh[sh["snapshot_ts"].isna()]
    assert sorted(missing["hour"].dt.hour.unique()) == [4, 5]
    assert missing["bikes"].isna().all()
    # net flow is null into and across the gap.
    assert set(sh.loc[sh["net_flow"].isna(), "hour"].dt.hour) == {3, 4, 5, 9}


def test_rejects_file_and_threshold_exit_codes(data_dir, raw_src):
    lines = [trip_line(f"k{i}", "2019-07-01T06:00:00Z", 1, 2) for i in range(199)] + ['{"broken\n']
    raw = write_lines(raw_src / "201907_movements.json", lines)
    before = sha256_file(raw)
    assert _ingest(data_dir, raw_src) == 0  # 1 of 200 = 0.5 % is under the default 1 %
    processed = data_dir / "processed"
    with open(processed / "rejects.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["line"], r["reason"][:12]) for r in rows] == [("200", "invalid JSON")]
    assert rows[0]["file"].endswith("201907_movements.json")
    assert len(schemas.read_table("trips", processed / "trips.parquet")) == 199
    good = (processed / "trips.parquet").read_bytes()

    assert _ingest(data_dir, raw_src, "--strict") == 3
    # The refused file is quarantined (skipped by later ingests) until dropped from the quarantine.
    assert main(["--data-dir", str(data_dir), "data", "rejected", "--all"]) == 0
    assert _ingest(data_dir, raw_src, "--max-reject-share", "0.001") == 3
    assert (processed / "trips.parquet").read_bytes() == good  # failing runs leave the tables alone
    assert sha256_file(raw) == before  # the source is never modified


def test_changed_raw_file_is_refused(data_dir, raw_src, capsys):
    src = write_lines(raw_src / "201907_movements.json", GOOD)
    assert _ingest(data_dir, raw_src) == 0
    stored = data_dir / "raw" / "local" / "src" / "201907_movements.json"
    stored.chmod(0o644)
    stored.write_text("".join(GOOD[:2]))
    assert main(["--data-dir", str(data_dir), "ingest", "--no-progress"]) == 3
    assert "raw data is immutable" in capsys.readouterr().err
    assert src.read_text() == "".join(GOOD)
