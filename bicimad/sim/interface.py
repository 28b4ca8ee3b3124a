"""The one interface through which planners and learnt policies meet the simulator.

Every hour the simulator hands a planner a :class:`FleetView` (what it may know that
hour: current state and the forecast, never the realised demand) and receives a
:class:`Plan`: per truck, the visits of the coming hour in order. The simulator executes
the plan as far as bikes, docks, truck load, radius and visit limits allow; the episode
driver (:func:`bicimad.sim.rollout.run_episode`) first checks every plan with
:func:`check_plan`, so a planner that breaks a limit fails loudly.
Station positions are indices into the network's station order (``station_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Visit:
    """One truck stop: take ``bikes`` from the station (> 0) or leave ``-bikes`` there (< 0)."""

    station: int
    bikes: int


#: Per truck, the visits of the coming hour in order (at most ``visits_per_hour`` each).
Plan = list[list[Visit]]


@dataclass(frozen=True)
class FleetView:
    """What a planner sees at the start of an hour."""

    hour_index: int                 # hours since the start of the episode
    hour_of_day: int                # local hour 0-23
    station_ids: np.ndarray         # (n,) EMT station ids, the network's order
    bikes: np.ndarray               # (n,) docked bikes now
    capacity: np.ndarray            # (n,) docks in service
    truck_station: np.ndarray       # (k,) index of the station each truck is at
    truck_load: np.ndarray          # (k,) bikes on each truck
    truck_capacity: int
    visits_per_hour: int
    reachable: np.ndarray           # (k, n) bool: station within the truck's action radius
    distance_km: np.ndarray         # (n, n) road distance proxy between stations
    pickup_rate: np.ndarray         # (h, n) forecast pickups per hour, this hour first
    return_rate: np.ndarray         # (h, n) forecast returns per hour, this hour first
    radius_km: float                # the trucks' action radius (scenario fleet.radius_km)
    capacity_scale: float           # docks a capacity feature is scaled by (scenario episode.capacity_scale)

    @property
    def n_stations(self) -> int:
        return len(self.station_ids)

    @property
    def n_trucks(self) -> int:
        return len(self.truck_station)


class PlanError(ValueError):
    """A plan breaks a fleet limit; the message names the truck, the visit and the limit."""


def check_plan(view: FleetView, plan: Plan) -> None:
    """Raise :class:`PlanError` unless ``plan`` keeps every limit the fleet has.

    Checked: one route per truck; at most ``visits_per_hour`` visits each; every station
    within the truck's radius; the truck load within ``0..truck_capacity`` after every visit
    (starting from its load now); and, with all trucks' visits applied, every station between
    empty and its capacity (trucks share no station within one hour in any planner here, so
    the order across trucks does not matter).
    """
    if len(plan) != view.n_trucks:
        raise PlanError(f"plan has {len(plan)} routes for {view.n_trucks} trucks")
    bikes = view.bikes.astype(np.int64).copy()
    for truck, route in enumerate(plan):
        if len(route) > view.visits_per_hour:
            raise PlanError(f"truck {truck}: {len(route)} visits > {view.visits_per_hour} per hour")
        load = int(view.truck_load[truck])
        for step, visit in enumerate(route):
            where = f"truck {truck} visit {step} (station {visit.station})"
            if not 0 <= visit.station < view.n_stations:
                raise PlanError(f"{where}: station index out of range 0..{view.n_stations - 1}")
            if not view.reachable[truck, visit.station]:
                raise PlanError(f"{where}: outside the truck's action radius")
            load += visit.bikes
            if not 0 <= load <= view.truck_capacity:
                raise PlanError(f"{where}: truck load {load} outside 0..{view.truck_capacity}")
            bikes[visit.station] -= visit.bikes
    bad = np.flatnonzero((bikes < 0) | (bikes > view.capacity))
    if bad.size:
        s = int(bad[0])
        raise PlanError(f"station {s}: plan leaves {bikes[s]} bikes for {view.capacity[s]} docks")


@runtime_checkable
class Planner(Protocol):
    """Anything that turns a :class:`FleetView` into a :class:`Plan`."""

    name: str

    def plan(self, view: FleetView) -> Plan: ...
