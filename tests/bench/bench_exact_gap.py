"""OR-Tools' routing search against the exact optimum of the same hour's model.

    .venv/bin/python tests/bench/bench_exact_gap.py --instances 20 --stations 20 --trucks 2 --seed 0
    .venv/bin/python -m pytest -m bench tests/bench/bench_exact_gap.py -s   # 3 instances, checked

Instance ``i`` of seed ``s`` (generator ``derive_seed(s, i)``): the synthetic default city
(210 stations) is simulated without trucks from 00:00 to a random hour in 6..21 on its truth
demand, with a random rider draw; the view of that hour is cut to the ``--stations`` stations
nearest a random station, with ``--trucks`` trucks at distinct random stations of the cut carrying
random loads in ``0..truck_capacity`` (the scenario's 22 bikes, 2 visits per hour, 3.5 km radius).
:func:`bicimad.plan.ortools_planner.build_problem` turns it into one routing problem with the
scenario's objective weights; :func:`bicimad.plan.exact.solve_exact` finds its optimum, and
OR-Tools' :func:`~bicimad.plan.ortools_planner.solve` runs on the same problem at each time limit,
with the planner's default local search (greedy descent, which stops at its first local optimum)
and with guided local search (which searches until the limit).
The gap is ``(optimum - value) / |optimum|`` on :func:`bicimad.plan.exact.plan_value`, the value
both optimise (stop values made minus km cost). Times are wall seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pytest

from bicimad.plan.exact import gap, plan_value, solve_exact
from bicimad.plan.ortools_planner import build_problem, objective_weights, solve
from bicimad.sim import load_scenario
from bicimad.sim.core import FleetSim
from bicimad.sim.interface import FleetView
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand
from bicimad.sim.seeds import derive_seed

pytestmark = pytest.mark.bench

TIME_LIMITS_S = (0.1, 0.3, 1.0, 3.0)
#: The planner's default local search first; guided local search uses the whole time limit.
METAHEURISTICS = ("greedy_descent", "guided_local_search")


def cut_view(view: FleetView, straight_km: np.ndarray, rng: np.random.Generator, stations: int,
             trucks: int) -> FleetView:
    """``view`` on the ``stations`` stations nearest a random one, with ``trucks`` trucks placed
    and loaded at random; the radius holds stations within ``radius_km`` in a straight line
    (``straight_km``), as in the simulator."""
    centre = int(rng.integers(view.n_stations))
    keep = np.sort(np.argsort(view.distance_km[centre], kind="stable")[:stations])
    distance = view.distance_km[np.ix_(keep, keep)]
    truck_station = rng.choice(stations, trucks, replace=False)
    return dataclasses.replace(
        view, station_ids=view.station_ids[keep], bikes=view.bikes[keep], capacity=view.capacity[keep],
        truck_station=truck_station, truck_load=rng.integers(0, view.truck_capacity + 1, trucks),
        reachable=straight_km[np.ix_(keep[truck_station], keep)] <= view.radius_km, distance_km=distance,
        pickup_rate=view.pickup_rate[:, keep], return_rate=view.return_rate[:, keep])


def instances(count: int, stations: int, trucks: int, seed: int):
    """``count`` (hour, view) pairs, as the module docstring describes."""
    scenario = load_scenario("synthetic-default")
    network = synthetic_network(scenario.network.stations, scenario.network.seed)
    demand = synthetic_demand(network, seed=scenario.network.seed)
    for i in range(count):
        rng = np.random.default_rng(derive_seed(seed, i))
        sim = FleetSim(network, scenario, demand)
        sim.reset([np.random.default_rng(int(rng.integers(2**32)))])
        hour = int(rng.integers(6, 22))
        for _ in range(hour):
            sim.execute_plan([[] for _ in range(scenario.fleet.trucks)])
        yield hour, cut_view(sim.fleet_view(0), network.distance_km, rng, stations, trucks), objective_weights(scenario.reward)


def measure(count: int, stations: int, trucks: int, seed: int) -> list[dict]:
    """Per instance: its size, the optimum and CP-SAT's time, and per time limit OR-Tools' gap and time."""
    rows = []
    for hour, view, weights in instances(count, stations, trucks, seed):
        problem = build_problem(view, **weights)
        exact = solve_exact(problem)
        row = {"hour": hour, "stops": len(problem.stop_station), "optimum": exact.value, "exact_s": exact.wall_s}
        for search in ((meta, limit) for meta in METAHEURISTICS for limit in TIME_LIMITS_S):
            settings = dataclasses.replace(problem.settings, metaheuristic=search[0], time_limit_s=search[1])
            start = time.perf_counter()
            plan = solve(dataclasses.replace(problem, settings=settings))
            row[search] = (gap(exact.value, plan_value(problem, plan)), time.perf_counter() - start)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table for BENCHMARKS.md."""
    lines = ["| solver | search | time limit (s) | mean gap | max gap | at 0 gap | mean s | max s |",
             "|---|---|---|---|---|---|---|---|"]
    for meta, limit in ((meta, limit) for meta in METAHEURISTICS for limit in TIME_LIMITS_S):
        gaps = np.array([row[meta, limit][0] for row in rows])
        seconds = np.array([row[meta, limit][1] for row in rows])
        lines.append(f"| OR-Tools routing | {meta} | {limit:g} | {gaps.mean():.2%} | {gaps.max():.2%} | "
                     f"{np.mean(gaps <= 0):.0%} | {seconds.mean():.3f} | {seconds.max():.3f} |")
    exact_s = np.array([row["exact_s"] for row in rows])
    lines.append(f"| CP-SAT (exact) | position model | – | 0 | 0 | 100% | {exact_s.mean():.3f} | {exact_s.max():.3f} |")
    stops = [row["stops"] for row in rows]
    lines.append(f"\n{len(rows)} instances, {min(stops)}-{max(stops)} candidate stops "
                 f"(mean {np.mean(stops):.1f}), hours {sorted(row['hour'] for row in rows)}")
    return "\n".join(lines)


def test_ortools_is_never_better_than_the_optimum():
    rows = measure(3, 20, 2, seed=0)
    print(table(rows))
    assert all(row[key][0] >= 0 for row in rows for key in row if isinstance(key, tuple))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--trucks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(table(measure(args.instances, args.stations, args.trucks, args.seed)))
