"""Simulator throughput: the scalar env, the numpy vector env, and gymnasium's CartPole
vector env as the reference for numpy-vectorised speed, measured in the same run.

    taskset -c 0 .venv/bin/python tests/bench/bench_sim.py          # markdown table for BENCHMARKS.md
                                                                    # (+ the real 2019 network where ingested)
    .venv/bin/python -m pytest -m bench tests/bench/bench_sim.py -s  # the same, checked against the targets

Network: the synthetic default, the embedded synthetic city with 210 stations on a weekday
(its truth rates: ~17,900 expected pickups), 6 trucks, 2 visits per hour: 48 steps a day,
each one decision per truck. Actions are drawn beforehand from the
action mask, so the timings are the env's own. Times are the process's CPU seconds
(``time.process_time``) on one core, so other work on a shared machine does not count; the
CartPole reference is timed the same way in the same run. Resets (drawing a day of riders)
are included in the day times.

Also: the synthetic city's truth alone and the simulator's inputs built from it (network and a
day's demand), against generating the same city with 30 realised days in the same run.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

#: Targets from the issue.
TARGET_TRUCK_DECISIONS_PER_S = 20_000
TARGET_DAY_MS_PER_ENV = 50.0


def _actions(sim, rng, n_envs: int, steps: int) -> np.ndarray:
    """Legal random actions for every env and step (station within reach or idle, any level)."""
    reach = [np.r_[np.flatnonzero(sim.reachable[j]), sim.n] for j in range(sim.k)]
    acts = np.zeros((steps, n_envs, 2 * sim.k), np.int64)
    for j in range(sim.k):
        acts[:, :, 2 * j] = rng.choice(reach[j], size=(steps, n_envs))
        acts[:, :, 2 * j + 1] = rng.integers(len(sim.fill_levels), size=(steps, n_envs))
    return acts


def time_scalar(days: int = 3) -> dict:
    from bicimad.sim.env import RebalanceEnv

    env = RebalanceEnv()
    acts = _actions(env.sim, np.random.default_rng(0), 1, env.sim.n_steps)
    env.reset(seed=0)
    t0 = time.process_time()
    steps = 0
    for d in range(days):
        env.reset(seed=d)
        for a in acts:
            env.step(a[0])
            steps += 1
    wall = time.process_time() - t0
    return {"envs": 1, "steps_per_s": steps / wall, "truck_decisions_per_s": steps * env.sim.k / wall,
            "day_ms_per_env": 1000 * wall / days}


def time_vector(n_envs: int = 64, days: int = 2) -> dict:
    from bicimad.sim.vector import RebalanceVectorEnv

    env = RebalanceVectorEnv(n_envs)
    acts = _actions(env.sim, np.random.default_rng(0), n_envs, env.sim.n_steps)
    env.reset(seed=0)
    t0 = time.process_time()
    steps = 0
    for d in range(days):
        env.reset(seed=1000 * d)
        for a in acts:
            env.step(a)
            steps += n_envs
    wall = time.process_time() - t0
    return {"envs": n_envs, "steps_per_s": steps / wall, "truck_decisions_per_s": steps * env.sim.k / wall,
            "day_ms_per_env": 1000 * wall / (days * n_envs)}


def time_cartpole(n_envs: int = 64, steps: int = 2000) -> dict:
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    env = CartPoleVectorEnv(num_envs=n_envs)
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(2, size=(steps, n_envs))
    t0 = time.process_time()
    for a in acts:
        env.step(a)
    wall = time.process_time() - t0
    return {"envs": n_envs, "steps_per_s": steps * n_envs / wall}


def time_real_day(data_dir=None, day: str = "2019-10-15", repeats: int = 3) -> dict | None:
    """One day of the real Oct 2019 network (snapshot at midnight, rates fitted to the month)
    through ``run_episode`` with idle trucks; None without processed data."""
    import pandas as pd

    from bicimad.demand.rates import fit_period_rates
    from bicimad.sim.data import Processed
    from bicimad.sim.riders import Demand
    from bicimad.sim.rollout import run_episode
    from bicimad.sim.scenario import load_scenario

    try:
        processed = Processed.load(data_dir)
        network = processed.network_at(pd.Timestamp(day))
    except (FileNotFoundError, LookupError):
        return None
    start = pd.Timestamp(day).to_period("M").to_timestamp()
    rates = fit_period_rates(processed.station_hours, start, start + pd.offsets.MonthBegin(1),
                             stations=processed.stations, daily_trips=14_200)
    rates = rates[pd.to_datetime(rates["hour"]).dt.strftime("%Y-%m-%d") == day]
    demand = Demand.from_tables(network, rates)
    scenario = load_scenario("seed-fleet-2018")
    t0 = time.process_time()
    for seed in range(repeats):
        run_episode(network, demand, demand, scenario, None, seed)
    return {"stations": network.n, "day_ms": 1000 * (time.process_time() - t0) / repeats}


def time_synthetic_inputs(n_stations: int = 210, repeats: int = 3) -> dict:
    """CPU seconds (median of ``repeats``) of the synthetic city's truth alone, of the simulator's
    inputs built from it (network + one day's demand, the truth's cache cleared), and, as the baseline in the same run, of
    generating the same city with its realisation (30 days of trips drawn and replayed)."""
    from bicimad.opendata.synthetic import city_truth, generate_city
    from bicimad.sim.network import _cached_city, synthetic_network
    from bicimad.sim.riders import synthetic_demand

    def sim_inputs():
        _cached_city.cache_clear()  # built from scratch, as a fresh process does
        synthetic_demand(synthetic_network(n_stations, 0), "2018-09-27", seed=0)

    def cpu(fn) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            times.append(time.process_time() - t0)
        return float(np.median(times))

    return {
        "stations": n_stations,
        "truth_s": cpu(lambda: city_truth(0, n_stations=n_stations)),
        "sim_inputs_s": cpu(sim_inputs),
        "realised_s": cpu(lambda: generate_city(0, n_stations=n_stations)),
    }


def measure() -> dict:
    return {"scalar": time_scalar(), "vector": time_vector(), "cartpole": time_cartpole(), "real": time_real_day()}


def table(r: dict) -> str:
    s, v, c = r["scalar"], r["vector"], r["cartpole"]
    lines = [
        "| env | env-steps/s | truck decisions/s | one day (210 stations, 6 trucks) per env | vs CartPoleVectorEnv(64) env-steps/s |",
        "|---|---|---|---|---|",
        f"| Rebalance-v0, 1 env | {s['steps_per_s']:,.0f} | {s['truck_decisions_per_s']:,.0f} | {s['day_ms_per_env']:.1f} ms | {s['steps_per_s'] / c['steps_per_s']:.4f} |",
        f"| Rebalance vector env, 64 envs | {v['steps_per_s']:,.0f} | {v['truck_decisions_per_s']:,.0f} | {v['day_ms_per_env']:.1f} ms | {v['steps_per_s'] / c['steps_per_s']:.4f} |",
        f"| CartPoleVectorEnv, 64 envs (reference) | {c['steps_per_s']:,.0f} | - | - | 1 |",
    ]
    if r["real"]:
        lines.append(f"| run_episode, real Oct 2019 network ({r['real']['stations']} stations), trucks idle "
                     f"| - | - | {r['real']['day_ms']:.1f} ms | - |")
    return "\n".join(lines)


def synthetic_line(r: dict) -> str:
    return (f"synthetic city, {r['stations']} stations: truth alone {r['truth_s']:.3f} s; simulator network + "
            f"a day's demand {r['sim_inputs_s']:.3f} s; generated with 30 days realised {r['realised_s']:.2f} s "
            f"({r['realised_s'] / r['truth_s']:.0f}x the truth)")


@pytest.mark.bench
def test_synthetic_inputs_come_from_the_truth_alone():
    result = time_synthetic_inputs()
    print("\n" + synthetic_line(result))
    assert result["truth_s"] < 0.2
    assert result["sim_inputs_s"] < 0.3


@pytest.mark.bench
def test_sim_throughput():
    result = measure()
    print("\n" + table(result))
    assert result["vector"]["truck_decisions_per_s"] >= TARGET_TRUCK_DECISIONS_PER_S
    assert result["vector"]["day_ms_per_env"] < TARGET_DAY_MS_PER_ENV


if __name__ == "__main__":
    print(table(measure()))
    print("\n" + synthetic_line(time_synthetic_inputs()))
