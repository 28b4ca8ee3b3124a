"""Hostile and odd input: damaged files give a clear error (never a traceback), impossible
values are rejected naming file, line and field, odd but valid files are accepted."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.errors import CommandError
from bicimad.io import csv_safe
from bicimad.jobs.ingest import IngestSources, ingest
from bicimad.opendata import schemas
from bicimad.opendata.formats import read_file
from bicimad.opendata.readers import read_snapshot_jsonl, read_trips_jsonl
from bicimad.opendata.rejects import Rejects

from .conftest import hourly_snapshots, snapshot_line, station_record, trip_line, write_lines


def _ingest(root, *args) -> int:
    return main(["--data-dir", str(root), "ingest", "--no-progress", *map(str, args)])


def _rejects_csv(root) -> list[dict]:
    with open(root / "processed" / "rejects.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _snapshot_workbook(path: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["fecha", "id", "total_bases", "dock_bikes"])
    for h in range(30):
        ws.append([pd.Timestamp("2018-09-01") + pd.Timedelta(hours=h), 1 + h % 3, 20, h % 20])
    wb.save(path)
    return path


def _snapshot_parquet(path: Path) -> Path:
    df = pd.DataFrame({"_id": [f"2019-07-01T{h:02d}:20:00" for h in range(24)], "number": "1a",
                       "dock_bikes": list(range(24)), "total_bases": 30, "free_bases": 1})
    df.to_parquet(path)
    return path


# --------------------------------------------------------------------------------------------
# Damaged files: a clear error naming the file, the file quarantined, no traceback
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["truncated-xlsx", "fake-xlsx", "truncated-parquet", "fake-parquet",
                                  "deep-station-list", "pystr-not-a-list"])
def test_damaged_file_is_a_clear_error(tmp_path, raw_src, capsys, case):
    if case == "truncated-xlsx":
        data = _snapshot_workbook(tmp_path / "w.xlsx").read_bytes()
        path, body = raw_src / "EstacionesVacias.xlsx", data[: len(data) // 2]
    elif case == "fake-xlsx":
        path, body = raw_src / "EstacionesVacias.xlsx", b"PK\x03\x04" + os.urandom(2000)
    elif case == "truncated-parquet":
        data = _snapshot_parquet(tmp_path / "s.parquet").read_bytes()
        path, body = raw_src / "situaciones.parquet", data[: len(data) - 30]
    elif case == "fake-parquet":
        path, body = raw_src / "situaciones.parquet", b"PAR1" + os.urandom(500)
    elif case == "deep-station-list":
        path, body = raw_src / "stations.json", b'{"stations": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    else:
        path, body = raw_src / "situaciones.txt", b"['{\"_id\": 1}' + 'x']"
    path.write_bytes(body)
    code = _ingest(tmp_path / "data", "--from", path)
    err = capsys.readouterr().err
    assert code in (2, 3), err
    assert "Traceback" not in err and path.name in err
    if code == 3:
        assert (tmp_path / "data" / "raw" / "rejected" / path.name).exists()


def test_deeply_nested_json_line_is_rejected():
    deep = b'{"_id": "2019-07-01T00:20:00", "stations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    good = snapshot_line("2019-07-01T01:20:00", [station_record(1, 5)]).encode()
    rejects = Rejects()
    chunks = list(read_snapshot_jsonl(io.BytesIO(good + deep + good), "s.json", rejects))
    snaps = pd.concat([c.frame for c in chunks if c.kind == "snapshots"])
    assert len(snaps) == 2
    assert [(r[1], r[3]) for r in rejects.rows] == [(2, "JSON nested too deeply")]


# --------------------------------------------------------------------------------------------
# Impossible values: rejected into rejects.csv naming file, line and field
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change,field,reason", [
    ({"dock_bikes": 1e300}, "dock_bikes", "integer outside"),
    ({"id": 2**40}, "id", "integer outside"),
    ({"total_bases": -3}, "total_bases", "negative capacity"),
    ({"latitude": "999"}, "latitude", "latitude outside -90..90"),
    ({"longitude": -500}, "longitude", "longitude outside -180..180"),
])
def test_impossible_station_values_are_rejected(change, field, reason):
    stations = [station_record(1, 5), {**station_record(2, 3), **change}, station_record(3, 0)]
    rejects = Rejects()
    chunks = list(read_snapshot_jsonl(io.BytesIO(snapshot_line("2019-07-01T00:29:26", stations).encode()),
                                      "s.json", rejects))
    snaps = pd.concat([c.frame for c in chunks if c.kind == "snapshots"])
    assert sorted(snaps["station_id"]) == [1, 3]
    ((file, line, got_field, got_reason, _value),) = rejects.rows
    assert (file, line, got_field) == ("s.json", 1, field) and got_reason.startswith(reason)


@pytest.mark.parametrize("stamp", ["1000-01-01T00:20:00", "9999-12-31T23:20:00", "2013-12-31T23:00:00"])
def test_snapshot_outside_the_plausible_window_is_rejected(stamp):
    text = (snapshot_line("2019-07-01T00:20:00", [station_record(1, 5)])
            + snapshot_line(stamp, [station_record(1, 5)])).encode()
    rejects = Rejects()
    snaps = pd.concat([c.frame for c in read_snapshot_jsonl(io.BytesIO(text), "s.json", rejects) if c.kind == "snapshots"])
    assert len(snaps) == 1
    ((_f, line, field, reason, _v),) = rejects.rows
    assert (line, field) == (2, "_id") and reason.startswith("snapshot time outside the plausible window 2014-01-01..")


def test_station_list_values_are_rejected_in_rejects_csv(tmp_path, raw_src):
    stations = [station_record(1, 0), {**station_record(2, 0), "latitude": 999}, {**station_record(3, 0), "longitude": "-500"},
                {**station_record(4, 0), "total_bases": -3}] + [station_record(k, 0) for k in range(5, 400)]
    path = raw_src / "stations.json"
    path.write_text(json.dumps({"stations": stations}), encoding="utf-8")
    assert _ingest(tmp_path / "data", "--from", path) == 0
    rows = {(r["line"], r["field"], r["reason"]) for r in _rejects_csv(tmp_path / "data")}
    assert rows == {("2", "latitude", "latitude outside -90..90"), ("3", "longitude", "longitude outside -180..180"),
                    ("4", "total_bases", "negative capacity")}
    assert all(r["file"] == "local/stations.json" for r in _rejects_csv(tmp_path / "data"))
    stations_table = schemas.read_table("stations", tmp_path / "data" / "processed" / "stations.parquet")
    assert {2, 3, 4}.isdisjoint(stations_table["station_id"]) and len(stations_table) == 396


@pytest.mark.parametrize("change,field,reason", [
    ({"travel_time": 1e300}, "travel_time", "travel time over"),
    ({"idunplug_station": 2**40}, "idunplug_station", "integer outside"),
    ({"unplug_hourTime": "9999-01-01T00:00:00Z"}, "unplug_hourTime", ""),
])
def test_numeric_overflow_in_trips_is_rejected(change, field, reason):
    lines = [trip_line(f"t{i}", "2019-07-01T06:00:00Z", 1, 2) for i in range(3)]
    rec = {**json.loads(lines[1]), **change}
    lines[1] = json.dumps(rec) + "\n"
    rejects = Rejects()
    trips = pd.concat([c.frame for c in read_trips_jsonl(io.BytesIO("".join(lines).encode()), "t.json", rejects)])
    assert len(trips) == 2
    ((_f, line, got_field, got_reason, _v),) = rejects.rows
    assert (line, got_field) == (2, field) and got_reason.startswith(reason)


def test_max_reject_share_must_be_a_share(tmp_path, raw_src, capsys):
    path = write_lines(raw_src / "201907_movements.json", [trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])
    for bad in ("nan", "2", "-0.5", "inf", "x"):
        with pytest.raises(SystemExit) as exc:
            _ingest(tmp_path / "data", "--from", path, "--max-reject-share", bad)
        assert exc.value.code == 2
    assert "expected a share between 0 and 1" in capsys.readouterr().err
    with pytest.raises(CommandError) as err:
        ingest(IngestSources(paths=(path,)), data_dir=tmp_path / "data", max_reject_share=float("nan"))
    assert err.value.code == 2


def test_cells_that_spreadsheets_run_are_escaped(tmp_path, raw_src):
    lines = [trip_line(f"t{i}", "2019-07-01T06:00:00Z", 1, 2) for i in range(300)]
    lines[3] = trip_line("x", "2019-07-01T06:00:00Z", "=HYPERLINK(\"http://x\")", 2)
    lines[4] = trip_line("y", "2019-07-01T06:00:00Z", "@SUM(A1)", 2)
    lines[5] = trip_line("z", "2019-07-01T06:00:00Z", -4, 2)
    assert _ingest(tmp_path / "data", "--from", write_lines(raw_src / "201907_movements.json", lines)) == 0
    values = {r["line"]: r["value"] for r in _rejects_csv(tmp_path / "data")}
    assert values == {"4": "'=HYPERLINK(\"http://x\")", "5": "'@SUM(A1)", "6": "-4"}
    assert [csv_safe(v) for v in ("+1+2", "-x", "3", "-2.5e3", "\tx")] == ["'+1+2", "'-x", "3", "-2.5e3", "'\tx"]


# --------------------------------------------------------------------------------------------
# Odd but valid: accepted
# --------------------------------------------------------------------------------------------

def test_utf8_files_with_a_bom_are_accepted(tmp_path, raw_src):
    bom = "\ufeff"
    write_lines(raw_src / "201907_stations_madrid.json", [bom] + hourly_snapshots("2019-07-01 00:00", 3, n_stations=2))
    write_lines(raw_src / "201907_movements.json", [bom, trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])
    (raw_src / "stations.json").write_text(bom + json.dumps([station_record(7, 0)]), encoding="utf-8")
    (raw_src / "bases.csv").write_text(bom + "Id_Estacion;Nro_Estacion;Gis_X;Gis_Y;Plazas\n9;9;440000,5;4474000,5;24\n",
                                       encoding="utf-8")
    assert _ingest(tmp_path / "data", "--from", raw_src) == 0
    processed = tmp_path / "data" / "processed"
    assert len(schemas.read_table("snapshots", processed / "snapshots.parquet")) == 6
    assert len(schemas.read_table("trips", processed / "trips.parquet")) == 1
    assert {7, 9} <= set(schemas.read_table("stations", processed / "stations.parquet")["station_id"])


def test_latin1_python_str_snapshot_and_csv(tmp_path, raw_src):
    line = json.dumps({"_id": "2019-07-01T00:20:00", "stations": [station_record(1, 5, name="Plaza de España")]},
                      ensure_ascii=False)
    (raw_src / "situaciones.txt").write_bytes(f"[{line!r}]".encode("latin-1"))
    (raw_src / "all_stations.csv").write_bytes(",id,address,name,total_bases,longitude,latitude\n"
                                               "0,5,Calle Añil,Peñuelas,20,-3.7,40.4\n".encode("latin-1"))
    rejects = Rejects()
    chunks = [c for _k, c in read_file(raw_src / "situaciones.txt", "situaciones.txt", rejects)]
    assert next(c.frame for c in chunks if c.kind == "stations")["name"].tolist() == ["Plaza de España"]
    chunks = [c for _k, c in read_file(raw_src / "all_stations.csv", "all_stations.csv", rejects)]
    assert chunks[0].frame[["name", "address"]].values.tolist() == [["Peñuelas", "Calle Añil"]]
    assert sum(n for (_f, msg), n in rejects.warnings.items() if "not UTF-8" in msg) == 2


def test_a_240_character_file_name(tmp_path, raw_src, capsys):
    name = "201907_movements_" + "x" * 218 + ".json"
    assert len(name) == 240
    write_lines(raw_src / name, [trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])
    assert _ingest(tmp_path / "data", "--from", raw_src) == 0
    assert "stored under a shorter name" in capsys.readouterr().err
    assert len(schemas.read_table("trips", tmp_path / "data" / "processed" / "trips.parquet")) == 1


def test_symlinks_out_of_the_source_folder_are_not_followed(tmp_path, raw_src, capsys):
    outside = write_lines(tmp_path / "elsewhere" / "201907_movements.json", [trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])
    write_lines(raw_src / "in" / "201907_stations_madrid.json", hourly_snapshots("2019-07-01 00:00", 2, n_stations=2))
    (raw_src / "in" / "link.json").symlink_to(outside)
    (raw_src / "in" / "linked_dir").symlink_to(outside.parent, target_is_directory=True)
    (raw_src / "in" / "inner.json").symlink_to(raw_src / "in" / "201907_stations_madrid.json")  # inside: followed
    assert _ingest(tmp_path / "data", "--from", raw_src / "in") == 0
    err = capsys.readouterr().err
    assert "not followed" in err and "link.json" in err and "linked_dir" in err
    manifest = json.loads((tmp_path / "data" / "raw" / "manifest.json").read_text())
    assert sorted(manifest) == ["local/in/201907_stations_madrid.json", "local/in/inner.json"]
    assert not (tmp_path / "data" / "processed" / "trips.parquet").exists() or \
        schemas.read_table("trips", tmp_path / "data" / "processed" / "trips.parquet").empty


# --------------------------------------------------------------------------------------------
# The data folder itself
# --------------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_data_folder(tmp_path, raw_src, capsys):
    root = tmp_path / "data"
    root.mkdir()
    root.chmod(0o555)
    try:
        assert _ingest(root, "--from", write_lines(raw_src / "201907_movements.json",
                                                   [trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])) == 2
    finally:
        root.chmod(0o755)
    err = capsys.readouterr().err
    assert "must be writable" in err and "Traceback" not in err


def test_unwritable_data_folder(tmp_path, raw_src, capsys, monkeypatch):
    """Where the tests run as root, a write refused by the file system is simulated."""
    src = write_lines(raw_src / "201907_movements.json", [trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if "data" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert _ingest(tmp_path / "data", "--from", src) == 2
    err = capsys.readouterr().err
    assert "cannot write to" in err and "Permission denied" in err and "Traceback" not in err


def test_data_folder_under_a_regular_file(tmp_path, raw_src, capsys):
    (tmp_path / "plain").write_text("a file")
    src = write_lines(raw_src / "201907_movements.json", [trip_line("a", "2019-07-01T06:00:00Z", 1, 2)])
    assert _ingest(tmp_path / "plain" / "data", "--from", src) == 2
    assert "Traceback" not in capsys.readouterr().err

