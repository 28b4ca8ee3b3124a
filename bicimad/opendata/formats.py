"""Recognise a raw file's format by its content (and name, as a hint) and read it.

:func:`detect` returns a format name; :data:`READERS` maps it to a reader. ``AUXILIARY``
formats are recognised EMT-derived tables that are not trips, snapshots or station lists
(daily counts, per-station hourly counts, long trips without stations, a GEXF graph, a
simulator's station configuration): ingest records them in the raw manifest and skips them
(:mod:`bicimad.opendata.auxiliary` reads them). A simulator's user configuration holds real
trips and is ingested (``trips-sim-users``). Zip archives are read member by member.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from bicimad.opendata import archive
from bicimad.opendata import auxiliary as aux
from bicimad.opendata import readers as r
from bicimad.opendata.archive import DEFAULT_LIMITS, Limits
from bicimad.opendata.jsonlines import BOM
from bicimad.opendata.rejects import IngestError, Rejects

SNAPSHOTS, TRIPS, STATIONS = "snapshots", "trips", "stations"

#: Format name -> (what it holds, reader(source_obj, label, rejects)). ``stream`` readers take a
#: binary stream; ``path`` readers (xlsx, parquet) take a path or a seekable stream.
READERS: dict[str, tuple[str, Callable[..., Iterator[r.Chunk]]]] = {
    "snapshot-jsonl": (SNAPSHOTS, r.read_snapshot_jsonl),
    "snapshot-pystr": (SNAPSHOTS, r.read_python_str_snapshot),
    "snapshot-xlsx": (SNAPSHOTS, r.read_snapshot_xlsx),
    "snapshot-parquet": (SNAPSHOTS, r.read_snapshot_parquet),
    "trips-jsonl": (TRIPS, r.read_trips_jsonl),
    "trips-od-xlsx": (TRIPS, r.read_od_xlsx),
    "trips-sim-users": (TRIPS, aux.read_simulator_users),
    "stations-json": (STATIONS, r.read_station_json),
    "stations-bases-csv": (STATIONS, r.read_bases_csv),
    "stations-table-csv": (STATIONS, r.read_all_stations_csv),
}
AUXILIARY = "auxiliary"
#: Formats whose reader takes a path (the others take a binary stream and :class:`Limits`).
PATH_FORMATS = ("snapshot-xlsx", "trips-od-xlsx", "snapshot-parquet")

_TRIP_NAME = re.compile(r"(usage_bicimad|movements|usos)", re.I)
_SNAPSHOT_NAME = re.compile(r"(stations_madrid|bicimad_estacions|situaciones)", re.I)


def _json_kind(obj) -> str | None:
    if isinstance(obj, list):
        return "stations-json" if obj and isinstance(obj[0], dict) and "id" in obj[0] else None
    if not isinstance(obj, dict):
        return None
    if "stations" in obj and isinstance(obj["stations"], list):
        first = obj["stations"][0] if obj["stations"] else {}
        if "_id" in obj:
            return "snapshot-jsonl"
        if isinstance(first, dict) and "id" in first:
            return "stations-json"
        return AUXILIARY  # e.g. a simulator's station configuration without ids
    if "unplug_hourTime" in obj or "idunplug_station" in obj:
        return "trips-jsonl"
    if isinstance(obj.get("initialUsers"), list):
        return "trips-sim-users"  # a simulator's trips, matched to stations by position
    return AUXILIARY if obj else None


def detect(name: str, head: bytes, size: int, read_all: Callable[[], bytes]) -> str:
    """Format of a file from its name, its first bytes and (for small pretty-printed JSON) all of it.

    A UTF-8 byte-order mark is ignored (the readers drop it too).
    """
    lower = name.lower()
    if head.startswith(b"PK\x03\x04"):
        return "xlsx" if lower.endswith((".xlsx", ".xlsm")) else "zip"
    if head.startswith(b"PAR1"):
        return "parquet"
    head = head.removeprefix(BOM)
    text = head.decode("latin-1").lstrip(" \t\r\n")
    if text.startswith(("['{", '["{')):
        return "snapshot-pystr"
    if text.startswith("<?xml") or text.startswith("<gexf"):
        return AUXILIARY
    if text.startswith(("{", "[")):
        return _json_format(name, head, size, read_all)
    first = text.split("\n", 1)[0]
    if first.startswith("Id_Estacion;"):
        return "stations-bases-csv"
    if re.match(r"^,?id,", first) and "total_bases" in first:
        return "stations-table-csv"
    if first.startswith(("Station;", "day_of_week", "FECHA")):
        return AUXILIARY
    raise IngestError(f"{name}: unrecognised format (first bytes {head[:40]!r})")


def _json_format(name: str, head: bytes, size: int, read_all: Callable[[], bytes]) -> str:
    # JSON lines: the first complete line tells; several lines in case the first is bad.
    lower = name.lower()
    lines = head.split(b"\n")[:-1] if len(head) < size else head.split(b"\n")
    for line in lines[:5]:
        try:
            kind = _json_kind(json.loads(line.decode("latin-1")))
        except (json.JSONDecodeError, IndexError, RecursionError):
            continue
        if kind:
            return kind
    if size <= 64 << 20:  # a pretty-printed document (station list, configuration)
        try:
            kind = _json_kind(json.loads(read_all().removeprefix(BOM).decode("utf-8", errors="replace")))
            if kind:
                return kind
        except (json.JSONDecodeError, IndexError, RecursionError):
            pass
    if _TRIP_NAME.search(lower):
        return "trips-jsonl"
    if _SNAPSHOT_NAME.search(lower):
        return "snapshot-jsonl"
    raise IngestError(f"{name}: JSON, but neither trips, snapshots nor a station list")


def _xlsx_kind(path_or_stream, name: str) -> str:
    wb = r.open_workbook(path_or_stream, name)
    try:
        sheets = wb.sheetnames
        first = [str(v).strip() if v is not None else "" for v in next(wb.worksheets[0].iter_rows(max_row=1, values_only=True), ())]
    finally:
        wb.close()
    if {"fecha", "id", "dock_bikes"} <= set(first):
        return "snapshot-xlsx"
    if any(re.fullmatch(r"\d{1,2}-\d{1,2}", s) for s in sheets) and re.search(r"Usos\d{6}", name):
        return "trips-od-xlsx"
    return AUXILIARY


def _parquet_kind(path_or_stream, name: str) -> str:
    import pyarrow.parquet as pq

    cols = set(pq.ParquetFile(path_or_stream).schema_arrow.names)
    if "dock_bikes" in cols and ("_id" in cols or {"fecha", "hora"} <= cols):
        return "snapshot-parquet"
    raise IngestError(f"{name}: parquet without snapshot columns (dock_bikes and _id or fecha+hora); has {sorted(cols)}")


def _table_kind(kind: str, path, name: str, limits: Limits) -> str:
    """The content format of an xlsx or parquet file (a workbook is checked as the zip it is)."""
    if kind == "xlsx":
        archive.check_workbook(path, name, limits)
        return _xlsx_kind(path, name)
    return _parquet_kind(path, name)


def file_format(path: Path, limits: Limits = DEFAULT_LIMITS) -> str:
    """The format name of a file on disk ('zip' for archives)."""
    with guarded(str(path)):
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        size = path.stat().st_size
        kind = detect(path.name, head, size, lambda: _read_whole(path, limits))
        return _table_kind(kind, path, path.name, limits) if kind in ("xlsx", "parquet") else kind


def _read_whole(path: Path, limits: Limits) -> bytes:
    with open(path, "rb") as fh:
        return archive.read_document(fh, str(path), limits)


#: What a damaged or hostile file makes the libraries raise while it is read: each becomes an
#: :class:`IngestError` naming the file, never a traceback.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, IndexError, TypeError, ValueError, AttributeError,
           OverflowError, RecursionError, MemoryError, UnicodeError, SyntaxError, pa.ArrowException)


@contextlib.contextmanager
def guarded(label: str) -> Iterator[None]:
    """Turn the exceptions of :data:`_DAMAGE` into an :class:`IngestError` naming ``label``."""
    try:
        yield
    except IngestError:
        raise
    except _DAMAGE as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise IngestError(f"{label}: damaged or unreadable file ({type(exc).__name__}{': ' + detail if detail else ''})") from None


def read_file(path: Path, source: str, rejects: Rejects, *, progress: Callable[[int], None] | None = None,
              limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[str, r.Chunk]]:
    """Read any supported raw file (zip archives member by member): yield (format, chunk).

    ``progress(bytes_read)`` is called after each chunk with the position in the file. Any
    damage is an :class:`IngestError` naming the file (and member).
    """
    progress = progress or (lambda _n: None)
    kind = file_format(path, limits)
    with guarded(source):
        if kind == "zip":
            yield from _read_zip(path, source, rejects, progress, limits)
        elif kind in PATH_FORMATS:
            for chunk in READERS[kind][1](path, source, rejects):
                yield kind, chunk
        elif kind != AUXILIARY:
            with open(path, "rb") as fh:
                for chunk in READERS[kind][1](fh, source, rejects, limits=limits):
                    progress(fh.tell())
                    yield kind, chunk
    progress(path.stat().st_size)


def _read_zip(path: Path, source: str, rejects: Rejects, progress: Callable[[int], None],
              limits: Limits) -> Iterator[tuple[str, r.Chunk]]:
    with archive.open_zip(path, source, limits) as zf:
        for info in zf.infolist():
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            label = f"{source}!{info.filename}"
            with zf.open(info) as fh:
                head = fh.read(1 << 16)
            if archive.is_nested_archive(info.filename, head):
                raise IngestError(f"{label}: archives inside archives are not read (unpack it and ingest its files)")
            kind = detect(info.filename, head, info.file_size,
                          lambda info=info, label=label: archive.read_document(zf.open(info), label, limits))
            if kind in ("xlsx", "parquet"):
                with archive.member_file(zf, info) as member:
                    kind = _table_kind(kind, member, info.filename, limits)
                    if kind != AUXILIARY:
                        for chunk in READERS[kind][1](member, label, rejects):
                            yield kind, chunk
                continue
            if kind == AUXILIARY:
                continue
            with zf.open(info) as fh:  # streams: a 1 GB member is never held in memory
                for chunk in READERS[kind][1](fh, label, rejects, limits=limits):
                    progress(zf.fp.tell())
                    yield kind, chunk
