"""The ``bicimad`` command line: a thin shell over the job functions of :mod:`bicimad.jobs`.

Each command's parser lives here; its handler only turns the parsed arguments into typed
values and calls the job function (``bicimad.jobs.compare.compare``, ...), which can be called
and tested alone. A job module is imported when its command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from bicimad.argtypes import non_negative_int as _non_negative_int
from bicimad.argtypes import positive_float as _positive_float
from bicimad.argtypes import positive_int as _positive_int
from bicimad.errors import EXIT_IOERR, EXIT_USAGE, CommandError


def _job(name: str):
    return importlib.import_module(f"bicimad.jobs.{name}")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# ---------------------------------------------------------------------------------------------
# demand
# ---------------------------------------------------------------------------------------------

def _model_options(p: argparse.ArgumentParser) -> None:
    _weather_option(p)
    p.add_argument("--rounds", type=_positive_int, default=300, help="LightGBM boosting rounds (default 300)")
    p.add_argument("--seed", type=int, default=0, help="LightGBM seed (default 0)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="LightGBM threads (default 1: more only pays on an otherwise idle machine, see BENCHMARKS.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _weather_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weather", type=Path, metavar="CSV",
                   help="optional daily weather for LightGBM: a CSV with a `date` column (YYYY-MM-DD) and numeric columns")


def _lightgbm(args) -> dict:
    return {"rounds": args.rounds, "seed": args.seed, "threads": args.threads, "weather": args.weather}


def _register_demand(sub) -> None:
    p = sub.add_parser("demand", help="demand model: backtest, train, forecast",
                       description="Hourly pickup and return rates per station: rolling-origin backtest, "
                       "training of versioned models, and the forecast + origin-destination tables for a day.")
    dsub = p.add_subparsers(dest="demand_command", metavar="SUBCOMMAND", required=True)

    b = dsub.add_parser("backtest", help="compare the models on a test span after a training span",
                        description="Fit every model on --train, forecast each day of --test from the midnight "
                        "before it, print the comparison table and write DIR/metrics.json, CSV breakdowns and plots.")
    b.add_argument("--train", required=True, metavar="START:END", help="training span (dates or months, inclusive)")
    b.add_argument("--test", required=True, metavar="START:END", help="test span, after the training span")
    b.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    b.add_argument("--models", default=None,
                   help="comma-separated: lightgbm, historical_mean, seasonal_naive (default: all)")
    _model_options(b)
    b.set_defaults(func=lambda a: _job("demand").backtest(
        a.train, a.test, a.out, models=_csv(a.models) if a.models else None, data_dir=a.data_dir,
        progress=not a.no_progress,
        **_lightgbm(a)).print())

    t = dsub.add_parser("train", help="train a model and save it under models/demand/<version>/",
                        description="Score the model on the last --holdout-days of the span (fitted on the days "
                        "before), then fit it on the whole span and save it with its feature list, metrics, data "
                        "span, git commit and a model card.")
    t.add_argument("--span", metavar="START:END", help="training span (default: every day with station hours)")
    t.add_argument("--model", default="lightgbm", help="lightgbm, historical_mean or seasonal_naive (default lightgbm)")
    t.add_argument("--version", help="folder name (default: <model>-<last day of the span>)")
    t.add_argument("--out-root", type=Path, help="where versions go (default: $BICIMAD_MODELS_DIR or models/, then demand/)")
    t.add_argument("--holdout-days", type=_non_negative_int, default=7,
                   help="days at the end of the span scored before the final fit")
    _model_options(t)
    t.set_defaults(func=lambda a: _job("demand").train(
        span=a.span, model=a.model, version=a.version, out_root=a.out_root, holdout_days=a.holdout_days,
        data_dir=a.data_dir, progress=not a.no_progress, **_lightgbm(a)).print())

    f = dsub.add_parser("forecast", help="pickup/return rates per station-hour and the OD table for one day",
                        description="Forecast day D from data before its midnight; write forecast.parquet, od.parquet "
                        "and summary.json (methods and fallbacks used).")
    f.add_argument("--date", required=True, help="the local day to forecast, YYYY-MM-DD")
    f.add_argument("--model", type=Path, help="model folder (default: newest under models/demand/, else the default)")
    f.add_argument("--out", type=Path, help="output folder (default: $BICIMAD_DATA_DIR/processed/forecasts/D/)")
    f.add_argument("--history-days", type=_positive_int, default=35, help="days of history read before D (default 35)")
    f.add_argument("--daily-trips", type=_positive_float, metavar="N",
                   help="rescale gross rates so the day's pickups total N (e.g. EMT's counted trips), net kept")
    _weather_option(f)
    f.set_defaults(func=lambda a: _job("demand").forecast(
        a.date, model=a.model, out=a.out, history_days=a.history_days, daily_trips=a.daily_trips,
        weather=a.weather, data_dir=a.data_dir).print())


# ---------------------------------------------------------------------------------------------
# sim
# ---------------------------------------------------------------------------------------------

def _register_sim(sub) -> None:
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
    run.add_argument("--planner", default="noop", help="a planner name (noop, greedy, greedy-objective, ortools and its variants, ppo, router: the "
                     "scenario's own, router:DIR: a `bicimad train-router` folder), or none (trucks idle)")
    run.add_argument("--seed", type=_non_negative_int, default=0, help="rider seed (common random numbers across planners)")
    run.add_argument("--date", default=None,
                     help="local date YYYY-MM-DD (default: the scenario's; a synthetic city's day follows the date's day type)")
    run.add_argument("--forecast", default=None, help="forecast table (parquet) the planner sees")
    run.add_argument("--daily-trips", type=_positive_float, default=None,
                     help="processed scenarios: rescale the fitted gross rates to this many pickups a day "
                     "(Skellam rates run ~35 %% above EMT's counts; e.g. 14200 for Sep 2018)")
    run.add_argument("--out", default=None, help="run folder (default: <data-dir>/runs/sim/<scenario>-<date>-<planner>-<seed>)")
    run.set_defaults(func=lambda a: _job("simulate").simulate_day(
        a.scenario, planner=a.planner, seed=a.seed, date=a.date, forecast=a.forecast, daily_trips=a.daily_trips,
        out=a.out, data_dir=a.data_dir).print())

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
    fid.add_argument("--horizons", type=_positive_int, default=6, help="hours simulated from each origin")
    fid.add_argument("--draws", type=_positive_int, default=8, help="rider draws averaged per origin")
    fid.add_argument("--demand", choices=("period", "forecast"), default="period",
                     help="period: rates fitted to the month's own snapshots (in-sample); forecast: each "
                     "day's forecast from a trained demand model, made from data before that day")
    fid.add_argument("--model", default=None, help="demand model folder for --demand forecast "
                     "(default: the newest under models/demand)")
    fid.add_argument("--daily-trips", type=_positive_float, default=None,
                     help="rescale gross rates to this many pickups a day (e.g. 14200 for Sep 2018)")
    fid.add_argument("--seed", type=_non_negative_int, default=0)
    fid.add_argument("--out", default=None, help="folder for the per-period CSVs (default: <data-dir>/runs/fidelity)")
    fid.set_defaults(func=lambda a: _job("simulate").fidelity(
        tuple(a.period or ("2018-09", "2019-10")), origins=a.origins, horizons=a.horizons, draws=a.draws,
        demand=a.demand, model=a.model, daily_trips=a.daily_trips, seed=a.seed, out=a.out,
        data_dir=a.data_dir).print())

    _register_sim_validation(sim_sub)
    parser.set_defaults(func=lambda args: parser.print_help() or EXIT_USAGE)


def _register_sim_validation(sim_sub) -> None:
    """``sim validate`` and ``sim fit-riders``: the simulator against the snapshots."""
    val = sim_sub.add_parser(
        "validate", help="the status-quo replay (EMT's own truck moves) against the observed snapshots",
        description="Replay EMT's truck moves inferred from snapshot jumps (the status-quo planner) and no-op "
        "on every observed day of --period, and compare with the snapshots the way they measure the real "
        "system: problem share at the hour start (mean and by hour), docked bikes MAE, daily pickups "
        "against EMT's counted trips (`pydoc bicimad.jobs.validate`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    val.add_argument("--scenario", default="seed-fleet-2018", help="a processed scenario (name or TOML path)")
    val.add_argument("--period", required=True, help="START:END local dates, both included")
    val.add_argument("--seeds", type=_positive_int, default=3, help="rider draws per day")
    val.add_argument("--max-days", type=_non_negative_int, default=0, help="at most this many days (0: all)")
    val.add_argument("--daily-usage", type=Path, metavar="CSV",
                     help="EMT's daily usage series (bici_disponibilidad_*.csv): day-specific truth calibrated to the counts")
    val.add_argument("--days", choices=("all", "odd", "even"), default="all",
                     help="validate on these days of the month (fit on the others with `sim fit-riders --days`)")
    val.add_argument("--out", default=None, help="folder for validation.csv and validation_by_hour.csv")
    val.add_argument("--no-progress", action="store_true", help="no progress bar")
    val.set_defaults(func=lambda a: _job("validate").validate(
        a.scenario, a.period, seeds=a.seeds, max_days=a.max_days, daily_usage=a.daily_usage, out=a.out,
        data_dir=a.data_dir, progress=not a.no_progress, parity=a.days).print())

    fit = sim_sub.add_parser(
        "fit-riders", help="fit the scenario's [riders] unusable bikes/docks and counted share to the snapshots",
        description="Replay EMT's moves (status-quo) on --period's days over a grid of unusable bike and dock "
        "shares; the bike share is where the share of station-hours starting empty meets the snapshots', the dock "
        "share where the chances of filling at 1-3 docks from full come closest to theirs, then the counted share "
        "makes simulated pickups match EMT's counts (`pydoc bicimad.jobs.fit_riders`). Fit on days you do not "
        "validate on.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    fit.add_argument("--scenario", default="seed-fleet-2019", help="a processed scenario (name or TOML path)")
    fit.add_argument("--period", required=True, help="START:END local dates, both included")
    fit.add_argument("--daily-usage", type=Path, metavar="CSV", required=True,
                     help="EMT's daily usage series (bici_disponibilidad_*.csv)")
    fit.add_argument("--days", choices=("all", "odd", "even"), default="all", help="fit on these days of the month")
    fit.add_argument("--seeds", type=_positive_int, default=1, help="rider draws per day")
    fit.add_argument("--out", type=Path, default=None, help="write the fitted scenario to this TOML file")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.set_defaults(func=lambda a: _job("fit_riders").fit_riders(
        a.scenario, a.period, daily_usage=a.daily_usage, seeds=a.seeds, parity=a.days, out=a.out,
        data_dir=a.data_dir, progress=not a.no_progress).print())


# ---------------------------------------------------------------------------------------------
# train-agent, compare
# ---------------------------------------------------------------------------------------------

def _register_train_agent(sub) -> None:
    parser = sub.add_parser(
        "train-agent", help="train the PPO fleet policy in the simulator (models/policies/<run>/)",
        description="Train the PPO fleet policy on the demand of --period (a synthetic scenario: its generated "
        "days; a processed one: each day's rates fitted to the days before it, i.e. the forecasts a planner "
        "would have had) and evaluate it on other rider draws of the same days against no-op and OR-Tools. "
        "Writes models/policies/<run>/ with the policy, its model card and PPO's metrics.",
    )
    parser.add_argument("--scenario", default="synthetic-default", help="scenario name or TOML path")
    parser.add_argument("--period", default="2018-09-24:2018-09-28",
                        help="START:END local dates, both included, of the training demand")
    parser.add_argument("--steps", type=_non_negative_int, default=20_000, help="PPO fleet-hours over all envs (default 20000)")
    parser.add_argument("--envs", type=_positive_int, default=8, help="simulated cities in lockstep (default 8)")
    parser.add_argument("--imitate", type=_non_negative_int, default=2,
                        help="days of OR-Tools demonstrations per env before PPO (default 2; 0: none)")
    parser.add_argument("--candidates", type=_positive_int, default=16, help="candidate stations per truck (default 16)")
    parser.add_argument("--seed", type=_non_negative_int, default=0)
    parser.add_argument("--workers", type=_non_negative_int, default=0, metavar="N",
                        help="split the --envs over N Ray actors (rollout workers, one CPU each; at most --envs); "
                        "the learner stays in this process and the same seed gives the same policy "
                        "(default 0: the envs in this process)")
    parser.add_argument("--ray-address", metavar="ADDR", default=None,
                        help="Ray cluster of the --workers (e.g. auto: the one this machine belongs to; its nodes "
                        "need this package installed) (default: a fresh local cluster of N CPUs)")
    parser.add_argument("--run", help="run name (default <scenario>-seed<seed>)")
    parser.add_argument("--out", help="output folder (default models/policies/<run>)")
    parser.add_argument("--eval-days", type=_non_negative_int, default=2, help="days evaluated after training (default 2)")
    parser.add_argument("--eval-seeds", type=_non_negative_int, default=2,
                        help="rider draws per evaluated day (default 2; 0: none)")
    parser.add_argument("--force", action="store_true", help="replace an existing policy folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=lambda a: _job("agent").train_agent(
        a.scenario, a.period, steps=a.steps, envs=a.envs, imitate=a.imitate, candidates=a.candidates,
        seed=a.seed, run=a.run, out=a.out, eval_days=a.eval_days, eval_seeds=a.eval_seeds, force=a.force,
        data_dir=a.data_dir, workers=a.workers, ray_address=a.ray_address, progress=not a.no_progress).print())


def _register_train_router(sub) -> None:
    parser = sub.add_parser(
        "train-router", help="learn the router's cost-to-go on training days, choose it on others (models/routers/)",
        description="Learn the parameters of the router (greedy stops on the declared objective with a learnt "
        "cost-to-go: look-ahead hours, discount, forecast spread, problem-hour and km scales, the worth of a bike "
        "left on a truck, a two-visit look-ahead, a nowcast of the day so far) by a cross-entropy search on the "
        "days of --period, each simulated on the forecast planners would have had, then choose among the "
        "search's finalists on the days of --select. Writes router.json, MODEL_CARD.md, search.csv and search.png; a stopped run resumes "
        "(`pydoc bicimad.jobs.router`). Test it with `bicimad compare --planners ...,router:DIR`.",
    )
    parser.add_argument("--scenario", default="synthetic-default", help="scenario name or TOML path")
    parser.add_argument("--period", required=True, help="START:END local dates, both included, of the training days")
    parser.add_argument("--select", required=True, help="START:END of the selection days (not overlapping --period)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="the search's seed (default 0)")
    parser.add_argument("--generations", type=_positive_int, default=12, help="search generations (default 12)")
    parser.add_argument("--population", type=_positive_int, default=12, help="candidates a generation (default 12)")
    parser.add_argument("--elite", type=_positive_int, default=4, help="best candidates the search refits to (default 4)")
    parser.add_argument("--days", type=_positive_int, default=8, help="training days a generation (default 8)")
    parser.add_argument("--draws", type=_positive_int, default=1, help="rider draws a day (default 1)")
    parser.add_argument("--select-days", type=_positive_int, default=10,
                        help="selection days simulated, spread over --select (default 10)")
    parser.add_argument("--workers", type=_positive_int, default=1, help="local worker processes (default 1)")
    parser.add_argument("--ray-address", metavar="ADDR", default=None,
                        help="run the simulations as tasks on this Ray cluster (local: a fresh local cluster of "
                        "--workers CPUs; auto: the one this machine belongs to)")
    parser.add_argument("--daily-usage", type=Path, metavar="CSV",
                        help="EMT's daily usage series (bici_disponibilidad_*.csv): each day's truth calibrated to its "
                        "counted trips (required on processed data unless ingested)")
    parser.add_argument("--history-days", type=_positive_int, default=28, help="days of history behind each forecast")
    parser.add_argument("--out", help="output folder (default models/routers/<scenario>-seed<seed>)")
    parser.add_argument("--force", action="store_true", help="replace an existing router")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=lambda a: _train_router(a))


def _train_router(a):
    from bicimad.plan.router import SearchConfig

    try:
        search = SearchConfig(generations=a.generations, population=a.population, elite=a.elite)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return _job("router").train_router(
        a.scenario, a.period, select=a.select, out=a.out, seed=a.seed, search=search, days_per_generation=a.days,
        draws=a.draws, select_days=a.select_days, workers=a.workers, ray_address=a.ray_address,
        daily_usage=a.daily_usage, history_days=a.history_days, force=a.force, data_dir=a.data_dir,
        progress=not a.no_progress).print()


def _register_compare(sub) -> None:
    parser = sub.add_parser(
        "compare", help="run planners on the same days and demand draws; occupancy table and plot",
        description="Every planner on the same days and the same demand draws (common random numbers). "
        "Writes DIR/occupancy.csv (one row per planner, with 95 %% intervals over seeds), per_seed.csv, "
        "relative.csv, plots and a note on comparability (`pydoc bicimad.jobs.compare`).",
    )
    parser.add_argument("--scenario", default="synthetic-default", help="scenario name or TOML path")
    parser.add_argument("--period", required=True, help="START:END local dates, both included")
    parser.add_argument("--planners", default=None,
                        help="comma-separated: noop, greedy, ortools (every station in the trucks' reach), ppo, "
                        "status-quo (EMT's own moves), ortools-1h (OR-Tools on the 60 stations whose best stop is worth "
                        "most, as the first headline results), ortools-events (the earlier value function), "
                        "greedy-objective (greedy stops on the declared objective), ortools-lookahead (routes two hours "
                        "ahead), router (the scenario's router, models/routers/<scenario>/), router:DIR (a `bicimad "
                        "train-router` folder; several give their mean too), <name>-perfect (seeing the truth), ortools-lost<w> (lost trips "
                        "weighted w: a point of the weight sweep), ortools-gls (guided local search, using the whole time limit) "
                        "(default: status-quo,noop,greedy,ortools on observed data; noop,greedy,ortools,ppo on the synthetic city)")
    parser.add_argument("--seeds", type=_positive_int, default=3, help="demand draws per day (default 3)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="first seed (default 0)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--policy", help="policy folder for the ppo planner (default models/policies/<scenario name> "
                        "where there is one, else models/policies/default)")
    parser.add_argument("--time-limit", type=_positive_float, default=None,
                        help="OR-Tools time limit per hour, s (default: the planner's)")
    parser.add_argument("--history-days", type=_positive_int, default=28, help="days of history behind each forecast")
    parser.add_argument("--max-days", type=_non_negative_int, default=0, help="simulate at most this many days (0: all)")
    parser.add_argument("--demand-model", type=Path, metavar="DIR",
                        help="the forecast planners see: a trained demand model (e.g. `bicimad demand train` LightGBM) "
                        "whose data ends before the period (default: cell rates of the --history-days before each day)")
    parser.add_argument("--daily-usage", type=Path, metavar="CSV",
                        help="EMT's daily usage series (bici_disponibilidad_*.csv): each day's truth from its own "
                        "flows, calibrated to its counted trips (default: processed/daily_usage.parquet if ingested)")
    parser.add_argument("--allow-training-days", action="store_true",
                        help="run a policy or demand model on days it was trained on (the output is marked)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=lambda a: _job("compare").compare(
        a.scenario, a.period, planners=_csv(a.planners) if a.planners else None, seeds=a.seeds, seed=a.seed,
        out=a.out, policy=a.policy,
        time_limit_s=a.time_limit, history_days=a.history_days, max_days=a.max_days,
        allow_training_days=a.allow_training_days, demand_model=a.demand_model, daily_usage=a.daily_usage,
        data_dir=a.data_dir,
        progress=not a.no_progress).print())


# ---------------------------------------------------------------------------------------------
# nightly, whatif, report
# ---------------------------------------------------------------------------------------------

def _register_nightly(sub) -> None:
    parser = sub.add_parser(
        "nightly", help="tonight's run: ingest, forecast D+1, plan and simulate, report",
        description="The nightly planning run for day D+1: ingest, demand model (on its schedule), "
        "forecast, planners simulated on the forecast, plan.csv, report.html and manifest.json in a run "
        "folder; re-running resumes or skips. Steps: `pydoc bicimad.jobs.nightly`. Exit codes: 0 done "
        "(or already complete), 2 bad config, 65 unusable input, 66 missing input, 70 a step failed "
        "(re-run resumes), 75 another run holds the lock.",
    )
    parser.add_argument("--date", required=True, help="the night's date D (YYYY-MM-DD); plans D+1")
    parser.add_argument("--config", default="pipelines/nightly.toml", help="job config (TOML; default pipelines/nightly.toml)")
    parser.add_argument("--out", default=None, help="run folder (default: <data-dir>/runs/nightly/<D>)")
    parser.add_argument("--force", action="store_true", help="redo every step even if recorded done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for cron logs)")
    parser.set_defaults(func=lambda a: _job("nightly").nightly_command(
        a.date, a.config, out=a.out, force=a.force, data_dir=a.data_dir, progress=not a.no_progress).print())


def _register_replan(sub) -> None:
    parser = sub.add_parser(
        "replan", help="re-plan the rest of the planned day from the live station state",
        description="Fetch the live station state (GBFS or EMT MobilityLabs) and re-plan the remaining hours of a "
        "nightly run's planned day from it, with the night's dispatched planner on the night's forecast; writes "
        "RUN/replan-HHMM/plan.csv beside the night's plan (`pydoc bicimad.jobs.replan`).")
    parser.add_argument("run", type=Path, metavar="RUN", help="the nightly run folder (runs/nightly/<D>)")
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--now", action="store_true", help="from the live state's own time")
    when.add_argument("--at", metavar="HH:MM", help="from this time of the planned day (with the live state)")
    parser.add_argument("--live", choices=("gbfs", "emt"), default="gbfs", help="where the live state comes from")
    parser.add_argument("--gbfs-url", help="GBFS discovery or feed-folder URL (default: BiciMAD's public feed)")
    parser.add_argument("--planner", help="planner (default: the one the night dispatched)")
    parser.add_argument("--seeds", type=_positive_int, default=1, help="demand draws for the predicted occupancy")
    parser.set_defaults(func=lambda a: _job("replan").replan(
        a.run, now=a.now, at=a.at, source=a.live, gbfs_url=a.gbfs_url, planner=a.planner, seeds=a.seeds).print())


def _register_whatif(sub) -> None:
    parser = sub.add_parser(
        "whatif", help="sweep fleet scenarios x planners x seeds (local cores or a Ray cluster)",
        description="Sweep scenario parameters (trucks, capacity, visits per hour, radius, demand "
        "multiplier) x planners x seeds, in parallel on local cores or on a Ray cluster, and write "
        "a tidy results table, intervals over seeds, paired differences against a baseline point, "
        "the fleet needed for a target, and plots. Finished tasks are kept and skipped on a re-run; "
        "no-op is simulated once per demand multiplier and seed. Grid values left out of the "
        "config are the base scenario's.",
    )
    parser.add_argument("--config", default="pipelines/whatif-fleet.toml",
                        help="sweep definition (TOML; default pipelines/whatif-fleet.toml)")
    parser.add_argument("--out", default=None, help="output folder (default: <data-dir>/runs/whatif/<name>)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run on a Ray cluster: an address, 'auto', or 'local' for a fresh local one")
    parser.add_argument("--workers", type=_non_negative_int, default=None,
                        help="local worker processes (default: the config's; 0 = one per core)")
    parser.add_argument("--target-problem-share", type=float, default=None, metavar="SHARE",
                        help="answer: per planner, the smallest fleet of the grid whose problem share "
                        "(0-1, e.g. 0.15) meets this target, by its upper 95 %% bound and by its mean")
    parser.add_argument("--target-lost-trips", type=float, default=None, metavar="N",
                        help="answer: the smallest fleet whose lost trips per simulated day meet N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=lambda a: _job("whatif").whatif_command(
        a.config, out=a.out, ray=a.ray, workers=a.workers, data_dir=a.data_dir, progress=not a.no_progress,
        target_problem_share=a.target_problem_share, target_lost_trips=a.target_lost_trips).print())


def _register_report(sub) -> None:
    parser = sub.add_parser(
        "report", help="HTML comparison of runs (occupancy table, hourly profile, map, worst stations)",
        description="Write a self-contained HTML report comparing run folders (as written by "
        "`bicimad nightly` or `bicimad compare`): the occupancy table, the hourly profile of the "
        "problem share, a map of stations coloured by problem hours, and the worst stations.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", type=Path, help="run folder(s)")
    parser.add_argument("--out", "-o", default=None, type=Path,
                        help="HTML file to write (default: report.html in the first run folder for one run, "
                        "else comparison.html in the current folder)")
    parser.add_argument("--title", default="BiciMAD occupancy comparison", help="the report's title")
    parser.add_argument("--worst", type=_non_negative_int, default=10, help="how many worst stations to list (default 10)")
    parser.set_defaults(func=lambda a: _job("report").report(a.runs, out=a.out, title=a.title, worst=a.worst).print())


#: Commands in the order they appear in ``bicimad --help``.
REGISTRARS = (
    lambda sub: _job("ingest").register(sub),   # ingest, data
    _register_demand,
    _register_sim,
    lambda sub: _job("rl").register(sub),       # rl train|eval
    _register_train_agent,
    _register_train_router,
    _register_compare,
    _register_nightly,
    _register_replan,
    _register_whatif,
    _register_report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bicimad",
        description="BiciMAD rebalancing decision system: ingest EMT open data, forecast demand, "
        "simulate the truck fleet, plan and compare.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--data-dir", help="data root (default: $BICIMAD_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"bicimad {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:  # a path that cannot be written or read (a file where a folder should be, ...)
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"bicimad {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_IOERR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
