"""``bicimad sim validate --period P``: does the simulator reproduce the real system?

The ``status-quo`` planner replays EMT's own truck moves (inferred from snapshot jumps) on each
observed day of the period, from the day's first snapshot, on the period's demand truth; no-op
runs beside it. Both are measured the way the hourly snapshots measure the real system: the
state at each hour's start. Printed and written to ``validation.csv`` (one row per source:
``observed``, ``status-quo``, ``noop``) and ``validation_by_hour.csv``:

- the problem share at the hour start (empty or full at that instant), over the station-hours
  observed in the snapshots, and its profile by hour of day (MAE in points against observed);
- the docked bikes at each hour start against the snapshot's (MAE in bikes per station-hour);
- the simulated daily pickups (the truth's riders less those the simulation lost) against
  EMT's counted trips, where a ``daily_usage`` table is given (median absolute relative error
  over days): counts see served trips, so this is what must match them.

The simulator earns trust where status-quo is within a point of observed; until then no
absolute figure (a problem share, a number of trucks) carries over to Madrid.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from bicimad.demand.panel import build_panel
from bicimad.errors import EXIT_BAD_INPUT, CommandError
from bicimad.io import atomic_open
from bicimad.jobs import JobResult
from bicimad.jobs.compare import load_daily_usage, parse_period, prepare_days, run_comparison
from bicimad.plan import make_planner
from bicimad.sim.data import Processed
from bicimad.sim.scenario import ScenarioError, load_scenario


@dataclasses.dataclass(frozen=True)
class ValidationResult(JobResult):
    """The validation table (one row per source) and the by-hour profiles."""

    table: pd.DataFrame
    by_hour: pd.DataFrame
    out: Path | None

    def summary(self) -> str:
        lines = [self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        sq = self.table.set_index("source")
        if "status-quo" in sq.index:
            gap = 100 * (sq.loc["status-quo", "problem_share_at_hour_start"] - sq.loc["observed", "problem_share_at_hour_start"])
            lines.append(f"status-quo minus observed problem share at the hour start: {gap:+.1f} points "
                         f"(by-hour MAE {sq.loc['status-quo', 'by_hour_mae_points']:.1f} points)")
        if self.out is not None:
            lines.append(f"wrote {self.out / 'validation.csv'}")
        return "\n".join(lines)


def panel_place(panel, day) -> tuple[int, np.ndarray]:
    """Simulated ``day``'s row in ``panel``, and for each station of its network the panel's
    column (-1: not in the panel)."""
    return panel.days.get_loc(pd.Timestamp(day.date)), pd.Index(panel.station_ids).get_indexer(day.network.station_ids)


def served_pickups(day, result) -> float:
    """A simulated day's served pickups: the truth's riders less those the simulation lost."""
    return float(day.truth.pickup_rate.sum()) - float(result.summary.iloc[0]["lost_trips"])


def simulated_and_counted(served: dict[str, list[float]], daily_usage: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per date of ``served`` (date -> pickups of each rider draw): the mean simulated pickups,
    and EMT's counted trips that day (NaN where the ``daily_usage`` table has none)."""
    simulated = pd.Series({date: float(np.mean(values)) for date, values in served.items()}, dtype=float)
    counted = daily_usage.assign(date=pd.to_datetime(daily_usage["date"]).dt.strftime("%Y-%m-%d"))
    return simulated, counted.set_index("date")["total_trips"].reindex(simulated.index)


class _Collector:
    """Per planner: hour-start problem counts over observed station-hours, by hour of day, and
    absolute bike errors against the snapshots."""

    def __init__(self, days, panel):
        self.days, self.panel = days, panel
        self.counts: dict[str, np.ndarray] = {}
        self.errors: dict[str, list[float]] = {}
        self.served: dict[str, dict[str, list[float]]] = {}

    def __call__(self, name, seed, index, recorder, result) -> None:
        day = self.days[index]
        d, column = panel_place(self.panel, day)
        ok = column >= 0
        counts = self.counts.setdefault(name, np.zeros((24, 2)))
        errors = self.errors.setdefault(name, [])
        self.served.setdefault(name, {}).setdefault(day.date, []).append(served_pickups(day, result))
        for hour, bikes in enumerate(recorder.bikes_seen or []):
            real = self.panel.bikes[d, hour, np.maximum(column, 0)]
            seen = ok & np.isfinite(real)
            problem = (bikes <= 0) | (bikes >= day.network.capacity)
            counts[hour] += (problem[seen].sum(), seen.sum())
            errors.extend(np.abs(bikes[seen] - real[seen]).tolist())


def _observed_by_hour(days, panel) -> np.ndarray:
    counts = np.zeros((24, 2))
    for day in days:
        d, column = panel_place(panel, day)
        column = column[column >= 0]
        real = panel.bikes[d][:, column]
        seen = np.isfinite(real)
        problem = (panel.empty[d][:, column] > 0) | (panel.full[d][:, column] > 0)
        counts[:, 0] += (problem & seen).sum(axis=1)
        counts[:, 1] += seen.sum(axis=1)
    return counts


def _pickups_error(served: dict[str, list[float]], daily_usage: pd.DataFrame | None) -> tuple[float, float]:
    """Mean simulated daily pickups (the truth's riders less those lost, over the rider draws),
    and their median absolute relative error against the counted trips of the same days."""
    if not served:
        return float("nan"), float("nan")
    if daily_usage is None:
        return float(np.mean([np.mean(values) for values in served.values()])), float("nan")
    simulated, counted = simulated_and_counted(served, daily_usage)
    return float(simulated.mean()), float((simulated / counted - 1).abs().median())


def select_days(days: list, parity: str = "all") -> list:
    """``days`` whose day of the month is ``odd`` or ``even`` (``all``: every day): two halves
    of one period to fit on one and validate on the other."""
    if parity not in ("all", "odd", "even"):
        raise CommandError(f"--days {parity!r}: expected all, odd or even")
    if parity == "all":
        return days
    return [d for d in days if (int(d.date[-2:]) % 2 == 1) == (parity == "odd")]


def observed_days(scenario: str, period: str, daily_usage, data_dir, *, parity: str = "all", max_days: int = 0,
                  overrides: dict | None = None):
    """The scenario (with ``overrides``), the period's simulable days, its snapshot panel and the
    counts table: what validating or fitting against the snapshots starts from."""
    try:
        loaded = load_scenario(scenario)
        loaded = loaded.override(overrides) if overrides else loaded
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    if loaded.network.source != "processed":
        raise CommandError(f"scenario {loaded.name!r}: validation needs observed data (network.source = 'processed')")
    start, end = parse_period(period)
    usage = load_daily_usage(daily_usage, data_dir)
    days, skipped = prepare_days(loaded, start, end, data_dir, daily_usage=usage)
    days = select_days(days, parity)
    days = days[:max_days] if max_days else days
    if not days:
        raise CommandError(f"no day of {period} can be simulated: " + "; ".join(skipped or ["empty period"]),
                           EXIT_BAD_INPUT)
    processed = Processed.load(data_dir, with_hours=True)
    panel = build_panel(processed.station_hours, processed.stations, start=start, end=end)
    return loaded, days, panel, usage


def validate(scenario: str = "seed-fleet-2018", period: str = "2018-09-01:2018-09-30", *, seeds: int = 3,
             max_days: int = 0, daily_usage=None, out=None, data_dir=None, progress: bool = True,
             parity: str = "all") -> ValidationResult:
    """The status-quo replay and no-op against the observed snapshots of ``period`` (its
    ``parity`` days: all, odd or even days of the month)."""
    loaded, days, panel, usage = observed_days(scenario, period, daily_usage, data_dir, parity=parity,
                                               max_days=max_days)
    collect = _Collector(days, panel)
    planners = {"status-quo": make_planner("status-quo"), "noop": make_planner("noop")}
    run_comparison(loaded, days, planners, list(range(seeds)), progress=progress, on_day=collect)
    observed = _observed_by_hour(days, panel)
    profiles = {"observed": observed, **collect.counts}
    by_hour = pd.DataFrame({name: c[:, 0] / np.maximum(c[:, 1], 1) for name, c in profiles.items()})
    by_hour.index.name = "hour"
    rows = []
    for name, counts in profiles.items():
        mean_pickups, pickup_error = _pickups_error(collect.served.get(name, {}), usage)
        draws = 1 if name == "observed" else seeds   # simulated counts add up over the rider draws
        rows.append({"source": name, "days": len(days), "draws": draws, "station_hours": int(counts[:, 1].sum() / draws),
                     "problem_share_at_hour_start": counts[:, 0].sum() / max(counts[:, 1].sum(), 1),
                     "by_hour_mae_points": float(100 * (by_hour[name] - by_hour["observed"]).abs().mean()),
                     "bikes_mae": float(np.mean(collect.errors[name])) if name in collect.errors else 0.0,
                     "daily_pickups": mean_pickups if name != "observed" else np.nan,
                     "pickups_median_abs_error": pickup_error if name != "observed" else np.nan})
    table = pd.DataFrame(rows)
    folder = Path(out) if out else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_open(folder / "validation.csv") as fh:
            table.to_csv(fh, index=False)
        with atomic_open(folder / "validation_by_hour.csv") as fh:
            by_hour.to_csv(fh)
    return ValidationResult(table=table, by_hour=by_hour, out=folder)
