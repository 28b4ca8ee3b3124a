"""Parse throughput and peak memory of the raw readers, against pandas on the same file.

Run: ``make bench`` or ``.venv/bin/python -m pytest -m bench tests/bench/bench_ingest.py -s``.
Sizes come from the environment so a quick run is possible:

``BICIMAD_BENCH_TRIPS_MB``      size of the generated mongoexport trip file (default 1024)
``BICIMAD_BENCH_PANDAS_MB``     size of the prefix pandas.read_json(lines=True) parses (default 256:
                                pandas holds every record as Python objects, so a 1 GB file would
                                need several GB; throughput is compared on this prefix)
``BICIMAD_BENCH_SNAPSHOT_DAYS`` days of hourly snapshots of 213 stations (default 31, one month)

Each measurement runs in a fresh subprocess, so peak memory (``VmHWM``) is that parse's
own (including the interpreter, pandas and pyarrow, about 150 MB). Results are printed and written to ``$BICIMAD_BENCH_OUT`` (JSON) if set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.bench

MB = 1 << 20


def _track(rng: np.random.Generator, n_points: int) -> dict:
    """A GeoJSON track like EMT's 2018-19 files (Latin-1 addresses are re-encoded by the writer)."""
    lon, lat = -3.70 + rng.normal(0, 0.01), 40.42 + rng.normal(0, 0.01)
    features = []
    for k in range(n_points):
        features.append({"geometry": {"type": "Point", "coordinates": [lon + k * 1e-4, lat + k * 1e-4]},
                         "type": "Feature",
                         "properties": {"var": f"28010,ES,Madrid,Madrid,CALLE PEÑA {k} {int(rng.integers(1, 99))},Madrid",
                                        "speed": round(float(rng.uniform(0, 8)), 2), "secondsfromstart": 30 * k}})
    return {"type": "FeatureCollection", "features": features}


def write_trip_file(path: Path, size_mb: int, seed: int = 0) -> int:
    """A mongoexport-style trip month (``$oid``, ``$date`` +0200, tracks on ~3/4 of the lines,
    Latin-1 bytes inside them) of about ``size_mb`` MB, written from a pool of seeded lines
    with a distinct ``_id`` per trip."""
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(2000):
        day, hour = 1 + i % 30, int(rng.integers(0, 24))
        rec = {"_id": {"$oid": "OID_PLACEHOLDER_24_CHARS"}, "user_day_code": f"{rng.integers(1 << 62):064x}",
               "idplug_base": int(rng.integers(1, 25))}
        if rng.random() < 0.77:
            rec["track"] = _track(rng, int(rng.integers(1, 20)))
        rec.update({"user_type": int(rng.choice([1, 2, 3], p=[0.8, 0.05, 0.15])), "idunplug_base": int(rng.integers(1, 25)),
                    "travel_time": int(rng.integers(60, 3600)), "idunplug_station": int(rng.integers(1, 176)),
                    "ageRange": int(rng.integers(0, 7)), "idplug_station": int(rng.integers(1, 176)),
                    "unplug_hourTime": {"$date": f"2018-09-{day:02d}T{hour:02d}:00:00.000+0200"}, "zip_code": "28010"})
        text = json.dumps(rec, ensure_ascii=False, separators=(", ", " : "))
        pool.append(text.encode("latin-1") + b"\n")
    written = trips = 0
    with open(path, "wb") as fh:
        while written < size_mb * MB:
            # Every trip gets its own _id, so a full ingest keeps them all (repeated ids are dropped).
            block = b"".join(pool[j].replace(b"OID_PLACEHOLDER_24_CHARS", b"%024x" % (trips + k))
                             for k, j in enumerate(rng.integers(0, len(pool), 5000)))
            fh.write(block)
            written += len(block)
            trips += 5000
    return written


def write_snapshot_month(path: Path, days: int, n_stations: int = 213, seed: int = 0) -> int:
    """Hourly EMT snapshot JSON lines (all 13 fields) for ``days`` days."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2019-10-01 00:29:26")
    with open(path, "w", encoding="utf-8") as fh:
        for h in range(days * 24):
            stamp = (t0 + pd.Timedelta(seconds=3602 * h)).strftime("%Y-%m-%dT%H:%M:%S.%f")
            stations = []
            for s in range(1, n_stations + 1):
                bikes = int(rng.integers(0, 24))
                stations.append({"activate": 1, "name": f"Estación {s}", "reservations_count": 0, "light": 1,
                                 "total_bases": 24, "free_bases": 24 - bikes, "number": f"{s}", "longitude": "-3.7024255",
                                 "no_available": 0, "address": f"Calle {s} nº 1", "latitude": "40.4168961",
                                 "dock_bikes": bikes, "id": s})
            fh.write(json.dumps({"_id": stamp, "stations": stations}) + "\n")
    return path.stat().st_size


_RUNNER = textwrap.dedent("""
    import json, sys, time
    import pandas as pd, pyarrow.json  # imports are not parsing: load them before the clock starts
    from bicimad.opendata.readers import read_snapshot_jsonl, read_trips_jsonl
    from bicimad.opendata.rejects import Rejects
    kind, path = sys.argv[1], sys.argv[2]
    t = time.perf_counter()
    if kind == "ours-trips" or kind == "ours-snapshots":
        reader = read_trips_jsonl if kind == "ours-trips" else read_snapshot_jsonl
        rows = 0
        with open(path, "rb") as fh:
            for chunk in reader(fh, path, Rejects()):
                if chunk.kind != "stations":
                    rows += len(chunk.frame)
    else:
        # latin-1: pandas cannot decode line by line, and the tracks are not UTF-8.
        df = pd.read_json(path, lines=True, encoding="latin-1")
        if kind == "pandas-snapshots":  # one row per station, as ours gives
            df = pd.DataFrame(df["stations"].explode().tolist())
        rows = len(df)
    seconds = time.perf_counter() - t
    # VmHWM is this process's own peak (ru_maxrss would carry the parent's peak across exec).
    status = open("/proc/self/status").read()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_kb / 1024}))
""")


def _measure(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _RUNNER, kind, str(path)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    size = path.stat().st_size
    result.update(kind=kind, file_mb=round(size / MB, 1), mb_per_s=round(size / MB / result["seconds"], 1))
    return result


def _report(results: list[dict]) -> None:
    for r in results:
        print(f"{r['kind']:16s} {r['file_mb']:8.1f} MB  {r['rows']:>10,} rows  {r['seconds']:7.2f} s  "
              f"{r['mb_per_s']:7.1f} MB/s  peak {r['peak_mb']:7.0f} MB")
    out = os.environ.get("BICIMAD_BENCH_OUT")
    if out:
        existing = json.loads(Path(out).read_text()) if Path(out).exists() else []
        Path(out).write_text(json.dumps(existing + results, indent=2))


def test_trip_file_throughput_and_memory(tmp_path):
    size_mb = int(os.environ.get("BICIMAD_BENCH_TRIPS_MB", "1024"))
    pandas_mb = min(size_mb, int(os.environ.get("BICIMAD_BENCH_PANDAS_MB", "256")))
    big = tmp_path / "201809_Usage_Bicimad.json"
    write_trip_file(big, size_mb)
    prefix = tmp_path / "prefix_Usage_Bicimad.json"
    with open(big, "rb") as src, open(prefix, "wb") as dst:  # whole lines only
        dst.write(src.read(pandas_mb * MB).rsplit(b"\n", 1)[0] + b"\n")
    ours_big = _measure("ours-trips", big)
    ours_prefix = _measure("ours-trips", prefix)
    base = _measure("pandas-trips", prefix)
    _report([ours_big, ours_prefix, base])
    assert ours_prefix["rows"] == base["rows"]  # same records, both parsers
    assert ours_big["peak_mb"] < 1024  # bounded memory on the full file
    print(f"speed-up over pandas on the {pandas_mb} MB prefix: {ours_prefix['mb_per_s'] / base['mb_per_s']:.2f}x; "
          f"memory ratio {base['peak_mb'] / ours_prefix['peak_mb']:.1f}x")


def test_snapshot_month_throughput(tmp_path):
    days = int(os.environ.get("BICIMAD_BENCH_SNAPSHOT_DAYS", "31"))
    path = tmp_path / "201910_stations_madrid.json"
    write_snapshot_month(path, days)
    ours = _measure("ours-snapshots", path)
    base = _measure("pandas-snapshots", path)
    _report([ours, base])
    assert ours["rows"] == base["rows"] == days * 24 * 213
    print(f"speed-up over pandas: {ours['mb_per_s'] / base['mb_per_s']:.2f}x")
