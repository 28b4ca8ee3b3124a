"""The fleet-policy training env over the simulator, and the OR-Tools imitation warm start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bicimad.plan.fleet_env import FleetPlanningVectorEnv
from bicimad.plan.ortools_planner import ORToolsPlanner
from bicimad.plan.policy import FleetAgent, ObservationConfig, decode
from bicimad.plan.training import behaviour_clone, demonstrations, plan_to_action
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand
from bicimad.sim.scenario import Scenario


@pytest.fixture(scope="module")
def small_city():
    scenario = Scenario().override({"network.stations": 40, "fleet.trucks": 2, "episode.hours": 10})
    network = synthetic_network(40, seed=3)
    demand = synthetic_demand(network, seed=3, daily_trips=8000)
    return scenario, network, demand


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
