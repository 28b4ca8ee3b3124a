"""Planners that need nothing but the fleet view (the check every plan must pass,
:func:`check_plan`, lives with the interface in :mod:`bicimad.sim.interface`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bicimad.sim.interface import FleetView, Plan, PlanError, Visit, check_plan  # noqa: F401  (re-exported)


@dataclass
class NoopPlanner:
    """Trucks stay where they are: the baseline every planner is measured against."""

    name: str = "noop"

    def plan(self, view: FleetView) -> Plan:
        return [[] for _ in range(view.n_trucks)]


@dataclass
class GreedyPlanner:
    """Move bikes from the most over-full to the most under-full station within reach.

    A station's surplus is its bikes minus what it would hold at the network's mean fill
    (``fill`` overrides that mean). Trucks plan one after another and never share a station
    within the hour. Each visit either unloads at the reachable station with the largest
    deficit (when the truck carries bikes and it is the last visit of the hour, it is at
    least half full, or nothing is worth loading) or loads at the reachable station with the
    largest surplus, if some reachable station lacks bikes; moves smaller than ``min_bikes`` are not worth a stop. It ignores the
    forecast on purpose: it is the rule of thumb the optimising planners must beat.
    """

    name: str = "greedy"
    fill: float | None = None
    min_bikes: int = 2

    def plan(self, view: FleetView) -> Plan:
        capacity = view.capacity.astype(np.int64)
        bikes = view.bikes.astype(np.int64).copy()
        fill = self.fill if self.fill is not None else bikes.sum() / max(int(capacity.sum()), 1)
        surplus = bikes - np.rint(fill * capacity).astype(np.int64)
        claimed = np.zeros(view.n_stations, dtype=bool)
        plan: Plan = []
        for truck in range(view.n_trucks):
            load = int(view.truck_load[truck])
            route: list[Visit] = []
            open_ = view.reachable[truck] & ~claimed
            for step in range(view.visits_per_hour):
                last = step == view.visits_per_hour - 1
                give = np.where(open_, np.minimum(-surplus, capacity - bikes), 0)
                take = np.where(open_, np.minimum(surplus, bikes), 0)
                room = view.truck_capacity - load
                source, sink = int(take.argmax()), int(give.argmax())
                # Loading only pays if some reachable station lacks bikes.
                worth_taking = min(room, take[source], give[sink]) >= self.min_bikes
                if load > 0 and (last or 2 * load >= view.truck_capacity or not worth_taking):
                    station, move = sink, -min(load, int(give[sink]))
                    if -move < min(self.min_bikes, load):
                        break
                elif worth_taking:
                    station, move = source, min(room, int(take[source]))
                else:
                    break
                route.append(Visit(station, move))
                load += move
                bikes[station] -= move
                surplus[station] -= move
                open_[station] = False
                claimed[station] = True
            plan.append(route)
        return plan
