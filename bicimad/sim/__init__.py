"""The rebalancing simulator: scenarios, the gymnasium envs, and the planner driver.

Importing this package registers ``bicimad/Rebalance-v0`` (the minute-level env for planners
and external agents, with the hand-vectorised numpy env as its ``vector_entry_point``); the
hour-level env the fleet policy trains on, ``bicimad/FleetPlanning-v0``, is registered by
:mod:`bicimad.plan`.
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

#: Public names, imported on first use so ``import bicimad.sim`` stays light.
_EXPORTS = {
    "run_episode": "bicimad.sim.rollout",
    "EpisodeResult": "bicimad.sim.rollout",
    "Scenario": "bicimad.sim.scenario",
    "load_scenario": "bicimad.sim.scenario",
    "write_scenario": "bicimad.sim.scenario",
    "Network": "bicimad.sim.network",
    "Demand": "bicimad.sim.riders",
    "TripReplay": "bicimad.sim.riders",
    "FleetSim": "bicimad.sim.core",
    "RebalanceEnv": "bicimad.sim.env",
    "RebalanceVectorEnv": "bicimad.sim.vector",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bicimad.sim' has no attribute {name!r}")
