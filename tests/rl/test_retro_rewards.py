"""The RAM-variable reward (the seed's Gradius III design) on recorded values and on Airstriker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bicimad.rl.retro_rewards import RamReward, RewardWeights, load_game, step_reward, weights_with


def test_step_reward_on_recorded_gradius_ram_values():
    # Recorded values of the four variables over six steps: points scored, a capsule picked up,
    # the power-up used (meter back to 0), a boss appearing (life 0 -> 40) and hit twice, a death.
    recorded = [
        {"score": 0, "lives": 3, "powerup": 0, "boss_life": 0},
        {"score": 100, "lives": 3, "powerup": 1, "boss_life": 0},   # +100 points, +1 capsule
        {"score": 100, "lives": 3, "powerup": 0, "boss_life": 40},  # meter used, boss appears: nothing
        {"score": 300, "lives": 3, "powerup": 0, "boss_life": 35},  # +200 points, boss -5
        {"score": 300, "lives": 2, "powerup": 0, "boss_life": 33},  # boss -2, one life lost
        {"score": 300, "lives": 3, "powerup": 0, "boss_life": 33},  # extra life: no reward either way
    ]
    weights = RewardWeights(score=0.01, powerup=2.0, boss_damage=0.5, death=10.0)
    rewards = [sum(step_reward(a, b, weights).values()) for a, b in zip(recorded, recorded[1:])]
    np.testing.assert_allclose(rewards, [1.0 + 2.0, 0.0, 2.0 + 2.5, 1.0 - 10.0, 0.0])
    terms = step_reward(recorded[3], recorded[4], weights)
    assert terms == {"score": 0.0, "powerup": 0.0, "boss_damage": 1.0, "death": -10.0}
    # Variables a game lacks (Airstriker has no power meter) contribute nothing.
    assert step_reward({"score": 5}, {"score": 7}, weights) == {"score": 0.02, "powerup": 0.0,
                                                                "boss_damage": 0.0, "death": 0.0}
    assert weights_with(weights, death=1.0).death == 1.0
    with pytest.raises(ValueError, match="unknown reward weight"):
        weights_with(weights, bonus=1.0)


def _bundled_data(game: str) -> dict:
    import stable_retro

    return json.loads((Path(stable_retro.__file__).parent / "data" / "stable" / f"{game}-v0" / "data.json").read_text())


def test_gradius_data_keeps_bundled_addresses_and_marks_the_others_unverified():
    pytest.importorskip("stable_retro")
    variables, weights = load_game("GradiusIII-Snes")
    bundled = _bundled_data("GradiusIII-Snes")["info"]
    for name in ("score", "lives"):
        assert variables[name].verified
        assert (variables[name].address, variables[name].type) == (bundled[name]["address"], bundled[name]["type"])
    assert not variables["powerup"].verified and not variables["boss_life"].verified
    assert weights.powerup > 0 and weights.boss_damage > 0 and weights.death > 0
    with pytest.raises(ValueError, match="no RAM reward data"):
        load_game("Nonexistent-Snes")


def test_ram_reward_on_airstriker_reads_the_variables_stable_retro_reads():
    stable_retro = pytest.importorskip("stable_retro")
    variables, _ = load_game("Airstriker-Genesis")
    bundled = _bundled_data("Airstriker-Genesis")["info"]
    assert all(variables[n].address == bundled[n]["address"] for n in ("score", "lives"))
    weights = RewardWeights(score=1.0, death=2.0)
    env = stable_retro.make("Airstriker-Genesis-v0", render_mode=None)
    try:
        wrapped = RamReward(env, variables, weights)   # registered under its own names beside retro's
        wrapped.reset(seed=0)
        previous = dict(wrapped._previous)
        rng = np.random.default_rng(0)
        fire = list(env.unwrapped.buttons).index("B")
        expected, got = [], []
        for _ in range(1500):
            action = rng.integers(0, 2, len(env.unwrapped.buttons)).astype(np.int8)
            action[fire] = 1
            _, reward, terminated, truncated, info = wrapped.step(action)
            # stable-retro's own reading of its bundled variables, and the reward by hand from it
            assert info["ram"] == {"score": info["score"], "lives": info["lives"]}
            expected.append(max(0, info["score"] - previous["score"]) - 2.0 * max(0, previous["lives"] - info["lives"]))
            got.append(reward)
            previous = {"score": info["score"], "lives": info["lives"]}
            if terminated or truncated:
                break
        np.testing.assert_array_equal(got, expected)
        assert sum(r > 0 for r in got) > 0                        # it scored: the score term was exercised
    finally:
        env.close()
