"""``bicimad sim run`` (one simulated day with a planner) and ``bicimad sim fidelity``
(the simulator against real snapshots)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bicimad import config
from bicimad.demand.forecast import forecast_day, load_model
from bicimad.demand.od import build_od
from bicimad.demand.panel import build_panel
from bicimad.demand.rates import fit_period_rates, flag_truck_moves
from bicimad.errors import EXIT_BAD_INPUT, CommandError
from bicimad.io import atomic_path, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.policy_fit import DEFAULT_POLICY_HINT, announce_policy, check_policy_fits, check_router_planner
from bicimad.opendata.schemas import read_table, write_table
from bicimad.plan import is_router_name, planner_for
from bicimad.sim.data import Processed
from bicimad.sim.env import scenario_inputs
from bicimad.sim.fidelity import expected_bikes, score
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import Demand, synthetic_demand
from bicimad.sim.rollout import run_episode
from bicimad.sim.scenario import ScenarioError, load_scenario, write_scenario

log = logging.getLogger(__name__)


def _processed(data_dir) -> Processed:
    try:
        return Processed.load(data_dir, with_hours=True, with_trips=True)
    except FileNotFoundError as exc:
        raise CommandError(f"{exc}", EXIT_BAD_INPUT) from None


def _month(period: str):
    try:
        start = pd.Timestamp(f"{period}-01")
    except ValueError:
        raise CommandError(f"--period {period!r}: expected YYYY-MM") from None
    return start, start + pd.offsets.MonthBegin(1)


# ---------------------------------------------------------------------------------------------
# fidelity
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FidelityResult(JobResult):
    """Per period: the MAE table per horizon (sim against persistence) and the printed lines."""

    tables: dict[str, pd.DataFrame]
    lines: tuple[str, ...]

    def summary(self) -> str:
        return "\n".join(self.lines)


def _period_demand(processed, start, end, demand: str, model, daily_trips):
    """Rates for every station-hour of [start, end): fitted to the period itself, or each day's
    forecast from data before it."""
    if demand == "period":
        rates = fit_period_rates(processed.station_hours, start, end, stations=processed.stations,
                                 daily_trips=daily_trips)
    else:
        try:
            fitted = load_model(model)
        except FileNotFoundError as exc:
            raise CommandError(str(exc), EXIT_BAD_INPUT) from None
        days = pd.date_range(start, end, freq="D", inclusive="left")
        rates = pd.concat([forecast_day(fitted, processed.station_hours, processed.stations, day)
                           for day in tqdm(days, desc="forecasts", unit="day", file=sys.stderr)], ignore_index=True)
    rates["hour"] = pd.to_datetime(rates["hour"])
    return rates


@dataclasses.dataclass
class _FidelityPeriod:
    """What every origin of one period needs."""

    processed: Processed
    rates: pd.DataFrame
    od: pd.DataFrame
    flags: np.ndarray
    station_col: pd.Index
    instants: pd.DatetimeIndex
    by_ts: dict
    horizons: int
    draws: int
    seed: int


def _origin_rows(period: _FidelityPeriod, day_i: int, day, origin: int) -> list[pd.DataFrame]:
    """The simulated and real docked bikes, per horizon, of the run from one origin hour."""
    instants, horizons = period.instants, period.horizons
    hour0 = pd.Timestamp(day + pd.Timedelta(hours=origin)).tz_localize(config.TZ, nonexistent="shift_forward")
    found = instants[(instants >= hour0) & (instants < hour0 + pd.Timedelta(hours=1))]
    if len(found) == 0 or origin + horizons > 24:
        return []
    t0 = found[0]
    try:
        network = period.processed.network_at(t0)
    except (LookupError, ValueError) as exc:
        log.warning("skip %s: %s", t0, exc)
        return []
    window = period.rates[(period.rates["hour"] >= hour0) & (period.rates["hour"] < hour0 + pd.Timedelta(hours=horizons))]
    if window.empty:
        return []
    demand = Demand.from_tables(network, window, period.od)
    if demand.n_hours < horizons:
        return []
    sim = expected_bikes(network, demand, horizons, period.draws, seed=period.seed)
    cols = period.station_col.get_indexer(network.station_ids)
    rows = []
    for k in range(1, horizons + 1):
        target = t0 + pd.Timedelta(hours=k)
        near = instants[np.abs((instants - target).total_seconds()) <= 20 * 60]
        if len(near) == 0:
            continue
        real = period.by_ts[near[0]].reindex(network.station_ids).to_numpy(dtype=float)
        moved = period.flags[day_i, origin:origin + k][:, np.maximum(cols, 0)].any(axis=0) & (cols >= 0)
        ok = np.isfinite(real)
        rows.append(pd.DataFrame({
            "origin": t0, "horizon": k, "station_id": network.station_ids[ok],
            "start": network.bikes[ok], "real": real[ok], "sim": sim[k - 1][ok], "truck_move": moved[ok],
        }))
    return rows


def _fidelity_lines(name: str, detail: pd.DataFrame, table: pd.DataFrame, rates, horizons: int, path: Path) -> list[str]:
    gap_all = table["mae_sim"] - table["mae_persistence"]
    gap_clean = table["mae_sim_no_truck"] - table["mae_persistence_no_truck"]
    return [
        f"\n{name}: {detail['origin'].nunique()} origins x {horizons} h, {len(detail):,} station-windows; demand: "
        + ", ".join(f"{m} {c:,}" for m, c in rates["method"].value_counts().items()) + " station-hours",
        table.to_string(index=False, float_format=lambda x: f"{x:.3f}"),
        "sim minus persistence MAE, all / without truck-move windows: "
        + ", ".join(f"{h}h {a:+.2f}/{c:+.2f}" for h, a, c in zip(table["horizon"], gap_all, gap_clean)),
        "share of the simulation's error in windows with an operator truck move: "
        + ", ".join(f"{h}h {x:.1%}" for h, x in zip(table["horizon"], table["truck_error_share"])),
        f"written: {path.resolve()}",
    ]


def fidelity(periods: tuple[str, ...] = ("2018-09", "2019-10"), *, origins: str = "7,12,17", horizons: int = 6,
             draws: int = 8, demand: str = "period", model=None, daily_trips: float | None = None, seed: int = 0,
             out=None, data_dir=None) -> FidelityResult:
    """No-truck runs from real snapshots (each day at the ``origins`` hours) against the snapshots
    that followed: MAE per horizon against persistence; ``fidelity-<period>.csv`` per period."""
    processed = _processed(data_dir)
    if processed.station_hours is None:
        raise CommandError("no station_hours table: run `bicimad ingest` first", EXIT_BAD_INPUT)
    try:
        hours = [int(h) for h in origins.split(",")]
    except ValueError:
        raise CommandError(f"--origins: expected comma-separated hours, got {origins!r}") from None
    if any(not 0 <= h < 24 for h in hours) or horizons < 1:
        raise CommandError("--origins must be hours 0-23 and --horizons >= 1")
    out_dir = config.runs_dir(data_dir) / "fidelity" if out is None else Path(out)
    od = build_od(processed.stations, processed.trips)
    tables, lines = {}, []
    for name in periods:
        start, end = _month(name)
        instants = processed.instants(start, end)
        if len(instants) == 0:
            raise CommandError(f"no snapshots in {name}", EXIT_BAD_INPUT)
        rates = _period_demand(processed, start, end, demand, model, daily_trips)
        panel = build_panel(processed.station_hours, processed.stations, start=start, end=end)
        snaps = processed.snapshots[(processed.snapshots["ts"] >= instants[0]) & (processed.snapshots["ts"] <= instants[-1])]
        period = _FidelityPeriod(processed, rates, od, flag_truck_moves(panel), pd.Index(panel.station_ids), instants,
                                 {ts: g.set_index("station_id")["bikes"] for ts, g in snaps.groupby("ts")},
                                 horizons, draws, seed)
        days = pd.date_range(start, end, freq="D", inclusive="left")
        rows = [row for day_i, day in enumerate(tqdm(days, desc=f"fidelity {name}", unit="day", file=sys.stderr))
                for origin in hours for row in _origin_rows(period, day_i, day, origin)]
        if not rows:
            raise CommandError(f"{name}: no origin with following snapshots", EXIT_BAD_INPUT)
        detail = pd.concat(rows, ignore_index=True)
        table = score(detail)
        path = out_dir / f"fidelity-{name}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        tables[name] = table
        lines += _fidelity_lines(name, detail, table, rates, horizons, path)
    return FidelityResult(tables=tables, lines=tuple(lines))


# ---------------------------------------------------------------------------------------------
# one simulated day
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DayResult(JobResult):
    """One simulated day: its summary row and the run folder."""

    table: pd.DataFrame
    out: Path

    def summary(self) -> str:
        return f"{self.table.to_string(index=False)}\nwritten: {self.out.resolve()}"


def _processed_day(scenario, date: str | None, daily_trips, data_dir):
    """A processed scenario's day: the network at the day's start and the month's fitted rates."""
    processed = _processed(data_dir)
    day = date or scenario.network.date
    if not day:
        raise CommandError(f"scenario {scenario.name!r}: give --date")
    start = pd.Timestamp(day)
    network = processed.network_at(start)
    month = start.to_period("M").to_timestamp()
    rates = fit_period_rates(processed.station_hours, month, month + pd.offsets.MonthBegin(1),
                             stations=processed.stations, daily_trips=daily_trips)
    rates["hour"] = pd.to_datetime(rates["hour"])
    today = rates[rates["hour"].dt.tz_convert(config.TZ).dt.normalize().dt.tz_localize(None) == start]
    if today.empty:
        raise CommandError(f"no rates for {day}: no snapshots that month?", EXIT_BAD_INPUT)
    return day, network, Demand.from_tables(network, today, build_od(processed.stations, processed.trips))


def simulate_day(scenario: str = "synthetic-default", *, planner: str = "noop", seed: int = 0, date: str | None = None,
                 forecast: str | None = None, daily_trips: float | None = None, out=None, data_dir=None) -> DayResult:
    """Simulate one day of ``scenario`` with ``planner`` (``none``: trucks idle) and write the
    occupancy table, the summary row, the steps and the scenario to the run folder."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    chosen = None
    if planner != "none":
        try:
            chosen = planner_for(planner, loaded)
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from None
        if is_router_name(planner):   # refused for real data if learnt on the synthetic city; else warnings
            check_router_planner(planner, loaded, [date] if date else [], allow_training_days=True)
    if date is not None:
        try:
            pd.Timestamp(date)
        except ValueError:
            raise CommandError(f"--date: expected YYYY-MM-DD, got {date!r}") from None
    if loaded.network.source == "synthetic":
        if date:
            network = synthetic_network(loaded.network.stations, loaded.network.seed)
            truth = synthetic_demand(network, date=date, seed=loaded.network.seed)
        else:
            network, truth = scenario_inputs(loaded)
        day = str(truth.hours[0].date())
    else:
        day, network, truth = _processed_day(loaded, date, daily_trips, data_dir)
    if planner == "ppo":
        announce_policy(loaded)
        check_policy_fits(None, loaded, loaded.network.source, [(f"day {day}", network)], scenario, DEFAULT_POLICY_HINT)
    seen = truth
    if forecast:
        try:
            seen = Demand.from_tables(network, read_table("forecast", forecast))
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"--forecast: {exc}") from None
    result = run_episode(network, truth, seen, loaded, chosen, seed, progress=True)
    folder = Path(out) if out else config.runs_dir(data_dir) / "sim" / f"{loaded.name}-{day}-{planner}-{seed}"
    write_scenario(loaded, folder / "scenario.toml")
    write_table(result.occupancy, "occupancy", folder / "occupancy.parquet")
    with atomic_path(folder / "summary.csv") as tmp:
        result.summary.to_csv(tmp, index=False)
    with atomic_path(folder / "steps.csv") as tmp:
        pd.DataFrame(result.steps).to_csv(tmp, index=False)
    write_json(folder / "run.json", {"scenario": loaded.name, "date": day, "planner": planner,
                                     "seed": seed, "forecast": forecast or "truth rates (oracle)"})
    return DayResult(table=result.summary, out=folder)
