"""Planner benchmarks (``make bench`` or ``python tests/bench/bench_plan.py``).

1. Planning time per simulated day, per planner, on the synthetic default city (210 stations,
   6 trucks x 22 bikes, 2 visits/h): the seconds ``plan()`` takes over the 24 hours of one
   day in ``run_episode``, as a ratio to the greedy planner measured in the same run.
2. PPO training wall time until the fleet policy passes the OR-Tools planner: train in chunks
   (OR-Tools imitation first, then PPO), evaluate the deterministic policy on the same rider
   draws as OR-Tools after each chunk, stop when its problem share is lower or the budget
   (``BENCH_PPO_BUDGET_S``, default 900 s) runs out. Reported as a ratio to OR-Tools' planning
   time for one day.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pytest

from bicimad.plan import make_planner
from bicimad.sim import load_scenario, run_episode
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand

pytestmark = pytest.mark.bench

EVAL_SEEDS = (101, 102)


def city():
    scenario = load_scenario("synthetic-default")
    network = synthetic_network(scenario.network.stations, scenario.network.seed)
    return scenario, network, synthetic_demand(network, seed=scenario.network.seed)


def planning_seconds(planner, scenario, network, demand, seed=1) -> tuple[float, float]:
    """(seconds planning over one day, problem share of that day)."""
    result = run_episode(network, demand, None, scenario, planner, seed=seed)
    return sum(step["decision_s"] for step in result.steps), float(result.summary["problem_share"].iloc[0])


def mean_share(planner, scenario, network, demand) -> float:
    return float(np.mean([planning_seconds(planner, scenario, network, demand, seed)[1] for seed in EVAL_SEEDS]))


def planning_table() -> list[dict]:
    import torch

    from bicimad.plan.policy import FleetAgent, ObservationConfig, PolicyPlanner

    torch.set_num_threads(1)
    scenario, network, demand = city()
    planners = [make_planner("noop"), make_planner("greedy"), make_planner("ortools"),
                PolicyPlanner(FleetAgent(ObservationConfig()))]
    rows = [{"planner": p.name, "s_per_day": planning_seconds(p, scenario, network, demand)[0]} for p in planners]
    greedy = next(r["s_per_day"] for r in rows if r["planner"] == "greedy")
    for row in rows:
        row["x_greedy"] = row["s_per_day"] / greedy
    return rows


def ppo_until_ortools(budget_s: float) -> dict:
    import torch

    from bicimad.plan.fleet_env import FleetPlanningVectorEnv
    from bicimad.plan.ortools_planner import ORToolsPlanner
    from bicimad.plan.policy import FleetAgent, ObservationConfig, PolicyPlanner
    from bicimad.plan.training import behaviour_clone, demonstrations
    from bicimad.rl.ppo import PPOConfig, train

    torch.set_num_threads(1)
    scenario, network, demand = city()
    ortools = ORToolsPlanner()
    ortools_day_s, _ = planning_seconds(ortools, scenario, network, demand)
    target = mean_share(ortools, scenario, network, demand)
    config = ObservationConfig()
    envs = FleetPlanningVectorEnv(scenario, network, [(demand, None)], num_envs=8, config=config)
    torch.manual_seed(0)
    agent = FleetAgent(config)
    history = []
    start = time.perf_counter()
    behaviour_clone(agent, *demonstrations(envs, ortools, days=2, seed=0), epochs=100, seed=0)
    share = mean_share(PolicyPlanner(agent), scenario, network, demand)
    history.append((time.perf_counter() - start, 0, share))
    chunk, steps = 8 * 24 * 10, 0
    ppo = PPOConfig(env_id="fleet/synthetic-default", seed=0, total_steps=100 * chunk, num_envs=8, num_steps=24,
                    learning_rate=3e-4, gamma=0.9, ent_coef=0.01)
    with tempfile.TemporaryDirectory() as out:
        while share >= target and time.perf_counter() - start < budget_s:
            train(ppo, out, make_agent=lambda o, a: agent, envs=envs, resume=steps > 0,
                  stop_after_steps=chunk, progress=False)
            steps += chunk
            share = mean_share(PolicyPlanner(agent), scenario, network, demand)
            history.append((time.perf_counter() - start, steps, share))
    wall = time.perf_counter() - start
    return {"passed": share < target, "wall_s": wall, "ppo_steps": steps, "ortools_share": target,
            "ppo_share": share, "ortools_day_s": ortools_day_s, "x_ortools_day": wall / ortools_day_s,
            "history": history}


def test_planning_time_per_day():
    rows = planning_table()
    for row in rows:
        print(f"{row['planner']:8s} {row['s_per_day']:8.3f} s/day  {row['x_greedy']:8.1f} x greedy")
    assert all(row["s_per_day"] >= 0 for row in rows)


def test_ppo_training_until_it_passes_ortools():
    result = ppo_until_ortools(float(os.environ.get("BENCH_PPO_BUDGET_S", 900)))
    print(result)
    assert result["wall_s"] > 0


if __name__ == "__main__":
    for row in planning_table():
        print(f"| {row['planner']} | {row['s_per_day']:.3f} | {row['x_greedy']:.1f} |")
    print(ppo_until_ortools(float(os.environ.get("BENCH_PPO_BUDGET_S", 900))))
