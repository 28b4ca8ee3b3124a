"""Run any :class:`~bicimad.sim.interface.Planner` through a simulated episode.

``run_episode`` is the one driver every comparison uses: the riders come from the truth
demand and the seed only (drawn before any truck moves), so planners run with the same
seed meet the same riders (common random numbers); the planner sees the forecast only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from bicimad.opendata.schemas import OCCUPANCY_SUMMARY_COLUMNS
from bicimad.sim.core import FleetSim
from bicimad.sim.interface import Planner, check_plan
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand
from bicimad.sim.scenario import Scenario
from bicimad.sim.seeds import rider_rng


@dataclass
class EpisodeResult:
    """One episode: per station-hour occupancy, the one-row summary and per-hour info."""

    occupancy: pd.DataFrame   #: the ``occupancy`` table
    summary: pd.DataFrame     #: one row, ``OCCUPANCY_SUMMARY_COLUMNS``
    steps: list[dict] = field(default_factory=list)  #: per hour: hour, quantities, decision seconds
    scenario: Scenario | None = None
    seed: int | None = None


def run_episode(network: Network, truth_demand, forecast: Demand | None, scenario: Scenario,
                planner: Planner | None, seed: int, horizon: int | None = None,
                progress: bool = False) -> EpisodeResult:
    """Simulate one episode with ``planner`` deciding every hour.

    ``truth_demand``: the riders (a :class:`Demand` of rates or a ``TripReplay``);
    ``forecast``: what the planner may see (defaults to the truth rates, for synthetic runs);
    ``horizon``: hours of forecast in each :class:`FleetView` (default: the rest of the day);
    ``planner`` None: the trucks stay idle (summary row ``planner = "none"``).
    A plan that breaks a fleet limit raises :class:`~bicimad.sim.interface.PlanError`.
    """
    sim = FleetSim(network, scenario, truth_demand, n_envs=1, forecast=forecast)
    sim.reset([rider_rng(seed)])
    name = planner.name if planner is not None else "none"
    steps: list[dict] = []
    decision_s = 0.0
    hours = range(sim.H)
    if progress:
        from tqdm import tqdm

        hours = tqdm(hours, desc=f"{name} seed {seed}", unit="h", leave=False)
    for _ in hours:
        view = sim.fleet_view(0, horizon)
        t0 = time.perf_counter()
        plan = planner.plan(view) if planner is not None else [[] for _ in range(view.n_trucks)]
        spent = time.perf_counter() - t0
        decision_s += spent
        check_plan(view, plan)
        out = sim.execute_plan(plan)
        steps.append({"hour": sim.hours[view.hour_index], "decision_s": spent, **out})
    summary = sim.summary(0, planner=name, decision_s_per_hour=decision_s / max(sim.H, 1))
    return EpisodeResult(
        occupancy=sim.occupancy_table(0),
        summary=pd.DataFrame([summary], columns=list(OCCUPANCY_SUMMARY_COLUMNS)),
        steps=steps,
        scenario=scenario,
        seed=seed,
    )
