"""Gross demand calibrated to EMT's counted trips, and the truth of one evaluated day.

Why gross rates from net flow run high
--------------------------------------
:class:`~bicimad.demand.rates.CellRates` reads a cell's gross rate (pickups + returns) as the
variance of its hourly net flow (the Skellam reading). Everything else that makes a station's
net flow vary from one day to the next is read as rider volume too. On the real snapshots
(``tests/bench/bench_calibration.py`` measures it; BENCHMARKS.md) the implied daily pickups run
20-34 % above EMT's counted ``TOTAL_USOS`` on Sep 2018 and 21-28 % on Oct 2019. Of the 19.5
points on Sep 2018 weekdays:

* **EMT staff trips** (user type 3) move bikes between docks like riders, but ``TOTAL_USOS``
  leaves them out: all-user counts are 4.9 % above it (about 5 points);
* **truck moves left in the data**: moves under the flagging threshold (8 bikes) stay in the
  variance; flagging from 5 bikes lowers the implied weekday pickups by 13 %, against 6 % for
  the same rule on Poisson riders at the same rates (about 8 points);
* **day-to-day variation of the whole city's volume** (weather, weekday) almost none: a day
  factor with the counts' spread (CV 6-15 % within a day type) adds ``CV² · Σ net²`` to the
  variance, 0.15 % of the gross (1.1 % on Oct 2019);
* the rest (about 6 points) is **day-to-day variation of each station's own flow** (an event
  nearby, a station half out of service) and smaller truck moves, which net flow alone cannot
  tell apart.

Round trips and lost pickups bias the reading the other way (:mod:`bicimad.demand.rates`).

Calibration (a scale per day, net kept)
---------------------------------------
For a day with counted trips ``T`` and cell rates ``p, r`` of its day type (net ``n = r - p``,
gross ``g = r + p``), the calibrated gross is ``G = max(s · g, |n|)`` and the rates are
``p' = (G - n) / 2``, ``r' = (G + n) / 2``: every cell keeps its net mean, and the scale ``s``
is solved (bisection; the total is monotone in ``s``) so that ``Σ p' = T`` exactly. The floor
``|n|`` keeps rates non-negative; a ``T`` below ``Σ max(-n, 0)`` cannot be met and leaves
``s = 0``. Days without a usable count take the median scale of the counted days of their type.

Day-specific truth (empirical Bayes on the day's own net flow)
--------------------------------------------------------------
An evaluated day's demand should be that day's, not its day type's mean. For panel day ``d``
of type ``t``, each station-hour's net mean is shrunk between the day's observed net flow
``N`` and a prior, the cell mean scaled by the day's volume, ``n0 = (T_d / T_t) · n_t``
(``T_t``: the mean count of the fitted days of type ``t``). With ``v`` the cell's variance
of net flow (the uncalibrated Skellam gross) and ``σ² = G_t`` the Poisson variance of one
day's net (the gross calibrated to ``T_t``), the between-day variance of the true net mean is
``τ² = max(v - σ², 0)``: what the count calibration removed from the variance.

A day's deviation persists over neighbouring hours (an event, a station half out of service),
while the Poisson noise of different hours is independent, so the evidence of the ``k`` usable
hours within a centred window of ``pool_hours`` (default 3) is pooled: with ``ē`` their mean
residual ``N - n0``,

    n_d = n0 + B · ē,      B = τ² / (τ² + Σσ² / k²)

the posterior mean of a normal prior ``(n0, τ²)`` seen through the window's noise. Hours that
are unobserved, a flagged truck move, or start empty or full (their net flow cannot show the
demand) give no evidence; with none in the window the hour keeps ``n0``. The day's gross is then
scaled as above so that its pickups equal ``T_d``. On the 27 Sep 2018 trips (the one day with
real per-station trips inside a snapshot period) the net per station over each trip window is
closer to the real one by 9 % with each hour alone, 16 % with 3 hours pooled and 15 % with 5
than the cell mean is (``tests/bench/bench_calibration.py``). The part of ``τ²`` that is
unflagged truck moves or staff trips comes back into the day's flow too: the price of an
estimate from net flow alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bicimad.demand.calendar import DAY_TYPES
from bicimad.demand.panel import Panel
from bicimad.demand.rates import CellRates, flag_truck_moves
from bicimad.opendata.daily_usage import counted_trips


def _split(gross: np.ndarray, net: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    total = np.maximum(scale * gross, np.abs(net))
    return (total - net) / 2, (total + net) / 2


def scale_for_pickups(gross: np.ndarray, net: np.ndarray, target: float, *, iterations: int = 80) -> float:
    """The scale ``s >= 0`` with ``Σ (max(s·gross, |net|) - net) / 2 = target`` (NaN cells ignored).

    0 where even ``s = 0`` gives more pickups than ``target`` (the net flow alone needs them);
    where no gross rate is positive no scale helps, and the result is 0 too.
    """
    def pickups(s: float) -> float:
        return float(np.nansum(_split(gross, net, s)[0]))

    if not np.isfinite(target) or pickups(0.0) >= target or not np.nansum(np.clip(gross, 0, None)) > 0:
        return 0.0
    low, high = 0.0, 1.0
    while pickups(high) < target:
        low, high = high, 2 * high
    for _ in range(iterations):
        mid = (low + high) / 2
        low, high = (mid, high) if pickups(mid) < target else (low, mid)
    return (low + high) / 2


def rates_for_total(pickup: np.ndarray, returns: np.ndarray, target: float) -> tuple[np.ndarray, np.ndarray]:
    """``pickup``/``returns`` with their gross rescaled so total pickups equal ``target``, net kept."""
    gross, net = pickup + returns, returns - pickup
    return _split(gross, net, scale_for_pickups(gross, net, target))


def implied_daily_pickups(cells: CellRates, day_types: np.ndarray) -> np.ndarray:
    """The network's daily pickups the cells imply for each day type in ``day_types``."""
    totals = np.array([np.nansum(cells.pickup[t]) for t in range(len(DAY_TYPES))])
    return totals[np.asarray(day_types, dtype=int)]


@dataclass(frozen=True)
class VolumeCalibration:
    """Per-day scales that make a period's cell rates match its counted trips."""

    days: pd.DatetimeIndex
    day_types: np.ndarray
    implied: np.ndarray      # daily pickups of the uncalibrated cells (the Skellam reading)
    counted: np.ndarray      # counted trips (NaN: no usable count)
    scale: np.ndarray        # gross scale of each day (counted days: exact; others: their type's median)
    trips: np.ndarray        # the pickups each day is calibrated to: its count, else what its scale gives
    type_trips: np.ndarray   # (3,) mean counted trips per day type over the counted days (NaN: none)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"date": self.days, "day_type": np.array(DAY_TYPES)[self.day_types],
                             "implied_pickups": self.implied, "counted_trips": self.counted, "scale": self.scale,
                             "calibrated_pickups": self.trips})


def calibrate_days(cells: CellRates, panel: Panel, usage: pd.DataFrame,
                   day_mask: np.ndarray | None = None) -> VolumeCalibration:
    """The scale of each panel day that brings the cells' pickups to its count in ``usage`` (the
    ``daily_usage`` table); ``day_mask`` (default: all) marks the days whose counts set the
    per-type means and medians."""
    mask = np.ones(panel.n_days, dtype=bool) if day_mask is None else np.asarray(day_mask, dtype=bool)
    types = panel.day_types
    counted = counted_trips(usage, panel.days)
    scale = np.full(panel.n_days, np.nan)
    for d in np.flatnonzero(np.isfinite(counted)):
        t = types[d]
        scale[d] = scale_for_pickups(cells.gross[t], cells.net[t], counted[d])
    type_trips = np.full(len(DAY_TYPES), np.nan)
    for t in range(len(DAY_TYPES)):
        known = (types == t) & mask & np.isfinite(counted)
        if known.any():
            type_trips[t] = counted[known].mean()
        fill = np.nanmedian(scale[known]) if known.any() else 1.0
        scale[(types == t) & ~np.isfinite(scale)] = fill
    trips = np.array([counted[d] if np.isfinite(counted[d]) else
                      np.nansum(_split(cells.gross[types[d]], cells.net[types[d]], scale[d])[0]) for d in range(panel.n_days)])
    return VolumeCalibration(panel.days, types, implied_daily_pickups(cells, types), counted, scale, trips, type_trips)


def variance_parts(cells: CellRates, day_type: int, type_trips: float) -> tuple[np.ndarray, np.ndarray]:
    """``(τ², σ²)`` per (hour, station) of ``day_type``: the between-day variance of the true net
    mean and the Poisson variance of one day's net flow (module docstring); NaN without data."""
    poisson, _ = rates_for_total(cells.pickup[day_type], cells.returns[day_type], type_trips)
    poisson = 2 * poisson + cells.net[day_type]          # the calibrated gross G_t = p' + r'
    return np.maximum(cells.gross[day_type] - poisson, 0.0), poisson


def _window_sum(values: np.ndarray, half: int) -> np.ndarray:
    """Sums over hours ``h - half .. h + half`` (cut at the day's ends) along axis 0."""
    padded = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0)])
    hours = np.arange(values.shape[0])
    return padded[np.minimum(hours + half + 1, values.shape[0])] - padded[np.maximum(hours - half, 0)]


def shrunk_deviation(residual: np.ndarray, usable: np.ndarray, between: np.ndarray, poisson: np.ndarray,
                     pool_hours: int = 3) -> np.ndarray:
    """The day's deviation from the prior at each hour: the mean residual of the usable hours
    within ``pool_hours`` (centred), times ``B = τ² / (τ² + Σσ² / k²)`` for ``k`` hours pooled."""
    half = max(int(pool_hours), 1) // 2
    k = _window_sum(usable.astype(float), half)
    total = _window_sum(np.where(usable, residual, 0.0), half)
    noise = _window_sum(np.where(usable, np.nan_to_num(poisson), 0.0), half)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = between / (between + noise / k ** 2)
        deviation = weight * total / k
    return np.where((k > 0) & np.isfinite(deviation), deviation, 0.0)


def day_truth(panel: Panel, cells: CellRates, day: int, daily_trips: float, *, type_trips: float | None = None,
              station_ids: np.ndarray | None = None, truck_flags: np.ndarray | None = None,
              pool_hours: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Pickup and return rates (24, n) of panel day ``day``: its own net flow shrunk towards the
    volume-scaled cell mean, its gross scaled to ``daily_trips`` (module docstring).

    ``type_trips`` is the mean count of the fitted days of the day's type (default
    ``daily_trips``: no volume scaling of the prior). ``station_ids`` sets the station order of
    the result (default the cells'); a station the cells do not know gets 0. ``truck_flags``
    (as :func:`~bicimad.demand.rates.flag_truck_moves` returns) defaults to flagging the panel.
    ``pool_hours`` (odd) is how many neighbouring hours pool their evidence (1: each hour alone).
    """
    if panel.station_ids.shape != cells.station_ids.shape or (panel.station_ids != cells.station_ids).any():
        raise ValueError("day_truth: the panel and the cells must have the same stations in the same order")
    t = int(panel.day_types[day])
    type_trips = daily_trips if type_trips is None or not np.isfinite(type_trips) else type_trips
    prior = (daily_trips / type_trips) * cells.net[t]
    flags = flag_truck_moves(panel) if truck_flags is None else truck_flags
    observed = panel.net[day]
    usable = np.isfinite(observed) & ~flags[day] & ~panel.censored[day] & np.isfinite(prior)
    between, poisson = variance_parts(cells, t, type_trips)
    net = prior + shrunk_deviation(observed - prior, usable, between, poisson, pool_hours)
    gross = cells.gross[t]
    pickup, returns = _split(gross, net, scale_for_pickups(gross, net, daily_trips))
    if station_ids is None:
        return np.nan_to_num(pickup), np.nan_to_num(returns)
    return _in_order(cells.station_ids, station_ids, pickup), _in_order(cells.station_ids, station_ids, returns)


def _in_order(known_ids: np.ndarray, station_ids: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Columns of ``rates`` (ordered as ``known_ids``, sorted) for ``station_ids``; 0 where unknown."""
    station_ids = np.asarray(station_ids)
    column = np.clip(np.searchsorted(known_ids, station_ids), 0, len(known_ids) - 1)
    known = known_ids[column] == station_ids
    return np.where(known[None, :], np.nan_to_num(rates[:, column]), 0.0)
