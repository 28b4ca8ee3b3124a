"""Readers of station lists: EMT's JSON, datos.madrid.es' ``Bases BiciMAD`` CSV and
pandas-written station tables; each yields ``stations`` chunks (:mod:`bicimad.opendata.records`)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import IO

import numpy as np
import pandas as pd

from bicimad.opendata.records import STATION_FIELDS, Chunk, coord, normalise_number, to_int
from bicimad.opendata.rejects import IngestError, Rejects
from bicimad.opendata.snapshot_readers import station_records_to_chunks
from bicimad.opendata.times import localize_wall_clock
from bicimad.opendata.utm import utm_to_latlon

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
    yield from station_records_to_chunks(records, source, rejects, fix_text=fix)


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
    sid = to_int(df["Id_Estacion"].replace("", None), "Id_Estacion", lines, source, rejects, bad)
    cap = to_int(df["Plazas"].replace("", None), "Plazas", lines, source, rejects, bad, required=False)
    x, y = coord(df["Gis_X"]), coord(df["Gis_Y"])
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
    yield from station_records_to_chunks(records, source, rejects)

