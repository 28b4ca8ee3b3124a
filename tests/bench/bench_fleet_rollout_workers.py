"""Fleet-policy rollout on Ray workers: fleet-hours per second in process, on 1 and on 2 workers.

The synthetic default city (its 24-hour weekday), ``NUM_ENVS`` copies. Two figures per mode,
each divided by the in-process figure measured in the same run:

- rollout: the policy acting in this process (torch, one thread) and the envs stepping (in
  process, or in the Ray actors) for a day from a reset: PPO's rollout minus its storage. The
  three envs are built once (not timed) and take turns in each of ``ROUNDS`` rounds; the
  ratio reported is the median over rounds;
- PPO iterations: :func:`bicimad.plan.training.train_fleet_policy` for ``ITERATIONS``
  iterations in each mode, PPO's own ``charts/SPS`` (rollout and update; set-up and the
  actors' start excluded), one run per mode.

Wall time, as the work runs in other processes: load from elsewhere on a shared machine moves
the figures, and two workers only help where two cores are free beside the learner. The
bench also checks that the three modes give the same rewards and the same trained weights.
The local Ray cluster counts 3 CPUs, so the 1- and 2-worker envs can be held at once (idle
actors use no CPU).

    .venv/bin/python -m pytest -m bench tests/bench/bench_fleet_rollout_workers.py -s
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest
import torch

from bicimad.plan.fleet_env import fleet_inputs
from bicimad.plan.policy import FleetAgent, load_policy
from bicimad.plan.training import TrainingConfig, fleet_envs, train_fleet_policy
from bicimad.rl.core import read_metrics
from bicimad.sim.scenario import load_scenario

NUM_ENVS = 8
ROUNDS = 3
ITERATIONS = 2
MODES = {"in process": 0, "1 worker": 1, "2 workers": 2}


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def city():
    return fleet_inputs(load_scenario("synthetic-default"), None, None)


def rollout_day(envs, agent: FleetAgent, seed: int) -> tuple[float, float]:
    """(fleet-hours per second, total reward) of a day of ``agent`` acting in ``envs``."""
    torch.manual_seed(seed)
    obs, info = envs.reset(seed=seed)
    steps, total = envs.day_hours, 0.0
    start = time.perf_counter()
    for _ in range(steps):
        with torch.inference_mode():
            action, _, _, _ = agent.get_action_and_value(torch.as_tensor(obs), mask=torch.as_tensor(info["action_mask"]))
        obs, reward, _, _, info = envs.step(action.numpy())
        total += float(reward.sum())
    return steps * envs.num_envs / (time.perf_counter() - start), total


def ppo_iterations(city, config: TrainingConfig, out) -> tuple[float, dict]:
    """(PPO's fleet-hours per second over its iterations, the trained weights)."""
    train_fleet_policy(*city, config, out, progress=False)
    steps, sps = read_metrics(out / "ppo", "charts/SPS")
    assert steps[-1] == config.total_steps
    return float(sps[-1]), load_policy(out).state_dict()


def report(figure: str, rates: dict[str, list[float]]) -> None:
    """Print each mode's rates and its median ratio to the in-process rate of the same round."""
    baseline = rates["in process"]
    parts = []
    for mode, values in rates.items():
        ratio = statistics.median(v / b for v, b in zip(values, baseline))
        parts.append(f"{mode} {statistics.median(values):.0f} fleet-hours/s ({ratio:.2f}x)")
    print(f"{figure} ({NUM_ENVS} envs, median of {len(baseline)}): " + ", ".join(parts))


@pytest.mark.bench
def test_fleet_rollout_on_ray_workers_against_in_process(cluster, city, tmp_path):
    torch.set_num_threads(1)
    base = TrainingConfig(seed=0, num_envs=NUM_ENVS, total_steps=ITERATIONS * NUM_ENVS * city[0].episode.hours)
    envs = {mode: fleet_envs(*city, dataclasses.replace(base, workers=workers)) for mode, workers in MODES.items()}
    try:
        torch.manual_seed(0)
        agent = FleetAgent(base.observation)
        rollout: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_ in range(ROUNDS):
            rewards = {}
            for mode, env in envs.items():
                rate, rewards[mode] = rollout_day(env, agent, seed=round_)
                rollout[mode].append(rate)
            assert len(set(rewards.values())) == 1, rewards  # the same riders and moves in every mode
    finally:
        for env in envs.values():
            env.close()
    report("rollout", rollout)

    ppo, weights = {}, {}
    for mode, workers in MODES.items():
        rate, weights[mode] = ppo_iterations(city, dataclasses.replace(base, workers=workers), tmp_path / str(workers))
        ppo[mode] = [rate]
    for name, value in weights["in process"].items():
        assert all(torch.equal(value, w[name]) for w in weights.values()), name
    report("PPO iterations", ppo)
