"""The fleet policy's observation, action decoding, network and planner (untrained weights)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bicimad.plan import make_planner
from bicimad.plan.base import check_plan
from bicimad.plan.policy import (
    FEATURES,
    FleetAgent,
    ObservationConfig,
    PolicyPlanner,
    decode,
    load_policy,
    observe,
    save_policy,
)


def two_visit(view):
    return dataclasses.replace(view, visits_per_hour=2)


def random_observations(make_random_view, seed: int, count: int, candidates: int = 6):
    """``count`` random two-visit views (from one seeded generator) with their observations."""
    rng = np.random.default_rng(seed)
    config = ObservationConfig(candidates=candidates)
    for _ in range(count):
        view = two_visit(make_random_view(rng))
        yield view, observe(view, config), rng


def test_observation_lists_reachable_candidates_best_first(make_random_view):
    view = two_visit(make_random_view(np.random.default_rng(1)))
    config = ObservationConfig(candidates=8)
    obs = observe(view, config)
    assert obs.features.shape == (view.n_trucks, 8, len(FEATURES))
    assert obs.mask.shape == (view.n_trucks * 2 * 9,)
    value_full = FEATURES.index("value_full")
    for truck in range(view.n_trucks):
        real = obs.candidates[truck][obs.candidates[truck] >= 0]
        assert view.reachable[truck, real].all()
        assert (np.diff(obs.features[truck, : len(real), value_full]) <= 1e-12).all()
        # Padding is masked out in both slots; "no visit" never is.
        mask = obs.mask.reshape(view.n_trucks, 2, 9)[truck]
        assert not mask[:, len(real):8].any() and mask[:, 8].all()


def test_first_slot_masks_moves_the_truck_cannot_make(make_line_view):
    # An empty truck: stations below target (unload) are masked in slot 0, allowed in slot 1.
    view = make_line_view([20, 10, 0, 10], [20] * 4, truck_station=(1,), truck_load=(0,))
    obs = observe(view, ObservationConfig(candidates=4))
    mask = obs.mask.reshape(1, 2, 5)[0]
    gaps = view.bikes - obs.target
    for slot_choice, station in enumerate(obs.candidates[0]):
        if station >= 0:
            assert mask[0, slot_choice] == (gaps[station] > 0)
            assert mask[1, slot_choice]


def test_decoded_plans_keep_every_limit(make_random_view):
    for view, obs, rng in random_observations(make_random_view, seed=2, count=30):
        action = rng.integers(0, 7, view.n_trucks * 2)     # any action, masked or not
        check_plan(view, decode(view, obs, action))


def test_decode_moves_the_chosen_station_to_its_target(make_line_view):
    view = make_line_view([20, 10, 0, 10], [20] * 4, truck_station=(1,))
    obs = observe(view, ObservationConfig(candidates=4))
    full, empty = [int(np.flatnonzero(obs.candidates[0] == s)[0]) for s in (0, 2)]
    plan = decode(view, obs, np.array([full, empty]))
    assert plan == [[type(plan[0][0])(0, 20 - int(obs.target[0])), type(plan[0][0])(2, -int(obs.target[2]))]]
    # The same station twice is one visit; "no visit" is none.
    assert len(decode(view, obs, np.array([full, full]))[0]) == 1
    assert decode(view, obs, np.array([4, 4])) == [[]]


def test_agent_shares_parameters_across_trucks(make_random_view):
    torch.manual_seed(0)
    config = ObservationConfig(candidates=5)
    agent = FleetAgent(config)
    view = two_visit(make_random_view(np.random.default_rng(4), k=3))
    obs = observe(view, config)
    x = torch.as_tensor(obs.features[None])
    _, logp, entropy, value = agent.get_action_and_value(x, mask=torch.as_tensor(obs.mask[None]))
    assert logp.shape == entropy.shape == value.shape == (1,)
    # Swapping two trucks' observations swaps their logits and leaves the value unchanged.
    swapped = x[:, [1, 0, 2]]
    x0, e0, c0 = agent._encode(x)
    x1, e1, c1 = agent._encode(swapped)
    l0 = agent._logits(x0, e0, c0).reshape(3, -1)
    l1 = agent._logits(x1, e1, c1).reshape(3, -1)
    torch.testing.assert_close(l0[[1, 0, 2]], l1)
    torch.testing.assert_close(agent.get_value(x), agent.get_value(swapped))
    # One policy serves any fleet size.
    bigger = two_visit(make_random_view(np.random.default_rng(4), k=6))
    assert len(PolicyPlanner(agent).plan(bigger)) == 6


def test_untrained_policy_prefers_valuable_stops(make_line_view):
    torch.manual_seed(0)
    view = make_line_view([20, 10, 0, 10], [20] * 4, truck_station=(1,))
    plan = PolicyPlanner(FleetAgent(ObservationConfig(candidates=4))).plan(view)
    assert [v.station for v in plan[0]] == [0, 2]


def test_saved_policy_plans_the_same_after_loading(tmp_path, make_random_view):
    torch.manual_seed(3)
    agent = FleetAgent(ObservationConfig(candidates=6, hidden=16))
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_policy(agent, tmp_path / "run")
    planner = make_planner("ppo", policy_dir=tmp_path / "run")
    view = two_visit(make_random_view(np.random.default_rng(9)))
    assert planner.plan(view) == PolicyPlanner(agent).plan(view)
    assert load_policy(tmp_path / "run").config == agent.config


def test_loading_a_non_policy_folder_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no policy.json.*train-agent"):
        load_policy(tmp_path)
    (tmp_path / "policy.json").write_text('{"candidates": 4, "colour": 1}')
    (tmp_path / "policy.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="policy.json: bad policy config"):
        load_policy(tmp_path)


def test_visit_slots_must_match_the_fleet(make_line_view):
    view = make_line_view([5, 5], [10, 10], visits_per_hour=3)
    with pytest.raises(ValueError, match="2 visits per hour; the fleet makes 3"):
        observe(view, ObservationConfig())


def test_ranked_decoding_sends_the_second_truck_elsewhere(make_line_view):
    # Two empty trucks at the same station; stations 0 and 4 are full. Both prefer station 0:
    # with a ranking, the second truck takes its next choice instead of wasting the visit.
    view = make_line_view([20, 10, 10, 10, 20], [20] * 5, truck_station=(2, 2), truck_load=(0, 0),
                          visits_per_hour=1)
    obs = observe(view, ObservationConfig(candidates=4, visits_per_hour=1))
    first, second = (int(np.flatnonzero(obs.candidates[0] == s)[0]) for s in (0, 4))
    ranking = np.array([[first, second, 4, 0, 1], [first, second, 4, 0, 1]])[:, :5]
    plan = decode(view, obs, None, ranking=ranking)
    assert [route[0].station for route in plan] == [0, 4]
    # The single most likely action wastes it.
    assert decode(view, obs, ranking[:, 0]) == [plan[0], []]


def test_candidates_split_between_stations_to_load_and_to_unload(make_random_view):
    # Half sources (above target) and half sinks while both kinds last, the rest from the other kind.
    for view, obs, _ in random_observations(make_random_view, seed=5, count=20):
        gap = view.bikes - obs.target
        for truck in range(view.n_trucks):
            sources = int((view.reachable[truck] & (gap > 0)).sum())
            sinks = int((view.reachable[truck] & (gap < 0)).sum())
            real = obs.candidates[truck][obs.candidates[truck] >= 0]
            up = int((gap[real] > 0).sum())
            assert len(real) == min(6, sources + sinks)
            assert up == min(sources, max(3, 6 - sinks))
            assert len(real) - up == min(sinks, 6 - up)
