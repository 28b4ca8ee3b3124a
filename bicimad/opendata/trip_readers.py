"""Readers of EMT trips: JSON lines (mongoexport and compact styles) and the hourly
origin-destination workbooks; each yields ``trips`` chunks (:mod:`bicimad.opendata.records`)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import IO

import numpy as np
import pandas as pd

from bicimad.opendata.archive import DEFAULT_LIMITS, Limits
from bicimad.opendata.jsonlines import BLOCK_BYTES, arrow_block, block_line_numbers, first_keys, iter_blocks, json_records
from bicimad.opendata.records import TRIP_FIELDS, Chunk, check, check_window, open_workbook, to_int
from bicimad.opendata.rejects import IngestError, Rejects
from bicimad.opendata.snapshot_readers import long_line_rejecter
from bicimad.opendata.times import localize_wall_clock, parse_instants

#: Longest travel time kept (a year): beyond it the value is an error, not a trip.
MAX_TRAVEL_S = 365 * 86_400


def _trip_schema(mongo_style: bool):
    import pyarrow as pa

    oid = pa.struct([("$oid", pa.string())])
    when = pa.struct([("$date", pa.string())]) if mongo_style else pa.string()
    return pa.schema([("_id", oid), ("unplug_hourTime", when), ("idunplug_station", pa.int64()),
                      ("idplug_station", pa.int64()), ("travel_time", pa.float64()), ("user_type", pa.int64())])


def read_trips_jsonl(stream: IO[bytes], source: str, rejects: Rejects, block_bytes: int = BLOCK_BYTES, *,
                     limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """EMT trip JSON lines, mongoexport (``$oid``, ``$date`` +0200) or compact (``Z``) style.

    Each block of whole lines is parsed by pyarrow against the six fields used (the ``track``
    and other fields are skipped unparsed, so their Latin-1 bytes do no harm); a block with any
    line pyarrow cannot take is parsed line by line, which names each bad line and field.
    Unknown fields are reported from the first record of each block.
    """
    unknown: set[str] = set()
    schemas: dict[bool, object] = {}
    blocks = iter_blocks(stream, block_bytes, limits.max_line_bytes, long_line_rejecter(source, rejects, limits))
    for first_line, n_lines, block in blocks:
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
        yield from trip_chunk(
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
    yield from trip_chunk(lines, keys, times, origins, dests, durations, users, source, rejects)


def trip_chunk(lines, keys, times, origins, dests, durations, users, source, rejects, *, naive_local=False) -> Iterator[Chunk]:
    if not len(lines):
        return
    bad = np.zeros(len(lines), bool)
    times = pd.Series(times, dtype=object).reset_index(drop=True)
    times = times.map(lambda v: repr(v) if isinstance(v, (list, dict)) else v)  # rejected below, value shown
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
    frm = to_int(origins, "idunplug_station", lines, source, rejects, bad)
    to = to_int(dests, "idplug_station", lines, source, rejects, bad, required=False)
    user = to_int(users, "user_type", lines, source, rejects, bad, required=False)
    raw_dur = durations.reset_index(drop=True) if isinstance(durations, pd.Series) else pd.Series(durations, dtype=object)
    dur = raw_dur.astype(float) if pd.api.types.is_numeric_dtype(raw_dur.dtype) else pd.to_numeric(raw_dur, errors="coerce")
    for i in np.flatnonzero(dur.isna().to_numpy() & raw_dur.notna().to_numpy() & ~bad):
        rejects.add(source, lines[i], "travel_time", "not a number", raw_dur.iloc[i])
    bad |= (dur.isna() & raw_dur.notna()).to_numpy()
    check((dur < 0).fillna(False).to_numpy(), "travel_time", "negative travel time", dur, lines, source, rejects, bad)
    check((dur > MAX_TRAVEL_S).fillna(False).to_numpy(), "travel_time", f"travel time over {MAX_TRAVEL_S:,} s (a year)",
          dur, lines, source, rejects, bad)
    check_window(unplug.dt.tz_localize(None), "unplug_hourTime", "unplug time", lines, source, rejects, bad)
    dur = dur.where(~bad)
    check((frm <= 0).fillna(False).to_numpy(), "idunplug_station", "station id must be positive", frm, lines, source, rejects, bad)
    check((to <= 0).fillna(False).to_numpy(), "idplug_station", "station id must be positive", to, lines, source, rejects, bad)
    # EMT documents types 1-3; later files add others (e.g. 6), which are kept.
    check(((user < 0) | (user > 127)).fillna(False).to_numpy(), "user_type", "user_type outside 0..127", user, lines, source, rejects, bad)
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
    wb = open_workbook(path, source)
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
            yield from trip_chunk(lines, [None] * n, times, origins, dests, [None] * n, [None] * n, label, rejects, naive_local=True)
    finally:
        wb.close()

