"""What every raw reader yields, and the checks they share.

A reader yields :class:`Chunk` objects of one of three *part* kinds (columns below); the
checks here are vectorised over a chunk and name the line and field of every record they
reject (:class:`~bicimad.opendata.rejects.Rejects`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bicimad.opendata.rejects import IngestError, Rejects

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


#: Largest integer a part column holds (ids and counts are int32 in the processed tables).
INT32_MAX = 2**31 - 1
#: The plausible window of snapshot and trip times: BiciMAD opened in June 2014, and nothing is
#: recorded in the future (one day of slack for clocks and time zones). Outside it, a record is
#: rejected (a snapshot dated 9999 would defeat every freshness check).
EARLIEST_TIME = pd.Timestamp("2014-01-01")


def latest_time() -> pd.Timestamp:
    """The end of the plausible window: now (Madrid wall clock) plus one day."""
    return pd.Timestamp.now(tz="Europe/Madrid").tz_localize(None).floor("s") + pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Validation helpers (vectorised over a chunk; each failure names line and field)
# --------------------------------------------------------------------------------------------

def to_int(values, name: str, lines, source: str, rejects: Rejects, bad: np.ndarray, required: bool = True) -> pd.Series:
    """Numeric column as nullable Int64; non-numeric or fractional values reject their record."""
    raw = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    raw = raw.reset_index(drop=True)
    num = raw if pd.api.types.is_numeric_dtype(raw.dtype) else map_unique(raw, number_or_nan)
    num = num.astype(float)
    missing = raw.isna().to_numpy()
    invalid = (num.isna().to_numpy() & ~missing) | (num.notna().to_numpy() & (num.fillna(0) % 1 != 0).to_numpy())
    for i in np.flatnonzero(invalid & ~bad):
        rejects.add(source, lines[i], name, "not an integer", raw.iloc[i])
    bad |= invalid
    huge = (num.abs() > INT32_MAX).fillna(False).to_numpy() & ~invalid
    for i in np.flatnonzero(huge & ~bad):
        rejects.add(source, lines[i], name, f"integer outside -{INT32_MAX}..{INT32_MAX}", raw.iloc[i])
    bad |= huge
    invalid |= huge
    if required:
        for i in np.flatnonzero(missing & ~bad):
            rejects.add(source, lines[i], name, "missing field")
        bad |= missing
    return num.where(~invalid).round().astype("Int64")


def number_or_nan(value) -> float:
    if isinstance(value, bool):
        return float("nan")
    try:
        return float(value.replace(",", ".").strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return float("nan")


def map_unique(values: pd.Series, fn) -> pd.Series:
    """``values.map(fn)`` computed once per distinct value (columns repeat a few hundred values).

    Unhashable values (a list or object where a scalar belongs) are passed as their ``repr``,
    which no field accepts, so their records are rejected with the value shown.
    """
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:
        values = values.map(lambda v: repr(v) if isinstance(v, (list, dict, set)) else v)
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = pd.Series([fn(u) for u in uniques], dtype=object)
    out = mapped.reindex(codes).to_numpy() if len(uniques) else np.full(len(values), None, dtype=object)
    out = pd.Series(out, index=values.index, dtype=object)
    return out.where(codes >= 0, None)


def check(cond: np.ndarray, name: str, reason: str, values, lines, source: str, rejects: Rejects, bad: np.ndarray) -> None:
    """Reject records where ``cond`` holds (an impossible value)."""
    cond = np.asarray(cond, dtype=bool) & ~bad
    vals = pd.Series(values, dtype=object)
    for i in np.flatnonzero(cond):
        rejects.add(source, lines[i], name, reason, vals.iloc[i])
    bad |= cond


def validate_station_values(df: pd.DataFrame, lines, source: str, rejects: Rejects, bad: np.ndarray) -> None:
    """Impossible snapshot values: negative counts, more bikes (or bikes + free docks) than docks."""
    b, f, c = df["bikes"], df["free_docks"], df["capacity"]
    check((b < 0).fillna(False).to_numpy(), "dock_bikes", "negative bikes", b, lines, source, rejects, bad)
    check((f < 0).fillna(False).to_numpy(), "free_bases", "negative free docks", f, lines, source, rejects, bad)
    check((c < 0).fillna(False).to_numpy(), "total_bases", "negative capacity", c, lines, source, rejects, bad)
    check((b > c).fillna(False).to_numpy(), "dock_bikes", "more bikes than docks (dock_bikes > total_bases)", b, lines, source, rejects, bad)
    check((b + f > c).fillna(False).to_numpy(), "free_bases", "dock_bikes + free_bases > total_bases", f, lines, source, rejects, bad)
    sid = df["station_id"]
    check((sid <= 0).fillna(False).to_numpy(), "id", "station id must be positive", sid, lines, source, rejects, bad)


def normalise_number(value) -> str | None:
    """EMT station number in one spelling: '001 a' / '1A' / 1 → '1a' / '1a' / '1'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    m = re.fullmatch(r"0*(\d+)\s*([a-z]?)", text)
    return (m.group(1) + m.group(2)) if m else (text or None)


def wall_clock(value) -> pd.Timestamp:
    """A stamp as naive Madrid wall-clock time; one carrying an offset is converted first."""
    try:
        ts = pd.Timestamp(value)
        return ts.tz_convert("Europe/Madrid").tz_localize(None) if ts.tzinfo is not None else ts
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def parse_naive_stamps(values: pd.Series) -> pd.Series:
    """Naive ISO stamps (EMT ``_id``) to datetime64, parsing each distinct stamp once."""
    values = values.astype(object).map(lambda v: repr(v) if isinstance(v, (list, dict, set)) else v)
    codes, uniques = pd.factorize(values)
    parsed = pd.DatetimeIndex([wall_clock(v) for v in uniques], dtype="datetime64[us]")
    out = parsed.take(np.where(codes >= 0, codes, 0)) if len(uniques) else pd.DatetimeIndex([pd.NaT] * len(values))
    out = pd.Series(out, index=values.index).astype("datetime64[us]")
    out[codes < 0] = pd.NaT
    return out


def coord(values) -> pd.Series:
    """Coordinates arrive as strings, floats or decimal-comma strings."""
    raw = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype(float)
    return map_unique(raw, number_or_nan).astype(float)


def check_window(ts: pd.Series, name: str, what: str, lines, source: str, rejects: Rejects, bad: np.ndarray) -> None:
    """Reject naive wall-clock times outside the plausible window (:data:`EARLIEST_TIME`)."""
    latest = latest_time()
    outside = ((ts < EARLIEST_TIME) | (ts > latest)).fillna(False).to_numpy()
    check(outside, name, f"{what} outside the plausible window {EARLIEST_TIME:%Y-%m-%d}..{latest:%Y-%m-%d %H:%M}",
          ts, lines, source, rejects, bad)


def check_position(lat: pd.Series, lon: pd.Series, names: tuple[str, str], lines, source: str, rejects: Rejects,
                   bad: np.ndarray) -> None:
    """Reject coordinates that are not on Earth (latitude outside -90..90, longitude outside -180..180)."""
    check((lat.abs() > 90).fillna(False).to_numpy(), names[0], "latitude outside -90..90", lat, lines, source, rejects, bad)
    check((lon.abs() > 180).fillna(False).to_numpy(), names[1], "longitude outside -180..180", lon, lines, source,
          rejects, bad)


# --------------------------------------------------------------------------------------------
# Workbooks
# --------------------------------------------------------------------------------------------

def open_workbook(path, source: str | None = None):
    """Open an xlsx read-only (streaming). openpyxl warns about unknown extensions lazily
    while rows are read; that note says nothing about the data, so it is silenced.

    A damaged or fake workbook is an :class:`IngestError` naming ``source`` (or the path).
    """
    import warnings
    import zipfile

    import openpyxl

    warnings.filterwarnings("ignore", message="Unknown extension is not supported", category=UserWarning)
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError, SyntaxError, OSError) as exc:
        raise IngestError(f"{source or path}: damaged or not an xlsx workbook ({type(exc).__name__}: "
                          f"{str(exc)[:200]})") from None

