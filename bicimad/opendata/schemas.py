"""The one place where every processed table's schema is defined.

Each table is a pyarrow schema; all timestamps are tz-aware Europe/Madrid.
``conform`` casts a DataFrame to a table's schema (raising ``SchemaError`` naming the
column), ``write_table`` writes parquet atomically, ``read_table`` reads it back.

Tables
------
stations       one row per station id: number, name, coordinates, capacity, first/last seen
snapshots      one row per station per snapshot instant
trips          one row per trip (unplug, plug or duration, origin, destination, user type)
station_hours  one row per station and local hour: the table everything downstream reads
forecast       pickup and return rates per station-hour for one day (demand -> sim)
od             origin-destination probabilities (demand -> sim)
occupancy      per station-hour occupancy classes from the simulator or from snapshots
daily_usage    EMT's official daily trip counts and bike-hours, one row per day
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bicimad.config import TZ
from bicimad.io import atomic_path

TS = pa.timestamp("us", tz=TZ)


class SchemaError(ValueError):
    """A frame does not match a table schema; the message names the table and column."""


def _f(name: str, type_: pa.DataType, nullable: bool = True, doc: str = "") -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc} if doc else None)


SCHEMAS: dict[str, pa.Schema] = {
    "stations": pa.schema([
        _f("station_id", pa.int32(), False, "EMT station id (the key trips use: idplug_station/idunplug_station)"),
        _f("number", pa.string(), True, "EMT station number as printed on the station, e.g. '1a'"),
        _f("name", pa.string()),
        _f("address", pa.string()),
        _f("lat", pa.float64(), True, "WGS84 latitude"),
        _f("lon", pa.float64(), True, "WGS84 longitude"),
        _f("capacity", pa.int32(), True, "total docks (total_bases / Plazas)"),
        _f("first_seen", TS, True, "first snapshot (or install date) in which the station appears"),
        _f("last_seen", TS, True, "last snapshot in which the station appears"),
        _f("source", pa.string(), True, "file(s) the row was built from"),
    ]),
    "snapshots": pa.schema([
        _f("ts", TS, False, "snapshot instant, local time"),
        _f("station_id", pa.int32(), False),
        _f("bikes", pa.int32(), False, "docked bikes (dock_bikes)"),
        _f("free_docks", pa.int32(), True, "free docks (free_bases); null where the source lacks it"),
        _f("capacity", pa.int32(), True, "total docks (total_bases)"),
        _f("available", pa.bool_(), True, "station in service (activate=1 and no_available=0)"),
        _f("source", pa.string()),
    ]),
    "trips": pa.schema([
        _f("unplug_ts", TS, False, "unplug time (EMT truncates it to the hour)"),
        _f("plug_ts", TS, True, "plug time where known (unplug_ts + duration_s otherwise)"),
        _f("duration_s", pa.float64(), True, "travel_time in seconds"),
        _f("from_station", pa.int32(), False, "idunplug_station"),
        _f("to_station", pa.int32(), True, "idplug_station"),
        _f("user_type", pa.int8(), True, "1 annual, 2 occasional, 3 EMT staff"),
        _f("source", pa.string()),
    ]),
    "station_hours": pa.schema([
        _f("station_id", pa.int32(), False),
        _f("hour", TS, False, "start of the local hour"),
        _f("snapshot_ts", TS, True, "the snapshot that represents this hour (null: missing hour)"),
        _f("bikes", pa.int32(), True, "bikes at the hour's start (at snapshot_ts)"),
        _f("capacity", pa.int32(), True),
        _f("empty", pa.bool_(), True, "0 bikes at the snapshot"),
        _f("full", pa.bool_(), True, "0 free docks at the snapshot"),
        _f("pickups", pa.int32(), True, "trips unplugged in this hour, where trips exist"),
        _f("returns", pa.int32(), True, "trips plugged in this hour, where trips exist"),
        _f("net_flow", pa.int32(), True, "bikes at the next hour's snapshot minus bikes now (null if either missing)"),
    ]),
    "forecast": pa.schema([
        _f("station_id", pa.int32(), False),
        _f("hour", TS, False, "start of the local hour"),
        _f("pickup_rate", pa.float64(), False, "expected pickups in the hour (>= 0)"),
        _f("return_rate", pa.float64(), False, "expected returns in the hour (>= 0)"),
        _f("method", pa.string(), False, "model or fallback that produced the row"),
    ]),
    "od": pa.schema([
        _f("from_station", pa.int32(), False),
        _f("to_station", pa.int32(), False),
        _f("prob", pa.float64(), False, "P(destination | origin); sums to 1 per origin"),
    ]),
    "occupancy": pa.schema([
        _f("station_id", pa.int32(), False),
        _f("hour", TS, False),
        _f("state", pa.string(), False, "balanced | empty | full | empty_and_full"),
        _f("lost_trips", pa.int32(), True),
        _f("diverted_returns", pa.int32(), True),
    ]),
    "daily_usage": pa.schema([
        _f("date", pa.date32(), False, "local date"),
        _f("total_trips", pa.int64(), False, "the day's counted trips after the consistency rule (bicimad.opendata.daily_usage)"),
        _f("published_total_trips", pa.int64(), False, "TOTAL_USOS as published"),
        _f("annual_trips", pa.int64(), False, "USOS_ABONADO_ANUAL: trips by annual subscribers"),
        _f("occasional_trips", pa.int64(), False, "USOS_ABONADO_OCASIONAL: trips by occasional users"),
        _f("bike_hours_in_use", pa.float64(), False, "HORAS_TOTALES_USOS_BICICLETAS"),
        _f("bike_hours_docked", pa.float64(), False, "HORAS_TOTALES_DISPONIBILIDAD_BICICLETAS_EN _ANCLAJES"),
        _f("bike_hours_in_service", pa.float64(), False, "TOTAL_HORAS_SERVICIO_BICICLETAS"),
        _f("mean_bikes_available", pa.float64(), False, "MEDIA_BICICLETAS_DISPONIBLES: mean bikes in service"),
        _f("consistent", pa.bool_(), False, "TOTAL_USOS within 1 % of annual + occasional trips"),
        _f("usable", pa.bool_(), False, "total_trips fit for calibration"),
        _f("total_source", pa.string(), False, "TOTAL_USOS or user_types: where total_trips comes from"),
        _f("source", pa.string()),
    ]),
}

#: The four occupancy classes of a station-hour, in report order.
OCCUPANCY_STATES = ("balanced", "empty", "full", "empty_and_full")

#: Columns of a run-level occupancy summary (one row per planner), as the comparison writes it.
OCCUPANCY_SUMMARY_COLUMNS = (
    "planner", "balanced", "empty", "full", "empty_and_full", "problem_share",
    "lost_trips", "diverted_returns", "bikes_moved", "truck_km", "decision_s_per_hour",
)


def schema(table: str) -> pa.Schema:
    try:
        return SCHEMAS[table]
    except KeyError:
        raise SchemaError(f"unknown table {table!r}; known: {', '.join(SCHEMAS)}") from None


def conform(df: pd.DataFrame, table: str) -> pa.Table:
    """Cast ``df`` to ``table``'s schema: exact column set, types cast, no nulls where forbidden."""
    sch = schema(table)
    missing = [f.name for f in sch if f.name not in df.columns]
    if missing:
        raise SchemaError(f"{table}: missing column(s) {missing}")
    columns = []
    for field in sch:
        col = df[field.name]
        if pa.types.is_timestamp(field.type):
            col = pd.to_datetime(col)
            if getattr(col.dt, "tz", None) is None:
                raise SchemaError(f"{table}.{field.name}: timestamps must be tz-aware ({TZ})")
            col = col.dt.tz_convert(TZ)
        try:
            arr = pa.array(col, from_pandas=True).cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
            raise SchemaError(f"{table}.{field.name}: cannot cast to {field.type}: {exc}") from exc
        if not field.nullable and arr.null_count:
            raise SchemaError(f"{table}.{field.name}: {arr.null_count} null value(s) in a non-null column")
        columns.append(arr)
    return pa.Table.from_arrays(columns, schema=sch)


def write_table(df: pd.DataFrame, table: str, path: str | os.PathLike) -> Path:
    """Conform ``df`` and write it as parquet atomically (temp file, then rename)."""
    path = Path(path)
    arrow = conform(df, table)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp, compression="zstd")
    return path


def read_table(table: str, path: str | os.PathLike) -> pd.DataFrame:
    """Read a processed table, checking its columns against the schema."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{table}: no table at {path} (run `bicimad ingest` first)")
    arrow = pq.read_table(path)
    names = set(arrow.column_names)
    missing = [f.name for f in schema(table) if f.name not in names]
    if missing:
        raise SchemaError(f"{path}: {table} table lacks column(s) {missing}")
    return arrow.to_pandas()


def empty_frame(table: str) -> pd.DataFrame:
    return schema(table).empty_table().to_pandas()
