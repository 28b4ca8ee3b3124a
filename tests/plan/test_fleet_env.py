"""The fleet-policy training env over the simulator, and the OR-Tools imitation warm start."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from bicimad.plan import FLEET_ENV_ID
from bicimad.plan.fleet_env import FleetPlanningEnv, FleetPlanningVectorEnv
from bicimad.plan.ortools_planner import ORToolsPlanner
from bicimad.plan.policy import FleetAgent, ObservationConfig, decode, plan_to_action
from bicimad.plan.training import behaviour_clone, demonstrations
from bicimad.sim.riders import synthetic_demand


def make_env(small_city, num_envs=3, candidates=5):
    scenario, network, demand = small_city
    return FleetPlanningVectorEnv(scenario, network, [(demand, None)], num_envs=num_envs,
                                  config=ObservationConfig(candidates=candidates))


def run_day(env, seed, policy_rng):
    obs, info = env.reset(seed=seed)
    rewards, hours = [], 0
    while True:
        mask = info["action_mask"].reshape(env.num_envs, -1, 6)
        action = np.stack([[policy_rng.choice(np.flatnonzero(m)) for m in env_mask] for env_mask in mask])
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        hours += 1
        assert not terminated.any()
        if truncated.all():
            return np.array(rewards), info, hours


def test_episode_is_a_day_and_reward_is_the_simulators_cost(small_city):
    env = make_env(small_city)
    sim = env.sims[0]
    rewards, info, hours = run_day(env, seed=1, policy_rng=np.random.default_rng(0))
    assert hours == sim.H == 10  # the scenario's episode.hours
    assert info["final_obs"].shape == (3,) + env.single_observation_space.shape
    episode = info["final_info"]["episode"]
    np.testing.assert_allclose(episode["r"], rewards.sum(axis=0), rtol=1e-5)
    assert (episode["l"] == 10).all()
    # Every hour's reward is minus the weighted simulator counts: never positive, negative over a day
    # whose problem share is positive.
    assert (rewards <= 0).all()
    assert np.all(episode["problem_share"] > 0) and (rewards.sum(axis=0) < 0).all()


def test_same_seed_same_day(small_city):
    first, _, _ = run_day(make_env(small_city), seed=5, policy_rng=np.random.default_rng(1))
    again, _, _ = run_day(make_env(small_city), seed=5, policy_rng=np.random.default_rng(1))
    other, _, _ = run_day(make_env(small_city), seed=6, policy_rng=np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_ortools_plans_survive_the_round_trip_through_actions(small_city):
    env = make_env(small_city, num_envs=1, candidates=12)
    env.reset(seed=2)
    planner = ORToolsPlanner(time_limit_s=0.2)
    stops = matched = 0
    for _ in range(10):
        view, obs = env._views[0], env._obs[0]
        plan = planner.plan(view)
        action = plan_to_action(obs, plan, 2)
        decoded = decode(view, obs, action)
        for route, replay in zip(plan, decoded):
            stops += len(route)
            matched += len({v.station for v in route} & {v.station for v in replay})
        env.step(action[None])
    assert stops > 0 and matched >= 0.8 * stops


def test_behaviour_cloning_fits_the_demonstrations(small_city):
    env = make_env(small_city, num_envs=2)
    features, masks, actions = demonstrations(env, ORToolsPlanner(time_limit_s=0.2), days=1, seed=0)
    assert len(features) == len(masks) == len(actions) == 2 * 10
    torch.manual_seed(0)
    agent = FleetAgent(ObservationConfig(candidates=5, hidden=32))
    losses = behaviour_clone(agent, features, masks, actions, epochs=80, seed=0, lr=3e-3)
    assert losses[-1] < 0.6 * losses[0]


def test_registered_env_passes_gymnasiums_checker(small_city):
    scenario, network, demand = small_city
    env = gym.make(FLEET_ENV_ID, scenario=scenario, network=network, days=[(demand, None)],
                   config=ObservationConfig(candidates=5))
    assert isinstance(env.unwrapped, FleetPlanningEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    # The features (expected events, net flows) have no finite bounds; nothing else is flagged.
    others = [str(w.message) for w in caught if "infinity" not in str(w.message)]
    assert others == []


def test_vector_entry_point_autoresets_on_the_same_step(small_city):
    scenario, network, demand = small_city
    envs = gym.make_vec(FLEET_ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", scenario=scenario,
                        network=network, days=[(demand, None)], config=ObservationConfig(candidates=5))
    assert isinstance(envs, FleetPlanningVectorEnv) and envs.num_envs == 2
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    _, info, hours = run_day(envs, seed=3, policy_rng=np.random.default_rng(0))
    assert hours == 10 and "final_obs" in info


def test_scalar_env_is_the_vector_env_with_one_city(small_city):
    scenario, network, demand = small_city
    config = ObservationConfig(candidates=5)
    one = FleetPlanningEnv(scenario, network, [(demand, None)], config=config)
    vec = FleetPlanningVectorEnv(scenario, network, [(demand, None)], num_envs=1, config=config)
    obs, info = one.reset(seed=8)
    vec_obs, vec_info = vec.reset(seed=8)
    np.testing.assert_array_equal(obs, vec_obs[0])
    rng = np.random.default_rng(2)
    for hour in range(10):
        choices = info["action_mask"].reshape(-1, 6)
        action = np.array([rng.choice(np.flatnonzero(m)) for m in choices])
        obs, reward, terminated, truncated, info = one.step(action)
        vec_obs, vec_reward, _, vec_truncated, vec_info = vec.step(action[None])
        assert reward == pytest.approx(float(vec_reward[0]), rel=1e-6) and not terminated
        assert truncated == bool(vec_truncated[0]) == (hour == 9)
        if not truncated:
            np.testing.assert_array_equal(obs, vec_obs[0])
    np.testing.assert_array_equal(obs, vec_info["final_obs"][0])
    episode, vec_episode = info["episode"], vec_info["final_info"]["episode"]
    assert episode["problem_share"] == vec_episode["problem_share"][0] > 0
    assert episode["l"] == 10 and episode["r"] == pytest.approx(vec_episode["r"][0])


@pytest.fixture(scope="module")
def two_day_city(small_city):
    """The small city with two days of different demand, and unusable bikes and docks."""
    scenario, network, demand = small_city
    scenario = scenario.override({"riders.unusable_bike_share": 0.3, "riders.unusable_dock_share": 0.4})
    return scenario, network, [(demand, None), (synthetic_demand(network, seed=3, daily_trips=5000), None)]


def random_actions(mask: np.ndarray, rng: np.random.Generator, width: int = 6) -> np.ndarray:
    """One allowed choice per action component of every copy."""
    per_copy = mask.reshape(len(mask), -1, width)
    return np.stack([[rng.choice(np.flatnonzero(m)) for m in copy] for copy in per_copy])


def test_copies_split_over_envs_draw_what_the_whole_env_draws(two_day_city):
    scenario, network, days = two_day_city
    config = ObservationConfig(candidates=5)
    whole = FleetPlanningVectorEnv(scenario, network, days, num_envs=3, config=config)
    parts = [FleetPlanningVectorEnv(scenario, network, days, num_envs=n, config=config) for n in (2, 1)]
    seeds = [14, 15, 16]  # their days: 0, 1, 0
    obs, info = whole.reset(seed=seeds)
    split = [part.reset(seed=seeds, options={"copies": copies}) for part, copies in zip(parts, (range(0, 2), range(2, 3)))]
    np.testing.assert_array_equal(obs, np.concatenate([o for o, _ in split]))
    rng = np.random.default_rng(0)
    days_seen = set()
    for _ in range(25):  # two and a half days: two autoresets, each drawing a day
        days_seen.add(whole.sims.index(whole.sim))
        action = random_actions(info["action_mask"], rng)
        obs, reward, _, truncated, info = whole.step(action)
        split = [part.step(a) for part, a in zip(parts, (action[:2], action[2:]))]
        np.testing.assert_array_equal(obs, np.concatenate([s[0] for s in split]))
        np.testing.assert_array_equal(reward, np.concatenate([s[1] for s in split]))
        np.testing.assert_array_equal(info["action_mask"], np.concatenate([s[4]["action_mask"] for s in split]))
        assert [bool(s[3].all()) for s in split] == [bool(truncated.all())] * 2
    assert days_seen == {0, 1}
    assert not np.array_equal(reward[0], reward[1])  # the copies are not one city thrice


def test_reset_options_are_checked(small_city):
    env = make_env(small_city, num_envs=2)
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(seed=1, options={"bikes": None})
    with pytest.raises(ValueError, match="seeds of every copy"):
        env.reset(seed=1, options={"copies": range(0, 2)})
    with pytest.raises(ValueError, match="not 2 consecutive copies of the 3 seeded"):
        env.reset(seed=[1, 2, 3], options={"copies": range(2, 4)})
    with pytest.raises(ValueError, match="3 seeds for 2 envs"):
        env.reset(seed=[1, 2, 3])
