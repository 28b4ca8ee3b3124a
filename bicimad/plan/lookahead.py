"""The OR-Tools planner with a look-ahead: routes over the next hours, stops valued when made.

:mod:`bicimad.plan.ortools_planner` routes one hour at a time and values every stop at the hour
start. This variant (planner ``ortools-lookahead``) keeps its value function
(:func:`bicimad.plan.targets.expected_cost` on the declared objective) and its one-commodity
routing model, and changes three things:

1. **Stops are valued at the truck's arrival.** A route's ``p``-th stop (0-based) is made in slot
   ``j = p mod visits_per_hour`` of hour ``h = p // visits_per_hour``; the truck is taken to act
   at ``t = h + (j + arrival) / visits_per_hour`` hours from now (``arrival`` = 0.5: the middle
   of its slot). Every candidate stop has one copy per position, all of a station's copies in
   one group (at most one is made), and a copy can only be made at its own position (the
   ``visits`` cumul of its node is pinned to ``p``), so a route has no waits: its ``p``-th stop
   is the one made in that slot. The approximation: the station's inventory at ``t`` is its
   mean drift, ``clip(round(x + sum of the forecast's net flow (returns - pickups) up to t),
   0, C)`` (the net flow of a partial hour in proportion to the elapsed part), and the stop's
   value is ``V_t(x_t) - V_t(x_t - q)``, where ``V_t`` is the expected cost from ``t`` to one
   end for every stop, ``lookahead_hours - 1 + horizon_hours`` hours from now (``common_end``;
   so a later stop is not credited with hours an earlier one does not see; the first, partial
   hour's rates are scaled by its remaining fraction, which in :func:`expected_cost`'s
   uniformisation is exactly a shorter period). With one hour of look-ahead and ``arrival`` 0
   the first slot's values are the 1-hour planner's. Targets and stop sizes are taken from
   ``V_t`` and ``x_t``; a stop of the coming hour is also cut so that it is feasible on the
   inventory now (what ``check_plan`` checks).
2. **A look-ahead of ``lookahead_hours`` hours** (2): each truck makes up to
   ``visits_per_hour * lookahead_hours`` stops. A later hour's stop sees the inventory the
   first hour's stops leave, trivially: a station is stopped at at most once over the whole
   look-ahead, so a later stop's station has had no earlier stop and its inventory is the
   drift alone. Only the coming hour's stops (each route's first ``visits_per_hour``) are
   returned; the simulator asks again every hour, so the look-ahead rolls.
3. **The truck's end load is valued.** At the look-ahead's end each truck's bikes are worth,
   per bike, ``end_discount`` (0.5) times the value per bike of the best unload within its
   radius (the station whose full gap to target is worth most, on the drifted inventory and
   ``V`` from the look-ahead's end), for up to that gap's bikes; its free room is worth the
   same of the best load. Both enter the routing objective as soft bounds on the load at the
   route's end (a concave, piecewise-linear value of the end load). The end *position* gets no
   value of its own: a truck's radius is fixed around its base, so where it ends changes only
   next hour's kilometres (0.01 per km on the default objective). The end values ignore the
   plan's own stops and may credit two trucks for one station; the discount allows for that.

Pinned positions weaken one-stop local search moves, so :func:`solve_lookahead` searches from two
first solutions and keeps the better. The model has about ``lookahead_hours * visits_per_hour``
times the 1-hour model's nodes, and on the 210-station synthetic city each search runs into its
``time_limit_s`` (1 s): a plan then depends on the machine's speed, as ``ortools-gls``' does.

Every OR-Tools routing import of the package is in this module and in
:mod:`bicimad.plan.ortools_planner`, whose search parameters and route reading this one reuses.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import pywrapcp

from bicimad.plan.ortools_planner import (
    EVENT_SCALE,
    FIRST_SOLUTION,
    ORTOOLS_1H_CANDIDATES,
    ORToolsSettings,
    read_routes,
    routing_nodes,
    search_parameters,
)
from bicimad.plan.targets import expected_cost, station_targets
from bicimad.sim.interface import FleetView, Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookaheadSettings(ORToolsSettings):
    """:class:`ORToolsSettings` and the look-ahead's own knobs (their one home). Its candidates
    stay the 60 stations whose best stop is worth most (``ortools-1h``'s cut): the model has one
    copy of each stop per route position, and its results were measured with that cut."""

    max_stations: int | None = ORTOOLS_1H_CANDIDATES["max_stations"]  #: stations kept (None: every one in reach)
    lookahead_hours: int = 2        #: hours routed ahead (only the first is executed)
    arrival: float = 0.5            #: when within its slot a stop acts, as a fraction of the slot
    end_discount: float = 0.5       #: weight of the best remaining unload (load) for bikes (room) at the end
    common_end: bool = True         #: value every stop up to one end (lookahead_hours - 1 + horizon_hours)
    restarts: tuple[str, ...] = ("path_cheapest_arc",)  #: further first solutions searched from (keys of FIRST_SOLUTION)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "restarts", tuple(self.restarts))
        if any(r not in FIRST_SOLUTION for r in self.restarts):
            raise ValueError(f"restarts must be keys of {sorted(FIRST_SOLUTION)}")
        if self.lookahead_hours < 1:
            raise ValueError("lookahead_hours must be >= 1")
        if not 0.0 <= self.arrival <= 1.0:
            raise ValueError("arrival must lie within 0..1")
        if self.end_discount < 0:
            raise ValueError("end_discount must be >= 0")


DEFAULT_LOOKAHEAD = LookaheadSettings()


@dataclass(frozen=True)
class LookaheadProblem:
    """The routing problem over the look-ahead, in the solver's integer units.

    Candidate stops ``0..m-1`` are (station, bikes, position) copies; a station's copies form
    one group. ``end_*`` price each truck's load at the route's end: ``end_bike_value`` per bike
    up to ``end_bike_limit`` bikes, ``end_room_value`` per free place up to ``end_room_limit``.
    """

    stop_station: np.ndarray        # (m,) station index of each candidate stop
    stop_bikes: np.ndarray          # (m,) signed: > 0 load from the station, < 0 unload
    stop_position: np.ndarray       # (m,) the route position (0-based) the copy must be made at
    stop_value: np.ndarray          # (m,) expected cost avoided, x EVENT_SCALE
    stop_trucks: np.ndarray         # (m, k) bool: trucks whose radius holds the stop
    truck_station: np.ndarray       # (k,)
    truck_load: np.ndarray          # (k,)
    truck_capacity: int
    visits_per_hour: int            # stops per hour (the executed prefix of each route)
    positions: int                  # stops per route over the look-ahead
    arc_cost: np.ndarray            # (n, n) x EVENT_SCALE
    end_bike_value: np.ndarray      # (k,) x EVENT_SCALE per bike
    end_bike_limit: np.ndarray      # (k,)
    end_room_value: np.ndarray      # (k,) x EVENT_SCALE per free place
    end_room_limit: np.ndarray      # (k,)
    settings: LookaheadSettings = DEFAULT_LOOKAHEAD


def drifted_bikes(view: FleetView, t: float) -> np.ndarray:
    """Expected bikes per station ``t`` hours from now, by mean drift: the forecast's net flow
    (returns - pickups) added up to ``t`` (a partial hour in proportion), clipped to 0..C."""
    net = view.return_rate - view.pickup_rate
    whole = min(int(t), net.shape[0])
    drift = net[:whole].sum(axis=0)
    if whole < net.shape[0]:
        drift = drift + (t - whole) * net[whole]
    return np.clip(np.rint(view.bikes + drift), 0, view.capacity).astype(np.int64)


def cost_from(view: FleetView, settings: ORToolsSettings, hour: int, elapsed: float,
              end_hour: int | None = None) -> np.ndarray | None:
    """Expected cost per station and inventory from ``hour + elapsed`` hours from now to
    ``end_hour`` (default ``hour + horizon_hours``; cut at the forecast's end; ``None`` if
    nothing is left)."""
    end = min(hour + settings.horizon_hours if end_hour is None else end_hour, view.pickup_rate.shape[0])
    if hour >= end:
        return None
    scale = np.ones((end - hour, 1))
    scale[0] = 1.0 - elapsed                     # the partial first hour: a period that much shorter
    return expected_cost(view.capacity, view.pickup_rate[hour:end] * scale, view.return_rate[hour:end] * scale,
                         lost_weight=settings.lost_weight, diverted_weight=settings.diverted_weight,
                         problem_hour_weight=settings.problem_hour_weight)


def _sizes(gap: int, truck_capacity: int, fractions) -> list[int]:
    """Signed stop sizes: fractions of the gap (full first), capped by the truck capacity."""
    full = int(np.sign(gap)) * min(abs(gap), truck_capacity)
    return sorted({int(np.sign(full)) * max(1, round(abs(full) * f)) for f in fractions}, key=abs, reverse=True)


def stops_at(view: FleetView, settings: LookaheadSettings, position: int, hours: int = 1):
    """Candidate stops for route position ``position`` of a ``hours``-hour look-ahead:
    (stations, signed bikes, values in events)."""
    hour, slot = divmod(position, view.visits_per_hour)
    elapsed = (slot + settings.arrival) / view.visits_per_hour
    events = cost_from(view, settings, hour, elapsed, hours - 1 + settings.horizon_hours if settings.common_end else None)
    if events is None:
        return [], [], []
    bikes = drifted_bikes(view, hour + elapsed)
    gap = bikes - station_targets(events)
    now = view.bikes.astype(np.int64)
    stations, moves, values = [], [], []
    for s in np.flatnonzero((gap != 0) & view.reachable.any(axis=0)):
        for move in _sizes(int(gap[s]), view.truck_capacity, settings.fractions):
            if hour == 0:                        # made this hour: feasible on the inventory now too
                move = min(move, int(now[s])) if move > 0 else max(move, int(now[s] - view.capacity[s]))
            value = events[s, bikes[s]] - events[s, bikes[s] - move] if move else 0.0
            if value >= settings.min_value and (s, move) not in zip(stations, moves):
                stations.append(int(s))
                moves.append(move)
                values.append(float(value))
    return stations, moves, values


def end_values(view: FleetView, settings: LookaheadSettings, hours: int) -> tuple[np.ndarray, ...]:
    """Per truck, the value per bike carried (x EVENT_SCALE) and up to how many bikes, then the
    same for free room, ``hours`` from now (the look-ahead's end); see the module's point 3."""
    k = view.n_trucks
    out = [np.zeros(k, dtype=np.int64) for _ in range(4)]
    events = cost_from(view, settings, hours, 0.0)
    if events is None or settings.end_discount == 0:
        return tuple(out)
    bikes = drifted_bikes(view, hours)
    gap = bikes - station_targets(events)
    for s in range(view.n_stations):
        if gap[s] == 0:
            continue
        move = _sizes(int(gap[s]), view.truck_capacity, (1.0,))[0]
        value = events[s, bikes[s]] - events[s, bikes[s] - move]
        if value < settings.min_value:
            continue
        per_unit = int(round(settings.end_discount * value / abs(move) * EVENT_SCALE))
        which = 0 if move < 0 else 2                 # an unload prices bikes, a load prices room
        for t in np.flatnonzero(view.reachable[:, s]):
            if per_unit * abs(move) > out[which][t] * out[which + 1][t]:
                out[which][t], out[which + 1][t] = per_unit, abs(move)
    return tuple(out)


def build_lookahead_problem(view: FleetView, settings: LookaheadSettings | None = None, **changes) -> LookaheadProblem:
    """The look-ahead routing problem for ``view`` (settings as for
    :func:`bicimad.plan.ortools_planner.build_problem`)."""
    settings = dataclasses.replace(settings or DEFAULT_LOOKAHEAD, **changes)
    if not isinstance(settings, LookaheadSettings):
        raise TypeError(f"settings must be LookaheadSettings, got {type(settings).__name__}")
    hours = max(1, min(settings.lookahead_hours, view.pickup_rate.shape[0]))
    positions = view.visits_per_hour * hours
    stations, moves, places, values = [], [], [], []
    for p in range(positions):
        s, q, v = stops_at(view, settings, p, hours)
        stations += s
        moves += q
        places += [p] * len(s)
        values += v
    stations, moves, places, values = (np.array(a, dtype=t) for a, t in
                                       ((stations, np.int64), (moves, np.int64), (places, np.int64), (values, float)))
    if stations.size:
        best: dict[int, float] = {}
        for s, v in zip(stations.tolist(), values.tolist()):
            best[s] = max(v, best.get(s, 0.0))
        keep = np.isin(stations, sorted(best, key=best.get, reverse=True)[:settings.max_stations])
        stations, moves, places, values = stations[keep], moves[keep], places[keep], values[keep]
    bike_value, bike_limit, room_value, room_limit = end_values(view, settings, hours)
    return LookaheadProblem(
        stop_station=stations, stop_bikes=moves, stop_position=places,
        stop_value=np.rint(values * EVENT_SCALE).astype(np.int64),
        stop_trucks=view.reachable[:, stations].T.copy(),
        truck_station=view.truck_station.astype(np.int64),
        truck_load=np.clip(view.truck_load.astype(np.int64), 0, view.truck_capacity),
        truck_capacity=int(view.truck_capacity), visits_per_hour=int(view.visits_per_hour), positions=positions,
        arc_cost=np.rint(view.distance_km * settings.km_cost * EVENT_SCALE).astype(np.int64),
        end_bike_value=bike_value, end_bike_limit=bike_limit, end_room_value=room_value, end_room_limit=room_limit,
        settings=settings,
    )


def solve_lookahead(problem: LookaheadProblem) -> Plan:
    """Per truck, its stops over the whole look-ahead, in order (position ``p`` at index ``p``).

    Pinned positions make moves of one stop at a time weak (replacing a first-hour stop can need
    a new second-hour one), so the search runs from ``first_solution`` and from each of
    ``restarts`` and keeps the best solution (greedy descent: deterministic where each search reaches
    its local optimum within the time limit)."""
    k = len(problem.truck_station)
    if len(problem.stop_station) == 0:
        return [[] for _ in range(k)]
    best_plan, best_cost = None, None
    for strategy in (problem.settings.first_solution, *problem.settings.restarts):
        routing, manager, node_station, node_bikes = _routing_model(problem)
        params = search_parameters(dataclasses.replace(problem.settings, first_solution=strategy))
        solution = routing.SolveWithParameters(params)
        if solution is not None and (best_cost is None or solution.ObjectiveValue() < best_cost):
            best_cost = solution.ObjectiveValue()
            best_plan = read_routes(routing, manager, solution, node_station, node_bikes)
    if best_plan is None:
        log.warning("look-ahead routing found no solution within %.2f s; trucks stay put", problem.settings.time_limit_s)
        return [[] for _ in range(k)]
    return best_plan


def _routing_model(problem: LookaheadProblem):
    """The routing model of ``problem``: nodes are the trucks' starts, their ends, then the stops;
    arcs cost km plus a stop's shortfall from its station's best; a skipped station costs its
    best; the load stays within 0..capacity and its end value enters as soft bounds; a stop
    copy is made only at its position."""
    k = len(problem.truck_station)
    first_stop = 2 * k
    node_station, node_bikes, node_visit, cost = routing_nodes(problem)
    best: dict[int, int] = {}
    for station, value in zip(problem.stop_station.tolist(), problem.stop_value.tolist()):
        best[station] = max(value, best.get(station, 0))
    cost[first_stop:, :] += np.array([best[s] - v for s, v in zip(problem.stop_station.tolist(),
                                                                  problem.stop_value.tolist())])[:, None]

    manager = pywrapcp.RoutingIndexManager(len(node_station), k, list(range(k)), list(range(k, first_stop)))
    routing = pywrapcp.RoutingModel(manager)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(cost.tolist()))
    routing.AddDimensionWithVehicleCapacity(routing.RegisterUnaryTransitVector(node_bikes.tolist()), 0,
                                            [problem.truck_capacity] * k, False, "load")
    load = routing.GetDimensionOrDie("load")
    for truck in range(k):
        load.CumulVar(routing.Start(truck)).SetValue(int(problem.truck_load[truck]))
        end = routing.End(truck)
        if problem.end_bike_value[truck] > 0:      # bikes carried at the end, up to the limit
            load.SetCumulVarSoftLowerBound(end, int(problem.end_bike_limit[truck]), int(problem.end_bike_value[truck]))
        if problem.end_room_value[truck] > 0:      # free room at the end, up to the limit
            ceiling = problem.truck_capacity - int(problem.end_room_limit[truck])
            load.SetCumulVarSoftUpperBound(end, max(0, ceiling), int(problem.end_room_value[truck]))
    routing.AddDimension(routing.RegisterUnaryTransitVector(node_visit.tolist()), 0, problem.positions, True, "visits")
    visits = routing.GetDimensionOrDie("visits")  # cumul at a stop: the stops before it, i.e. its position

    for station in best:
        stops = np.flatnonzero(problem.stop_station == station)
        indices = [manager.NodeToIndex(first_stop + int(i)) for i in stops]
        routing.AddDisjunction(indices, int(best[station]), 1)   # at most one copy per station
        for i, index in zip(stops, indices):
            routing.VehicleVar(index).SetValues([-1] + np.flatnonzero(problem.stop_trucks[i]).tolist())
            visits.CumulVar(index).SetValue(int(problem.stop_position[i]))
    return routing, manager, node_station, node_bikes


@dataclass(frozen=True)
class LookaheadPlanner(LookaheadSettings):
    """Routes the look-ahead every hour and returns the coming hour's stops; its fields are
    :class:`LookaheadSettings`' and a ``name``."""

    name: str = "ortools-lookahead"

    def plan(self, view: FleetView) -> Plan:
        routes = solve_lookahead(build_lookahead_problem(view, self))
        return [route[:view.visits_per_hour] for route in routes]
