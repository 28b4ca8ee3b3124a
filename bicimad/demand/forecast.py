"""Tomorrow's demand: the ``forecast`` table for one day, from a saved or fitted model.

``forecast_day(model, station_hours, stations, date)`` returns one row per station and local
hour of ``date`` (station_id, hour, pickup_rate, return_rate, method), made as the night run
makes it: only ``station_hours`` rows before the day's midnight are read, whatever is passed.
Rates are never negative and never NaN; ``method`` says where each row came from:

* the model's name (``lightgbm``, ...) — the normal case;
* ``fallback:station_history`` — the model knows the station but it has fewer than
  ``min_recent_hours`` observed hours in the last 14 days (a new or returning station, a data
  gap): its rates per hour and day type from the training span;
* ``fallback:network_profile`` — a station the model never saw: the mean rates of known
  stations for that hour and day type, scaled by the station's capacity.

Which stations: those of ``stations`` in service on the day (``first_seen`` not after it and
``last_seen`` within ``retired_after`` days before it; unknown dates count as in service); a
station only in ``station_hours`` is forecast too if it was seen in the last 14 days. The counts per method are in ``frame.attrs["methods"]``.

``load_model(path=None)`` finds a saved model: the given directory, else the newest version
under ``models/demand/``, else the committed synthetic-city default.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bicimad.config import TZ, models_dir
from bicimad.demand.models import DemandModel, split_rates
from bicimad.demand.panel import HOURS, build_panel

log = logging.getLogger(__name__)

RECENT_DAYS = 14


def model_root() -> Path:
    return models_dir() / "demand"


def load_model(path: str | Path | None = None) -> DemandModel:
    """Load a saved demand model (see the module docstring for the search order)."""
    if path is not None:
        return DemandModel.load(path)
    root = model_root()
    versions = sorted((p for p in root.glob("*/model.json") if p.parent.name != "default"),
                      key=lambda p: p.stat().st_mtime)
    if versions:
        return DemandModel.load(versions[-1].parent)
    default = root / "default"
    if (default / "model.json").exists():
        return DemandModel.load(default)
    raise FileNotFoundError(f"no demand model under {root} (run `bicimad demand train`)")


def _local_day(date) -> pd.Timestamp:
    day = pd.Timestamp(date)
    if day.tzinfo is not None:
        day = day.tz_convert(TZ).tz_localize(None)
    return day.normalize()


def forecast_day(model: DemandModel | str | Path | None, station_hours: pd.DataFrame, stations: pd.DataFrame | None,
                 date, *, history_days: int = 35, min_recent_hours: int = 48, retired_after: int = 30,
                 daily_trips: float | None = None) -> pd.DataFrame:
    """The ``forecast`` table for local day ``date`` (see the module docstring).

    ``daily_trips`` rescales every station-hour's gross rate (pickups + returns) by one factor so
    that the day's pickups add up to it, each net rate kept: Skellam gross rates from snapshots
    also hold over-dispersion and run high against counted trips (ARCHITECTURE.md: ~35 % in Sep 2018).
    """
    if not isinstance(model, DemandModel):
        model = load_model(model)
    day = _local_day(date)
    start = day - pd.Timedelta(days=history_days)
    hours = pd.to_datetime(station_hours["hour"]).dt.tz_convert(TZ)
    history = station_hours[(hours >= start.tz_localize(TZ)) & (hours < day.tz_localize(TZ))]

    ids = _stations_in_service(stations, history, day, retired_after)
    if not len(ids):
        raise ValueError(f"forecast {day.date()}: no station in service (empty stations table and no recent station_hours)")
    panel = build_panel(history, stations, start=start, end=day + pd.Timedelta(days=1), station_ids=ids)
    target = np.array([panel.n_days - 1])
    pick, ret = (a[0] for a in model.predict_rates(panel, target))          # (24, n)
    cell_p, cell_r = (a[0] for a in model.cell_rates(panel, target))

    recent = np.isfinite(panel.net[-1 - RECENT_DAYS:-1]).sum(axis=(0, 1)) + np.isfinite(panel.pickups[-1 - RECENT_DAYS:-1]).sum(axis=(0, 1))
    known = np.isfinite(cell_p).all(axis=0) & np.isfinite(cell_r).all(axis=0)
    normal = known & (recent >= min_recent_hours) & np.isfinite(pick).all(axis=0) & np.isfinite(ret).all(axis=0)
    method = np.where(normal, model.name, np.where(known, "fallback:station_history", "fallback:network_profile"))
    pick = np.where(normal, pick, cell_p)
    ret = np.where(normal, ret, cell_r)
    if (~known).any():
        prof_p, prof_r = _network_profile(cell_p, cell_r, known)
        scale = panel.station_capacity / np.nanmean(panel.station_capacity[known]) if known.any() else np.ones(panel.n_stations)
        scale = np.where(np.isfinite(scale), scale, 1.0)
        pick = np.where(known, pick, prof_p[:, None] * scale)
        ret = np.where(known, ret, prof_r[:, None] * scale)
    pick = np.clip(np.nan_to_num(pick, nan=0.0), 0, None)
    ret = np.clip(np.nan_to_num(ret, nan=0.0), 0, None)
    if daily_trips is not None:
        pick, ret = calibrate(pick, ret, daily_trips)

    out = pd.DataFrame({
        "station_id": np.tile(panel.station_ids, HOURS).astype(np.int32),
        "hour": np.repeat(panel.hour_stamps(panel.n_days - 1), panel.n_stations),
        "pickup_rate": pick.ravel(),
        "return_rate": ret.ravel(),
        "method": np.tile(method, HOURS),
    }).dropna(subset=["hour"]).sort_values(["station_id", "hour"], ignore_index=True)
    counts = pd.Series(method).value_counts()
    out.attrs["methods"] = {str(k): int(v) for k, v in counts.items()}
    if set(counts.index) != {model.name}:
        log.warning("forecast %s: fallbacks used: %s", day.date(), out.attrs["methods"])
    return out


def calibrate(pick: np.ndarray, ret: np.ndarray, daily_trips: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale gross rates by one factor c (gross never below |net|) so pickups sum to ``daily_trips``."""
    if daily_trips <= 0:
        raise ValueError(f"daily_trips must be > 0, got {daily_trips}")
    gross, net = pick + ret, ret - pick
    floor = np.maximum(-net, 0).sum()          # pickups left when every gross is at its minimum |net|
    if daily_trips <= floor:
        log.warning("calibrate: %.0f daily trips is below the net flows' minimum of %.0f pickups", daily_trips, floor)
        return split_rates(np.zeros_like(gross), net)
    lo, hi = 0.0, max(1.0, 2 * daily_trips / max(pick.sum(), 1e-9))
    while split_rates(gross * hi, net)[0].sum() < daily_trips:
        hi *= 2
    for _ in range(60):                        # bisection: total pickups grow monotonically with c
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if split_rates(gross * mid, net)[0].sum() < daily_trips else (lo, mid)
    return split_rates(gross * hi, net)


def _network_profile(cell_p, cell_r, known):
    """Mean rates per hour of the known stations (scaled by capacity by the caller)."""
    if not known.any():
        raise ValueError("forecast: the model knows none of the stations in service; train it on data that covers them")
    return cell_p[:, known].mean(axis=1), cell_r[:, known].mean(axis=1)


def _stations_in_service(stations: pd.DataFrame | None, history: pd.DataFrame, day: pd.Timestamp,
                         retired_after: int) -> np.ndarray:
    ids: set[int] = set()
    if stations is not None and len(stations):
        def local(column):
            values = pd.to_datetime(stations[column]) if column in stations else pd.Series(pd.NaT, index=stations.index)
            return values.dt.tz_convert(TZ).dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values

        retired = local("last_seen").notna() & (local("last_seen") < day - pd.Timedelta(days=retired_after))
        future = local("first_seen").notna() & (local("first_seen") >= day + pd.Timedelta(days=1))
        if retired.any() or future.any():
            log.info("forecast %s: left out %d station(s) not seen for %d days and %d installed later",
                     day.date(), int(retired.sum()), retired_after, int(future.sum()))
        ids |= set(stations.loc[~retired & ~future, "station_id"].astype(int))
    hours = pd.to_datetime(history["hour"]).dt.tz_convert(TZ).dt.tz_localize(None)
    ids |= set(history.loc[hours >= day - pd.Timedelta(days=RECENT_DAYS), "station_id"].astype(int))
    return np.array(sorted(ids), dtype=np.int64)
