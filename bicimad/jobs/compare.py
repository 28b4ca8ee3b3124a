"""``bicimad compare``: every planner on the same days and the same demand draws.

Evaluation protocol (ARCHITECTURE.md). For a period ``START:END`` (local dates, both included):

* the simulator's *truth* is the period's own demand: Skellam cell rates (station x hour x
  day type, :class:`bicimad.demand.rates.CellRates`) fitted to that period's snapshots; a synthetic scenario uses its generated
  demand (the synthetic city's truth for each date's day type, starting every day from the
  city's initial bikes), which is then also what the planners see (it has no forecast error to model);
* the planners see only a forecast made from data *before* each day: Skellam cell rates
  (station x hour x day type) fitted to the ``history_days`` preceding it; a day with fewer
  than ``min_history_days`` of history is skipped and listed;
* each simulated day starts from the first snapshot of that day, and seed ``s`` of day ``d``
  draws the same riders for every planner (common random numbers).

Outputs in ``--out``: ``per_seed.csv`` (one row per planner and seed, summed over the days),
``occupancy.csv`` (one row per planner: means over seeds with ``<col>_ci_low``/``<col>_ci_high``
95 % Student-t intervals, plus the occupancy observed in the snapshots of the same days),
``relative.csv`` (each planner's problem share against no-op and OR-Tools, paired by seed),
``occupancy.png`` and ``hourly.png`` (plots), ``NOTE.md`` (what is and is not comparable),
``run.json`` and ``scenario.toml``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bicimad.config import TZ
from bicimad.demand.panel import build_panel
from bicimad.demand.rates import CellRates
from bicimad.errors import CommandError
from bicimad.io import atomic_open, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.batch import git_commit
from bicimad.plan import PLANNER_NAMES, make_planner
from bicimad.report.occupancy import (
    hourly_profile,
    mean_interval,
    occupancy_from_station_hours,
    problem_share,
    state_counts,
)
from bicimad.report.plots import _pyplot, _save, plot_hourly_profile
from bicimad.sim import run_episode
from bicimad.sim.data import Processed
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import Demand, synthetic_demand
from bicimad.sim.scenario import ScenarioError, load_scenario, write_scenario

log = logging.getLogger(__name__)

#: Columns averaged over seeds (with intervals) in occupancy.csv.
METRICS = ("balanced", "empty", "full", "empty_and_full", "problem_share", "lost_trips",
           "diverted_returns", "bikes_moved", "truck_km", "decision_s_per_hour", "problem_share_at_hour_start")

NOTE = """# What is and is not comparable

* **Simulated rows** classify every station-hour by what happened *within* the hour: a station
  that was empty or full at any minute of it counts (exact, minute by minute).
* **The observed row** comes from EMT's hourly snapshots: a station-hour is empty or full only
  if it was so *at the snapshot instant*. Within-hour empty or full moments between snapshots
  are missed, so the observed problem share is a lower bound of the within-hour share, and it
  includes the effect of EMT's own truck operations of the time. Lost trips, diverted returns,
  bikes moved and truck km are not observed.
* **`problem_share_at_hour_start`** is the simulated share measured the way snapshots measure it
  (the state at the start of each hour, before the trucks move): compare *this* column with the
  observed problem share.
* The simulated demand is the period's own fitted rates (Poisson riders), not the real riders;
  the simulated days start from each day's first real snapshot.
"""


@dataclass
class Day:
    """One simulated day: its network (bikes at the day's first snapshot), truth and forecast."""
    date: str
    network: object
    truth: object
    forecast: object | None


def parse_period(text: str):
    """``START:END`` local dates, both included -> (first day, day after the last)."""
    try:
        start, end = (pd.Timestamp(part) for part in text.split(":"))
    except ValueError as exc:
        raise CommandError(f"--period {text!r}: expected START:END dates, e.g. 2018-09-01:2018-09-30 ({exc})") from None
    if end < start:
        raise CommandError(f"--period {text!r}: END is before START")
    return start.normalize(), end.normalize() + pd.Timedelta(days=1)


def prepare_days(scenario, start, end, data_dir=None, history_days: int = 28,
                 min_history_days: int = 7) -> tuple[list[Day], list[str]]:
    """The days of ``[start, end)`` the simulator can run, and the ones skipped (with why)."""


    dates = pd.date_range(start, end, freq="D", inclusive="left")
    if scenario.network.source == "synthetic":
        network = synthetic_network(scenario.network.stations, scenario.network.seed)
        return [Day(d.date().isoformat(), network, synthetic_demand(network, date=d.date().isoformat(),
                                                                      seed=scenario.network.seed), None)
                for d in dates], []


    try:
        processed = Processed.load(data_dir, with_hours=True)
    except FileNotFoundError as exc:
        raise CommandError(f"{exc}; scenario {scenario.name!r} runs on processed data") from None
    hours = processed.station_hours
    if hours is None or hours.empty:
        raise CommandError("no station_hours table: run `bicimad ingest` first")
    # Truth: cell rates fitted to the period's own days (the day types it contains). Rates
    # need the spread of several days per cell: a period of a few days has none.
    period = build_panel(hours, processed.stations, start=start, end=end)
    truth_cells = CellRates.fit(period)
    if not np.isfinite(truth_cells.pickup).any():
        raise CommandError(f"no demand can be fitted to {start.date()}..{end.date()}: too few days of snapshots "
                           "(a period of two weeks or more is needed)")
    days, skipped = [], []
    for i, date in enumerate(dates):
        label = date.date().isoformat()
        try:
            network = processed.network_at(date)
        except LookupError:
            skipped.append(f"{label}: no snapshot in its first hour")
            continue
        truth = _day_demand(period, truth_cells, i, network)
        # Forecast: cell rates fitted to the days before this one only (no leakage).
        panel = build_panel(hours, processed.stations, start=date - pd.Timedelta(days=history_days),
                            end=date + pd.Timedelta(days=1), station_ids=network.station_ids)
        before = (panel.days < date) & ~np.isnan(panel.net).all(axis=(1, 2))
        if before.sum() < min_history_days:
            skipped.append(f"{label}: {before.sum()} day(s) of history before it (< {min_history_days})")
            continue
        forecast = _day_demand(panel, CellRates.fit(panel, day_mask=before), panel.n_days - 1, network)
        days.append(Day(label, network, truth, forecast))
    return days, skipped


def _day_demand(panel, cells, day: int, network):
    """Rates of ``cells`` for panel day ``day`` in the network's station order (a day type the
    fit never saw already holds the shrinkage prior, the station's mean over the other day
    types); a station with no rate at all gets 0."""


    column = np.clip(np.searchsorted(cells.station_ids, network.station_ids), 0, len(cells.station_ids) - 1)
    known = cells.station_ids[column] == network.station_ids
    rates = [np.where(known[None, :], cell[0][:, column], 0.0)
             for cell in cells.lookup(panel.day_types[day:day + 1])]
    return Demand(panel.hour_stamps(day), _finite(rates[0]), _finite(rates[1]))


def _finite(rates):

    return np.nan_to_num(np.clip(rates, 0, None), nan=0.0)


class HourStartRecorder:
    """Wraps a planner and counts station-hours empty or full at the hour's start (as a
    snapshot would see them) before passing the view on."""
    def __init__(self, planner):
        self.planner = planner
        self.name = planner.name
        self.problem_hours = 0
        self.station_hours = 0

    def plan(self, view):
        self.problem_hours += int(((view.bikes <= 0) | (view.bikes >= view.capacity)).sum())
        self.station_hours += view.n_stations
        return self.planner.plan(view)


def day_seed(seed: int, day: int) -> int:
    """The riders' seed of ``day`` for comparison seed ``seed`` (shared by every planner)."""
    return int(np.random.SeedSequence([seed, day]).generate_state(1)[0])


def run_comparison(scenario, days: list[Day], planners: dict, seeds: list[int], progress: bool = True):
    """Per-seed rows (summed over days) and, for the first seed, each planner's occupancy table."""


    rows, first_tables = [], {}
    bar = tqdm(total=len(planners) * len(seeds) * len(days), desc="compare", unit="day", disable=not progress)
    for name, planner in planners.items():
        for seed in seeds:
            recorder = HourStartRecorder(planner)
            summaries, decision_s, hours, tables = [], 0.0, 0, []
            for i, day in enumerate(days):
                result = run_episode(day.network, day.truth, day.forecast, scenario, recorder, seed=day_seed(seed, i))
                summary = result.summary.iloc[0]
                summaries.append(summary)
                decision_s += sum(step["decision_s"] for step in result.steps)
                hours += len(result.steps)
                if seed == seeds[0]:
                    tables.append(result.occupancy)
                bar.update()
            frame = pd.DataFrame(summaries)
            counts = {c: int(frame[c].sum()) for c in ("balanced", "empty", "full", "empty_and_full")}
            rows.append({
                "planner": name, "seed": seed, "days": len(days), **counts,
                "problem_share": problem_share(counts),
                **{c: float(frame[c].sum()) for c in ("lost_trips", "diverted_returns", "bikes_moved", "truck_km")},
                "decision_s_per_hour": decision_s / max(hours, 1),
                "problem_share_at_hour_start": recorder.problem_hours / max(recorder.station_hours, 1),
            })
            if tables:
                first_tables[name] = pd.concat(tables, ignore_index=True)
    bar.close()
    return pd.DataFrame(rows), first_tables


def summarise(per_seed, observed: dict | None = None):
    """One row per planner: the mean of each metric over seeds and its 95 % interval."""


    rows = []
    for planner, group in per_seed.groupby("planner", sort=False):
        row = {"planner": planner, "kind": "simulated (within hour)", "seeds": len(group), "days": int(group["days"].iloc[0])}
        for column in METRICS:
            mean, low, high = mean_interval(group[column].tolist())
            row[column], row[f"{column}_ci_low"], row[f"{column}_ci_high"] = mean, low, high
        rows.append(row)
    if observed is not None:
        rows.append(observed)
    frame = pd.DataFrame(rows)
    first = ["planner", "kind", "seeds", "days", *METRICS]
    return frame[first + [c for c in frame.columns if c not in first]]


def relative_changes(per_seed, baselines=("noop", "ortools"), metric: str = "problem_share"):
    """Each planner's change in ``metric`` against each baseline present, paired by seed.

    The planners met the same rider draws (common random numbers), so the change is taken per
    seed, ``metric / baseline's metric - 1``, then its mean and 95 % interval over seeds: an
    interval that excludes 0 says the difference is not the draws' noise.
    """


    table = per_seed.pivot(index="seed", columns="planner", values=metric)
    rows = []
    for baseline in baselines:
        if baseline not in table:
            continue
        for planner in table.columns:
            if planner == baseline:
                continue
            ratio = (table[planner] / table[baseline] - 1.0).tolist()
            mean, low, high = mean_interval(ratio)
            rows.append({"planner": planner, "baseline": baseline, "metric": metric,
                         "change": mean, "change_ci_low": low, "change_ci_high": high})
    return pd.DataFrame(rows, columns=["planner", "baseline", "metric", "change", "change_ci_low", "change_ci_high"])


def observed_row(data_dir, days: list[Day]) -> dict | None:
    """Occupancy observed in the snapshots of the simulated days (state at the snapshot instant)."""


    hours = Processed.load(data_dir, with_hours=True).station_hours
    local = pd.to_datetime(hours["hour"]).dt.tz_convert(TZ).dt.strftime("%Y-%m-%d")
    dates = {d.date for d in days}
    occupancy = occupancy_from_station_hours(hours[local.isin(dates)])
    if occupancy.empty:
        return None
    counts = state_counts(occupancy)
    share = problem_share(counts)
    return {"planner": "observed", "kind": "observed (snapshot instant)", "seeds": 0, "days": len(dates),
            **counts, "problem_share": share, "problem_share_at_hour_start": share}


def plot_comparison(summary, path: Path) -> Path:
    """Problem share per planner with its interval; the hour-start share beside it."""


    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(summary))
    for offset, column, label in ((-0.2, "problem_share", "within the hour"),
                                  (0.2, "problem_share_at_hour_start", "at the hour's start (as snapshots see it)")):
        mean = 100 * summary[column].to_numpy(dtype=float)
        if column == "problem_share":  # snapshots say nothing about within the hour
            mean = np.where(summary["kind"].str.startswith("observed"), np.nan, mean)
        low = 100 * summary.get(f"{column}_ci_low", summary[column]).to_numpy(dtype=float)
        high = 100 * summary.get(f"{column}_ci_high", summary[column]).to_numpy(dtype=float)
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        ax.bar(x + offset, mean, width=0.4, yerr=err, capsize=3, label=label)
    ax.set_xticks(x, summary["planner"])
    ax.set_ylabel("station-hours empty or full (%)")
    ax.set_title("Occupancy by planner (mean over seeds, 95 % interval)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def build_planners(names, policy: str | None, time_limit_s: float | None) -> dict:
    """Planners by name; ``time_limit_s`` None leaves OR-Tools' own default."""
    planners = {}
    for name in names:
        if name not in PLANNER_NAMES:
            raise CommandError(f"--planners: unknown planner {name!r}; known: {', '.join(PLANNER_NAMES)}")
        kwargs = {"ppo": {"policy_dir": policy}}.get(name, {})
        if name == "ortools" and time_limit_s is not None:
            kwargs = {"time_limit_s": time_limit_s}
        try:
            planners[name] = make_planner(name, **kwargs)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"planner {name}: {exc}") from None
    if not planners:
        raise CommandError("--planners: name at least one planner")
    return planners


@dataclasses.dataclass(frozen=True)
class CompareResult(JobResult):
    """A finished comparison: the occupancy table (one row per planner), the paired changes
    against the baselines, and the output folder."""
    occupancy: pd.DataFrame
    relative: pd.DataFrame
    out: Path

    def summary(self) -> str:
        shown = self.occupancy[["planner", "problem_share", "problem_share_ci_low", "problem_share_ci_high",
                                "problem_share_at_hour_start", "lost_trips", "bikes_moved"]]
        lines = [shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        lines += [f"{c.planner} vs {c.baseline}: problem share {100 * c.change:+.1f} % "
                  f"[{100 * c.change_ci_low:+.1f}, {100 * c.change_ci_high:+.1f}] (paired over seeds)"
                  for c in self.relative.itertuples()]
        lines.append(f"wrote {self.out / 'occupancy.csv'}")
        return "\n".join(lines)


def _write_outputs(out: Path, per_seed, summary, changes, tables, scenario, seeds, skipped) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("per_seed", per_seed), ("occupancy", summary), ("relative", changes)):
        with atomic_open(out / f"{name}.csv") as fh:
            frame.to_csv(fh, index=False)
    plot_comparison(summary, out / "occupancy.png")
    plot_hourly_profile({name: hourly_profile(table) for name, table in tables.items()}, out / "hourly.png",
                        title=f"Problem share by hour ({scenario.name}, seed {seeds[0]})")
    with atomic_open(out / "NOTE.md") as fh:
        fh.write(NOTE)
        if skipped:
            fh.write("\nDays skipped: " + "; ".join(skipped) + "\n")
    write_scenario(scenario, out / "scenario.toml")


def compare(scenario: str, period: str, *, out, planners=("noop", "greedy", "ortools", "ppo"), seeds: int = 3,
            seed: int = 0, policy: str | None = None, time_limit_s: float | None = None, history_days: int = 28,
            max_days: int = 0, data_dir=None, progress: bool = True) -> CompareResult:
    """Every planner on the same days of ``period`` and the same rider draws; writes the
    outputs listed in this module's docstring to ``out``."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    start, end = parse_period(period)
    if seeds < 1 or max_days < 0 or history_days < 1:
        raise CommandError("--seeds and --history-days must be >= 1, --max-days >= 0")
    built = build_planners(planners, policy, time_limit_s)
    if "ppo" in built:
        import torch

        torch.set_num_threads(1)  # a small network: more threads only contend on a shared machine
    days, skipped = prepare_days(loaded, start, end, data_dir, history_days)
    if max_days:
        days = days[:max_days]
    if not days:
        raise CommandError(f"no day of {period} can be simulated: " + "; ".join(skipped or ["empty period"]))
    for reason in skipped:
        log.warning("skipped %s", reason)
    t0 = time.perf_counter()
    seed_list = list(range(seed, seed + seeds))
    per_seed, tables = run_comparison(loaded, days, built, seed_list, progress=progress)
    observed = observed_row(data_dir, days) if loaded.network.source == "processed" else None
    summary = summarise(per_seed, observed)
    changes = relative_changes(per_seed)
    out = Path(out)
    _write_outputs(out, per_seed, summary, changes, tables, loaded, seed_list, skipped)
    write_json(out / "run.json", {
        "scenario": loaded.name, "period": period, "days": [d.date for d in days], "skipped": skipped,
        "seeds": seed_list, "planners": list(built), "policy": policy, "ortools_time_limit_s": time_limit_s,
        "history_days": history_days, "git_commit": git_commit().get("commit"), "wall_s": time.perf_counter() - t0,
    })
    return CompareResult(occupancy=summary, relative=changes, out=out)
