"""The fleet env split over Ray actors (rollout workers) against the in-process env, on a real
local Ray cluster of two CPUs; PPO trained either way; bad worker counts."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import ray
import torch

from bicimad.cli import main
from bicimad.plan import make_planner
from bicimad.plan.fleet_env import FleetPlanningVectorEnv
from bicimad.plan.policy import ObservationConfig, load_policy
from bicimad.plan.ray_envs import RayFleetVectorEnv, worker_shares
from bicimad.plan.training import TrainingConfig, fleet_envs, train_fleet_policy
from bicimad.sim.riders import synthetic_demand

from .test_fleet_env import random_actions
from .test_jobs import small_scenario

CONFIG = ObservationConfig(candidates=5)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPUs for the module (the envs use it and leave it running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def city(small_city):
    """The small city with two days of different demand, unusable bikes and docks, 6-hour days."""
    scenario, network, demand = small_city
    scenario = scenario.override({"episode.hours": 6, "riders.unusable_bike_share": 0.3,
                                  "riders.unusable_dock_share": 0.4})
    return scenario, network, [(demand, None), (synthetic_demand(network, seed=3, daily_trips=5000), None)]


def wait_for_free_cpus(expected: float, timeout_s: float = 10.0) -> float:
    """The cluster's free CPUs once they reach ``expected`` (killed actors free theirs a moment later)."""
    deadline = time.monotonic() + timeout_s
    while (free := ray.available_resources().get("CPU", 0)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return free


def test_two_workers_step_exactly_as_the_in_process_env(cluster, city):
    scenario, network, days = city
    local = FleetPlanningVectorEnv(scenario, network, days, num_envs=3, config=CONFIG)
    split = RayFleetVectorEnv(scenario, network, days, num_envs=3, config=CONFIG, workers=2)
    try:
        assert [list(share) for share in split.shares] == [[0, 1], [2]]
        assert split.single_observation_space == local.single_observation_space
        assert split.single_action_space == local.single_action_space
        assert split.metadata["autoreset_mode"] == local.metadata["autoreset_mode"]
        obs, info = local.reset(seed=[14, 15, 16])  # their days: 0, 1, 0
        split_obs, split_info = split.reset(seed=[14, 15, 16])
        np.testing.assert_array_equal(obs, split_obs)
        np.testing.assert_array_equal(info["action_mask"], split_info["action_mask"])
        greedy = make_planner("greedy")
        np.testing.assert_array_equal(local.planner_actions(greedy), split.planner_actions(greedy))
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(15):  # two and a half days: two autoresets, each drawing a day
            action = random_actions(info["action_mask"], rng)
            obs, reward, terminated, truncated, info = local.step(action)
            got = split.step(action)
            for mine, theirs in zip((obs, reward, terminated, truncated), got[:4]):
                assert mine.dtype == theirs.dtype
                np.testing.assert_array_equal(mine, theirs)
            assert set(info) == set(got[4])
            np.testing.assert_array_equal(info["action_mask"], got[4]["action_mask"])
            if truncated.all():
                ends += 1
                np.testing.assert_array_equal(info["final_obs"], got[4]["final_obs"])
                for key, value in info["final_info"]["episode"].items():
                    np.testing.assert_array_equal(value, got[4]["final_info"]["episode"][key])
        assert ends == 2 and split.day_hours == local.day_hours == 6
        # an unseeded reset goes on with the same generators in both
        np.testing.assert_array_equal(local.reset()[0], split.reset()[0])
    finally:
        split.close()
    assert wait_for_free_cpus(2) == 2  # the actors are gone


def test_training_on_two_workers_gives_the_weights_of_one_and_of_the_envs_in_process(cluster, city, tmp_path):
    scenario, network, days = city
    base = TrainingConfig(seed=3, total_steps=2 * 2 * 6, num_envs=2, observation=CONFIG)  # two iterations
    weights = {}
    for workers in (0, 1, 2):
        config = dataclasses.replace(base, workers=workers)
        train_fleet_policy(scenario, network, days, config, tmp_path / str(workers), progress=False)
        weights[workers] = load_policy(tmp_path / str(workers)).state_dict()
    untrained = dataclasses.replace(base, total_steps=0)
    train_fleet_policy(scenario, network, days, untrained, tmp_path / "untrained", progress=False)
    initial = load_policy(tmp_path / "untrained").state_dict()
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]) and torch.equal(value, weights[2][name]), name
    assert any(not torch.equal(value, initial[name]) for name, value in weights[0].items())  # PPO did train
    assert wait_for_free_cpus(2) == 2


def test_workers_are_ended_when_training_fails(cluster, city, tmp_path):
    scenario, network, days = city
    config = TrainingConfig(total_steps=12, num_envs=2, gamma=1.5, workers=2, observation=CONFIG)
    with pytest.raises(ValueError, match="gamma must be between 0 and 1"):
        train_fleet_policy(scenario, network, days, config, tmp_path, progress=False)
    assert wait_for_free_cpus(2) == 2


@pytest.mark.parametrize("workers", [0, -1, 4, 2.0, True])
def test_worker_counts_outside_one_to_the_envs_are_refused(workers):
    with pytest.raises(ValueError, match=r"workers must be an integer from 1 to num_envs \(3\)"):
        worker_shares(3, workers)


def test_more_workers_than_the_cluster_has_cpus_is_refused(cluster, city):
    scenario, network, days = city
    with pytest.raises(ValueError, match="the Ray cluster has 2 CPU.*fewer than the 3 workers"):
        RayFleetVectorEnv(scenario, network, days, num_envs=3, config=CONFIG, workers=3)
    assert wait_for_free_cpus(2) == 2


def test_training_config_workers_are_checked(city):
    scenario, network, days = city
    with pytest.raises(ValueError, match=r"workers must be >= 0 \(0: the envs in this process\), got -1"):
        fleet_envs(scenario, network, days, TrainingConfig(workers=-1))
    with pytest.raises(ValueError, match="ray_address 'auto' needs workers >= 1"):
        fleet_envs(scenario, network, days, TrainingConfig(ray_address="auto"))


@pytest.mark.parametrize("args, message", [
    (["--envs", "2", "--workers", "3"], "--workers must be from 0 (envs in this process) to --envs (2), got 3"),
    (["--ray-address", "auto"], "--ray-address needs --workers >= 1"),
])
def test_train_agent_refuses_bad_worker_options(tmp_path, capsys, args, message):
    assert main(["train-agent", "--steps", "0", "--out", str(tmp_path / "p"), *args]) == 2
    assert message in capsys.readouterr().err


def test_train_agent_on_workers_records_them_in_the_model_card(cluster, tmp_path):
    out = tmp_path / "policy"
    assert main(["train-agent", "--scenario", small_scenario(tmp_path, hours=6), "--period", "2018-09-24:2018-09-24",
                 "--steps", "12", "--envs", "2", "--workers", "2", "--imitate", "0", "--candidates", "6",
                 "--eval-days", "1", "--eval-seeds", "1", "--out", str(out), "--no-progress"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["workers"] == 2 and card["ray_address"] is None and card["envs"] == 2
    assert "envs split over 2 Ray worker(s) on a local cluster" in (out / "MODEL_CARD.md").read_text()
    assert wait_for_free_cpus(2) == 2
