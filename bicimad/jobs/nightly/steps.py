"""The nightly job's steps: each writes its outputs atomically and returns them for the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bicimad.config import TZ
from bicimad.demand.forecast import forecast_day
from bicimad.demand.models import DemandModel
from bicimad.demand.od import build_od
from bicimad.errors import EXIT_BAD_INPUT, EXIT_USAGE, CommandError
from bicimad.io import atomic_path, file_stem, write_csv, write_json
from bicimad.jobs import demand as demand_job
from bicimad.jobs import ingest
from bicimad.jobs.batch import Step, StepResult, config_to_dict, file_inputs, git_commit
from bicimad.jobs.nightly.config import NightlyConfig
from bicimad.jobs.nightly.decision import decide
from bicimad.jobs.policy_fit import DEFAULT_POLICY_HINT, check_policy_fits
from bicimad.opendata.schemas import read_table, write_table
from bicimad.plan import planner_for
from bicimad.report.html import build_report, load_run
from bicimad.report.occupancy import mean_interval, summary_table
from bicimad.report.routes import parse_shifts, route_sheet, write_route_csv, write_route_pages
from bicimad.sim import load_scenario, run_episode, write_scenario
from bicimad.sim.core import FleetSim
from bicimad.sim.data import Processed
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand
from bicimad.sim.seeds import derive_seed

log = logging.getLogger(__name__)


class NoInputError(RuntimeError):
    """Input the run needs is missing (exit 66)."""


class BadInputError(RuntimeError):
    """Input is present but unusable (exit 65)."""


class StaleInputError(RuntimeError):
    """Input is too old or too thin for the configured freshness limits (exit 69)."""


@dataclasses.dataclass
class NightlyRun:
    """Everything a step needs: the config, the dates, the folders and the seeds."""

    config: NightlyConfig
    date: dt.date
    data_root: Path
    run_dir: Path
    progress: bool = True

    @property
    def processed(self) -> Path:
        return self.data_root / "processed"

    @property
    def target(self) -> dt.date:
        """The day planned for: D+1."""
        return self.date + dt.timedelta(days=1)

    @property
    def seeds(self) -> list[int]:
        """Demand-draw seeds, derived from the root seed and the date only."""
        return [derive_seed(self.config.seed, self.date.toordinal(), i) for i in range(self.config.seeds)]


# ---------------------------------------------------------------------------------------------
# Steps: each writes its outputs atomically and returns them for the ledger
# ---------------------------------------------------------------------------------------------

def step_ingest(ctx: NightlyRun):
    """Raw data into the processed tables (the ingest job's own resumable, duplicate-free path,
    under the lock this run already holds). A data folder never switches between real and
    synthetic data here: the ingest job refuses, and so does the run (exit 2)."""
    source = ctx.config.source
    missing = [p for p in source.paths if not Path(p).exists()] if source.kind == "local" else []
    if missing:
        raise NoInputError(f"source.paths: {missing[0]} does not exist")
    # the portal publishes whole months: every month the demand history reaches into
    first = ctx.target - dt.timedelta(days=ctx.config.demand.history_days)
    sources = ingest.IngestSources(
        paths=tuple(Path(p) for p in source.paths) if source.kind == "local" else (),
        synthetic=source.kind == "synthetic", seed=source.seed,
        portal=f"{first:%Y-%m}:{ctx.date:%Y-%m}" if source.kind == "portal" else None,
        live=source.live, gbfs_url=source.gbfs_url)
    try:
        ingest.ingest(sources, data_dir=ctx.data_root, progress=False, hold_lock=False)
    except CommandError as exc:
        if exc.code == EXIT_BAD_INPUT:
            raise BadInputError(f"ingest: {exc}") from None
        if exc.code == EXIT_USAGE:
            raise  # e.g. a switch between real and synthetic data: fix the config, do not retry
        raise NoInputError(f"ingest: {exc}") from None
    processed = ctx.processed
    snapshots = read_table("snapshots", processed / "snapshots.parquet")
    last = snapshots["ts"].max() if len(snapshots) else None
    if last is None or last.tz_convert(TZ).date() < ctx.date:
        raise NoInputError(f"{processed / 'snapshots.parquet'}: no snapshot on {ctx.date} (latest: {last})")
    facts = freshness(ctx, snapshots, read_table("station_hours", processed / "station_hours.parquet"))
    tables = [processed / f"{name}.parquet" for name in ("stations", "snapshots", "station_hours")]
    return StepResult(outputs=[], facts={"inputs": [str(p) for p in tables if p.exists()], "dataset": dataset_label(ctx),
                                         **facts})


def freshness(ctx: NightlyRun, snapshots: pd.DataFrame, station_hours: pd.DataFrame) -> dict:
    """The input's age and depth against the configured limits: the start snapshot's age at the
    planned day's midnight, and the days of station-hour data in the demand history window.
    Beyond a limit: :class:`StaleInputError`, or (``on_stale = "mark"``) warnings in the facts."""
    limits = ctx.config.freshness
    midnight = pd.Timestamp(ctx.target).tz_localize(TZ)
    start = snapshots.loc[snapshots["ts"] < midnight, "ts"].max()
    age_h = (midnight - start).total_seconds() / 3600
    days = ctx.config.demand.history_days
    window = station_hours[(station_hours["hour"] >= midnight - pd.Timedelta(days=days))
                           & (station_hours["hour"] < midnight) & station_hours["net_flow"].notna()]
    have = int(window["hour"].dt.tz_convert(TZ).dt.date.nunique())
    warnings = []
    if age_h > limits.max_snapshot_age_hours:
        warnings.append(f"start snapshot {start} is {age_h:.1f} h old at {midnight} "
                        f"(limit freshness.max_snapshot_age_hours = {limits.max_snapshot_age_hours:g})")
    if have < limits.min_history_share * days:
        warnings.append(f"{have} of the {days} days of demand history (demand.history_days) hold station-hour data "
                        f"(limit freshness.min_history_share = {limits.min_history_share:g})")
    if warnings and limits.on_stale == "fail":
        raise StaleInputError("stale input: " + "; ".join(warnings))
    for warning in warnings:
        log.warning("stale input: %s", warning)
    return {"latest_snapshot": str(snapshots["ts"].max()), "start_snapshot": str(start),
            "start_snapshot_age_h": round(age_h, 2), "history_days_available": have, "warnings": warnings}


def step_demand_model(ctx: NightlyRun):
    """Reuse the newest demand model trained here on data up to D, unless it is due for a
    refresh (its data ends ``retrain_every_days`` or more before D); then train one with
    the demand job's ``train`` on the ``history_days`` up to D, into
    ``<data>/models/demand/<model>-<D>/`` (with its model card)."""
    cfg = ctx.config.demand
    root = ctx.data_root / "models" / "demand"
    candidates = []
    for meta_path in root.glob(f"{cfg.model}-*/meta.json"):  # meta.json is written last: complete models only
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        last = dt.date.fromisoformat(meta["span"][1])
        if last <= ctx.date and (ctx.date - last).days < cfg.retrain_every_days:
            candidates.append((last, meta_path.parent, meta))
    if candidates:
        last, directory, meta = max(candidates, key=lambda c: c[0])
        log.info("demand model %s is current (data to %s); not retrained", directory.name, last)
        retrained = False
    else:
        first = ctx.target - dt.timedelta(days=cfg.history_days)
        version = f"{cfg.model}-{ctx.date.isoformat()}"
        try:
            demand_job.train(span=f"{first}:{ctx.date}", model=cfg.model, version=version,
                             out_root=ctx.data_root / "models", holdout_days=0, rounds=cfg.rounds,
                             threads=cfg.threads, data_dir=ctx.data_root, progress=False)
        except CommandError as exc:
            raise NoInputError(f"demand model: {exc}") from None
        directory = root / version
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        retrained = True
    facts = {k: meta[k] for k in ("version", "model", "span", "stations", "train_s") if k in meta}
    return StepResult(facts={**facts, "path": str(directory), "retrained": retrained})


def step_forecast(ctx: NightlyRun):
    """forecast.parquet (rates per station-hour of D+1, with the demand module's explicit
    fallbacks for stations with too little history) and od.parquet (from trips before D+1)."""
    ledger = json.loads((ctx.run_dir / "ledger.json").read_text(encoding="utf-8"))["steps"]
    model_path = Path(ledger["demand_model"]["facts"]["path"])
    station_hours = read_table("station_hours", ctx.processed / "station_hours.parquet")
    stations = read_table("stations", ctx.processed / "stations.parquet")
    forecast = forecast_day(DemandModel.load(model_path), station_hours, stations, ctx.target)
    methods = forecast.attrs.get("methods", {})
    trips_path = ctx.processed / "trips.parquet"
    trips = read_table("trips", trips_path) if trips_path.exists() else None
    if trips is not None:
        trips = trips[trips["unplug_ts"] < pd.Timestamp(ctx.target).tz_localize(TZ)]
    od = build_od(stations[stations["station_id"].isin(forecast["station_id"])], trips)
    outputs = [write_table(forecast, "forecast", ctx.run_dir / "forecast.parquet"),
               write_table(od, "od", ctx.run_dir / "od.parquet")]
    return StepResult(outputs=outputs, facts={
        "model": model_path.name, "methods": methods,
        "pickups": round(float(forecast["pickup_rate"].sum()), 1),
        "returns": round(float(forecast["return_rate"].sum()), 1)})


def _episode_inputs(ctx: NightlyRun):
    """The stations, the last snapshot of D (the start state), the network at that snapshot,
    and the forecast demand of D+1."""
    data = Processed.load(ctx.data_root, with_hours=False)
    before = data.instants(end=pd.Timestamp(ctx.target))
    if len(before) == 0:
        raise NoInputError(f"no snapshot before {ctx.target}")
    snapshot = data.snapshots[data.snapshots["ts"] == before[-1]]
    network = Network.from_tables(data.stations, snapshot)
    forecast = read_table("forecast", ctx.run_dir / "forecast.parquet")
    od = read_table("od", ctx.run_dir / "od.parquet")
    return data.stations, snapshot, network, Demand.from_tables(network, forecast, od)


def load_run_inputs(run_dir: str | Path):
    """A finished nightly run's network (its stations at the start snapshot) and forecast
    demand, e.g. for what-if sweeps on tomorrow's city."""
    run_dir = Path(run_dir)
    files = {name: run_dir / f"{name}.parquet" for name in ("stations", "start", "forecast", "od")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: not a finished nightly run folder (missing {missing[0]})")
    network = Network.from_tables(read_table("stations", files["stations"]), read_table("snapshots", files["start"]))
    demand = Demand.from_tables(network, read_table("forecast", files["forecast"]), read_table("od", files["od"]))
    return network, demand


class RecordingPlanner:
    """Wraps a planner and keeps every hour's plan: (hour index, route per truck)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.plans: list[tuple[int, list]] = []

    def plan(self, view):
        plan = self.inner.plan(view)
        self.plans.append((view.hour_index, plan))
        return plan


def plan_rows(planner: str, recorded: list[tuple[int, list]], hours, station_ids) -> list[dict]:
    """A recorded plan as rows: per truck and hour, the visits in order with bikes to load
    (> 0, taken from the station) or unload (< 0, left there)."""
    rows = []
    for hour_index, routes in recorded:
        for truck, route in enumerate(routes):
            for order, visit in enumerate(route, start=1):
                if visit.bikes == 0:
                    continue
                rows.append({"planner": planner, "truck": truck + 1, "hour": hours[hour_index], "order": order,
                             "station_id": int(station_ids[visit.station]), "bikes": int(visit.bikes),
                             "action": "load" if visit.bikes > 0 else "unload"})
    return rows


def step_simulate(ctx: NightlyRun):
    """Every planner over D+1 on the forecast demand, for each seed (common to all planners)."""
    stations, start_rows, network, demand = _episode_inputs(ctx)
    start = start_rows["ts"].iloc[0]
    scenario = load_scenario(ctx.config.scenario)
    if "ppo" in ctx.config.planners:
        check_policy_fits(None, scenario, network_source(ingest.processed_dataset(ctx.data_root)),
                          [(f"the network of {ctx.target}", network)], ctx.config.scenario, DEFAULT_POLICY_HINT)
    outputs = [write_scenario(scenario, ctx.run_dir / "scenario.toml")]
    rows, plans, draws = [], [], {}
    with tqdm(total=len(ctx.config.planners) * len(ctx.seeds), desc="simulate", unit="episode",
              disable=not ctx.progress) as bar:
        for name in ctx.config.planners:
            per_seed = draws.setdefault(name, [])
            for index, seed in enumerate(ctx.seeds):
                planner = RecordingPlanner(planner_for(name, scenario))
                result = run_episode(network, demand, demand, scenario, planner, seed=seed)
                per_seed.append(result.summary.iloc[0].to_dict())
                if index == 0:  # the plan and the station-hour detail come from the first draw
                    path = write_table(result.occupancy, "occupancy", ctx.run_dir / "occupancy" / f"{file_stem(name)}.parquet")
                    outputs.append(path)
                    plans += plan_rows(name, planner.plans, demand.hours, network.station_ids)
                bar.update()
            mean = {k: (sum(r[k] for r in per_seed) / len(per_seed)) for k in per_seed[0] if k != "planner"}
            _, lo, hi = mean_interval([r["problem_share"] for r in per_seed])
            rows.append({**mean, "planner": name, "problem_share_lo": lo, "problem_share_hi": hi,
                         "seeds": len(per_seed)})
    plan_columns = ["planner", "truck", "hour", "order", "station_id", "bikes", "action"]
    plans = pd.DataFrame(plans, columns=plan_columns)
    names = stations.drop_duplicates("station_id")[["station_id", "number", "name"]]
    plans = plans.merge(names, on="station_id", how="left")[plan_columns[:5] + ["number", "name"] + plan_columns[5:]]
    write_csv(plans, ctx.run_dir / "plans.csv")   # station names come from the data: spreadsheet-safe
    decision = decide(draws, scenario.reward, ctx.config.dispatch, plans.groupby("planner").size().to_dict())
    objectives = decision.table.set_index("planner")
    for row in rows:
        row["objective"] = float(objectives.loc[row["planner"], "objective"])
        row["dispatched"] = row["planner"] == decision.planner
    summary = summary_table(rows)
    with atomic_path(ctx.run_dir / "occupancy.csv") as tmp:
        summary.to_csv(tmp, index=False)
    write_json(ctx.run_dir / "decision.json", decision.to_json())
    bases = [int(network.station_ids[b]) for b in FleetSim(network, scenario, demand, forecast=demand).bases]
    write_json(ctx.run_dir / "bases.json", {"bases": bases, "speed_kmh": scenario.fleet.speed_kmh,
                                            "detour": scenario.riders.detour, "initial_load": scenario.fleet.initial_load})
    write_table(stations, "stations", ctx.run_dir / "stations.parquet")
    write_table(start_rows, "snapshots", ctx.run_dir / "start.parquet")
    outputs += [ctx.run_dir / name for name in ("occupancy.csv", "plans.csv", "decision.json", "bases.json",
                                                 "stations.parquet", "start.parquet")]
    return StepResult(outputs=outputs, facts={"start_snapshot": str(start), "stations": int(network.n),
                                              "scenario": scenario.name, "seeds": ctx.seeds,
                                              "dispatch": decision.planner, "decision": decision.sentence})


def step_plan(ctx: NightlyRun):
    """plan.csv: the dispatched planner's plan, per truck and hour, stations in order."""
    plans = pd.read_csv(ctx.run_dir / "plans.csv")
    dispatch = json.loads((ctx.run_dir / "decision.json").read_text(encoding="utf-8"))["planner"]
    plan = plans[plans["planner"] == dispatch].drop(columns="planner")
    plan = plan.assign(dataset=dataset_label(ctx))   # every sheet says what it was planned on
    write_csv(plan, ctx.run_dir / "plan.csv")
    fleet = json.loads((ctx.run_dir / "bases.json").read_text(encoding="utf-8"))
    stations = read_table("stations", ctx.run_dir / "stations.parquet").drop_duplicates("station_id", keep="last")
    sheet = route_sheet(plan, stations, fleet["bases"], speed_kmh=fleet["speed_kmh"], detour=fleet["detour"],
                        initial_load=fleet["initial_load"], shifts=parse_shifts(ctx.config.shifts))
    outputs = [ctx.run_dir / "plan.csv", write_route_csv(sheet, ctx.run_dir / "route_sheet.csv"),
               *write_route_pages(sheet, ctx.run_dir, title=f"BiciMAD route sheet for {ctx.target} ({dataset_label(ctx)})")]
    return StepResult(outputs=outputs, facts={"dispatch": dispatch, "visits": len(plan),
                                              "bikes_moved": int(plan["bikes"].abs().sum() // 2) if len(plan) else 0})


#: The datasets a data folder's processed tables hold (``ingest.processed_dataset``), in words.
DATASET_LABELS = {"synthetic": "synthetic city", "real": "real EMT data"}


def dataset_label(ctx: NightlyRun) -> str:
    """What the run planned on, in words, from the processed tables' own record."""
    dataset = ingest.processed_dataset(ctx.data_root)
    return DATASET_LABELS.get(dataset, f"dataset {dataset!r}")


def network_source(dataset: str | None) -> str:
    """A scenario's ``network.source`` for a data folder's dataset: the synthetic city, or processed (real) data."""
    return "synthetic" if dataset == "synthetic" else "processed"


def run_network_source(run_dir: str | Path) -> str:
    """The ``network.source`` a finished nightly run planned on, from its ledger's ingest record."""
    ledger = Path(run_dir) / "ledger.json"
    try:
        label = json.loads(ledger.read_text(encoding="utf-8"))["steps"]["ingest"]["facts"]["dataset"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{ledger}: no readable ingest record of the dataset planned on ({exc})") from None
    dataset = next((key for key, words in DATASET_LABELS.items() if words == label), None)
    if dataset is None:
        raise ValueError(f"{ledger}: the ingest record names an unknown dataset {label!r}")
    return network_source(dataset)


def _provenance(ctx: NightlyRun) -> dict:
    """What produced the run: dates, config, seeds, code version, inputs with checksums, model."""
    ledger = json.loads((ctx.run_dir / "ledger.json").read_text(encoding="utf-8"))["steps"]
    inputs = [ctx.processed / f"{name}.parquet" for name in ("stations", "snapshots", "trips", "station_hours")]
    return {
        "date": ctx.date.isoformat(),
        "target_date": ctx.target.isoformat(),
        "config": config_to_dict(ctx.config),
        "seeds": ctx.seeds,
        "git": git_commit(),
        "inputs": file_inputs(inputs + [ctx.data_root / "raw" / "manifest.json"]),
        "models": {"demand": ledger["demand_model"]["facts"]},
        "planners": list(ctx.config.planners),
        "dispatch": ledger.get("simulate", {}).get("facts", {}).get("dispatch", ctx.config.dispatch),
        "warnings": ledger["ingest"]["facts"].get("warnings", []),
        "dataset": dataset_label(ctx),
    }


#: The decision table's columns, in reading order (decision.json stores them sorted by name).
DECISION_COLUMNS = ("planner", "dispatched", "objective", "objective_lo", "objective_hi", "problem_share",
                    "problem_share_lo", "problem_share_hi", "lost_trips", "bikes_moved", "draws")


def step_report(ctx: NightlyRun):
    """report.html for the run folder."""
    run = load_run(ctx.run_dir, label=f"plan for {ctx.target}")
    run.manifest = _provenance(ctx)  # manifest.json is written after the report
    decision = json.loads((ctx.run_dir / "decision.json").read_text(encoding="utf-8"))
    out = build_report([run], ctx.run_dir / "report.html", title=f"BiciMAD nightly plan for {ctx.target}",
                       dataset=dataset_label(ctx), warnings=run.manifest["warnings"], decision=decision["sentence"],
                       decision_table=pd.DataFrame(decision["table"])[list(DECISION_COLUMNS)])
    return StepResult(outputs=[out])


def step_manifest(ctx: NightlyRun):
    """manifest.json: the provenance, every step's outputs with checksums, and step timings."""
    ledger = json.loads((ctx.run_dir / "ledger.json").read_text(encoding="utf-8"))["steps"]
    manifest = {
        **_provenance(ctx),
        "outputs": {name: entry["outputs"] for name, entry in ledger.items()},
        "steps": {name: {"seconds": entry["seconds"], "finished": entry["finished"], **entry["facts"]}
                  for name, entry in ledger.items() if name != "demand_model"},
    }
    write_json(ctx.run_dir / "manifest.json", manifest)
    return StepResult(outputs=[ctx.run_dir / "manifest.json"])


STEPS = [Step(name, fn) for name, fn in (
    ("ingest", step_ingest),
    ("demand_model", step_demand_model),
    ("forecast", step_forecast),
    ("simulate", step_simulate),
    ("plan", step_plan),
    ("report", step_report),
    ("manifest", step_manifest),
)]
