"""OR-Tools' candidate stops against greedy stops on the same objective, on real days.

``ortools-1h`` keeps the 60 stations whose best stop is worth most and two sizes per station (the
gap to the cost-minimising target and half of it); ``ortools`` keeps every station in the trucks'
reach (``max_stations`` None); ``greedy-objective`` looks at every station in each truck's reach
at any size. This script runs them and OR-Tools with every station and four sizes
(``fractions``) on the same days and rider draws, and prints
each planner's mean objective, problem share at the hour start, lost trips, truck km and
decision seconds per day. It reads a processed data folder (``bicimad ingest``) and EMT's
daily counts::

    python tests/bench/bench_ortools_candidates.py --data-dir DIR --daily-usage CSV \\
        --scenario seed-fleet-2018 --period 2018-09-08:2018-09-16 --seeds 1
"""

from __future__ import annotations

import argparse

import pandas as pd

from bicimad.jobs.compare import load_daily_usage, parse_period, prepare_days, run_comparison
from bicimad.plan import planner_for
from bicimad.plan.ortools_planner import ORTOOLS_1H_CANDIDATES, ORToolsPlanner, objective_weights
from bicimad.sim.scenario import load_scenario

VARIANTS = {
    "ortools-1h": ORTOOLS_1H_CANDIDATES,
    "ortools, every station": {},
    "ortools, every station, 4 sizes": {"fractions": (1.0, 0.75, 0.5, 0.25)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--daily-usage", required=True)
    parser.add_argument("--scenario", default="seed-fleet-2018")
    parser.add_argument("--period", default="2018-09-08:2018-09-16")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=0.3)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    start, end = parse_period(args.period)
    usage = load_daily_usage(args.daily_usage, args.data_dir)
    days, _ = prepare_days(scenario, start, end, args.data_dir, daily_usage=usage)
    weights = objective_weights(scenario.reward)
    planners = {label: ORToolsPlanner(**weights, time_limit_s=args.time_limit, name=label, **changes)
                for label, changes in VARIANTS.items()}
    planners["greedy-objective"] = planner_for("greedy-objective", scenario)
    _, _, per_day = run_comparison(scenario, days, planners, list(range(args.seeds)), progress=True)
    table = per_day.groupby("planner", sort=False)[["objective", "problem_share_at_hour_start", "lost_trips",
                                                    "truck_km", "decision_s"]].mean()
    with pd.option_context("display.width", 200, "display.max_columns", 10, "display.float_format", "{:.3f}".format):
        print(f"{len(days)} days x {args.seeds} draw(s), {args.scenario}, {args.period}")
        print(table)


if __name__ == "__main__":
    main()
