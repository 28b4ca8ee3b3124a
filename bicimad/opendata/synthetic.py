"""A seeded synthetic BiciMAD, written as raw files in EMT's own formats.

This is the embedded default: a fresh machine without real data generates a city that looks
like BiciMAD in September 2018 (about 172 stations around central Madrid, median capacity 24,
about 39 % of docks holding a bike, about 14,200 trips a day, weekday commuting from the
residential periphery to the centre and business districts in the morning and back in the
evening, flatter weekends) and runs the whole pipeline on it.

Generation
----------
1. **Stations**: positions drawn in a ~5 × 6 km area around Sol, denser in the centre, at least
   180 m apart (except a few ``Na``/``Nb`` sub-station pairs, as EMT has); capacities from a
   discrete distribution with median 24 (12–30); ids 1..n with a few gaps, as EMT's.
2. **Demand** (the generating truth): expected trips per hour from station *i* to *j*,
   ``trip_rates[day_type, hour, i, j]``, is the sum of a symmetric gravity flow (all-purpose
   trips, plus a share of round trips), a morning commuting flow ``M`` (residential → business)
   and an evening flow ``Mᵀ`` with the same daily volume, so every station's expected daily
   pickups equal its expected daily returns. Each day has a multiplier (weather, events).
3. **Trips**: Poisson counts per (hour, origin, destination); unplug instant uniform within
   the hour; duration from distance at the simulator's riding speed and detour (its default
   scenario's riders) with lognormal noise (round trips: its round-trip minutes, lognormal).
4. **Docks**: the simulator's own core (:func:`bicimad.sim.core.replay_docks`) replays every
   pickup, return and operator truck visit minute by minute on the docks, and reads them at each
   snapshot's minute. A pickup at an empty station is lost (no trip is recorded); a return to a
   full station is diverted to the nearest station with a free dock (the trip records that
   station and the longer ride). The operator's trucks, every hour, move bikes from the fullest
   to the emptiest stations. Events get instants within their minute, after the minute's
   snapshot, so snapshot bikes change exactly by returns − pickups + truck moves.
5. **Snapshots**: about one an hour, ``_id`` in naive local time, minutes drifting by ~2 s an
   hour with an occasional restart, and a small chance of a missing snapshot, like EMT's.

Files (under ``raw_root/synthetic/``)
-------------------------------------
- ``meta/stations.json``: EMT station list ``{"stations": [13 fields]}`` (state at the start);
- ``stations/Bicimad_Estacions_YYYYMM.json``: one snapshot per line, ``{"_id", "stations"}``;
- ``trips/YYYYMM_Usage_Bicimad.json``: mongoexport JSON lines (``$oid``, ``$date`` with the
  local offset, hour-truncated unplug time).

The truth alone (:func:`city_truth`: layout, capacities, initial bikes, rates and OD per day
type, without drawing or replaying any trip) is cheap; the simulator's synthetic network and
demand (``bicimad.sim.network.synthetic_network``, ``bicimad.sim.riders.synthetic_demand``)
are built from it, so they are this same city.

Trips are written for the first ``trip_days`` days only (default 7, one full week: about
100,000 trips, ~37 MB), because a full month in EMT's verbose format would be ~150 MB; the
snapshots (~35 MB for 30 days) cover every day, as in the real data available for Sep 2018. ``trip_days=None``
writes every day. The truth (:class:`SyntheticCity`) covers the whole period either way.

Time: demand is defined per local (Europe/Madrid) hour. On a DST change the missing local hour
has no trips and the repeated one is generated once; snapshots are taken at absolute instants
and stamped in naive local time, so they repeat or skip a stamp hour there, as a naive clock does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.geo import MADRID_CENTRE, haversine_km, pairwise_km
from bicimad.io import atomic_open
from bicimad.opendata.live import emt_station_record
from bicimad.sim.core import replay_docks
from bicimad.sim.network import Network
from bicimad.sim.riders import TripReplay
from bicimad.sim.scenario import EpisodeSpec, FleetSpec, RiderSpec, Scenario

#: Business districts (lat, lon, radius m, weight): Sol/Gran Vía, AZCA/Castellana, Atocha.
BUSINESS = ((40.4190, -3.7030, 1300.0, 1.0), (40.4480, -3.6920, 1000.0, 1.0), (40.4070, -3.6910, 600.0, 0.6))
#: Capacities EMT uses, and their shares (median 24, range 12–30).
CAPACITIES = np.array([12, 15, 18, 20, 21, 24, 27, 30])
CAPACITY_SHARES = np.array([0.03, 0.05, 0.09, 0.07, 0.05, 0.40, 0.14, 0.17])
#: Relative all-purpose trip volume per local hour, weekday and weekend.
BASE_PROFILE = np.array([
    [.40, .25, .15, .09, .06, .08, .15, .35, .65, .70, .62, .60, .66, .85, 1.15, 1.15, .92, .92, 1.0, 1.0, .92, .78, .60, .52],
    [.85, .75, .60, .42, .30, .22, .16, .12, .18, .32, .55, .78, .92, 1.0, 1.0, .85, .95, 1.0, 1.05, 1.15, 1.15, 1.0, .85, .75],
])
#: Madrid streets used for synthetic station names (non-ASCII on purpose: EMT's files have it).
STREETS = (
    "Calle de Alcalá", "Gran Vía", "Calle Mayor", "Paseo del Prado", "Calle de Atocha", "Calle de Toledo",
    "Calle de Segovia", "Calle de Bailén", "Calle de Fuencarral", "Calle de Hortaleza", "Calle de Serrano",
    "Calle de Velázquez", "Calle de Goya", "Calle de O'Donnell", "Paseo de la Castellana", "Calle de Génova",
    "Calle de Sagasta", "Calle de Bravo Murillo", "Calle de Santa Engracia", "Calle de Embajadores",
    "Calle de Lavapiés", "Ronda de Valencia", "Paseo de las Delicias", "Calle de Méndez Álvaro",
    "Calle de Princesa", "Calle de Alberto Aguilera", "Plaza de España", "Calle de Ferraz",
    "Calle de José Abascal", "Calle de Raimundo Fernández Villaverde", "Calle de Núñez de Balboa",
    "Calle de Príncipe de Vergara", "Calle del Doctor Esquerdo", "Calle de Ibiza", "Paseo de Recoletos",
    "Plaza de Colón", "Calle de Argumosa", "Calle de la Ribera de Curtidores", "Calle de Cea Bermúdez",
    "Calle de Joaquín Costa", "Plaza de la Puerta del Sol", "Calle de Mesón de Paredes",
)
SECONDS_PER_HOUR = 3600.0
#: Snapshot period: EMT's clock drifts by about 2 s an hour.
SNAPSHOT_PERIOD_S = 3602.0
#: The riders of the simulator's default scenario (speed, detour, round-trip minutes): trip
#: durations and the rides of diverted riders follow them.
RIDERS = RiderSpec()
#: The operator's trucks take bikes from stations at least this full to stations at most this full.
TRUCK_FROM_FILL, TRUCK_TO_FILL = 0.85, 0.15


@dataclass(frozen=True)
class CityParams:
    """Knobs of the synthetic city; the defaults mimic BiciMAD in September 2018."""

    n_stations: int = 172
    """Number of stations."""
    start: str = "2018-09-01"
    """First local day (YYYY-MM-DD)."""
    days: int = 30
    """Number of days of snapshots (and of demand)."""
    trips_per_day: float = 16_000.0
    """Expected trip demand per day over the period; realised trips are fewer, as pickups at an
    empty station are lost (the default realises about 14,200 a day, EMT's Sep 2018 count)."""
    weekend_volume: float = 0.68
    """Weekend day volume relative to a weekday."""
    commute_share: tuple[float, float] = (0.26, 0.04)
    """Share of a day's trips that are commuting (morning + evening), weekday and weekend."""
    round_trip_share: tuple[float, float] = (0.04, 0.08)
    """Share of all-purpose trips that return to their start station, weekday and weekend."""
    fill: float = 0.39
    """Average share of docks holding a bike (the fleet also covers the bikes being ridden)."""
    day_variation: float = 0.10
    """Standard deviation of the log of each day's demand multiplier."""
    trip_days: int | None = 7
    """Write trips for the first this many days only (None: every day); snapshots cover all days."""
    trucks: int = 3
    """Operator trucks moving bikes every hour (0: no truck moves)."""
    truck_capacity: int = 20
    """Bikes a truck carries at most."""
    missing_snapshot_prob: float = 0.002
    """Chance that a snapshot is missing from the file."""
    restart_prob: float = 0.004
    """Chance per snapshot that the snapshot clock restarts at a new minute."""

    def __post_init__(self):
        if self.n_stations < 2:
            raise ValueError(f"n_stations must be at least 2, got {self.n_stations}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if not 0 < self.fill < 1:
            raise ValueError(f"fill must be in (0, 1), got {self.fill}")
        if self.trips_per_day < 0:
            raise ValueError(f"trips_per_day must be >= 0, got {self.trips_per_day}")
        date.fromisoformat(self.start)


@dataclass
class CityTruth:
    """The generating truth of a synthetic city: stations, capacities, start state and rates.

    Station arrays are in station order (index ``k`` is station ``station_id[k]``). Day type 0 is
    a weekday, 1 a Saturday or Sunday (:func:`day_type_of`).
    """

    params: CityParams
    seed: int
    """The int seed (-1 where a Generator was passed)."""
    station_id: np.ndarray
    """EMT station id per station (int, ascending, with gaps)."""
    number: list[str]
    """EMT station number, e.g. '1a'."""
    name: list[str]
    address: list[str]
    lat: np.ndarray
    lon: np.ndarray
    capacity: np.ndarray
    business: np.ndarray
    """How much a station is a commuting destination (0..1); 1 - business is its residential weight."""
    dates: list[date]
    """The local days generated."""
    day_type: np.ndarray
    """0 weekday, 1 weekend, per day."""
    day_factor: np.ndarray
    """Demand multiplier per day (mean about 1)."""
    trip_rates: np.ndarray
    """Expected trips per local hour: shape (2 day types, 24 hours, n origins, n destinations), before the day factor."""
    return_rate: np.ndarray
    """Expected returns per station by plug hour: shape (2, 24, n) (trips crossing the hour spill into the next)."""
    initial_bikes: np.ndarray
    """Docked bikes per station at the start of the first day."""

    @property
    def n(self) -> int:
        return len(self.station_id)

    @property
    def pickup_rate(self) -> np.ndarray:
        """Expected pickups per station and local hour: shape (2 day types, 24, n)."""
        return self.trip_rates.sum(axis=3)

    def od_prob(self, day_type: int, hour: int) -> np.ndarray:
        """P(destination | origin) for one day type and hour: shape (n, n), rows sum to 1."""
        rates = self.trip_rates[day_type, hour]
        return rates / rates.sum(axis=1, keepdims=True)

    def rates_frame(self):
        """Expected pickups and returns per station, day type and local hour, as a long DataFrame
        (station_id, day_type, hour, pickup_rate, return_rate), before the day factor."""
        import pandas as pd

        shape = self.return_rate.shape  # (2, 24, n)
        day_type, hour, station = np.indices(shape).reshape(3, -1)
        return pd.DataFrame({
            "station_id": self.station_id[station], "day_type": day_type, "hour": hour,
            "pickup_rate": self.pickup_rate.ravel(), "return_rate": self.return_rate.ravel(),
        })

    def od_frame(self, day_type: int):
        """The day's P(destination | origin) for a day type, in the ``od`` table's columns."""
        import pandas as pd

        daily = self.trip_rates[day_type].sum(axis=0)
        prob = daily / daily.sum(axis=1, keepdims=True)
        origin, dest = np.nonzero(prob)
        return pd.DataFrame({"from_station": self.station_id[origin], "to_station": self.station_id[dest],
                             "prob": prob[origin, dest]})

    def distance_m(self) -> np.ndarray:
        """Straight-line distances between stations (m), shape (n, n)."""
        return _distances(self.lat, self.lon)


@dataclass
class SyntheticCity(CityTruth):
    """The truth of a synthetic city and what was realised from it. Times are Unix epoch seconds."""

    snapshot_ts: np.ndarray = field(repr=False)
    """Instants of the snapshots kept (epoch s)."""
    snapshot_bikes: np.ndarray = field(repr=False)
    """Docked bikes at each snapshot kept: shape (n snapshots, n stations)."""
    trips: dict[str, np.ndarray] = field(repr=False)
    """Realised trips: unplug_ts, plug_ts (epoch s), from_idx, to_idx (station indices, to_idx after any
    diversion), diverted (bool), day (index into ``dates``), hour (local unplug hour)."""
    lost_pickups: dict[str, np.ndarray] = field(repr=False)
    """Pickups that found the station empty: ts, station_idx."""
    truck_moves: dict[str, np.ndarray] = field(repr=False)
    """Operator moves: ts, from_idx, to_idx, bikes."""
    record_seed: int = 0
    """Seed of the record-level details the writer invents (user codes, ages, docks, object ids)."""


def day_type_of(day: date) -> int:
    """The city's day type of a local date: 0 weekday (Mon-Fri), 1 Saturday or Sunday."""
    return 1 if day.weekday() >= 5 else 0


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

def _distances(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle distances between stations in metres, shape (n, n) (the simulator's, in km x 1000)."""
    return pairwise_km(lat, lon) * 1000.0


def _offset_m(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    """Great-circle distances in metres from (lat0, lon0)."""
    return haversine_km(lat, lon, lat0, lon0) * 1000.0


def _layout(p: CityParams, rng: np.random.Generator):
    """Station positions, capacities, ids, numbers and names."""
    half_lat, half_lon = 0.027, 0.029  # about ±3.0 km north-south, ±2.45 km east-west
    lat, lon, second = [], [], []
    while len(lat) < p.n_stations:
        if lat and not second[-1] and rng.random() < 0.03:  # a sub-station pair: 'Na' and 'Nb' metres apart
            lat.append(lat[-1] + rng.normal(0, 0.0001))
            lon.append(lon[-1] + rng.normal(0, 0.0001))
            second.append(True)
            continue
        cand_lat = MADRID_CENTRE[0] + 0.004 + rng.uniform(-half_lat, half_lat)
        cand_lon = MADRID_CENTRE[1] + 0.004 + rng.uniform(-half_lon, half_lon)
        r = _offset_m(cand_lat, cand_lon, *MADRID_CENTRE)
        if rng.random() > 0.3 + 0.7 * np.exp(-((r / 2000.0) ** 2)):
            continue  # denser in the centre
        if lat and _offset_m(np.array(lat), np.array(lon), cand_lat, cand_lon).min() < 180.0:
            continue
        lat.append(cand_lat)
        lon.append(cand_lon)
        second.append(False)
    lat, lon = np.array(lat), np.array(lon)
    # Number each physical site; a site with two stations gets 'a' and 'b'.
    site = np.cumsum(~np.array(second))
    numbers = []
    for k in range(p.n_stations):
        if second[k]:
            numbers.append(f"{site[k]}b")
        elif k + 1 < p.n_stations and second[k + 1]:
            numbers.append(f"{site[k]}a")
        else:
            numbers.append(f"{site[k]}")
    gaps = p.n_stations // 60
    ids = np.sort(rng.choice(np.arange(1, p.n_stations + gaps + 1), size=p.n_stations, replace=False))
    capacity = rng.choice(CAPACITIES, size=p.n_stations, p=CAPACITY_SHARES)
    streets = rng.choice(len(STREETS), size=p.n_stations)
    house = rng.integers(1, 120, size=p.n_stations)
    for k in np.flatnonzero(second):  # the two stations of a pair stand at the same address
        streets[k], house[k] = streets[k - 1], house[k - 1]
    names = [f"{STREETS[s].split(' ', 2)[-1] if STREETS[s].startswith('Calle de ') else STREETS[s]}"
             + (f" {numbers[k][-1].upper()}" if numbers[k][-1].isalpha() else "")
             for k, s in enumerate(streets)]
    addresses = [f"{STREETS[s]} nº {h}" for s, h in zip(streets, house)]
    return ids.astype(np.int32), numbers, names, addresses, lat, lon, capacity.astype(np.int32)


def _business_score(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    score = np.zeros_like(lat)
    for blat, blon, radius, weight in BUSINESS:
        score = np.maximum(score, weight * np.exp(-((_offset_m(lat, lon, blat, blon) / radius) ** 2)))
    return score


def _demand(p: CityParams, rng, lat, lon, capacity, business, day_types) -> np.ndarray:
    """Expected trips per (day type, local hour, origin, destination)."""
    n = len(lat)
    dist = _distances(lat, lon)
    size = capacity * rng.lognormal(0.0, 0.4, size=n) * (0.6 + business)
    offdiag = 1.0 - np.eye(n)
    gravity = np.outer(size, size) * np.exp(-dist / 1800.0) * offdiag
    residential = 1.0 - 0.85 * business
    commute = np.outer(residential, business * size) * np.exp(-dist / 2500.0) * offdiag
    commute /= commute.sum()
    hours = np.arange(24) + 0.5
    morning = np.exp(-0.5 * ((hours - 8.6) / 0.7) ** 2)
    evening = np.exp(-0.5 * ((hours - 18.8) / 1.2) ** 2)
    morning, evening = morning / morning.sum(), evening / evening.sum()
    n_weekend = int(np.count_nonzero(day_types))
    weekday_total = p.trips_per_day * len(day_types) / (len(day_types) - n_weekend + p.weekend_volume * n_weekend)
    rates = np.empty((2, 24, n, n))
    for dt in (0, 1):
        total = weekday_total * (1.0 if dt == 0 else p.weekend_volume)
        rho = p.round_trip_share[dt]
        # Round trips are added on the diagonal; the matrix stays symmetric (balanced per station).
        everyday = gravity + np.diag(rho / (1.0 - rho) * gravity.sum(axis=1))
        everyday = everyday / everyday.sum()
        base = BASE_PROFILE[dt] / BASE_PROFILE[dt].sum()
        share = p.commute_share[dt]
        for h in range(24):
            rates[dt, h] = total * ((1.0 - share) * base[h] * everyday
                                    + share / 2 * (morning[h] * commute + evening[h] * commute.T))
    return rates


def _duration_params(dist: np.ndarray):
    """Lognormal (median s, sigma) of trip durations per (origin, destination)."""
    median = np.maximum(RIDERS.detour * dist / (RIDERS.speed_kmh / 3.6) + 60.0, 120.0)
    sigma = np.full_like(dist, 0.35)
    np.fill_diagonal(median, 60.0 * RIDERS.round_trip_min)  # round trips: leisure rides
    np.fill_diagonal(sigma, 0.6)
    return median, sigma


def _return_rates(trip_rates: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Expected returns per plug hour: trips spill into later hours by their duration.

    For a trip unplugged at a uniform instant of hour h lasting D, P(plug hour >= h + k) =
    E[clip(D/3600 - (k-1), 0, 1)]; D is lognormal per (i, j), integrated on normal quantiles.
    Spill across midnight uses the same day type's earlier hours (the day types are periodic).
    """
    median, sigma = _duration_params(dist)
    z = np.array([NormalDist().inv_cdf(q) for q in np.arange(1, 65) / 65])  # 64 evenly spaced normal quantiles
    hours = median[..., None] * np.exp(sigma[..., None] * z) / SECONDS_PER_HOUR
    max_k = int(np.ceil(hours.max())) + 1
    at_least = [np.clip(hours - (k - 1), 0.0, 1.0).mean(axis=-1) for k in range(1, max_k + 1)]
    exactly = [1.0 - at_least[0]] + [at_least[k - 1] - at_least[k] for k in range(1, max_k)] + [at_least[-1]]
    returns = np.zeros(trip_rates.shape[:3])
    for k, share in enumerate(exactly):
        spilled = np.einsum("dhij,ij->dhj", trip_rates, share)
        returns += np.roll(spilled, k, axis=1)
    return returns


def _local_hour_starts(dates: list[date]) -> np.ndarray:
    """Epoch seconds of each local hour start, shape (days, 24); NaN where the hour does not exist (DST)."""
    tz = ZoneInfo(TZ)
    starts = np.full((len(dates), 24), np.nan)
    for d, day in enumerate(dates):
        for h in range(24):
            local = datetime(day.year, day.month, day.day, h, tzinfo=tz)
            if local.astimezone(ZoneInfo("UTC")).astimezone(tz).hour == h:  # skip the missing spring hour
                starts[d, h] = local.timestamp()
    return starts


def _draw_trips(p: CityParams, rng, rates, day_types, day_factor, hour_starts, dist):
    """Poisson trip counts per (day, hour, i, j) → unplug instants, durations, stations."""
    median, sigma = _duration_params(dist)
    chunks = []
    for d in range(len(day_types)):
        counts = rng.poisson(rates[day_types[d]] * day_factor[d])
        hour, origin, dest = np.nonzero(counts)
        reps = counts[hour, origin, dest]
        hour, origin, dest = np.repeat(hour, reps), np.repeat(origin, reps), np.repeat(dest, reps)
        start = hour_starts[d, hour]
        keep = ~np.isnan(start)
        hour, origin, dest, start = hour[keep], origin[keep], dest[keep], start[keep]
        unplug = start + rng.uniform(0.0, SECONDS_PER_HOUR, size=len(start))
        duration = np.round(median[origin, dest] * np.exp(sigma[origin, dest] * rng.standard_normal(len(start))))
        chunks.append((np.full(len(start), d), hour, origin, dest, unplug, duration))
    day, hour, origin, dest, unplug, duration = (np.concatenate(c) for c in zip(*chunks))
    order = np.argsort(unplug, kind="stable")
    return day[order], hour[order], origin[order], dest[order], unplug[order], duration[order]


def _apportion(weights: np.ndarray, total: float) -> np.ndarray:
    """Integers proportional to ``weights`` summing to round(total) (largest remainders)."""
    exact = weights / weights.sum() * round(total)
    whole = np.floor(exact).astype(int)
    short = int(round(total)) - whole.sum()
    whole[np.argsort(whole - exact, kind="stable")[:short]] += 1
    return whole


def _snapshot_times(p: CityParams, rng, t0: float, t_end: float) -> np.ndarray:
    """About hourly instants with EMT's drift, occasional restarts and rare missing ones."""
    times = []
    t = t0 + rng.uniform(0.0, SECONDS_PER_HOUR)
    while t < t_end:
        times.append(t)
        if rng.random() < p.restart_prob:
            t = t - (t - t0) % SECONDS_PER_HOUR + SECONDS_PER_HOUR + rng.uniform(0.0, SECONDS_PER_HOUR)
        else:
            t += SNAPSHOT_PERIOD_S + rng.normal(0.0, 0.3)
    times = np.array(times)
    return times[rng.random(len(times)) >= p.missing_snapshot_prob]


def _event_floors(t0: float, snap_t: np.ndarray, n_minutes: int) -> np.ndarray:
    """Earliest instant (epoch s) of an event in each replayed minute: the minute's start, or the
    last snapshot in it, as a snapshot reads the docks at its minute's start, before its events."""
    floor = t0 + 60.0 * np.arange(n_minutes)
    np.maximum.at(floor, ((snap_t - t0) // 60).astype(np.int64), snap_t)
    return floor


def _instants(floor: np.ndarray, t0: float, minute: np.ndarray, frac) -> np.ndarray:
    """Instants of events at ``frac`` (0..1) of their minute, after the minute's snapshot if any."""
    end = t0 + 60.0 * (minute + 1)
    return floor[minute] + frac * (end - floor[minute])


def _operator(p: CityParams, capacity: np.ndarray, n_minutes: int, read_minutes: np.ndarray):
    """The operator's trucks, as the ``trucks`` of :func:`bicimad.sim.core.replay_docks`.

    From minute 30 of every hour (a minute later while a snapshot would read the docks between a
    load and its unload, so snapshots never see bikes on a truck), truck ``k`` loads bikes at the
    k-th fullest station (at least 85 % full) down to half full, and leaves them at the k-th
    emptiest (at most 15 % full) in the next minute, up to half full.
    """
    reads = set(read_minutes.tolist())
    rounds = set()
    for minute in range(30, n_minutes, 60):
        while minute + 1 in reads:
            minute += 1
        if minute + 1 < n_minutes:
            rounds.add(minute)
    unloads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    stations = np.arange(len(capacity))

    def trucks(minute: int, bikes: np.ndarray):
        if minute in unloads:
            return unloads.pop(minute)
        if minute not in rounds:
            return None
        by_fill = np.lexsort((stations, bikes / capacity))  # emptiest first, ties by station
        load, leave = np.full((2, p.trucks), -1), np.zeros((2, p.trucks), np.int64)
        for k in range(p.trucks):
            src, dst = by_fill[-1 - k], by_fill[k]
            if bikes[src] < TRUCK_FROM_FILL * capacity[src] or bikes[dst] > TRUCK_TO_FILL * capacity[dst]:
                break
            n = min(p.truck_capacity, bikes[src] - capacity[src] // 2, capacity[dst] // 2 - bikes[dst])
            if n > 0:
                load[:, k], leave[:, k] = (src, dst), (n, -n)
        if (load[0] < 0).all():
            return None
        unloads[minute + 1] = (load[1], leave[1])
        return load[0], leave[0]

    return trucks


def _served(minute: np.ndarray, origin: np.ndarray, n: int, log: dict) -> np.ndarray:
    """Which riders found a bike: the core serves a station-minute's riders in their order
    (stable by minute and station) and logs how many of the last ones found none."""
    order = np.lexsort((origin, minute))
    key = minute[order].astype(np.int64) * n + origin[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    size = np.diff(np.r_[starts, len(key)])
    group_lost = np.zeros(len(starts), np.int64)
    group_lost[np.searchsorted(key[starts], log["lost_minute"] * n + log["lost_station"])] = log["lost_count"]
    rank = np.arange(len(key)) - np.repeat(starts, size)
    served = np.empty(len(key), bool)
    served[order] = rank < np.repeat(size - group_lost, size)
    return served


def _follow_diversions(served: np.ndarray, arrival: np.ndarray, dest: np.ndarray, n: int, log: dict):
    """Each served rider's final station and minute, and whether a full dock diverted it.

    The core's riders docking at one station in one minute are alike; the ones logged as riding
    on are taken from the last of them, riders already diverted first.
    """
    station, minute, diverted = dest.copy(), arrival.copy(), np.zeros(len(dest), bool)
    riders = np.flatnonzero(served)
    key = arrival[riders] * n + dest[riders]
    order = np.argsort(key, kind="stable")
    sorted_key, by_key = key[order], riders[order]
    rerouted: dict[int, list[int]] = {}  # arrival key -> riders heading there after a diversion
    at = log["divert_minute"] * n + log["divert_from"]
    bounds = np.flatnonzero(np.r_[True, at[1:] != at[:-1], True]) if len(at) else [0]
    for i, j in zip(bounds[:-1], bounds[1:]):
        lo, hi = np.searchsorted(sorted_key, [at[i], at[i] + 1])
        docking = by_key[lo:hi].tolist() + rerouted.pop(int(at[i]), [])
        if len(docking) < j - i:
            raise RuntimeError(f"replay: {j - i} riders diverted from {len(docking)} docking")  # a bookkeeping bug
        for rider, row in zip(docking[len(docking) - (j - i):], range(i, j)):
            station[rider], minute[rider], diverted[rider] = log["divert_to"][row], log["divert_arrival"][row], True
            rerouted.setdefault(int(log["divert_arrival"][row] * n + log["divert_to"][row]), []).append(rider)
    return station, minute, diverted


def _truck_moves(log: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The operator's moves (load minute, from, to, bikes): each load is left whole a minute later."""
    loads = np.flatnonzero(log["visit_bikes"] > 0)
    unload_at = {(m, k): i for i, (m, k) in enumerate(zip(log["visit_minute"].tolist(), log["visit_truck"].tolist()))}
    unloads = np.array([unload_at.get((log["visit_minute"][i] + 1, log["visit_truck"][i]), -1) for i in loads], dtype=np.int64)
    if len(loads) and (np.any(unloads < 0) or np.any(log["visit_bikes"][unloads] != -log["visit_bikes"][loads])):
        raise RuntimeError("replay: a truck kept bikes after its unload minute")  # half-full stations have room
    return log["visit_minute"][loads], log["visit_station"][loads], log["visit_station"][unloads], log["visit_bikes"][loads]


def _replay(truth: CityTruth, origin, dest, unplug, duration, snap_t, t0: float, t_end: float) -> dict:
    """Replay the drawn trips, the snapshot readings and the operator's trucks on the simulator's
    docks (:func:`bicimad.sim.core.replay_docks`, minute by minute), and give every event its instant."""
    p, n = truth.params, truth.n
    n_minutes = int(round((t_end - t0) / 60.0))
    pick_minute, pick_frac = np.divmod((unplug - t0) / 60.0, 1.0)
    plug_minute, plug_frac = np.divmod((unplug + duration - t0) / 60.0, 1.0)
    pick_minute = pick_minute.astype(np.int64)
    travel = np.maximum(plug_minute.astype(np.int64) - pick_minute, 1)
    network = Network.build(truth.station_id, truth.lat, truth.lon, truth.capacity, truth.initial_bikes)
    scenario = Scenario(name="synthetic-city-operator", riders=RIDERS, episode=EpisodeSpec(hours=n_minutes // 60),
                        fleet=FleetSpec(trucks=p.trucks, truck_capacity=p.truck_capacity,
                                        radius_km=float(network.distance_km.max())))
    riders = TripReplay(pd.Timestamp(t0, unit="s", tz=TZ), pick_minute, origin, dest, travel, False, n_minutes // 60)
    reads = ((snap_t - t0) // 60).astype(np.int64)
    log = replay_docks(network, scenario, riders, read_minutes=reads,
                       trucks=_operator(p, truth.capacity, n_minutes, reads) if p.trucks > 0 else None)
    served = _served(pick_minute, origin, n, log)
    station, minute, diverted = _follow_diversions(served, pick_minute + travel, dest, n, log)
    floor = _event_floors(t0, snap_t, max(n_minutes, int(minute.max(initial=0)) + 1))
    unplug_ts, plug_ts = _instants(floor, t0, pick_minute, pick_frac), _instants(floor, t0, minute, plug_frac)
    move_minute, move_from, move_to, move_bikes = _truck_moves(log)
    return {
        "snapshot_bikes": log["bikes"].astype(np.int32),
        "trips": {"unplug_ts": unplug_ts[served], "plug_ts": plug_ts[served], "from_idx": origin[served],
                  "to_idx": station[served], "diverted": diverted[served]},
        "served": served,
        "lost_pickups": {"ts": unplug_ts[~served], "station_idx": origin[~served]},
        "truck_moves": {"ts": _instants(floor, t0, move_minute, 0.0), "from_idx": move_from,
                        "to_idx": move_to, "bikes": move_bikes},
    }


def _generate_truth(seed: int | np.random.Generator, params: dict):
    """The truth, and the random streams its realisation draws from (trips, clock, files).

    Every part has its own stream, so the truth is the same whether or not trips are drawn.
    """
    p = CityParams(**params)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    seed_value = seed if isinstance(seed, int) else -1
    layout_rng, demand_rng, trip_rng, clock_rng, file_rng, fleet_rng = rng.spawn(6)

    ids, numbers, names, addresses, lat, lon, capacity = _layout(p, layout_rng)
    business = _business_score(lat, lon)
    dist = _distances(lat, lon)
    first = date.fromisoformat(p.start)
    dates = [first + timedelta(days=d) for d in range(p.days)]
    day_types = np.array([day_type_of(d) for d in dates], dtype=np.int8)
    rates = _demand(p, demand_rng, lat, lon, capacity, business, day_types)
    day_factor = demand_rng.lognormal(-0.5 * p.day_variation**2, p.day_variation, size=p.days)
    # Size the fleet so that docked bikes average `fill` of the docks: add the bikes riding at an average moment.
    median, sigma = _duration_params(dist)
    riding = (rates.sum(axis=1) * median * np.exp(sigma**2 / 2)).sum(axis=(1, 2)) / (24 * SECONDS_PER_HOUR)
    riding = float(np.average(riding, weights=np.bincount(day_types, minlength=2)))
    share = capacity * fleet_rng.lognormal(0, 0.3, size=len(capacity))
    initial = np.minimum(_apportion(share, p.fill * capacity.sum() + riding), capacity)
    truth = CityTruth(
        params=p, seed=seed_value, station_id=ids, number=numbers, name=names, address=addresses,
        lat=lat, lon=lon, capacity=capacity, business=business, dates=dates, day_type=day_types,
        day_factor=day_factor, trip_rates=rates, return_rate=_return_rates(rates, dist),
        initial_bikes=initial.astype(np.int32),
    )
    return truth, dist, trip_rng, clock_rng, file_rng


def city_truth(seed: int | np.random.Generator = 0, **params) -> CityTruth:
    """The truth of the city :func:`generate_city` (and :func:`write_city`) makes from the same
    seed and params, without drawing or replaying any trip (a few tens of ms for 210 stations)."""
    return _generate_truth(seed, params)[0]


def generate_city(seed: int | np.random.Generator = 0, **params) -> SyntheticCity:
    """Generate a synthetic city (truth and realisation) without writing anything.

    ``seed`` is an int or a numpy Generator; ``params`` are :class:`CityParams` fields.
    The same seed and params give the same city.
    """
    truth, dist, trip_rng, clock_rng, file_rng = _generate_truth(seed, params)
    p, dates, day_types = truth.params, truth.dates, truth.day_type
    hour_starts = _local_hour_starts(dates)
    day, hour, origin, dest, unplug, duration = _draw_trips(p, trip_rng, truth.trip_rates, day_types,
                                                            truth.day_factor, hour_starts, dist)
    first = dates[0]
    t0 = datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(TZ)).timestamp()
    t_end = datetime.combine(dates[-1] + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(TZ)).timestamp()
    snap_t = _snapshot_times(p, clock_rng, t0, t_end)
    realised = _replay(truth, origin, dest, unplug, duration, snap_t, t0, t_end)
    served = realised["served"]
    return SyntheticCity(
        **{f.name: getattr(truth, f.name) for f in fields(CityTruth)},
        snapshot_ts=snap_t, snapshot_bikes=realised["snapshot_bikes"],
        trips={**realised["trips"], "day": day[served], "hour": hour[served]},
        lost_pickups=realised["lost_pickups"],
        record_seed=int(file_rng.integers(2**63)),
        truck_moves=realised["truck_moves"],
    )


# ---------------------------------------------------------------------------------------------
# EMT file formats
# ---------------------------------------------------------------------------------------------

def _station_records(city: SyntheticCity, bikes: np.ndarray) -> list[dict]:
    """EMT's 13 station fields for every station holding ``bikes``."""
    return [
        emt_station_record(
            station_id=int(city.station_id[k]), number=city.number[k], name=city.name[k], address=city.address[k],
            lat=float(city.lat[k]), lon=float(city.lon[k]), capacity=int(c), bikes=int(b), free=int(c - b),
            active=True, available=True,
        )
        for k, (b, c) in enumerate(zip(bikes, city.capacity))
    ]


def _local(ts: np.ndarray) -> list[datetime]:
    tz = ZoneInfo(TZ)
    return [datetime.fromtimestamp(float(t), tz) for t in ts]


def _month_key(day: datetime | date) -> str:
    return f"{day.year:04d}{day.month:02d}"


def _write_months(lines: dict[str, list[str]], pattern: Path) -> list[Path]:
    """Write each month's JSON lines (``{"YYYYMM": [line, ...]}``) to ``pattern`` with the month
    filled in, atomically; returns the paths."""
    paths = []
    for month, month_lines in lines.items():
        path = pattern.with_name(pattern.name.format(month=month))
        with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(month_lines) + "\n")
        paths.append(path)
    return paths


def _write_stations(city: SyntheticCity, folder: Path) -> list[Path]:
    path = folder / "meta" / "stations.json"
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump({"stations": _station_records(city, city.initial_bikes)}, fh, ensure_ascii=False, indent=4)
        fh.write("\n")
    return [path]


def _write_snapshots(city: SyntheticCity, folder: Path) -> list[Path]:
    lines: dict[str, list[str]] = {}
    for when, bikes in zip(_local(city.snapshot_ts), city.snapshot_bikes):
        stamp = when.replace(tzinfo=None).isoformat(timespec="microseconds")
        record = {"_id": stamp, "stations": _station_records(city, bikes)}
        lines.setdefault(_month_key(when), []).append(json.dumps(record))
    return _write_months(lines, folder / "stations" / "Bicimad_Estacions_{month}.json")


TRIP_LINE = (
    '{{ "_id" : {{ "$oid" : "{oid}" }}, "user_day_code" : "{user}", "idplug_base" : {plug_base}, '
    '"user_type" : {user_type}, "idunplug_base" : {unplug_base}, "travel_time" : {travel}, '
    '"idunplug_station" : {unplug_station}, "ageRange" : {age}, "idplug_station" : {plug_station}, '
    '"unplug_hourTime" : {{ "$date" : "{hour}" }}, "zip_code" : "{zip}" }}'
)


def _write_trips(city: SyntheticCity, folder: Path) -> list[Path]:
    rng = np.random.default_rng(city.record_seed)
    trips = city.trips
    days = city.params.days if city.params.trip_days is None else min(city.params.trip_days, city.params.days)
    keep = np.flatnonzero(trips["day"] < days)
    n = len(keep)
    from_idx, to_idx = trips["from_idx"][keep], trips["to_idx"][keep]
    # Whole seconds, at least one (EMT's): a ride of under a minute ends in the next replayed minute.
    travel = np.maximum(np.round(trips["plug_ts"][keep] - trips["unplug_ts"][keep]), 1).astype(np.int64)
    hour_stamp = np.floor(trips["unplug_ts"][keep] / SECONDS_PER_HOUR) * SECONDS_PER_HOUR
    user_type = rng.choice([1, 2, 3], size=n, p=[0.915, 0.01, 0.075])
    age = rng.choice(np.arange(7), size=n, p=[0.35, 0.01, 0.02, 0.12, 0.25, 0.23, 0.02])
    has_zip = rng.random(n) < 0.6
    zips = rng.integers(1, 55, size=n)
    # Riders take a few trips a day: each day's trips are shared among ~0.7 x as many riders.
    rider = (rng.random(n) * np.maximum(1, 0.7 * np.bincount(trips["day"][keep])[trips["day"][keep]])).astype(int)
    oid_tail = rng.integers(0, 2**63, size=n, dtype=np.int64)
    cap = city.capacity
    plug_base = (rng.random(n) * cap[to_idx]).astype(int) + 1
    unplug_base = (rng.random(n) * cap[from_idx]).astype(int) + 1
    stamps: dict[float, str] = {}
    lines: dict[str, list[str]] = {}
    ids = city.station_id
    for r, k in enumerate(keep.tolist()):
        h = float(hour_stamp[r])
        if h not in stamps:
            local = datetime.fromtimestamp(h, ZoneInfo(TZ))
            stamps[h] = local.strftime("%Y-%m-%dT%H:%M:%S.000%z")
        day = int(trips["day"][k])
        user = hashlib.sha256(f"{city.record_seed}:{city.dates[day]}:{rider[r]}".encode()).hexdigest()
        oid = f"{int(trips['plug_ts'][k]) & 0xFFFFFFFF:08x}{int(oid_tail[r]) & 0xFFFFFFFFFFFFFFFF:016x}"
        line = TRIP_LINE.format(
            oid=oid, user=user, plug_base=plug_base[r], user_type=user_type[r], unplug_base=unplug_base[r],
            travel=travel[r], unplug_station=ids[from_idx[r]], age=age[r], plug_station=ids[to_idx[r]],
            hour=stamps[h], zip=f"280{zips[r]:02d}" if has_zip[r] else "",
        )
        lines.setdefault(stamps[h][:4] + stamps[h][5:7], []).append(line)
    return _write_months(lines, folder / "trips" / "{month}_Usage_Bicimad.json")


#: Names this module writes; stale ones from an earlier city are removed so folders never mix cities.
_OWN_FILES = re.compile(r"^(stations\.json|Bicimad_Estacions_\d{6}\.json|\d{6}_Usage_Bicimad\.json)$")


def write_city(raw_root: Path, *, seed: int = 0, **params) -> list[Path]:
    """Generate a city and write it under ``raw_root/synthetic/`` in EMT's raw formats.

    Returns the paths written (station list, monthly snapshot files, monthly trip files).
    Each file is written atomically; files of an earlier synthetic city that this one does not
    rewrite (other months) are removed, so the folder always holds exactly one city.
    """
    city = generate_city(seed, **params)
    folder = Path(raw_root) / "synthetic"
    paths = _write_stations(city, folder) + _write_snapshots(city, folder) + _write_trips(city, folder)
    written = set(paths)
    for sub in ("meta", "stations", "trips"):
        for old in (folder / sub).glob("*.json"):
            if old not in written and _OWN_FILES.match(old.name):
                old.unlink()
    return paths
