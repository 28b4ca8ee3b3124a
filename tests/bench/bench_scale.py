"""Scaling: time and memory per simulated day on synthetic cities of 172, 213 and 600 stations
with 20 trucks, for each planner (no-op, greedy, OR-Tools, the PPO policy), measured in one run.

    .venv/bin/python tests/bench/bench_scale.py                 # markdown table for BENCHMARKS.md
    .venv/bin/python tests/bench/bench_scale.py --sizes 172 600 --planners noop ortools
    .venv/bin/python -m pytest -m bench tests/bench/bench_scale.py -s

Each (size, planner) runs in a fresh subprocess, so its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own: the interpreter and the libraries
the planner imports (torch for the policy, OR-Tools' bindings) are included; an ``imports``
row per size gives the process with the simulator and the network built but no day simulated.
The city is the embedded synthetic one (``synthetic_network(n, seed=0)``, its truth demand of
Thursday 2018-09-27): every size spreads its stations over the same ~6 x 5 km area with the
same ~16,000 trips a day, so a larger city is a denser one with fewer trips per station.
Times: wall and CPU seconds of one full day (``run_episode``: 24 hourly decisions) and the
planner's own decision time per hour (wall; OR-Tools stops each solve at its 1 s time limit).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.bench

SIZES = (172, 213, 600)
PLANNERS = ("noop", "greedy", "ortools", "ppo")
TRUCKS = 20
DATE = "2018-09-27"

CHILD = r"""
import json, resource, sys, time
n, planner_name, trucks, date = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
from bicimad.plan import make_planner
from bicimad.sim import load_scenario, run_episode
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand
scenario = load_scenario("synthetic-default").override({"network.stations": n, "fleet.trucks": trucks})
network = synthetic_network(n, 0)
demand = synthetic_demand(network, date=date, seed=0)
build_s = time.perf_counter() - t0
row = {"stations": n, "planner": planner_name, "trucks": trucks, "build_s": build_s,
       "docks": int(network.capacity.sum()), "expected_pickups": float(demand.pickup_rate.sum())}
if planner_name != "imports":
    planner = make_planner(planner_name)
    w0, c0 = time.perf_counter(), time.process_time()
    summary = run_episode(network, demand, None, scenario, planner, seed=1).summary.iloc[0]
    row.update(day_wall_s=time.perf_counter() - w0, day_cpu_s=time.process_time() - c0,
               decision_s_per_hour=float(summary["decision_s_per_hour"]),
               problem_share=float((summary["empty"] + summary["full"] + summary["empty_and_full"])
                                   / (summary["balanced"] + summary["empty"] + summary["full"] + summary["empty_and_full"])),
               bikes_moved=float(summary["bikes_moved"]))
row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(row))
"""


def measure(n: int, planner: str, trucks: int = TRUCKS, timeout: float = 900) -> dict:
    """One (size, planner) in a fresh subprocess."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), planner, str(trucks), DATE], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{n} stations, {planner}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    """The markdown table, with each planner's day time as a multiple of its 172-station time."""
    base = {r["planner"]: r for r in rows if r["stations"] == min(x["stations"] for x in rows)}
    lines = ["| stations | planner | day, wall s | day, CPU s | x 172 (CPU) | decision s/hour | peak RSS MB | problem share |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["planner"] == "imports":
            lines.append(f"| {r['stations']} | (imports + network + demand) | | | | | {r['peak_rss_mb']:.0f} | |")
            continue
        ratio = r["day_cpu_s"] / base[r["planner"]]["day_cpu_s"]
        lines.append(f"| {r['stations']} | {r['planner']} | {r['day_wall_s']:.2f} | {r['day_cpu_s']:.2f} | {ratio:.2f} "
                     f"| {r['decision_s_per_hour']:.3f} | {r['peak_rss_mb']:.0f} | {100 * r['problem_share']:.1f} % |")
    return "\n".join(lines)


def run(sizes=SIZES, planners=PLANNERS) -> list[dict]:
    rows = []
    for n in sizes:
        for planner in ("imports", *planners):
            rows.append(measure(n, planner))
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def test_simulator_ortools_and_policy_run_on_600_stations():
    rows = run()
    print("\n" + table(rows))
    big = [r for r in rows if r["stations"] == 600 and r["planner"] != "imports"]
    assert {r["planner"] for r in big} == set(PLANNERS)
    noop = next(r for r in big if r["planner"] == "noop")
    assert all(r["bikes_moved"] > 0 and r["problem_share"] < noop["problem_share"] for r in big if r is not noop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--planners", nargs="+", default=list(PLANNERS))
    args = parser.parse_args()
    print(table(run(args.sizes, args.planners)))
