"""Route sheets: what each truck crew does, stop by stop, per shift.

:func:`route_sheet` turns a plan (the ``plans.csv`` rows of one planner: truck, hour, order,
station_id, bikes, ...; ``bikes`` > 0 loads bikes from the station onto the truck, < 0 unloads
them there) into one row per stop (:data:`ROUTE_SHEET_COLUMNS`):

- the stops of a truck are taken in plan order (hour, then order within the hour), grouped
  into shifts (the local day, or shift boundaries such as ``06-14,14-22,22-06``); the first
  stop of a shift is driven to from the truck's base (a shift starts at the base);
- ``km_from_previous`` is the straight-line distance times the road detour factor (as the
  simulator counts it, :mod:`bicimad.sim.network`), ``drive_min_from_previous`` that distance
  at the truck speed;
- ``arrival`` = the later of the hour's start and the previous arrival (plus the handling
  time per stop, ``service_min``), plus the driving time, rounded up to the minute: never
  before the hour the planner scheduled the stop in;
- ``load_after`` is the truck's load after the stop, from ``initial_load`` at the start of the
  day (the load carries over from shift to shift).

:func:`write_route_csv` writes the sheet as CSV and :func:`write_route_pages` one printable
HTML page per truck.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.geo import haversine_km
from bicimad.io import atomic_open, write_csv

#: Road distance / straight-line distance when the scenario gives none (``riders.detour``'s default).
DEFAULT_DETOUR = 1.3

#: Columns of a route sheet, in order.
ROUTE_SHEET_COLUMNS = (
    "truck", "shift", "stop", "arrival", "station_id", "number", "name", "address", "lat", "lon",
    "action", "bikes", "load_after", "km_from_previous", "drive_min_from_previous",
    "base_station_id", "base_number", "base_name",
)


def parse_shifts(text: str | None) -> list[tuple[int, int]] | None:
    """``"06-14,14-22,22-06"`` as [(6, 14), (14, 22), (22, 6)]; ``None``, ``""`` or ``"day"``: one
    shift per local day. The shifts must cover each hour of the day exactly once."""
    if text is None or text.strip() in ("", "day"):
        return None
    shifts = []
    for part in text.split(","):
        try:
            start, end = (int(x) for x in part.strip().split("-"))
        except ValueError:
            raise ValueError(f"shifts: {part.strip()!r} is not HH-HH (e.g. 06-14)") from None
        if not (0 <= start < 24 and 0 <= end <= 24) or start == end:
            raise ValueError(f"shifts: {part.strip()!r}: hours must be 0-24 and the shift not empty")
        shifts.append((start, end % 24))
    covered = [h for s, e in shifts for h in _shift_hours(s, e)]
    if sorted(covered) != list(range(24)):
        raise ValueError(f"shifts: {text!r} must cover every hour 0-23 exactly once")
    return shifts


def _shift_hours(start: int, end: int) -> list[int]:
    return list(range(start, end)) if start < end else list(range(start, 24)) + list(range(0, end))


def shift_of(hour: pd.Timestamp, shifts: Sequence[tuple[int, int]] | None) -> str:
    """The shift label of a local hour: its date (one shift per day) or ``<start date> HH-HH``
    (a night shift 22-06 that began the evening before carries that evening's date)."""
    if shifts is None:
        return hour.date().isoformat()
    for start, end in shifts:
        if hour.hour in _shift_hours(start, end):
            began = hour.date() - pd.Timedelta(days=1) if start > end and hour.hour < end else hour.date()
            return f"{began.isoformat()} {start:02d}-{end:02d}"
    raise ValueError(f"shifts: hour {hour} is in no shift")


def _base_table(bases: Mapping[int, int] | Sequence[int], stations: pd.DataFrame) -> dict[int, dict]:
    """Truck number (1-based) -> its base station's row."""
    pairs = bases.items() if isinstance(bases, Mapping) else enumerate(bases, start=1)
    table = stations.drop_duplicates("station_id").set_index("station_id")
    out = {}
    for truck, station_id in pairs:
        if int(station_id) not in table.index:
            raise ValueError(f"bases: truck {truck}'s base {station_id} is not in the stations table")
        out[int(truck)] = {"station_id": int(station_id), **table.loc[int(station_id)].to_dict()}
    return out


def _stops(plan: pd.DataFrame, stations: pd.DataFrame) -> pd.DataFrame:
    """The plan's rows in order, with local hours and the stations' coordinates and addresses."""
    missing = [c for c in ("truck", "hour", "order", "station_id", "bikes") if c not in plan.columns]
    if missing:
        raise ValueError(f"plan: missing column(s) {missing}")
    columns = [c for c in ("station_id", "number", "name", "address", "lat", "lon") if c in stations.columns]
    where = stations.drop_duplicates("station_id")[columns]
    frame = plan[["truck", "hour", "order", "station_id", "bikes"]].merge(where, on="station_id", how="left")
    for column in ("number", "name", "address"):
        frame[column] = frame.get(column, pd.Series(index=frame.index, dtype=object))
    unknown = frame.loc[frame["lat"].isna() | frame["lon"].isna(), "station_id"]
    if len(unknown):
        raise ValueError(f"plan: station {int(unknown.iloc[0])} has no coordinates in the stations table")
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True).dt.tz_convert(TZ)
    frame = frame[frame["bikes"] != 0]
    return frame.sort_values(["truck", "hour", "order"], kind="stable").reset_index(drop=True)


def route_sheet(plan: pd.DataFrame, stations: pd.DataFrame, bases: Mapping[int, int] | Sequence[int], *,
                speed_kmh: float, detour: float = DEFAULT_DETOUR, initial_load: int = 0,
                shifts: Sequence[tuple[int, int]] | None = None, service_min: float = 0.0) -> pd.DataFrame:
    """The route sheet of ``plan`` (see the module docstring); ``bases`` maps each truck number
    (1-based) to its base station id (or lists them in truck order)."""
    if speed_kmh <= 0 or detour < 1 or service_min < 0:
        raise ValueError("route sheet: speed_kmh must be > 0, detour >= 1 and service_min >= 0")
    base_of = _base_table(bases, stations)
    stops = _stops(plan, stations)
    rows = []
    for truck, group in stops.groupby("truck", sort=True):
        if int(truck) not in base_of:
            raise ValueError(f"bases: no base for truck {truck}")
        rows += _truck_rows(int(truck), group, base_of[int(truck)], speed_kmh, detour, initial_load, shifts,
                            service_min)
    sheet = pd.DataFrame(rows, columns=list(ROUTE_SHEET_COLUMNS))
    sheet.attrs["bases"] = {t: {k: b.get(k) for k in ("station_id", "number", "name", "address")}
                            for t, b in base_of.items()}
    return sheet


def _ceil_minute(stamp: pd.Timestamp) -> pd.Timestamp:
    """Up to the whole minute; in UTC, so the repeated hour of a DST change stays unambiguous."""
    if stamp.tzinfo is None:
        return stamp.ceil("min")
    return stamp.tz_convert("UTC").ceil("min").tz_convert(stamp.tzinfo)


def _truck_rows(truck, group, base, speed_kmh, detour, load, shifts, service_min) -> list[dict]:
    rows, shift, here, clock, stop = [], None, None, None, 0
    for r in group.itertuples(index=False):
        label = shift_of(r.hour, shifts)
        if label != shift:  # a new shift starts at the base
            shift, here, clock, stop = label, (base["lat"], base["lon"]), None, 0
        km = float(haversine_km(here[0], here[1], r.lat, r.lon)) * detour
        drive = km / speed_kmh * 60.0
        leave = r.hour if clock is None else max(r.hour, clock + pd.Timedelta(minutes=service_min))
        arrival = _ceil_minute(leave + pd.Timedelta(minutes=drive))
        load += int(r.bikes)
        stop += 1
        rows.append({"truck": truck, "shift": shift, "stop": stop, "arrival": arrival, "station_id": int(r.station_id),
                     "number": r.number, "name": r.name, "address": r.address, "lat": r.lat, "lon": r.lon,
                     "action": "load" if r.bikes > 0 else "unload", "bikes": abs(int(r.bikes)), "load_after": load,
                     "km_from_previous": round(km, 2), "drive_min_from_previous": round(drive, 1),
                     "base_station_id": base["station_id"], "base_number": base.get("number"),
                     "base_name": base.get("name")})
        here, clock = (r.lat, r.lon), arrival
    return rows


def write_route_csv(sheet: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The route sheet as CSV (atomically); arrival as local ``YYYY-MM-DD HH:MM+hh:mm``, text cells
    that a spreadsheet would take for a formula (= + - @) prefixed with a quote."""
    out = sheet.copy()
    out["arrival"] = [t.isoformat(sep=" ", timespec="minutes") for t in out["arrival"]]
    return write_csv(out, path)


_PAGE_CSS = """
body { font-family: system-ui, sans-serif; color: #111; margin: 1.5em auto; max-width: 190mm; font-size: 11pt; }
h1 { font-size: 1.4em; margin: 0 0 0.2em; } h2 { font-size: 1.1em; margin: 1.2em 0 0.3em; }
.base { margin: 0.3em 0 0.8em; } .note { color: #444; font-size: 0.85em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #999; padding: 0.2em 0.35em; text-align: left; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; } th { background: #eee; }
td.tick { width: 1.6em; } .box { display: inline-block; width: 1em; height: 1em; border: 1.5px solid #111; }
tr.load td.act { font-weight: bold; } tr.unload td.act { font-style: italic; font-weight: bold; }
tfoot td { font-weight: bold; background: #f6f6f6; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0; max-width: none; font-size: 10pt; } a { color: inherit; text-decoration: none; }
  thead { display: table-header-group; } tr { page-break-inside: avoid; } .shift { page-break-before: auto; } }
"""


def _cell(value, numeric: bool = False) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return f"<td class='n'>{html.escape(text)}</td>" if numeric else f"<td>{html.escape(text)}</td>"


def _shift_table(rows: pd.DataFrame) -> str:
    head = ("<thead><tr><th>done</th><th>stop</th><th>arrival</th><th>station</th><th>name / address</th>"
            "<th>action</th><th>bikes</th><th>load after</th><th>km</th><th>drive min</th></tr></thead>")
    body = []
    for r in rows.itertuples(index=False):
        place = html.escape(str(r.name or "")) + (f"<br><span class='note'>{html.escape(str(r.address))}</span>"
                                                  if isinstance(r.address, str) and r.address else "")
        body.append(f"<tr class='{r.action}'><td class='tick'><span class='box'></span></td>{_cell(r.stop, True)}"
                    f"{_cell(r.arrival.strftime('%H:%M'), True)}{_cell(r.number)}<td>{place}</td>"
                    f"<td class='act'>{r.action}</td>{_cell(r.bikes, True)}{_cell(r.load_after, True)}"
                    f"{_cell(f'{r.km_from_previous:.1f}', True)}{_cell(f'{r.drive_min_from_previous:.0f}', True)}</tr>")
    loaded = int(rows.loc[rows["action"] == "load", "bikes"].sum())
    unloaded = int(rows.loc[rows["action"] == "unload", "bikes"].sum())
    foot = (f"<tfoot><tr><td></td><td class='n'>{len(rows)}</td><td colspan='4'>stops; loaded {loaded}, "
            f"unloaded {unloaded} bikes</td><td></td><td></td>"
            f"<td class='n'>{rows['km_from_previous'].sum():.1f}</td>"
            f"<td class='n'>{rows['drive_min_from_previous'].sum():.0f}</td></tr></tfoot>")
    return f"<table>{head}<tbody>{''.join(body)}</tbody>{foot}</table>"


def route_page(sheet: pd.DataFrame, truck: int, title: str = "BiciMAD route sheet") -> str:
    """One truck's printable page: its base, then per shift the stops with tick boxes and totals."""
    rows = sheet[sheet["truck"] == truck]
    base = sheet.attrs.get("bases", {}).get(truck)
    if base is None and len(rows):
        base = {"number": rows["base_number"].iloc[0], "name": rows["base_name"].iloc[0]}
    heading = f"{title}: truck {truck}"
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(heading)}</title>",
             f"<style>{_PAGE_CSS}</style></head><body><h1>{html.escape(heading)}</h1>"]
    if base:
        address = f", {base['address']}" if isinstance(base.get("address"), str) and base["address"] else ""
        parts.append(f"<p class='base'>Base: <b>{html.escape(str(base.get('number') or ''))} "
                     f"{html.escape(str(base.get('name') or ''))}</b>{html.escape(address)}</p>")
    parts.append("<p class='note'>Load = take bikes from the station onto the truck; unload = leave them at the "
                 "station. Arrival: planned, local time. Each shift starts at the base.</p>")
    if not len(rows):
        parts.append("<p>No stops planned.</p>")
    for shift, group in rows.groupby("shift", sort=False):
        parts += [f"<h2 class='shift'>Shift {html.escape(str(shift))}</h2>", _shift_table(group)]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_route_pages(sheet: pd.DataFrame, out_dir: str | os.PathLike, title: str = "BiciMAD route sheet",
                      trucks: Sequence[int] | None = None) -> list[Path]:
    """One printable HTML page per truck (``route-truck-<n>.html``, atomically); by default every
    truck with a base or a stop."""
    out_dir = Path(out_dir)
    if trucks is None:
        trucks = sorted(set(sheet.attrs.get("bases", {})) | set(np.unique(sheet["truck"]).tolist()))
    paths = []
    for truck in trucks:
        path = out_dir / f"route-truck-{int(truck)}.html"
        with atomic_open(path, "w", encoding="utf-8") as fh:
            fh.write(route_page(sheet, int(truck), title))
        paths.append(path)
    return paths
