"""Generation, part 1: the city's truth (stations, demand, durations, the fleet), drawn from
the seed's layout, demand and fleet streams; cheap, no trip drawn (see the package docstring)."""

from __future__ import annotations

from datetime import date, timedelta
from statistics import NormalDist

import numpy as np

from bicimad.geo import MADRID_CENTRE, haversine_km, pairwise_km
from bicimad.opendata.synthetic.city import (
    BASE_PROFILE,
    BUSINESS,
    CAPACITIES,
    CAPACITY_SHARES,
    RIDERS,
    SECONDS_PER_HOUR,
    STREETS,
    SYNTHETIC_MARK,
    CityParams,
    CityTruth,
    day_type_of,
)


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
    names, addresses = _names(rng.choice(len(STREETS), size=p.n_stations), rng.integers(1, 120, size=p.n_stations),
                              numbers, second)
    return ids.astype(np.int32), numbers, names, addresses, lat, lon, capacity.astype(np.int32)


def _names(streets: np.ndarray, house: np.ndarray, numbers: list[str], second: list[bool]) -> tuple[list[str], list[str]]:
    """Station names and addresses, each ending in :data:`SYNTHETIC_MARK`: a street and house number
    (the next free number where another site has it), as ``"Mayor 37 [synthetic]"``; the two
    stations of a sub-station pair stand at one address, named ``... 37 A`` and ``... 37 B``."""
    sites: list[tuple[int, int]] = []  # (street, number) of each site, in order
    names, addresses = [], []
    for k, (street, number) in enumerate(zip(streets.tolist(), house.tolist())):
        if second[k]:  # the pair's second station: its first one's site
            street, number = sites[-1]
        else:
            while (street, number) in sites:
                number += 1
            sites.append((street, number))
        full = STREETS[street]
        short = full.removeprefix("Calle de ")
        pair = f" {numbers[k][-1].upper()}" if numbers[k][-1].isalpha() else ""
        names.append(f"{short} {number}{pair}{SYNTHETIC_MARK}")
        addresses.append(f"{full} nº {number}{SYNTHETIC_MARK}")
    return names, addresses


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


def _apportion(weights: np.ndarray, total: float) -> np.ndarray:
    """Integers proportional to ``weights`` summing to round(total) (largest remainders)."""
    exact = weights / weights.sum() * round(total)
    whole = np.floor(exact).astype(int)
    short = int(round(total)) - whole.sum()
    whole[np.argsort(whole - exact, kind="stable")[:short]] += 1
    return whole


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
