"""The exact solver of one hour's routing model: it equals brute force on tiny problems, is never
beaten by OR-Tools' search, and names what is wrong with a bad problem or plan."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from bicimad.plan.base import check_plan
from bicimad.plan.exact import gap, plan_value, routing_objective, solve_exact
from bicimad.plan.ortools_planner import build_problem, solve
from bicimad.sim.interface import Visit


def tiny_problem(rng, make_random_view, n=5, k=2):
    """A random hour cut to ``n`` stations and ``k`` trucks, small trucks now and then (so the
    load bounds bind), 1-2 visits each."""
    view = make_random_view(rng, n=n, k=k)
    truck_capacity = int(rng.choice([6, 22]))
    view = dataclasses.replace(view, truck_capacity=truck_capacity, truck_load=np.minimum(view.truck_load, truck_capacity),
                               visits_per_hour=int(rng.integers(1, 3)))
    return view, build_problem(view, time_limit_s=0.1)


def brute_force(problem) -> int:
    """The best value over every plan of distinct stops per truck that :func:`plan_value` accepts."""
    stops = [Visit(int(s), int(b)) for s, b in zip(problem.stop_station, problem.stop_bikes)]
    routes = [list(itertools.permutations(stops, r)) for r in range(problem.visits_per_hour + 1)]
    routes = [list(route) for same_length in routes for route in same_length]
    best = 0
    for plan in itertools.product(routes, repeat=len(problem.truck_station)):
        try:
            best = max(best, plan_value(problem, list(plan)))
        except ValueError:
            continue
    return best


def test_cp_sat_equals_brute_force_on_tiny_problems(make_random_view):
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(30):
        view, problem = tiny_problem(rng, make_random_view, n=int(rng.integers(4, 7)), k=int(rng.integers(1, 3)))
        if len(problem.stop_station) > 10:   # keep the enumeration to a fraction of a second
            continue
        exact = solve_exact(problem)
        assert exact.value == brute_force(problem)
        assert plan_value(problem, exact.plan) == exact.value
        check_plan(view, exact.plan)
        checked += 1
    assert checked >= 20


def test_cp_sat_is_never_worse_than_ortools(make_random_view):
    rng = np.random.default_rng(11)
    for _ in range(8):
        view, problem = tiny_problem(rng, make_random_view, n=20, k=2)
        exact = solve_exact(problem)
        heuristic = plan_value(problem, solve(problem))
        assert exact.value >= heuristic
        assert 0.0 <= gap(exact.value, heuristic) <= 1.0
        assert routing_objective(problem, exact.value) <= routing_objective(problem, heuristic)
        check_plan(view, exact.plan)


def test_an_empty_truck_loads_before_it_unloads(make_line_view):
    # The full station is beside the truck, the empty one two stops away: loading first is the
    # only order the load bounds allow.
    view = make_line_view([20, 10, 0], [20, 20, 20], truck_station=(1,), truck_load=(0,))
    problem = build_problem(view)
    exact = solve_exact(problem)
    [route] = exact.plan
    assert [v.station for v in route] == [0, 2] and route[0].bikes > 0 > route[1].bikes
    value = sum(int(problem.stop_value[i]) for i in range(len(problem.stop_station))
                if Visit(int(problem.stop_station[i]), int(problem.stop_bikes[i])) in route)
    assert exact.value == value - int(problem.arc_cost[1, 0] + problem.arc_cost[0, 2])


def test_nothing_to_do_is_worth_zero(make_line_view):
    problem = build_problem(make_line_view([10, 10], [20, 20]), min_value=1e9)
    assert solve_exact(problem).value == 0 and solve_exact(problem).plan == [[]]
    assert gap(0, 0) == 0.0


def test_a_bad_problem_or_plan_is_named(make_line_view):
    problem = build_problem(make_line_view([20, 10, 0], [20, 20, 20], truck_station=(1,)))
    with pytest.raises(ValueError, match="stop_trucks has shape"):
        solve_exact(dataclasses.replace(problem, stop_trucks=problem.stop_trucks[:, :0]))
    with pytest.raises(ValueError, match="arc_cost must be non-negative"):
        solve_exact(dataclasses.replace(problem, arc_cost=-problem.arc_cost))
    with pytest.raises(ValueError, match="truck_load must lie within 0..22"):
        solve_exact(dataclasses.replace(problem, truck_load=np.array([30])))
    with pytest.raises(ValueError, match=r"truck 0 stop 0 \(1, \+3\): not a candidate stop"):
        plan_value(problem, [[Visit(1, 3)]])
    with pytest.raises(ValueError, match="load -"):
        plan_value(problem, [[Visit(int(problem.stop_station[-1]), int(problem.stop_bikes[-1]))]])
    with pytest.raises(ValueError, match="1 routes for 2 trucks"):
        plan_value(dataclasses.replace(problem, truck_station=np.array([1, 1])), [[]])


def test_guided_local_search_is_never_worse_than_the_default_search(make_random_view):
    # ortools-gls keeps searching until its time limit from the same first solution
    from bicimad.plan import make_planner

    rng = np.random.default_rng(5)
    gls = make_planner("ortools-gls", time_limit_s=0.1)
    assert gls.name == "ortools-gls" and gls.metaheuristic == "guided_local_search"
    for _ in range(5):
        view, problem = tiny_problem(rng, make_random_view, n=20, k=2)
        searched = build_problem(view, **{**dataclasses.asdict(problem.settings), "metaheuristic": "guided_local_search"})
        assert plan_value(searched, solve(searched)) >= plan_value(problem, solve(problem))
