"""The guarded archive reader: members refused from their declared sizes before they are read,
nested archives refused unread, long JSON lines rejected without being held in memory."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata import schemas
from bicimad.opendata.archive import DEFAULT_LIMITS, Limits
from bicimad.opendata.formats import read_file
from bicimad.opendata.jsonlines import iter_blocks
from bicimad.opendata.readers import read_trips_jsonl
from bicimad.opendata.rejects import IngestError, Rejects

from .conftest import trip_line, write_lines


def _trips(n: int) -> bytes:
    return "".join(trip_line(f"t{i}", f"2019-07-01T{i % 24:02d}:00:00Z", 1 + i % 5, 2) for i in range(n)).encode()


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _declare_size(path, size: int) -> None:
    """Make every member of a zip declare ``size`` uncompressed bytes (a bomb's headers)."""
    data = bytearray(path.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        start = 0
        while (i := data.find(sig, start)) >= 0:
            data[i + offset:i + offset + 4] = struct.pack("<I", size)
            start = i + 4
    path.write_bytes(bytes(data))


def _read(path, limits=DEFAULT_LIMITS):
    rejects = Rejects()
    return [c for _k, c in read_file(path, path.name, rejects, limits=limits)], rejects


def test_member_declaring_a_huge_size_is_refused_unread(tmp_path):
    path = _zip(tmp_path / "201907_movements.zip", {"201907_movements.json": _trips(50)})
    _declare_size(path, 0xFFFF_FFF0)  # about 4 GiB declared by a 2 kB archive
    with pytest.raises(IngestError, match=r"declares 4,294,967,280 bytes, over the limit of 2,147,483,648"):
        _read(path)


def test_highly_compressible_member_is_refused(tmp_path):
    bomb = _zip(tmp_path / "201907_movements.zip", {"201907_movements.json": b" " * (8 << 20)})
    with pytest.raises(IngestError, match=r"expands .* times .* over the limit of 200"):
        _read(bomb)
    # a normal archive passes the default limits, and fails a low limit set on purpose
    normal = _zip(tmp_path / "normal.zip", {"201907_movements.json": _trips(3000)})
    chunks, _ = _read(normal)
    assert sum(len(c.frame) for c in chunks) == 3000
    with pytest.raises(IngestError, match="--max-compression-ratio"):
        _read(normal, Limits(max_ratio=3, ratio_floor_bytes=1000))
    with pytest.raises(IngestError, match="--max-member-bytes"):
        _read(normal, Limits(max_member_bytes=10_000))


def test_limits_from_the_command_line(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    src = _zip(tmp_path / "src" / "201907_movements.zip", {"201907_movements.json": _trips(3000)})
    root = tmp_path / "data"
    assert main(["--data-dir", str(root), "ingest", "--from", str(src), "--no-progress",
                 "--max-member-bytes", "10000"]) == 3
    assert "over the limit of 10,000 (--max-member-bytes)" in capsys.readouterr().err
    assert main(["--data-dir", str(root), "data", "rejected", "--all"]) == 0
    assert main(["--data-dir", str(root), "ingest", "--from", str(src), "--no-progress"]) == 0
    assert len(schemas.read_table("trips", root / "processed" / "trips.parquet")) == 3000
    with pytest.raises(SystemExit):
        main(["--data-dir", str(root), "ingest", "--max-compression-ratio", "nan"])


@pytest.mark.parametrize("inner", ["inner.zip", "inner.json.gz", "data.bin"])
def test_nested_archive_is_refused_before_it_is_read(tmp_path, monkeypatch, inner):
    import gzip

    payload = _zip(tmp_path / "x.zip", {"a.json": _trips(10)}).read_bytes() if inner != "inner.json.gz" \
        else gzip.compress(_trips(10))
    outer = _zip(tmp_path / "201907_movements.zip", {inner: payload})

    def no_whole_reads(*_a, **_k):
        raise AssertionError("a member was read whole")

    monkeypatch.setattr(zipfile.ZipFile, "read", no_whole_reads)
    with pytest.raises(IngestError, match="archives inside archives are not read"):
        _read(outer)


def test_parquet_member_is_read_from_a_temporary_file(tmp_path, monkeypatch):
    buf = io.BytesIO()
    pd.DataFrame({"_id": [f"2019-07-01T{h:02d}:20:00" for h in range(5)], "number": "1a", "dock_bikes": 3,
                  "total_bases": 20, "free_bases": 17}).to_parquet(buf)
    path = _zip(tmp_path / "situaciones.zip", {"situaciones.parquet": buf.getvalue()})
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *_a, **_k: (_ for _ in ()).throw(AssertionError("in memory")))
    chunks, _ = _read(path)
    assert sum(len(c.frame) for c in chunks if c.kind == "snapshots") == 5


class _OneLongLine(io.RawIOBase):
    """A stream of ``n`` bytes without a newline, then one good line; never held whole."""

    def __init__(self, n: int, tail: bytes):
        self.left, self.tail = n, tail

    def readable(self):
        return True

    def readinto(self, buf):
        if self.left > 0:
            k = min(len(buf), self.left)
            buf[:k] = b"x" * k
            self.left -= k
            return k
        k = min(len(buf), len(self.tail))
        buf[:k], self.tail = self.tail[:k], self.tail[k:]
        return k


def test_a_huge_json_line_is_rejected_without_holding_it():
    seen = []
    tail = b"\n" + trip_line("ok", "2019-07-01T06:00:00Z", 1, 2).encode()
    stream = io.BufferedReader(_OneLongLine(256 << 20, tail), buffer_size=1 << 20)
    tracemalloc.start()
    try:
        blocks = list(iter_blocks(stream, 1 << 20, max_line_bytes=4 << 20, on_long_line=lambda ln, n: seen.append((ln, n))))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == [(1, 256 << 20)]
    assert [(first, n) for first, n, _b in blocks] == [(2, 1)]
    assert peak < 32 << 20  # a 256 MiB line, a few MiB of memory


def test_long_line_becomes_a_reject_naming_it(tmp_path):
    long_line = '{"_id": {"$oid": "' + "y" * 3_000_000 + '"}}\n'
    data = _trips(2) + long_line.encode() + _trips(2)
    rejects = Rejects()
    chunks = list(read_trips_jsonl(io.BytesIO(data), "t.json", rejects, block_bytes=1 << 20,
                                   limits=Limits(max_line_bytes=1_000_000)))
    assert sum(len(c.frame) for c in chunks) == 4
    ((_f, line, _field, reason, _v),) = rejects.rows
    assert line == 3 and reason.startswith("line longer than 1,000,000 bytes")
    # a document read whole is refused beyond the same limit
    path = write_lines(tmp_path / "stations.json", ['{"stations": [' + ",".join(['{"id": 1}'] * 200_000) + "]}"])
    with pytest.raises(IngestError, match="document larger than 1,000,000 bytes"):
        _read(path, Limits(max_line_bytes=1_000_000))
