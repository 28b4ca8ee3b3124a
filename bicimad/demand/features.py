"""Features per station-hour for a forecast made at the midnight before the day (the night run).

Only what is known at that midnight enters: calendar (hour, day of week, day type, Madrid
holiday, month), the station (id as a category, coordinates, capacity), lags of net flow
(same hour yesterday and last week), rolling means of net flow and of its size at the same
hour (last 7 and 28 days, last 4 days of the same day type), yesterday's activity of the
station and of the whole network, and occupancy: the hour's start occupancy is not known a day
ahead, so the fill ratio at the same hour yesterday and at the last snapshot before midnight
stand in for it. Optional daily weather columns (a frame indexed by local date) are appended
as they come.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bicimad.demand.panel import HOURS, Panel, quiet

CALENDAR = ["hour", "dow", "day_type", "holiday", "month"]
STATION = ["station", "lat", "lon", "capacity"]
HISTORY = ["net_lag24", "net_lag168", "net_mean7", "net_mean28", "net_mean_daytype4",
           "abs_mean7", "abs_mean28", "station_abs_yesterday", "network_abs_yesterday",
           "fill_lag24", "fill_origin"]
FEATURES = CALENDAR + STATION + HISTORY
CATEGORICAL = ["station"]


def _shift(values: np.ndarray, days: int) -> np.ndarray:
    """``values`` moved ``days`` forward along the day axis (NaN where nothing precedes)."""
    out = np.full_like(values, np.nan)
    if days < len(values):
        out[days:] = values[: len(values) - days]
    return out


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean over the ``window`` days strictly before each day, ignoring NaN (NaN if none)."""
    ok = ~np.isnan(values)
    csum = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(np.where(ok, values, 0.0), axis=0)])
    ccnt = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(ok, axis=0)])
    idx = np.arange(len(values))
    lo = np.maximum(idx - window, 0)
    total = csum[idx] - csum[lo]
    count = ccnt[idx] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def history_arrays(panel: Panel, net: np.ndarray) -> dict[str, np.ndarray]:
    """History features (days, 24, n); ``net`` is the panel's net flow with unusable hours NaN."""
    size = np.abs(net)
    fill = panel.bikes / np.where(panel.capacity > 0, panel.capacity, np.nan)
    out = {
        "net_lag24": _shift(net, 1),
        "net_lag168": _shift(net, 7),
        "net_mean7": _trailing_mean(net, 7),
        "net_mean28": _trailing_mean(net, 28),
        "abs_mean7": _trailing_mean(size, 7),
        "abs_mean28": _trailing_mean(size, 28),
        "fill_lag24": _shift(fill, 1),
    }
    same_type = np.full_like(net, np.nan)
    types = panel.day_types
    for t in np.unique(types):
        days = np.flatnonzero(types == t)
        same_type[days] = _trailing_mean(net[days], 4)
    out["net_mean_daytype4"] = same_type
    station_day = quiet(np.nanmean, size, axis=1)                     # (days, n)
    out["station_abs_yesterday"] = np.repeat(_shift(station_day, 1)[:, None, :], HOURS, axis=1)
    network_day = quiet(np.nanmean, station_day, axis=1)              # (days,)
    out["network_abs_yesterday"] = np.broadcast_to(_shift(network_day, 1)[:, None, None], net.shape).copy()
    last_fill = _last_observed_fill(fill)
    out["fill_origin"] = np.repeat(_shift(last_fill, 1)[:, None, :], HOURS, axis=1)
    return out


def _last_observed_fill(fill: np.ndarray) -> np.ndarray:
    """Per day and station, the fill ratio of the day's last observed hour."""
    observed = ~np.isnan(fill)
    last = HOURS - 1 - np.argmax(observed[:, ::-1, :], axis=1)         # (days, n)
    value = np.take_along_axis(fill, last[:, None, :], axis=1)[:, 0, :]
    return np.where(observed.any(axis=1), value, np.nan)


def feature_frame(panel: Panel, days: np.ndarray, history: dict[str, np.ndarray],
                  station_codes: np.ndarray, weather: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (day in ``days``, hour, station), in that order; columns ``FEATURES`` (+ weather).

    ``station_codes`` maps the panel's station axis to the model's category codes (-1: unknown).
    """
    days = np.asarray(days)
    n = panel.n_stations
    rows = len(days) * HOURS * n
    dates = panel.days[days]

    def per_day(values) -> np.ndarray:
        return np.repeat(np.asarray(values), HOURS * n)

    frame = {
        "hour": np.tile(np.repeat(np.arange(HOURS), n), len(days)),
        "dow": per_day(dates.day_of_week),
        "day_type": per_day(panel.day_types[days]),
        "holiday": per_day(panel.holidays[days].astype(np.int8)),
        "month": per_day(dates.month),
        "station": np.tile(np.where(station_codes >= 0, station_codes, np.nan), len(days) * HOURS),
        "lat": np.tile(panel.lat, len(days) * HOURS),
        "lon": np.tile(panel.lon, len(days) * HOURS),
        "capacity": np.tile(panel.station_capacity, len(days) * HOURS),
    }
    for name in HISTORY:
        frame[name] = history[name][days].reshape(rows)
    out = pd.DataFrame(frame)
    if weather is not None and len(weather.columns):
        daily = weather.reindex(pd.DatetimeIndex(dates)).to_numpy(dtype=float)
        for j, name in enumerate(weather.columns):
            out[f"weather_{name}"] = per_day(daily[:, j])
    return out
