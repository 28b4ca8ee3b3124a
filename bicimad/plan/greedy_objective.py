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
truck's hour. Unlike OR-Tools it does not look ahead to where the loaded bikes will go.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bicimad.plan.targets import forecast_cost
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
    declared objective's defaults and come from the scenario through :func:`bicimad.plan.planner_for`."""

    name: str = "greedy-objective"
    problem_hour_weight: float = 1.0
    lost_weight: float = 0.2
    diverted_weight: float = 0.2
    km_cost: float = 0.01
    horizon_hours: int = 3
    min_gain: float = 0.02

    def plan(self, view: FleetView) -> Plan:
        cost = forecast_cost(view, self.horizon_hours, lost_weight=self.lost_weight,
                             diverted_weight=self.diverted_weight, problem_hour_weight=self.problem_hour_weight)
        bikes = view.bikes.astype(np.int64).copy()
        claimed = np.zeros(view.n_stations, dtype=bool)
        plan: Plan = []
        for truck in range(view.n_trucks):
            load, here, route = int(view.truck_load[truck]), int(view.truck_station[truck]), []
            for _ in range(view.visits_per_hour):
                move, gain = best_moves(cost, bikes, view.truck_capacity - load, load)
                value = np.where(view.reachable[truck] & ~claimed & (move != 0),
                                 gain - self.km_cost * view.distance_km[here], -np.inf)
                station = int(value.argmax())
                if not value[station] >= self.min_gain:
                    break
                route.append(Visit(station, int(move[station])))
                load += int(move[station])
                bikes[station] -= int(move[station])
                claimed[station] = True
                here = station
            plan.append(route)
        return plan
