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

from bicimad.opendata.archive import DEFAULT_LIMITS, Limits, read_document
from bicimad.opendata.records import STATION_FIELDS, Chunk, check, check_position, coord, normalise_number, to_int
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
        raise IngestError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise IngestError(f"{source}: JSON nested too deeply") from None


def decode_text(raw: bytes, source: str, rejects: Rejects, fallback: str = "Latin-1") -> str:
    """UTF-8 (a byte-order mark is dropped), else ``fallback`` with a warning."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        rejects.warn(source, f"file not UTF-8, decoded as {fallback}")
        return raw.decode(fallback)


def read_station_json(stream: IO[bytes], source: str, rejects: Rejects, *,
                      limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """EMT station list: ``{"stations": [...]}`` or a bare array, pretty-printed or not."""
    text = decode_text(read_document(stream, source, limits), source, rejects)
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
    days = days.where((days > 0) & (days < 2_958_466))  # Excel's own range: 1900-01-01 .. 9999-12-31
    naive = pd.Timestamp("1899-12-30") + pd.to_timedelta(days, unit="D")
    return localize_wall_clock(naive)


def _read_csv(text: str, source: str, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise IngestError(f"{source}: unreadable CSV ({str(exc).strip()[:200]})") from None


def read_bases_csv(stream: IO[bytes], source: str, rejects: Rejects, *, limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """datos.madrid.es 'Bases BiciMAD': ``;``-separated CP850, UTM 30N with decimal commas,
    ``Fec_Alta`` as Excel serial days. ``as_of`` is the install date."""
    # cp850: the DOS code page datos.madrid.es exports in
    df = _read_csv(decode_text(read_document(stream, source, limits), source, rejects, "cp850"), source, sep=";")
    need = {"Id_Estacion", "Nro_Estacion", "Gis_X", "Gis_Y", "Plazas"}
    if not need <= set(df.columns):
        raise IngestError(f"{source}: missing column(s) {sorted(need - set(df.columns))}")
    lines = list(range(2, len(df) + 2))
    bad = np.zeros(len(df), bool)
    sid = to_int(df["Id_Estacion"].replace("", None), "Id_Estacion", lines, source, rejects, bad)
    cap = to_int(df["Plazas"].replace("", None), "Plazas", lines, source, rejects, bad, required=False)
    check((cap < 0).fillna(False).to_numpy(), "Plazas", "negative capacity", cap, lines, source, rejects, bad)
    x, y = coord(df["Gis_X"]), coord(df["Gis_Y"])
    no_xy = (x.isna() | y.isna()).to_numpy()
    for i in np.flatnonzero(no_xy & ~bad):
        rejects.add(source, lines[i], "Gis_X/Gis_Y", "missing or non-numeric UTM coordinate", (df["Gis_X"][i], df["Gis_Y"][i]))
    bad |= no_xy
    lat, lon = utm_to_latlon(x.to_numpy(), y.to_numpy(), zone=30)
    lat, lon = pd.Series(lat, dtype=float), pd.Series(lon, dtype=float)
    check((~np.isfinite(lat) | ~np.isfinite(lon)).to_numpy(), "Gis_X/Gis_Y", "UTM coordinate off the map",
          df["Gis_X"] + " " + df["Gis_Y"], lines, source, rejects, bad)
    check_position(lat, lon, ("Gis_Y", "Gis_X"), lines, source, rejects, bad)
    frame = pd.DataFrame({
        "station_id": sid, "number": df["Nro_Estacion"].map(normalise_number), "name": None,
        "address": df["Direccion"] if "Direccion" in df.columns else None, "lat": lat, "lon": lon, "capacity": cap,
        "as_of": _excel_serial_to_ts(df["Fec_Alta"]) if "Fec_Alta" in df.columns else pd.NaT, "source": source,
    })
    yield Chunk("stations", frame[~bad].reset_index(drop=True))


def read_all_stations_csv(stream: IO[bytes], source: str, rejects: Rejects, *,
                          limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """A pandas-written station table (``,id,address,name,total_bases,longitude,latitude,...``)."""
    df = _read_csv(decode_text(read_document(stream, source, limits), source, rejects), source)
    records = [(i, None, {k: (v if v != "" else None) for k, v in r.items() if k in STATION_FIELDS})
               for i, r in enumerate(df.to_dict("records"), 2)]
    yield from station_records_to_chunks(records, source, rejects)
