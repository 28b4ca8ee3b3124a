"""The data folder's guard rails: one lock shared with the nightly run, one dataset (real or
synthetic) per folder, refused files quarantined, parts rebuilt from raw/ when damaged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from bicimad import config
from bicimad.cli import main
from bicimad.jobs.ingest import IngestSources, ingest, processed_dataset
from bicimad.opendata import schemas

from .conftest import hourly_snapshots, snapshot_line, station_record, trip_line, write_lines

TABLES = ("stations", "snapshots", "trips", "station_hours")


def _ingest(root, *args) -> int:
    return main(["--data-dir", str(root), "ingest", "--no-progress", *map(str, args)])


def _tables(root) -> dict[str, pd.DataFrame]:
    return {t: schemas.read_table(t, root / "processed" / f"{t}.parquet") for t in TABLES}


@pytest.fixture
def two_sources(raw_src):
    a = write_lines(raw_src / "a" / "201907_stations_madrid.json", hourly_snapshots("2019-07-01 00:00", 24, n_stations=3))
    b = write_lines(raw_src / "b" / "201907_movements.json",
                    [trip_line(f"t{i}", f"2019-07-01T{i % 24:02d}:00:00Z", 1 + i % 3, 1 + (i * 2) % 3) for i in range(120)])
    return a.parent, b.parent


# --------------------------------------------------------------------------------------------
# One lock per data folder
# --------------------------------------------------------------------------------------------

def _hold_lock(path, seconds: float) -> subprocess.Popen:
    """Another process holding the data folder's lock for ``seconds`` (prints 'held' once it does)."""
    code = textwrap.dedent(f"""
        import sys, time
        from bicimad.jobs.batch import RunLock
        with RunLock({str(path)!r}):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    env = {**os.environ, "PYTHONPATH": str(config.REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_ingest_is_refused_while_another_process_holds_the_lock(tmp_path, two_sources, capsys):
    root = tmp_path / "data"
    lock = config.data_lock_path(root)
    assert lock == root / "runs" / "nightly.lock"  # the nightly run's own lock
    holder = _hold_lock(lock, 60)
    try:
        assert _ingest(root, "--from", two_sources[0]) == 75
        err = capsys.readouterr().err
        assert str(lock) in err and f"pid {holder.pid}" in err and "Traceback" not in err
        assert not (root / "processed" / "snapshots.parquet").exists()
    finally:
        holder.kill()
        holder.wait()


def test_ingest_waits_for_the_lock_with_a_timeout(tmp_path, two_sources):
    root = tmp_path / "data"
    holder = _hold_lock(config.data_lock_path(root), 1.5)
    start = time.monotonic()
    try:
        assert _ingest(root, "--from", two_sources[0], "--wait", 30) == 0
    finally:
        holder.wait()
    assert time.monotonic() - start >= 1.0  # it waited for the holder to finish
    assert len(_tables(root)["snapshots"]) == 24 * 3


def test_job_called_under_a_held_lock(tmp_path, two_sources):
    """The nightly run holds the lock itself and calls the job with hold_lock=False."""
    from bicimad.jobs.batch import RunLock

    root = tmp_path / "data"
    with RunLock(config.data_lock_path(root)):
        result = ingest(IngestSources(paths=(two_sources[0],)), data_dir=root, progress=False, hold_lock=False)
    assert result.dataset == "real" and result.counts["snapshots"] == 24 * 3
    assert result.tables["snapshots"] == root.resolve() / "processed" / "snapshots.parquet"


# --------------------------------------------------------------------------------------------
# One dataset per data folder
# --------------------------------------------------------------------------------------------

def _synthetic_city_export(folder, n=3):
    """Raw files as the synthetic city writes them: station names end with ' [synthetic]'; its
    trip files carry no names."""
    stations = [station_record(s, 5, name=f"Calle Mayor {s} [synthetic]") for s in range(1, n + 1)]
    lines = [snapshot_line(f"2019-07-0{d}T0{h}:20:00", stations) for d in (1, 2) for h in range(3)]
    write_lines(folder / "trips" / "201907_movements.json", [trip_line("s1", "2019-07-01T06:00:00Z", 1, 2)])
    return write_lines(folder / "stations" / "201907_stations_madrid.json", lines).parent.parent


def test_synthetic_files_given_with_from_are_labelled_synthetic(tmp_path, raw_src):
    root = tmp_path / "data"
    assert _ingest(root, "--from", _synthetic_city_export(raw_src / "export")) == 0
    assert processed_dataset(root) == "synthetic"
    assert json.loads((root / "processed" / "dataset.json").read_text())["dataset"] == "synthetic"
    assert json.loads((root / "processed" / "ingest.json").read_text())["dataset"] == "synthetic"


def test_synthetic_files_never_join_real_data(tmp_path, two_sources, raw_src, capsys):
    root = tmp_path / "data"
    assert _ingest(root, "--from", two_sources[0]) == 0
    good = _tables(root)
    export = _synthetic_city_export(raw_src / "export")
    assert _ingest(root, "--from", export) == 3
    err = capsys.readouterr().err
    assert "[synthetic]" in err and "quarantined as" in err
    assert processed_dataset(root) == "real"
    for t in TABLES:
        pd.testing.assert_frame_equal(_tables(root)[t], good[t])
    assert sorted(p.name for p in (root / "raw" / "rejected").glob("2019*.json")) == [
        "201907_movements.json", "201907_stations_madrid.json"]  # its trips too, though they carry no names
    assert _ingest(root, "--from", two_sources[1]) == 0  # the quarantined file blocks nothing
    assert _tables(root)["snapshots"]["source"].str.contains("/a/").all()


def test_switching_dataset_needs_an_explicit_flag(tmp_path, two_sources, monkeypatch, capsys):
    from functools import partial

    from bicimad.opendata import synthetic

    monkeypatch.setattr(synthetic, "write_city", partial(synthetic.write_city, n_stations=20, days=2, trips_per_day=500))
    root = tmp_path / "data"
    assert _ingest(root, "--from", two_sources[0]) == 0
    real = _tables(root)
    assert _ingest(root, "--synthetic") == 2
    err = capsys.readouterr().err
    assert "holds real data" in err and "--replace-dataset" in err
    assert not (root / "raw" / "synthetic").exists()  # refused before the city was generated
    for t in TABLES:
        pd.testing.assert_frame_equal(_tables(root)[t], real[t])

    assert _ingest(root, "--synthetic", "--replace-dataset") == 0
    assert processed_dataset(root) == "synthetic"
    assert _ingest(root) == 0  # a rebuild keeps the folder's dataset
    assert processed_dataset(root) == "synthetic"
    assert _ingest(root, "--from", two_sources[1]) == 2  # real files into a synthetic folder
    assert processed_dataset(root) == "synthetic"


# --------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------

def test_refused_file_is_quarantined_and_blocks_nothing(tmp_path, two_sources, raw_src, capsys):
    root = tmp_path / "data"
    bad = raw_src / "bad" / "201907_stations_madrid.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 not really a parquet file")
    assert _ingest(root, "--from", two_sources[0], bad.parent) == 3
    err = capsys.readouterr().err
    stored = root.resolve() / "raw" / "local" / "bad" / bad.name
    assert str(stored) in err and str(bad) in err  # the full paths, raw copy and source
    assert "Traceback" not in err
    assert not (root / "processed" / "snapshots.parquet").exists()
    quarantined = root / "raw" / "rejected" / bad.name
    assert quarantined.read_bytes() == bad.read_bytes()
    assert "damaged or unreadable" in (root / "raw" / "rejected" / f"{bad.name}.reason.txt").read_text()
    manifest = json.loads((root / "raw" / "manifest.json").read_text())
    assert not any(rel.endswith(".parquet") for rel in manifest)

    # Other sources go on; the same content given again is skipped (and said so).
    assert _ingest(root, "--from", two_sources[1], bad.parent) == 0
    assert "already quarantined" in capsys.readouterr().err
    assert len(_tables(root)["trips"]) == 120 and len(_tables(root)["snapshots"]) == 72

    assert main(["--data-dir", str(root), "data", "rejected"]) == 0
    out = capsys.readouterr().out
    assert str(root.resolve() / "raw" / "rejected" / bad.name) in out and "damaged" in out
    assert main(["--data-dir", str(root), "data", "rejected", "--drop", "nope"]) == 2
    assert main(["--data-dir", str(root), "data", "rejected", "--drop", bad.name]) == 0
    assert not quarantined.exists()


def test_rejected_listing_after_drop_is_empty(tmp_path, raw_src, capsys):
    root = tmp_path / "data"
    bad = write_lines(raw_src / "x.json", ["no json here\n"])
    assert _ingest(root, "--from", bad) == 3
    assert main(["--data-dir", str(root), "data", "rejected", "--all"]) == 0
    capsys.readouterr()
    assert main(["--data-dir", str(root), "data", "rejected", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dropped": [], "quarantined": {}}


# --------------------------------------------------------------------------------------------
# Parts are a cache of raw/
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["delete", "truncate", "garble"])
def test_damaged_part_is_rebuilt_from_raw(tmp_path, two_sources, damage):
    root = tmp_path / "data"
    assert _ingest(root, "--from", *two_sources) == 0
    want = _tables(root)
    (part,) = (root / "processed" / "parts").glob("*.trips.parquet")
    if damage == "delete":
        part.unlink()
    elif damage == "truncate":
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])
    else:  # same size and footer, damaged pages: found only when the table is read
        data = bytearray(part.read_bytes())
        data[4:40] = b"\xff" * 36
        part.write_bytes(bytes(data))
    assert _ingest(root, "--from", *two_sources) == 0
    got = _tables(root)
    assert len(got["trips"]) == 120  # never 0 trips with exit 0
    for t in TABLES:
        pd.testing.assert_frame_equal(got[t], want[t])


def test_corrupt_manifests(tmp_path, two_sources, capsys):
    root = tmp_path / "data"
    assert _ingest(root, "--from", two_sources[0]) == 0
    parts_manifest = root / "processed" / "parts" / "manifest.json"
    parts_manifest.write_text("{not json")
    assert _ingest(root) == 0  # a cache: rebuilt
    assert len(json.loads(parts_manifest.read_text())) == 1
    (root / "raw" / "manifest.json").write_text('{"a": ')
    capsys.readouterr()
    assert _ingest(root) == 65
    err = capsys.readouterr().err
    assert "raw/manifest.json" in err and "unreadable raw manifest" in err and "Traceback" not in err
