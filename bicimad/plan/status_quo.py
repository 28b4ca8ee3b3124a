"""The status quo: EMT's own truck moves, inferred from snapshot jumps, replayed as a planner.

A station-hour whose net flow departs from its cell's median by more than the truck-move rule's
threshold (``bicimad.demand.rates.flag_truck_moves``) is read as an operator move of the excess:
bikes added (> 0) or removed (< 0) in that hour. The comparison job computes those moves for each
observed day (``Day.operator_moves``, hours x stations in the network's order); this planner
replays them at their hours, so the simulator can be checked against the snapshots it came from
and every planner can be stated against what BiciMAD actually did.

EMT's fleet is not the scenario's: its moves are replayed by a virtual fleet of one truck per
station, based at that station (no driving, no radius or visit limit that binds), carrying a
depot's worth of bikes, so every inferred move happens as observed. Its truck kilometres
therefore mean nothing and are reported as NaN.
"""

from __future__ import annotations

import numpy as np

from bicimad.sim.interface import FleetView, Plan, Visit

#: Bikes each virtual truck carries at the start and at most: far above any single move.
DEPOT_BIKES = 5_000


class StatusQuoPlanner:
    """Replays one day's inferred operator moves: ``moves[h, j]`` bikes added (> 0) or removed
    (< 0) at station ``j`` in hour ``h`` of the episode."""

    name = "status-quo"
    virtual_fleet = True

    def __init__(self, moves: np.ndarray | None = None):
        self.moves = None if moves is None else np.rint(np.nan_to_num(np.asarray(moves, dtype=float))).astype(np.int64)

    def for_day(self, day) -> StatusQuoPlanner:
        """The planner of one observed day (``day.operator_moves``)."""
        moves = getattr(day, "operator_moves", None)
        if moves is None:
            raise ValueError(f"status-quo: no operator moves observed for {getattr(day, 'date', 'this day')} "
                             "(the status quo replays EMT's moves inferred from real snapshots)")
        return StatusQuoPlanner(moves)

    def scenario_for(self, scenario, network):
        """The scenario with EMT's virtual fleet in place of the scenario's trucks."""
        return scenario.override({
            "fleet.trucks": int(network.n), "fleet.truck_capacity": 2 * DEPOT_BIKES, "fleet.visits_per_hour": 1,
            "fleet.radius_km": 1e4, "fleet.initial_load": DEPOT_BIKES, "fleet.bases": [int(s) for s in network.station_ids],
        })

    def plan(self, view: FleetView) -> Plan:
        if self.moves is None:
            raise ValueError("status-quo: build the day's planner with for_day(day) first")
        n = view.n_stations
        if self.moves.shape[1] != n:
            raise ValueError(f"status-quo: moves for {self.moves.shape[1]} stations, the network has {n}")
        if view.hour_index >= len(self.moves):
            return [[] for _ in range(n)]
        # a truck takes (> 0) what EMT removed and leaves (< 0) what EMT added, as far as the
        # simulated station's bikes and free docks allow (the simulated state is not the observed one)
        added = np.clip(self.moves[view.hour_index], -view.bikes, view.capacity - view.bikes)
        added = np.where(np.diagonal(view.reachable), added, 0)   # no moves at a station out of service
        return [[Visit(j, int(-added[j]))] if added[j] else [] for j in range(n)]
