"""Expected empty/full events per starting inventory, against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg, stats

from bicimad.plan.targets import expected_cost, expected_events, station_targets


def poisson_excess(mean: float, threshold: int) -> float:
    """E[(N - threshold)^+] for N ~ Poisson(mean): events beyond the first ``threshold``."""
    ks = np.arange(int(mean + 20 * np.sqrt(mean) + 50))
    return float((np.maximum(ks - threshold, 0) * stats.poisson.pmf(ks, mean)).sum())


def test_pickups_only_loses_the_pickups_beyond_the_stock():
    # Only pickups: lost pickups = E[(N - x)^+], N ~ Poisson(sum of hourly rates); no return ever blocks.
    events = expected_events(np.array([10]), np.array([[3.0], [4.5]]), np.array([[0.0], [0.0]]))
    expected = [poisson_excess(7.5, x) for x in range(11)]
    np.testing.assert_allclose(events[0], expected, rtol=1e-7, atol=1e-10)
    assert station_targets(events)[0] == 10


def test_returns_only_divert_the_returns_beyond_the_free_docks():
    events = expected_events(np.array([6, 12]), np.zeros((1, 2)), np.array([[3.0, 0.0]]))
    expected = [poisson_excess(3.0, 6 - x) for x in range(7)]
    np.testing.assert_allclose(events[0, :7], expected, rtol=1e-7, atol=1e-10)
    assert np.isinf(events[0, 7:]).all()          # more bikes than docks is impossible
    targets = station_targets(events)
    assert targets[0] == 0
    # No demand at all: every inventory is as good; the tie goes to half full.
    assert np.allclose(events[1], 0.0) and targets[1] == 6


def test_two_state_station_matches_the_closed_form():
    # Capacity 1, pickup rate a, return rate b over t hours. From x = 0, P(empty at s) is
    # a/(a+b) + b/(a+b) e^{-(a+b)s}; from x = 1 it is a/(a+b) (1 - e^{-(a+b)s}). Integrate the
    # event rates a*P(empty) + b*P(full).
    a, b, t = 2.0, 3.0, 1.0
    c = a + b
    decay = (1 - np.exp(-c * t)) / c
    empty_time_from_0 = a / c * t + b / c * decay
    empty_time_from_1 = a / c * t - a / c * decay
    from_0 = a * empty_time_from_0 + b * (t - empty_time_from_0)
    from_1 = a * empty_time_from_1 + b * (t - empty_time_from_1)
    events = expected_events(np.array([1]), np.array([[a]]), np.array([[b]]))
    np.testing.assert_allclose(events[0], [from_0, from_1], rtol=1e-7)


def test_target_balances_opposite_flows_over_the_horizon():
    # Heavy pickups now, heavy returns later: the best start holds enough for the first hour's pickups.
    events = expected_events(np.array([30]), np.array([[10.0], [0.0]]), np.array([[0.0], [10.0]]))
    target = station_targets(events)[0]
    assert 10 <= target <= 20
    assert events[0, target] < events[0, 0] and events[0, target] < events[0, 30]


@pytest.mark.parametrize("bad", [np.array([[-1.0]]), np.array([[np.nan]])])
def test_bad_rates_are_rejected(bad):
    with pytest.raises(ValueError, match="non-negative"):
        expected_events(np.array([5]), bad, np.zeros((1, 1)))


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"\(hours, 2\)"):
        expected_events(np.array([5, 5]), np.zeros((1, 3)), np.zeros((1, 3)))


def _generator_cost(capacity, hours, q, r, lost_w, div_w, problem_w):
    """The same expectation from the chain's generator, hour by hour backwards (matrix exponentials):
    each rider finds no usable bike at x bikes w.p. q**x (none at 0), no usable dock at f free w.p. r**f."""
    states = np.arange(capacity + 1)
    value = np.zeros(capacity + 1)
    for lam, mu in reversed(hours):
        no_bike, no_dock = q ** states, r ** (capacity - states)
        gen = np.zeros((capacity + 1, capacity + 1))
        for x in states:
            if x > 0:
                gen[x, x - 1] = lam * (1 - no_bike[x])
            if x < capacity:
                gen[x, x + 1] = mu * (1 - no_dock[x])
            gen[x, x] = -gen[x].sum()
        rate = lost_w * lam * no_bike + div_w * mu * no_dock
        augmented = np.zeros((capacity + 2, capacity + 2))
        augmented[:-1, :-1], augmented[:-1, -1] = gen, rate
        flow = linalg.expm(augmented)
        # a problem hour: the chain touches 0 or C within the hour (the interior chain killed there)
        interior = slice(1, capacity)
        survive = np.zeros(capacity + 1)
        survive[interior] = linalg.expm(gen[interior, interior]) @ np.ones(capacity - 1)
        value = flow[:-1, -1] + flow[:-1, :-1] @ value + problem_w * (1 - survive)
    return value


def test_unusable_bikes_and_docks_match_the_generator():
    # Riders who find no usable bike (dock) are lost (diverted) and leave the station as it was,
    # as the simulator draws them: checked against the generator's matrix exponential.
    capacity, hours = 6, [(2.5, 1.5), (0.8, 3.0)]
    for q, r, problem_w in ((0.4, 0.3, 0.0), (0.47, 0.45, 1.0), (0.0, 0.0, 1.0)):
        got = expected_cost(np.array([capacity]), np.array([[h[0]] for h in hours]), np.array([[h[1]] for h in hours]),
                            lost_weight=0.2, diverted_weight=0.3, problem_hour_weight=problem_w,
                            unusable_bikes=q, unusable_docks=r, tail=1e-12)
        np.testing.assert_allclose(got[0], _generator_cost(capacity, hours, q, r, 0.2, 0.3, problem_w),
                                   rtol=1e-6, atol=1e-9)
    # unusable bikes cost lost pickups at low stock, where an empty station alone would lose few
    plain = expected_cost(np.array([capacity]), np.array([[3.0]]), np.array([[0.5]]))
    broken = expected_cost(np.array([capacity]), np.array([[3.0]]), np.array([[0.5]]), unusable_bikes=0.5)
    assert (broken[0, 1:] > plain[0, 1:]).all() and broken[0, 0] == pytest.approx(plain[0, 0], rel=0.2)
    with pytest.raises(ValueError, match="unusable_bikes"):
        expected_cost(np.array([capacity]), np.array([[3.0]]), np.array([[0.5]]), unusable_bikes=1.0)
