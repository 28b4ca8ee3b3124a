"""The declared objective: one number per simulated day that every planner is judged on.

It weighs the day's problem station-hours (empty, full, or both within the hour), lost pickups,
diverted returns and truck kilometres with the scenario's weights (``[reward]`` in the scenario
TOML: :class:`bicimad.sim.scenario.RewardSpec`), the same weights the simulator's reward uses,
so a planner that optimises the reward optimises what is reported. Lower is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: The summary-row columns the objective reads.
OBJECTIVE_COLUMNS = ("empty", "full", "empty_and_full", "lost_trips", "diverted_returns", "truck_km")


def objective(summary: Mapping, weights) -> float:
    """The weighted cost of one summary row (a day, or days summed); NaN counts (no trucks
    ran: truck_km NaN) count as 0."""
    def value(key: str) -> float:
        x = float(summary.get(key, 0.0))
        return 0.0 if math.isnan(x) else x

    problem_hours = value("empty") + value("full") + value("empty_and_full")
    return (weights.problem_hour * problem_hours + weights.lost_trip * value("lost_trips")
            + weights.diverted_return * value("diverted_returns") + weights.truck_km * value("truck_km"))
