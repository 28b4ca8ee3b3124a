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
  draws the same riders for every planner (common random numbers);
* the riders are the scenario's ``[riders]``: on the bundled real scenarios some docked bikes
  and free docks cannot be used, and the counted trips are the served share of the attempted
  pickups, fitted to snapshots of other days (:mod:`bicimad.jobs.fit_riders`), so that the
  status-quo replay reproduces the snapshots' problem share (``bicimad sim validate``).

* every planner is judged on the scenario's declared objective (:mod:`bicimad.sim.objective`:
  problem station-hours, lost trips, diverted returns and truck km, weighted by the scenario's
  ``[reward]``), reported beside each of those metrics;
* a learnt policy is refused on days its model card lists as training days
  (``--allow-training-days`` runs it anyway and marks every output), a policy trained on the
  synthetic city is refused for processed data, and so is a policy trained with another fleet
  or on another network than the days planned (:mod:`bicimad.jobs.policy_fit`); a router
  (``router``: the scenario's own, ``router:DIR``: a `bicimad train-router` folder) is refused
  on its training and selection days and when learnt on the synthetic city for real data.

Outputs in ``--out``: ``per_day.csv`` (one row per planner, seed and day), ``per_seed.csv`` (one
row per planner and seed, summed over the days), ``occupancy.csv`` (one row per planner, named
by ``planner``: means over seeds with ``<col>_ci_low``/``<col>_ci_high`` 95 % Student-t
intervals; ``lost_trips``, ``diverted_returns``, ``bikes_moved``, ``truck_km`` and ``objective``
per day; plus the ``observed`` row from the snapshots of the same days, NaN where a metric is
not observed), ``paired.csv`` (each planner against ``status-quo``, ``ortools``, ``greedy-objective`` and ``noop``
where present: the mean per-day difference and relative change of the objective, the problem
share and lost trips, with 95 % intervals from a bootstrap over days), ``relative.csv`` (the
problem share against no-op and OR-Tools, paired by seed), ``seed_table.csv`` (balanced /
empty / full / empty-and-full station-hours and the problem share per planner, at the hour start
and within the hour), ``occupancy.png`` and ``hourly.png`` (plots), ``NOTE.md`` (what is and is
not comparable, and any warning), ``run.json`` and ``scenario.toml``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from warnings import catch_warnings, simplefilter

import numpy as np
import pandas as pd
from tqdm import tqdm

from bicimad.config import TZ, processed_dir
from bicimad.demand.calibration import calibrate_days, day_truth, rates_for_total
from bicimad.demand.forecast import forecast_day
from bicimad.demand.models import DemandModel
from bicimad.demand.panel import build_panel
from bicimad.demand.rates import CellRates, flag_truck_moves
from bicimad.errors import CommandError
from bicimad.io import atomic_open, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.batch import git_commit
from bicimad.jobs.policy_fit import (
    announce_policy,
    check_policy_fleet,
    check_policy_network,
    check_router_fit,
    policy_folder,
    read_card,
)
from bicimad.opendata.daily_usage import counted_trips, read_daily_usage
from bicimad.opendata.rejects import IngestError
from bicimad.opendata.schemas import read_table
from bicimad.plan import OBJECTIVE_PLANNERS, PLANNER_NAMES, make_planner
from bicimad.plan.ortools_planner import DEFAULT_SETTINGS, ORToolsPlanner, objective_weights
from bicimad.plan.router import read_router, router_folder, router_planner, scenario_router_dir
from bicimad.report.occupancy import (
    hourly_profile,
    mean_interval,
    occupancy_from_station_hours,
    state_counts,
)
from bicimad.report.plots import _pyplot, _save, plot_hourly_profile
from bicimad.sim import run_episode
from bicimad.sim.data import Processed
from bicimad.sim.network import synthetic_network
from bicimad.sim.objective import objective
from bicimad.sim.occupancy import problem_share
from bicimad.sim.riders import Demand, synthetic_demand
from bicimad.sim.scenario import ScenarioError, load_scenario, write_scenario
from bicimad.sim.seeds import derive_seed

log = logging.getLogger(__name__)

#: Columns averaged over seeds (with intervals) in occupancy.csv.
METRICS = ("balanced", "empty", "full", "empty_and_full", "problem_share", "lost_trips",
           "diverted_returns", "bikes_moved", "truck_km", "objective", "decision_s_per_hour",
           "problem_share_at_hour_start")

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
    operator_moves: np.ndarray | None = None  #: (24, n) EMT's inferred truck moves (bikes added > 0), observed days only


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
                 min_history_days: int = 7, forecast_model=None, daily_usage: pd.DataFrame | None = None
                 ) -> tuple[list[Day], list[str]]:
    """The days of ``[start, end)`` the simulator can run, and the ones skipped (with why).

    The truth of a day is its own demand: with ``daily_usage`` (EMT's counted trips), the day's
    observed net flows shrunk towards the cell mean, its volume calibrated to that day's count
    (:func:`bicimad.demand.calibration.day_truth`); without, the period's cell rates. The
    forecast planners see is ``forecast_model``'s (a trained demand model, e.g. LightGBM,
    reading only data before each day) when given, else cell rates fitted to the
    ``history_days`` before each day; with ``daily_usage`` its volume is the mean count of the
    earlier days of its day type."""
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
    if processed.station_hours is None or processed.station_hours.empty:
        raise CommandError("no station_hours table: run `bicimad ingest` first")
    truth = _PeriodTruth(processed, start, end, daily_usage, scenario.riders.counted_share)
    days, skipped = [], []
    for i, date in enumerate(dates):
        label = date.date().isoformat()
        try:
            network = processed.network_at(date)
        except LookupError:
            skipped.append(f"{label}: no snapshot in its first hour")
            continue
        panel = build_panel(processed.station_hours, processed.stations, start=date - pd.Timedelta(days=history_days),
                            end=date + pd.Timedelta(days=1), station_ids=network.station_ids)
        before = (panel.days < date) & ~np.isnan(panel.net).all(axis=(1, 2))
        if before.sum() < min_history_days:
            skipped.append(f"{label}: {before.sum()} day(s) of history before it (< {min_history_days})")
            continue
        forecast = _forecast(panel, before, network, date, processed, forecast_model, daily_usage,
                             scenario.riders.counted_share)
        days.append(Day(label, network, truth.demand(i, network), forecast, truth.moves_in_order(i, network)))
    return days, skipped


class _PeriodTruth:
    """The period's own demand, day by day, and EMT's inferred moves (see :func:`prepare_days`)."""

    def __init__(self, processed, start, end, daily_usage, counted_share: float = 1.0):
        self.counted_share = counted_share
        # Rates need the spread of several days per cell: a period of a few days has none.
        self.panel = build_panel(processed.station_hours, processed.stations, start=start, end=end)
        self.cells = CellRates.fit(self.panel)
        if not np.isfinite(self.cells.pickup).any():
            raise CommandError(f"no demand can be fitted to {start.date()}..{end.date()}: too few days of snapshots "
                               "(a period of two weeks or more is needed)")
        self.flags = flag_truck_moves(self.panel)
        self.moves = operator_moves(self.panel, self.flags)
        self.calibration = None if daily_usage is None else calibrate_days(self.cells, self.panel, daily_usage)

    def demand(self, i: int, network) -> Demand:
        if self.calibration is None:
            return _day_demand(self.panel, self.cells, i, network)
        t = self.panel.day_types[i]
        share = self.counted_share  # counts see the served riders: the attempted are more
        pickup, returns = day_truth(self.panel, self.cells, i, self.calibration.trips[i] / share,
                                    type_trips=self.calibration.type_trips[t] / share, station_ids=network.station_ids,
                                    truck_flags=self.flags)
        return Demand(self.panel.hour_stamps(i), _finite(pickup), _finite(returns))

    def moves_in_order(self, i: int, network) -> np.ndarray:
        column = pd.Index(self.panel.station_ids).get_indexer(network.station_ids)
        return np.where(column >= 0, self.moves[i][:, np.maximum(column, 0)], 0.0)


def _forecast(panel, before, network, date, processed, forecast_model, daily_usage, counted_share: float = 1.0) -> Demand:
    """What planners see for ``date``: from data before it only (no leakage)."""
    target = None
    if daily_usage is not None:  # the volume: the mean count of the earlier days of the same day type
        counts = counted_trips(daily_usage, panel.days)
        same = before & (panel.day_types == panel.day_types[-1]) & np.isfinite(counts)
        target = float(counts[same].mean()) / counted_share if same.any() else None
    if forecast_model is not None:
        rates = forecast_day(forecast_model, processed.station_hours, processed.stations, date, daily_trips=target)
        return Demand.from_tables(network, rates.assign(hour=pd.to_datetime(rates["hour"])))
    seen = _day_demand(panel, CellRates.fit(panel, day_mask=before), panel.n_days - 1, network)
    if target is None:
        return seen
    pickup, returns = rates_for_total(seen.pickup_rate, seen.return_rate, target)
    return Demand(seen.hours, _finite(pickup), _finite(returns))


def operator_moves(panel, flags: np.ndarray | None = None) -> np.ndarray:
    """(days, 24, stations) bikes EMT's trucks added (> 0) or removed (< 0), read from the
    snapshots: in each hour the truck-move rule flags, the net flow's excess over its cell's
    median (station x hour x day type over the panel's days); 0 elsewhere."""
    flags = flag_truck_moves(panel) if flags is None else flags
    types = panel.day_types
    median = np.zeros(panel.net.shape, dtype=float)
    with catch_warnings():
        simplefilter("ignore", RuntimeWarning)  # all-NaN cells: no median, no move
        for t in np.unique(types):
            median[types == t] = np.nanmedian(panel.net[types == t], axis=0)
    excess = np.where(flags, panel.net - np.nan_to_num(median), 0.0)
    return np.nan_to_num(excess)


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

    def __init__(self, planner, keep_bikes: bool = False):
        self.planner = planner
        self.name = planner.name
        self.empty = 0
        self.full = 0
        self.station_hours = 0
        self.by_hour = np.zeros((24, 2), dtype=np.int64)   #: per hour of day: problem hours, station-hours
        self.bikes_seen: list[np.ndarray] | None = [] if keep_bikes else None

    @property
    def problem_hours(self) -> int:
        return self.empty + self.full

    def plan(self, view):
        empty = view.bikes <= 0
        full = ~empty & (view.bikes >= view.capacity)
        self.empty += int(empty.sum())
        self.full += int(full.sum())
        self.station_hours += view.n_stations
        self.by_hour[view.hour_of_day] += (int(empty.sum() + full.sum()), view.n_stations)
        if self.bikes_seen is not None:
            self.bikes_seen.append(view.bikes.copy())
        return self.planner.plan(view)


def day_seed(seed: int, day: int) -> int:
    """The riders' seed of ``day`` for comparison seed ``seed`` (shared by every planner)."""
    return derive_seed(seed, day)


COUNTS = ("balanced", "empty", "full", "empty_and_full")
#: Per-day quantities summed over the days of a seed (occupancy.csv reports them per day).
TOTALS = ("lost_trips", "diverted_returns", "bikes_moved", "truck_km", "objective")
START_COUNTS = ("start_empty", "start_full", "start_station_hours")


def _day_row(name: str, seed: int, index: int, day: Day, result, recorder: HourStartRecorder, weights) -> dict:
    summary = result.summary.iloc[0]
    row = {"planner": name, "seed": seed, "day": index, "date": day.date,
           **{c: int(summary[c]) for c in COUNTS},
           **{c: float(summary[c]) for c in TOTALS if c != "objective"},
           "objective": objective(summary, weights),
           "decision_s": float(sum(step["decision_s"] for step in result.steps)), "hours": len(result.steps),
           "start_empty": recorder.empty, "start_full": recorder.full, "start_station_hours": recorder.station_hours}
    row["problem_share"] = problem_share({c: row[c] for c in COUNTS})
    row["problem_share_at_hour_start"] = recorder.problem_hours / max(recorder.station_hours, 1)
    return row


def per_seed_rows(per_day: pd.DataFrame) -> pd.DataFrame:
    """Per planner and seed: counts and totals summed over the days, shares from the sums."""
    rows = []
    for (name, seed), group in per_day.groupby(["planner", "seed"], sort=False):
        counts = {c: int(group[c].sum()) for c in COUNTS}
        start = {c: int(group[c].sum()) for c in START_COUNTS}
        rows.append({"planner": name, "seed": seed, "days": len(group), **counts, "problem_share": problem_share(counts),
                     **{c: float(group[c].sum(min_count=1)) for c in TOTALS},
                     "decision_s_per_hour": float(group["decision_s"].sum()) / max(int(group["hours"].sum()), 1),
                     "problem_share_at_hour_start": (start["start_empty"] + start["start_full"])
                     / max(start["start_station_hours"], 1), **start})
    return pd.DataFrame(rows)


def run_comparison(scenario, days: list[Day], planners: dict, seeds: list[int], progress: bool = True,
                   on_day: Callable | None = None):
    """Per-seed rows (summed over days), per-day rows, and for the first seed each planner's
    occupancy table. Day ``i`` of seed ``s`` draws the same riders for every planner.
    ``on_day(planner, seed, day_index, recorder, result)`` sees every simulated day (the
    recorder then keeps the docked bikes at each hour start)."""
    rows, first_tables = [], {}
    bar = tqdm(total=len(planners) * len(seeds) * len(days), desc="compare", unit="day", disable=not progress)
    for name, planner in planners.items():
        for seed in seeds:
            tables = []
            for i, day in enumerate(days):
                today = planner.for_day(day) if hasattr(planner, "for_day") else planner
                fleet = today.scenario_for(scenario, day.network) if hasattr(today, "scenario_for") else scenario
                recorder = HourStartRecorder(today, keep_bikes=on_day is not None)
                seen = day.truth if getattr(today, "sees_truth", False) else day.forecast
                result = run_episode(day.network, day.truth, seen, fleet, recorder, seed=day_seed(seed, i))
                if on_day is not None:
                    on_day(name, seed, i, recorder, result)
                row = _day_row(name, seed, i, day, result, recorder, scenario.reward)
                if getattr(today, "virtual_fleet", False):  # EMT's replayed moves: no real truck routes
                    row["truck_km"] = np.nan   # the objective already counted its km as 0 (trucks stay at their base)
                rows.append(row)
                if seed == seeds[0]:
                    tables.append(result.occupancy)
                bar.update()
            if tables:
                first_tables[name] = pd.concat(tables, ignore_index=True)
    bar.close()
    per_day = pd.DataFrame(rows)
    return per_seed_rows(per_day), first_tables, per_day


def summarise(per_seed, observed: dict | None = None):
    """One row per planner: the mean of each metric over seeds and its 95 % interval; lost
    trips, diverted returns, bikes moved, truck km and the objective per day."""
    rows = []
    for planner, group in per_seed.groupby("planner", sort=False):
        days = int(group["days"].iloc[0])
        row = {"planner": planner, "kind": "simulated (within hour)", "seeds": len(group), "days": days}
        for column in METRICS:
            values = group[column] / days if column in TOTALS else group[column]
            mean, low, high = mean_interval(values.tolist())
            row[column], row[f"{column}_ci_low"], row[f"{column}_ci_high"] = mean, low, high
        rows.append(row)
    _bound_recovered(rows)
    if observed is not None:
        rows.append(observed)
    frame = pd.DataFrame(rows)
    first = ["planner", "kind", "seeds", "days", *METRICS]
    return frame[first + [c for c in frame.columns if c not in first]]


def _bound_recovered(rows: list[dict]) -> None:
    """``bound_gain_recovered`` on each row: the share of the reachable gain it takes,
    ``(noop - planner) / (noop - bound)`` on the objective a day, the bound being the best
    planner shown the truth (``<name>-perfect``); left out without ``noop`` or such a planner."""
    objective_of = {r["planner"]: r["objective"] for r in rows}
    bounds = [v for k, v in objective_of.items() if k.endswith("-perfect")]
    if "noop" not in objective_of or not bounds or not objective_of["noop"] > min(bounds):
        return
    reachable = objective_of["noop"] - min(bounds)
    for row in rows:
        row["bound_gain_recovered"] = (objective_of["noop"] - row["objective"]) / reachable


def _daily_values(per_day: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(day x planner) of ``metric``, averaged over seeds; shares from the day's summed counts."""
    grouped = per_day.groupby(["day", "planner"], sort=False)
    if metric == "problem_share":
        sums = grouped[list(COUNTS)].sum()
        values = 1 - sums["balanced"] / sums.sum(axis=1)
    elif metric == "problem_share_at_hour_start":
        sums = grouped[list(START_COUNTS)].sum()
        values = (sums["start_empty"] + sums["start_full"]) / sums["start_station_hours"]
    else:
        values = grouped[metric].mean()
    table = values.unstack("planner")
    routers = [c for c in table.columns if str(c).startswith("router:")]
    if len(routers) > 1:  # several training seeds of a router: their mean is the method's result
        table[f"router:mean of {len(routers)}"] = table[routers].mean(axis=1)
    return table


def paired_by_day(per_day: pd.DataFrame, baselines=("status-quo", "ortools", "greedy-objective", "noop"),
                  metrics=("objective", "problem_share", "lost_trips"), n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each planner against each baseline present: the mean per-day difference and its 95 %
    interval by a bootstrap over days (the day is the cluster: its seeds stay together), and the
    relative change ``mean(planner) / mean(baseline) - 1`` with the same resampled days."""
    rng = np.random.default_rng(seed)
    n_days = per_day["day"].nunique()
    draws = rng.integers(0, n_days, size=(n_boot, n_days))
    rows = []
    for metric in metrics:
        table = _daily_values(per_day, metric)
        for baseline in (b for b in baselines if b in table):
            base = table[baseline].to_numpy(dtype=float)
            for planner in (p for p in table.columns if p != baseline):
                value = table[planner].to_numpy(dtype=float)
                diff = value - base
                boot_diff = diff[draws].mean(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    boot_change = value[draws].mean(axis=1) / base[draws].mean(axis=1) - 1
                    change = value.mean() / base.mean() - 1
                rows.append({"planner": planner, "baseline": baseline, "metric": metric, "days": n_days,
                             "value": value.mean(), "baseline_value": base.mean(), "diff": diff.mean(),
                             "diff_ci_low": np.quantile(boot_diff, 0.025), "diff_ci_high": np.quantile(boot_diff, 0.975),
                             "change": change, "change_ci_low": np.nanquantile(boot_change, 0.025),
                             "change_ci_high": np.nanquantile(boot_change, 0.975)})
    return pd.DataFrame(rows)


def seed_table(per_seed: pd.DataFrame, observed: dict | None = None) -> pd.DataFrame:
    """The occupancy table in the seed presentation's form: station-hours balanced, empty, full,
    empty and full, and the problem share, per planner (mean over seeds of the period's totals),
    at the hour start (as snapshots see it) and within the hour (simulated only)."""
    rows = []
    if observed is not None:
        rows.append({"planner": "observed", "measured": "at the hour start",
                     **{c: observed[c] for c in COUNTS}, "problem_share": observed["problem_share"]})
        rows.append({"planner": "observed", "measured": "within the hour",
                     **dict.fromkeys(COUNTS, np.nan), "problem_share": np.nan})
    for planner, group in per_seed.groupby("planner", sort=False):
        empty, full, hours = (group[c].mean() for c in START_COUNTS)
        rows.append({"planner": planner, "measured": "at the hour start", "balanced": hours - empty - full,
                     "empty": empty, "full": full, "empty_and_full": 0.0, "problem_share": (empty + full) / hours})
        within = {c: group[c].mean() for c in COUNTS}
        rows.append({"planner": planner, "measured": "within the hour", **within,
                     "problem_share": problem_share(within)})
    return pd.DataFrame(rows, columns=["planner", "measured", *COUNTS, "problem_share"])


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


def plot_trade_off(per_seed, path: Path) -> Path:
    """Each planner's problem station-hours against its lost trips per day, the marker's area its
    truck km: the trade-off the objective's weights settle (lower left is better)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    rows = per_seed.assign(problem_hours=per_seed[["empty", "full", "empty_and_full"]].sum(axis=1))
    means = rows.groupby("planner", sort=False)[["problem_hours", "lost_trips", "truck_km", "days"]].mean()
    km = np.nan_to_num(means["truck_km"] / means["days"])
    ax.scatter(means["lost_trips"] / means["days"], means["problem_hours"] / means["days"],
               s=30 + 300 * km / max(km.max(), 1.0), alpha=0.7)
    for name, row in means.iterrows():
        ax.annotate(name, (row["lost_trips"] / row["days"], row["problem_hours"] / row["days"]), fontsize="small",
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("lost trips per day")
    ax.set_ylabel("problem station-hours per day")
    ax.set_title("Trade-off by planner (marker area: truck km per day)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


class PerfectForecast:
    """A planner shown the day's truth instead of the forecast: an upper bound on what better
    forecasts could give it (``<planner>-perfect`` in ``--planners``)."""

    sees_truth = True

    def __init__(self, planner):
        self.planner = planner
        self.name = f"{planner.name}-perfect"

    def plan(self, view):
        return self.planner.plan(view)


def _ortools_with_lost_weight(name: str, objective, time_limit_s):
    """``ortools-lost<w>``: OR-Tools on the objective with lost pickups and diverted returns
    weighted ``w`` (a point of the weight sweep)."""
    try:
        weight = float(name.removeprefix("ortools-lost"))
    except ValueError:
        raise CommandError(f"--planners: {name!r}: expected ortools-lost<weight>, e.g. ortools-lost0.5") from None
    if not 0 <= weight < float("inf"):
        raise CommandError(f"--planners: {name!r}: the weight must be a finite number >= 0")
    weights = objective_weights(objective) if objective is not None else {}
    weights.update(lost_weight=weight, diverted_weight=weight)
    if time_limit_s is not None:
        weights["time_limit_s"] = time_limit_s
    return ORToolsPlanner(name=name, **weights)


def build_planners(names, policy: str | None, time_limit_s: float | None, objective=None,
                   routers: dict | None = None) -> dict:
    """Planners by name (``<name>-perfect``: that planner seeing the truth); ``time_limit_s``
    None leaves OR-Tools' own default; ``objective`` (the scenario's weights) is what OR-Tools
    values its stops on; ``routers`` maps each router name to its read ``router.json``
    (:func:`router_cards`)."""
    planners = {}
    routers = routers or {}
    for name in names:
        base = name.removesuffix("-perfect")
        if base in routers:
            weights = objective_weights(objective) if objective is not None else {}
            router = router_planner(routers[base]["params"], name=base, **weights)
            planners[name] = router if base == name else PerfectForecast(router)
            continue
        if name.startswith("ortools-lost"):
            planners[name] = _ortools_with_lost_weight(name, objective, time_limit_s)
            continue
        if base not in PLANNER_NAMES or name == "status-quo-perfect":
            known = ", ".join(PLANNER_NAMES)
            raise CommandError(f"--planners: unknown planner {name!r}; known: {known} (and <name>-perfect)")
        if base != name:
            planners[name] = PerfectForecast(build_planners([base], policy, time_limit_s, objective)[base])
            continue
        kwargs = {"ppo": {"policy_dir": policy}}.get(name, {})
        if name in OBJECTIVE_PLANNERS and objective is not None:
            kwargs = objective_weights(objective)
        if name.startswith("ortools") and time_limit_s is not None:
            kwargs = {**kwargs, "time_limit_s": time_limit_s}
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
    against the baselines (by seed and by day), and the output folder."""

    occupancy: pd.DataFrame
    relative: pd.DataFrame
    paired: pd.DataFrame
    out: Path
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        shown = self.occupancy[["planner", "problem_share", "problem_share_ci_low", "problem_share_ci_high",
                                "problem_share_at_hour_start", "objective", "lost_trips", "bikes_moved"]]
        lines = [f"WARNING: {w}" for w in self.warnings]
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        lines += [f"{c.planner} vs {c.baseline}: problem share {100 * c.change:+.1f} % "
                  f"[{100 * c.change_ci_low:+.1f}, {100 * c.change_ci_high:+.1f}] (paired over seeds)"
                  for c in self.relative.itertuples()]
        lines += [f"{c.planner} vs {c.baseline}: objective {100 * c.change:+.1f} % "
                  f"[{100 * c.change_ci_low:+.1f}, {100 * c.change_ci_high:+.1f}] (bootstrap over {c.days} days)"
                  for c in self.paired.itertuples() if c.metric == "objective"]
        lines.append(f"wrote {self.out / 'occupancy.csv'}")
        return "\n".join(lines)


#: How a comparison is told to use another policy.
POLICY_HINT = " and pass it with --policy"


def check_policy_protocol(policy: str | None, scenario, start, end, allow_training_days: bool,
                          scenario_arg: str | None = None) -> list[str]:
    """A learnt policy is tested on days it never trained on, for the fleet and the kind of city it
    was trained for: refuse (exit 2) a policy with no model card, one trained on the synthetic city
    for a comparison on processed data, one whose fleet differs from the scenario's or whose card
    predates that check (:mod:`bicimad.jobs.policy_fit`), and one whose card lists a day of the
    period among its training days, unless ``allow_training_days`` (then the returned warning
    marks every output). The network is checked once the days are known (:func:`check_policy_days`)."""
    folder = policy_folder(policy)
    card = read_card(folder)
    if scenario.network.source == "processed" and card.get("source") == "synthetic":
        raise CommandError(f"policy {folder} was trained on the synthetic city (scenario {card.get('scenario')!r}); "
                           f"scenario {scenario.name!r} runs on processed data: train a policy on it "
                           "(`bicimad train-agent --scenario ...`) and pass it with --policy")
    check_policy_fleet(folder, card, scenario.fleet, f"scenario {scenario.name!r}", scenario_arg or scenario.name,
                       POLICY_HINT)
    period = {d.date().isoformat() for d in pd.date_range(start, end, freq="D", inclusive="left")}
    overlap = sorted(period & set(card.get("days", [])))
    if not overlap:
        return []
    message = (f"policy {folder} trained on {len(overlap)} day(s) of this period ({overlap[0]}..{overlap[-1]}): "
               "its results are measured on its training days")
    if not allow_training_days:
        raise CommandError(message + "; choose a period it never saw, or pass --allow-training-days to mark the output")
    return [message]


def router_folders(names, scenario) -> tuple[list[str], dict[str, Path]]:
    """``names`` as outputs name them, and the folder of each router among them: ``router:DIR``
    names one (reported as ``router:<folder name>``); ``router`` (or ``router-perfect``) is the
    scenario's own, ``models/routers/<scenario name>/``, refused (exit 2) where there is none."""
    labels, folders = [], {}
    for name in names:
        base = name.removesuffix("-perfect")
        if base == "router":
            folder = scenario_router_dir(scenario)
            if not (folder / "router.json").is_file():
                raise CommandError(f"--planners router: scenario {scenario.name!r} has no router ({folder} has no "
                                   "router.json): train one with `bicimad train-router`, or name one with router:DIR")
            folders[base] = folder
        elif name.startswith("router:"):
            folder = router_folder(name, scenario)
            name = f"router:{folder.name}"
            if name in folders and folders[name] != folder:
                raise CommandError(f"--planners: two routers are both called {name!r}: give their folders other names")
            folders[name] = folder
        labels.append(name)
    return labels, folders


def router_cards(folders: dict[str, Path]) -> dict[str, dict]:
    """Each router's ``router.json``, read once (:func:`bicimad.plan.router.read_router`); a
    missing or bad one exits 2 naming the planner."""
    cards = {}
    for label, folder in folders.items():
        try:
            cards[label] = read_router(folder)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"planner {label}: {exc}") from None
    return cards


def scenario_policy(scenario) -> str | None:
    """The policy ``ppo`` plans with when none is given: the scenario's own,
    ``models/policies/<scenario name>/`` (e.g. ``seed-fleet-2019``), where one is committed or
    trained, else None (the default policy, trained on the synthetic city). Said in the log
    (:func:`bicimad.jobs.policy_fit.announce_policy`), and recorded as ``policy`` in ``run.json``."""
    own = announce_policy(scenario)
    return None if own is None else str(own)


def check_policy_days(policy: str | None, scenario, days, scenario_arg: str | None = None) -> None:
    """Refuse (exit 2) a policy whose training network differs from the network of any day to be
    planned (its source, number of stations or station ids)."""
    folder = policy_folder(policy)
    check_policy_network(folder, read_card(folder), scenario.network.source, [(f"day {d.date}", d.network) for d in days],
                         scenario_arg or scenario.name, POLICY_HINT)


def load_daily_usage(path, data_dir=None) -> pd.DataFrame | None:
    """EMT's counted trips per day (the ``daily_usage`` table): from ``path`` (EMT's CSV, e.g.
    ``bici_disponibilidad_*.csv``), else ``processed/daily_usage.parquet`` when ingested, else None."""
    if path is not None:
        try:
            return read_daily_usage(path)
        except (OSError, IngestError) as exc:
            raise CommandError(f"--daily-usage: {exc}") from None
    ingested = processed_dir(data_dir) / "daily_usage.parquet"
    return read_table("daily_usage", ingested) if ingested.exists() else None


def load_forecast_model(path, start, allow_training_days: bool) -> tuple[DemandModel | None, list[str]]:
    """The demand model planners forecast with, refused (exit 2) when its data reaches into the
    period (its ``meta.json`` span), unless ``allow_training_days`` (then a warning marks the output)."""
    if path is None:
        return None, []
    folder = Path(path)
    try:
        model = DemandModel.load(folder)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(f"--demand-model: {exc}") from None
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return model, [f"demand model {folder} has no meta.json: its data span cannot be checked"]
    last = pd.Timestamp(json.loads(meta_path.read_text(encoding="utf-8"))["span"][1])
    if last < start:
        return model, []
    message = (f"demand model {folder} was trained on data up to {last.date()}, inside the period from {start.date()}: "
               "the forecast is measured on its training days")
    if not allow_training_days:
        raise CommandError(message + "; train it on data before the period, or pass --allow-training-days")
    return model, [message]


def _write_outputs(out: Path, frames: dict, tables, scenario, seeds, skipped, warnings) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        with atomic_open(out / f"{name}.csv") as fh:
            frame.to_csv(fh, index=False)
    plot_comparison(frames["occupancy"], out / "occupancy.png")
    plot_trade_off(frames["per_seed"], out / "trade_off.png")
    plot_hourly_profile({name: hourly_profile(table) for name, table in tables.items()}, out / "hourly.png",
                        title=f"Problem share by hour ({scenario.name}, seed {seeds[0]})")
    with atomic_open(out / "NOTE.md") as fh:
        fh.write("".join(f"**WARNING: {w}.**\n\n" for w in warnings))
        fh.write(NOTE)
        if skipped:
            fh.write("\nDays skipped: " + "; ".join(skipped) + "\n")
    write_scenario(scenario, out / "scenario.toml")


#: ``compare``'s planners when none are named: on observed data EMT's own moves, not a policy
#: trained elsewhere (``ppo`` is refused there until a policy is trained on its network).
DEFAULT_PLANNERS = {"processed": ("status-quo", "noop", "greedy", "ortools"), "synthetic": ("noop", "greedy", "ortools", "ppo")}


def compare(scenario: str, period: str, *, out, planners=None, seeds: int = 3,
            seed: int = 0, policy: str | None = None, time_limit_s: float | None = None, history_days: int = 28,
            max_days: int = 0, allow_training_days: bool = False, demand_model=None, daily_usage=None,
            data_dir=None, progress: bool = True) -> CompareResult:
    """Every planner on the same days of ``period`` and the same rider draws; writes the
    outputs listed in this module's docstring to ``out``."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    start, end = parse_period(period)
    if seeds < 1 or max_days < 0 or history_days < 1:
        raise CommandError("--seeds and --history-days must be >= 1, --max-days >= 0")
    planners = DEFAULT_PLANNERS[loaded.network.source] if planners is None else planners
    if policy is None and "ppo" in planners:
        policy = scenario_policy(loaded)
    planners, routers = router_folders(planners, loaded)
    cards = router_cards(routers)
    built = build_planners(planners, policy, time_limit_s, loaded.reward, cards)
    warnings = check_policy_protocol(policy, loaded, start, end, allow_training_days, scenario) if "ppo" in built else []
    dates = [d.date().isoformat() for d in pd.date_range(start, end, freq="D", inclusive="left")]
    for label, folder in routers.items():
        warnings += check_router_fit(folder, cards[label], loaded, dates, allow_training_days)
    model, model_warnings = load_forecast_model(demand_model, start, allow_training_days)
    warnings += model_warnings
    if "ppo" in built:
        import torch

        torch.set_num_threads(1)  # a small network: more threads only contend on a shared machine
    usage = load_daily_usage(daily_usage, data_dir) if loaded.network.source == "processed" else None
    if loaded.network.source == "processed" and usage is None:
        warnings.append("no daily_usage table (EMT's counted trips): the truth is the period's cell rates, its volume "
                        "not calibrated to the counts (pass --daily-usage)")
    days, skipped = prepare_days(loaded, start, end, data_dir, history_days, forecast_model=model, daily_usage=usage)
    if max_days:
        days = days[:max_days]
    if not days:
        raise CommandError(f"no day of {period} can be simulated: " + "; ".join(skipped or ["empty period"]))
    if "ppo" in built:
        check_policy_days(policy, loaded, days, scenario)
    for reason in skipped:
        log.warning("skipped %s", reason)
    t0 = time.perf_counter()
    seed_list = list(range(seed, seed + seeds))
    per_seed, tables, per_day = run_comparison(loaded, days, built, seed_list, progress=progress)
    observed = observed_row(data_dir, days) if loaded.network.source == "processed" else None
    frames = {"per_seed": per_seed, "per_day": per_day, "occupancy": summarise(per_seed, observed),
              "relative": relative_changes(per_seed), "paired": paired_by_day(per_day, seed=seed),
              "seed_table": seed_table(per_seed, observed)}
    out = Path(out)
    _write_outputs(out, frames, tables, loaded, seed_list, skipped, warnings)
    write_json(out / "run.json", {
        "scenario": loaded.name, "period": period, "days": [d.date for d in days], "skipped": skipped,
        "seeds": seed_list, "planners": list(built), "policy": policy,
        "routers": {label: str(folder) for label, folder in routers.items()}, "ortools_time_limit_s": time_limit_s or DEFAULT_SETTINGS.time_limit_s,
        "history_days": history_days, "git_commit": git_commit().get("commit"), "wall_s": time.perf_counter() - t0,
        "warnings": warnings, "tested_on_training_days": any("its training days" in w for w in warnings),
        "forecast": str(demand_model) if demand_model else f"cell rates of the {history_days} days before each day",
        "truth": "synthetic city" if loaded.network.source == "synthetic" else
        ("each day's own demand, calibrated to EMT's counted trips" if usage is not None else "the period's cell rates"),
        "objective_weights": dataclasses.asdict(loaded.reward),
    })
    return CompareResult(occupancy=frames["occupancy"], relative=frames["relative"], paired=frames["paired"], out=out,
                         warnings=tuple(warnings))
