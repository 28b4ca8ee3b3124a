"""The declared objective's stop values: expected problem hours from the birth-death model."""

from __future__ import annotations

import numpy as np
import pytest

from bicimad.plan.targets import expected_cost, expected_events


def _touch_probability_mc(capacity, start, lam, mu, hours, rng, runs=100_000) -> float:
    """Monte Carlo: mean number of hours in which the station touches 0 or capacity."""
    total = 0
    for _ in range(runs):
        x, touched = start, 0
        for _hour in range(hours):
            t, hit = 0.0, x in (0, capacity)
            while True:
                t += rng.exponential(1.0 / (lam + mu))
                if t > 1.0:
                    break
                if rng.random() < mu / (lam + mu):
                    x = min(x + 1, capacity)
                else:
                    x = max(x - 1, 0)
                hit = hit or x in (0, capacity)
            touched += hit
        total += touched
    return total / runs


def test_problem_hours_match_a_simulation_of_the_station():
    rng = np.random.default_rng(0)
    capacity, lam, mu = np.array([5]), 1.2, 0.7
    cost = expected_cost(capacity, np.full((2, 1), lam), np.full((2, 1), mu), lost_weight=0.0, diverted_weight=0.0,
                         problem_hour_weight=1.0)
    for start in (1, 2, 3):
        expected = _touch_probability_mc(5, start, lam, mu, 2, rng, runs=20_000)
        assert cost[0, start] == pytest.approx(expected, abs=0.015)
    # starting at a boundary, the first hour is a problem hour for sure
    assert cost[0, 0] >= 1.0 and cost[0, 5] >= 1.0


def test_weights_combine_events_and_problem_hours():
    capacity = np.array([10, 4])
    pickup = np.array([[2.0, 0.5], [3.0, 0.0]])
    returns = np.array([[1.0, 0.0], [0.5, 0.0]])
    events = expected_events(capacity, pickup, returns)
    hours = expected_cost(capacity, pickup, returns, lost_weight=0, diverted_weight=0, problem_hour_weight=1)
    both = expected_cost(capacity, pickup, returns, lost_weight=0.2, diverted_weight=0.2, problem_hour_weight=1)
    finite = np.isfinite(events)
    assert np.allclose((0.2 * events + hours)[finite], both[finite])
    # a station without demand in an hour: a problem hour only where it sits at a boundary
    assert hours[1, 0] == pytest.approx(1.0 + 1.0) and hours[1, 2] < 1.0
