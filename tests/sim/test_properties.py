"""Property tests: invariants of the simulator under random scenarios and random (also invalid) actions."""

import numpy as np
from gymnasium.vector import SyncVectorEnv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bicimad.sim.core import SLOT_KEYS
from bicimad.sim.env import RebalanceEnv
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import Demand, synthetic_demand
from bicimad.sim.scenario import Scenario
from bicimad.sim.vector import RebalanceVectorEnv

PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def setups(draw):
    n = draw(st.integers(4, 18))
    seed = draw(st.integers(0, 2**16))
    network = synthetic_network(n, seed=seed)
    fill = np.random.default_rng(seed).uniform(0, 1, n)  # some stations near empty, some near full
    network = network.with_bikes(np.rint(fill * network.capacity))
    # busy hours (from the morning peak on) empty and fill stations within the episode
    day = synthetic_demand(network, daily_trips=draw(st.sampled_from([300.0, 3000.0])) * n / 10, seed=seed)
    start = draw(st.sampled_from([0, 7, 17]))
    demand = Demand(day.hours[start:], day.pickup_rate[start:], day.return_rate[start:])
    scenario = Scenario(name="prop").override({
        "fleet.trucks": draw(st.integers(0, 4)),
        "fleet.truck_capacity": draw(st.integers(1, 22)),
        "fleet.visits_per_hour": draw(st.sampled_from([1, 2, 3, 4])),
        "fleet.radius_km": draw(st.sampled_from([0.0, 1.0, 3.5])),
        "fleet.speed_kmh": draw(st.sampled_from([5.0, 20.0])),
        "riders.walk_km": draw(st.sampled_from([0.0, 0.8])),
        "episode.hours": draw(st.integers(1, 4)),
    })
    scenario = scenario.override({"fleet.initial_load": draw(st.integers(0, scenario.fleet.truck_capacity))})
    return network, demand, scenario, seed


def random_action(env_like, sim, rng, e=0):
    """Half the time a masked (legal) choice, otherwise any station, in or out of reach."""
    mask = sim.action_mask()[e]
    action = []
    for j in range(sim.k):
        legal = np.flatnonzero(mask[j])
        station = rng.choice(legal) if rng.random() < 0.5 else rng.integers(sim.n + 1)
        action += [station, rng.integers(len(sim.fill_levels))]
    return np.array(action, dtype=np.int64)


@PROPS
@given(setups(), st.integers(0, 1000))
def test_invariants_hold_every_step(setup, action_seed):
    network, demand, scenario, seed = setup
    env = RebalanceEnv(scenario, network, demand)
    sim = env.sim
    env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    total = sim.total_bikes()[0]
    assert total == network.bikes.sum() + scenario.fleet.trucks * scenario.fleet.initial_load
    base_dist = network.distance_km[sim.bases]
    visits = np.zeros(sim.k, int)
    truncated = False
    while not truncated:
        if sim.slot == 0:
            visits[:] = 0
        _, _, _, truncated, info = env.step(random_action(env, sim, rng))
        visits += sim.visit_minute[0] >= 0
        b = sim.bikes
        assert sim.total_bikes()[0] == total, "bikes are conserved (docked + trucks + riding)"
        assert b.min() >= 0 and np.all(b <= sim.cap)
        assert np.all((sim.truck_load >= 0) & (sim.truck_load <= scenario.fleet.truck_capacity))
        assert np.all(visits <= scenario.fleet.visits_per_hour)
        pos = sim.truck_pos[0]
        for j in range(sim.k):
            assert pos[j] == sim.bases[j] or base_dist[j, pos[j]] <= scenario.fleet.radius_km
        assert info["lost_trips"] >= 0 and info["diverted_returns"] >= 0
    counts = info["occupancy"]
    assert counts.sum() == scenario.episode.hours * network.n


@PROPS
@given(setups(), st.integers(0, 1000))
def test_same_seed_same_trajectory(setup, action_seed):
    network, demand, scenario, seed = setup
    runs = []
    for _ in range(2):
        env = RebalanceEnv(scenario, network, demand)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(action_seed)
        trajectory = [obs]
        truncated = False
        while not truncated:
            obs, reward, _, truncated, info = env.step(random_action(env, env.sim, rng))
            trajectory += [obs, np.array([reward]), np.array([info[k] for k in SLOT_KEYS])]
        runs.append(np.concatenate([np.ravel(x) for x in trajectory]))
    np.testing.assert_array_equal(runs[0], runs[1])


@PROPS
@given(setups(), st.integers(0, 1000), st.integers(1, 4))
def test_vector_env_matches_scalar_envs(setup, action_seed, n_envs):
    network, demand, scenario, seed = setup
    vec = RebalanceVectorEnv(n_envs, scenario, network, demand)
    ref = SyncVectorEnv([lambda: RebalanceEnv(scenario, network, demand) for _ in range(n_envs)])
    obs_v, _ = vec.reset(seed=seed)
    obs_r, _ = ref.reset(seed=seed)
    np.testing.assert_array_equal(obs_v, obs_r)
    rng = np.random.default_rng(action_seed)
    for _ in range(vec.sim.n_steps + 2):  # past the end: both autoreset on the next step
        actions = np.stack([random_action(vec, vec.sim, rng, e) for e in range(n_envs)])
        out_v = vec.step(actions)
        out_r = ref.step(actions)
        for a, b in zip(out_v[:4], out_r[:4]):
            np.testing.assert_array_equal(a, b)
        for key in SLOT_KEYS + ("hour_index",):
            np.testing.assert_array_equal(out_v[4][key], out_r[4][key])
        np.testing.assert_array_equal(out_v[4]["action_mask"], out_r[4]["action_mask"])
