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


def test_hour_weights_scale_each_hours_cost_and_a_zero_weight_drops_the_hour():
    rng = np.random.default_rng(3)
    capacity = rng.integers(8, 25, 6)
    pickup, returns = rng.uniform(0.2, 4, (3, 6)), rng.uniform(0.2, 4, (3, 6))
    weights = dict(lost_weight=0.2, diverted_weight=0.3, problem_hour_weight=1.0)
    plain = expected_cost(capacity, pickup, returns, **weights)
    assert np.array_equal(expected_cost(capacity, pickup, returns, hour_weights=np.ones(3), **weights), plain)
    first = expected_cost(capacity, pickup[:1], returns[:1], **weights)
    dropped = expected_cost(capacity, pickup, returns, hour_weights=[1.0, 0.0, 0.0], **weights)
    np.testing.assert_allclose(dropped[np.isfinite(first)], first[np.isfinite(first)], rtol=1e-12)
    halved = expected_cost(capacity, pickup, returns, hour_weights=[0.5, 0.5, 0.5], **weights)
    np.testing.assert_allclose(halved[np.isfinite(plain)], 0.5 * plain[np.isfinite(plain)], rtol=1e-12)
    # a discount makes later hours count less: the cost lies between the first hour's and the whole horizon's
    discounted = expected_cost(capacity, pickup, returns, hour_weights=[1.0, 0.7, 0.49], **weights)
    ok = np.isfinite(plain)
    assert (discounted[ok] <= plain[ok] + 1e-12).all() and (discounted[ok] >= first[ok] - 1e-12).all()


@pytest.mark.parametrize("bad", [[1.0, 1.0], [1.0, -0.1, 1.0], [1.0, np.nan, 1.0]])
def test_hour_weights_must_be_one_finite_non_negative_number_per_hour(bad):
    with pytest.raises(ValueError, match="hour_weights"):
        expected_cost(np.array([10]), np.ones((3, 1)), np.ones((3, 1)), hour_weights=bad)


def test_a_terminal_cost_splits_the_horizon_at_any_hour():
    rng = np.random.default_rng(5)
    capacity = rng.integers(8, 25, 5)
    pickup, returns = rng.uniform(0.2, 4, (3, 5)), rng.uniform(0.2, 4, (3, 5))
    weights = dict(lost_weight=0.2, diverted_weight=0.2, problem_hour_weight=1.0, hour_weights=[1.0, 0.9, 0.81])
    whole = expected_cost(capacity, pickup, returns, **weights)
    later = expected_cost(capacity, pickup[1:], returns[1:], **{**weights, "hour_weights": [0.9, 0.81]})
    split = expected_cost(capacity, pickup[:1], returns[:1], terminal=later,
                          **{**weights, "hour_weights": [1.0]})
    ok = np.isfinite(whole)
    np.testing.assert_allclose(split[ok], whole[ok], rtol=1e-10)
    with pytest.raises(ValueError, match="terminal"):
        expected_cost(capacity, pickup, returns, terminal=later[:, :3])
