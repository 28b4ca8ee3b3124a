import numpy as np
import pandas as pd
import pytest

from bicimad.opendata.schemas import OCCUPANCY_SUMMARY_COLUMNS, conform
from bicimad.sim.core import FleetSim
from bicimad.sim.interface import FleetView, Planner, Visit
from bicimad.sim.rollout import rider_rng, run_episode


class FullestToEmptiest:
    """Test planner: each truck takes up to 10 bikes at its fullest reachable station and leaves
    them at the emptiest, within every limit (``run_episode`` checks each plan); trucks may
    share a station only when the move stays within its docks."""

    name = "fullest-to-emptiest"

    def __init__(self, size: int = 10):
        self.views: list[FleetView] = []
        self.size = size

    def plan(self, view: FleetView):
        self.views.append(view)
        bikes = view.bikes.astype(np.int64).copy()
        plan = []
        for j in range(view.n_trucks):
            reach = np.flatnonzero(view.reachable[j])
            fill = bikes / view.capacity
            src = int(reach[np.argmax(fill[reach])])
            dst = int(reach[np.argmin(fill[reach])])
            load = int(view.truck_load[j])
            take = min(self.size, int(bikes[src]), view.truck_capacity - load)
            leave = min(load + take, self.size, int(view.capacity[dst] - bikes[dst]))
            route = [Visit(src, take), Visit(dst, -leave)] if src != dst and take > 0 else []
            for visit in route:
                bikes[visit.station] -= visit.bikes
            plan.append(route)
        return plan


def test_planner_protocol():
    assert isinstance(FullestToEmptiest(), Planner)


def test_run_episode_tables_and_views(small_network, small_demand, small_scenario):
    planner = FullestToEmptiest()
    result = run_episode(small_network, small_demand, small_demand, small_scenario, planner, seed=5)
    assert list(result.summary.columns) == list(OCCUPANCY_SUMMARY_COLUMNS)
    conform(result.occupancy, "occupancy")
    assert len(result.steps) == 6 and len(planner.views) == 6
    row = result.summary.iloc[0]
    assert row["planner"] == planner.name
    assert row["bikes_moved"] == sum(s["bikes_moved"] for s in result.steps) > 0
    assert row["truck_km"] > 0
    # the views carry the forecast from the current hour on, not realised demand
    v = planner.views[2]
    assert v.hour_index == 2 and v.pickup_rate.shape == (4, small_network.n)
    np.testing.assert_allclose(v.pickup_rate, small_demand.pickup_rate[2:6])
    assert v.hour_of_day == small_demand.hours[2].hour


def test_common_random_numbers_across_planners(small_network, small_demand, small_scenario):
    """Same seed: the same riders whatever the planner does; another seed: other riders."""
    a = FleetSim(small_network, small_scenario, small_demand)
    b = FleetSim(small_network, small_scenario, small_demand)
    a.reset([rider_rng(11)])
    b.reset([rider_rng(11)])
    planner = FullestToEmptiest()
    for _ in range(a.H):
        a.execute_plan(planner.plan(a.fleet_view()))
        b.execute_plan([[] for _ in range(b.k)])
    np.testing.assert_array_equal(a.ev_ptr, b.ev_ptr)
    np.testing.assert_array_equal(a.ev_arrival, b.ev_arrival)
    np.testing.assert_array_equal(a.ev_origin, b.ev_origin)
    np.testing.assert_array_equal(a.ev_dest, b.ev_dest)
    assert a.totals["bikes_moved"][0] > 0 == b.totals["bikes_moved"][0]
    c = FleetSim(small_network, small_scenario, small_demand)
    c.reset([rider_rng(12)])
    assert len(c.ev_origin) != len(a.ev_origin) or not np.array_equal(c.ev_origin, a.ev_origin)


def test_same_seed_same_result(small_network, small_demand, small_scenario):
    r1 = run_episode(small_network, small_demand, None, small_scenario, FullestToEmptiest(), seed=2)
    r2 = run_episode(small_network, small_demand, None, small_scenario, FullestToEmptiest(), seed=2)
    pd.testing.assert_frame_equal(r1.occupancy, r2.occupancy)
    cols = [c for c in OCCUPANCY_SUMMARY_COLUMNS if c != "decision_s_per_hour"]
    pd.testing.assert_frame_equal(r1.summary[cols], r2.summary[cols])


def test_plan_limits_are_enforced(small_network, small_demand, small_scenario):
    sim = FleetSim(small_network, small_scenario, small_demand)
    sim.reset([rider_rng(0)])
    far = [int(np.flatnonzero(~sim.reachable[j])[0]) if (~sim.reachable[j]).any() else -1 for j in range(sim.k)]
    assert any(f >= 0 for f in far), "test network too small to have stations out of reach"
    base = sim.truck_pos[0].copy()
    plan = [[Visit(far[j], 5)] if far[j] >= 0 else [Visit(int(base[j]), 0)] * 3 for j in range(sim.k)]
    out = sim.execute_plan(plan)
    n_far = sum(f >= 0 for f in far)
    n_extra = sum(1 for f in far if f < 0)  # one visit too many per such truck
    assert out["rejected_visits"] == n_far + n_extra
    for j in range(sim.k):
        if far[j] >= 0:
            assert sim.truck_pos[0, j] == base[j]
    with pytest.raises(ValueError, match="truck lists"):
        sim.execute_plan([[]])


def test_env_and_run_episode_draw_the_same_riders(small_network, small_demand, small_scenario):
    from bicimad.sim.env import RebalanceEnv

    env = RebalanceEnv(small_scenario, small_network, small_demand)
    env.reset(seed=4)
    sim = FleetSim(small_network, small_scenario, small_demand)
    sim.reset([rider_rng(4)])
    np.testing.assert_array_equal(env.sim.ev_origin, sim.ev_origin)
    np.testing.assert_array_equal(env.sim.ev_arrival, sim.ev_arrival)


class TooBig(FullestToEmptiest):
    """Asks for more bikes than the truck holds: a plan that breaks a limit."""

    name = "too-big"

    def plan(self, view: FleetView):
        plan = super().plan(view)
        plan[0] = [Visit(plan[0][0].station, view.truck_capacity + 1)] if plan[0] else [Visit(0, -1)]
        return plan


def test_run_episode_refuses_a_plan_that_breaks_a_limit(small_network, small_demand, small_scenario):
    from bicimad.sim.interface import PlanError

    with pytest.raises(PlanError, match="truck 0 visit 0"):
        run_episode(small_network, small_demand, small_demand, small_scenario, TooBig(), seed=5)
