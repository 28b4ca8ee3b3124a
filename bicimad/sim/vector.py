"""The hand-vectorised numpy ``VectorEnv`` of ``bicimad/Rebalance-v0``.

All sub-envs share one :class:`~bicimad.sim.core.FleetSim` with a leading env axis, so a
step is a handful of batched numpy operations per simulated minute. Sub-env ``i`` reset
with seed ``s + i`` matches the scalar env reset with that seed, step for step. Episodes
have a fixed length, so the sub-envs run in lockstep and autoreset together
(``AutoresetMode.NEXT_STEP``: the step after the last one resets and ignores its actions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from bicimad.sim.core import SLOT_KEYS
from bicimad.sim.env import build_sim, decode_action, slot_reward, spaces_for
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand
from bicimad.sim.scenario import Scenario
from bicimad.sim.seeds import child_rngs


class RebalanceVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~bicimad.sim.env.RebalanceEnv` (same spaces, rewards, info keys)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, scenario: Scenario | str | None = None, network: Network | None = None,
                 demand=None, forecast: Demand | None = None, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError("the vector env does not render")
        self.num_envs = num_envs
        self.render_mode = None
        self.sim = build_sim(scenario, network, demand, forecast, n_envs=num_envs)
        self.single_observation_space, self.single_action_space = spaces_for(self.sim)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._env_rngs = [seeding.np_random(None)[0] for _ in range(num_envs)]
        self._bikes = None
        self._needs_reset = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed if isinstance(seed, int) or seed is None else None)
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset: {len(seeds)} seeds for {self.num_envs} envs")
            self._env_rngs = [seeding.np_random(s)[0] for s in seeds]
        self._bikes = (options or {}).get("bikes")
        self._restart()
        return self.sim.observe(), self._info(None)

    def _restart(self) -> None:
        self.sim.reset([child_rngs(rng, 1)[0] for rng in self._env_rngs], bikes=self._bikes)
        self._needs_reset = False

    def step(self, actions):
        E = self.num_envs
        if self._needs_reset:
            self._restart()
            zeros = np.zeros(E, dtype=bool)
            return self.sim.observe(), np.zeros(E), zeros, zeros.copy(), self._info(None)
        station, level = decode_action(self.sim, actions)
        out = self.sim.step(station, level=level)
        reward = slot_reward(self.sim, out)
        truncated = np.full(E, self.sim.done)
        self._needs_reset = self.sim.done
        return self.sim.observe(), reward, np.zeros(E, dtype=bool), truncated, self._info(out)

    def _info(self, out: dict | None) -> dict[str, Any]:
        E = self.num_envs
        info: dict[str, Any] = {}
        values = {key: np.zeros(E) if out is None else np.asarray(out[key], dtype=float) for key in SLOT_KEYS}
        values["action_mask"] = self.sim.action_mask()
        values["hour_index"] = np.full(E, self.sim.hour)
        values["occupancy"] = self.sim.occupancy_counts()
        for key, value in values.items():
            info[key] = value
            info[f"_{key}"] = np.ones(E, dtype=bool)
        return info

    def action_mask(self) -> np.ndarray:
        """(num_envs, k, n + 1) bool: allowed stations per truck (last column: idle)."""
        return self.sim.action_mask()
