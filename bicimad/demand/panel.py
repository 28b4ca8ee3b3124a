"""The station-hour table as a dense (day, hour, station) panel that models index by position.

``station_hours`` rows are keyed by a tz-aware hour; demand repeats by *local wall-clock*
hour, so the panel keys every row by (local date, local hour 0-23). At the autumn DST change
the repeated 02:00 keeps its first row; at the spring change the missing 02:00 stays empty (NaN).
Missing hours and stations absent on a day are NaN too, never zero.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.demand.calendar import day_type, is_holiday

HOURS = 24


def quiet(func, *args, **kwargs):
    """Call a numpy nan-reduction where all-NaN slices are expected: NaN is the answer, not a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(*args, **kwargs)


@dataclass
class Panel:
    """Dense arrays of shape (days, 24, stations); NaN where nothing was observed."""

    days: pd.DatetimeIndex          # consecutive local dates (naive midnights)
    station_ids: np.ndarray         # (n,) int
    net: np.ndarray                 # net flow: bikes at next snapshot minus bikes now
    bikes: np.ndarray               # bikes at the hour's start
    capacity: np.ndarray            # docks at the hour's start
    pickups: np.ndarray             # gross pickups where trips exist
    returns: np.ndarray             # gross returns where trips exist
    empty: np.ndarray               # 1.0 where the hour started with no bike, 0.0 otherwise
    full: np.ndarray                # 1.0 where the hour started with no free dock
    lat: np.ndarray                 # (n,) station attributes (NaN when unknown)
    lon: np.ndarray
    station_capacity: np.ndarray    # (n,) typical capacity (stations table, else median seen)

    @property
    def n_days(self) -> int:
        return len(self.days)

    @property
    def n_stations(self) -> int:
        return len(self.station_ids)

    @property
    def censored(self) -> np.ndarray:
        """Hours that started empty or full: their net flow cannot show the full demand."""
        return (self.empty == 1) | (self.full == 1)

    @property
    def day_types(self) -> np.ndarray:
        return day_type(self.days)

    @property
    def holidays(self) -> np.ndarray:
        return is_holiday(self.days)

    def day_index(self, date) -> int:
        """Position of a local date in ``days`` (KeyError if outside the panel)."""
        stamp = pd.Timestamp(date)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert(TZ).tz_localize(None)
        return int(self.days.get_loc(stamp.normalize()))

    def day_mask(self, start, end) -> np.ndarray:
        """Days in ``[start, end)`` (local dates) as a boolean mask over ``days``."""
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        return np.asarray((self.days >= start.normalize()) & (self.days < end.normalize()))

    def has_gross(self, day_mask: np.ndarray | None = None) -> bool:
        """Whether gross pickups/returns cover at least 90 % of the observed hours."""
        sel = slice(None) if day_mask is None else day_mask
        observed = ~np.isnan(self.net[sel]) | ~np.isnan(self.pickups[sel])
        gross = ~np.isnan(self.pickups[sel]) & ~np.isnan(self.returns[sel])
        return bool(observed.sum() > 0 and gross.sum() >= 0.9 * observed.sum())

    def hour_stamps(self, day: int) -> pd.DatetimeIndex:
        """The 24 tz-aware local hours of panel day ``day``.

        The hour skipped by the spring DST change is NaT (callers drop it); at the autumn change
        the repeated hour is its first occurrence, as in the panel.
        """
        naive = self.days[day] + pd.to_timedelta(np.arange(HOURS), unit="h")
        return naive.tz_localize(TZ, ambiguous=np.ones(HOURS, dtype=bool), nonexistent="NaT")


def build_panel(station_hours: pd.DataFrame, stations: pd.DataFrame | None = None, *,
                start=None, end=None, station_ids=None) -> Panel:
    """Arrange a ``station_hours`` frame as a :class:`Panel`.

    ``start``/``end`` (local dates, end exclusive) widen or cut the day range, e.g. to add the
    day being forecast; ``station_ids`` fixes the station axis (default: every station seen in
    either table).
    """
    local = pd.to_datetime(station_hours["hour"])
    if getattr(local.dt, "tz", None) is None:
        raise ValueError("station_hours.hour: timestamps must be tz-aware")
    local = local.dt.tz_convert(TZ).dt.tz_localize(None)
    row_day = local.dt.normalize()
    first = pd.Timestamp(start).normalize() if start is not None else row_day.min()
    last = pd.Timestamp(end).normalize() - pd.Timedelta(days=1) if end is not None else row_day.max()
    if pd.isna(first) or pd.isna(last) or last < first:
        raise ValueError("build_panel: empty day range (no station_hours rows and no start/end)")
    days = pd.date_range(first, last, freq="D")

    if station_ids is None:
        ids = set(pd.unique(station_hours["station_id"]).tolist())
        if stations is not None:
            ids |= set(stations["station_id"].tolist())
        station_ids = np.array(sorted(int(i) for i in ids), dtype=np.int64)
    station_ids = np.asarray(station_ids, dtype=np.int64)
    col = pd.Index(station_ids)

    shape = (len(days), HOURS, len(station_ids))
    arrays = {name: np.full(shape, np.nan) for name in ("net", "bikes", "capacity", "pickups", "returns", "empty", "full")}
    d = ((row_day - days[0]) // pd.Timedelta(days=1)).to_numpy()
    h = local.dt.hour.to_numpy()
    s = col.get_indexer(station_hours["station_id"].to_numpy())
    keep = (d >= 0) & (d < len(days)) & (s >= 0)
    # The repeated autumn hour: keep the first row of each (day, hour, station).
    flat = np.where(keep, (d * HOURS + h) * len(station_ids) + s, -1)
    _, first_rows = np.unique(flat, return_index=True)
    rows = first_rows[flat[first_rows] >= 0]
    columns = {"net": "net_flow"}
    for name in arrays:
        source = columns.get(name, name)
        if source in station_hours:
            values = _as_float(station_hours[source])
            arrays[name][d[rows], h[rows], s[rows]] = values[rows]

    lat = np.full(len(station_ids), np.nan)
    lon = np.full(len(station_ids), np.nan)
    cap = quiet(np.nanmedian, arrays["capacity"].reshape(-1, len(station_ids)), axis=0)
    if stations is not None and len(stations):
        meta = stations.drop_duplicates("station_id").set_index("station_id").reindex(station_ids)
        lat = pd.to_numeric(meta["lat"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        lon = pd.to_numeric(meta["lon"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        listed = pd.to_numeric(meta["capacity"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        cap = np.where(np.isfinite(listed), listed, cap)
    return Panel(days=days, station_ids=station_ids, lat=lat, lon=lon, station_capacity=cap, **arrays)


def _as_float(column: pd.Series) -> np.ndarray:
    """Any numeric, boolean or nullable column as float64 with NaN for missing."""
    if column.dtype == object:
        column = pd.to_numeric(column, errors="coerce")
    return column.to_numpy(dtype=float, na_value=np.nan)
