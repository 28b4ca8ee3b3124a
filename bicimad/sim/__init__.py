"""The rebalancing simulator: scenarios, the gymnasium envs, and the planner driver.

Importing this package registers ``bicimad/Rebalance-v0`` (scalar env, with the
hand-vectorised numpy env as its ``vector_entry_point``).
"""

from __future__ import annotations

import gymnasium

ENV_ID = "bicimad/Rebalance-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID,
        entry_point="bicimad.sim.env:RebalanceEnv",
        vector_entry_point="bicimad.sim.vector:RebalanceVectorEnv",
    )
