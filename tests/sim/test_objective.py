"""The declared objective: hand-computed weighted costs."""

import math

from bicimad.sim.objective import objective
from bicimad.sim.scenario import RewardSpec


def test_objective_weighs_problem_hours_losses_diversions_and_km():
    row = {"balanced": 90, "empty": 4, "full": 3, "empty_and_full": 1, "lost_trips": 10.0,
           "diverted_returns": 5.0, "truck_km": 100.0}
    weights = RewardSpec(problem_hour=1.0, lost_trip=0.2, diverted_return=0.1, truck_km=0.01)  # explicit weights
    # 8 problem hours + 0.2 * 10 + 0.1 * 5 + 0.01 * 100 = 8 + 2 + 0.5 + 1
    assert objective(row, weights) == 11.5


def test_balanced_hours_cost_nothing_and_missing_km_counts_zero():
    weights = RewardSpec(problem_hour=2.0, lost_trip=1.0, diverted_return=1.0, truck_km=1.0)
    row = {"balanced": 1000, "empty": 0, "full": 0, "empty_and_full": 2, "lost_trips": 0.0,
           "diverted_returns": 1.0, "truck_km": math.nan}
    assert objective(row, weights) == 5.0
