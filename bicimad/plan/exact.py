"""The exact optimum of one hour's routing model, to measure how far OR-Tools' routing search is from it.

:func:`bicimad.plan.ortools_planner.solve` minimises, over routes of at most ``visits_per_hour``
candidate stops per truck, the kilometre cost of the arcs driven (from the truck's station to its
first stop, then stop to stop; ending is free) plus, per station, the value of its best stop when
none is made and the shortfall from that best when a smaller one is. That is
``sum(best per station) - value(plan)``, where

    value(plan) = sum of the values of the stops made - the kilometre cost of the arcs driven,

under the constraints: at most one stop per station over all trucks, a stop only by a truck whose
radius holds it, and each truck's load within ``0..truck_capacity`` after every stop, starting from
its load now. :func:`solve_exact` maximises ``value`` with CP-SAT on a position model (truck ``t``
makes stop ``i`` as its ``p``-th visit; its size grows with trucks x visits x stops, small for one
hour's short routes); :func:`plan_value` values any plan on the same terms, so :func:`gap` compares like with like.
Values are in the problem's integer units (expected events x ``EVENT_SCALE``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from bicimad.plan.ortools_planner import RebalanceProblem
from bicimad.sim.interface import Plan, Visit


@dataclass(frozen=True)
class ExactResult:
    """The optimum of one problem."""

    value: int          #: the largest value(plan) any feasible plan reaches
    plan: Plan          #: a plan that reaches it
    wall_s: float       #: CP-SAT's wall time


def check_problem(problem: RebalanceProblem) -> None:
    """Raise ``ValueError`` naming the field unless ``problem``'s arrays fit together."""
    m, k = len(problem.stop_station), len(problem.truck_station)
    n = problem.arc_cost.shape[0] if problem.arc_cost.ndim == 2 else -1
    if problem.arc_cost.shape != (n, n):
        raise ValueError(f"arc_cost must be square, got shape {problem.arc_cost.shape}")
    if (problem.arc_cost < 0).any():
        raise ValueError("arc_cost must be non-negative")
    for name in ("stop_bikes", "stop_value"):
        if getattr(problem, name).shape != (m,):
            raise ValueError(f"{name} has shape {getattr(problem, name).shape}, expected ({m},)")
    if problem.stop_trucks.shape != (m, k):
        raise ValueError(f"stop_trucks has shape {problem.stop_trucks.shape}, expected ({m}, {k})")
    if problem.truck_load.shape != (k,):
        raise ValueError(f"truck_load has shape {problem.truck_load.shape}, expected ({k},)")
    for name in ("stop_station", "truck_station"):
        index = getattr(problem, name)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise ValueError(f"{name} holds a station outside 0..{n - 1}")
    if problem.visits_per_hour < 0 or problem.truck_capacity < 0:
        raise ValueError("visits_per_hour and truck_capacity must be >= 0")
    if ((problem.truck_load < 0) | (problem.truck_load > problem.truck_capacity)).any():
        raise ValueError(f"truck_load must lie within 0..{problem.truck_capacity}")
    pairs = set(zip(problem.stop_station.tolist(), problem.stop_bikes.tolist()))
    if len(pairs) != m:
        raise ValueError("two candidate stops share a station and a size: a plan could not name one")


def plan_value(problem: RebalanceProblem, plan: Plan) -> int:
    """value(plan) under ``problem``'s model; ``ValueError`` naming the broken rule if the plan is
    not feasible in it (a visit that is no candidate stop included)."""
    stop_of = {(int(s), int(b)): i for i, (s, b) in enumerate(zip(problem.stop_station, problem.stop_bikes))}
    if len(plan) != len(problem.truck_station):
        raise ValueError(f"plan has {len(plan)} routes for {len(problem.truck_station)} trucks")
    seen: set[int] = set()
    value = 0
    for truck, route in enumerate(plan):
        if len(route) > problem.visits_per_hour:
            raise ValueError(f"truck {truck}: {len(route)} stops > {problem.visits_per_hour}")
        at, load = int(problem.truck_station[truck]), int(problem.truck_load[truck])
        for step, visit in enumerate(route):
            where = f"truck {truck} stop {step} ({visit.station}, {visit.bikes:+d})"
            stop = stop_of.get((int(visit.station), int(visit.bikes)))
            if stop is None:
                raise ValueError(f"{where}: not a candidate stop")
            if not problem.stop_trucks[stop, truck]:
                raise ValueError(f"{where}: outside the truck's radius")
            if visit.station in seen:
                raise ValueError(f"{where}: station already visited this hour")
            load += int(visit.bikes)
            if not 0 <= load <= problem.truck_capacity:
                raise ValueError(f"{where}: load {load} outside 0..{problem.truck_capacity}")
            seen.add(visit.station)
            value += int(problem.stop_value[stop]) - int(problem.arc_cost[at, visit.station])
            at = int(visit.station)
    return value


def routing_objective(problem: RebalanceProblem, value: int) -> int:
    """The objective :func:`~bicimad.plan.ortools_planner.solve` minimises, for a plan of ``value``."""
    best: dict[int, int] = {}
    for station, stop_value in zip(problem.stop_station.tolist(), problem.stop_value.tolist()):
        best[station] = max(stop_value, best.get(station, 0))
    return sum(best.values()) - value


def gap(exact_value: int, value: int) -> float:
    """(exact - value) / |exact|; 0 where the optimum itself is 0 (nothing pays)."""
    return 0.0 if exact_value == 0 else (exact_value - value) / abs(exact_value)


def solve_exact(problem: RebalanceProblem, *, time_limit_s: float = 60.0, workers: int = 1,
                seed: int = 0) -> ExactResult:
    """The optimum of ``problem`` (``RuntimeError`` if CP-SAT cannot prove one in ``time_limit_s``)."""
    check_problem(problem)
    start = time.perf_counter()
    model = cp_model.CpModel()
    stops, _ = _position_model(model, problem)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_search_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    status = solver.Solve(model)
    if status != cp_model.OPTIMAL:
        raise RuntimeError(f"CP-SAT proved no optimum within {time_limit_s} s (status {solver.StatusName(status)})")
    plan = [[Visit(int(problem.stop_station[i]), int(problem.stop_bikes[i]))
             for position in route for i, chosen in position.items() if solver.BooleanValue(chosen)]
            for route in stops]
    return ExactResult(int(solver.ObjectiveValue()), plan, time.perf_counter() - start)


def _position_model(model: cp_model.CpModel, problem: RebalanceProblem):
    """Add the variables, constraints and objective; return ``stops[t][p]`` (stop -> its
    literal: truck ``t`` makes it as visit ``p``) and the objective expression."""
    k, m, visits = len(problem.truck_station), len(problem.stop_station), problem.visits_per_hour
    stations = np.unique(problem.stop_station).tolist()
    stops = [[{i: model.NewBoolVar(f"x{t}_{p}_{i}") for i in range(m) if problem.stop_trucks[i, t]}
              for p in range(visits)] for t in range(k)]
    gains, costs = [], []
    for t in range(k):
        load = int(problem.truck_load[t])
        for p, position in enumerate(stops[t]):
            model.AddAtMostOne(position.values())
            if p > 0:  # routes have no holes: visit p only after visit p - 1
                model.Add(sum(position.values()) <= sum(stops[t][p - 1].values()))
            load = load + sum(int(problem.stop_bikes[i]) * x for i, x in position.items())
            model.AddLinearConstraint(load, 0, problem.truck_capacity)
            gains += [int(problem.stop_value[i]) * x for i, x in position.items()]
        at = [_station_literals(model, position, problem, stations) for position in stops[t]]
        if at:
            start = int(problem.truck_station[t])
            costs += [int(problem.arc_cost[start, s]) * x for s, x in at[0].items()]
        for before, after in zip(at, at[1:]):
            costs += [int(problem.arc_cost[a, b]) * _both(model, x, y)
                      for a, x in before.items() for b, y in after.items() if a != b and problem.arc_cost[a, b]]
    for station in stations:  # at most one stop per station, over every truck and visit
        model.AddAtMostOne([x for route in stops for position in route for i, x in position.items()
                            if problem.stop_station[i] == station])
    objective = sum(gains) - sum(costs)
    model.Maximize(objective)
    return stops, objective


def _station_literals(model: cp_model.CpModel, position: dict, problem: RebalanceProblem, stations) -> dict:
    """Per station, a literal true iff one of its stops is made at this position."""
    literals = {}
    for station in stations:
        members = [x for i, x in position.items() if problem.stop_station[i] == station]
        if members:
            at = model.NewBoolVar(f"at{station}")
            model.Add(at == sum(members))
            literals[station] = at
    return literals


def _both(model: cp_model.CpModel, x, y):
    """A literal equal to ``x and y`` (the arc from one visit's station to the next one's)."""
    both = model.NewBoolVar("")
    model.AddBoolAnd([x, y]).OnlyEnforceIf(both)
    model.AddBoolOr([x.Not(), y.Not()]).OnlyEnforceIf(both.Not())
    return both
