"""Readers of EMT station snapshots: JSON lines, Python-``str`` dumps, xlsx and parquet.

Each reader yields ``snapshots`` chunks and the latest ``stations`` row per station
(:mod:`bicimad.opendata.records`). JSON lines are parsed in blocks of whole lines
(:mod:`bicimad.opendata.jsonlines`), so memory is bounded by the block size.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from typing import IO

import numpy as np
import pandas as pd

from bicimad.opendata.archive import DEFAULT_LIMITS, Limits, read_document
from bicimad.opendata.jsonlines import (
    BLOCK_BYTES,
    arrow_block,
    batched,
    block_line_numbers,
    first_keys,
    iter_blocks,
    json_records,
)
from bicimad.opendata.records import (
    CHUNK_LINES,
    SNAPSHOT_PART_COLUMNS,
    STATION_FIELDS,
    Chunk,
    check,
    check_position,
    check_window,
    coord,
    map_unique,
    normalise_number,
    open_workbook,
    parse_naive_stamps,
    to_int,
    validate_station_values,
)
from bicimad.opendata.rejects import IngestError, Rejects
from bicimad.opendata.times import localize_wall_clock


def station_records_to_chunks(
    records: list[tuple[int, object, dict]], source: str, rejects: Rejects, *, fix_text=None
) -> Iterator[Chunk]:
    """Chunks from (line, naive stamp or None, EMT station dict) records."""
    if not records:
        return
    frame = pd.DataFrame.from_records([r[2] for r in records])
    frame["_line"] = [r[0] for r in records]
    frame["_stamp"] = [r[1] for r in records]
    yield from station_frame_to_chunks(frame, source, rejects, fix_text=fix_text)


def station_frame_to_chunks(df: pd.DataFrame, source: str, rejects: Rejects, *, fix_text=None) -> Iterator[Chunk]:
    """Build snapshot and station chunks from a frame of EMT station fields.

    ``df`` has EMT field columns (any subset), ``_line`` (for messages) and ``_stamp`` (naive
    local snapshot time; all None for an undated station list, which yields only stations).
    Impossible values reject their record: counts below zero or above capacity, times outside
    the plausible window (:data:`bicimad.opendata.records.EARLIEST_TIME`), coordinates off Earth.
    """
    if df.empty:
        return
    df = df.reset_index(drop=True)
    lines = df["_line"].to_numpy()
    unknown = set(df.columns) - STATION_FIELDS - {"_line", "_stamp"}
    if unknown:
        rejects.warn(source, f"unknown station field(s) ignored: {', '.join(sorted(map(str, unknown)))}", len(df))
    col = lambda key: df[key] if key in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)  # noqa: E731
    bad = np.zeros(len(df), bool)
    frame = pd.DataFrame({
        "station_id": to_int(col("id"), "id", lines, source, rejects, bad, required=False),
        "number": map_unique(col("number"), normalise_number).to_numpy(object),
    })
    for i in np.flatnonzero(frame["station_id"].isna().to_numpy() & pd.isna(frame["number"]).to_numpy() & ~bad):
        rejects.add(source, lines[i], "id", "missing field (neither id nor number)")
        bad[i] = True
    lat, lon = coord(col("latitude")), coord(col("longitude"))
    check_position(lat, lon, ("latitude", "longitude"), lines, source, rejects, bad)
    dated = df["_stamp"].notna().any()
    if dated:
        _snapshot_values(frame, col, df["_stamp"], lines, source, rejects, bad)
    else:
        frame["capacity"] = to_int(col("total_bases"), "total_bases", lines, source, rejects, bad, required=False)
        check((frame["capacity"] < 0).fillna(False).to_numpy(), "total_bases", "negative capacity", frame["capacity"],
              lines, source, rejects, bad)
    frame["source"] = source
    keep = ~bad
    if dated:
        yield Chunk("snapshots", frame[keep][list(SNAPSHOT_PART_COLUMNS)].reset_index(drop=True))
        # One station row per station and stamp would be huge; the latest per station suffices.
        latest = frame[keep].sort_values("ts_local", kind="stable").drop_duplicates(["station_id", "number"], keep="last")
        keep = np.zeros(len(frame), bool)
        keep[latest.index] = True
    texts = {key: col(key)[keep].map(_text(fix_text)).to_numpy(object) for key in ("name", "address")}
    info = pd.DataFrame({
        "station_id": frame["station_id"][keep], "number": frame["number"][keep], **texts,
        "lat": lat[keep].to_numpy(), "lon": lon[keep].to_numpy(), "capacity": frame["capacity"][keep],
        "as_of": localize_wall_clock(frame["ts_local"][keep]) if dated else pd.NaT, "source": source,
    })
    yield Chunk("stations", info.reset_index(drop=True))


def _text(fix_text=None):
    """Names and addresses as text (a number where a name belongs becomes its digits)."""
    def text(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        value = value if isinstance(value, str) else str(value)
        return fix_text(value) if fix_text else value
    return text


def _snapshot_values(frame: pd.DataFrame, col, stamps: pd.Series, lines, source: str, rejects: Rejects,
                     bad: np.ndarray) -> None:
    """Snapshot time, counts and availability into ``frame``, rejecting impossible values."""
    ints = lambda key, required=False: to_int(col(key), key, lines, source, rejects, bad, required=required)  # noqa: E731
    ts = stamps if pd.api.types.is_datetime64_dtype(stamps.dtype) else parse_naive_stamps(stamps)
    for i in np.flatnonzero(ts.isna().to_numpy() & ~bad):
        rejects.add(source, lines[i], "_id", "unparsable snapshot time", stamps.iloc[i])
    bad |= ts.isna().to_numpy()
    check_window(ts, "_id", "snapshot time", lines, source, rejects, bad)
    frame["ts_local"] = ts.to_numpy()
    frame["bikes"] = ints("dock_bikes", required=True)
    frame["free_docks"] = ints("free_bases")
    frame["capacity"] = ints("total_bases")
    activate, no_avail = ints("activate"), ints("no_available")
    available = ((activate.fillna(1) == 1) & (no_avail.fillna(0) == 0)).astype(object)
    frame["available"] = available.where(activate.notna() | no_avail.notna(), None).to_numpy()
    validate_station_values(frame, lines, source, rejects, bad)


def _snapshot_schema():
    import pyarrow as pa

    text, num = pa.string(), pa.int64()
    station = pa.struct([("id", num), ("number", text), ("name", text), ("address", text), ("latitude", text),
                         ("longitude", text), ("light", num), ("activate", num), ("no_available", num),
                         ("total_bases", num), ("dock_bikes", num), ("free_bases", num), ("reservations_count", num)])
    return pa.schema([("_id", text), ("stations", pa.list_(station))])


def long_line_rejecter(source: str, rejects: Rejects, limits: Limits):
    """The ``on_long_line`` of :func:`~bicimad.opendata.jsonlines.iter_blocks`: one reject per line."""
    def reject(line: int, n: int) -> None:
        rejects.add(source, line, None, f"line longer than {limits.max_line_bytes:,} bytes (--max-line-bytes); "
                    "skipped without reading it whole", f"{n:,} bytes")
    return reject


def read_snapshot_jsonl(stream: IO[bytes], source: str, rejects: Rejects, block_bytes: int = BLOCK_BYTES, *,
                        limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """EMT snapshot JSON lines: ``{"_id": "<naive local ISO>", "stations": [13 fields...]}``.

    Blocks of whole lines go through pyarrow (EMT's own types: coordinates as strings, counts
    as integers); a block that does not fit is parsed line by line, naming bad lines and fields.
    """
    schema = _snapshot_schema()
    blocks = iter_blocks(stream, block_bytes, limits.max_line_bytes, long_line_rejecter(source, rejects, limits))
    for first_line, n_lines, block in blocks:
        head = first_keys(block)
        if head - {"_id", "stations"}:
            rejects.warn(source, f"unknown snapshot field(s) ignored: {', '.join(sorted(head - {'_id', 'stations'}))}")
        table = arrow_block(block, schema)
        lines = block_line_numbers(block, first_line, n_lines, table.num_rows) if table is not None else None
        if table is None or lines is None or table.column("_id").null_count or table.column("stations").null_count:
            yield from _snapshots_line_by_line(block, first_line, source, rejects)
            continue
        stations = table.column("stations").combine_chunks()
        flat = stations.flatten()
        frame = pd.DataFrame({field.name: flat.field(field.name).to_pandas() for field in flat.type})
        lengths = stations.value_lengths().to_numpy(zero_copy_only=False)
        frame["_stamp"] = np.repeat(table.column("_id").to_numpy(zero_copy_only=False), lengths)
        frame["_line"] = np.repeat(lines, lengths)
        yield from station_frame_to_chunks(frame, source, rejects)


def _snapshots_line_by_line(block: bytes, first_line: int, source: str, rejects: Rejects) -> Iterator[Chunk]:
    records = []
    for lineno, obj in json_records(io.BytesIO(block), source, rejects, first_line):
        stamp, stations = obj.get("_id"), obj.get("stations")
        if isinstance(stamp, dict):  # mongoexport style: {"$date": ...}
            stamp = stamp.get("$date")
        if stamp is None:
            rejects.add(source, lineno, "_id", "missing field")
            continue
        if not isinstance(stations, list):
            rejects.add(source, lineno, "stations", "missing field or not a list")
            continue
        for st in stations:
            if isinstance(st, dict):
                records.append((lineno, stamp, st))
            else:
                rejects.add(source, lineno, "stations", "station entry is not an object", st)
    yield from station_records_to_chunks(records, source, rejects)


def read_python_str_snapshot(stream: IO[bytes], source: str, rejects: Rejects, *,
                             limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """A snapshot saved as Python ``str()`` of a list of JSON lines (literal newlines inside).

    UTF-8, else Latin-1 (with a warning); only literals are evaluated (:func:`ast.literal_eval`).
    """
    raw = read_document(stream, source, limits)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        rejects.warn(source, "file not UTF-8, decoded as Latin-1")
    try:
        lines = ast.literal_eval(text.replace("\n", "\\n"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise IngestError(f"{source}: not a Python list of JSON strings ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(lines, (list, tuple)) or not all(isinstance(line, str) for line in lines):
        raise IngestError(f"{source}: not a Python list of JSON strings (got {type(lines).__name__})")
    payload = "\n".join(line.replace("\n", "") for line in lines) + "\n"
    yield from read_snapshot_jsonl(io.BytesIO(payload.encode("utf-8")), source, rejects, limits=limits)




def read_snapshot_xlsx(path, source: str, rejects: Rejects) -> Iterator[Chunk]:
    """EstacionesVacias-style workbook: ``Sheet1`` (fecha, id, total_bases, dock_bikes), newest
    first, naive local time; optional ``Estaciones`` sheet with the station list."""
    wb = open_workbook(path, source)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, None) or ()]
        col = {name: header.index(name) for name in ("fecha", "id", "total_bases", "dock_bikes") if name in header}
        if len(col) < 4:
            raise IngestError(f"{source}: sheet {wb.sheetnames[0]!r} lacks column(s) "
                              f"{sorted({'fecha', 'id', 'total_bases', 'dock_bikes'} - set(col))}")
        width = max(col.values()) + 1
        numbered = ((i, tuple(r) + (None,) * (width - len(r))) for i, r in enumerate(rows, 2)
                    if any(v is not None for v in r))
        for batch in batched(numbered, CHUNK_LINES):
            df = pd.DataFrame({
                "_line": [i for i, _ in batch], "_stamp": [r[col["fecha"]] for _, r in batch],
                **{name: [r[col[name]] for _, r in batch] for name in ("id", "total_bases", "dock_bikes")},
            })
            yield from station_frame_to_chunks(df, source, rejects)
        if "Estaciones" in wb.sheetnames:
            srows = wb["Estaciones"].iter_rows(values_only=True)
            sheader = [str(h).strip() for h in next(srows, None) or ()]
            recs = [(i, None, dict(zip(sheader, r))) for i, r in enumerate(srows, 2) if any(v is not None for v in r)]
            yield from station_records_to_chunks(recs, f"{source}#Estaciones", rejects)
    finally:
        wb.close()


def _parquet_batches(path, columns=None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=CHUNK_LINES, columns=columns):
        yield batch.to_pandas()


def read_snapshot_parquet(path, source: str, rejects: Rejects) -> Iterator[Chunk]:
    """Snapshot tables flattened by others with EMT field names: a naive ``_id`` column
    (situaciones: no station ``id``, only ``number``) or ``fecha`` + ``hora`` (try.parquet)."""
    start = 1
    for df in _parquet_batches(path):
        if "_id" in df.columns:
            stamps = pd.to_datetime(df.pop("_id"), errors="coerce")
        elif {"fecha", "hora"} <= set(df.columns):
            stamps = df.pop("fecha").astype(str) + "T" + df.pop("hora").astype(str)
        else:
            raise IngestError(f"{source}: parquet has neither `_id` nor `fecha`+`hora` columns")
        df["_stamp"] = stamps
        df["_line"] = np.arange(start, start + len(df))  # parquet row number
        start += len(df)
        yield from station_frame_to_chunks(df, source, rejects)

