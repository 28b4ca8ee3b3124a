import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bicimad.sim  # noqa: F401  (registers the env)
from bicimad.opendata.schemas import OCCUPANCY_STATES, OCCUPANCY_SUMMARY_COLUMNS, conform
from bicimad.sim import ENV_ID
from bicimad.sim.env import RebalanceEnv


@pytest.fixture
def env(small_network, small_demand, small_scenario):
    return RebalanceEnv(small_scenario, small_network, small_demand)


def test_check_env_passes_on_registered_default():
    env = gym.make(ENV_ID)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.vector_entry_point == "bicimad.sim.vector:RebalanceVectorEnv"


def test_check_env_small(small_network, small_demand, small_scenario):
    env = gym.make(ENV_ID, scenario=small_scenario, network=small_network, demand=small_demand, render_mode="ansi")
    check_env(env.unwrapped)
    env.reset(seed=0)
    assert "docked" in env.render()


def test_episode_runs_to_truncation_with_occupancy_table(env, small_network):
    obs, info = env.reset(seed=3)
    assert info["action_mask"].shape == (3, small_network.n + 1)
    rng = np.random.default_rng(0)
    steps, total = 0, 0.0
    while True:
        mask = env.action_mask()
        action = []
        for j in range(3):
            action += [rng.choice(np.flatnonzero(mask[j])), rng.integers(5)]
        obs, reward, terminated, truncated, info = env.step(np.array(action))
        assert env.observation_space.contains(obs)
        assert not terminated
        total += reward
        steps += 1
        if truncated:
            break
    assert steps == 6 * 2
    table = info["occupancy_table"]
    assert len(table) == 6 * small_network.n
    conform(table, "occupancy")  # the schema accepts it
    summary = info["summary"]
    assert set(summary) == set(OCCUPANCY_SUMMARY_COLUMNS)
    counts = table["state"].value_counts()
    for state in OCCUPANCY_STATES:
        assert summary[state] == counts.get(state, 0)
    assert summary["lost_trips"] == table["lost_trips"].sum()
    problems = sum(summary[s] for s in OCCUPANCY_STATES[1:])
    w = env.scenario.reward
    expected = -(w.problem_hour * problems + w.lost_trip * summary["lost_trips"]
                 + w.diverted_return * summary["diverted_returns"] + w.truck_km * summary["truck_km"])
    assert total == pytest.approx(expected)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_make_vec_uses_the_numpy_vector_env():
    from gymnasium.vector import AutoresetMode

    from bicimad.sim.vector import RebalanceVectorEnv

    scenario = "synthetic-default"
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", scenario=scenario)
    assert isinstance(envs.unwrapped, RebalanceVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = envs.reset(seed=5)
    assert obs.shape == (3, envs.single_observation_space.shape[0]) and envs.observation_space.contains(obs)
    assert info["action_mask"].shape == (3, 6, 211)
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert reward.shape == (3,) and not terminated.any() and not truncated.any()
    assert set(info) >= {"lost_trips", "_lost_trips", "occupancy", "action_mask"}
    envs.close()


def test_simulator_never_imports_lightgbm_or_ortools():
    import subprocess
    import sys

    code = ("import sys, bicimad.sim.env, bicimad.sim.vector, bicimad.sim.rollout, bicimad.sim.fidelity, "
            "bicimad.sim.data; bad = [m for m in ('lightgbm', 'ortools', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
