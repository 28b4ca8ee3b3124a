"""Occupancy tables: run-level summaries, hourly profiles, problem hours per station, intervals.

Input frames follow the ``occupancy`` table (station_id, hour, state, lost_trips,
diverted_returns); a station-hour is a *problem* hour when its state is not ``balanced``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.opendata.schemas import OCCUPANCY_STATES, OCCUPANCY_SUMMARY_COLUMNS
from bicimad.sim.occupancy import problem_share

PROBLEM_STATES = tuple(s for s in OCCUPANCY_STATES if s != "balanced")


def _check_states(occupancy: pd.DataFrame) -> None:
    unknown = set(occupancy["state"].unique()) - set(OCCUPANCY_STATES)
    if unknown:
        raise ValueError(f"occupancy: unknown state(s) {sorted(unknown)}; known: {', '.join(OCCUPANCY_STATES)}")


def state_counts(occupancy: pd.DataFrame) -> dict[str, int]:
    """Station-hours per occupancy class (all four classes, zeros included)."""
    _check_states(occupancy)
    counts = occupancy["state"].value_counts()
    return {state: int(counts.get(state, 0)) for state in OCCUPANCY_STATES}


def summarise(occupancy: pd.DataFrame, planner: str, *, bikes_moved: float | None = None,
              truck_km: float | None = None, decision_s_per_hour: float | None = None) -> dict:
    """One summary row (:data:`OCCUPANCY_SUMMARY_COLUMNS`) from a station-hour occupancy frame."""
    counts = state_counts(occupancy)

    def total(column: str) -> float:
        return float(occupancy[column].fillna(0).sum()) if column in occupancy else math.nan

    row = {
        "planner": planner,
        **counts,
        "problem_share": problem_share(counts),
        "lost_trips": total("lost_trips"),
        "diverted_returns": total("diverted_returns"),
        "bikes_moved": math.nan if bikes_moved is None else float(bikes_moved),
        "truck_km": math.nan if truck_km is None else float(truck_km),
        "decision_s_per_hour": math.nan if decision_s_per_hour is None else float(decision_s_per_hour),
    }
    return {c: row[c] for c in OCCUPANCY_SUMMARY_COLUMNS}


def summary_table(rows: Iterable[dict]) -> pd.DataFrame:
    """Summary rows as a frame, the standard columns first, extra columns after."""
    frame = pd.DataFrame(list(rows))
    missing = [c for c in OCCUPANCY_SUMMARY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"occupancy summary lacks column(s) {missing}")
    extra = [c for c in frame.columns if c not in OCCUPANCY_SUMMARY_COLUMNS]
    return frame[list(OCCUPANCY_SUMMARY_COLUMNS) + extra]


def hourly_profile(occupancy: pd.DataFrame) -> pd.DataFrame:
    """Per local hour of day (0-23): station-hours, each problem class, and the problem share."""
    _check_states(occupancy)
    hours = pd.to_datetime(occupancy["hour"])
    if hours.dt.tz is not None:
        hours = hours.dt.tz_convert(TZ)
    table = pd.crosstab(hours.dt.hour.rename("hour_of_day"), occupancy["state"])
    table = table.reindex(index=range(24), columns=list(OCCUPANCY_STATES), fill_value=0)
    table["station_hours"] = table[list(OCCUPANCY_STATES)].sum(axis=1)
    problems = table[list(PROBLEM_STATES)].sum(axis=1)
    table["problem_share"] = (problems / table["station_hours"].where(table["station_hours"] > 0)).astype(float)
    return table.reset_index()


def station_problem_hours(occupancy: pd.DataFrame) -> pd.DataFrame:
    """Per station: station-hours, hours in each problem class, problem hours, lost trips and
    diverted returns, sorted worst first (most problem hours, then most lost trips)."""
    _check_states(occupancy)
    flags = pd.get_dummies(occupancy["state"]).reindex(columns=list(OCCUPANCY_STATES), fill_value=False)
    frame = pd.concat([occupancy[["station_id"]], flags.astype(int)], axis=1)
    for column in ("lost_trips", "diverted_returns"):
        frame[column] = occupancy[column].fillna(0).astype(int) if column in occupancy else 0
    per_station = frame.groupby("station_id").agg(
        station_hours=("balanced", "size"),
        empty_hours=("empty", "sum"),
        full_hours=("full", "sum"),
        empty_and_full_hours=("empty_and_full", "sum"),
        lost_trips=("lost_trips", "sum"),
        diverted_returns=("diverted_returns", "sum"),
    )
    per_station["problem_hours"] = per_station[["empty_hours", "full_hours", "empty_and_full_hours"]].sum(axis=1)
    per_station = per_station.reset_index()
    return per_station.sort_values(["problem_hours", "lost_trips", "station_id"],
                                   ascending=[False, False, True], kind="stable").reset_index(drop=True)


def worst_stations(occupancy: pd.DataFrame, stations: pd.DataFrame | None = None, n: int = 10) -> pd.DataFrame:
    """The ``n`` stations with the most problem hours, with number and name where known."""
    per_station = station_problem_hours(occupancy).head(n)
    if stations is not None and len(stations):
        names = stations[["station_id", "number", "name"]].drop_duplicates("station_id")
        per_station = per_station.merge(names, on="station_id", how="left")
        first = ["station_id", "number", "name"]
        per_station = per_station[first + [c for c in per_station.columns if c not in first]]
    return per_station


def occupancy_from_station_hours(station_hours: pd.DataFrame) -> pd.DataFrame:
    """Observed occupancy from snapshots (the ``station_hours`` table): the state at the snapshot
    instant only, so within-hour empty or full moments are missed; hours without a snapshot are
    left out. Lost trips and diverted returns are unknown (null)."""
    seen = station_hours.dropna(subset=["snapshot_ts", "empty", "full"])
    empty = seen["empty"].astype(bool).to_numpy()
    full = seen["full"].astype(bool).to_numpy()
    state = np.select([empty & full, empty, full], ["empty_and_full", "empty", "full"], default="balanced")
    return pd.DataFrame({
        "station_id": seen["station_id"].to_numpy(),
        "hour": seen["hour"].to_numpy(),
        "state": state,
        "lost_trips": pd.array([pd.NA] * len(seen), dtype="Int32"),
        "diverted_returns": pd.array([pd.NA] * len(seen), dtype="Int32"),
    })


def mean_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean over seeds; a single value gives a zero-width
    interval (there is nothing to estimate the spread from)."""
    from scipy import stats

    x = np.asarray([v for v in values if not (v is None or (isinstance(v, float) and math.isnan(v)))], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half
