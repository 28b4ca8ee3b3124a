"""EMT's official daily usage series (``bici_disponibilidad_*.csv``) as the ``daily_usage`` table.

The file has one row per day: bike-hours in use, docked and in service, the mean number of
bikes in service, and the day's trips by annual subscribers, by occasional users and in all
(``TOTAL_USOS``). It is the counted trip volume that demand recovered from snapshots is
calibrated against (:mod:`bicimad.demand.calibration`).

Format
------
``;``-separated, CRLF (LF is accepted), ASCII, a header row, dates ``dd/mm/yyyy``, numbers in
the Spanish way: ``.`` groups thousands and ``,`` is the decimal mark (``3.991,13``,
``8.175`` = 8175). A number in any other form (``8,175`` for a count, ``3991.13``) is an
error (so is a sign: no value can be negative), as are a bad or repeated date and a wrong
field count; every
error names the file, the line and the field. One header name has a space inside
(``..._EN _ANCLAJES``); header names are matched with spaces removed.

Inconsistent rows (the rule)
----------------------------
``TOTAL_USOS`` is the sum of the two user-type columns on most days, or within a few trips
of it (EMT staff trips are in neither). On some days upstream the two disagree by far (e.g.
2015-11-25: 9,730 + 63 subscriber trips but ``TOTAL_USOS`` 2,168). A row is ``consistent``
when ``|TOTAL_USOS - (annual + occasional)| <= CONSISTENT_SHARE`` (1 %) of the larger of the
two. For an inconsistent row the bike-hours in use arbitrate, since they are an independent
measure of the same riding: the day's implied trips are its bike-hours in use divided by the
median hours per trip of the consistent rows within ``WINDOW_DAYS`` (±14) days, and
``total_trips`` is whichever of the two published counts is nearer that figure
(``total_source`` says which: ``TOTAL_USOS`` or ``user_types``). Taking the larger of the two
would be wrong more often than not: in the real file the bike-hours side with ``TOTAL_USOS``
on 2015-11-25, 2017-08-21, 2018-10-08 and 2019-07-01, where the user-type sum is the larger.
A row is ``usable`` unless it is inconsistent and even the nearer count is more than
``USABLE_SHARE`` (15 %) from the implied trips; calibration skips days that are not usable.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

from bicimad.opendata.rejects import IngestError

#: Source column (spaces removed) -> ``daily_usage`` column, and whether it holds a count.
SOURCE_COLUMNS = {
    "HORAS_TOTALES_USOS_BICICLETAS": ("bike_hours_in_use", False),
    "HORAS_TOTALES_DISPONIBILIDAD_BICICLETAS_EN_ANCLAJES": ("bike_hours_docked", False),
    "TOTAL_HORAS_SERVICIO_BICICLETAS": ("bike_hours_in_service", False),
    "MEDIA_BICICLETAS_DISPONIBLES": ("mean_bikes_available", False),
    "USOS_ABONADO_ANUAL": ("annual_trips", True),
    "USOS_ABONADO_OCASIONAL": ("occasional_trips", True),
    "TOTAL_USOS": ("published_total_trips", True),
}
DATE_COLUMN = "DIA"
#: Columns of the table :func:`read_daily_usage` returns (schema ``daily_usage``).
COLUMNS = ("date", "total_trips", "published_total_trips", "annual_trips", "occasional_trips",
           "bike_hours_in_use", "bike_hours_docked", "bike_hours_in_service", "mean_bikes_available",
           "consistent", "usable", "total_source", "source")
CONSISTENT_SHARE = 0.01
USABLE_SHARE = 0.15
WINDOW_DAYS = 14

_COUNT = re.compile(r"\d{1,3}(\.\d{3})*|\d+")
_DECIMAL = re.compile(r"(\d{1,3}(\.\d{3})*|\d+)(,\d+)?")
_DATE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")


def parse_spanish_number(text: str, *, count: bool) -> float:
    """``8.175`` -> 8175, ``3.991,13`` -> 3991.13; ValueError for any other form.

    ``count`` allows no decimal part. A bare ``8,175`` is read as 8.175 only where decimals
    are allowed; for a count it is an error, never 8175.
    """
    text = text.strip()
    if not (_COUNT if count else _DECIMAL).fullmatch(text):
        kind = "a whole number like 8.175" if count else "a number like 3.991,13"
        raise ValueError(f"expected {kind} (Spanish format: '.' thousands, ',' decimals), got {text!r}")
    return float(text.replace(".", "").replace(",", "."))


def _header(path, line: str) -> list[str]:
    names = [name.replace(" ", "") for name in line.split(";")]
    missing = [n for n in (DATE_COLUMN, *SOURCE_COLUMNS) if n not in names]
    if missing:
        raise IngestError(f"{path}: line 1: missing column(s) {missing} (has {names})")
    return names


def _parse_rows(path, lines: list[str], names: list[str]) -> pd.DataFrame:
    """The data lines as a frame of the source columns, renamed; errors name line and field."""
    rows = []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split(";")
        if len(fields) != len(names):
            raise IngestError(f"{path}: line {number}: expected {len(names)} fields, got {len(fields)}")
        record = dict(zip(names, fields))
        match = _DATE.fullmatch(record[DATE_COLUMN].strip())
        try:
            if not match:
                raise ValueError(f"expected dd/mm/yyyy, got {record[DATE_COLUMN]!r}")
            row = {"date": pd.Timestamp(int(match[3]), int(match[2]), int(match[1])), "line": number}
        except ValueError as exc:
            raise IngestError(f"{path}: line {number}: field {DATE_COLUMN}: {exc}") from None
        for source, (column, count) in SOURCE_COLUMNS.items():
            try:
                row[column] = parse_spanish_number(record[source], count=count)
            except ValueError as exc:
                raise IngestError(f"{path}: line {number}: field {source}: {exc}") from None
        rows.append(row)
    if not rows:
        raise IngestError(f"{path}: no data rows")
    frame = pd.DataFrame(rows)
    repeated = frame["date"].duplicated()
    if repeated.any():
        i = int(repeated.to_numpy().argmax())
        raise IngestError(f"{path}: line {frame['line'].iloc[i]}: field {DATE_COLUMN}: "
                          f"{frame['date'].iloc[i]:%d/%m/%Y} appears twice")
    return frame


def resolve_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``consistent``, ``total_trips``, ``total_source`` and ``usable`` (module docstring)."""
    frame = frame.sort_values("date", ignore_index=True)
    published = frame["published_total_trips"].to_numpy(float)
    by_type = (frame["annual_trips"] + frame["occasional_trips"]).to_numpy(float)
    gap = np.abs(published - by_type)
    consistent = gap <= CONSISTENT_SHARE * np.maximum(published, by_type)
    hours_per_trip = pd.Series(np.where(consistent & (published > 0), frame["bike_hours_in_use"] / np.maximum(published, 1),
                                        np.nan), index=pd.DatetimeIndex(frame["date"]))
    window = f"{2 * WINDOW_DAYS + 1}D"
    local = hours_per_trip.rolling(window, center=True, min_periods=1).median().to_numpy()
    local = np.where(np.isfinite(local), local, np.nanmedian(hours_per_trip) if consistent.any() else np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        implied = frame["bike_hours_in_use"].to_numpy(float) / local
    use_types = ~consistent & np.isfinite(implied) & (np.abs(by_type - implied) < np.abs(published - implied))
    total = np.where(use_types, by_type, published)
    with np.errstate(invalid="ignore", divide="ignore"):
        near = np.abs(total - implied) <= USABLE_SHARE * implied
    frame["total_trips"] = total.astype("int64")
    frame["consistent"] = consistent
    frame["usable"] = consistent | near
    frame["total_source"] = np.where(use_types, "user_types", "TOTAL_USOS")
    return frame


def read_daily_usage(path: str | os.PathLike) -> pd.DataFrame:
    """The ``daily_usage`` table (:data:`COLUMNS`, one row per day, sorted) from EMT's CSV.

    ``date`` is the local date (naive midnight); counts are int64, hours and means float64.
    Bad input raises :class:`IngestError` naming the file, line and field.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise IngestError(f"{path}: line {line}: not ASCII/UTF-8 text (byte {exc.start})") from None
    lines = text.splitlines()
    if not lines:
        raise IngestError(f"{path}: empty file")
    frame = resolve_totals(_parse_rows(path, lines, _header(path, lines[0])))
    for column, count in SOURCE_COLUMNS.values():
        if count:
            frame[column] = frame[column].astype("int64")
    frame["source"] = str(path)
    return frame[list(COLUMNS)]


def counted_trips(usage: pd.DataFrame, days) -> np.ndarray:
    """Counted trips (``total_trips``) of each local date in ``days``; NaN where the table has
    no row for the date or the row is not ``usable``."""
    index = pd.DatetimeIndex(pd.to_datetime(days)).normalize()
    table = usage.assign(date=pd.to_datetime(usage["date"]).dt.normalize()).set_index("date")
    trips = table["total_trips"].where(table["usable"]).astype(float)
    return trips.reindex(index).to_numpy(dtype=float)
