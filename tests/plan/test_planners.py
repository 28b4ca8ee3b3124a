"""Planners on hand-made fleet views: limits always kept, bikes moved the right way."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from bicimad.plan import OBJECTIVE_PLANNERS, PLANNER_NAMES, make_planner
from bicimad.plan.base import PlanError, check_plan
from bicimad.plan.ortools_planner import (
    DEFAULT_SETTINGS,
    ORTOOLS_1H_CANDIDATES,
    ORToolsPlanner,
    ORToolsSettings,
    build_problem,
    solve,
)
from bicimad.plan.targets import expected_events
from bicimad.sim.interface import Visit


def bikes_after(view, plan):
    bikes = view.bikes.copy()
    for route in plan:
        for visit in route:
            bikes[visit.station] -= visit.bikes
    return bikes


def events_after(view, plan, hours=3):
    events = expected_events(view.capacity, view.pickup_rate[:hours], view.return_rate[:hours])
    return float(events[np.arange(view.n_stations), bikes_after(view, plan)].sum())


@pytest.mark.parametrize("name", ["noop", "greedy", "ortools"])
def test_plans_keep_every_fleet_limit(name, make_random_view):
    rng = np.random.default_rng(7)
    planner = make_planner(name)
    moved = 0
    for _ in range(25):
        view = make_random_view(rng)
        plan = planner.plan(view)
        check_plan(view, plan)          # capacity, radius, visits, station bounds
        moved += sum(abs(v.bikes) for route in plan for v in route)
    assert (moved == 0) == (name == "noop")


def test_check_plan_names_the_broken_limit(make_line_view):
    view = make_line_view([5, 5, 5], [10, 10, 10], truck_load=(20,), radius_km=1.0, visits_per_hour=2)
    with pytest.raises(PlanError, match="truck 0 visit 0 .*load 25"):
        check_plan(view, [[Visit(0, 5)]])
    with pytest.raises(PlanError, match="radius"):
        check_plan(view, [[Visit(2, -1)]])
    with pytest.raises(PlanError, match="3 visits > 2"):
        check_plan(view, [[Visit(0, -1), Visit(1, -1), Visit(0, -1)]])
    with pytest.raises(PlanError, match="station 0: plan leaves 15 bikes for 10 docks"):
        check_plan(view, [[Visit(0, -10)]])
    with pytest.raises(PlanError, match="1 routes for 2 trucks"):
        check_plan(make_line_view([5, 5], [10, 10], truck_station=(0, 1), truck_load=(0, 0)), [[]])


def test_unknown_planner_lists_the_known_ones():
    with pytest.raises(ValueError, match="noop, greedy, ortools, ppo"):
        make_planner("oracle")
    assert PLANNER_NAMES[:3] == ("noop", "greedy", "ortools")


def test_greedy_moves_bikes_from_full_to_empty(make_line_view):
    view = make_line_view([20, 10, 0, 10], [20, 20, 20, 20], truck_station=(1,))
    plan = make_planner("greedy").plan(view)
    assert plan == [[Visit(0, 10), Visit(2, -10)]]


def test_greedy_unloads_a_full_truck_first_and_stays_in_radius(make_line_view):
    # The truck carries 22 bikes; the emptiest station (0) is 3 km away, outside its 1.5 km radius.
    view = make_line_view([0, 12, 2, 10, 12], [20] * 5, truck_station=(3,), truck_load=(22,), radius_km=1.5)
    plan = make_planner("greedy").plan(view)
    check_plan(view, plan)
    first = plan[0][0]
    assert first.bikes < 0 and first.station == 2


def test_greedy_trucks_do_not_share_a_station(make_line_view):
    view = make_line_view([20, 0, 10, 10], [20] * 4, truck_station=(2, 3), truck_load=(0, 0))
    plan = make_planner("greedy").plan(view)
    stations = [v.station for route in plan for v in route]
    assert len(stations) == len(set(stations))
    assert bikes_after(view, plan)[0] < 20 and bikes_after(view, plan)[1] > 0


def test_ortools_fixes_an_obvious_imbalance(make_line_view):
    # Balanced demand everywhere; one station full, one empty: move bikes from the first to the second.
    view = make_line_view([20, 10, 0, 10], [20] * 4, truck_station=(1,))
    plan = make_planner("ortools").plan(view)
    check_plan(view, plan)
    after = bikes_after(view, plan)
    assert 5 <= after[0] <= 15 and 5 <= after[2] <= 15
    assert events_after(view, plan) < 0.5 * events_after(view, [[]])


def test_ortools_respects_start_load_and_visit_limit(make_line_view):
    # A full truck with one visit: it can only unload, at the most valuable station.
    view = make_line_view([20, 10, 0, 10], [20] * 4, truck_station=(1,), truck_load=(22,), visits_per_hour=1)
    plan = make_planner("ortools").plan(view)
    assert len(plan[0]) == 1 and plan[0][0].station == 2 and plan[0][0].bikes < 0
    # An empty truck cannot unload before it loads.
    view = make_line_view([20, 10, 0, 10], [20] * 4, truck_station=(1,), truck_load=(0,), visits_per_hour=1)
    plan = make_planner("ortools").plan(view)
    assert plan[0] and plan[0][0].bikes > 0


def test_ortools_never_leaves_the_radius(make_line_view):
    # The only imbalance that matters (stations 0 and 4) lies outside a 1.5 km radius around station 2.
    view = make_line_view([20, 10, 10, 10, 0], [20] * 5, truck_station=(2,), radius_km=1.5)
    plan = make_planner("ortools").plan(view)
    check_plan(view, plan)
    assert all(v.station in (1, 2, 3) for v in plan[0])


def test_ortools_skips_stops_worth_nothing(make_line_view):
    # Every station already at its target: no stop pays.
    view = make_line_view([10, 10, 10], [20] * 3)
    assert make_planner("ortools").plan(view) == [[]]


def test_ortools_avoids_more_expected_events_than_greedy(make_random_view):
    rng = np.random.default_rng(11)
    greedy, ortools = make_planner("greedy"), make_planner("ortools")
    saved = {"greedy": 0.0, "ortools": 0.0}
    for _ in range(10):
        view = make_random_view(rng)
        base = events_after(view, [[] for _ in range(view.n_trucks)])
        saved["greedy"] += base - events_after(view, greedy.plan(view))
        saved["ortools"] += base - events_after(view, ortools.plan(view))
    assert saved["ortools"] > saved["greedy"] > 0


def test_ortools_respects_its_time_limit(make_random_view):
    # Guided local search never stops on its own: only the time limit ends it.
    view = make_random_view(np.random.default_rng(3), n=150, k=6)
    problem = build_problem(view, time_limit_s=0.3, metaheuristic="guided_local_search", max_stations=150)
    start = time.perf_counter()
    plan = solve(problem)
    elapsed = time.perf_counter() - start
    check_plan(view, plan)
    assert 0.25 <= elapsed < 1.5


def test_ortools_problem_is_a_pure_function(make_random_view):
    view = make_random_view(np.random.default_rng(5))
    problem = build_problem(view)
    assert solve(problem) == solve(problem)
    with pytest.raises(AttributeError):
        problem.time_limit_s = 5.0
    with pytest.raises(ValueError, match="metaheuristic"):
        ORToolsPlanner(metaheuristic="tabu")


def test_ortools_defaults_have_one_home(make_random_view):
    # The planner, the problem builder and the solver read the same settings.
    assert dataclasses.asdict(ORToolsPlanner()) == {**dataclasses.asdict(DEFAULT_SETTINGS), "name": "ortools"}
    view = make_random_view(np.random.default_rng(6))
    assert build_problem(view).settings == DEFAULT_SETTINGS
    changed = build_problem(view, time_limit_s=0.3, max_stations=2)
    assert changed.settings.time_limit_s == 0.3 and changed.settings.horizon_hours == DEFAULT_SETTINGS.horizon_hours
    assert len(np.unique(changed.stop_station)) <= 2
    planner = ORToolsPlanner(time_limit_s=0.2, fractions=[1.0])
    assert planner.fractions == (1.0,) and build_problem(view, planner).settings is planner
    with pytest.raises(ValueError, match="first_solution"):
        ORToolsSettings(first_solution="random")


def far_truck_view(make_line_view):
    """Two loaded trucks: truck 0 reaches stations 0..59, all empty with many riders about to
    take bikes; truck 1 reaches only station 60, empty with fewer riders (its stop is the 61st
    best of the city), and station 61, where it stands, at its target."""
    n = 62
    pickup = np.full((3, n), 0.5)
    pickup[:, :60], pickup[:, 60] = 6.0, 3.0
    view = make_line_view([0] * 61 + [10], [20] * n, truck_station=(0, 61), truck_load=(22, 22), spacing_km=0.01,
                          pickup_rate=pickup, return_rate=np.full((3, n), 0.5))
    reachable = np.zeros((2, n), dtype=bool)
    reachable[0, :60], reachable[1, 60:] = True, True
    return dataclasses.replace(view, reachable=reachable)


def test_ortools_considers_every_station_in_reach_and_ortools_1h_the_best_60(make_line_view):
    view = far_truck_view(make_line_view)
    best = {}
    for station, value in zip(*(getattr(build_problem(view), f) for f in ("stop_station", "stop_value"))):
        best[int(station)] = max(value, best.get(int(station), 0))
    assert len(best) == 62 - 1 and sorted(best, key=best.get, reverse=True).index(60) == 60   # the 61st best
    # ortools: the far truck unloads at the 61st-best station, the only one it reaches.
    plan = make_planner("ortools").plan(view)
    check_plan(view, plan)
    assert [v.station for v in plan[1]] == [60] and plan[1][0].bikes < 0
    assert plan[0] and {v.station for v in plan[0]} <= set(range(60))
    # ortools-1h keeps the 60 best stations only: the far truck has nothing to do.
    cut = make_planner("ortools-1h")
    assert cut.max_stations == 60 and cut.name == "ortools-1h"
    assert 60 not in build_problem(view, cut).stop_station
    plan = cut.plan(view)
    assert plan[1] == [] and plan[0] and {v.station for v in plan[0]} <= set(range(60))


def test_ortools_1h_is_todays_ortools_but_for_the_candidate_cut():
    assert DEFAULT_SETTINGS.max_stations is None and ORTOOLS_1H_CANDIDATES == {"max_stations": 60}
    assert dataclasses.asdict(make_planner("ortools-1h")) == {**dataclasses.asdict(DEFAULT_SETTINGS),
                                                               "max_stations": 60, "name": "ortools-1h"}
    assert "ortools-1h" in PLANNER_NAMES and "ortools-1h" in OBJECTIVE_PLANNERS
    # the variants measured with the cut keep it
    for name in ("ortools-gls", "ortools-events", "ortools-lookahead"):
        assert make_planner(name).max_stations == 60, name
    assert make_planner("ortools-1h", max_stations=80).max_stations == 80
    for bad in (0, -1, 2.5, True, "60"):
        with pytest.raises(ValueError, match="max_stations must be a whole number >= 1, or None"):
            ORToolsSettings(max_stations=bad)


def test_greedy_on_the_objective_fills_the_station_about_to_empty(make_line_view):
    # Station 2 is empty with riders about to take bikes; station 0 is full with riders bringing
    # more: the truck at 1 loads at 0 and unloads at 2, never the other way round.
    view = make_line_view([20, 10, 0, 10], [20, 20, 20, 20], truck_station=(1,))
    rates = np.zeros((3, 4))
    pickups, returns = rates.copy(), rates.copy()
    pickups[:, 2], returns[:, 0] = 6.0, 6.0
    view = dataclasses.replace(view, pickup_rate=pickups + 0.5, return_rate=returns + 0.5)
    plan = make_planner("greedy-objective").plan(view)
    check_plan(view, plan)
    assert [visit.station for visit in plan[0]] == [0, 2]
    assert plan[0][0].bikes > 0 and plan[0][1].bikes == -plan[0][0].bikes


def test_greedy_on_the_objective_does_nothing_where_nothing_is_at_risk(make_line_view):
    view = make_line_view([10, 10, 10, 10], [20, 20, 20, 20], truck_station=(1,))
    view = dataclasses.replace(view, pickup_rate=np.full((3, 4), 0.5), return_rate=np.full((3, 4), 0.5))
    assert make_planner("greedy-objective").plan(view) == [[]]
