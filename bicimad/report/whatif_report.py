"""Plots and the HTML page of a what-if sweep (``bicimad whatif``): each metric against the number
of trucks per planner with its 95 % interval over seeds, the target a question asks about, the
paired differences against a baseline point, and the fleet each planner needs.

The tables come from :mod:`bicimad.jobs.whatif` (``intervals``, ``paired``, ``trucks_needed``);
shares are in 0-1, counts per simulated day.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path

import pandas as pd

from bicimad.io import atomic_open
from bicimad.report.html import _CSS, _img, _table
from bicimad.report.plots import _pyplot, _save

#: Grid parameters other than trucks: one figure per combination of their values.
OTHER_PARAMS = ("truck_capacity", "visits_per_hour", "radius_km", "demand_scale")

#: (column of the intervals table, y label, scale) of the fleet figure's panels.
FLEET_PANELS = (("lost_trips_per_day", "lost trips per day", 1.0),
                ("diverted_returns_per_day", "diverted returns per day", 1.0),
                ("truck_km_per_day", "truck km per day", 1.0))

#: (column of the paired table, y label, scale) of the paired-difference figure's panels.
PAIRED_PANELS = (("d_problem_share", "problem share vs baseline (points)", 100.0),
                 ("d_lost_trips", "lost trips per day vs baseline", 1.0),
                 ("d_objective", "objective per day vs baseline", 1.0))


def _bands(ax, frame: pd.DataFrame, column: str, lo: str, hi: str, scale: float) -> None:
    """One line per planner with its interval band, against trucks."""
    for planner, group in frame.groupby("planner", sort=False):
        group = group.sort_values("trucks")
        line, = ax.plot(group["trucks"], scale * group[column], marker="o", markersize=4, label=planner)
        ax.fill_between(group["trucks"], scale * group[lo], scale * group[hi], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("trucks")
    ax.grid(alpha=0.3)


def plot_problem_share(intervals: pd.DataFrame, path: str | os.PathLike, *, title: str,
                       target: float | None = None) -> Path:
    """Mean problem share (with its interval over seeds) against trucks, one line per planner,
    and the target as a dashed line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    _bands(ax, intervals, "mean", "lo", "hi", 100.0)
    if target is not None:
        ax.axhline(100 * target, color="k", linestyle="--", linewidth=1, label=f"target {100 * target:g} %")
    ax.set_ylabel("station-hours empty or full (%)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_panels(frame: pd.DataFrame, panels, path: str | os.PathLike, *, title: str,
                target: tuple[str, float] | None = None, zero_line: bool = False) -> Path:
    """Side-by-side panels of ``frame``'s ``column`` (with ``_lo``/``_hi`` bands) against trucks;
    ``target`` (column, value) draws a dashed line on that column's panel."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False, layout="constrained")
    for ax, (column, label, scale) in zip(axes[0], panels):
        _bands(ax, frame, column, f"{column}_lo", f"{column}_hi", scale)
        if target is not None and target[0] == column:
            ax.axhline(scale * target[1], color="k", linestyle="--", linewidth=1, label=f"target {target[1]:g}")
        if zero_line:
            ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def sweep_figures(intervals: pd.DataFrame, paired: pd.DataFrame | None, out: str | os.PathLike,
                  targets: dict[str, float]) -> dict[str, Path]:
    """Every figure of a sweep, one set per combination of the parameters other than trucks:
    ``plot <point>`` the problem share (with its target), ``figure fleet <point>`` lost trips,
    diverted returns and truck km per day (where the results hold them), ``figure paired
    <point>`` the paired differences against the baseline (with ``paired``)."""
    out = Path(out)
    figures = {}
    fleet = [p for p in FLEET_PANELS if p[0] in intervals]
    lost = targets.get("lost_trips_per_day")
    for values, group in intervals.groupby(list(OTHER_PARAMS), sort=False):
        point = dict(zip(OTHER_PARAMS, values))
        suffix = "-".join(f"{k}{v:g}" for k, v in point.items())
        where = ", ".join(f"{k}={v:g}" for k, v in point.items())
        figures[f"plot {suffix}"] = plot_problem_share(
            group, out / f"share_vs_trucks-{suffix}.png", title=f"Problem share against trucks ({where})",
            target=targets.get("problem_share"))
        if fleet:
            figures[f"figure fleet {suffix}"] = plot_panels(
                group, fleet, out / f"fleet_vs_trucks-{suffix}.png", title=f"Per simulated day ({where})",
                target=("lost_trips_per_day", lost) if lost is not None else None)
        if paired is not None:
            mask = pd.Series(True, index=paired.index)
            for k, v in point.items():
                mask &= paired[k] == v
            panels = [p for p in PAIRED_PANELS if p[0] in paired]
            figures[f"figure paired {suffix}"] = plot_panels(
                paired[mask], panels, out / f"paired_vs_trucks-{suffix}.png", zero_line=True,
                title=f"Paired differences against the baseline, same riders per seed ({where})")
    return figures


def build_whatif_report(out: str | os.PathLike, *, intervals: pd.DataFrame, figures: list[Path],
                        paired: pd.DataFrame | None = None, needed: pd.DataFrame | None = None,
                        context: dict[str, str] | None = None, title: str = "BiciMAD what-if sweep") -> Path:
    """The self-contained HTML page of a sweep: what was simulated (``context``: label -> text),
    the fleet needed per planner and target, the figures, the paired differences and the
    intervals."""
    out = Path(out)
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    if context:
        parts.append("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
                                      for k, v in context.items()) + "</ul>")
    parts.append(f"<p class='note'>Generated {dt.datetime.now().astimezone().isoformat(timespec='seconds')}. "
                 "Means over seeds with 95 % Student-t intervals; every planner and fleet size with the "
                 "same seed index met the same riders (common random numbers), so paired differences "
                 "are far tighter than the absolute intervals.</p>")
    if needed is not None:
        parts += ["<h2>Fleet needed</h2>",
                  "<p class='note'>upper bound: the smallest fleet (by bikes it can move per hour) whose "
                  "upper 95 % bound meets the target; mean: where the mean crosses it.</p>",
                  _table(needed, "needed")]
    parts += ["<h2>Against fleet size</h2>", *(_img(Path(p), Path(p).stem) for p in figures)]
    if paired is not None:
        parts += ["<h2>Paired differences against the baseline</h2>", _table(paired, "paired")]
    parts += ["<h2>Intervals</h2>", _table(intervals, "intervals"), "</body></html>\n"]
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return out
