"""Report plots (matplotlib, Agg backend, PNG): the hourly profile of the problem share, a map
of stations coloured by problem hours, and the problem share against trucks per planner."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from bicimad.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on batch machines
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_hourly_profile(profiles: dict[str, pd.DataFrame], path: str | os.PathLike,
                        title: str = "Problem share by hour of day") -> Path:
    """One line per label: the share of station-hours empty or full, by local hour of day
    (frames as :func:`bicimad.report.occupancy.hourly_profile` returns them)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, profile in profiles.items():
        ax.plot(profile["hour_of_day"], 100 * profile["problem_share"], marker="o", markersize=3, label=label)
    ax.set_xlabel("hour of day (Europe/Madrid)")
    ax.set_ylabel("station-hours empty or full (%)")
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlim(-0.5, 23.5)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    if profiles:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_station_map(per_station: pd.DataFrame, stations: pd.DataFrame, path: str | os.PathLike,
                     title: str = "Problem hours per station", vmax: float | None = None) -> Path:
    """Stations on longitude/latitude, coloured by problem hours (scale 0 to ``vmax``), sized by
    capacity."""
    plt = _pyplot()
    located = per_station.merge(stations[["station_id", "lat", "lon", "capacity"]].drop_duplicates("station_id"),
                                on="station_id", how="inner").dropna(subset=["lat", "lon"])
    fig, ax = plt.subplots(figsize=(6, 6))
    if len(located):
        sizes = 8 + 1.5 * located["capacity"].fillna(located["capacity"].median()).fillna(20)
        points = ax.scatter(located["lon"], located["lat"], c=located["problem_hours"], s=sizes,
                            cmap="viridis_r", vmin=0, vmax=vmax, edgecolors="black", linewidths=0.3)
        fig.colorbar(points, ax=ax, shrink=0.8, label="problem station-hours")
        ax.set_aspect(1 / 0.77)  # ~cos(40.4 deg): Madrid's degrees of longitude are shorter
    else:
        ax.text(0.5, 0.5, "no station coordinates", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title)
    return _save(fig, path)


def plot_share_vs_trucks(intervals: pd.DataFrame, path: str | os.PathLike,
                         title: str = "Problem share against fleet size") -> Path:
    """Mean problem share with its interval over seeds against the number of trucks, one line
    per planner. ``intervals`` has columns planner, trucks, mean, lo, hi (shares in 0-1)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for planner, group in intervals.groupby("planner", sort=False):
        group = group.sort_values("trucks")
        line, = ax.plot(group["trucks"], 100 * group["mean"], marker="o", markersize=4, label=planner)
        ax.fill_between(group["trucks"], 100 * group["lo"], 100 * group["hi"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("trucks")
    ax.set_ylabel("station-hours empty or full (%)")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)
