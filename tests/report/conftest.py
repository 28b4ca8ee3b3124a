"""Run folders generated for report tests: a small seeded network with two planners."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.opendata.schemas import write_table
from bicimad.report.occupancy import summarise, summary_table


def make_stations(n: int, rng: np.random.Generator) -> pd.DataFrame:
    now = pd.Timestamp("2018-09-01", tz=TZ)
    return pd.DataFrame({
        "station_id": np.arange(1, n + 1),
        "number": [f"{i}a" for i in range(1, n + 1)],
        "name": [f"Plaza {i}" for i in range(1, n + 1)],
        "address": [f"Calle {i}" for i in range(1, n + 1)],
        "lat": 40.42 + rng.normal(0, 0.01, n),
        "lon": -3.70 + rng.normal(0, 0.012, n),
        "capacity": rng.integers(15, 30, n),
        "first_seen": now, "last_seen": now, "source": "test",
    })


def make_occupancy(station_ids, days: int, p_problem: float, rng: np.random.Generator) -> pd.DataFrame:
    """States drawn per station-hour; problems likelier at 08 and 18-20 h, as in Madrid."""
    hours = pd.date_range("2018-09-03", periods=24 * days, freq="h", tz=TZ)
    grid = pd.MultiIndex.from_product([station_ids, hours], names=["station_id", "hour"]).to_frame(index=False)
    peak = grid["hour"].dt.hour.isin([8, 18, 19, 20]).to_numpy()
    p = np.where(peak, min(1.0, 2.5 * p_problem), p_problem)
    problem = rng.random(len(grid)) < p
    kind = rng.choice(["empty", "full", "empty_and_full"], size=len(grid), p=[0.6, 0.25, 0.15])
    grid["state"] = np.where(problem, kind, "balanced")
    grid["lost_trips"] = np.where(np.isin(grid["state"], ["empty", "empty_and_full"]), rng.integers(1, 4, len(grid)), 0)
    grid["diverted_returns"] = np.where(np.isin(grid["state"], ["full", "empty_and_full"]), rng.integers(1, 3, len(grid)), 0)
    return grid


def write_run(folder, stations, planners: dict[str, float], rng: np.random.Generator, days: int = 2):
    folder.mkdir(parents=True)
    write_table(stations, "stations", folder / "stations.parquet")
    rows = []
    for planner, p in planners.items():
        frame = make_occupancy(stations["station_id"], days, p, rng)
        write_table(frame, "occupancy", folder / "occupancy" / f"{planner}.parquet")
        rows.append(summarise(frame, planner, bikes_moved=rng.integers(0, 500), truck_km=rng.uniform(0, 300),
                              decision_s_per_hour=rng.uniform(0, 1)))
    summary_table(rows).to_csv(folder / "occupancy.csv", index=False)
    return folder


@pytest.fixture
def two_runs(tmp_path):
    rng = np.random.default_rng(7)
    stations = make_stations(25, rng)
    a = write_run(tmp_path / "runs" / "2018-09-03", stations, {"noop": 0.18, "greedy": 0.12}, rng)
    b = write_run(tmp_path / "runs" / "2018-09-04", stations, {"noop": 0.20, "ortools": 0.09}, rng)
    return a, b
