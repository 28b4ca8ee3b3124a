"""Riders: demand as hourly rates (Poisson) or replayed trips, drawn into one event stream.

Every rider is an event ``(minute, origin, destination, travel minutes)``. A whole episode's
events are drawn at reset from the riders' own random stream, before any truck acts, so two
planners run with the same seed meet exactly the same riders (common random numbers). The
simulator then decides which of them find a bike.

Rates (:class:`Demand`, the ``forecast`` table's pickup and return rates per station-hour):
pickups at a station are a Poisson process at that hour's rate, minutes uniform within the
hour. A rider's destination follows the origin-destination matrix (the ``od`` table, or a
distance-decay fallback), re-weighted per hour by iterative proportional fitting so that
expected arrivals per station match that hour's return rates while every ridden bike is
conserved; an hourly OD (one matrix per hour, as the synthetic city's truth has) already says
where each hour's riders go and is taken as is. Travel time is road distance (straight line
x detour) at the riding speed.

Replays (:class:`TripReplay`): real trips at their own times. EMT truncates unplug times to
the hour; where all are whole hours, each trip's minute is drawn uniformly within its hour.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.sim.network import Network, synthetic_city
from bicimad.sim.scenario import Scenario


def travel_minutes(network: Network, scenario: Scenario) -> np.ndarray:
    """(n, n) riding minutes between stations (>= 1; a round trip takes ``round_trip_min``)."""
    r = scenario.riders
    minutes = np.maximum(1, np.rint(network.distance_km * r.detour / r.speed_kmh * 60)).astype(np.int32)
    np.fill_diagonal(minutes, r.round_trip_min)
    return minutes


@dataclass(frozen=True)
class RiderStream:
    """One episode's riders, sorted by (minute, origin); ``rank`` numbers the riders that
    arrive at the same station in the same minute (0, 1, ...), in the order they are served."""

    minute: np.ndarray  #: (m,) int32 minute of the pickup since the episode start
    origin: np.ndarray  #: (m,) int32 station index
    dest: np.ndarray    #: (m,) int32 station index
    travel: np.ndarray  #: (m,) int32 riding minutes (>= 1)
    rank: np.ndarray    #: (m,) int32

    @classmethod
    def build(cls, minute, origin, dest, travel, n_stations: int, presorted: bool = False) -> RiderStream:
        """Sort (unless ``presorted`` by minute then origin) and number the riders."""
        minute, origin, dest, travel = (np.asarray(x, dtype=np.int32) for x in (minute, origin, dest, travel))
        if not presorted:
            order = np.lexsort((origin, minute))
            minute, origin, dest, travel = minute[order], origin[order], dest[order], travel[order]
        key = minute.astype(np.int64) * n_stations + origin
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        run_start = np.repeat(starts, np.diff(np.r_[starts, len(key)]))
        rank = (np.arange(len(key)) - run_start).astype(np.int32)
        return cls(minute, origin, dest, np.maximum(travel, 1), rank)

    def __len__(self) -> int:
        return len(self.minute)


class Demand:
    """Pickup and return rates per station-hour (the ``forecast`` table) plus the OD matrix:
    one (n, n) for the whole period, or one per hour, (hours, n, n)."""

    def __init__(self, hours, pickup_rate, return_rate, od=None):
        self.hours = pd.DatetimeIndex(hours)
        self.pickup_rate = np.asarray(pickup_rate, dtype=float)
        self.return_rate = np.asarray(return_rate, dtype=float)
        self.od = None if od is None else np.asarray(od, dtype=float)
        self._samplers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        h, n = self.pickup_rate.shape
        if self.return_rate.shape != (h, n) or len(self.hours) != h:
            raise ValueError(f"demand: pickup {self.pickup_rate.shape}, return {self.return_rate.shape} "
                             f"and {len(self.hours)} hours disagree")
        if np.any(~np.isfinite(self.pickup_rate)) or np.any(self.pickup_rate < 0) \
                or np.any(~np.isfinite(self.return_rate)) or np.any(self.return_rate < 0):
            raise ValueError("demand: rates must be finite and >= 0")
        if self.od is not None and self.od.shape not in ((n, n), (h, n, n)):
            raise ValueError(f"demand: od is {self.od.shape}, expected {(n, n)} or {(h, n, n)}")

    def __getstate__(self):  # samplers are a per-process cache
        return {k: v for k, v in self.__dict__.items() if k != "_samplers"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._samplers = weakref.WeakKeyDictionary()

    @property
    def n_hours(self) -> int:
        return len(self.hours)

    @classmethod
    def from_tables(cls, network: Network, forecast: pd.DataFrame, od: pd.DataFrame | None = None) -> Demand:
        """Rates from a ``forecast`` table (stations it lacks get rate 0) and an optional ``od`` table."""
        missing = [c for c in ("station_id", "hour", "pickup_rate", "return_rate") if c not in forecast.columns]
        if missing:
            raise ValueError(f"forecast table lacks column(s) {missing}")
        hours = pd.DatetimeIndex(sorted(pd.to_datetime(forecast["hour"]).unique()))
        if hours.tz is None:
            raise ValueError("forecast.hour: timestamps must be tz-aware")
        known = forecast[forecast["station_id"].isin(network.station_ids)]
        col = network.index_of(known["station_id"].to_numpy())
        row = hours.get_indexer(pd.to_datetime(known["hour"]))
        pick = np.zeros((len(hours), network.n))
        ret = np.zeros((len(hours), network.n))
        np.add.at(pick, (row, col), known["pickup_rate"].to_numpy(dtype=float))
        np.add.at(ret, (row, col), known["return_rate"].to_numpy(dtype=float))
        matrix = None
        if od is not None and len(od):
            od = od[od["from_station"].isin(network.station_ids) & od["to_station"].isin(network.station_ids)]
            matrix = np.zeros((network.n, network.n))
            np.add.at(matrix, (network.index_of(od["from_station"].to_numpy()),
                               network.index_of(od["to_station"].to_numpy())), od["prob"].to_numpy(dtype=float))
        return cls(hours, pick, ret, matrix)

    def rates_at(self, hours: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """(pickup, return) rates aligned to ``hours`` (hours this demand lacks: 0)."""
        idx = self.hours.get_indexer(hours)
        pick = np.where(idx[:, None] >= 0, self.pickup_rate[np.maximum(idx, 0)], 0.0)
        ret = np.where(idx[:, None] >= 0, self.return_rate[np.maximum(idx, 0)], 0.0)
        return pick, ret

    def sampler(self, network: Network, scenario: Scenario) -> PoissonSampler:
        """The rider sampler for a network and scenario, built once and reused (comparisons run
        many planners and seeds on one demand)."""
        key = (scenario.riders, scenario.episode.hours)
        per_network = self._samplers.setdefault(network, {})
        if key not in per_network:
            per_network[key] = PoissonSampler(self, network, scenario)
        return per_network[key]


def distance_od(network: Network, scale_km: float, round_trip_share: float) -> np.ndarray:
    """Fallback OD: destinations decay as exp(-distance / scale), plus a share of round trips."""
    weight = np.exp(-network.distance_km / scale_km) * network.available[None, :]
    np.fill_diagonal(weight, 0.0)
    rows = weight.sum(axis=1, keepdims=True)
    off = np.divide(weight, rows, out=np.zeros_like(weight), where=rows > 0)
    share = np.where(rows[:, 0] > 0, round_trip_share, 1.0)
    return off * (1 - share)[:, None] + np.diag(share)


def balance_od(od: np.ndarray, pickups: np.ndarray, returns: np.ndarray, iters: int = 50,
               tol: float = 1e-6) -> np.ndarray:
    """Per hour, destination probabilities whose expected arrivals follow the return rates.

    Iterative proportional fitting of flows ``pickups[h, i] * od[i, j]`` to row sums
    ``pickups[h]`` and column sums ``returns[h]`` rescaled to the same total, until no column
    is off by more than ``tol`` x its hour's total (about 10 rounds) or ``iters`` rounds; ends on
    the rows, so each origin's probabilities sum to 1. An hour without returns keeps the plain
    OD. Returns (h, n, n).
    """
    h, n = pickups.shape
    flow = pickups[:, :, None] * od[None, :, :]
    total_ret = returns.sum(axis=1, keepdims=True)
    target_col = np.divide(returns * pickups.sum(axis=1, keepdims=True), total_ret,
                           out=np.zeros_like(returns), where=total_ret > 0)
    use = (total_ret[:, 0] > 0)[:, None]
    limit = tol * np.maximum(pickups.sum(axis=1, keepdims=True), 1e-12)
    for _ in range(iters):
        col = flow.sum(axis=1)
        if np.all(~use | (np.abs(col - target_col) <= limit)):
            break
        scale = np.divide(target_col, col, out=np.ones_like(col), where=col > 0)
        flow = flow * np.where(use, scale, 1.0)[:, None, :]
        row = flow.sum(axis=2)
        flow = flow * np.divide(pickups, row, out=np.zeros_like(row), where=row > 0)[:, :, None]
    row = flow.sum(axis=2, keepdims=True)
    return np.where(row > 0, np.divide(flow, row, out=np.zeros_like(flow), where=row > 0), od[None, :, :])


class PoissonSampler:
    """Draws a day of riders from hourly rates (see the module docstring)."""

    def __init__(self, demand: Demand, network: Network, scenario: Scenario):
        if demand.pickup_rate.shape[1] != network.n:
            raise ValueError(f"demand has {demand.pickup_rate.shape[1]} stations, network {network.n}")
        self.n = network.n
        self.n_hours = min(scenario.episode.hours, demand.n_hours)
        self.hours = demand.hours[: self.n_hours]
        r = scenario.riders
        live = network.available.astype(float)[None, :]
        self.pickup = demand.pickup_rate[: self.n_hours] * r.demand_multiplier * live
        returns = demand.return_rate[: self.n_hours] * live
        od = demand.od if demand.od is not None else distance_od(network, r.od_scale_km, r.round_trip_share)
        hourly = od.ndim == 3
        if hourly:
            od = od[: self.n_hours]
        od = od * network.available
        rows = od.sum(axis=-1, keepdims=True)
        od = np.where(rows > 0, np.divide(od, rows, out=np.zeros_like(od), where=rows > 0), 1.0 / network.n)
        probs = od if hourly else balance_od(od, self.pickup, returns)
        cdf = np.cumsum(probs, axis=2)
        cdf[:, :, -1] = 1.0
        self._cdf = cdf.reshape(-1)
        # Guide table (indexed search): for row r and bucket k, the first destination whose
        # cumulative probability exceeds k / n. A draw u starts at its bucket's entry and
        # steps forward, a step or two on average, instead of a binary search.
        shifted = (cdf + np.arange(self.n)[None, :, None]).reshape(self.n_hours, -1)
        buckets = (np.arange(self.n)[:, None] + np.arange(self.n + 1)[None, :] / self.n).ravel()
        guide = np.stack([np.searchsorted(row, buckets, side="right") for row in shifted])
        guide = guide.reshape(self.n_hours, self.n, self.n + 1) - (np.arange(self.n) * self.n)[None, :, None]
        self._guide = np.minimum(guide, self.n - 1).reshape(-1)
        self.travel = travel_minutes(network, scenario)
        # Riders already riding at the start (Little's law): at each station, the first hour's
        # returns times the mean riding minutes of the trips that end there in that hour.
        inflow = self.pickup[0][:, None] * probs[0]                  # (origin, destination) riders per hour
        arriving = inflow.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.ride_in = np.where(arriving > 0, (inflow * self.travel).sum(axis=0) / arriving, 0.0)
        self.in_transit = returns[0] * self.ride_in / 60.0

    def draw_in_transit(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(minute, station) of the riders already riding at the start: Poisson at each station
        by :attr:`in_transit`, docking uniformly within twice its mean riding time (at most an hour)."""
        counts = rng.poisson(self.in_transit)
        station = np.repeat(np.arange(self.n), counts)
        span = np.clip(np.rint(2 * self.ride_in[station]), 1, 60).astype(np.int64)
        return (rng.random(len(station)) * span).astype(np.int64), station

    def draw(self, rng: np.random.Generator) -> RiderStream:
        counts = rng.poisson(self.pickup).ravel()
        cell = np.repeat(np.arange(counts.size), counts)
        hour, origin = np.divmod(cell, self.n)
        minute = hour * 60 + rng.integers(0, 60, len(cell))
        u = rng.random(len(cell))
        dest = self._guide[cell * (self.n + 1) + (u * self.n).astype(np.int64)]
        row = cell * self.n
        step = np.flatnonzero(self._cdf[row + dest] <= u)
        while len(step):  # walk on to the first cumulative probability above u
            dest[step] += 1
            step = step[self._cdf[row[step] + dest[step]] <= u[step]]
        # Cells come hour by hour, origins ascending: a stable sort on the minute alone gives
        # (minute, origin) order (16-bit keys sort in linear time).
        key = minute.astype(np.int16 if self.n_hours * 60 < 2**15 else np.int64)
        order = np.argsort(key, kind="stable")
        origin, dest = origin[order], dest[order]
        return RiderStream.build(minute[order], origin, dest, self.travel[origin, dest], self.n, presorted=True)


@dataclass(frozen=True, eq=False)
class TripReplay:
    """Real trips to replay: pickup time, origin, destination and duration per trip."""

    start: pd.Timestamp      #: local start of the episode (minute 0)
    minute: np.ndarray       #: (m,) pickup minute since start
    origin: np.ndarray       #: (m,) station index
    dest: np.ndarray         #: (m,) station index
    travel: np.ndarray       #: (m,) riding minutes; <= 0 means "from distance"
    whole_hours: bool        #: pickup times are truncated to the hour (draw the minute)
    n_hours: int             #: hours of the episode
    dropped: int = 0         #: trips left out (stations outside the network, no destination, outside the window)

    @classmethod
    def from_trips(cls, trips: pd.DataFrame, network: Network, start, hours: int = 24) -> TripReplay:
        """Replay a ``trips`` table from local time ``start`` for ``hours`` hours."""
        start = pd.Timestamp(start)
        if start.tzinfo is None:
            start = start.tz_localize(TZ)
        unplug = pd.to_datetime(trips["unplug_ts"])
        offset = (unplug - start).dt.total_seconds().to_numpy() / 60.0
        keep = (offset >= 0) & (offset < hours * 60)
        keep &= trips["to_station"].notna().to_numpy()
        keep &= trips["from_station"].isin(network.station_ids).to_numpy()
        keep &= trips["to_station"].isin(network.station_ids).to_numpy()
        kept = trips[keep]
        duration = kept["duration_s"].to_numpy(dtype=float) if "duration_s" in kept else np.full(len(kept), np.nan)
        if "plug_ts" in kept:
            plug = (pd.to_datetime(kept["plug_ts"]) - pd.to_datetime(kept["unplug_ts"])).dt.total_seconds().to_numpy()
            duration = np.where(np.isnan(duration), plug, duration)
        travel = np.where(np.isfinite(duration), np.maximum(1, np.ceil(duration / 60.0)), 0).astype(np.int32)
        t = unplug[keep]
        whole = bool(len(t)) and bool(((t.dt.minute == 0) & (t.dt.second == 0)).all())
        return cls(start, np.floor(offset[keep]).astype(np.int32),
                   network.index_of(kept["from_station"].to_numpy()).astype(np.int32),
                   network.index_of(kept["to_station"].to_numpy().astype(np.int64)).astype(np.int32),
                   travel, whole, hours, int((~keep).sum()))

    @property
    def hours(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.n_hours, freq="h")

    def sampler(self, network: Network, scenario: Scenario) -> ReplaySampler:
        return ReplaySampler(self, network, scenario)


class ReplaySampler:
    """Turns a :class:`TripReplay` into the rider stream (drawing minutes only if truncated)."""

    def __init__(self, replay: TripReplay, network: Network, scenario: Scenario):
        self.replay = replay
        self.n = network.n
        self.n_hours = min(scenario.episode.hours, replay.n_hours)
        self.hours = replay.hours[: self.n_hours]
        dist_travel = travel_minutes(network, scenario)[replay.origin, replay.dest]
        self.travel = np.where(replay.travel > 0, replay.travel, dist_travel)
        self.keep = replay.minute < self.n_hours * 60

    def draw_in_transit(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """None: a replay holds only the trips that start within it."""
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def draw(self, rng: np.random.Generator) -> RiderStream:
        r = self.replay
        minute = r.minute
        if r.whole_hours:
            minute = (minute // 60) * 60 + rng.integers(0, 60, len(minute))
        k = self.keep
        return RiderStream.build(minute[k], r.origin[k], r.dest[k], self.travel[k], self.n)


def synthetic_demand(network: Network, date: str = "2018-09-27", daily_trips: float | None = None,
                     seed: int = 0) -> Demand:
    """The truth demand of the embedded synthetic city (:mod:`bicimad.opendata.synthetic`) on
    ``date``: the expected pickups, returns and hourly OD of the date's day type (weekday or
    weekend, as the city defines them), before the city's per-day multiplier.

    ``network`` is ``synthetic_network(n, seed)`` (or the same stations with other bikes);
    ``daily_trips`` is the city's ``trips_per_day`` (None: its default). On a day with a
    repeated local hour (autumn DST), the city draws that hour's riders once: the repeat has none.
    """
    from bicimad.opendata.synthetic import day_type_of

    city = synthetic_city(network.n, seed, daily_trips)
    if not (np.array_equal(city.station_id, network.station_ids) and np.array_equal(city.lat, network.lat)
            and np.array_equal(city.lon, network.lon)):
        raise ValueError(f"synthetic demand: the network is not the synthetic city of seed {seed} "
                         f"with {network.n} stations (build it with synthetic_network)")
    day = pd.Timestamp(date).date()
    start = pd.Timestamp(day, tz=TZ)
    hours = pd.date_range(start, start + pd.DateOffset(days=1), freq="h", inclusive="left")
    hour_of_day = hours.hour.to_numpy()
    repeat = pd.Series(hour_of_day).duplicated().to_numpy()
    dt = day_type_of(day)
    live = ~repeat[:, None]
    od = np.stack([city.od_prob(dt, h) for h in range(24)])[hour_of_day]
    return Demand(hours, city.pickup_rate[dt, hour_of_day] * live, city.return_rate[dt, hour_of_day] * live, od)
