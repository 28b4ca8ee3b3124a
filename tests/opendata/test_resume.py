"""An interrupted ingest resumes without duplicating or losing rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata import formats, normalise, schemas

from .conftest import hourly_snapshots, trip_line, write_lines

TABLES = ("stations", "snapshots", "trips", "station_hours")


@pytest.fixture
def sources(raw_src):
    write_lines(raw_src / "a_201907_stations_madrid.json", hourly_snapshots("2019-07-01 00:00", 48, n_stations=4))
    write_lines(raw_src / "b_201907_movements.json",
                [trip_line(f"t{i}", f"2019-07-01T{i % 24:02d}:00:00Z", 1 + i % 4, 1 + (i * 7) % 4, 300 + i) for i in range(300)])
    write_lines(raw_src / "c_201907_stations_madrid.json", hourly_snapshots("2019-07-03 00:00", 24, n_stations=4, rng_seed=1))
    return raw_src


def _ingest(root, src) -> int:
    return main(["--data-dir", str(root), "ingest", "--from", str(src), "--no-progress"])


def _tables(root) -> dict[str, pd.DataFrame]:
    return {t: schemas.read_table(t, root / "processed" / f"{t}.parquet") for t in TABLES}


def test_crash_mid_file_then_resume(tmp_path, sources, monkeypatch):
    clean = tmp_path / "clean"
    assert _ingest(clean, sources) == 0

    crashed = tmp_path / "crashed"
    real_read_file = formats.read_file

    def crash_in_trips(path, source, rejects, **kw):
        for item in real_read_file(path, source, rejects, **kw):
            yield item
            if "movements" in source:
                raise KeyboardInterrupt  # the process dies after the first chunk of file b

    monkeypatch.setattr(formats, "read_file", crash_in_trips)
    assert _ingest(crashed, sources) == 130
    parts = crashed / "processed" / "parts"
    manifest = json.loads((parts / "manifest.json").read_text())
    assert [e["source"] for e in manifest.values()] == ["local/src/a_201907_stations_madrid.json"]
    assert not list(parts.glob(".*.tmp"))  # the half-written part of file b was discarded
    assert not (crashed / "processed" / "trips.parquet").exists()

    monkeypatch.setattr(formats, "read_file", real_read_file)
    (parts / ".stale.trips.parquet.x.tmp").write_bytes(b"left by a killed process")
    assert _ingest(crashed, sources) == 0
    manifest = json.loads((parts / "manifest.json").read_text())
    assert len(manifest) == 3
    assert not list(parts.glob(".*.tmp"))
    ingest_log = json.loads((crashed / "processed" / "ingest.json").read_text())
    assert [f["resumed"] for f in ingest_log["files"]] == [True, False, False]

    got, want = _tables(crashed), _tables(clean)
    for t in TABLES:
        pd.testing.assert_frame_equal(got[t], want[t], check_like=False)
    assert len(got["trips"]) == 300 and len(got["snapshots"]) == (48 + 24) * 4


def test_rerun_is_idempotent(tmp_path, sources):
    root = tmp_path / "data"
    assert _ingest(root, sources) == 0
    first = _tables(root)
    assert _ingest(root, sources) == 0
    again = _tables(root)
    for t in TABLES:
        pd.testing.assert_frame_equal(first[t], again[t])


def test_failed_read_leaves_no_manifest_entry(tmp_path, raw_src):
    from bicimad.opendata.rejects import IngestError

    path = write_lines(raw_src / "x.json", ["not json at all\n"])
    manifest: dict = {}
    with pytest.raises(IngestError, match="x.json"):
        normalise.read_to_parts(path, "x.json", tmp_path / "processed", manifest)
    assert manifest == {}
    assert not (tmp_path / "processed" / "parts" / "manifest.json").exists()


def test_identical_files_are_read_once(tmp_path, raw_src, capsys):
    lines = [trip_line(f"t{i}", "2019-07-01T06:00:00Z", 1, 2) for i in range(5)]
    write_lines(raw_src / "a" / "201907_movements.json", lines)
    write_lines(raw_src / "b" / "201907_movements.json", lines)
    root = tmp_path / "data"
    assert _ingest(root, raw_src) == 0
    assert len(_tables(root)["trips"]) == 5
    # One part for both copies: nothing to drop as repeated when the tables are built.
    assert "repeated trips dropped" not in capsys.readouterr().err
    assert len(json.loads((root / "processed" / "parts" / "manifest.json").read_text())) == 1
