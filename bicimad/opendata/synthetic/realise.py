"""Generation, part 2: the realisation: trips drawn from the truth, the snapshot clock, and
the docks replayed on the simulator's core with the operator's trucks (see the package docstring)."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.opendata.synthetic.city import (
    RIDERS,
    SECONDS_PER_HOUR,
    SNAPSHOT_PERIOD_S,
    TRUCK_FROM_FILL,
    TRUCK_TO_FILL,
    CityParams,
    CityTruth,
    SyntheticCity,
)
from bicimad.opendata.synthetic.truth import _duration_params, _generate_truth
from bicimad.sim.core import replay_docks
from bicimad.sim.network import Network
from bicimad.sim.riders import TripReplay
from bicimad.sim.scenario import EpisodeSpec, FleetSpec, Scenario


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
        # Row 0: this minute's visits (load), row 1: the next minute's (unload).
        station, take = np.full((2, p.trucks), -1), np.zeros((2, p.trucks), np.int64)
        for k in range(p.trucks):
            src, dst = by_fill[-1 - k], by_fill[k]
            if bikes[src] < TRUCK_FROM_FILL * capacity[src] or bikes[dst] > TRUCK_TO_FILL * capacity[dst]:
                break
            n = min(p.truck_capacity, bikes[src] - capacity[src] // 2, capacity[dst] // 2 - bikes[dst])
            if n > 0:
                station[:, k], take[:, k] = (src, dst), (n, -n)
        if (station[0] < 0).all():
            return None
        unloads[minute + 1] = (station[1], take[1])
        return station[0], take[0]

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
