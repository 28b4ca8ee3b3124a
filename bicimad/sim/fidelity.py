"""Fidelity of the simulator against real snapshots: run with no trucks from a real state.

From a real snapshot, the simulator runs ``horizons`` hours on some demand with no truck
acting; its expected docked bikes per station (the mean over several rider draws) are
compared with the real snapshots that followed, and with persistence (the bikes at the
start). The job ``bicimad sim fidelity`` picks the origins, the demand and the truck-move
flags; this module holds the simulation and the scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bicimad.sim.core import FleetSim
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand
from bicimad.sim.scenario import Scenario


def expected_bikes(network: Network, demand: Demand, hours: int, n_draws: int = 8, seed: int = 0,
                   scenario: Scenario | None = None) -> np.ndarray:
    """(hours, n) mean docked bikes at the end of each hour over ``n_draws`` rider draws, no trucks."""
    scenario = (scenario or Scenario(name="fidelity")).override({"fleet.trucks": 0, "episode.hours": hours})
    sim = FleetSim(network, scenario, demand, n_envs=n_draws)
    sim.reset([np.random.default_rng([seed, e]) for e in range(n_draws)])
    out = np.zeros((sim.H, network.n))
    idle = np.zeros((n_draws, 0), np.int64)
    while not sim.done:
        sim.step(idle)
        if sim.slot == 0:
            out[sim.hour - 1] = sim.bikes2d().mean(axis=0)
    return out


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """MAE of the simulation and of persistence per horizon, over all station-windows and
    over those without an operator truck move; columns per horizon:
    ``n, mae_sim, mae_persistence, skill`` (1 - sim / persistence) and the same ``_no_truck``,
    plus ``truck_share`` (station-windows with a truck move) and ``truck_error_share`` (the
    share of the simulation's absolute error inside those windows)."""
    rows = rows.assign(err_sim=(rows["sim"] - rows["real"]).abs(), err_persist=(rows["start"] - rows["real"]).abs())
    out = []
    for h, g in rows.groupby("horizon"):
        clean = g[~g["truck_move"]]
        rec = {"horizon": h, "n": len(g), "mae_sim": g["err_sim"].mean(),
               "mae_persistence": g["err_persist"].mean(), "truck_share": g["truck_move"].mean(),
               "n_no_truck": len(clean), "mae_sim_no_truck": clean["err_sim"].mean(),
               "mae_persistence_no_truck": clean["err_persist"].mean()}
        # the part of the simulator's error that sits in windows with an operator truck move
        rec["truck_error_share"] = g.loc[g["truck_move"], "err_sim"].sum() / max(g["err_sim"].sum(), 1e-12)
        rec["skill"] = 1 - rec["mae_sim"] / rec["mae_persistence"]
        rec["skill_no_truck"] = 1 - rec["mae_sim_no_truck"] / rec["mae_persistence_no_truck"]
        out.append(rec)
    return pd.DataFrame(out)
