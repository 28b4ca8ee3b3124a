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

The readers live in one module per kind of content; this module gathers them:
:mod:`~bicimad.opendata.records` (chunks, columns, shared checks),
:mod:`~bicimad.opendata.snapshot_readers`, :mod:`~bicimad.opendata.trip_readers` and
:mod:`~bicimad.opendata.station_readers`.
"""

from __future__ import annotations

from bicimad.opendata.records import (
    CHUNK_LINES,
    SNAPSHOT_PART_COLUMNS,
    STATION_FIELDS,
    STATION_PART_COLUMNS,
    TRIP_FIELDS,
    TRIP_PART_COLUMNS,
    Chunk,
    normalise_number,
    open_workbook,
)
from bicimad.opendata.snapshot_readers import (
    read_python_str_snapshot,
    read_snapshot_jsonl,
    read_snapshot_parquet,
    read_snapshot_xlsx,
)
from bicimad.opendata.station_readers import (
    load_json_document,
    read_all_stations_csv,
    read_bases_csv,
    read_station_json,
)
from bicimad.opendata.trip_readers import read_od_xlsx, read_trips_jsonl

__all__ = [
    "CHUNK_LINES", "SNAPSHOT_PART_COLUMNS", "STATION_FIELDS", "STATION_PART_COLUMNS", "TRIP_FIELDS",
    "TRIP_PART_COLUMNS", "Chunk", "load_json_document", "normalise_number", "open_workbook",
    "read_all_stations_csv", "read_bases_csv", "read_od_xlsx", "read_python_str_snapshot", "read_snapshot_jsonl",
    "read_snapshot_parquet", "read_snapshot_xlsx", "read_station_json", "read_trips_jsonl",
]
