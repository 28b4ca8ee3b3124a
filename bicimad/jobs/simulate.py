"""``bicimad sim run`` (one simulated day with a planner) and ``bicimad sim fidelity``
(the simulator against real snapshots)."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sim", help="simulate a day with a planner; check the simulator against real data",
                            description="The rebalancing simulator.")
    sim_sub = parser.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")

    run = sim_sub.add_parser(
        "run", help="simulate one day with a planner and write its occupancy results",
        description="Simulate one day of a scenario with a planner; write occupancy.parquet, summary.csv, "
        "steps.csv and the scenario (TOML) to the run folder. A processed scenario takes its network "
        "from the snapshot at the day's start and its demand truth from rates fitted to that month "
        "(the planner sees --forecast, or those same rates if none is given: an oracle forecast).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--scenario", default="synthetic-default", help="bundled scenario name or TOML path")
    run.add_argument("--planner", default="noop", help="noop, greedy, ortools, ppo, or none (trucks idle)")
    run.add_argument("--seed", type=int, default=0, help="rider seed (common random numbers across planners)")
    run.add_argument("--date", default=None, help="local date YYYY-MM-DD (default: the scenario's; a synthetic city's day follows the date's day type)")
    run.add_argument("--forecast", default=None, help="forecast table (parquet) the planner sees")
    run.add_argument("--daily-trips", type=float, default=None,
                     help="processed scenarios: rescale the fitted gross rates to this many pickups a day "
                     "(Skellam rates run ~35 %% above EMT's counts; e.g. 14200 for Sep 2018)")
    run.add_argument("--out", default=None, help="run folder (default: <data-dir>/runs/sim/<scenario>-<date>-<planner>-<seed>)")
    run.set_defaults(func=run_day)

    fid = sim_sub.add_parser(
        "fidelity", help="compare no-truck simulations from real snapshots with the snapshots that followed",
        description="From real snapshots (each day at the --origins hours), simulate 1..H hours with no "
        "trucks on rates fitted to the period's own snapshots, and compare the expected docked bikes "
        "with the real snapshots that followed: MAE per horizon against persistence, over all "
        "station-windows and over those without an operator truck move.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    fid.add_argument("--period", action="append", default=None,
                     help="month YYYY-MM (repeatable; default: 2018-09 and 2019-10)")
    fid.add_argument("--origins", default="7,12,17", help="local hours the runs start from, comma-separated")
    fid.add_argument("--horizons", type=int, default=6, help="hours simulated from each origin")
    fid.add_argument("--draws", type=int, default=8, help="rider draws averaged per origin")
    fid.add_argument("--demand", choices=("period", "forecast"), default="period",
                     help="period: rates fitted to the month's own snapshots (in-sample); forecast: each "
                     "day's forecast from a trained demand model, made from data before that day")
    fid.add_argument("--model", default=None, help="demand model folder for --demand forecast "
                     "(default: the newest under models/demand)")
    fid.add_argument("--daily-trips", type=float, default=None,
                     help="rescale gross rates to this many pickups a day (e.g. 14200 for Sep 2018)")
    fid.add_argument("--seed", type=int, default=0)
    fid.add_argument("--out", default=None, help="folder for the per-period CSVs (default: <data-dir>/runs/fidelity)")
    fid.set_defaults(func=run_fidelity)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _processed(args):
    from bicimad.errors import CommandError
    from bicimad.sim.data import Processed

    try:
        return Processed.load(args.data_dir, with_hours=True, with_trips=True)
    except FileNotFoundError as exc:
        raise CommandError(f"{exc}", 3) from None


def _month(period: str):
    import pandas as pd

    from bicimad.errors import CommandError

    try:
        start = pd.Timestamp(f"{period}-01")
    except ValueError:
        raise CommandError(f"--period {period!r}: expected YYYY-MM") from None
    return start, start + pd.offsets.MonthBegin(1)


def _od(processed):
    """OD table from the trips that exist (gravity prior elsewhere), if the demand code is present."""
    try:
        from bicimad.demand.od import build_od
    except ImportError:
        return None
    return build_od(processed.stations, processed.trips)


def _period_demand(args, processed, start, end):
    """Rates for every station-hour of [start, end): fitted to the period itself, or each day's
    forecast from data before it."""
    import pandas as pd
    from tqdm import tqdm

    from bicimad.errors import CommandError

    if args.demand == "period":
        from bicimad.demand.rates import fit_period_rates

        rates = fit_period_rates(processed.station_hours, start, end, stations=processed.stations,
                                 daily_trips=args.daily_trips)
    else:
        try:
            from bicimad.demand.forecast import forecast_day, load_model
        except ImportError as exc:
            raise CommandError(f"--demand forecast needs the demand forecaster: {exc}", 3) from None
        try:
            model = load_model(args.model)
        except FileNotFoundError as exc:
            raise CommandError(str(exc), 3) from None
        days = pd.date_range(start, end, freq="D", inclusive="left")
        rates = pd.concat([forecast_day(model, processed.station_hours, processed.stations, day)
                           for day in tqdm(days, desc="forecasts", unit="day", file=sys.stderr)], ignore_index=True)
    rates["hour"] = pd.to_datetime(rates["hour"])
    return rates


def run_fidelity(args) -> int:
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from tqdm import tqdm

    from bicimad import config
    from bicimad.demand.panel import build_panel
    from bicimad.demand.rates import flag_truck_moves
    from bicimad.errors import CommandError
    from bicimad.io import atomic_path
    from bicimad.sim.fidelity import expected_bikes, score
    from bicimad.sim.riders import Demand

    processed = _processed(args)
    if processed.station_hours is None:
        raise CommandError("no station_hours table: run `bicimad ingest` first", 3)
    origins = [int(h) for h in args.origins.split(",")]
    if any(not 0 <= h < 24 for h in origins) or args.horizons < 1:
        raise CommandError("--origins must be hours 0-23 and --horizons >= 1")
    out_dir = config.runs_dir(args.data_dir) / "fidelity" if args.out is None else Path(args.out)
    od = _od(processed)
    for period in args.period or ["2018-09", "2019-10"]:
        start, end = _month(period)
        instants = processed.instants(start, end)
        if len(instants) == 0:
            raise CommandError(f"no snapshots in {period}", 3)
        rates = _period_demand(args, processed, start, end)
        panel = build_panel(processed.station_hours, processed.stations, start=start, end=end)
        flags = flag_truck_moves(panel)
        station_col = pd.Index(panel.station_ids)
        snaps = processed.snapshots[(processed.snapshots["ts"] >= instants[0])
                                    & (processed.snapshots["ts"] <= instants[-1])]
        by_ts = {ts: g.set_index("station_id")["bikes"] for ts, g in snaps.groupby("ts")}
        rows = []
        days = pd.date_range(start, end, freq="D", inclusive="left")
        for day_i, day in enumerate(tqdm(days, desc=f"fidelity {period}", unit="day", file=sys.stderr)):
            for origin in origins:
                hour0 = pd.Timestamp(day + pd.Timedelta(hours=origin)).tz_localize(config.TZ, nonexistent="shift_forward")
                found = instants[(instants >= hour0) & (instants < hour0 + pd.Timedelta(hours=1))]
                if len(found) == 0 or origin + args.horizons > 24:
                    continue
                t0 = found[0]
                try:
                    network = processed.network_at(t0)
                except (LookupError, ValueError) as exc:
                    log.warning("skip %s: %s", t0, exc)
                    continue
                window = rates[(rates["hour"] >= hour0) & (rates["hour"] < hour0 + pd.Timedelta(hours=args.horizons))]
                if window.empty:
                    continue
                demand = Demand.from_tables(network, window, od)
                if demand.n_hours < args.horizons:
                    continue
                sim = expected_bikes(network, demand, args.horizons, args.draws, seed=args.seed)
                cols = station_col.get_indexer(network.station_ids)
                for k in range(1, args.horizons + 1):
                    target = t0 + pd.Timedelta(hours=k)
                    near = instants[np.abs((instants - target).total_seconds()) <= 20 * 60]
                    if len(near) == 0:
                        continue
                    real = by_ts[near[0]].reindex(network.station_ids).to_numpy(dtype=float)
                    moved = flags[day_i, origin:origin + k][:, np.maximum(cols, 0)].any(axis=0) & (cols >= 0)
                    ok = np.isfinite(real)
                    rows.append(pd.DataFrame({
                        "origin": t0, "horizon": k, "station_id": network.station_ids[ok],
                        "start": network.bikes[ok], "real": real[ok], "sim": sim[k - 1][ok], "truck_move": moved[ok],
                    }))
        if not rows:
            raise CommandError(f"{period}: no origin with following snapshots", 3)
        detail = pd.concat(rows, ignore_index=True)
        table = score(detail)
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / f"fidelity-{period}.csv") as tmp:
            table.to_csv(tmp, index=False)
        print(f"\n{period}: {detail['origin'].nunique()} origins x {args.horizons} h, "
              f"{len(detail):,} station-windows; demand: "
              + ", ".join(f"{m} {c:,}" for m, c in rates["method"].value_counts().items()) + " station-hours")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        gap_all = table["mae_sim"] - table["mae_persistence"]
        gap_clean = table["mae_sim_no_truck"] - table["mae_persistence_no_truck"]
        print("sim minus persistence MAE, all / without truck-move windows: "
              + ", ".join(f"{h}h {a:+.2f}/{c:+.2f}" for h, a, c in zip(table["horizon"], gap_all, gap_clean)))
        print("share of the simulation's error in windows with an operator truck move: "
              + ", ".join(f"{h}h {x:.1%}" for h, x in zip(table["horizon"], table["truck_error_share"])))
        print(f"written: {(out_dir / f'fidelity-{period}.csv').resolve()}")
    return 0


def run_day(args) -> int:
    from pathlib import Path

    import pandas as pd

    from bicimad import config
    from bicimad.errors import CommandError
    from bicimad.io import atomic_path, write_json
    from bicimad.opendata.schemas import read_table, write_table
    from bicimad.sim.env import scenario_inputs
    from bicimad.sim.riders import Demand
    from bicimad.sim.rollout import run_episode
    from bicimad.sim.scenario import ScenarioError, load_scenario, write_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    planner = None
    if args.planner != "none":
        from bicimad.plan import make_planner

        try:
            planner = make_planner(args.planner)
        except (ValueError, FileNotFoundError) as exc:
            raise CommandError(str(exc)) from None
    if scenario.network.source == "synthetic":
        from bicimad.sim.network import synthetic_network
        from bicimad.sim.riders import synthetic_demand

        if args.date:
            network = synthetic_network(scenario.network.stations, scenario.network.seed)
            truth = synthetic_demand(network, date=args.date, seed=scenario.network.seed)
        else:
            network, truth = scenario_inputs(scenario)
        day = str(truth.hours[0].date())
    else:
        from bicimad.demand.rates import fit_period_rates

        processed = _processed(args)
        day = args.date or scenario.network.date
        if not day:
            raise CommandError(f"scenario {scenario.name!r}: give --date")
        start = pd.Timestamp(day)
        network = processed.network_at(start)
        month = start.to_period("M").to_timestamp()
        rates = fit_period_rates(processed.station_hours, month, month + pd.offsets.MonthBegin(1),
                                 stations=processed.stations, daily_trips=args.daily_trips)
        rates["hour"] = pd.to_datetime(rates["hour"])
        today = rates[rates["hour"].dt.tz_convert(config.TZ).dt.normalize().dt.tz_localize(None) == start]
        if today.empty:
            raise CommandError(f"no rates for {day}: no snapshots that month?", 3)
        truth = Demand.from_tables(network, today, _od(processed))
    forecast = truth
    if args.forecast:
        try:
            forecast = Demand.from_tables(network, read_table("forecast", args.forecast))
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"--forecast: {exc}") from None
    result = run_episode(network, truth, forecast, scenario, planner, args.seed, progress=True)
    name = f"{scenario.name}-{day}-{args.planner}-{args.seed}"
    out = Path(args.out) if args.out else config.runs_dir(args.data_dir) / "sim" / name
    write_scenario(scenario, out / "scenario.toml")
    write_table(result.occupancy, "occupancy", out / "occupancy.parquet")
    with atomic_path(out / "summary.csv") as tmp:
        result.summary.to_csv(tmp, index=False)
    with atomic_path(out / "steps.csv") as tmp:
        pd.DataFrame(result.steps).to_csv(tmp, index=False)
    write_json(out / "run.json", {"scenario": scenario.name, "date": day, "planner": args.planner,
                                  "seed": args.seed, "forecast": args.forecast or "truth rates (oracle)"})
    print(result.summary.to_string(index=False))
    print(f"written: {out.resolve()}")
    return 0
