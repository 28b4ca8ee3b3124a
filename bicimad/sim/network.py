"""The station network the simulator runs on, and how truck bases are chosen.

A :class:`Network` is the station order every array of the simulator follows: EMT ids,
coordinates, docks in service, availability, and the docked bikes at the start (from a
snapshot). Distances are straight-line (haversine) kilometres; the simulator multiplies
them by the scenario's detour factor to get a road-distance proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from bicimad.geo import pairwise_km


@dataclass(frozen=True, eq=False)
class Network:
    """Stations in the simulator's order, with the docked bikes at the start of an episode."""

    station_ids: np.ndarray  #: (n,) int32 EMT station ids
    lat: np.ndarray          #: (n,) WGS84
    lon: np.ndarray          #: (n,) WGS84
    capacity: np.ndarray     #: (n,) int32 docks in service
    bikes: np.ndarray        #: (n,) int32 docked bikes at the start
    available: np.ndarray    #: (n,) bool station in service

    def __post_init__(self):
        n = len(self.station_ids)
        for name in ("lat", "lon", "capacity", "bikes", "available"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"network: {name} has {len(getattr(self, name))} values for {n} stations")
        if n < 1:
            raise ValueError("network: no stations")
        if len(np.unique(self.station_ids)) != n:
            raise ValueError("network: duplicate station ids")
        if np.any(self.capacity < 1):
            bad = self.station_ids[np.argmax(self.capacity < 1)]
            raise ValueError(f"network: station {bad} has capacity < 1")
        if np.any((self.bikes < 0) | (self.bikes > self.capacity)):
            bad = self.station_ids[np.argmax((self.bikes < 0) | (self.bikes > self.capacity))]
            raise ValueError(f"network: station {bad} has bikes outside 0..capacity")
        if not (np.all(np.isfinite(self.lat)) and np.all(np.isfinite(self.lon))):
            bad = self.station_ids[np.argmax(~np.isfinite(self.lat) | ~np.isfinite(self.lon))]
            raise ValueError(f"network: station {bad} has no coordinates")

    @classmethod
    def build(cls, station_ids, lat, lon, capacity, bikes=None, available=None) -> Network:
        """Network from array-likes; bikes default to 40 % of capacity, all stations available."""
        capacity = np.asarray(capacity, dtype=np.int32)
        if bikes is None:
            bikes = np.round(0.4 * capacity)
        if available is None:
            available = np.ones(len(capacity), dtype=bool)
        return cls(
            station_ids=np.asarray(station_ids, dtype=np.int32),
            lat=np.asarray(lat, dtype=float),
            lon=np.asarray(lon, dtype=float),
            capacity=capacity,
            bikes=np.asarray(bikes, dtype=np.int32),
            available=np.asarray(available, dtype=bool),
        )

    @classmethod
    def from_tables(cls, stations, snapshot=None) -> Network:
        """Network from a ``stations`` table and optionally one snapshot instant's rows.

        With a snapshot the network is the stations present in it, capacity = docks in service
        (bikes + free docks where known, else the total) and bikes = its docked bikes.
        """
        stations = stations.dropna(subset=["lat", "lon"]).drop_duplicates("station_id").set_index("station_id")
        if snapshot is None:
            ids = stations.index.to_numpy()
            cap = stations["capacity"].to_numpy()
            return cls.build(ids, stations["lat"], stations["lon"], cap)
        snap = snapshot.drop_duplicates("station_id").set_index("station_id")
        ids = np.array(sorted(set(snap.index) & set(stations.index)), dtype=np.int32)
        if len(ids) == 0:
            raise ValueError("network: no station of the snapshot is in the stations table")
        snap = snap.loc[ids]
        bikes = snap["bikes"].to_numpy(dtype=np.int64)
        total = snap["capacity"].fillna(stations.loc[ids, "capacity"]).to_numpy(dtype=np.int64)
        free = snap["free_docks"].to_numpy(dtype=float) if "free_docks" in snap else np.full(len(ids), np.nan)
        in_service = np.where(np.isnan(free), total, bikes + np.nan_to_num(free)).astype(np.int64)
        cap = np.maximum(np.maximum(in_service, bikes), 1)
        avail = snap["available"].fillna(True).to_numpy(dtype=bool) if "available" in snap else None
        return cls.build(ids, stations.loc[ids, "lat"], stations.loc[ids, "lon"], cap, bikes, avail)

    @property
    def n(self) -> int:
        return len(self.station_ids)

    @cached_property
    def distance_km(self) -> np.ndarray:
        """(n, n) straight-line km between stations."""
        return pairwise_km(self.lat, self.lon)

    @cached_property
    def neighbours(self) -> np.ndarray:
        """(n, n-1) the other stations of each station, nearest first."""
        d = self.distance_km.copy()
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, : self.n - 1]

    def index_of(self, station_ids) -> np.ndarray:
        """Positions of EMT ids in the network order; a KeyError names the unknown ids."""
        lookup = {int(s): i for i, s in enumerate(self.station_ids)}
        ids = np.atleast_1d(np.asarray(station_ids))
        missing = sorted({int(s) for s in ids if int(s) not in lookup})
        if missing:
            raise KeyError(f"station id(s) not in the network: {missing[:10]}")
        return np.array([lookup[int(s)] for s in ids], dtype=np.int64)

    def with_bikes(self, bikes) -> Network:
        """The same stations starting from other docked bikes."""
        return Network(self.station_ids, self.lat, self.lon, self.capacity,
                       np.asarray(bikes, dtype=np.int32), self.available)


def synthetic_city(n_stations: int = 210, seed: int = 0, trips_per_day: float | None = None):
    """The truth (:class:`bicimad.opendata.synthetic.CityTruth`) of the embedded synthetic city
    with ``n_stations`` stations (and ``trips_per_day``, None: the city's default): the city
    ``write_city(seed=seed, n_stations=n_stations, ...)`` writes. Cached, as comparisons and
    what-if sweeps build the same city for every day and task; its arrays are read-only."""
    return _cached_city(int(n_stations), int(seed), None if trips_per_day is None else float(trips_per_day))


@lru_cache(maxsize=8)
def _cached_city(n_stations: int, seed: int, trips_per_day: float | None):
    from bicimad.opendata.synthetic import city_truth

    params = {"n_stations": n_stations} if trips_per_day is None else {"n_stations": n_stations,
                                                                       "trips_per_day": trips_per_day}
    city = city_truth(seed, **params)
    for value in vars(city).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return city


def synthetic_network(n_stations: int = 210, seed: int = 0) -> Network:
    """The stations of the embedded synthetic city (:func:`synthetic_city`): its EMT ids,
    positions, capacities and docked bikes at the start."""
    city = synthetic_city(n_stations, seed)
    return Network.build(city.station_id.copy(), city.lat.copy(), city.lon.copy(), city.capacity.copy(),
                         city.initial_bikes.copy())


def choose_bases(network: Network, k: int, weights=None, radius_km: float = 3.5, iters: int = 50) -> np.ndarray:
    """Truck bases by demand-weighted k-medoids (deterministic), as station indices.

    Cost of a station is its weight times the distance to its base, with a large penalty
    when that distance exceeds ``radius_km``, so the bases cover every station that can be
    covered and sit where the demand is. Start: greedy BUILD (add the medoid that lowers
    the cost most); then alternate assignment and the best medoid per cluster until stable.
    """
    n = network.n
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(k, dtype=np.int64) % n
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float) + 1e-9
    d = network.distance_km
    cost = d + np.where(d > radius_km, 1000.0, 0.0)  # (candidate medoid, station)
    medoids: list[int] = []
    best = np.full(n, np.inf)
    for _ in range(k):
        total = (np.minimum(best[None, :], cost) * w[None, :]).sum(axis=1)
        total[medoids] = np.inf
        m = int(np.argmin(total))
        medoids.append(m)
        best = np.minimum(best, cost[m])
    medoids_arr = np.array(medoids)
    for _ in range(iters):
        assign = np.argmin(cost[medoids_arr], axis=0)
        new = medoids_arr.copy()
        for c in range(k):
            members = np.flatnonzero(assign == c)
            if len(members):
                within = (cost[np.ix_(members, members)] * w[members][None, :]).sum(axis=1)
                new[c] = members[np.argmin(within)]
        if np.array_equal(new, medoids_arr) or len(set(new.tolist())) < k:
            break
        medoids_arr = new
    return medoids_arr.astype(np.int64)
