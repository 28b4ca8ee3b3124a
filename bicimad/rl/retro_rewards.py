"""Shaped rewards for stable-retro games from RAM variables: the seed's Gradius III design.

``reward = w_score * score increment + w_powerup * power-ups picked
+ w_boss_damage * reduction of the boss's life - w_death * lives lost``, each step.

The variables are read through stable-retro's own game data (``env.unwrapped.data``): the
addresses and types in ``data/retro_rewards.json`` are registered on it with ``set_variable``
and read back with ``lookup_value``, so BCD scores and big-endian words decode as stable-retro
decodes its bundled integrations. For Gradius III, ``score`` and ``lives`` are stable-retro's
bundled addresses (verified); the power-meter and boss-life addresses are not located yet
(``"verified": false``, address null): until someone checks them with a ROM, those two terms
are off and :class:`RamReward` says so in ``unverified``. Weights and addresses can be replaced
per call (:func:`load_game`, then ``RamReward(env, variables, weights)``).

Only increases count for score and power-ups (the meter resets when a power-up is used), only
decreases for boss life (a new boss's bar filling up is no reward) and lives (an extra life is
no penalty against).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from importlib import resources

import gymnasium as gym

TERMS = ("score", "powerup", "boss_damage", "death")
PREFIX = "bicimad_"  #: our variables' names in stable-retro's game data


@dataclass(frozen=True)
class RewardWeights:
    """Weight of each reward term (0 turns a term off)."""

    score: float = 1.0
    """per point of score gained"""
    powerup: float = 0.0
    """per step of the power meter gained (a capsule picked up)"""
    boss_damage: float = 0.0
    """per unit of boss life removed"""
    death: float = 0.0
    """per life lost (subtracted)"""


@dataclass(frozen=True)
class RamVariable:
    """One RAM variable in stable-retro's data.json convention; ``address`` None: not located."""

    address: int | None
    type: str
    verified: bool
    source: str = ""


def load_game(game: str) -> tuple[dict[str, RamVariable], RewardWeights]:
    """Variables and default weights of ``game`` from ``data/retro_rewards.json``."""
    table = json.loads(resources.files("bicimad.rl").joinpath("data/retro_rewards.json").read_text())
    if game not in table or game.startswith("_"):
        known = sorted(k for k in table if not k.startswith("_"))
        raise ValueError(f"no RAM reward data for {game!r} in bicimad/rl/data/retro_rewards.json: known {known}")
    entry = table[game]
    variables = {name: RamVariable(**spec) for name, spec in entry["variables"].items()}
    return variables, RewardWeights(**entry["weights"])


def step_reward(previous: dict[str, float], current: dict[str, float], weights: RewardWeights) -> dict[str, float]:
    """Each weighted term of one step's reward (keys :data:`TERMS`; absent variables give 0)."""
    def change(name: str) -> float:
        if name in previous and name in current:
            return float(current[name]) - float(previous[name])
        return 0.0

    return {"score": weights.score * max(0.0, change("score")),
            "powerup": weights.powerup * max(0.0, change("powerup")),
            "boss_damage": weights.boss_damage * max(0.0, -change("boss_life")),
            "death": -weights.death * max(0.0, -change("lives"))}


class RamReward(gym.Wrapper):
    """Replace a stable-retro env's scenario reward by :func:`step_reward` over RAM variables.

    Put it directly over the retro env (before frame skipping, so every emulator frame's change
    is counted). ``info["reward_terms"]`` holds the step's weighted terms; ``info["ram"]`` the
    variables read.
    """

    def __init__(self, env: gym.Env, variables: dict[str, RamVariable], weights: RewardWeights):
        super().__init__(env)
        self.weights = weights
        self.unverified = sorted(name for name, var in variables.items() if not var.verified)
        data = env.unwrapped.data
        self.names = []
        for name, var in variables.items():
            if var.address is None:
                continue
            # Registered under our own prefix: the game's own variables (and info keys) stay untouched.
            data.set_variable(PREFIX + name, {"address": int(var.address), "type": var.type})
            self.names.append(name)
        self._previous: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        data = self.env.unwrapped.data
        return {name: float(data.lookup_value(PREFIX + name)) for name in self.names}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._previous = self._read()
        return obs, info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        current = self._read()
        terms = step_reward(self._previous, current, self.weights)
        self._previous = current
        info = dict(info, reward_terms=terms, ram=current)
        return obs, sum(terms.values()), terminated, truncated, info


def weights_with(base: RewardWeights, **changes: float) -> RewardWeights:
    """``base`` with some weights replaced (unknown names refused)."""
    unknown = set(changes) - {f.name for f in fields(RewardWeights)}
    if unknown:
        raise ValueError(f"unknown reward weight(s) {sorted(unknown)}: known {list(TERMS)}")
    return RewardWeights(**{**base.__dict__, **changes})
