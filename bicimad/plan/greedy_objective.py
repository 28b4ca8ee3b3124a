"""``greedy-objective``: a greedy planner on the declared objective.

``greedy`` (:class:`bicimad.plan.base.GreedyPlanner`) levels stations towards the network's
mean fill and ignores the forecast on purpose: the rule of thumb. This one is greedy on the
same quantity OR-Tools optimises: each station's expected cost over the forecast hours from
each starting inventory (:func:`bicimad.plan.targets.expected_cost` with the scenario's
weights on problem station-hours, lost pickups and diverted returns). Trucks plan one after
another, visit by visit; each visit takes, among the reachable stations no truck has claimed
this hour, the stop with the largest drop in expected cost less the truck-km cost of driving
there: loading ``q`` bikes (up to the room on the truck) or unloading ``q`` (up to its load),
``q`` chosen to lower the station's cost most. A stop worth less than ``min_gain`` ends the
truck's hour. Unlike OR-Tools it does not look ahead to where the loaded bikes will go, unless its
two-visit look-ahead is on (``pair_candidates``, one of the knobs the router learns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bicimad.plan.targets import expected_cost
from bicimad.sim.interface import FleetView, Plan, Visit


def best_moves(cost: np.ndarray, bikes: np.ndarray, room: int, load: int) -> tuple[np.ndarray, np.ndarray]:
    """Per station, the move (bikes taken > 0, left < 0) with the largest drop in ``cost``
    (``(n, C+1)``, ``inf`` beyond capacity) within ``room`` to take and ``load`` to leave,
    and that drop (0 and 0 where no move lowers the cost)."""
    n, width = cost.shape
    levels = np.arange(width)[None, :]
    b = bikes[:, None]
    allowed = ((levels < b) & (levels >= b - room)) | ((levels > b) & (levels <= b + load))
    here = cost[np.arange(n), np.minimum(bikes, width - 1)]
    options = np.where(allowed, cost, np.inf)
    best = options.argmin(axis=1)
    gain = np.where(np.isfinite(options.min(axis=1)), here - options.min(axis=1), 0.0)
    move = np.where(gain > 0, bikes - best, 0)
    return move.astype(np.int64), np.maximum(gain, 0.0)


@dataclass
class ObjectiveGreedyPlanner:
    """Greedy stops on the declared objective (module docstring); the weights default to the
    declared objective's defaults and come from the scenario through :func:`bicimad.plan.planner_for`.

    The fields after ``min_gain`` are the valuation knobs :mod:`bicimad.plan.router` learns; their
    defaults give the plain greedy above. ``discount`` weighs hour ``h`` of the horizon by
    ``discount ** h``; ``spread`` adds ``spread * (pickups + returns)`` to both forecast rates
    (more variance, the same mean drift: room for forecast error); ``problem_scale`` multiplies
    the problem-hour weight and ``km_scale`` the km cost inside the planner (the objective it is
    judged on is unchanged); ``load_value`` is what a bike still on the truck at the end of the
    hour is worth; ``pair_candidates`` > 1 picks each visit among that many best stops by the
    value of the stop plus the best stop after it (a two-visit look-ahead), not the stop alone.
    """

    name: str = "greedy-objective"
    problem_hour_weight: float = 1.0
    lost_weight: float = 0.2
    diverted_weight: float = 0.2
    km_cost: float = 0.01
    horizon_hours: int = 3
    min_gain: float = 0.02
    discount: float = 1.0
    spread: float = 0.0
    problem_scale: float = 1.0
    km_scale: float = 1.0
    load_value: float = 0.0
    pair_candidates: int = 1
    nowcast_volume: float = 0.0
    nowcast_drift: float = 0.0
    _day: dict | None = field(default=None, init=False, repr=False, compare=False)

    def station_cost(self, view: FleetView) -> np.ndarray:
        """(n, C+1) the planner's cost of each station at each inventory over its horizon."""
        pickup, returns = self.rates(view)
        return expected_cost(view.capacity, pickup, returns, hour_weights=self.discount ** np.arange(len(pickup)),
                             **self.cost_weights())

    def rates(self, view: FleetView) -> tuple[np.ndarray, np.ndarray]:
        """(hours, n) pickup and return rates the planner values stations on: the forecast's
        first ``horizon_hours``, corrected by the nowcast and widened by the spread."""
        hours = max(1, min(int(self.horizon_hours), view.pickup_rate.shape[0]))
        pickup, returns = view.pickup_rate[:hours], view.return_rate[:hours]
        if self.nowcast_volume or self.nowcast_drift:
            pickup, returns = self._nowcast(view, pickup, returns)
        if self.spread:
            churn = self.spread * (pickup + returns)
            pickup, returns = pickup + churn, returns + churn
        return pickup, returns

    def cost_weights(self) -> dict:
        """:func:`expected_cost`'s weights inside the planner (the problem-hour weight scaled)."""
        return {"lost_weight": self.lost_weight, "diverted_weight": self.diverted_weight,
                "problem_hour_weight": self.problem_hour_weight * self.problem_scale}

    def _nowcast(self, view: FleetView, pickup: np.ndarray, returns: np.ndarray):
        """The forecast rates corrected by the day so far (class docstring)."""
        day = self._day
        if (day is None or view.hour_index != day["hour"] + 1 or day["expected"] is None
                or len(view.bikes) != len(day["expected"])):   # not the hour after the last one planned: afresh
            day = self._day = {"hour": view.hour_index, "squares": 0.0, "expected_squares": 0.0,
                               "residual": np.zeros(view.n_stations), "hours": 0, "expected": None}
        else:   # last hour's riders: the bikes now against the bikes after last hour's plan
            flow = view.bikes - day["expected"]
            day["squares"] += float((flow ** 2).sum())
            day["expected_squares"] += float((day["gross"] + day["net"] ** 2).sum())
            day["residual"] += flow - day["net"]
            day["hours"] += 1
        day.update(hour=view.hour_index, gross=view.pickup_rate[0] + view.return_rate[0],
                   net=view.return_rate[0] - view.pickup_rate[0])
        if not day["hours"]:
            return pickup, returns
        rho = np.clip(day["squares"] / max(day["expected_squares"], 1e-9), 0.25, 4.0)
        scale = rho ** self.nowcast_volume
        drift = self.nowcast_drift * day["residual"] / day["hours"]
        return pickup * scale + np.maximum(-drift, 0.0), returns * scale + np.maximum(drift, 0.0)

    def plan(self, view: FleetView) -> Plan:
        cost = self.station_cost(view)
        bikes = view.bikes.astype(np.int64).copy()
        claimed = np.zeros(view.n_stations, dtype=bool)
        plan: Plan = []
        for truck in range(view.n_trucks):
            load, here, route = int(view.truck_load[truck]), int(view.truck_station[truck]), []
            for visit in range(view.visits_per_hour):
                left = view.visits_per_hour - visit - 1
                station, move = self._next_stop(view, cost, bikes, claimed, truck, here, load, left)
                if station < 0:
                    break
                route.append(Visit(station, move))
                load += move
                bikes[station] -= move
                claimed[station] = True
                here = station
            plan.append(route)
        if self._day is not None:
            self._day["expected"] = bikes.astype(float)   # docked bikes after the plan, before the riders
        return plan

    def _stop_values(self, view, cost, bikes, claimed, truck, here, load):
        """Per station: the best move there and its value (gain less km, plus the load's worth)."""
        move, gain = best_moves(cost, bikes, view.truck_capacity - load, load)
        value = gain - self.km_scale * self.km_cost * view.distance_km[here] + self.load_value * move
        return move, np.where(view.reachable[truck] & ~claimed & (move != 0), value, -np.inf)

    def _next_stop(self, view, cost, bikes, claimed, truck, here, load, left) -> tuple[int, int]:
        """The next stop (station, bikes taken) or (-1, 0) where none is worth ``min_gain``."""
        move, value = self._stop_values(view, cost, bikes, claimed, truck, here, load)
        k = min(self.pair_candidates, int(np.isfinite(value).sum()))
        if left < 1 or k <= 1:
            station = int(value.argmax())
            return (station, int(move[station])) if value[station] >= self.min_gain else (-1, 0)
        best, best_total = -1, -np.inf
        for station in np.argpartition(-value, k - 1)[:k]:
            if not value[station] >= self.min_gain:
                continue
            q = int(move[station])
            bikes[station] -= q
            claimed[station] = True
            _, after = self._stop_values(view, cost, bikes, claimed, truck, int(station), load + q)
            bikes[station] += q
            claimed[station] = False
            total = value[station] + max(float(after.max(initial=-np.inf)), 0.0)
            if total > best_total:
                best, best_total = int(station), total
        return (best, int(move[best])) if best >= 0 else (-1, 0)
