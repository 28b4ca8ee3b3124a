"""Gross pickup and return rates per station × hour × day type, from trips or from net flow alone.

Gross rates from net flow (the Skellam method)
----------------------------------------------
Most of the real data has hourly snapshots only, so what is observed per station-hour is the
net flow ``N = R - P`` (returns minus pickups). If pickups and returns are independent Poisson
counts with rates ``p`` and ``r`` then N is Skellam distributed with

    E[N] = r - p        Var[N] = r + p

so a cell (station × local hour × day type) with sample mean ``m`` and variance ``v`` gives
``r = (v + m) / 2`` and ``p = (v - m) / 2``, after enforcing ``v >= |m|`` (a Skellam variance
is never below its absolute mean; when it is, the side with the smaller rate is set to 0).

Shrinkage: a month has ~4 Saturdays, so cell moments are noisy. Each cell's mean and variance
are shrunk towards a prior with ``k`` pseudo-observations, ``(n·cell + k·prior) / (n + k)``:
the mean towards the station's mean at that hour over all day types, the variance towards the
network's variance profile for that hour and day type scaled by the station's overall activity
(its mean variance over the network's). Empty cells take the prior; a station with no data at
all has no rates (NaN, which the forecast turns into an explicit fallback).

Real variance also holds over-dispersion (weather, events) and what truck moves survive the
flagging below, so Skellam gross rates run high (ARCHITECTURE.md, facts about the real
network: ≈ 35 % above EMT's counted trips for Sep 2018). ``daily_trips`` rescales the gross rates so the network's daily pickups match
a counted total, keeping every cell's net mean; :mod:`bicimad.demand.calibration` does it per
day against EMT's daily counts, exactly, says where the excess comes from, and builds the
day-specific truth of an evaluated day. Bias runs the other way too: a round trip
(pickup and return at one station within the interval) makes pickups and returns positively
correlated, which lowers the variance, and lost pickups at empty stations are never seen. On the
project's synthetic city (``bicimad ingest --synthetic``, which has both) the Skellam reading
gives 83 % of the true weekday pickups; on the real Sep 2018 snapshots, 129 % of EMT's counts.

Hours that start empty or full are left out of the fit: a station with no bike cannot lose
one, so its net flow there says nothing about pickup demand.

Truck moves
-----------
The operator's trucks move up to 22 bikes at once; riders cannot. An hour's net flow is
flagged as a truck move when it lies further from its cell's median than
``max(min_jump, k · 1.4826 · MAD)`` (MAD: the cell's median absolute deviation), defaults
``min_jump = 8`` bikes and ``k = 4``. Cells with fewer than 5 observations use the station's
median and MAD at that hour over all day types. Flagged hours are left out of every fit.

Public API
----------
``flag_truck_moves(panel)``, ``CellRates.fit(panel, day_mask)``, and
``fit_period_rates(station_hours, start, end)``: rates fitted to a period's *own* data, the
simulator's demand truth for evaluation (ARCHITECTURE.md, evaluation protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bicimad.demand.calendar import DAY_TYPES
from bicimad.demand.panel import HOURS, Panel, build_panel, quiet

N_DAY_TYPES = len(DAY_TYPES)


def flag_truck_moves(panel: Panel, day_mask: np.ndarray | None = None, *, min_jump: float = 8.0, k: float = 4.0,
                     min_obs: int = 5) -> np.ndarray:
    """Boolean (days, 24, stations) array: hours whose net flow is a truck move (module docstring).

    The cell medians and MADs come from the days in ``day_mask`` (default: all), so a forecast
    can flag past hours with statistics of the past alone; every panel day is then flagged.
    """
    mask = np.ones(panel.n_days, dtype=bool) if day_mask is None else np.asarray(day_mask, dtype=bool)
    net = panel.net
    fit_net = np.where(mask[:, None, None], net, np.nan)
    # Fallback centre and spread per station × hour over all day types.
    all_med = quiet(np.nanmedian, fit_net, axis=0)
    all_mad = quiet(np.nanmedian, np.abs(fit_net - all_med), axis=0)
    flags = np.zeros(net.shape, dtype=bool)
    types = panel.day_types
    for t in range(N_DAY_TYPES):
        sel = types == t
        if not sel.any():
            continue
        sub = fit_net[sel]
        n = np.sum(~np.isnan(sub), axis=0)
        med = quiet(np.nanmedian, sub, axis=0)
        mad = quiet(np.nanmedian, np.abs(sub - med), axis=0)
        few = n < min_obs
        med = np.where(few, all_med, med)
        mad = np.where(few, all_mad, mad)
        threshold = np.maximum(min_jump, k * 1.4826 * np.nan_to_num(mad))
        with np.errstate(invalid="ignore"):
            flags[sel] = np.abs(net[sel] - med) > threshold
    return flags


@dataclass
class CellRates:
    """Pickup and return rates per (day type, hour, station); NaN for stations without data."""

    station_ids: np.ndarray
    pickup: np.ndarray      # (3, 24, n)
    returns: np.ndarray     # (3, 24, n)
    n_obs: np.ndarray       # (3, 24, n) observations behind each cell
    method: str             # "skellam" or "trips"

    @property
    def gross(self) -> np.ndarray:
        return self.pickup + self.returns

    @property
    def net(self) -> np.ndarray:
        return self.returns - self.pickup

    @classmethod
    def fit(cls, panel: Panel, day_mask: np.ndarray | None = None, *, shrinkage: float = 4.0,
            truck_flags: np.ndarray | None = None, daily_trips: float | None = None,
            exclude_censored: bool = True) -> CellRates:
        """Fit on the panel days in ``day_mask`` (all days by default); see the module docstring.

        ``exclude_censored=False`` keeps hours that started empty or full: the cells then
        describe the flow observed under the operations of the time rather than rider demand.
        """
        mask = np.ones(panel.n_days, dtype=bool) if day_mask is None else np.asarray(day_mask, dtype=bool)
        flags = flag_truck_moves(panel, mask) if truck_flags is None else truck_flags
        censored = panel.censored if exclude_censored else np.zeros(panel.net.shape, dtype=bool)
        types = panel.day_types
        gross = panel.has_gross(mask)
        if gross:
            values = (panel.pickups, panel.returns)
            valid = ~np.isnan(panel.pickups) & ~np.isnan(panel.returns)
        else:
            values = (panel.net,)
            valid = ~np.isnan(panel.net) & ~flags & ~censored
        valid &= mask[:, None, None]

        shape = (N_DAY_TYPES, HOURS, panel.n_stations)
        n = np.zeros(shape)
        sums = [np.zeros(shape) for _ in values]
        sq = np.zeros(shape)
        for t in range(N_DAY_TYPES):
            sel = types == t
            v = valid[sel]
            n[t] = v.sum(axis=0)
            for acc, arr in zip(sums, values):
                acc[t] = np.where(v, arr[sel], 0.0).sum(axis=0)
            sq[t] = np.where(v, values[0][sel] ** 2, 0.0).sum(axis=0)

        def shrink(cell_sum, cell_n, prior):
            return (cell_sum + shrinkage * prior) / (cell_n + shrinkage)

        # Prior for a mean: the station's mean at that hour over every day type.
        def hour_prior(total):
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.broadcast_to(total.sum(axis=0) / n.sum(axis=0), shape)

        if gross:
            pick = shrink(sums[0], n, hour_prior(sums[0]))
            ret = shrink(sums[1], n, hour_prior(sums[1]))
            method = "trips"
        else:
            mean_prior = hour_prior(sums[0])
            mean = shrink(sums[0], n, mean_prior)
            with np.errstate(invalid="ignore", divide="ignore"):
                cell_mean = sums[0] / n
                cell_var = (sq - n * cell_mean ** 2) / (n - 1)
            cell_var = np.where(n >= 2, np.maximum(cell_var, 0.0), np.nan)
            var_prior = _variance_prior(cell_var, n)
            with np.errstate(invalid="ignore"):
                var = np.where(n >= 2, ((n - 1) * cell_var + shrinkage * var_prior) / (n - 1 + shrinkage), var_prior)
            var = np.maximum(var, np.abs(mean))
            ret, pick = (var + mean) / 2, (var - mean) / 2
            method = "skellam"
        rates = cls(panel.station_ids.copy(), pick, ret, n, method)
        if daily_trips is not None:
            rates = rates.calibrated(daily_trips)
        return rates

    def calibrated(self, daily_trips: float) -> CellRates:
        """Rescale gross rates so the weekday network total of pickups is ``daily_trips``, net kept."""
        total = np.nansum(self.pickup[0])
        if not total > 0:
            return self
        scale = daily_trips / total
        gross = np.maximum(self.gross * scale, np.abs(self.net))
        net = self.net
        return CellRates(self.station_ids, (gross - net) / 2, (gross + net) / 2, self.n_obs, self.method)

    def lookup(self, day_types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-day arrays (days, 24, n) of pickup and return rates for the given day types."""
        return self.pickup[day_types], self.returns[day_types]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"station_ids": self.station_ids, "pickup": self.pickup, "returns": self.returns,
                "n_obs": self.n_obs, "method": np.array(self.method)}

    @classmethod
    def from_arrays(cls, arrays) -> CellRates:
        return cls(arrays["station_ids"], arrays["pickup"], arrays["returns"], arrays["n_obs"], str(arrays["method"]))


def _variance_prior(cell_var: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Network variance profile per (day type, hour) × the station's relative activity."""
    profile = quiet(np.nanmean, cell_var, axis=2, keepdims=True)           # (3, 24, 1)
    station = quiet(np.nanmean, cell_var / profile, axis=(0, 1), keepdims=True)  # (1, 1, n)
    prior = profile * np.where(np.isfinite(station), station, np.nan)
    # Hours no station ever observed: the station's own mean variance.
    fill = quiet(np.nanmean, cell_var, axis=(0, 1), keepdims=True)
    return np.where(np.isfinite(prior), prior, np.broadcast_to(fill, prior.shape))


def fit_period_rates(station_hours: pd.DataFrame, start, end, *, stations: pd.DataFrame | None = None,
                     shrinkage: float = 4.0, daily_trips: float | None = None) -> pd.DataFrame:
    """Rates for every station-hour of ``[start, end)`` fitted to that period's own data.

    Returns a frame in the ``forecast`` schema; ``method`` is ``period_fit:skellam`` (from net
    flow) or ``period_fit:trips`` (from counted pickups/returns). Stations with no usable hour in
    the period are left out. Meant as the simulator's demand truth when evaluating that period.
    """
    panel = build_panel(station_hours, stations, start=start, end=end)
    rates = CellRates.fit(panel, shrinkage=shrinkage, daily_trips=daily_trips)
    known = np.isfinite(rates.pickup).all(axis=(0, 1)) & np.isfinite(rates.returns).all(axis=(0, 1))
    pick, ret = rates.lookup(panel.day_types)
    frames = []
    for d in range(panel.n_days):
        hours = panel.hour_stamps(d)
        frames.append(pd.DataFrame({
            "station_id": np.tile(panel.station_ids[known], HOURS),
            "hour": np.repeat(hours, known.sum()),
            "pickup_rate": np.clip(pick[d][:, known].ravel(), 0, None),
            "return_rate": np.clip(ret[d][:, known].ravel(), 0, None),
        }))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["station_id", "hour", "pickup_rate", "return_rate"])
    out["method"] = f"period_fit:{rates.method}"
    return out.dropna(subset=["hour"]).sort_values(["station_id", "hour"], ignore_index=True)
