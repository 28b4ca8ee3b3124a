"""Block-wise JSON-lines parsing: the pyarrow fast path and the line-by-line path agree,
and line numbers stay right across blocks."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from bicimad.opendata import snapshot_readers, trip_readers
from bicimad.opendata.jsonlines import iter_blocks
from bicimad.opendata.readers import read_snapshot_jsonl, read_trips_jsonl
from bicimad.opendata.rejects import Rejects

from .conftest import hourly_snapshots, trip_line


def _trip_lines(n: int, seed: int = 0) -> list[bytes]:
    """Mongoexport-style trips, most with a GeoJSON track holding Latin-1 bytes (as EMT's 2018-19 files)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        line = trip_line(f"{i:024x}", f"2018-09-{1 + i % 28:02d}T{i % 24:02d}:00:00.000+0200",
                         int(rng.integers(1, 176)), int(rng.integers(1, 176)), int(rng.integers(30, 5000)), style="mongo")
        if i % 4:
            track = {"type": "FeatureCollection", "features": [
                {"type": "Feature", "properties": {"var": "28010,ES,Madrid,Madrid,CALLE PEÑA 4,Madrid", "speed": 3.1}}]}
            line = line.replace('"idplug_base" : 1,', '"idplug_base" : 1, "track" : ' + json.dumps(track, ensure_ascii=False) + ",")
        out.append(line.encode("latin-1"))
    return out


def _trips(data: bytes, rejects: Rejects, **kw) -> pd.DataFrame:
    return pd.concat([c.frame for c in read_trips_jsonl(io.BytesIO(data), "t.json", rejects, **kw)], ignore_index=True)


def test_iter_blocks_keeps_whole_lines_and_counts():
    data = b"".join(f'{{"n": {i}}}\n'.encode() for i in range(1000)) + b'{"n": "last, no newline"}'
    blocks = list(iter_blocks(io.BytesIO(data), block_bytes=700))
    assert b"".join(b for _, _, b in blocks) == data
    assert all(b.endswith(b"\n") for _, _, b in blocks[:-1])
    firsts = [first for first, _, _ in blocks]
    assert firsts[0] == 1 and firsts == list(np.cumsum([1] + [n for _, n, _ in blocks[:-1]]))
    assert sum(n for _, n, _ in blocks) == 1001


def test_fast_and_line_by_line_paths_agree(monkeypatch):
    data = b"".join(_trip_lines(400))
    fast = _trips(data, Rejects(), block_bytes=8192)
    monkeypatch.setattr(trip_readers, "arrow_block", lambda block, schema: None)  # force the fallback
    slow_rejects = Rejects()
    slow = _trips(data, slow_rejects, block_bytes=8192)
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) == 400 and fast["trip_key"].is_unique
    assert slow_rejects.warnings  # the fallback had to decode Latin-1 lines


@pytest.mark.parametrize("block_bytes", [2048, 1 << 20])
def test_bad_line_is_named_in_any_block(block_bytes):
    lines = _trip_lines(300)
    lines[220] = b'{"_id" : { "$oid" : "zz" }, "idunplug_station" : 5 oops }\n'
    lines[250] = trip_line("bad", "2018-09-03T08:00:00.000+0200", "x5", 7, style="mongo").encode()
    rejects = Rejects()
    trips = _trips(b"".join(lines), rejects, block_bytes=block_bytes)
    assert len(trips) == 298
    assert [(r[1], r[2]) for r in rejects.rows] == [(221, ""), (251, "idunplug_station")]


def test_snapshot_fast_path_matches_line_by_line(monkeypatch):
    data = "".join(hourly_snapshots("2019-07-01 00:00", 30, n_stations=5)).encode()
    fast = [c.frame for c in read_snapshot_jsonl(io.BytesIO(data), "s.json", Rejects(), block_bytes=4096)]
    monkeypatch.setattr(snapshot_readers, "arrow_block", lambda block, schema: None)
    slow = [c.frame for c in read_snapshot_jsonl(io.BytesIO(data), "s.json", Rejects(), block_bytes=4096)]
    kinds = lambda frames, cols: pd.concat([f for f in frames if set(cols) <= set(f.columns)], ignore_index=True)  # noqa: E731
    snap_cols = ["ts_local", "bikes"]
    pd.testing.assert_frame_equal(kinds(fast, snap_cols), kinds(slow, snap_cols))
    assert len(kinds(fast, snap_cols)) == 150


def test_mongoexport_snapshot_id_and_bad_stamp():
    data = (b'{"_id": {"$date": "2019-07-01T00:29:26.018+0200"}, "stations": [{"id": 1, "dock_bikes": 3, "total_bases": 5}]}\n'
            b'{"_id": "2019-07-01T01:29:28.5", "stations": [{"id": 1, "dock_bikes": 4, "total_bases": 5}]}\n'
            b'{"_id": "nonsense", "stations": [{"id": 1, "dock_bikes": 3, "total_bases": 5}]}\n')
    rejects = Rejects()
    snaps = pd.concat([c.frame for c in read_snapshot_jsonl(io.BytesIO(data), "s.json", rejects) if c.kind == "snapshots"])
    assert [str(t) for t in snaps["ts_local"]] == ["2019-07-01 00:29:26.018000", "2019-07-01 01:29:28.500000"]
    assert rejects.rows == [("s.json", 3, "_id", "unparsable snapshot time", "nonsense")]
