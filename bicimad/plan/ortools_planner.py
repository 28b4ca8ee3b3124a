"""The OR-Tools planner: a rolling-horizon one-commodity pickup-and-delivery model.

Every hour (the simulator asks each hour, so the horizon rolls) the planner

1. computes, per station, the expected cost over the next ``horizon_hours`` for every
   starting inventory, on the declared objective (:func:`bicimad.plan.targets.expected_cost`:
   problem station-hours, lost pickups and diverted returns with the scenario's weights;
   :func:`objective_weights`), and the target inventory that minimises it;
2. turns the gaps to target into candidate stops: load ``q`` bikes at a station above target,
   unload ``q`` at one below, at a few sizes ``q`` (the full gap and fractions of it, capped
   by the truck capacity) at every station within some truck's radius; each stop is worth the
   expected cost it avoids, ``V(x) - V(x -+ q)`` (``max_stations`` keeps only the stations whose
   best stop is worth most: ``ortools-1h`` keeps 60, as the first headline results did);
3. solves a routing model in which any bike loaded can serve any unload (one commodity, a
   signed load dimension bounded by ``0..truck_capacity`` that starts at each truck's load as
   it is), each truck makes at most ``visits_per_hour`` stops, only at stations within its
   radius, and every station is an optional disjunction whose penalty is the value of its
   best stop; arcs cost the kilometres driven, at ``km_cost`` per km (the objective's km weight);
4. reads each truck's route back as the visits of the coming hour.

:func:`solve` is a pure function of the frozen :class:`RebalanceProblem`; every OR-Tools routing
import of the package is in this module and in :mod:`bicimad.plan.lookahead` (the look-ahead
variant, which reuses :func:`search_parameters` and :func:`read_routes`); CP-SAT, the exact optimum
of small hours' models that measures this one, is in :mod:`bicimad.plan.exact`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from bicimad.plan.targets import forecast_cost, station_targets
from bicimad.sim.interface import FleetView, Plan, Visit

log = logging.getLogger(__name__)

#: Objective units per expected event: the solver works in integers.
EVENT_SCALE = 1000

FIRST_SOLUTION = {
    "parallel_cheapest_insertion": routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    "path_cheapest_arc": routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC,
    "local_cheapest_insertion": routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION,
}
METAHEURISTIC = {
    "greedy_descent": routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT,
    "guided_local_search": routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    "simulated_annealing": routing_enums_pb2.LocalSearchMetaheuristic.SIMULATED_ANNEALING,
}


@dataclass(frozen=True)
class ORToolsSettings:
    """The OR-Tools planner's knobs, and the one home of their defaults."""

    horizon_hours: int = 3                      #: forecast hours over which expected events are counted
    fractions: tuple[float, ...] = (1.0, 0.5)   #: stop sizes as fractions of the gap to target (full gap first)
    max_stations: int | None = None             #: keep this many stations, those whose best stop is worth most (None: all)
    min_value: float = 0.02                     #: drop stops worth fewer expected events than this
    km_cost: float = 0.01                       #: cost of a truck-kilometre (the objective's truck_km weight)
    problem_hour_weight: float = 1.0            #: cost of a problem station-hour (the declared objective's weight)
    lost_weight: float = 0.2                    #: cost of a lost pickup
    diverted_weight: float = 0.2                #: cost of a diverted return
    time_limit_s: float = 1.0                   #: solver time per hour
    first_solution: str = "parallel_cheapest_insertion"  #: a key of FIRST_SOLUTION
    metaheuristic: str = "greedy_descent"       #: a key of METAHEURISTIC

    def __post_init__(self):
        if self.first_solution not in FIRST_SOLUTION:
            raise ValueError(f"first_solution must be one of {sorted(FIRST_SOLUTION)}")
        if self.metaheuristic not in METAHEURISTIC:
            raise ValueError(f"metaheuristic must be one of {sorted(METAHEURISTIC)}")
        if self.max_stations is not None and (isinstance(self.max_stations, bool)
                                              or not isinstance(self.max_stations, int) or self.max_stations < 1):
            raise ValueError(f"max_stations must be a whole number >= 1, or None for every station in reach; "
                             f"got {self.max_stations!r}")
        object.__setattr__(self, "fractions", tuple(self.fractions))


#: The defaults, for callers that only need one value (e.g. a command's ``--time-limit``).
DEFAULT_SETTINGS = ORToolsSettings()


def objective_weights(reward) -> dict[str, float]:
    """The settings that make the planner value stops on a scenario's declared objective
    (:class:`bicimad.sim.scenario.RewardSpec`)."""
    return {"problem_hour_weight": reward.problem_hour, "lost_weight": reward.lost_trip,
            "diverted_weight": reward.diverted_return, "km_cost": reward.truck_km}


#: The candidate cut OR-Tools' first headline results were measured with, kept for the record as
#: planner ``ortools-1h`` (and kept by ``ortools-gls``, ``ortools-events`` and ``ortools-lookahead``,
#: whose results were measured with it): the 60 stations whose best stop is worth most.
ORTOOLS_1H_CANDIDATES = {"max_stations": 60}

#: The earlier value function, kept for the record as planner ``ortools-events``: expected lost
#: pickups plus diverted returns only (problem hours not valued), 0.01 per km.
EVENTS_ONLY = {"problem_hour_weight": 0.0, "lost_weight": 1.0, "diverted_weight": 1.0, "km_cost": 0.01}


@dataclass(frozen=True)
class RebalanceProblem:
    """One hour's routing problem, in the solver's integer units.

    Candidate stops are indexed ``0..m-1``; stops of the same station form one group, of
    which at most one is made.
    """

    stop_station: np.ndarray        # (m,) station index of each candidate stop
    stop_bikes: np.ndarray          # (m,) signed: > 0 load from the station, < 0 unload
    stop_value: np.ndarray          # (m,) expected events avoided, x EVENT_SCALE
    stop_trucks: np.ndarray         # (m, k) bool: trucks whose radius holds the stop
    truck_station: np.ndarray       # (k,) station each truck is at now
    truck_load: np.ndarray          # (k,) bikes on each truck now
    truck_capacity: int
    visits_per_hour: int
    arc_cost: np.ndarray            # (n, n) cost of driving station to station, x EVENT_SCALE
    settings: ORToolsSettings = DEFAULT_SETTINGS  # the search parameters are read from here


def build_problem(view: FleetView, settings: ORToolsSettings | None = None, **changes) -> RebalanceProblem:
    """The routing problem for the hour ``view`` describes, with ``settings`` (default: the
    defaults of :class:`ORToolsSettings`) and any of its fields replaced by ``changes``."""
    settings = settings or DEFAULT_SETTINGS
    if changes:
        settings = dataclasses.replace(settings, **changes)
    if not isinstance(settings, ORToolsSettings):
        raise TypeError(f"settings must be ORToolsSettings, got {type(settings).__name__}")
    events = forecast_cost(view, settings.horizon_hours, lost_weight=settings.lost_weight,
                           diverted_weight=settings.diverted_weight, problem_hour_weight=settings.problem_hour_weight)
    target = station_targets(events)
    bikes = view.bikes.astype(np.int64)
    gap = bikes - target                              # > 0: bikes to load, < 0: to unload
    any_truck = view.reachable.any(axis=0)

    stations, moves, values = [], [], []
    for s in np.flatnonzero((gap != 0) & any_truck):
        full = int(np.sign(gap[s])) * min(abs(int(gap[s])), view.truck_capacity)
        sizes = sorted({int(np.sign(full)) * max(1, round(abs(full) * f)) for f in settings.fractions}, key=abs, reverse=True)
        for move in sizes:
            value = events[s, bikes[s]] - events[s, bikes[s] - move]
            if value >= settings.min_value:
                stations.append(s)
                moves.append(move)
                values.append(value)
    stations, moves, values = np.array(stations, dtype=np.int64), np.array(moves, dtype=np.int64), np.array(values)

    if stations.size and settings.max_stations is not None:
        best_per_station = {}
        for s, v in zip(stations, values):
            best_per_station[s] = max(v, best_per_station.get(s, 0.0))
        keep_stations = sorted(best_per_station, key=best_per_station.get, reverse=True)[:settings.max_stations]
        keep = np.isin(stations, keep_stations)
        stations, moves, values = stations[keep], moves[keep], values[keep]

    return RebalanceProblem(
        stop_station=stations,
        stop_bikes=moves,
        stop_value=np.rint(values * EVENT_SCALE).astype(np.int64),
        stop_trucks=view.reachable[:, stations].T.copy(),
        truck_station=view.truck_station.astype(np.int64),
        truck_load=np.clip(view.truck_load.astype(np.int64), 0, view.truck_capacity),
        truck_capacity=int(view.truck_capacity),
        visits_per_hour=int(view.visits_per_hour),
        arc_cost=np.rint(view.distance_km * settings.km_cost * EVENT_SCALE).astype(np.int64),
        settings=settings,
    )


def routing_nodes(problem) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nodes 0..k-1 are the trucks' starts, k..2k-1 their ends (a free "stop here"), 2k.. the
    candidate stops: each node's station, bikes loaded (> 0) or unloaded, whether it is a visit,
    and the arc costs between them (km; ending a route anywhere is free)."""
    k, m = len(problem.truck_station), len(problem.stop_station)
    node_station = np.concatenate([problem.truck_station, problem.truck_station, problem.stop_station])
    node_bikes = np.concatenate([np.zeros(2 * k, dtype=np.int64), problem.stop_bikes])
    node_visit = np.concatenate([np.zeros(2 * k, dtype=np.int64), np.ones(m, dtype=np.int64)])
    cost = problem.arc_cost[np.ix_(node_station, node_station)].copy()
    cost[:, k:2 * k] = 0
    return node_station, node_bikes, node_visit, cost


def solve(problem: RebalanceProblem) -> Plan:
    """Solve ``problem``; per truck, its stops in order (no stop at all if none pays)."""
    k = len(problem.truck_station)
    m = len(problem.stop_station)
    if m == 0:
        return [[] for _ in range(k)]

    first_stop = 2 * k
    node_station, node_bikes, node_visit, cost = routing_nodes(problem)
    # A stop worth less than its station's best is charged the difference on leaving it, so the
    # objective is km cost minus the value of the stops made (up to a constant).
    best = {}
    for station, value in zip(problem.stop_station, problem.stop_value):
        best[station] = max(value, best.get(station, 0))
    shortfall = np.array([best[s] - v for s, v in zip(problem.stop_station, problem.stop_value)])
    cost[first_stop:, :] += shortfall[:, None]

    # --- model
    manager = pywrapcp.RoutingIndexManager(
        len(node_station), k, list(range(k)), list(range(k, first_stop))  # nodes, vehicles, starts, ends
    )
    routing = pywrapcp.RoutingModel(manager)
    # Matrices and vectors are evaluated in C++ (no Python callback per arc: several times faster).
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(cost.tolist()))

    # --- dimensions and constraints
    # Signed load: cumul at a node is the load on arrival; leaving it adds the stop's bikes.
    load_callback = routing.RegisterUnaryTransitVector(node_bikes.tolist())
    routing.AddDimensionWithVehicleCapacity(
        load_callback,
        0,                                   # no slack: the load changes only at stops
        [problem.truck_capacity] * k,        # 0 <= load <= capacity everywhere on the route
        False,                               # start cumul not forced to zero: set to the load below
        "load",
    )
    load = routing.GetDimensionOrDie("load")
    for truck in range(k):
        load.CumulVar(routing.Start(truck)).SetValue(int(problem.truck_load[truck]))

    visit_callback = routing.RegisterUnaryTransitVector(node_visit.tolist())
    routing.AddDimension(
        visit_callback,
        0,                                   # no slack
        problem.visits_per_hour,             # at most this many stops per truck
        True,                                # count from zero at each start
        "visits",
    )

    for station in np.unique(problem.stop_station):
        stops = np.flatnonzero(problem.stop_station == station)
        indices = [manager.NodeToIndex(first_stop + int(i)) for i in stops]
        # Optional station: skipping every one of its stops costs the value of the best.
        routing.AddDisjunction(indices, int(best[station]), 1)  # at most one stop per station
        for i, index in zip(stops, indices):
            # Radius: -1 (stop not made) or a truck that reaches it. (SetAllowedVehiclesForIndex
            # would say the same, but its Python binding rejects lists in this wheel.)
            routing.VehicleVar(index).SetValues([-1] + np.flatnonzero(problem.stop_trucks[i]).tolist())

    # --- search parameters, solve and extract
    solution = routing.SolveWithParameters(search_parameters(problem.settings))
    if solution is None:
        log.warning("routing found no solution within %.2f s; trucks stay put", problem.settings.time_limit_s)
        return [[] for _ in range(k)]
    return read_routes(routing, manager, solution, node_station, node_bikes)


def search_parameters(settings: ORToolsSettings):
    """Routing search parameters: first-solution strategy, metaheuristic, explicit time limit."""
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = FIRST_SOLUTION[settings.first_solution]
    params.local_search_metaheuristic = METAHEURISTIC[settings.metaheuristic]
    params.time_limit.FromMilliseconds(max(1, int(settings.time_limit_s * 1000)))
    return params


def read_routes(routing, manager, solution, node_station: np.ndarray, node_bikes: np.ndarray) -> Plan:
    """Each vehicle's stops in the solution, in order, as visits."""
    plan: Plan = []
    for truck in range(routing.vehicles()):
        route = []
        index = solution.Value(routing.NextVar(routing.Start(truck)))
        while not routing.IsEnd(index):
            node = manager.IndexToNode(index)
            route.append(Visit(int(node_station[node]), int(node_bikes[node])))
            index = solution.Value(routing.NextVar(index))
        plan.append(route)
    return plan


@dataclass(frozen=True)
class ORToolsPlanner(ORToolsSettings):
    """Replans every hour: forecast targets, then the pickup-and-delivery model above; its
    fields are :class:`ORToolsSettings`' (same defaults) and a ``name``."""

    name: str = "ortools"

    def plan(self, view: FleetView) -> Plan:
        return solve(build_problem(view, self))
