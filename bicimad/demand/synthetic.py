"""Test data for known-truth recovery: station-hour tables drawn from *known* Poisson rates.

This is not the synthetic city (:mod:`bicimad.opendata.synthetic`, the embedded default the
pipeline and the simulator run on): it draws station-hour counts directly, with censoring and
truck moves at known positions, so tests can score what the demand code recovers.

``demand_profiles`` gives each station pickup and return rates per day type and hour with a
commuting shape: residential stations lose bikes in the morning peak (08 h) and gain them in
the evening (18-19 h), central ones the reverse; weekends are flatter and later.
``simulate_station_hours`` draws independent Poisson pickups and returns from those rates and
writes a ``station_hours`` frame, optionally censored by dock capacity and polluted by truck
moves (whose positions it returns, so detection can be scored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.demand.calendar import day_type
from bicimad.geo import MADRID_CENTRE


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def demand_profiles(n_stations: int, rng: np.random.Generator, *, level: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """True (pickup, return) rates, each of shape (3 day types, 24 hours, n_stations)."""
    h = np.arange(24, dtype=float)
    base = 0.15 + 0.85 * _bump(h, 13.5, 5.0)
    morning, evening = _bump(h, 8, 1.0), _bump(h, 18.5, 1.5)
    weekend = 0.1 + _bump(h, 13, 3.5) + 0.6 * _bump(h, 20, 2.0)
    activity = level * rng.gamma(4.0, 0.25, n_stations)
    residential = rng.uniform(-1, 1, n_stations)          # >0 loses bikes at 08 h
    pick = np.empty((3, 24, n_stations))
    ret = np.empty((3, 24, n_stations))
    out_am = 1.5 * np.clip(residential, 0, None) + 0.5
    in_am = 1.5 * np.clip(-residential, 0, None) + 0.5
    pick[0] = activity * (base[:, None] + morning[:, None] * out_am + evening[:, None] * in_am)
    ret[0] = activity * (base[:, None] + morning[:, None] * in_am + evening[:, None] * out_am)
    for t, scale in ((1, 0.8), (2, 0.6)):
        tilt = 1 + 0.2 * residential * np.sign(h - 14)[:, None]
        pick[t] = scale * activity * weekend[:, None] * tilt
        ret[t] = scale * activity * weekend[:, None] * (2 - tilt)
    return pick, ret


def synthetic_stations(n_stations: int, rng: np.random.Generator, *, first_id: int = 1) -> pd.DataFrame:
    """A ``stations``-like frame: ids, coordinates within ~3 km of Sol, capacities 15-30."""
    lat0, lon0 = MADRID_CENTRE
    return pd.DataFrame({
        "station_id": np.arange(first_id, first_id + n_stations, dtype=np.int32),
        "lat": lat0 + rng.normal(0, 0.015, n_stations),
        "lon": lon0 + rng.normal(0, 0.02, n_stations),
        "capacity": rng.integers(15, 31, n_stations).astype(np.int32),
    })


def simulate_station_hours(pickup: np.ndarray, returns: np.ndarray, stations: pd.DataFrame, start, days: int,
                           rng: np.random.Generator, *, censor: bool = False, truck_share: float = 0.0,
                           with_trips: bool = False, day_factor: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Draw ``days`` days of station hours from the rates; returns (station_hours, truck_mask).

    Without ``censor`` the docks never bind (capacity is set huge), so net flow is exactly
    returns minus pickups. With it, bikes stay within [0, capacity] and the net flow is what
    the docks allowed. A share ``truck_share`` of station-hours gets a truck move of 10-20
    bikes (sign at random, clipped by the docks); ``truck_mask`` marks them in row order.
    """
    n = len(stations)
    first = pd.Timestamp(start).tz_localize(TZ)
    last = (pd.Timestamp(start) + pd.Timedelta(days=days)).tz_localize(TZ)
    hours = pd.date_range(first, last, freq="h", inclusive="left")
    local = hours.tz_localize(None)
    types = day_type(local.normalize())
    hod = local.hour.to_numpy()
    factor = np.ones(days) if day_factor is None else np.asarray(day_factor, dtype=float)
    day_of_hour = ((local.normalize() - pd.Timestamp(start).normalize()) // pd.Timedelta(days=1)).to_numpy()
    lam_p = pickup[types, hod] * factor[day_of_hour, None]          # (T, n)
    lam_r = returns[types, hod] * factor[day_of_hour, None]
    drawn_p = rng.poisson(lam_p)
    drawn_r = rng.poisson(lam_r)
    trucks = rng.random((len(hours), n)) < truck_share
    jumps = np.where(trucks, rng.integers(10, 21, (len(hours), n)) * rng.choice([-1, 1], (len(hours), n)), 0)

    capacity = stations["capacity"].to_numpy() if censor else np.full(n, 100_000)
    bikes = np.empty((len(hours) + 1, n))
    bikes[0] = capacity // 2 if not censor else np.round(capacity * 0.5)
    served_p = np.empty_like(drawn_p)
    served_r = np.empty_like(drawn_r)
    for t in range(len(hours)):
        # Riders: pickups first (they find what is there plus what arrives), then returns.
        take = np.minimum(drawn_p[t], bikes[t] + drawn_r[t]) if censor else drawn_p[t]
        give = np.minimum(drawn_r[t], capacity - bikes[t] + take) if censor else drawn_r[t]
        served_p[t], served_r[t] = take, give
        after = bikes[t] - take + give + jumps[t]
        bikes[t + 1] = np.clip(after, 0, capacity)
    net = np.diff(bikes, axis=0)
    frame = pd.DataFrame({
        "station_id": np.tile(stations["station_id"].to_numpy(), len(hours)).astype(np.int32),
        "hour": np.repeat(hours, n),
        "bikes": bikes[:-1].ravel().astype(np.int32),
        "capacity": np.tile(capacity, len(hours)).astype(np.int32),
        "net_flow": net.ravel().astype(np.int32),
    })
    frame["snapshot_ts"] = frame["hour"] + pd.Timedelta(minutes=20)
    frame["empty"] = frame["bikes"] == 0
    frame["full"] = frame["bikes"] >= frame["capacity"]
    frame["pickups"] = pd.array(served_p.ravel() if with_trips else [pd.NA] * len(frame), dtype="Int32")
    frame["returns"] = pd.array(served_r.ravel() if with_trips else [pd.NA] * len(frame), dtype="Int32")
    columns = ["station_id", "hour", "snapshot_ts", "bikes", "capacity", "empty", "full", "pickups", "returns", "net_flow"]
    return frame[columns], trucks.ravel()
