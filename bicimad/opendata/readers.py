"""Streaming readers for every raw EMT format, yielding normalised chunks.

Each reader takes an open binary stream (or a path, for xlsx/parquet), a ``source`` label
and a :class:`~bicimad.opendata.rejects.Rejects`, and yields :class:`Chunk` objects of one of
three *part* kinds. Parts are close to the processed tables of :mod:`schemas` but keep what
the final build still needs:

``snapshots``  ``ts_local`` (naive Madrid wall clock; localised at build time so the DST rule
               sees every stamp at once), ``station_id`` (may be null), ``number`` (the key
               when the id is missing), bikes, free_docks, capacity, available, source.
``trips``      the ``trips`` table's columns plus ``trip_key`` (EMT ``_id``, to drop repeats).
``stations``   station_id (may be null), number, name, address, lat, lon, capacity,
               ``as_of`` (when the row was true; null for undated lists), source.

Readers never load a whole JSON-lines file: they parse it in blocks of whole lines
(:mod:`bicimad.opendata.jsonlines`), so memory is bounded by the block size.
"""

from __future__ import annotations

import ast
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pandas as pd

from bicimad.opendata.jsonlines import (
    BLOCK_BYTES,
    arrow_block,
    batched,
    block_line_numbers,
    first_keys,
    iter_blocks,
    json_records,
)
from bicimad.opendata.rejects import IngestError, Rejects
from bicimad.opendata.times import localize_wall_clock, parse_instants
from bicimad.opendata.utm import utm_to_latlon

CHUNK_LINES = 200_000

#: Fields of an EMT station record (snapshot or station list).
STATION_FIELDS = frozenset({
    "id", "number", "name", "address", "latitude", "longitude", "light", "activate", "no_available",
    "total_bases", "dock_bikes", "free_bases", "reservations_count",
})
#: Fields of an EMT trip record, mongoexport and compact styles.
TRIP_FIELDS = frozenset({
    "_id", "user_day_code", "idplug_base", "idunplug_base", "idplug_station", "idunplug_station",
    "user_type", "travel_time", "ageRange", "unplug_hourTime", "zip_code", "track",
})

SNAPSHOT_PART_COLUMNS = ("ts_local", "station_id", "number", "bikes", "free_docks", "capacity", "available", "source")
TRIP_PART_COLUMNS = ("unplug_ts", "plug_ts", "duration_s", "from_station", "to_station", "user_type", "source", "trip_key")
STATION_PART_COLUMNS = ("station_id", "number", "name", "address", "lat", "lon", "capacity", "as_of", "source")


@dataclass
class Chunk:
    kind: str  # "snapshots" | "trips" | "stations"
    frame: pd.DataFrame


# --------------------------------------------------------------------------------------------
# Validation helpers (vectorised over a chunk; each failure names line and field)
# --------------------------------------------------------------------------------------------

def _to_int(values, name: str, lines, source: str, rejects: Rejects, bad: np.ndarray, required: bool = True) -> pd.Series:
    """Numeric column as nullable Int64; non-numeric or fractional values reject their record."""
    raw = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    raw = raw.reset_index(drop=True)
    num = raw if pd.api.types.is_numeric_dtype(raw.dtype) else _map_unique(raw, _number_or_nan)
    num = num.astype(float)
    missing = raw.isna().to_numpy()
    invalid = (num.isna().to_numpy() & ~missing) | (num.notna().to_numpy() & (num.fillna(0) % 1 != 0).to_numpy())
    for i in np.flatnonzero(invalid & ~bad):
        rejects.add(source, lines[i], name, "not an integer", raw.iloc[i])
    bad |= invalid
    if required:
        for i in np.flatnonzero(missing & ~bad):
            rejects.add(source, lines[i], name, "missing field")
        bad |= missing
    return num.where(~invalid).round().astype("Int64")


def _number_or_nan(value) -> float:
    if isinstance(value, bool):
        return float("nan")
    try:
        return float(value.replace(",", ".").strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return float("nan")


def _map_unique(values: pd.Series, fn) -> pd.Series:
    """``values.map(fn)`` computed once per distinct value (columns repeat a few hundred values)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = pd.Series([fn(u) for u in uniques], dtype=object)
    out = mapped.reindex(codes).to_numpy() if len(uniques) else np.full(len(values), None, dtype=object)
    out = pd.Series(out, index=values.index, dtype=object)
    return out.where(codes >= 0, None)


def _check(cond: np.ndarray, name: str, reason: str, values, lines, source: str, rejects: Rejects, bad: np.ndarray) -> None:
    """Reject records where ``cond`` holds (an impossible value)."""
    cond = np.asarray(cond, dtype=bool) & ~bad
    vals = pd.Series(values, dtype=object)
    for i in np.flatnonzero(cond):
        rejects.add(source, lines[i], name, reason, vals.iloc[i])
    bad |= cond


def _validate_station_values(df: pd.DataFrame, lines, source: str, rejects: Rejects, bad: np.ndarray) -> None:
    """Impossible snapshot values: negative counts, more bikes (or bikes + free docks) than docks."""
    b, f, c = df["bikes"], df["free_docks"], df["capacity"]
    _check((b < 0).fillna(False).to_numpy(), "dock_bikes", "negative bikes", b, lines, source, rejects, bad)
    _check((f < 0).fillna(False).to_numpy(), "free_bases", "negative free docks", f, lines, source, rejects, bad)
    _check((c < 0).fillna(False).to_numpy(), "total_bases", "negative capacity", c, lines, source, rejects, bad)
    _check((b > c).fillna(False).to_numpy(), "dock_bikes", "more bikes than docks (dock_bikes > total_bases)", b, lines, source, rejects, bad)
    _check((b + f > c).fillna(False).to_numpy(), "free_bases", "dock_bikes + free_bases > total_bases", f, lines, source, rejects, bad)
    sid = df["station_id"]
    _check((sid <= 0).fillna(False).to_numpy(), "id", "station id must be positive", sid, lines, source, rejects, bad)


def normalise_number(value) -> str | None:
    """EMT station number in one spelling: '001 a' / '1A' / 1 → '1a' / '1a' / '1'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    m = re.fullmatch(r"0*(\d+)\s*([a-z]?)", text)
    return (m.group(1) + m.group(2)) if m else (text or None)


def _wall_clock(value) -> pd.Timestamp:
    """A stamp as naive Madrid wall-clock time; one carrying an offset is converted first."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return pd.NaT
    return ts.tz_convert("Europe/Madrid").tz_localize(None) if ts.tzinfo is not None else ts


def _parse_naive_stamps(values: pd.Series) -> pd.Series:
    """Naive ISO stamps (EMT ``_id``) to datetime64, parsing each distinct stamp once."""
    codes, uniques = pd.factorize(values.astype(object))
    parsed = pd.DatetimeIndex([_wall_clock(v) for v in uniques], dtype="datetime64[us]")
    out = parsed.take(np.where(codes >= 0, codes, 0)) if len(uniques) else pd.DatetimeIndex([pd.NaT] * len(values))
    out = pd.Series(out, index=values.index).astype("datetime64[us]")
    out[codes < 0] = pd.NaT
    return out


def _coord(values) -> pd.Series:
    """Coordinates arrive as strings, floats or decimal-comma strings."""
    raw = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype(float)
    return _map_unique(raw, _number_or_nan).astype(float)


# --------------------------------------------------------------------------------------------
# Station snapshots
# --------------------------------------------------------------------------------------------

def _station_records_to_chunks(
    records: list[tuple[int, object, dict]], source: str, rejects: Rejects, *, fix_text=None
) -> Iterator[Chunk]:
    """Chunks from (line, naive stamp or None, EMT station dict) records."""
    if not records:
        return
    frame = pd.DataFrame.from_records([r[2] for r in records])
    frame["_line"] = [r[0] for r in records]
    frame["_stamp"] = [r[1] for r in records]
    yield from _station_frame_to_chunks(frame, source, rejects, fix_text=fix_text)


def _station_frame_to_chunks(df: pd.DataFrame, source: str, rejects: Rejects, *, fix_text=None) -> Iterator[Chunk]:
    """Build snapshot and station chunks from a frame of EMT station fields.

    ``df`` has EMT field columns (any subset), ``_line`` (for messages) and ``_stamp`` (naive
    local snapshot time; all None for an undated station list, which yields only stations).
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
        "station_id": _to_int(col("id"), "id", lines, source, rejects, bad, required=False),
        "number": _map_unique(col("number"), normalise_number).to_numpy(object),
    })
    for i in np.flatnonzero(frame["station_id"].isna().to_numpy() & pd.isna(frame["number"]).to_numpy() & ~bad):
        rejects.add(source, lines[i], "id", "missing field (neither id nor number)")
        bad[i] = True
    stamps = df["_stamp"]
    dated = stamps.notna().any()
    ints = lambda key, required=False: _to_int(col(key), key, lines, source, rejects, bad, required=required)  # noqa: E731
    if dated:
        ts = stamps if pd.api.types.is_datetime64_dtype(stamps.dtype) else _parse_naive_stamps(stamps)
        for i in np.flatnonzero(ts.isna().to_numpy() & ~bad):
            rejects.add(source, lines[i], "_id", "unparsable snapshot time", stamps.iloc[i])
        bad |= ts.isna().to_numpy()
        frame["ts_local"] = ts.to_numpy()
        frame["bikes"] = ints("dock_bikes", required=True)
        frame["free_docks"] = ints("free_bases")
        frame["capacity"] = ints("total_bases")
        activate, no_avail = ints("activate"), ints("no_available")
        available = ((activate.fillna(1) == 1) & (no_avail.fillna(0) == 0)).astype(object)
        frame["available"] = available.where(activate.notna() | no_avail.notna(), None).to_numpy()
        _validate_station_values(frame, lines, source, rejects, bad)
    else:
        frame["capacity"] = ints("total_bases")
    frame["source"] = source
    keep = ~bad
    if dated:
        yield Chunk("snapshots", frame[keep][list(SNAPSHOT_PART_COLUMNS)].reset_index(drop=True))
        # One station row per station and stamp would be huge; the latest per station suffices.
        latest = frame[keep].sort_values("ts_local", kind="stable").drop_duplicates(["station_id", "number"], keep="last")
        keep = np.zeros(len(frame), bool)
        keep[latest.index] = True
    text = (lambda v: fix_text(v) if isinstance(v, str) else v) if fix_text else None
    names, addresses = col("name")[keep], col("address")[keep]
    info = pd.DataFrame({
        "station_id": frame["station_id"][keep],
        "number": frame["number"][keep],
        "name": (names.map(text) if text else names).to_numpy(object),
        "address": (addresses.map(text) if text else addresses).to_numpy(object),
        "lat": _coord(col("latitude")[keep]).to_numpy(),
        "lon": _coord(col("longitude")[keep]).to_numpy(),
        "capacity": frame["capacity"][keep],
        "as_of": localize_wall_clock(frame["ts_local"][keep]) if dated else pd.NaT,
        "source": source,
    })
    yield Chunk("stations", info.reset_index(drop=True))


def _snapshot_schema():
    import pyarrow as pa

    text, num = pa.string(), pa.int64()
    station = pa.struct([("id", num), ("number", text), ("name", text), ("address", text), ("latitude", text),
                         ("longitude", text), ("light", num), ("activate", num), ("no_available", num),
                         ("total_bases", num), ("dock_bikes", num), ("free_bases", num), ("reservations_count", num)])
    return pa.schema([("_id", text), ("stations", pa.list_(station))])


def read_snapshot_jsonl(stream: IO[bytes], source: str, rejects: Rejects, block_bytes: int = BLOCK_BYTES) -> Iterator[Chunk]:
    """EMT snapshot JSON lines: ``{"_id": "<naive local ISO>", "stations": [13 fields...]}``.

    Blocks of whole lines go through pyarrow (EMT's own types: coordinates as strings, counts
    as integers); a block that does not fit is parsed line by line, naming bad lines and fields.
    """
    schema = _snapshot_schema()
    for first_line, n_lines, block in iter_blocks(stream, block_bytes):
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
        yield from _station_frame_to_chunks(frame, source, rejects)


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
    yield from _station_records_to_chunks(records, source, rejects)


def read_python_str_snapshot(stream: IO[bytes], source: str, rejects: Rejects) -> Iterator[Chunk]:
    """A snapshot saved as Python ``str()`` of a list of JSON lines (literal newlines inside)."""
    text = stream.read().decode("utf-8", errors="strict")
    try:
        lines = ast.literal_eval(text.replace("\n", "\\n"))
    except (ValueError, SyntaxError) as exc:
        raise IngestError(f"{source}: not a Python list of JSON strings ({exc})") from exc
    payload = "\n".join(line.replace("\n", "") for line in lines) + "\n"
    yield from read_snapshot_jsonl(io.BytesIO(payload.encode("utf-8")), source, rejects)


def open_workbook(path):
    """Open an xlsx read-only (streaming). openpyxl warns about unknown extensions lazily
    while rows are read; that note says nothing about the data, so it is silenced."""
    import warnings

    import openpyxl

    warnings.filterwarnings("ignore", message="Unknown extension is not supported", category=UserWarning)
    return openpyxl.load_workbook(path, read_only=True, data_only=True)


def read_snapshot_xlsx(path, source: str, rejects: Rejects) -> Iterator[Chunk]:
    """EstacionesVacias-style workbook: ``Sheet1`` (fecha, id, total_bases, dock_bikes), newest
    first, naive local time; optional ``Estaciones`` sheet with the station list."""
    wb = open_workbook(path)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows)]
        col = {name: header.index(name) for name in ("fecha", "id", "total_bases", "dock_bikes") if name in header}
        if len(col) < 4:
            raise IngestError(f"{source}: sheet {wb.sheetnames[0]!r} lacks column(s) "
                              f"{sorted({'fecha', 'id', 'total_bases', 'dock_bikes'} - set(col))}")
        numbered = ((i, r) for i, r in enumerate(rows, 2) if any(v is not None for v in r))
        for batch in batched(numbered, CHUNK_LINES):
            df = pd.DataFrame({
                "_line": [i for i, _ in batch], "_stamp": [r[col["fecha"]] for _, r in batch],
                **{name: [r[col[name]] for _, r in batch] for name in ("id", "total_bases", "dock_bikes")},
            })
            yield from _station_frame_to_chunks(df, source, rejects)
        if "Estaciones" in wb.sheetnames:
            srows = wb["Estaciones"].iter_rows(values_only=True)
            sheader = [str(h).strip() for h in next(srows)]
            recs = [(i, None, dict(zip(sheader, r))) for i, r in enumerate(srows, 2) if any(v is not None for v in r)]
            yield from _station_records_to_chunks(recs, f"{source}#Estaciones", rejects)
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
            stamps = pd.to_datetime(df.pop("_id"))
        elif {"fecha", "hora"} <= set(df.columns):
            stamps = df.pop("fecha").astype(str) + "T" + df.pop("hora").astype(str)
        else:
            raise IngestError(f"{source}: parquet has neither `_id` nor `fecha`+`hora` columns")
        df["_stamp"] = stamps
        df["_line"] = np.arange(start, start + len(df))  # parquet row number
        start += len(df)
        yield from _station_frame_to_chunks(df, source, rejects)


# --------------------------------------------------------------------------------------------
# Trips
# --------------------------------------------------------------------------------------------

def _trip_schema(mongo_style: bool):
    import pyarrow as pa

    oid = pa.struct([("$oid", pa.string())])
    when = pa.struct([("$date", pa.string())]) if mongo_style else pa.string()
    return pa.schema([("_id", oid), ("unplug_hourTime", when), ("idunplug_station", pa.int64()),
                      ("idplug_station", pa.int64()), ("travel_time", pa.float64()), ("user_type", pa.int64())])


def read_trips_jsonl(stream: IO[bytes], source: str, rejects: Rejects, block_bytes: int = BLOCK_BYTES) -> Iterator[Chunk]:
    """EMT trip JSON lines, mongoexport (``$oid``, ``$date`` +0200) or compact (``Z``) style.

    Each block of whole lines is parsed by pyarrow against the six fields used (the ``track``
    and other fields are skipped unparsed, so their Latin-1 bytes do no harm); a block with any
    line pyarrow cannot take is parsed line by line, which names each bad line and field.
    Unknown fields are reported from the first record of each block.
    """
    unknown: set[str] = set()
    schemas: dict[bool, object] = {}
    for first_line, n_lines, block in iter_blocks(stream, block_bytes):
        head = first_keys(block)
        unknown |= head - TRIP_FIELDS
        mongo = b'"$date"' in block[: block.find(b"\n")]  # the first record tells the style
        table = arrow_block(block, schemas.setdefault(mongo, _trip_schema(mongo)))
        lines = block_line_numbers(block, first_line, n_lines, table.num_rows) if table is not None else None
        if table is None or lines is None:
            yield from _trips_line_by_line(block, first_line, source, rejects, unknown)
            continue
        oid = table.column("_id").combine_chunks().field("$oid")
        when = table.column("unplug_hourTime").combine_chunks()
        if mongo:
            when = when.field("$date")
        yield from _trip_chunk(
            lines, oid.to_pandas(), when.to_pandas(), table.column("idunplug_station").to_pandas(),
            table.column("idplug_station").to_pandas(), table.column("travel_time").to_pandas(),
            table.column("user_type").to_pandas(), source, rejects)
    if unknown:
        rejects.warn(source, f"unknown trip field(s) ignored: {', '.join(sorted(unknown))}")


def _trips_line_by_line(block: bytes, first_line: int, source: str, rejects: Rejects, unknown: set[str]) -> Iterator[Chunk]:
    lines, keys, times, origins, dests, durations, users = [], [], [], [], [], [], []
    for lineno, obj in json_records(io.BytesIO(block), source, rejects, first_line):
        if not TRIP_FIELDS.issuperset(obj):
            unknown.update(k for k in obj if k not in TRIP_FIELDS)
        oid = obj.get("_id")
        t = obj.get("unplug_hourTime")
        lines.append(lineno)
        keys.append(oid.get("$oid") if isinstance(oid, dict) else oid)
        times.append(t.get("$date") if isinstance(t, dict) else t)
        origins.append(obj.get("idunplug_station"))
        dests.append(obj.get("idplug_station"))
        durations.append(obj.get("travel_time"))
        users.append(obj.get("user_type"))
    yield from _trip_chunk(lines, keys, times, origins, dests, durations, users, source, rejects)


def _trip_chunk(lines, keys, times, origins, dests, durations, users, source, rejects, *, naive_local=False) -> Iterator[Chunk]:
    if not len(lines):
        return
    bad = np.zeros(len(lines), bool)
    times = pd.Series(times, dtype=object).reset_index(drop=True)
    if naive_local:
        unplug = localize_wall_clock(pd.to_datetime(times, errors="coerce"))
    else:
        # EMT stamps are hour-truncated: a month has ~720 distinct values, parsed once each.
        codes, uniques = pd.factorize(times)
        parsed = pd.DatetimeIndex(parse_instants(pd.Series(uniques, dtype=object)))
        unplug = pd.Series(parsed.take(np.where(codes >= 0, codes, 0)) if len(uniques) else
                           pd.DatetimeIndex([pd.NaT] * len(times), tz=parsed.tz))
        unplug[codes < 0] = pd.NaT
    missing_t = times.isna().to_numpy()
    for i in np.flatnonzero(missing_t):
        rejects.add(source, lines[i], "unplug_hourTime", "missing field")
    for i in np.flatnonzero(unplug.isna().to_numpy() & ~missing_t):
        rejects.add(source, lines[i], "unplug_hourTime", "unparsable time", times[i])
    bad |= unplug.isna().to_numpy()
    frm = _to_int(origins, "idunplug_station", lines, source, rejects, bad)
    to = _to_int(dests, "idplug_station", lines, source, rejects, bad, required=False)
    user = _to_int(users, "user_type", lines, source, rejects, bad, required=False)
    raw_dur = durations.reset_index(drop=True) if isinstance(durations, pd.Series) else pd.Series(durations, dtype=object)
    dur = raw_dur.astype(float) if pd.api.types.is_numeric_dtype(raw_dur.dtype) else pd.to_numeric(raw_dur, errors="coerce")
    for i in np.flatnonzero(dur.isna().to_numpy() & raw_dur.notna().to_numpy() & ~bad):
        rejects.add(source, lines[i], "travel_time", "not a number", raw_dur.iloc[i])
    bad |= (dur.isna() & raw_dur.notna()).to_numpy()
    _check((dur < 0).fillna(False).to_numpy(), "travel_time", "negative travel time", dur, lines, source, rejects, bad)
    _check((frm <= 0).fillna(False).to_numpy(), "idunplug_station", "station id must be positive", frm, lines, source, rejects, bad)
    _check((to <= 0).fillna(False).to_numpy(), "idplug_station", "station id must be positive", to, lines, source, rejects, bad)
    # EMT documents types 1-3; later files add others (e.g. 6), which are kept.
    _check(((user < 0) | (user > 127)).fillna(False).to_numpy(), "user_type", "user_type outside 0..127", user, lines, source, rejects, bad)
    frame = pd.DataFrame({
        "unplug_ts": unplug,
        "plug_ts": unplug + pd.to_timedelta(dur, unit="s"),
        "duration_s": dur.astype(float),
        "from_station": frm,
        "to_station": to,
        "user_type": user,
        "source": source,
        "trip_key": pd.Series(keys, dtype=object).reset_index(drop=True).map(lambda k: None if k is None else str(k)),
    })
    yield Chunk("trips", frame[~bad].reset_index(drop=True))


def read_od_xlsx(path, source: str, rejects: Rejects) -> Iterator[Chunk]:
    """Usos092018_Estaciones-style workbook: sheets of trips (Day, Hour, origin, destination)
    for hour windows of one day, naive local hours. Columns 5+ are summaries and ignored."""
    m = re.search(r"Usos(\d{2})(\d{4})", source)
    if not m:
        raise IngestError(f"{source}: cannot tell the month (expected 'UsosMMYYYY' in the name)")
    month, year = int(m.group(1)), int(m.group(2))
    wb = open_workbook(path)
    try:
        for sheet in wb.sheetnames:
            if not re.fullmatch(r"\d{1,2}-\d{1,2}", sheet):
                continue
            label = f"{source}#{sheet}"
            rows = wb[sheet].iter_rows(values_only=True)
            header = next(rows)
            if not header or str(header[0]).strip().lower() != "day":
                raise IngestError(f"{label}: expected 'Day' in the first column, found {header[:4] if header else None}")
            lines, times, origins, dests = [], [], [], []
            for i, r in enumerate(rows, 2):
                if r is None or len(r) < 4 or all(v is None for v in r[:4]):
                    continue
                day, hour = r[0], r[1]
                try:
                    stamp = pd.Timestamp(year=year, month=month, day=int(day), hour=int(hour))
                except (TypeError, ValueError):
                    rejects.add(label, i, "Day/Hour", "not a valid day and hour", (day, hour))
                    continue
                lines.append(i)
                times.append(stamp)
                origins.append(r[2])
                dests.append(r[3])
            n = len(lines)
            yield from _trip_chunk(lines, [None] * n, times, origins, dests, [None] * n, [None] * n, label, rejects, naive_local=True)
    finally:
        wb.close()


# --------------------------------------------------------------------------------------------
# Station lists
# --------------------------------------------------------------------------------------------

_MOJIBAKE = re.compile("[∫ÈÍÛ·ÒÓ©¬]")


def _fix_macroman_mojibake(text: str) -> str:
    """Undo Latin-1 bytes that were decoded as MacRoman ('n∫' → 'nº', 'È' → 'é')."""
    try:
        return text.encode("mac_roman").decode("latin-1")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def load_json_document(text: str, source) -> object:
    """A whole-file JSON document; invalid JSON is an :class:`IngestError` naming file, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def read_station_json(stream: IO[bytes], source: str, rejects: Rejects) -> Iterator[Chunk]:
    """EMT station list: ``{"stations": [...]}`` or a bare array, pretty-printed or not."""
    raw = stream.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        rejects.warn(source, "file not UTF-8, decoded as Latin-1")
    obj = load_json_document(text, source)
    stations = obj.get("stations") if isinstance(obj, dict) else obj
    if not isinstance(stations, list):
        raise IngestError(f"{source}: expected a list of stations or {{'stations': [...]}}")
    fix = None
    if "∫" in text:  # the tell-tale of 'nº' gone through MacRoman
        fix = _fix_macroman_mojibake
        rejects.warn(source, "MacRoman mojibake in names/addresses repaired")
    records = [(i, None, st) for i, st in enumerate(stations, 1) if isinstance(st, dict)]
    yield from _station_records_to_chunks(records, source, rejects, fix_text=fix)


def _excel_serial_to_ts(values) -> pd.Series:
    days = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    naive = pd.Timestamp("1899-12-30") + pd.to_timedelta(days, unit="D")
    return localize_wall_clock(naive)


def read_bases_csv(stream: IO[bytes], source: str, rejects: Rejects) -> Iterator[Chunk]:
    """datos.madrid.es 'Bases BiciMAD': ``;``-separated CP850, UTM 30N with decimal commas,
    ``Fec_Alta`` as Excel serial days. ``as_of`` is the install date."""
    raw = stream.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp850")  # the DOS code page datos.madrid.es exports in
    df = pd.read_csv(io.StringIO(text), sep=";", dtype=str, keep_default_na=False)
    need = {"Id_Estacion", "Nro_Estacion", "Gis_X", "Gis_Y", "Plazas"}
    if not need <= set(df.columns):
        raise IngestError(f"{source}: missing column(s) {sorted(need - set(df.columns))}")
    lines = list(range(2, len(df) + 2))
    bad = np.zeros(len(df), bool)
    sid = _to_int(df["Id_Estacion"].replace("", None), "Id_Estacion", lines, source, rejects, bad)
    cap = _to_int(df["Plazas"].replace("", None), "Plazas", lines, source, rejects, bad, required=False)
    x, y = _coord(df["Gis_X"]), _coord(df["Gis_Y"])
    for i in np.flatnonzero((x.isna() | y.isna()).to_numpy() & ~bad):
        rejects.add(source, lines[i], "Gis_X/Gis_Y", "missing or non-numeric UTM coordinate", (df["Gis_X"][i], df["Gis_Y"][i]))
    lat, lon = utm_to_latlon(x.to_numpy(), y.to_numpy(), zone=30)
    address = df["Direccion"] if "Direccion" in df.columns else None
    frame = pd.DataFrame({
        "station_id": sid,
        "number": df["Nro_Estacion"].map(normalise_number),
        "name": None,
        "address": address,
        "lat": lat,
        "lon": lon,
        "capacity": cap,
        "as_of": _excel_serial_to_ts(df["Fec_Alta"]) if "Fec_Alta" in df.columns else pd.NaT,
        "source": source,
    })
    yield Chunk("stations", frame[~bad].reset_index(drop=True))


def read_all_stations_csv(stream: IO[bytes], source: str, rejects: Rejects) -> Iterator[Chunk]:
    """A pandas-written station table (``,id,address,name,total_bases,longitude,latitude,...``)."""
    df = pd.read_csv(stream, dtype=str, keep_default_na=False, encoding="utf-8")
    records = [(i, None, {k: (v if v != "" else None) for k, v in r.items() if k in STATION_FIELDS})
               for i, r in enumerate(df.to_dict("records"), 2)]
    yield from _station_records_to_chunks(records, source, rejects)
