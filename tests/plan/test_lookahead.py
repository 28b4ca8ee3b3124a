"""The look-ahead OR-Tools planner: limits kept, later hours and end loads valued, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from bicimad.plan import OBJECTIVE_PLANNERS, make_planner, planner_for
from bicimad.plan.base import check_plan
from bicimad.plan.lookahead import (
    LookaheadPlanner,
    LookaheadSettings,
    build_lookahead_problem,
    cost_from,
    drifted_bikes,
    solve_lookahead,
)
from bicimad.plan.ortools_planner import DEFAULT_SETTINGS, build_problem
from bicimad.plan.targets import expected_cost
from bicimad.sim.interface import Visit
from bicimad.sim.scenario import Scenario


def test_plans_keep_every_fleet_limit_and_stops_sit_at_their_positions(make_random_view):
    rng = np.random.default_rng(11)
    planner = make_planner("ortools-lookahead", time_limit_s=0.5)
    moved = 0
    for _ in range(8):
        view = make_random_view(rng)
        plan = planner.plan(view)
        check_plan(view, plan)
        moved += sum(abs(v.bikes) for route in plan for v in route)
        problem = build_lookahead_problem(view, planner)
        copies = set(zip(problem.stop_station.tolist(), problem.stop_bikes.tolist(), problem.stop_position.tolist()))
        for route in solve_lookahead(problem):
            assert len(route) <= 2 * view.visits_per_hour       # two hours of stops, only the first returned
            assert all((v.station, v.bikes, p) in copies for p, v in enumerate(route))
    assert moved > 0


def second_hour_view(make_line_view):
    """Station 2 gains bikes in the first hour (10 returns) and empties in the second (25
    pickups from about 18); station 0, where the truck stands, fills slowly; station 1 is short
    of bikes now. The truck carries 10 bikes and makes one stop an hour."""
    pickup = np.array([[1, 3, 0], [1, 3, 25], [1, 3, 1], [1, 3, 1]], float)
    returns = np.array([[2, 1, 10], [2, 1, 0], [2, 1, 1], [2, 1, 1]], float)
    return make_line_view([14, 4, 8], [20, 20, 30], truck_station=(0,), truck_load=(10,), visits_per_hour=1,
                          hours=4, pickup_rate=pickup, return_rate=returns)


def test_look_ahead_prepares_for_a_station_that_empties_in_the_second_hour(make_line_view):
    view = second_hour_view(make_line_view)
    one_hour = build_problem(view)
    ahead = build_lookahead_problem(view)
    # The 1-hour planner values station 2 at the hour start, where the first hour's returns
    # still fill it; the look-ahead values it when its second-hour stop is made.
    one_hour_value = one_hour.stop_value[one_hour.stop_station == 2].max()
    later = (ahead.stop_station == 2) & (ahead.stop_position >= view.visits_per_hour)
    assert ahead.stop_value[later].max() > 2 * one_hour_value
    # The 1-hour planner spends its bikes on station 1 now; the look-ahead loads more at
    # station 0 and unloads them at station 2 in the second hour.
    assert make_planner("ortools").plan(view)[0][0].bikes < 0
    assert make_planner("ortools-lookahead").plan(view) == [[Visit(0, 7)]]
    route = solve_lookahead(ahead)[0]
    assert route[1].station == 2 and route[1].bikes < -view.truck_load[0]


def test_bikes_held_at_the_end_are_valued(make_line_view):
    # Station 1 needs bikes only in the fourth hour, after any stop's horizon; station 0 would
    # take 3 bikes now for a small gain. Valued, the truck's bikes are worth keeping for station 1.
    pickup = np.array([[2, 0], [2, 0], [2, 0], [2, 20]], float)
    returns = np.array([[2, 0], [2, 0], [2, 0], [2, 0]], float)
    view = make_line_view([7, 10], [20, 20], truck_station=(0,), truck_load=(10,), visits_per_hour=1, hours=4,
                          pickup_rate=pickup, return_rate=returns)
    valued = build_lookahead_problem(view, lookahead_hours=1)
    assert valued.end_bike_value[0] > 0 and valued.end_bike_limit[0] == 9
    assert LookaheadPlanner(lookahead_hours=1).plan(view) == [[]]
    assert LookaheadPlanner(lookahead_hours=1, end_discount=0.0).plan(view) == [[Visit(0, -3)]]


def test_same_view_same_plan(make_random_view):
    view = make_random_view(np.random.default_rng(3))
    planner = LookaheadPlanner()
    first = planner.plan(view)
    assert all(planner.plan(view) == first for _ in range(2))


def test_drift_and_the_partial_hour(make_line_view):
    pickup = np.array([[4.0, 0.0], [0.0, 0.0]])
    returns = np.array([[0.0, 6.0], [0.0, 0.0]])
    view = make_line_view([3, 15], [10, 20], pickup_rate=pickup, return_rate=returns, hours=2)
    assert drifted_bikes(view, 0.5).tolist() == [1, 18]
    assert drifted_bikes(view, 2.0).tolist() == [0, 20]          # clipped to 0..capacity
    whole = expected_cost(view.capacity, pickup, returns, lost_weight=0.2, diverted_weight=0.2,
                          problem_hour_weight=1.0)
    assert np.allclose(cost_from(view, DEFAULT_SETTINGS, 0, 0.0), whole)   # at the hour start: the 1-hour value
    assert cost_from(view, DEFAULT_SETTINGS, 2, 0.0) is None


def test_registered_with_the_objective_weights():
    assert "ortools-lookahead" in OBJECTIVE_PLANNERS
    scenario = Scenario()
    planner = planner_for("ortools-lookahead", scenario)
    assert isinstance(planner, LookaheadPlanner) and planner.name == "ortools-lookahead"
    assert planner.problem_hour_weight == scenario.reward.problem_hour
    with pytest.raises(ValueError, match="lookahead_hours"):
        LookaheadSettings(lookahead_hours=0)
