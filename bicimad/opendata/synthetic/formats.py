"""EMT file formats: the city written as EMT's station list, snapshot and trip files."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from bicimad.config import TZ
from bicimad.io import atomic_open
from bicimad.opendata.live import emt_station_record
from bicimad.opendata.synthetic.city import SECONDS_PER_HOUR, SyntheticCity
from bicimad.opendata.synthetic.realise import generate_city


def _station_records(city: SyntheticCity, bikes: np.ndarray) -> list[dict]:
    """EMT's 13 station fields for every station holding ``bikes``."""
    return [
        emt_station_record(
            station_id=int(city.station_id[k]), number=city.number[k], name=city.name[k], address=city.address[k],
            lat=float(city.lat[k]), lon=float(city.lon[k]), capacity=int(c), bikes=int(b), free=int(c - b),
            active=True, available=True,
        )
        for k, (b, c) in enumerate(zip(bikes, city.capacity))
    ]


def _local(ts: np.ndarray) -> list[datetime]:
    tz = ZoneInfo(TZ)
    return [datetime.fromtimestamp(float(t), tz) for t in ts]


def _month_key(day: datetime | date) -> str:
    return f"{day.year:04d}{day.month:02d}"


def _write_months(lines: dict[str, list[str]], pattern: Path) -> list[Path]:
    """Write each month's JSON lines (``{"YYYYMM": [line, ...]}``) to ``pattern`` with the month
    filled in, atomically; returns the paths."""
    paths = []
    for month, month_lines in lines.items():
        path = pattern.with_name(pattern.name.format(month=month))
        with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(month_lines) + "\n")
        paths.append(path)
    return paths


def _write_stations(city: SyntheticCity, folder: Path) -> list[Path]:
    path = folder / "meta" / "stations.json"
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump({"stations": _station_records(city, city.initial_bikes)}, fh, ensure_ascii=False, indent=4)
        fh.write("\n")
    return [path]


def _write_snapshots(city: SyntheticCity, folder: Path) -> list[Path]:
    lines: dict[str, list[str]] = {}
    for when, bikes in zip(_local(city.snapshot_ts), city.snapshot_bikes):
        stamp = when.replace(tzinfo=None).isoformat(timespec="microseconds")
        record = {"_id": stamp, "stations": _station_records(city, bikes)}
        lines.setdefault(_month_key(when), []).append(json.dumps(record))
    return _write_months(lines, folder / "stations" / "Bicimad_Estacions_{month}.json")


TRIP_LINE = (
    '{{ "_id" : {{ "$oid" : "{oid}" }}, "user_day_code" : "{user}", "idplug_base" : {plug_base}, '
    '"user_type" : {user_type}, "idunplug_base" : {unplug_base}, "travel_time" : {travel}, '
    '"idunplug_station" : {unplug_station}, "ageRange" : {age}, "idplug_station" : {plug_station}, '
    '"unplug_hourTime" : {{ "$date" : "{hour}" }}, "zip_code" : "{zip}" }}'
)


def _write_trips(city: SyntheticCity, folder: Path) -> list[Path]:
    rng = np.random.default_rng(city.record_seed)
    trips = city.trips
    days = city.params.days if city.params.trip_days is None else min(city.params.trip_days, city.params.days)
    keep = np.flatnonzero(trips["day"] < days)
    n = len(keep)
    from_idx, to_idx = trips["from_idx"][keep], trips["to_idx"][keep]
    # Whole seconds, at least one (EMT's): a ride of under a minute ends in the next replayed minute.
    travel = np.maximum(np.round(trips["plug_ts"][keep] - trips["unplug_ts"][keep]), 1).astype(np.int64)
    hour_stamp = np.floor(trips["unplug_ts"][keep] / SECONDS_PER_HOUR) * SECONDS_PER_HOUR
    user_type = rng.choice([1, 2, 3], size=n, p=[0.915, 0.01, 0.075])
    age = rng.choice(np.arange(7), size=n, p=[0.35, 0.01, 0.02, 0.12, 0.25, 0.23, 0.02])
    has_zip = rng.random(n) < 0.6
    zips = rng.integers(1, 55, size=n)
    # Riders take a few trips a day: each day's trips are shared among ~0.7 x as many riders.
    rider = (rng.random(n) * np.maximum(1, 0.7 * np.bincount(trips["day"][keep])[trips["day"][keep]])).astype(int)
    oid_tail = rng.integers(0, 2**63, size=n, dtype=np.int64)
    cap = city.capacity
    plug_base = (rng.random(n) * cap[to_idx]).astype(int) + 1
    unplug_base = (rng.random(n) * cap[from_idx]).astype(int) + 1
    stamps: dict[float, str] = {}
    lines: dict[str, list[str]] = {}
    ids = city.station_id
    for r, k in enumerate(keep.tolist()):
        h = float(hour_stamp[r])
        if h not in stamps:
            local = datetime.fromtimestamp(h, ZoneInfo(TZ))
            stamps[h] = local.strftime("%Y-%m-%dT%H:%M:%S.000%z")
        day = int(trips["day"][k])
        user = hashlib.sha256(f"{city.record_seed}:{city.dates[day]}:{rider[r]}".encode()).hexdigest()
        oid = f"{int(trips['plug_ts'][k]) & 0xFFFFFFFF:08x}{int(oid_tail[r]) & 0xFFFFFFFFFFFFFFFF:016x}"
        line = TRIP_LINE.format(
            oid=oid, user=user, plug_base=plug_base[r], user_type=user_type[r], unplug_base=unplug_base[r],
            travel=travel[r], unplug_station=ids[from_idx[r]], age=age[r], plug_station=ids[to_idx[r]],
            hour=stamps[h], zip=f"280{zips[r]:02d}" if has_zip[r] else "",
        )
        lines.setdefault(stamps[h][:4] + stamps[h][5:7], []).append(line)
    return _write_months(lines, folder / "trips" / "{month}_Usage_Bicimad.json")


#: Names this module writes; stale ones from an earlier city are removed so folders never mix cities.
_OWN_FILES = re.compile(r"^(stations\.json|Bicimad_Estacions_\d{6}\.json|\d{6}_Usage_Bicimad\.json)$")


def write_city(raw_root: Path, *, seed: int = 0, **params) -> list[Path]:
    """Generate a city and write it under ``raw_root/synthetic/`` in EMT's raw formats.

    Returns the paths written (station list, monthly snapshot files, monthly trip files).
    Each file is written atomically; files of an earlier synthetic city that this one does not
    rewrite (other months) are removed, so the folder always holds exactly one city.
    """
    city = generate_city(seed, **params)
    folder = Path(raw_root) / "synthetic"
    paths = _write_stations(city, folder) + _write_snapshots(city, folder) + _write_trips(city, folder)
    written = set(paths)
    for sub in ("meta", "stations", "trips"):
        for old in (folder / sub).glob("*.json"):
            if old not in written and _OWN_FILES.match(old.name):
                old.unlink()
    return paths
