"""``bicimad replan RUN --now | --at HH:MM``: re-plan the rest of the planned day from the live state.

The night's run (``bicimad nightly``) planned the whole of day D+1 from the last snapshot of D.
During the day the real state drifts from the plan. ``replan`` fetches the live station state
(BiciMAD's GBFS feed, or EMT MobilityLabs with credentials), starts the simulator from it at the
hour it was taken (``--now``; ``--at HH:MM`` names the hour instead), and re-plans the remaining
hours with the night's dispatched planner (or ``--planner``) on the night's forecast. It writes,
beside the night's files, ``replan-HHMM/``: ``plan.csv`` (the new plan from that hour on),
``occupancy.csv`` (its predicted occupancy over the remaining hours, mean over the draws),
``live.json`` (which state it started from) and the live snapshot it fetched, kept as raw data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bicimad.config import TZ
from bicimad.errors import EXIT_NOINPUT, EXIT_USAGE, CommandError
from bicimad.io import atomic_path, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.compare import day_seed
from bicimad.jobs.nightly.steps import RecordingPlanner, plan_rows, run_network_source
from bicimad.jobs.policy_fit import DEFAULT_POLICY_HINT, announce_policy, check_policy_fits
from bicimad.opendata import live
from bicimad.opendata.normalise import build_snapshots
from bicimad.opendata.readers import read_snapshot_jsonl
from bicimad.opendata.rejects import Rejects
from bicimad.opendata.schemas import read_table
from bicimad.plan import planner_for
from bicimad.sim import load_scenario, run_episode
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand


@dataclasses.dataclass(frozen=True)
class ReplanResult(JobResult):
    """A re-plan: where it was written, from which state, and its predicted problem share."""

    out: Path
    start: pd.Timestamp
    planner: str
    visits: int
    problem_share: float

    def summary(self) -> str:
        return (f"replan from the live state of {self.start}: {self.planner}, {self.visits} visits for the rest of the day, "
                f"{self.problem_share:.1%} problem station-hours predicted\nplan: {(self.out / 'plan.csv').resolve()}")


def _live_snapshot(source: str, dest: Path, gbfs_url: str | None, stations: pd.DataFrame) -> pd.DataFrame:
    """Fetch the live state into ``dest`` and read it as snapshot rows of ``stations``."""
    try:
        path = live.fetch_gbfs(gbfs_url or live.BICIMAD_GBFS_URL, dest) if source == "gbfs" else live.fetch_mobilitylabs(dest)
    except (live.LiveError, OSError) as exc:
        raise CommandError(f"--live {source}: {exc}", EXIT_NOINPUT) from None
    rejects = Rejects()
    with open(path, "rb") as fh:
        frames = [chunk.frame for chunk in read_snapshot_jsonl(fh, str(path), rejects) if chunk.kind == "snapshots"]
    if not frames or sum(len(f) for f in frames) == 0:
        raise CommandError(f"{path}: the live state holds no station", EXIT_NOINPUT)
    parts = pd.concat(frames, ignore_index=True).assign(source=f"live/{source}")
    listed = stations.dropna(subset=["number", "station_id"])
    numbers = dict(zip(listed["number"].astype(str), listed["station_id"].astype(int)))
    return build_snapshots(parts, numbers, rejects)


def _hour_index(target: dt.date, start: pd.Timestamp) -> int:
    midnight = pd.Timestamp(target).tz_localize(TZ)
    hours = int((start - midnight).total_seconds() // 3600)
    if not 0 <= hours < 24:
        raise CommandError(f"the state is from {start}, outside the planned day {target}: "
                           "re-plan with the run of that day's night, or name the hour with --at", EXIT_USAGE)
    return hours


def _run_inputs(run_dir: Path) -> dict:
    names = ("stations", "forecast", "od")
    missing = [n for n in (*[f"{n}.parquet" for n in names], "scenario.toml", "decision.json", "nightly.toml")
               if not (run_dir / n).exists()]
    if missing:
        raise CommandError(f"{run_dir}: not a finished nightly run folder (missing {missing[0]})", EXIT_NOINPUT)
    return {"stations": read_table("stations", run_dir / "stations.parquet"),
            "forecast": read_table("forecast", run_dir / "forecast.parquet"),
            "od": read_table("od", run_dir / "od.parquet"),
            "decision": json.loads((run_dir / "decision.json").read_text(encoding="utf-8"))}


def replan(run_dir, *, now: bool = True, at: str | None = None, source: str = "gbfs", gbfs_url: str | None = None,
           planner: str | None = None, seeds: int = 1) -> ReplanResult:
    """Re-plan the rest of a nightly run's planned day from the live station state."""
    run_dir = Path(run_dir)
    inputs = _run_inputs(run_dir)
    forecast = inputs["forecast"]
    target = pd.to_datetime(forecast["hour"]).dt.tz_convert(TZ).min().date()
    snapshot = _live_snapshot(source, run_dir / "live", gbfs_url, inputs["stations"])
    start = snapshot["ts"].max()
    if at is not None:
        try:
            clock = dt.datetime.strptime(at, "%H:%M").time()
        except ValueError:
            raise CommandError(f"--at: expected HH:MM, got {at!r}") from None
        start = pd.Timestamp(dt.datetime.combine(target, clock)).tz_localize(TZ)
    hour = _hour_index(target, start)
    network = Network.from_tables(inputs["stations"], snapshot)
    first_hour = pd.Timestamp(target).tz_localize(TZ) + pd.Timedelta(hours=hour)
    rest = forecast[pd.to_datetime(forecast["hour"]) >= first_hour]
    demand = Demand.from_tables(network, rest, inputs["od"])
    scenario = load_scenario(run_dir / "scenario.toml").override({"episode.hours": demand.n_hours})
    name = planner or inputs["decision"]["planner"]
    try:
        planner_for(name, scenario)   # a router: the scenario's own, or router:DIR
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(f"--planner: {exc}") from None
    if name == "ppo":
        announce_policy(scenario)
        try:
            planned_on = run_network_source(run_dir)
        except ValueError as exc:
            raise CommandError(str(exc), EXIT_NOINPUT) from None
        check_policy_fits(None, scenario, planned_on, [(f"the live network at {start}", network)], scenario.name,
                          DEFAULT_POLICY_HINT)
    shares, plans = [], []
    for index in range(seeds):
        recorder = RecordingPlanner(planner_for(name, scenario))
        result = run_episode(network, demand, demand, scenario, recorder, seed=day_seed(index, hour))
        shares.append(float(result.summary.iloc[0]["problem_share"]))
        if index == 0:
            plans = plan_rows(name, recorder.plans, demand.hours, network.station_ids)
    out = run_dir / f"replan-{start.tz_convert(TZ):%H%M}"
    frame = pd.DataFrame(plans, columns=["planner", "truck", "hour", "order", "station_id", "bikes", "action"])
    with atomic_path(out / "plan.csv") as tmp:
        frame.drop(columns="planner").to_csv(tmp, index=False)
    with atomic_path(out / "occupancy.csv") as tmp:
        pd.DataFrame({"planner": [name], "problem_share": [float(np.mean(shares))], "draws": [seeds],
                      "hours": [demand.n_hours]}).to_csv(tmp, index=False)
    write_json(out / "live.json", {"source": source, "state_at": str(snapshot["ts"].max()), "replanned_from": str(start),
                                   "hour_index": hour, "planner": name, "stations": int(network.n)})
    return ReplanResult(out=out, start=start, planner=name, visits=len(frame), problem_share=float(np.mean(shares)))
