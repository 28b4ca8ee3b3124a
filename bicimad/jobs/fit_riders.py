"""``bicimad sim fit-riders``: fit the riders' view of the real system to the snapshots.

Poisson riders on the fitted rates alone empty and fill stations far more often than the
snapshots show (Sep 2018: 14.8 % of station-hours at the hour start against 10.9 %). The
excess is not in the hourly spread of the docked bikes, which the simulation matches, but at
the edges: a station with 1-2 bikes loses its last ones in the next hour a third less often in
reality, and one a dock or two from full fills less often. Docks hold bikes that no rider can
take (broken, reserved) and free docks that take no bike, and the snapshots count them as
bikes and docks. Three numbers of the scenario's ``[riders]`` model it
(:class:`bicimad.sim.scenario.RiderSpec`):

- ``unusable_bike_share`` ``q``: a rider at ``b`` bikes finds none usable with chance ``q ** b``;
- ``unusable_dock_share`` ``r``: a rider returning to ``f`` free docks finds none with chance ``r ** f``;
- ``counted_share``: EMT's daily count sees served trips, so the attempted ones are
  ``count / counted_share``.

The fit, with the status-quo replay on the period's days and ``q = r = v`` over a grid:

- ``q`` is where the simulated share of station-hours that start empty meets the snapshots'
  (linear between grid values). Empty means 0 bikes in the simulation and the snapshots alike.
- ``r`` is where the chances that the bikes rise in the next hour (8-22 h) at 1, 2 and 3 docks
  from full come closest to the snapshots' (least squared log ratio, a parabola through the
  best grid values). Full is not the same thing on both sides: a snapshot counts a station full
  with the docks in service at that hour, the simulation with those of the day's first snapshot,
  so the full share itself would fit docks going out of service during the day.
- ``counted_share`` is then rescaled until the simulated daily pickups (riders less those lost)
  have a median of the counted trips.

The table gives the same log ratios at 1, 2 and 3 bikes (falling in the next hour), the check
on the mechanism ``q`` stands for: near 0 at the fitted value.

Fit on days that are not validated: the bundled 2019 scenario was fitted on Jul-Aug 2019 and
validated on Oct 2019; for a single month, fit on its odd days and validate on its even days
(``--days``), and the other way round (BENCHMARKS.md "Reproducing the snapshots").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bicimad.errors import CommandError
from bicimad.jobs import JobResult
from bicimad.jobs.compare import parse_period, prepare_days, run_comparison
from bicimad.jobs.validate import observed_days, panel_place, select_days, served_pickups, simulated_and_counted
from bicimad.plan import make_planner
from bicimad.sim.scenario import write_scenario

GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
LEVELS = (1, 2, 3)
DAY_HOURS = (8, 22)  # the hours whose transitions are compared (night moves are EMT's)


class _Transitions:
    """Per source (``sim``, ``real``): at each level ``b`` of :data:`LEVELS`, the hours that
    start at ``b`` bikes (``b`` docks from full) and how many of them fall (rise); and per day
    the simulated pickups."""

    def __init__(self, days, panel):
        self.days, self.panel = days, panel
        self.counts = {key: np.zeros((2, len(LEVELS), 2)) for key in ("sim", "real")}
        self.edges = {key: np.zeros(3) for key in ("sim", "real")}  # empty, full, station-hours at the hour start
        self.served: dict[str, list[float]] = {}

    def __call__(self, name, seed, index, recorder, result) -> None:
        day = self.days[index]
        d, column = panel_place(self.panel, day)
        known = column >= 0
        cap = day.network.capacity
        self.served.setdefault(day.date, []).append(served_pickups(day, result))
        col = np.maximum(column, 0)
        real = np.where(known[None, :], self.panel.bikes[d][:, col], np.nan)
        sim = np.array(recorder.bikes_seen, dtype=float)
        seen = np.isfinite(real)  # the snapshots' station-hours, as `sim validate` counts them
        self.edges["sim"] += ((sim <= 0)[seen].sum(), (sim >= cap)[seen].sum(), seen.sum())
        sources = {"sim": sim}
        if seed == 0:  # the snapshots count once
            sources["real"] = real
            self.edges["real"] += ((self.panel.empty[d][:, col] > 0)[seen].sum(),
                                   (self.panel.full[d][:, col] > 0)[seen].sum(), seen.sum())
        first, last = DAY_HOURS
        for key, bikes in sources.items():
            now, then = bikes[first:last], bikes[first + 1:last + 1]
            ok = known[None, :] & np.isfinite(now) & np.isfinite(then)
            for i, level in enumerate(LEVELS):
                low, high = ok & (now == level), ok & (now == cap - level)
                self.counts[key][0, i] += ((then < now)[low].sum(), low.sum())
                self.counts[key][1, i] += ((then > now)[high].sum(), high.sum())

    def edge_gaps(self) -> tuple[float, float]:
        """Simulated minus observed share of station-hours starting empty, and starting full."""
        sim, real = self.edges["sim"], self.edges["real"]
        return tuple(float(sim[i] / max(sim[2], 1) - real[i] / max(real[2], 1)) for i in (0, 1))

    def log_ratios(self) -> np.ndarray:
        """(2, levels) log of the simulated chance over the observed (0 where either is unseen)."""
        sim, real = (c[..., 0] / np.maximum(c[..., 1], 1) for c in (self.counts["sim"], self.counts["real"]))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(sim / real)
        return np.where(np.isfinite(ratio), ratio, 0.0)


def _root(share: pd.Series, gap: pd.Series) -> float:
    """Where ``gap`` (falling with ``share``) crosses 0, linearly between grid values, to 0.01;
    the grid's end where it never does."""
    x, y = share.to_numpy(float), gap.to_numpy(float)
    crossing = np.flatnonzero((y[:-1] > 0) & (y[1:] <= 0))
    if not len(crossing):
        return float(x[0] if y[0] <= 0 else x[-1])
    i = crossing[0]
    return round(float(x[i] + (x[i + 1] - x[i]) * y[i] / (y[i] - y[i + 1])), 2)


def _lowest(share: pd.Series, loss: pd.Series) -> float:
    """The minimum of ``loss`` over ``share``: the parabola through the lowest grid value and its
    neighbours, to 0.01 (the grid's end where the lowest is there)."""
    x, y = share.to_numpy(float), loss.to_numpy(float)
    i = int(np.argmin(y))
    if i == 0 or i == len(x) - 1:
        return float(x[i])
    a, b = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)[:2]
    return round(float(np.clip(-b / (2 * a), x[i - 1], x[i + 1])), 2) if a > 0 else float(x[i])


def _replay(loaded, days, panel, seeds) -> _Transitions:
    collect = _Transitions(days, panel)
    run_comparison(loaded, days, {"status-quo": make_planner("status-quo")}, list(range(seeds)), progress=False,
                   on_day=collect)
    return collect


def _served_ratio(collect: _Transitions, usage: pd.DataFrame) -> float:
    """Median over days of simulated pickups / counted trips."""
    simulated, counted = simulated_and_counted(collect.served, usage)
    ratios = (simulated / counted)[counted > 0]
    return float(ratios.median()) if len(ratios) else float("nan")


@dataclasses.dataclass(frozen=True)
class FitResult(JobResult):
    """The fitted ``[riders]`` values, the grid's log ratios, and the scenario written (if any)."""

    unusable_bike_share: float
    unusable_dock_share: float
    counted_share: float
    pickups_ratio: float
    grid: pd.DataFrame
    out: Path | None
    at_grid_end: tuple[str, ...] = ()  #: fitted values at the grid's last share (or its first, if above 0)

    def summary(self) -> str:
        lines = [self.grid.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
                 f"[riders] unusable_bike_share = {self.unusable_bike_share:g}, unusable_dock_share = "
                 f"{self.unusable_dock_share:g}, counted_share = {self.counted_share:.3f} "
                 f"(simulated pickups / counted trips: median {self.pickups_ratio:.3f})"]
        for key in self.at_grid_end:
            lines.append(f"warning: {key} is at the end of the grid ({self.grid['share'].min():g}-"
                         f"{self.grid['share'].max():g}): the best value may lie beyond it")
        if self.out is not None:
            lines.append(f"wrote {self.out}")
        return "\n".join(lines)


def fit_riders(scenario: str, period: str, *, daily_usage, seeds: int = 1, parity: str = "all", grid=GRID,
               out=None, data_dir=None, progress: bool = True) -> FitResult:
    """Fit ``[riders]``' unusable shares and counted share on the status-quo replay of
    ``period``'s ``parity`` days (module docstring); write the scenario to ``out`` if given."""
    if daily_usage is None:
        raise CommandError("fit-riders needs EMT's counted trips (--daily-usage bici_disponibilidad_*.csv)")
    loaded, days, panel, usage = observed_days(scenario, period, daily_usage, data_dir, parity=parity)
    rows, bar = [], tqdm(total=len(grid) + 3, desc="fit riders", unit="run", disable=not progress)
    for value in grid:
        collect = _replay(loaded.override({"riders.unusable_bike_share": value, "riders.unusable_dock_share": value}),
                          days, panel, seeds)
        ratio = collect.log_ratios()
        rows.append({"share": value, **{f"bike_log_ratio_{b}": ratio[0, i] for i, b in enumerate(LEVELS)},
                     **{f"dock_log_ratio_{b}": ratio[1, i] for i, b in enumerate(LEVELS)},
                     "dock_loss": float((ratio[1] ** 2).sum()),
                     **dict(zip(("empty_gap", "full_gap"), collect.edge_gaps()))})
        bar.update(1)
    table = pd.DataFrame(rows)
    q, r = _root(table["share"], table["empty_gap"]), _lowest(table["share"], table["dock_loss"])
    fitted, counted_share, ratio = loaded, loaded.riders.counted_share, float("nan")
    start, end = parse_period(period)
    for attempt in range(3):  # more riders lose more: a couple of rescales come within a per cent
        fitted = loaded.override({"riders.unusable_bike_share": q, "riders.unusable_dock_share": r,
                                  "riders.counted_share": round(counted_share, 3)})
        chosen, _ = prepare_days(fitted, start, end, data_dir, daily_usage=usage)
        ratio = _served_ratio(_replay(fitted, select_days(chosen, parity), panel, seeds), usage)
        bar.update(1)
        if attempt == 2 or not abs(ratio - 1) > 0.01:
            break
        counted_share = float(np.clip(counted_share * ratio, 0.05, 1.0))
    bar.close()
    path = write_scenario(fitted, out) if out else None
    ends = (max(grid),) + ((min(grid),) if min(grid) > 0 else ())  # a share of 0 cannot go lower
    at_end = tuple(key for key, value in (("unusable_bike_share", q), ("unusable_dock_share", r)) if value in ends)
    return FitResult(q, r, round(counted_share, 3), ratio, table, Path(path) if path else None, at_end)
