"""Generators of small raw files in EMT's formats, for the ingestion tests."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata import schemas


@contextlib.contextmanager
def loopback_server(handler, **attrs):
    """A real HTTP server on 127.0.0.1 in a thread, yielding its base URL; ``attrs`` become
    attributes of the server, which handlers read as ``self.server.<name>``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in attrs.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def station_record(sid: int, bikes: int, capacity: int = 20, free: int | None = None, **extra) -> dict:
    """One station of an EMT snapshot, all 13 fields."""
    rec = {
        "activate": 1, "name": f"Estación {sid}", "reservations_count": 0, "light": 0,
        "total_bases": capacity, "free_bases": capacity - bikes if free is None else free,
        "number": f"{sid}", "longitude": f"{-3.70 + sid / 1000:.7f}", "no_available": 0,
        "address": f"Calle {sid} nº 1", "latitude": f"{40.41 + sid / 1000:.7f}", "dock_bikes": bikes, "id": sid,
    }
    rec.update(extra)
    return rec


def snapshot_line(stamp: str, stations: list[dict]) -> str:
    return json.dumps({"_id": stamp, "stations": stations}) + "\n"


def hourly_snapshots(start: str, hours: int, n_stations: int = 3, *, minute: int = 20, skip=(), rng_seed: int = 0) -> list[str]:
    """JSON lines of hourly snapshots from ``start`` (naive local stamps, one per absolute
    hour, so a fall-back day has 25), drifting 2 s a snapshot as EMT's do; bikes follow a
    seeded walk."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    t0 = pd.Timestamp(start).tz_localize("Europe/Madrid")
    bikes = rng.integers(0, 20, n_stations)
    lines = []
    for h in range(hours):
        bikes = np.clip(bikes + rng.integers(-3, 4, n_stations), 0, 20)
        if h in skip:
            continue
        local = (t0 + pd.Timedelta(hours=h, minutes=minute, seconds=2 * h)).tz_convert("Europe/Madrid").tz_localize(None)
        stamp = local.strftime("%Y-%m-%dT%H:%M:%S.%f")
        lines.append(snapshot_line(stamp, [station_record(s + 1, int(b)) for s, b in enumerate(bikes)]))
    return lines


def trip_line(oid: str, unplug: str, origin: int, dest: int, travel: int = 600, *, style: str = "compact", **extra) -> str:
    """One trip in EMT's compact (``Z`` string) or mongoexport (``$oid``/``$date``) style."""
    if style == "compact":
        rec = {"_id": {"$oid": oid}, "user_day_code": "ab" * 32, "idplug_base": 1, "user_type": 1,
               "idunplug_base": 2, "travel_time": travel, "idunplug_station": origin, "ageRange": 0,
               "idplug_station": dest, "unplug_hourTime": unplug, "zip_code": ""}
        rec.update(extra)
        return json.dumps(rec) + "\n"
    rec = {"_id": {"$oid": oid}, "user_day_code": "ab" * 32, "idplug_base": 1, "user_type": 1,
           "idunplug_base": 2, "travel_time": travel, "idunplug_station": origin, "ageRange": 0,
           "idplug_station": dest, "unplug_hourTime": {"$date": unplug}, "zip_code": ""}
    rec.update(extra)
    return json.dumps(rec, separators=(", ", " : ")).replace("{", "{ ").replace("}", " }") + "\n"


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(lines).encode(encoding))
    return path


@pytest.fixture
def raw_src(tmp_path) -> Path:
    """A folder to put generated source files in (outside the data dir)."""
    src = tmp_path / "src"
    src.mkdir()
    return src


@pytest.fixture(scope="session")
def real_ingest(shared_data, tmp_path_factory):
    """One `bicimad ingest --from <shared raw>` per test session: (data root, tables, ingest log).

    The per-file tests read the parts this run wrote, so the real data is parsed only once.
    """
    root = tmp_path_factory.mktemp("real")
    assert main(["--data-dir", str(root), "ingest", "--from", str(shared_data / "raw"), "--no-progress"]) == 0
    processed = root / "processed"
    tables = {t: schemas.read_table(t, processed / f"{t}.parquet") for t in ("stations", "snapshots", "trips", "station_hours")}
    log = json.loads((processed / "ingest.json").read_text(encoding="utf-8"))
    return root, tables, log


def part(root: Path, log: dict, rel: str, kind: str) -> pd.DataFrame:
    """The part of one shared file (``rel`` under raw/) written by :func:`real_ingest`."""
    (entry,) = [f for f in log["files"] if f["source"] == f"local/raw/{rel}"]
    return pd.read_parquet(root / "processed" / "parts" / f"{entry['sha256'][:16]}.{kind}.parquet")
