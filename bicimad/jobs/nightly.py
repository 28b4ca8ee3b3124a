"""``bicimad nightly --date D``: tomorrow's truck plan and predicted occupancy, as a cron job.

On the night of day D the job runs these steps, each writing its outputs atomically and then
recording them (with checksums) in the run folder's step ledger:

1. ``ingest``: new raw data (the synthetic default, local files, or EMT's portal; optionally the
   live station state) into the processed tables, including the station-hour table;
2. ``demand_model``: retrain the demand model if the newest one is older than the schedule
   (``demand.retrain_every_days``), else reuse it;
3. ``forecast``: pickup and return rates per station-hour for D+1 (``forecast.parquet``) and
   the origin-destination table (``od.parquet``);
4. ``simulate``: every configured planner drives the simulator over D+1 on the forecast
   demand, from the last state seen on D, for ``seeds`` demand draws (common to all planners):
   ``occupancy/<planner>.parquet`` (first draw), ``occupancy.csv`` (means and intervals over
   draws), ``plans.csv`` (every planner's plan under the first draw), and the inputs a
   what-if sweep can reuse (``stations.parquet``, ``start.parquet``, ``scenario.toml``);
5. ``plan``: ``plan.csv``, the dispatched planner's plan, per truck and hour: the stations in
   order and the bikes to load (> 0) or unload (< 0);
6. ``report``: ``report.html``;
7. ``manifest``: ``manifest.json`` (inputs with checksums, model version, seeds, git commit,
   config, step timings).

The run folder (default ``<data>/runs/nightly/<D>``) also holds the config (``nightly.toml``),
the log (``nightly.log``) and the ledger (``ledger.json``).

Re-running the same date skips the steps already done (``--force`` redoes them); a run killed
at any moment resumes at the step it was in, since a step's outputs replace the old ones only
when complete and the step counts as done only once recorded. Seeds derive from the config's
seed and the date alone, so a re-run reproduces the same plan. One run at a time per data
folder: a lock file (``<data>/runs/nightly.lock``) holds the running pid; a second run exits
with code 75, and a lock left by a killed run is taken over.

Exit codes (for cron):

====  ==================================================================================
0     the run finished, or was already complete
2     bad command line or bad config (the message names the key)
65    input data present but unusable (schema or values; the message names file and field)
66    input data missing (e.g. no snapshots up to the date, local folder absent)
70    a step failed unexpectedly (traceback in nightly.log); re-running resumes at that step
75    another nightly run holds the lock; try again later
====  ==================================================================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path

from bicimad.jobs.batch import Step

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "pipelines/nightly.toml"


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where new raw data comes from."""

    kind: str = "synthetic"
    """synthetic (the embedded default city), local (a folder of EMT raw files) or portal (EMT's open-data portal)"""
    paths: tuple[str, ...] = ()
    """local: the files or folders to ingest"""
    seed: int = 0
    """synthetic: the city's seed"""
    live: str | None = None
    """local or portal: also store the live station state as one more snapshot: gbfs or emt"""
    gbfs_url: str | None = None
    """live = gbfs: the feed's base URL (default: the ingest client's BiciMAD feed)"""

    def validate(self) -> None:
        if self.kind not in ("synthetic", "local", "portal"):
            raise ValueError(f"source.kind: must be synthetic, local or portal, got {self.kind!r}")
        if self.live not in (None, "gbfs", "emt"):
            raise ValueError(f"source.live: must be gbfs or emt, got {self.live!r}")
        if self.live and self.kind == "synthetic":
            raise ValueError("source.live: the synthetic city has no live state; use kind local or portal")
        if self.kind == "local" and not self.paths:
            raise ValueError("source.paths: required when source.kind is 'local'")


@dataclasses.dataclass(frozen=True)
class DemandConfig:
    """The demand model and its refresh schedule."""

    model: str = "lightgbm"
    """model to train and forecast with"""
    retrain_every_days: int = 7
    """retrain when the newest model's data ends this many days or more before the date"""
    history_days: int = 28
    """days of station-hours (up to D) the model is trained on"""
    rounds: int = 300
    """LightGBM boosting rounds"""
    threads: int = 1
    """LightGBM threads (one: on a busy machine spin-waiting OpenMP threads cost more than they give)"""

    def validate(self) -> None:
        if self.retrain_every_days < 1:
            raise ValueError("demand.retrain_every_days: must be >= 1")
        if self.history_days < 1:
            raise ValueError("demand.history_days: must be >= 1")
        if self.rounds < 1 or self.threads < 1:
            raise ValueError("demand.rounds and demand.threads: must be >= 1")


@dataclasses.dataclass(frozen=True)
class NightlyConfig:
    """The nightly job, loaded from TOML (see pipelines/nightly.toml)."""

    scenario: str = "synthetic-default"
    """fleet scenario (a name in sim/scenarios/ or a path); its network is the ingested one"""
    planners: tuple[str, ...] = ("noop", "greedy", "ortools")
    """planners whose predicted occupancy is compared"""
    dispatch: str = "ortools"
    """the planner whose plan goes to the trucks (plan.csv); must be one of planners"""
    seeds: int = 3
    """demand draws per planner for the predicted occupancy"""
    seed: int = 2018
    """root seed; a run's seeds derive from it and the date"""
    source: SourceConfig = SourceConfig()
    demand: DemandConfig = DemandConfig()

    def validate(self) -> None:
        if not self.planners:
            raise ValueError("planners: needs at least one planner")
        if self.dispatch not in self.planners:
            raise ValueError(f"dispatch: {self.dispatch!r} is not one of planners {list(self.planners)}")
        if self.seeds < 1:
            raise ValueError("seeds: must be >= 1")


class NoInputError(RuntimeError):
    """Input the run needs is missing (exit 66)."""


class BadInputError(RuntimeError):
    """Input is present but unusable (exit 65)."""


@dataclasses.dataclass
class NightlyRun:
    """Everything a step needs: the config, the dates, the folders and the seeds."""

    config: NightlyConfig
    date: dt.date
    data_root: Path
    run_dir: Path

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
        import numpy as np

        root = np.random.SeedSequence(self.config.seed, spawn_key=(self.date.toordinal(),))
        return [int(s.generate_state(1, dtype=np.uint32)[0]) for s in root.spawn(self.config.seeds)]


# ---------------------------------------------------------------------------------------------
# Steps: each writes its outputs atomically and returns them for the ledger
# ---------------------------------------------------------------------------------------------

def _run_command(ctx: NightlyRun, argv: list[str]) -> None:
    """Run another ``bicimad`` command in this process on the run's data folder. Parsing the
    real command line gives its arguments every default, so options added to that command later
    need no change here."""
    from bicimad.cli import build_parser

    args = build_parser().parse_args(["--data-dir", str(ctx.data_root), *argv])
    args.func(args)


def step_ingest(ctx: NightlyRun):
    """Raw data into the processed tables (the ingest job's own resumable, duplicate-free path)."""
    from bicimad.errors import CommandError
    from bicimad.jobs import ingest
    from bicimad.jobs.batch import StepResult
    from bicimad.opendata.schemas import read_table

    source = ctx.config.source
    missing = [p for p in source.paths if not Path(p).exists()] if source.kind == "local" else []
    if missing:
        raise NoInputError(f"source.paths: {missing[0]} does not exist")
    # the portal publishes whole months: every month the demand history reaches into
    first = ctx.target - dt.timedelta(days=ctx.config.demand.history_days)
    months = f"{first:%Y-%m}:{ctx.date:%Y-%m}"
    argv = ["ingest", "--no-progress"]
    if source.kind == "synthetic":
        argv += ["--synthetic", "--seed", str(source.seed)]
    elif source.kind == "local":
        argv += ["--from", *source.paths]
    else:
        argv += ["--portal", months]
    if source.live:
        argv += ["--live", source.live] + (["--gbfs-url", source.gbfs_url] if source.gbfs_url else [])
    try:
        _run_command(ctx, argv)
    except CommandError as exc:
        if exc.code == ingest.EXIT_BAD_INPUT:
            raise BadInputError(f"ingest: {exc}") from None
        raise NoInputError(f"ingest: {exc}") from None
    processed = ctx.processed
    snapshots = read_table("snapshots", processed / "snapshots.parquet")
    last = snapshots["ts"].max() if len(snapshots) else None
    if last is None or last.date() < ctx.date:
        raise NoInputError(f"{processed / 'snapshots.parquet'}: no snapshot on {ctx.date} (latest: {last})")
    tables = [processed / f"{name}.parquet" for name in ("stations", "snapshots", "station_hours")]
    return StepResult(outputs=[], facts={"inputs": [str(p) for p in tables if p.exists()],
                                         "latest_snapshot": str(last)})


def step_demand_model(ctx: NightlyRun):
    """Reuse the newest demand model trained here on data up to D, unless it is due for a
    refresh (its data ends ``retrain_every_days`` or more before D); then train one with
    ``bicimad demand train`` on the ``history_days`` up to D, into
    ``<data>/models/demand/<model>-<D>/`` (with its model card)."""
    import json

    from bicimad.errors import CommandError
    from bicimad.jobs.batch import StepResult

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
            _run_command(ctx, ["demand", "train", "--span", f"{first}:{ctx.date}", "--model", cfg.model,
                               "--version", version, "--out-root", str(ctx.data_root / "models"),
                               "--holdout-days", "0", "--rounds", str(cfg.rounds), "--threads", str(cfg.threads),
                               "--no-progress"])
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
    import json

    import pandas as pd

    from bicimad.config import TZ
    from bicimad.demand.forecast import forecast_day
    from bicimad.demand.models import DemandModel
    from bicimad.demand.od import build_od
    from bicimad.jobs.batch import StepResult
    from bicimad.opendata.schemas import read_table, write_table

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
    import pandas as pd

    from bicimad.opendata.schemas import read_table
    from bicimad.sim.data import Processed
    from bicimad.sim.network import Network
    from bicimad.sim.riders import Demand

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
    from bicimad.opendata.schemas import read_table
    from bicimad.sim.network import Network
    from bicimad.sim.riders import Demand

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
    import pandas as pd
    from tqdm import tqdm

    from bicimad.io import atomic_path
    from bicimad.jobs.batch import StepResult
    from bicimad.opendata.schemas import write_table
    from bicimad.plan import make_planner
    from bicimad.report.occupancy import mean_interval, summary_table
    from bicimad.sim import load_scenario, run_episode, write_scenario

    stations, start_rows, network, demand = _episode_inputs(ctx)
    start = start_rows["ts"].iloc[0]
    scenario = load_scenario(ctx.config.scenario)
    outputs = [write_scenario(scenario, ctx.run_dir / "scenario.toml")]
    rows, plans = [], []
    with tqdm(total=len(ctx.config.planners) * len(ctx.seeds), desc="simulate", unit="episode") as bar:
        for name in ctx.config.planners:
            per_seed = []
            for index, seed in enumerate(ctx.seeds):
                planner = RecordingPlanner(make_planner(name))
                result = run_episode(network, demand, demand, scenario, planner, seed=seed)
                per_seed.append(result.summary.iloc[0].to_dict())
                if index == 0:  # the plan and the station-hour detail come from the first draw
                    path = write_table(result.occupancy, "occupancy", ctx.run_dir / "occupancy" / f"{name}.parquet")
                    outputs.append(path)
                    plans += plan_rows(name, planner.plans, demand.hours, network.station_ids)
                bar.update()
            mean = {k: (sum(r[k] for r in per_seed) / len(per_seed)) for k in per_seed[0] if k != "planner"}
            _, lo, hi = mean_interval([r["problem_share"] for r in per_seed])
            rows.append({**mean, "planner": name, "problem_share_lo": lo, "problem_share_hi": hi,
                         "seeds": len(per_seed)})
    summary = summary_table(rows)
    with atomic_path(ctx.run_dir / "occupancy.csv") as tmp:
        summary.to_csv(tmp, index=False)
    plan_columns = ["planner", "truck", "hour", "order", "station_id", "bikes", "action"]
    plans = pd.DataFrame(plans, columns=plan_columns)
    names = stations.drop_duplicates("station_id")[["station_id", "number", "name"]]
    plans = plans.merge(names, on="station_id", how="left")[plan_columns[:5] + ["number", "name"] + plan_columns[5:]]
    with atomic_path(ctx.run_dir / "plans.csv") as tmp:
        plans.to_csv(tmp, index=False)
    write_table(stations, "stations", ctx.run_dir / "stations.parquet")
    write_table(start_rows, "snapshots", ctx.run_dir / "start.parquet")
    outputs += [ctx.run_dir / name for name in ("occupancy.csv", "plans.csv", "stations.parquet", "start.parquet")]
    return StepResult(outputs=outputs, facts={"start_snapshot": str(start), "stations": int(network.n),
                                              "scenario": scenario.name, "seeds": ctx.seeds})


def step_plan(ctx: NightlyRun):
    """plan.csv: the dispatched planner's plan, per truck and hour, stations in order."""
    import pandas as pd

    from bicimad.io import atomic_path
    from bicimad.jobs.batch import StepResult

    plans = pd.read_csv(ctx.run_dir / "plans.csv")
    plan = plans[plans["planner"] == ctx.config.dispatch].drop(columns="planner")
    with atomic_path(ctx.run_dir / "plan.csv") as tmp:
        plan.to_csv(tmp, index=False)
    return StepResult(outputs=[ctx.run_dir / "plan.csv"],
                      facts={"dispatch": ctx.config.dispatch, "visits": len(plan),
                             "bikes_moved": int(plan["bikes"].abs().sum() // 2) if len(plan) else 0})


def _provenance(ctx: NightlyRun) -> dict:
    """What produced the run: dates, config, seeds, code version, inputs with checksums, model."""
    import json

    from bicimad.jobs.batch import config_to_dict, file_inputs, git_commit

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
        "dispatch": ctx.config.dispatch,
    }


def step_report(ctx: NightlyRun):
    """report.html for the run folder."""
    from bicimad.jobs.batch import StepResult
    from bicimad.report.html import build_report, load_run

    run = load_run(ctx.run_dir, label=f"plan for {ctx.target}")
    run.manifest = _provenance(ctx)  # manifest.json is written after the report
    out = build_report([run], ctx.run_dir / "report.html", title=f"BiciMAD nightly plan for {ctx.target}")
    return StepResult(outputs=[out])


def step_manifest(ctx: NightlyRun):
    """manifest.json: the provenance, every step's outputs with checksums, and step timings."""
    import json

    from bicimad.io import write_json
    from bicimad.jobs.batch import StepResult

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


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def register(sub) -> None:
    parser = sub.add_parser(
        "nightly", help="tonight's run: ingest, forecast D+1, plan and simulate, report",
        description="The nightly planning run for day D+1: ingest, demand model (on its schedule), "
        "forecast, planners simulated on the forecast, plan.csv, report.html and manifest.json in a run "
        "folder; re-running resumes or skips. Steps: `pydoc bicimad.jobs.nightly`. Exit codes: 0 done "
        "(or already complete), 2 bad config, 65 unusable input, 66 missing input, 70 a step failed "
        "(re-run resumes), 75 another run holds the lock.",
    )
    parser.add_argument("--date", required=True, help="the night's date D (YYYY-MM-DD); plans D+1")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"job config (TOML; default {DEFAULT_CONFIG})")
    parser.add_argument("--out", default=None, help="run folder (default: <data-dir>/runs/nightly/<D>)")
    parser.add_argument("--force", action="store_true", help="redo every step even if recorded done")
    parser.set_defaults(func=run)


def _attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "nightly.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        # the file gets INFO even when the console shows warnings only
        root.setLevel(logging.INFO)
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(logging.WARNING)
    return handler


def run(args) -> int:
    from bicimad import config as paths
    from bicimad.errors import CommandError
    from bicimad.jobs import batch

    try:
        date = dt.date.fromisoformat(args.date)
    except ValueError:
        raise CommandError(f"--date: expected YYYY-MM-DD, got {args.date!r}", batch.EXIT_USAGE) from None
    try:
        config = batch.load_config(NightlyConfig, args.config)
    except batch.ConfigError as exc:
        raise CommandError(str(exc), batch.EXIT_USAGE) from None
    data_root = paths.data_dir(args.data_dir).resolve()
    run_dir = (Path(args.out) if args.out else data_root / "runs" / "nightly" / date.isoformat()).resolve()
    lock = batch.RunLock(data_root / "runs" / "nightly.lock")
    try:
        lock.acquire()
    except batch.LockHeld as exc:
        raise CommandError(f"another nightly run is in progress: {exc}", batch.EXIT_TEMPFAIL) from None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = _attach_log(run_dir)
        try:
            return _run_locked(config, date, data_root, run_dir, force=args.force)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    finally:
        lock.release()


def _run_locked(config: NightlyConfig, date: dt.date, data_root: Path, run_dir: Path, force: bool) -> int:
    from bicimad.errors import CommandError
    from bicimad.jobs import batch
    from bicimad.opendata.schemas import SchemaError

    ctx = NightlyRun(config, date, data_root, run_dir)
    config_path = run_dir / "nightly.toml"
    if config_path.exists() and not force:
        previous = batch.load_config(NightlyConfig, config_path)
        if previous != config:
            raise CommandError(f"{run_dir} was run with a different config ({config_path}); "
                               "use --force to redo the run with this one, or --out for another folder",
                               batch.EXIT_USAGE)
    if force or not config_path.exists():
        batch.write_config(config, config_path)
    log.info("nightly run for %s (plans %s) in %s", date, ctx.target, run_dir)
    t0 = time.perf_counter()
    try:
        status = batch.run_steps(STEPS, ctx, batch.Ledger(run_dir / "ledger.json"), force=force)
    except NoInputError as exc:
        log.error("missing input: %s", exc)
        raise CommandError(str(exc), batch.EXIT_NOINPUT) from None
    except (BadInputError, SchemaError) as exc:
        log.error("unusable input: %s", exc)
        raise CommandError(str(exc), batch.EXIT_DATAERR) from None
    except Exception as exc:
        log.exception("step failed")
        raise CommandError(f"{type(exc).__name__}: {exc} (details in {run_dir / 'nightly.log'}; "
                           "re-run to resume)", batch.EXIT_SOFTWARE) from None
    done = [name for name, s in status.items() if s == "done"]
    verdict = "already complete" if not done else f"{len(done)} step(s) run"
    print(f"nightly {date} -> plan for {ctx.target}: {verdict} in {time.perf_counter() - t0:.1f} s")
    print(f"plan: {(run_dir / 'plan.csv').resolve()}")
    print(f"report: {(run_dir / 'report.html').resolve()}")
    return batch.EXIT_OK
