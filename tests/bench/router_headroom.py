"""Where the router's room is: what it would gain from more information, and from more trucks.

    .venv/bin/python tests/bench/router_headroom.py --data-dir DATA --period 2019-08-01:2019-08-31 \\
        --daily-usage U --router models/routers/seed-fleet-2019 --workers 2
    .venv/bin/python -m pytest -m bench tests/bench/router_headroom.py -s   # synthetic city, checked

One router (``--router``, a ``bicimad train-router`` folder) plans every day of ``--period`` on
the same rider draws (common random numbers) in each of these settings:

- ``forecast``: as in every comparison, the forecast made from the days before (forecast ≠ truth);
- ``perfect``: the day's truth itself (the router's perfect-forecast bound);
- ``true volume``: the forecast scaled so its day total is the truth's (the day's volume known);
- ``true net flows``: each station-hour's net flow (returns − pickups) the truth's, its gross
  volume the forecast's (where each station drifts known, not how busy the day is);
- ``12 trucks`` and ``4 visits an hour``: the forecast again, with twice the fleet's visits.

Each setting is paired by day with ``forecast``: mean objective a day and the 95 % bootstrap
interval over days of the relative change (:func:`bicimad.jobs.compare.paired_by_day`).

It also measures how far the day so far predicts the forecast's error (what a nowcast could
correct): per station-hour the residual ``r`` = truth's net flow − forecast's, and its
correlation with the mean of the same station's residuals earlier that day, both as the rates
say (an oracle reading the day's true rates so far) and as a planner could see them (with each
hour's Poisson noise of the riders). Use a training month: nothing here may touch test days.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest

from bicimad.jobs.compare import day_seed, load_daily_usage, paired_by_day, parse_period, prepare_days
from bicimad.plan.ortools_planner import objective_weights
from bicimad.plan.router import GREEDY_START, read_router, router_planner
from bicimad.sim import run_episode
from bicimad.sim.objective import objective
from bicimad.sim.riders import Demand
from bicimad.sim.scenario import load_scenario

INFORMATION = ("forecast", "perfect", "true volume", "true net flows")
FLEET = {"12 trucks": {"trucks": 12}, "4 visits an hour": {"visits_per_hour": 4}}

_WORK: dict = {}


def seen_by_planner(setting: str, truth: Demand, forecast: Demand) -> Demand:
    """What the planner sees in ``setting`` (module docstring): a forecast built from the truth."""
    if setting == "perfect":
        return Demand(truth.hours, truth.pickup_rate, truth.return_rate, truth.od)
    if setting == "true volume":
        scale = (truth.pickup_rate.sum() + truth.return_rate.sum()) / max(
            forecast.pickup_rate.sum() + forecast.return_rate.sum(), 1e-9)
        return Demand(forecast.hours, forecast.pickup_rate * scale, forecast.return_rate * scale, forecast.od)
    if setting == "true net flows":
        half_gross = (forecast.pickup_rate + forecast.return_rate) / 2
        half_net = (truth.return_rate - truth.pickup_rate) / 2
        return Demand(forecast.hours, np.maximum(half_gross - half_net, 0), np.maximum(half_gross + half_net, 0), forecast.od)
    return forecast


def _simulate(task) -> float:
    setting, index, seed = task
    scenario, days, params = _WORK["scenario"], _WORK["days"], _WORK["params"]
    day = days[index]
    if setting in FLEET:
        scenario = dataclasses.replace(scenario, fleet=dataclasses.replace(scenario.fleet, **FLEET[setting]))
    forecast = day.forecast if day.forecast is not None else day.truth
    seen = seen_by_planner(setting, day.truth, forecast) if setting in INFORMATION else forecast
    planner = router_planner(params, **objective_weights(scenario.reward))
    result = run_episode(day.network, day.truth, seen, scenario, planner, seed=seed)
    return objective(result.summary.iloc[0], scenario.reward)


def headroom(scenario, days, params: dict, draws: int = 1, workers: int = 1) -> pd.DataFrame:
    """One row per setting, day and draw: the day's declared objective (``paired_by_day``'s input)."""
    _WORK.update(scenario=scenario, days=days, params=params)
    settings = [*INFORMATION, *FLEET]
    keys = [(s, i, d) for s in settings for i in range(len(days)) for d in range(draws)]
    tasks = [(s, i, day_seed(d, i)) for s, i, d in keys]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            costs = list(pool.map(_simulate, tasks, chunksize=1))
    else:
        costs = [_simulate(t) for t in tasks]
    return pd.DataFrame([{"planner": s, "day": days[i].date, "seed": d, "objective": c}
                         for (s, i, d), c in zip(keys, costs)])


def nowcast_reach(days, seed: int = 0) -> dict:
    """How well each station's mean residual so far predicts its next hour's (module docstring)."""
    rng = np.random.default_rng(seed)
    seen, oracle, target = [], [], []
    for day in days:
        if day.forecast is None:
            continue
        truth, forecast = day.truth, day.forecast
        residual = (truth.return_rate - truth.pickup_rate) - (forecast.return_rate - forecast.pickup_rate)
        noisy = residual + rng.normal(0.0, np.sqrt(truth.return_rate + truth.pickup_rate))
        for hour in range(3, residual.shape[0]):
            oracle.append(residual[:hour].mean(axis=0))
            seen.append(noisy[:hour].mean(axis=0))
            target.append(residual[hour])
    if not target:
        return {"station_hours": 0}
    y, x_true, x_seen = (np.concatenate(v) for v in (target, oracle, seen))
    return {"station_hours": int(y.size), "residual_std": float(y.std()),
            "corr_true_rates_so_far": float(np.corrcoef(x_true, y)[0, 1]),
            "corr_seen_so_far": float(np.corrcoef(x_seen, y)[0, 1])}


def report(per_day: pd.DataFrame) -> pd.DataFrame:
    paired = paired_by_day(per_day, baselines=("forecast",), metrics=("objective",))
    base = per_day[per_day["planner"] == "forecast"]["objective"].mean()
    rows = [{"setting": "forecast", "objective a day": base, "vs forecast": "–"}]
    for row in paired.itertuples():
        rows.append({"setting": row.planner, "objective a day": row.value,
                     "vs forecast": f"{100 * row.change:+.1f} % [{100 * row.change_ci_low:+.1f}, {100 * row.change_ci_high:+.1f}]"})
    return pd.DataFrame(rows)


@pytest.mark.bench
def test_headroom_on_the_synthetic_city():
    scenario = load_scenario("synthetic-default")
    days, _ = prepare_days(scenario, pd.Timestamp("2018-09-24"), pd.Timestamp("2018-09-26"))
    per_day = headroom(scenario, days, dict(GREEDY_START))
    table = report(per_day).set_index("setting")["objective a day"]
    print(table)
    # The synthetic city's planners see its truth: every information setting is the same run.
    assert np.allclose(table[list(INFORMATION)], table["forecast"])
    assert table["12 trucks"] < table["forecast"] and table["4 visits an hour"] < table["forecast"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="seed-fleet-2019")
    parser.add_argument("--period", required=True, help="START:END, a training month (never a test month)")
    parser.add_argument("--router", required=True, help="a router folder (bicimad train-router's output)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--daily-usage", default=None, help="EMT's counted trips (bici_disponibilidad_*.csv)")
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario)
    start, end = parse_period(args.period)
    usage = load_daily_usage(args.daily_usage, args.data_dir) if scenario.network.source == "processed" else None
    days, skipped = prepare_days(scenario, start, end, args.data_dir, daily_usage=usage)
    print(f"{len(days)} days; skipped: {'; '.join(skipped) or 'none'}", file=sys.stderr)
    per_day = headroom(scenario, days, read_router(args.router)["params"], args.draws, args.workers)
    table = report(per_day)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print(f"| {row[0]} | {row[1]:.1f} | {row[2]} |")
    print()
    print(pd.Series(nowcast_reach(days)).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
