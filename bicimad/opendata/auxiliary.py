"""Readers of EMT-derived tables that do not fit the processed tables as they come.

Ingest recognises these files and skips them, except a simulator's user configuration: its
trips are real, so ingest reads them (:func:`read_simulator_users`) and matches their
positions to stations when it builds ``trips`` (:func:`trips_from_positions`). Demand
calibration and checks read the rest with these functions:

* :func:`read_daily_trip_counts`: EMT's daily trip counts by age band (``EdadesUsoBiciMad.csv``).
* :func:`read_station_hour_counts`: per-station hourly pick-ups and returns
  (``demandDataMadrid_*.csv``, built from an EMT monthly trip file).
* :func:`read_simulator_trips`: the real trips of a simulator's user configuration
  (``users_configuration.json``), in the ``trips`` schema, stations found by position.
* :func:`read_long_trips`: trips over an hour, without stations (``TiempoUsoBiciSep17_18.xlsx``).
* :func:`read_system_hourly_rides` / :func:`read_system_daily_rides`: system-wide ride counts
  with daily weather (``bicimad_hourly.csv`` / ``bicimad_daily.csv``); :func:`daily_weather`
  turns the daily table into the demand model's weather input.
* :func:`read_station_affinity`: an undirected station graph (``bicimad.gexf``).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.opendata.archive import DEFAULT_LIMITS, Limits, read_document
from bicimad.opendata.readers import Chunk, load_json_document
from bicimad.opendata.rejects import IngestError, Rejects
from bicimad.opendata.times import hour_floor, localize_wall_clock, parse_instants

AGE_BANDS = ("err", "0-16", "17-18", "19-26", "27-40", "41-65", "65+")


def read_daily_trip_counts(path: str | os.PathLike) -> pd.DataFrame:
    """Daily trips by age band: columns ``date``, one per band of :data:`AGE_BANDS`, ``total``.

    The file's header is glued to its first row (``...// 652017-04-01  655 ...``), so rows are
    split at each ISO date rather than at line ends. Repeated dates (EMT's files overlap at month
    ends) are kept as they are; callers choose how to combine them.
    """
    with open(path, encoding="ascii") as fh:
        text = fh.read()
    starts = [m.start() for m in re.finditer(r"\d{4}-\d{2}-\d{2}", text)]
    if not starts:
        raise IngestError(f"{path}: no YYYY-MM-DD dates found")
    rows = []
    for k, (a, b) in enumerate(zip(starts, starts[1:] + [len(text)])):
        fields = text[a:b].split()
        if len(fields) != 1 + len(AGE_BANDS):
            raise IngestError(f"{path}: record {k + 1} ({fields[0]}): expected a date and {len(AGE_BANDS)} counts, "
                              f"got {len(fields) - 1}")
        try:
            rows.append([pd.Timestamp(fields[0]).date(), *map(int, fields[1:])])
        except ValueError as exc:
            raise IngestError(f"{path}: record {k + 1} ({fields[0]}): {exc}") from exc
    df = pd.DataFrame(rows, columns=["date", *AGE_BANDS])
    df["total"] = df[list(AGE_BANDS)].sum(axis=1)
    return df


def read_station_hour_counts(path: str | os.PathLike) -> pd.DataFrame:
    """Per-station hourly pick-ups and returns: ``station_id``, ``hour`` (local, tz-aware),
    ``pickups``, ``returns``.

    Format: ``;``-separated ``Station;dia;mes;año;hora;NumUsuariosCojenBiciEnEstacion;
    NumUsuariosReturnBiciAEstacion;...`` with local hours. The generator counted a return in the
    unplug hour plus whole hours of travel time and left out EMT staff trips.
    """
    raw = pd.read_csv(path, sep=";", encoding="utf-8")
    need = ["Station", "dia", "mes", "año", "hora", "NumUsuariosCojenBiciEnEstacion", "NumUsuariosReturnBiciAEstacion"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise IngestError(f"{path}: missing column(s) {missing}")
    naive = pd.to_datetime(pd.DataFrame({"year": raw["año"], "month": raw["mes"], "day": raw["dia"], "hour": raw["hora"]}),
                           errors="coerce")
    bad = naive.isna()
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2
        raise IngestError(f"{path}: line {line}: invalid dia/mes/año/hora")
    return pd.DataFrame({
        "station_id": raw["Station"].astype("int32"),
        "hour": localize_wall_clock(naive).dt.tz_convert(TZ),
        "pickups": raw["NumUsuariosCojenBiciEnEstacion"].astype("int32"),
        "returns": raw["NumUsuariosReturnBiciAEstacion"].astype("int32"),
    })


# --------------------------------------------------------------------------------------------
# A simulator's user configuration: real trips without station ids
# --------------------------------------------------------------------------------------------

#: Metres per degree of latitude (WGS84 mean); enough for matching positions a few metres apart.
_M_PER_DEG = 111_195.0
#: Part columns of a simulator's trips before their stations are known (ingest resolves them
#: against the station lists when it builds the tables).
POSITION_PART_COLUMNS = ("unplug_ts", "from_lat", "from_lon", "to_lat", "to_lon", "speed_mps", "record", "source")
#: Farthest a trip position may lie from its station (the 2018 file matches within 0.22 m).
MAX_STATION_DISTANCE_M = 5.0
_CONF_DAY = re.compile(r"conf_(\d{2})-(\d{2})-(\d{4})")


def _planar_m(lat: np.ndarray, lon: np.ndarray, lat0: float) -> np.ndarray:
    """Positions as (n, 2) metres on a plane tangent at latitude ``lat0`` (city scale)."""
    return np.column_stack([lat * _M_PER_DEG, lon * _M_PER_DEG * np.cos(np.radians(lat0))])


def simulator_day(source: str) -> str:
    """The day of a Bike3S configuration, from its folder name ``conf_DD-MM-YYYY``."""
    m = _CONF_DAY.search(str(source))
    if not m:
        raise IngestError(f"{source}: cannot tell the day of the trips (expected a 'conf_DD-MM-YYYY' folder in the path)")
    return f"{m.group(3)}-{m.group(2)}-{m.group(1)}"


def _position(obj) -> tuple[float, float] | None:
    try:
        lat, lon = float(obj["latitude"]), float(obj["longitude"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return (lat, lon) if abs(lat) <= 90 and abs(lon) <= 180 else None  # also refuses NaN and infinities


def parse_simulator_users(text: str, source: str, day: str, rejects: Rejects | None = None, *,
                          keep_seconds: bool = False) -> pd.DataFrame:
    """A Bike3S ``users_configuration.json`` as trip positions (:data:`POSITION_PART_COLUMNS`).

    Each ``initialUsers`` entry is one trip of ``day``: an origin ``position``, a
    ``destinationPlace``, ``cyclingVelocity`` (m/s) and ``timeInstant`` (seconds after local
    midnight). ``timeInstant`` is EMT's hour-truncated unplug hour plus random seconds the
    simulator added, so ``unplug_ts`` is truncated to the hour as EMT's trips are (the seconds
    are kept with ``keep_seconds``). A bad record is added to ``rejects`` and skipped, or,
    without ``rejects``, raises :class:`IngestError`; either names the record and field.
    """
    doc = load_json_document(text, source)
    users = doc.get("initialUsers") if isinstance(doc, dict) else None
    if not isinstance(users, list):
        raise IngestError(f"{source}: expected {{'initialUsers': [...]}}")

    def bad(k: int, field: str, reason: str, value) -> None:
        if rejects is None:
            raise IngestError(f"{source}: record {k}: field {field}: {reason}, got {value!r}")
        rejects.add(source, k, field, reason, value)

    rows = []
    for k, user in enumerate(users, 1):
        if not isinstance(user, dict):
            bad(k, "initialUsers", "not an object", user)
            continue
        origin = _position(user.get("position"))
        user_type = user.get("userType")
        params = user_type.get("parameters") if isinstance(user_type, dict) else None
        place = params.get("destinationPlace") if isinstance(params, dict) else None
        dest = _position(place)
        speed, instant = user.get("cyclingVelocity"), user.get("timeInstant")
        if origin is None:
            bad(k, "position", "expected latitude and longitude numbers", user.get("position"))
        elif dest is None:
            bad(k, "userType.parameters.destinationPlace", "expected latitude and longitude numbers", place)
        elif isinstance(speed, bool) or not isinstance(speed, (int, float)) or not speed >= 0 or speed == float("inf"):
            bad(k, "cyclingVelocity", "expected a non-negative number", speed)
        elif isinstance(instant, bool) or not isinstance(instant, (int, float)) or not 0 <= instant < 7 * 86_400:
            bad(k, "timeInstant", "expected seconds after midnight (under a week)", instant)
        else:
            rows.append((float(instant), *origin, *dest, float(speed), k))
    frame = pd.DataFrame(rows, columns=["seconds", "from_lat", "from_lon", "to_lat", "to_lon", "speed_mps", "record"])
    unplug = pd.Timestamp(day).tz_localize(TZ) + pd.to_timedelta(frame.pop("seconds"), unit="s")
    frame.insert(0, "unplug_ts", unplug if keep_seconds else hour_floor(unplug))
    frame["source"] = source
    return frame[list(POSITION_PART_COLUMNS)]


def read_simulator_users(stream, source: str, rejects: Rejects, *, limits: Limits = DEFAULT_LIMITS) -> Iterator[Chunk]:
    """Ingest reader of a Bike3S ``users_configuration.json``: one ``trip_positions`` chunk
    (stations are matched when the tables are built, from every station list ingested)."""
    text = read_document(stream, source, limits).decode("utf-8-sig", errors="replace")
    yield Chunk("trip_positions", parse_simulator_users(text, source, simulator_day(source), rejects))


def trips_from_positions(positions: pd.DataFrame, stations: pd.DataFrame, rejects: Rejects | None = None, *,
                         max_distance_m: float = MAX_STATION_DISTANCE_M) -> pd.DataFrame:
    """Trip rows (the ``trips`` part columns) from trip positions and station positions.

    ``stations`` has ``station_id``, ``lat``, ``lon`` and optionally ``source``. Station lists
    of other years place some stations differently, so each file's trips are matched against
    the one station source that fits them best (smallest largest distance), and each position
    takes the nearest station of that source. A position farther than ``max_distance_m`` from
    it rejects its trip (or raises, without ``rejects``).

    ``duration_s`` is straight-line distance / velocity in whole seconds, null where the
    velocity is 0 or the trip returns to its start station (no displacement to divide; those
    trips' returns are then missing from ``station_hours``, about 1% for the 2018 file). If
    the simulator derived its velocity from a route longer than the straight line, these
    durations are low. ``plug_ts`` = ``unplug_ts`` + duration, as for EMT's trips;
    ``user_type`` and ``trip_key`` are unknown (null).
    """
    stations = stations.dropna(subset=["station_id", "lat", "lon"])
    if "source" not in stations.columns:
        stations = stations.assign(source="stations")
    out = []
    for source, trips in positions.groupby("source", sort=False):
        if stations.empty:
            reason = "no station list with positions to match the trip's positions against"
            if rejects is None:
                raise IngestError(f"{source}: {reason}")
            for record in trips["record"]:
                rejects.add(source, record, "position", reason)
            continue
        lat0 = float(stations["lat"].mean())
        xy_from = _planar_m(trips["from_lat"].to_numpy(), trips["from_lon"].to_numpy(), lat0)
        xy_to = _planar_m(trips["to_lat"].to_numpy(), trips["to_lon"].to_numpy(), lat0)
        points = np.vstack([xy_from, xy_to])
        best = None
        for list_source, st in stations.groupby("source", sort=True):
            grid = _planar_m(st["lat"].to_numpy(float), st["lon"].to_numpy(float), lat0)
            dist = np.hypot(*(points[:, None, :] - grid[None, :, :]).transpose(2, 0, 1))
            idx = dist.argmin(axis=1)
            near = dist[np.arange(len(points)), idx]
            if best is None or near.max() < best[0]:
                best = (near.max(), st["station_id"].to_numpy(int)[idx], near, list_source)
        _, ids, near, _ = best
        n = len(trips)
        far = (near[:n] > max_distance_m) | (near[n:] > max_distance_m)
        records = trips["record"].to_numpy()
        for i in np.flatnonzero(far):
            field = "position" if near[i] > max_distance_m else "userType.parameters.destinationPlace"
            d = near[i] if field == "position" else near[n + i]
            reason = f"no station within {max_distance_m} m"
            if rejects is None:
                raise IngestError(f"{source}: record {records[i]}: field {field}: {reason} (nearest {d:.1f} m away, "
                                  f"id {ids[i if field == 'position' else n + i]}); {int(far.sum())} trip(s) match no station")
            rejects.add(source, records[i], field, reason, f"{d:.1f} m")
        frm, to = ids[:n], ids[n:]
        speed = trips["speed_mps"].to_numpy(float)
        moved = (frm != to) & (speed > 0)
        distance = np.hypot(*(xy_to - xy_from).T)
        duration = pd.Series(np.where(moved, np.round(distance / np.where(moved, speed, 1.0)), np.nan))  # whole seconds
        unplug = trips["unplug_ts"].reset_index(drop=True)
        frame = pd.DataFrame({
            "unplug_ts": unplug,
            "plug_ts": unplug + pd.to_timedelta(duration, unit="s"),
            "duration_s": duration,
            "from_station": frm.astype("int32"),
            "to_station": to.astype("int32"),
            "user_type": pd.array([pd.NA] * n, dtype="Int8"),
            "source": source,
            "trip_key": None,
        })
        out.append(frame[~far])
    if not out:
        ts = pd.Series([], dtype=f"datetime64[us, {TZ}]")
        return pd.DataFrame({"unplug_ts": ts, "plug_ts": ts, "duration_s": pd.Series([], dtype=float),
                             "from_station": pd.Series([], dtype="int32"), "to_station": pd.Series([], dtype="int32"),
                             "user_type": pd.Series([], dtype="Int8"), "source": pd.Series([], dtype=object),
                             "trip_key": pd.Series([], dtype=object)})
    return pd.concat(out, ignore_index=True)


def read_simulator_trips(users_path: str | os.PathLike, stations, *, day: str | None = None,
                         max_distance_m: float = MAX_STATION_DISTANCE_M, keep_seconds: bool = False) -> pd.DataFrame:
    """The trips of a Bike3S ``users_configuration.json`` in the ``trips`` table's columns.

    ``stations`` is a frame with ``station_id``, ``lat``, ``lon`` or the path of an EMT station
    list (``EjEstaciones.json`` for the 2018 file); ``day`` defaults to the ``conf_DD-MM-YYYY``
    folder's. Rules in :func:`parse_simulator_users` and :func:`trips_from_positions`; any bad
    record raises :class:`IngestError`.
    """
    if not isinstance(stations, pd.DataFrame):
        from bicimad.opendata.readers import read_station_json

        with open(stations, "rb") as fh:
            stations = pd.concat([c.frame for c in read_station_json(fh, str(stations), Rejects()) if c.kind == "stations"])
    with open(users_path, encoding="utf-8") as fh:
        text = fh.read()
    positions = parse_simulator_users(text, str(users_path), day or simulator_day(users_path), keep_seconds=keep_seconds)
    trips = trips_from_positions(positions, stations[["station_id", "lat", "lon"]], max_distance_m=max_distance_m)
    return trips.drop(columns="trip_key")


# --------------------------------------------------------------------------------------------
# Long trips (over an hour), without stations
# --------------------------------------------------------------------------------------------

def read_long_trips(path: str | os.PathLike) -> pd.DataFrame:
    """Trips over an hour from ``TiempoUsoBiciSep17_18.xlsx``: ``unplug_ts`` (Madrid),
    ``duration_s``, ``sheet`` (``092017``/``092018``: the month).

    Each sheet's column 0 is EMT's raw ``unplug_hourTime.$date`` string (with its ``+0200``
    offset), column 1 ``travel_time``; there is no header row (the first trip sits where a
    header would be), and the other columns are the author's formulas, ignored. The trips have
    no stations, so they cannot enter the ``trips`` table.
    """
    from bicimad.opendata.readers import open_workbook

    wb = open_workbook(path)
    frames = []
    try:
        for sheet in wb.sheetnames:
            rows = [(i, r[0], r[1] if len(r) > 1 else None)
                    for i, r in enumerate(wb[sheet].iter_rows(max_col=2, values_only=True), 1)
                    if r and any(v is not None for v in r[:2])]
            if not rows:
                continue
            lines, stamps, durations = zip(*rows)
            unplug = parse_instants(pd.Series(stamps, dtype=object))
            for i in np.flatnonzero(unplug.isna().to_numpy()):
                raise IngestError(f"{path}#{sheet}: row {lines[i]}: column A (unplug_hourTime): "
                                  f"unparsable time {stamps[i]!r}")
            dur = pd.to_numeric(pd.Series(durations, dtype=object), errors="coerce")
            for i in np.flatnonzero((dur.isna() | (dur < 0)).to_numpy()):
                raise IngestError(f"{path}#{sheet}: row {lines[i]}: column B (travel_time): "
                                  f"expected seconds, got {durations[i]!r}")
            frames.append(pd.DataFrame({"unplug_ts": unplug, "duration_s": dur.astype(float), "sheet": sheet}))
    finally:
        wb.close()
    if not frames:
        raise IngestError(f"{path}: no trips in any sheet")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# System-wide ride counts with daily weather
# --------------------------------------------------------------------------------------------

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _decimal_columns(raw: pd.DataFrame, columns: list[str], path) -> pd.DataFrame:
    """Columns of numbers written as floats or decimal-comma strings (``"33,6"``) -> float."""
    out = pd.DataFrame(index=raw.index)
    for name in columns:
        if name not in raw.columns:
            raise IngestError(f"{path}: missing column {name!r} (has {list(raw.columns)})")
        text = raw[name].str.strip().str.replace(",", ".", regex=False)
        values = pd.to_numeric(text, errors="coerce")
        bad = values.isna() & raw[name].notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise IngestError(f"{path}: line {i + 2}: field {name}: not a number {raw[name].iloc[i]!r}")
        out[name] = values.astype(float)
    return out


def _read_counts_csv(path, integers: list[str], decimals: list[str]) -> pd.DataFrame:
    """``day_of_week``, the ``integers`` columns (non-negative) and the ``decimals`` columns."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="ascii").replace("", None)
    missing = [c for c in ("day_of_week", *integers) if c not in raw.columns]
    if missing:
        raise IngestError(f"{path}: missing column(s) {missing} (has {list(raw.columns)})")
    out = pd.DataFrame({"day_of_week": raw["day_of_week"]})
    for name in integers:
        values = pd.to_numeric(raw[name], errors="coerce")
        bad = values.isna() | (values < 0) | (values % 1 != 0)
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise IngestError(f"{path}: line {i + 2}: field {name}: expected a whole number, got {raw[name].iloc[i]!r}")
        out[name] = values.astype("int64")
    return out.join(_decimal_columns(raw, decimals, path))


def _check_weekdays(path, dates: pd.Series, names: pd.Series) -> None:
    """The file has no dates: its day-of-week column must agree with the dates given to rows."""
    expected = dates.dt.day_of_week.map(dict(enumerate(_DAY_NAMES)))
    wrong = (expected != names).to_numpy()
    if wrong.any():
        i = int(wrong.argmax())
        raise IngestError(f"{path}: line {i + 2}: field day_of_week: {names.iloc[i]!r}, but row-day "
                          f"{dates.iloc[i]:%Y-%m-%d} is a {expected.iloc[i]}; rows are not one per day in date order")


def read_system_daily_rides(path: str | os.PathLike, first_day: str = "2018-09-01") -> pd.DataFrame:
    """System-wide rides per day (``bicimad_daily.csv``): ``date`` (naive local midnight),
    ``day_of_week``, ``rides``, ``mean_for_weekday`` and AEMET daily weather as floats
    (``tmed``, ``prec``, ``velmedia``, ``tmax``, ``tmin``; °C, mm, m/s).

    The file has no date column: rows are consecutive days from ``first_day``, checked
    against its day-of-week column.
    """
    out = _read_counts_csv(path, ["rides"], ["mean_for_weekday", "tmed", "prec", "velmedia", "tmax", "tmin"])
    dates = pd.Series(pd.date_range(first_day, periods=len(out), freq="D"), index=out.index)
    _check_weekdays(path, dates, out["day_of_week"])
    out.insert(0, "date", dates)
    return out


def read_system_hourly_rides(path: str | os.PathLike, first_day: str = "2018-09-01") -> pd.DataFrame:
    """System-wide rides per local hour (``bicimad_hourly.csv``): ``hour`` (tz-aware Madrid),
    ``day_of_week``, ``rides``, ``mean_for_weekday_and_hour`` and weather as floats (``tmax``,
    ``tmin``, ``rain``, ``wind`` daily; ``temp`` the author's interpolated hourly temperature).

    There is no date column: rows run in time order from ``first_day``, and a new day starts
    where the hour does not increase (the first day may start after hour 0, the last end
    early). The day-of-week column checks the dates so given.
    """
    out = _read_counts_csv(path, ["hour", "rides"], ["mean_for_weekday_and_hour", "tmax", "tmin", "rain", "wind", "temp"])
    hours = out.pop("hour")
    if (hours > 23).any():
        i = int((hours > 23).to_numpy().argmax())
        raise IngestError(f"{path}: line {i + 2}: field hour: expected 0..23, got {hours.iloc[i]}")
    day = (hours.diff() <= 0).cumsum()
    dates = pd.Timestamp(first_day) + pd.to_timedelta(day, unit="D")
    _check_weekdays(path, dates, out["day_of_week"])
    out.insert(0, "hour", localize_wall_clock(dates + pd.to_timedelta(hours, unit="h")))
    return out


def daily_weather(daily: pd.DataFrame, columns=("tmed", "prec", "velmedia", "tmax", "tmin")) -> pd.DataFrame:
    """The daily weather of :func:`read_system_daily_rides` in the demand model's format:
    indexed by local date (naive midnight, named ``date``), one float column per variable
    (what ``bicimad demand --weather`` loads from a CSV with a ``date`` column)."""
    return daily.set_index(pd.DatetimeIndex(daily["date"], name="date"))[list(columns)].astype(float)


# --------------------------------------------------------------------------------------------
# A GEXF station graph
# --------------------------------------------------------------------------------------------

def read_station_affinity(path: str | os.PathLike) -> pd.DataFrame:
    """Edges of an undirected station graph in GEXF 1.2 (``bicimad.gexf``): ``station_a`` <=
    ``station_b`` (EMT ids) and integer ``weight``; node ids (all stations, edges or not) are in
    ``.attrs["stations"]``.

    For ``bicimad.gexf`` the weight is a trip count of **one** direction of the pair (the
    undirected graph kept whichever direction was written last), so it is a symmetric
    affinity and a lower bound on the pair's trips, not directed demand; a self-loop counts
    round trips.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise IngestError(f"{path}: invalid XML: {exc}") from exc
    local = lambda tag: tag.rsplit("}", 1)[-1]  # noqa: E731 (GEXF elements carry a namespace)
    graph = next((el for el in root if local(el.tag) == "graph"), None)
    if local(root.tag) != "gexf" or graph is None:
        raise IngestError(f"{path}: not a GEXF document with a graph (root element <{local(root.tag)}>)")
    if graph.get("defaultedgetype", "undirected") != "undirected":
        raise IngestError(f"{path}: defaultedgetype={graph.get('defaultedgetype')!r}; expected an undirected graph")

    def as_int(value, what: str, k: int, field: str) -> int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or number % 1:
            raise IngestError(f"{path}: {what} {k}: field {field}: expected an integer, got {value!r}")
        return int(number)

    nodes = [as_int(n.get("id"), "node", k, "id") for k, n in enumerate(graph.iter(), 1) if local(n.tag) == "node"]
    known = set(nodes)
    edges = []
    for k, e in enumerate((el for el in graph.iter() if local(el.tag) == "edge"), 1):
        if e.get("type", "undirected") != "undirected":
            raise IngestError(f"{path}: edge {k}: field type: {e.get('type')!r}; expected undirected")
        a, b = as_int(e.get("source"), "edge", k, "source"), as_int(e.get("target"), "edge", k, "target")
        for field, sid in (("source", a), ("target", b)):
            if sid not in known:
                raise IngestError(f"{path}: edge {k}: field {field}: node {sid} is not declared")
        weight = as_int(e.get("weight", "1"), "edge", k, "weight")
        edges.append((min(a, b), max(a, b), weight))
    out = pd.DataFrame(edges, columns=["station_a", "station_b", "weight"]).astype("int64")
    if out.duplicated(["station_a", "station_b"]).any():
        i = int(out.duplicated(["station_a", "station_b"]).to_numpy().argmax())
        raise IngestError(f"{path}: edge {i + 1}: fields source/target: pair {tuple(out.iloc[i, :2])} appears twice")
    out.attrs["stations"] = nodes
    return out
