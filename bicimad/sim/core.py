"""The simulation core: ``E`` independent copies of one network, stepped in lockstep.

Both the scalar env (``E = 1``), the vector env and :func:`bicimad.sim.rollout.run_episode`
drive this one class, so they cannot disagree. State lives in preallocated numpy arrays
with a leading env axis (station arrays are flattened to ``env * n + station``).

Time runs in minutes. Each hour splits into ``visits_per_hour`` slots; at a slot's start
every truck may be sent to one station, where it arrives after its travel time (at the
latest in the slot's last minute) and loads or unloads bikes. Within a minute the order is:
truck visits, then returns (riders docking), then pickups. A return to a full station is
diverted: the rider rides on to the nearest station with a free dock. A pickup at an empty
station is lost, unless ``walk_km`` > 0 and a station that close still has a bike.
With ``riders.unusable_bike_share`` ``q`` > 0, a rider at a station with ``b`` bikes finds none
usable with chance ``q ** b`` (and walks on or is lost the same way); with
``riders.unusable_dock_share`` ``r`` > 0, a returning rider at ``f`` free docks finds none usable
with chance ``r ** f`` and is diverted. Each rider's draw for the first is part of the riders'
stream (common to every planner); each env's dock draws come from its own generator, seeded by
its riders', so a copy draws the same whichever other copies it is simulated with.
With ``riders.in_transit_at_start`` the day starts with riders already riding, drawn after the
stream: they dock in the first minutes without having taken a bike in the episode.
A station-hour is empty (full) if the fewest (most) bikes seen in it, after every truck visit,
docking and pickup minute and at the hour's start, is 0 (the capacity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bicimad.opendata.schemas import OCCUPANCY_STATES
from bicimad.sim.interface import FleetView, Plan
from bicimad.sim.network import Network, choose_bases
from bicimad.sim.occupancy import problem_share
from bicimad.sim.riders import Demand, RiderStream
from bicimad.sim.scenario import Scenario

#: Per-slot quantities reported in ``info`` (one value per env).
SLOT_KEYS = ("lost_trips", "diverted_returns", "walked_pickups", "bikes_moved", "truck_km",
             "new_problem_hours", "rejected_visits")


class FleetSim:
    """``n_envs`` copies of the network with the scenario's trucks, fed by ``riders``."""

    def __init__(self, network: Network, scenario: Scenario, riders, n_envs: int = 1,
                 forecast: Demand | None = None):
        self.network, self.scenario = network, scenario
        self.E, self.n, self.k = int(n_envs), network.n, scenario.fleet.trucks
        self.sampler = riders.sampler(network, scenario)
        self.H = self.sampler.n_hours
        self.hours = self.sampler.hours
        self.T = self.H * 60
        self.hour_of_day = self.hours.hour.to_numpy()
        self.vph = scenario.fleet.visits_per_hour
        self.slot_edges = [round(60 * s / self.vph) for s in range(self.vph + 1)]
        self.n_steps = self.H * self.vph
        self.fill_levels = np.asarray(scenario.episode.fill_levels, dtype=float)

        # What a planner or policy may see: the forecast, aligned to the episode's hours.
        self.forecast = forecast if forecast is not None else (riders if isinstance(riders, Demand) else None)
        if self.forecast is not None:
            self.fc_pickup, self.fc_return = self.forecast.rates_at(self.hours)
        else:
            self.fc_pickup = self.fc_return = np.zeros((self.H, self.n))

        self.road_km = network.distance_km * scenario.riders.detour
        self.truck_minutes = self.road_km / scenario.fleet.speed_kmh * 60.0
        self.ride_minutes = np.maximum(1, np.ceil(self.road_km / scenario.riders.speed_kmh * 60)).astype(np.int64)
        self.bases = self._bases()
        self.reachable = (network.distance_km[self.bases] <= scenario.fleet.radius_km) & network.available[None, :]
        self._near = network.neighbours[:, :16]
        cap = network.capacity
        self._obs_stations = np.r_[np.minimum(cap / scenario.episode.capacity_scale, 1.0), network.available]
        self._obs_forecast = np.c_[self.fc_pickup / (self.fc_pickup + cap), self.fc_return / (self.fc_return + cap)]
        self._q_bike = float(scenario.riders.unusable_bike_share)
        self._q_dock = float(scenario.riders.unusable_dock_share)
        walk = scenario.riders.walk_km
        self.walk_to = [[int(j) for j in network.neighbours[i] if network.distance_km[i, j] <= walk]
                        for i in range(self.n)] if walk > 0 else None

        E, n, k = self.E, self.n, self.k
        self.cap = np.tile(network.capacity.astype(np.int64), E)
        self.avail = np.tile(network.available, E)
        self.bikes = np.zeros(E * n, np.int64)
        self.low_h = np.zeros(E * n, np.int64)   # fewest bikes seen this hour (0: empty)
        self.high_h = np.zeros(E * n, np.int64)  # most bikes seen this hour (capacity: full)
        self.lost_h = np.zeros(E * n, np.int64)
        self.div_h = np.zeros(E * n, np.int64)
        self.truck_pos = np.zeros((E, k), np.int64)
        self.truck_load = np.zeros((E, k), np.int64)
        self.visits_left = np.zeros((E, k), np.int64)
        self.visit_station = np.full((E, k), -1, np.int64)
        self.visit_minute = np.full((E, k), -1, np.int64)
        self.visit_take = np.zeros((E, k), np.int64)
        self.visit_level = np.full((E, k), np.nan)
        self.state_hist = np.zeros((E, self.H, n), np.int8)
        self.lost_hist = np.zeros((E, self.H, n), np.int32)
        self.div_hist = np.zeros((E, self.H, n), np.int32)
        self.class_counts = np.zeros((E, len(OCCUPANCY_STATES)), np.int64)
        self.totals = {key: np.zeros(E) for key in SLOT_KEYS}
        self._walked = np.zeros(E, np.int64)
        self._moved = np.zeros(E, np.int64)
        self._km = np.zeros(E)
        self._rejected = np.zeros(E, np.int64)
        self.ring = np.zeros((1, E * n), np.int64)  # sized at reset (see _load_streams)
        self.beyond = np.zeros(E, np.int64)  # riders whose trip ends after the episode
        self.t = 0
        self.step_index = 0

    # ------------------------------------------------------------------ set-up
    def _bases(self) -> np.ndarray:
        fleet = self.scenario.fleet
        if fleet.bases:
            try:
                return self.network.index_of(list(fleet.bases))
            except KeyError as exc:
                raise ValueError(f"scenario {self.scenario.name!r}: fleet.bases: {exc.args[0]}") from None
        weights = (self.fc_pickup + self.fc_return).sum(axis=0) if self.forecast is not None else None
        return choose_bases(self.network, self.k, weights, fleet.radius_km)

    def reset(self, rngs: list[np.random.Generator], bikes: np.ndarray | None = None) -> None:
        """Start a new episode: draw each env's riders from its own generator."""
        if len(rngs) != self.E:
            raise ValueError(f"reset: {len(rngs)} generators for {self.E} envs")
        self._load_streams([self.sampler.draw(rng) for rng in rngs])
        if self._q_bike > 0 or self._q_dock > 0:  # drawn after the stream: q = r = 0 leaves the riders as they were
            self.ev_u = np.empty(len(self.ev_origin))
            self.ev_u[self._ev_pos] = np.concatenate([rng.random(size) for rng, size in zip(rngs, self._ev_sizes)])
            self._dock_rngs = [np.random.default_rng(int(rng.integers(2**63))) for rng in rngs]
        if self.scenario.riders.in_transit_at_start:
            for e, rng in enumerate(rngs):
                minute, station = self.sampler.draw_in_transit(rng)
                minute = np.minimum(minute, self._ring_len - 2)  # never a full ring ahead
                np.add.at(self._ring_flat, minute * (self.E * self.n) + e * self.n + station, 1)
        start = self.network.bikes if bikes is None else np.asarray(bikes)
        self.bikes[:] = np.broadcast_to(start, (self.E, self.n)).ravel()
        if np.any(self.bikes < 0) or np.any(self.bikes > self.cap):
            raise ValueError("reset: initial bikes outside 0..capacity")
        self.truck_pos[:] = self.bases[None, :]
        self.truck_load[:] = self.scenario.fleet.initial_load
        self.visit_minute[:] = -1
        self.state_hist[:] = 0
        self.lost_hist[:] = 0
        self.div_hist[:] = 0
        self.class_counts[:] = 0
        for v in self.totals.values():
            v[:] = 0
        self.beyond[:] = 0
        self.t = 0
        self.step_index = 0

    def _load_streams(self, streams: list[RiderStream]) -> None:
        """Merge the envs' streams (each sorted by minute) into one pickup order by minute,
        by counting (a stable merge in O(events)); size the arrival ring."""
        E, T = self.E, self.T
        sizes = np.array([len(s) for s in streams])
        env = np.repeat(np.arange(E), sizes)
        minute = np.concatenate([s.minute for s in streams]).astype(np.int64)
        counts = np.bincount(env * T + minute, minlength=E * T).reshape(E, T)
        first_in_env = np.cumsum(counts, axis=1) - counts                   # (E, T) start within own stream
        merged_start = (np.cumsum(counts.T.ravel()) - counts.T.ravel()).reshape(T, E)  # start in merged order
        local = np.arange(len(env)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        pos = merged_start[minute, env] + local - first_in_env[env, minute]
        n = self.n

        def merged(values, dtype=np.int64):
            out = np.empty(len(pos), dtype)
            out[pos] = values
            return out

        self._ev_pos, self._ev_sizes = pos, sizes
        self.ev_origin = merged(env * n + np.concatenate([s.origin for s in streams]))
        self.ev_dest = merged(env * n + np.concatenate([s.dest for s in streams]))
        self.ev_rank = merged(np.concatenate([s.rank for s in streams]), np.int32)
        travel = np.concatenate([s.travel for s in streams]).astype(np.int64)
        self.ev_arrival = merged(minute + travel)
        self.ev_ptr = np.r_[0, np.cumsum(counts.sum(axis=0))]
        self._ptr = self.ev_ptr.tolist()  # scalar lookups every minute: Python ints are faster
        # Riders (and diverted riders) still riding, by arrival minute modulo the ring length;
        # an arrival is never a full ring ahead, and those after the episode's end wait in `beyond`.
        longest = max(int(travel.max()) if len(travel) else 1, int(self.ride_minutes.max()))
        length = min(longest, T) + 2
        if self.ring.shape != (length, E * n):
            self.ring = np.zeros((length, E * n), np.int64)
        else:
            self.ring[:] = 0
        self._ring_flat = self.ring.reshape(-1)
        self._ring_len = length
        # Each rider's cell in the ring, precomputed; riders arriving after the end: -1 - env.
        self.ev_slot = np.where(self.ev_arrival < T, (self.ev_arrival % length) * (E * n) + self.ev_dest,
                                -1 - self.ev_dest // n)
        late = np.flatnonzero(self.ev_slot < 0)
        self._first_late = int(late[0]) if len(late) else len(self.ev_slot)

    # ------------------------------------------------------------------ views
    @property
    def hour(self) -> int:
        return self.step_index // self.vph

    @property
    def slot(self) -> int:
        return self.step_index % self.vph

    @property
    def done(self) -> bool:
        return self.step_index >= self.n_steps

    def bikes2d(self) -> np.ndarray:
        return self.bikes.reshape(self.E, self.n)

    def in_transit(self) -> np.ndarray:
        """(E,) riders on a bike now (picked up, not docked yet; diverted ones included)."""
        return self.ring.reshape(-1, self.E, self.n).sum(axis=(0, 2)) + self.beyond

    def total_bikes(self) -> np.ndarray:
        """(E,) docked + on trucks + in transit: constant over an episode."""
        return self.bikes2d().sum(axis=1) + self.truck_load.sum(axis=1) + self.in_transit()

    def action_mask(self) -> np.ndarray:
        """(E, k, n + 1) bool: stations each truck may visit now; the last column is "idle"."""
        mask = np.zeros((self.E, self.k, self.n + 1), bool)
        left = self.visits_left if self.slot else np.full((self.E, self.k), self.vph)
        can_visit = (left > 0) & (not self.done)
        mask[:, :, : self.n] = self.reachable[None, :, :] & can_visit[:, :, None]
        mask[:, :, self.n] = True
        return mask

    @property
    def observation_size(self) -> int:
        return 5 * self.n + 4 * self.k + 4

    def observe(self) -> np.ndarray:
        """(E, observation_size) float32 in [-1, 1]; layout in the env docstring."""
        n, k = self.n, self.k
        h = min(self.hour, self.H - 1)
        cap = self.network.capacity
        obs = np.empty((self.E, self.observation_size), np.float32)
        obs[:, :n] = self.bikes2d() / cap
        obs[:, n:3 * n] = self._obs_stations  # capacity and availability never change
        obs[:, 3 * n:5 * n] = self._obs_forecast[h]
        o = 5 * n
        obs[:, o:o + k] = self.truck_load / self.scenario.fleet.truck_capacity
        obs[:, o + k:o + 2 * k] = self.truck_pos / max(n - 1, 1)
        obs[:, o + 2 * k:o + 3 * k] = self.bases / max(n - 1, 1)
        left = self.visits_left if self.slot else np.full((self.E, k), self.vph)
        obs[:, o + 3 * k:o + 4 * k] = left / self.vph
        o += 4 * k
        day_fraction = (self.hour_of_day[h] + self.slot / self.vph) / 24.0
        obs[:, o] = np.sin(2 * np.pi * day_fraction)
        obs[:, o + 1] = np.cos(2 * np.pi * day_fraction)
        obs[:, o + 2] = self.slot / self.vph
        obs[:, o + 3] = self.step_index / self.n_steps
        return obs

    def occupancy_counts(self) -> np.ndarray:
        """(E, 4) finished station-hours per class, in ``OCCUPANCY_STATES`` order."""
        return self.class_counts.copy()

    # ------------------------------------------------------------------ stepping
    def step(self, station: np.ndarray, take: np.ndarray | None = None, level: np.ndarray | None = None) -> dict:
        """Run one slot. ``station`` (E, k): index to visit or -1 (idle). Quantity per truck:
        ``take`` (bikes to load, negative to unload) or ``level`` (target fill fraction; NaN
        falls back to ``take``). Returns the slot's quantities per env (``SLOT_KEYS``)."""
        if self.done:
            raise RuntimeError("episode is over: reset first")
        hour, slot = self.hour, self.slot
        if slot == 0:
            self._begin_hour()
        self._walked[:] = 0
        self._moved[:] = 0
        self._km[:] = 0
        self._rejected[:] = 0

        t0 = hour * 60 + self.slot_edges[slot]
        t1 = hour * 60 + self.slot_edges[slot + 1]
        self._schedule(np.asarray(station, dtype=np.int64).reshape(self.E, self.k), take, level, t0, t1)
        visit_minutes = set(self.visit_minute[self.visit_minute >= t0].tolist()) if self.k else ()
        for t in range(t0, t1):
            self.t = t
            if t in visit_minutes:
                self._visits(t)
                np.minimum(self.low_h, self.bikes, out=self.low_h)
                np.maximum(self.high_h, self.bikes, out=self.high_h)
            self._minute(t)
        self.t = t1

        # Hour-so-far counts now, minus what earlier slots of the hour already reported.
        so_far = np.stack([self.lost_h.reshape(self.E, self.n).sum(axis=1),
                           self.div_h.reshape(self.E, self.n).sum(axis=1), self._problems()])
        lost, diverted, problems = so_far - self._reported
        self._reported = so_far
        out = {
            "lost_trips": lost,
            "diverted_returns": diverted,
            "walked_pickups": self._walked.copy(),
            "bikes_moved": self._moved.copy(),
            "truck_km": self._km.copy(),
            "new_problem_hours": problems,
            "rejected_visits": self._rejected.copy(),
        }
        for key, value in out.items():
            self.totals[key] += value
        self.step_index += 1
        if self.slot == 0:
            self._end_hour(hour)
        return out

    def _problems(self) -> np.ndarray:
        """(E,) station-hours of the current hour that have been empty or full so far."""
        return ((self.low_h == 0) | (self.high_h >= self.cap)).reshape(self.E, self.n).sum(axis=1)

    def _begin_hour(self) -> None:
        self.low_h[:] = self.bikes
        self.high_h[:] = self.bikes
        self._reported = np.zeros((3, self.E), np.int64)
        self.lost_h[:] = 0
        self.div_h[:] = 0
        self.visits_left[:] = self.vph

    def _end_hour(self, hour: int) -> None:
        state = ((self.low_h == 0).astype(np.int8) + 2 * (self.high_h >= self.cap).astype(np.int8)).reshape(self.E, self.n)
        self.state_hist[:, hour] = state
        self.lost_hist[:, hour] = self.lost_h.reshape(self.E, self.n)
        self.div_hist[:, hour] = self.div_h.reshape(self.E, self.n)
        for c in range(len(OCCUPANCY_STATES)):
            self.class_counts[:, c] += (state == c).sum(axis=1)

    def _schedule(self, station, take, level, t0: int, t1: int) -> None:
        """Validate and time this slot's visits; rejected ones (outside the radius, no visit
        left, unknown station) leave the truck idle and are counted."""
        E, k = self.E, self.k
        self.visit_minute[:] = -1
        if k == 0:
            return
        wants = station >= 0
        valid = wants & (station < self.n)
        safe = np.where(valid, station, 0)
        valid &= self.reachable[np.arange(k)[None, :], safe] & (self.visits_left > 0)
        self._rejected += (wants & ~valid).sum(axis=1)
        e_idx, j_idx = np.nonzero(valid)
        if len(e_idx) == 0:
            return
        target = station[e_idx, j_idx]
        here = self.truck_pos[e_idx, j_idx]
        travel = np.ceil(self.truck_minutes[here, target] - 1e-9).astype(np.int64)
        self.visit_minute[e_idx, j_idx] = np.minimum(t0 + travel, t1 - 1)
        self.visit_station[e_idx, j_idx] = target
        self.visit_take[e_idx, j_idx] = 0 if take is None else np.asarray(take).reshape(E, k)[e_idx, j_idx]
        self.visit_level[e_idx, j_idx] = np.nan if level is None else np.asarray(level, float).reshape(E, k)[e_idx, j_idx]
        np.add.at(self._km, e_idx, self.road_km[here, target])
        self.visits_left[e_idx, j_idx] -= 1

    def _visits(self, t: int) -> None:
        """Trucks arriving at minute ``t`` load or unload (two at one station: in truck order)."""
        es, js = np.nonzero(self.visit_minute == t)
        if len(es) == 0:
            return
        flat = es * self.n + self.visit_station[es, js]
        if len(flat) == 1 or len(set(flat.tolist())) == len(flat):
            self._transfer(es, js, flat)
        else:
            for i in range(len(es)):
                self._transfer(es[i:i + 1], js[i:i + 1], flat[i:i + 1])

    def _transfer(self, es: np.ndarray, js: np.ndarray, flat: np.ndarray) -> None:
        b = self.bikes
        have, room = b[flat], self.cap[flat]
        target = np.rint(self.visit_level[es, js] * room)  # NaN where the visit gives a bike count
        wanted = np.where(np.isnan(target), self.visit_take[es, js], have - target).astype(np.int64)
        load = self.truck_load[es, js]
        most_in = np.minimum(have, self.scenario.fleet.truck_capacity - load)
        most_out = np.minimum(load, room - have)
        moved = np.minimum(np.maximum(wanted, -most_out), most_in)
        b[flat] = have - moved
        self.truck_load[es, js] = load + moved
        self.truck_pos[es, js] = self.visit_station[es, js]
        np.add.at(self._moved, es, np.abs(moved))

    def _minute(self, t: int) -> None:
        b = self.bikes
        row = self.ring[t % self._ring_len]
        arriving = row.nonzero()[0]
        if len(arriving):
            count = row[arriving]
            row[arriving] = 0
            self._dock(arriving, count, t)
            np.maximum(self.high_h, b, out=self.high_h)
        p0, p1 = self._ptr[t], self._ptr[t + 1]
        if p1 == p0:
            return
        origin = self.ev_origin[p0:p1]
        left = b[origin] - self.ev_rank[p0:p1]  # bikes this rider finds (same-minute riders before it took theirs)
        ok = left > 0
        if self._q_bike > 0:
            ok &= self.ev_u[p0:p1] >= self._q_bike ** np.maximum(left, 1)
        everyone = ok.all()
        hit = origin if everyone else origin[ok]
        np.subtract.at(b, hit, 1)
        np.minimum(self.low_h, b, out=self.low_h)
        if everyone:
            slots = self.ev_slot[p0:p1]
        else:
            missed = (~ok).nonzero()[0] + p0
            if self.walk_to is not None:  # walkers take a bike nearby, then ride as drawn
                walked, missed = self._walk(missed)
                ok[walked - p0] = True
                np.minimum(self.low_h, b, out=self.low_h)
            np.add.at(self.lost_h, self.ev_origin[missed], 1)
            slots = self.ev_slot[p0:p1][ok]
            if len(slots) == 0:
                return
        if p1 > self._first_late and slots.min() < 0:  # some ride past the episode's end
            np.add.at(self.beyond, -1 - slots[slots < 0], 1)
            slots = slots[slots >= 0]
        np.add.at(self._ring_flat, slots, 1)

    def _ride(self, arrival: np.ndarray, flat: np.ndarray) -> None:
        """Diverted riders now on their way to ``flat``, docking at minute ``arrival``."""
        late = arrival >= self.T
        if late.any():
            np.add.at(self.beyond, flat[late] // self.n, 1)
            arrival, flat = arrival[~late], flat[~late]
        np.add.at(self._ring_flat, (arrival % len(self.ring)) * self.ring.shape[1] + flat, 1)

    def _dock(self, flat: np.ndarray, count: np.ndarray, t: int) -> None:
        """``count`` riders dock at each of the (distinct) stations ``flat``; the overflow rides on."""
        b = self.bikes
        if self._q_dock > 0:
            count = self._usable_docks(flat, count, t)
        b[flat] += count
        over = b[flat] - self.cap[flat]
        if over.max() > 0:
            spill = over > 0
            full, excess = flat[spill], over[spill]
            b[full] -= excess
            self.div_h[full] += excess
            self._divert(full, excess, t)

    def _usable_docks(self, flat: np.ndarray, count: np.ndarray, t: int) -> np.ndarray:
        """Of ``count`` riders arriving at each station, how many dock: each in turn finds no
        usable dock among ``f`` free with chance ``r ** f`` and is diverted from here."""
        free = self.cap[flat] - self.bikes[flat]
        turned = np.zeros_like(count)
        single = (count == 1) & (free > 0)
        if single.any():  # one draw per station, from its env's generator (flat is sorted: env by env)
            envs, per_env = np.unique(flat[single] // self.n, return_counts=True)
            u = np.concatenate([self._dock_rngs[e].random(c) for e, c in zip(envs.tolist(), per_env.tolist())])
            turned[single] = u < self._q_dock ** free[single]
        for i in np.flatnonzero((count > 1) & (free > 0)):  # a few riders in one minute: one by one
            f = int(free[i])
            for u in self._dock_rngs[int(flat[i]) // self.n].random(int(count[i])):
                if f <= 0:
                    break
                if u < self._q_dock ** f:
                    turned[i] += 1
                else:
                    f -= 1
        if not turned.any():
            return count
        away = turned > 0
        self.div_h[flat[away]] += turned[away]
        self._divert(flat[away], turned[away], t)
        return count - turned

    def _divert(self, full: np.ndarray, excess: np.ndarray, t: int) -> None:
        """Riders at full stations ride on to the nearest station with a free dock now."""
        env, here = np.divmod(full, self.n)
        for near in (self._near, self.network.neighbours):  # the nearest few first, all if need be
            cand = near[here]
            flat = env[:, None] * self.n + cand
            has_dock = (self.bikes[flat] < self.cap[flat]) & self.avail[flat]
            if has_dock.any(axis=1).all():
                break
        there = cand[np.arange(len(here)), has_dock.argmax(axis=1)]  # none free at all: the nearest
        arrival = t + self.ride_minutes[here, there]
        self._ride(np.repeat(arrival, excess), np.repeat(env * self.n + there, excess))

    def _walk(self, missed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Riders who found no bike try stations within walking distance, nearest first;
        returns (events that found a bike, events still lost)."""
        b = self.bikes
        walked, still = [], []
        for ev in missed.tolist():
            env, here = divmod(int(self.ev_origin[ev]), self.n)
            for j in self.walk_to[here]:
                f = env * self.n + j
                if b[f] > 0 and self.avail[f]:
                    b[f] -= 1
                    self._walked[env] += 1
                    walked.append(ev)
                    break
            else:
                still.append(ev)
        return np.asarray(walked, dtype=np.int64), np.asarray(still, dtype=np.int64)

    # ------------------------------------------------------------------ planners
    def plan_arrays(self, plan: Plan, visit: int) -> tuple[np.ndarray, np.ndarray]:
        """Env 0's ``visit``-th visit of every truck as (station, take) arrays (E = 1)."""
        if self.E != 1:
            raise ValueError("plans drive a single env")
        if len(plan) != self.k:
            raise ValueError(f"plan has {len(plan)} truck lists for {self.k} trucks")
        station = np.full((1, self.k), -1, np.int64)
        take = np.zeros((1, self.k), np.int64)
        for j, visits in enumerate(plan):
            if visit < len(visits):
                station[0, j] = visits[visit].station
                take[0, j] = visits[visit].bikes
        return station, take

    def execute_plan(self, plan: Plan) -> dict:
        """Run the coming hour with ``plan`` (one visit per slot, in list order). Visits
        beyond ``visits_per_hour`` are rejected. Returns the hour's totals per key."""
        if self.slot != 0:
            raise RuntimeError("plans start at an hour boundary")
        extra = sum(max(0, len(v) - self.vph) for v in plan)
        total = {key: 0.0 for key in SLOT_KEYS}
        for s in range(self.vph):
            station, take = self.plan_arrays(plan, s)
            out = self.step(station, take=take)
            for key in SLOT_KEYS:
                total[key] += float(out[key][0])
        total["rejected_visits"] += extra
        self.totals["rejected_visits"][0] += extra
        return total

    def fleet_view(self, env: int = 0, horizon: int | None = None) -> FleetView:
        """What a planner may know at the current hour of ``env``: state and the forecast."""
        h = self.hour
        end = self.H if horizon is None else min(self.H, h + horizon)
        return FleetView(
            hour_index=h,
            hour_of_day=int(self.hour_of_day[min(h, self.H - 1)]),
            station_ids=self.network.station_ids,
            bikes=self.bikes2d()[env].copy(),
            capacity=self.network.capacity.copy(),
            truck_station=self.truck_pos[env].copy(),
            truck_load=self.truck_load[env].copy(),
            truck_capacity=self.scenario.fleet.truck_capacity,
            visits_per_hour=self.vph,
            reachable=self.reachable.copy(),
            distance_km=self.road_km,
            pickup_rate=self.fc_pickup[h:end].copy(),
            return_rate=self.fc_return[h:end].copy(),
            radius_km=self.scenario.fleet.radius_km,
            capacity_scale=self.scenario.episode.capacity_scale,
        )

    # ------------------------------------------------------------------ results
    def occupancy_table(self, env: int = 0) -> pd.DataFrame:
        """Finished station-hours of ``env`` as an ``occupancy`` table."""
        hours = self.hour
        states = np.asarray(OCCUPANCY_STATES)
        return pd.DataFrame({
            "station_id": np.tile(self.network.station_ids, hours),
            "hour": np.repeat(self.hours[:hours], self.n),
            "state": states[self.state_hist[env, :hours].ravel()],
            "lost_trips": self.lost_hist[env, :hours].ravel(),
            "diverted_returns": self.div_hist[env, :hours].ravel(),
        })

    def summary(self, env: int = 0, planner: str = "", decision_s_per_hour: float = float("nan")) -> dict:
        """One row of ``OCCUPANCY_SUMMARY_COLUMNS`` for ``env``."""
        counts = dict(zip(OCCUPANCY_STATES, self.class_counts[env].tolist()))
        return {
            "planner": planner,
            **counts,
            "problem_share": problem_share(counts),
            "lost_trips": int(self.totals["lost_trips"][env]),
            "diverted_returns": int(self.totals["diverted_returns"][env]),
            "bikes_moved": int(self.totals["bikes_moved"][env]),
            "truck_km": float(self.totals["truck_km"][env]),
            "decision_s_per_hour": decision_s_per_hour,
        }


def replay_docks(network: Network, scenario: Scenario, riders, *, read_minutes=(), trucks=None) -> dict[str, np.ndarray]:
    """Replay fixed riders on the docks (one env, one-minute slots) and log each dock event.

    The entry point for generators of station data (the synthetic city) that need the core's
    dock dynamics (returns, diversions to the nearest free dock, lost pickups, truck visits)
    event by event rather than as occupancy counts. The scenario's fleet and riders apply, with
    ``visits_per_hour`` set to 60 so that every truck visit and reading falls on its own minute.

    ``riders``: a :class:`~bicimad.sim.riders.TripReplay` with its own minutes (``whole_hours``
    False); the riders of one station-minute are served in the order they are listed.
    ``read_minutes``: ascending minutes at whose start (before that minute's events) the docked
    bikes are read. ``trucks``: called at every minute's start as ``trucks(minute, bikes)`` (the
    docked bikes, read-only); returns None (all idle) or ``(station, take)``, one entry per
    truck: the station to visit this minute (-1: idle), bikes to load (> 0) or leave (< 0).

    Returns arrays: ``bikes`` (readings, n) docked at each read minute; ``lost_minute``,
    ``lost_station``, ``lost_count``: the last ``lost_count`` riders of that station-minute found
    no bike; ``divert_minute``, ``divert_from``, ``divert_to``, ``divert_arrival``: one row per
    diversion in order, a rider who found ``divert_from`` full rides on to ``divert_to`` (arriving
    at or after the episode's last minute: after its end); ``visit_minute``, ``visit_truck``,
    ``visit_station``, ``visit_bikes``: the visits that moved bikes (loaded > 0, left < 0).
    """
    if riders.whole_hours:
        raise ValueError("replay_docks: the riders need their own minutes (whole_hours=False)")
    scenario = scenario.override({"fleet.visits_per_hour": 60, "episode.hours": riders.n_hours})
    diversions: list[list[np.ndarray]] = []

    class LoggedSim(FleetSim):  # the core sends riders at a full dock through _divert, then _ride
        def _divert(self, full, excess, t):
            diversions.append([np.full(int(excess.sum()), t), np.repeat(full, excess)])
            super()._divert(full, excess, t)

        def _ride(self, arrival, flat):
            diversions[-1] += [flat.copy(), arrival.copy()]
            super()._ride(arrival, flat)

    sim = LoggedSim(network, scenario, riders)
    sim.reset([np.random.default_rng(0)])  # nothing is drawn: the riders keep their minutes
    reads = np.asarray(read_minutes, dtype=np.int64)
    if len(reads) and (np.any(np.diff(reads) < 0) or reads[0] < 0 or reads[-1] >= sim.T):
        raise ValueError(f"replay_docks: read_minutes must ascend within 0..{sim.T - 1}")
    bikes = np.zeros((len(reads), sim.n), np.int64)
    docked = sim.bikes.view()
    docked.flags.writeable = False
    idle = (np.full((1, sim.k), -1, np.int64), np.zeros((1, sim.k), np.int64))
    lost_before = np.zeros(sim.n, np.int64)
    lost, visits = [], []
    r = 0
    for minute in range(sim.T):
        while r < len(reads) and reads[r] == minute:
            bikes[r] = sim.bikes
            r += 1
        order = trucks(minute, docked) if trucks is not None else None
        station, take = idle if order is None else (np.reshape(order[0], (1, -1)), np.reshape(order[1], (1, -1)))
        load = sim.truck_load[0].copy()
        if sim.slot == 0:
            lost_before[:] = 0  # the hour's counts restart
        out = sim.step(station, take=take)
        if out["lost_trips"][0]:
            now = sim.lost_h.copy()
            at = np.flatnonzero(now != lost_before)
            lost.append((np.full(len(at), minute), at, (now - lost_before)[at]))
            lost_before = now
        moved = sim.truck_load[0] - load
        if moved.any():
            j = np.flatnonzero(moved)
            visits.append((np.full(len(j), minute), j, sim.truck_pos[0, j], moved[j]))

    def columns(rows, names, width):
        parts = list(zip(*rows)) if rows else [[]] * width
        return {name: np.concatenate(part).astype(np.int64) if len(part) else np.zeros(0, np.int64)
                for name, part in zip(names, parts)}

    return {"bikes": bikes,
            **columns(lost, ("lost_minute", "lost_station", "lost_count"), 3),
            **columns(diversions, ("divert_minute", "divert_from", "divert_to", "divert_arrival"), 4),
            **columns(visits, ("visit_minute", "visit_truck", "visit_station", "visit_bikes"), 4)}
