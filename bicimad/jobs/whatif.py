"""``bicimad whatif --config pipelines/whatif-fleet.toml``: sweep fleet scenarios, and answer
"how many trucks do we need?" (``--target-problem-share 0.15``, ``--target-lost-trips N``).

The sweep is the product of the grid's parameters (trucks, truck capacity, visits per hour,
action radius, demand multiplier) × planners × seeds. Each task simulates ``days`` scenario
days (from ``start``: e.g. Thursday to Sunday mixes weekdays and a weekend), on the scenario's
synthetic network or on a nightly run folder's network, start state and forecast (``run``),
and returns one tidy row with the occupancy counts, lost trips, diverted returns, bikes moved,
truck km and the declared objective (:func:`bicimad.sim.objective.objective` with the
scenario's reward weights). A planner that moves no bikes (no-op) is simulated once per demand
multiplier and seed and its result reused for every fleet size (:func:`simulations`).
Tasks run in a local process pool by default, or on a Ray cluster with ``--ray ADDRESS``
(``auto``: the cluster this machine belongs to; ``local``: a fresh local one; the cluster's
workers need this package installed and, with ``run``, the run folder at the same path); a
task whose worker dies is run again (``RAY_MAX_RETRIES``), one that raises is not. Either way
the results are identical for identical seeds:

- a task's seed depends only on the config's ``seed`` and the task's seed index
  (:func:`bicimad.sim.seeds.derive_seed`), never on the worker or the
  order of completion; every planner and fleet size with the same index therefore sees the
  same demand draws (common random numbers), so differences between them are not noise;
- each finished task is stored as ``tasks/<task_id>.json`` in the output folder (written
  atomically by the driver) and skipped when the sweep is run again, so an interrupted sweep
  resumes where it stopped.

Outputs: ``results.parquet`` and ``results.csv`` (one row per task; ``simulated_as`` names the
simulation that answered it), ``intervals.csv`` (per planner and scenario point, the mean and
95 % interval over seeds of the problem share and of each metric per day), ``paired.csv`` (the
difference to the ``baseline`` point seed by seed, then its mean and interval),
``trucks_needed.csv`` with a target (per planner, the smallest fleet of the grid by bikes it can
move per hour, trucks × capacity × visits, whose upper 95 % bound meets the target, and the one
where the mean crosses it; or "not reached in the grid"), plots against trucks, ``report.html``
(naming the city, days, scenario, planners and baseline) and the config as ``whatif.toml``.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import glob
import itertools
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bicimad import config as paths
from bicimad.errors import EXIT_SOFTWARE, EXIT_USAGE, CommandError
from bicimad.io import atomic_open, atomic_path, file_stem
from bicimad.jobs import JobResult
from bicimad.jobs.batch import ConfigError, load_config, write_config
from bicimad.jobs.nightly import load_run_inputs
from bicimad.jobs.nightly.steps import run_network_source
from bicimad.jobs.policy_fit import (
    DEFAULT_POLICY_HINT,
    announce_policy,
    check_policy_fleet,
    check_policy_network,
    check_router_planner,
    policy_folder,
    read_card,
)
from bicimad.plan import is_planner_name, is_router_name, known_planners, planner_for
from bicimad.report.occupancy import mean_interval, problem_share
from bicimad.report.whatif_report import build_whatif_report, sweep_figures
from bicimad.sim import load_scenario, run_episode
from bicimad.sim.network import synthetic_network
from bicimad.sim.objective import objective
from bicimad.sim.riders import synthetic_demand
from bicimad.sim.seeds import derive_seed

log = logging.getLogger(__name__)

#: Result columns that measure wall time: they differ between otherwise identical runs.
TIMING_COLUMNS = ("decision_s_per_hour", "task_s")

#: First simulated day of a synthetic network when the config gives no ``start`` (a Thursday).
DEFAULT_START = "2018-09-27"

#: Times Ray runs a task again whose worker died before it finished.
RAY_MAX_RETRIES = 3

#: The scenario parameters a sweep varies, in the order of a task id.
GRID_PARAMS = ("trucks", "truck_capacity", "visits_per_hour", "radius_km", "demand_scale")

#: The grid parameters that describe the fleet (the rest describe the riders).
FLEET_PARAMS = ("trucks", "truck_capacity", "visits_per_hour", "radius_km")

#: Planners that never move a bike: their result does not depend on the fleet, so one
#: simulation per demand multiplier and seed serves every fleet size of the grid.
FLEET_FREE_PLANNERS = ("noop",)

#: Metrics with an interval per scenario point: the column they are read from, and whether
#: they are divided by the task's simulated days (per-day figures).
METRICS = {"problem_share": False, "lost_trips": True, "diverted_returns": True, "truck_km": True,
           "objective": True}


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """The values each scenario parameter takes (the sweep is their product). A parameter left
    out takes the base scenario's value, so the scenario stays the one home of the fleet."""

    trucks: tuple[int, ...] | None = None
    """number of trucks (default: the scenario's)"""
    truck_capacity: tuple[int, ...] | None = None
    """bikes a truck carries at most (default: the scenario's)"""
    visits_per_hour: tuple[int, ...] | None = None
    """station visits per truck and hour at most (default: the scenario's)"""
    radius_km: tuple[float, ...] | None = None
    """action radius around each truck's base (default: the scenario's)"""
    demand_scale: tuple[float, ...] | None = None
    """multiplier on the forecast pickup and return rates (default: the scenario's)"""
    def validate(self) -> None:
        for name in GRID_PARAMS:
            values = getattr(self, name)
            if values is None:
                continue
            if not values:
                raise ValueError(f"grid.{name}: needs at least one value (leave it out for the scenario's)")
            if len(set(values)) < len(values):
                raise ValueError(f"grid.{name}: repeated value in {list(values)}")
            if any(not v >= 0 for v in values):
                raise ValueError(f"grid.{name}: values must be >= 0, got {list(values)}")

    def resolved(self, scenario) -> SweepGrid:
        """This grid with every empty parameter set to ``scenario``'s value."""
        base = {"trucks": scenario.fleet.trucks, "truck_capacity": scenario.fleet.truck_capacity,
                "visits_per_hour": scenario.fleet.visits_per_hour, "radius_km": scenario.fleet.radius_km,
                "demand_scale": scenario.riders.demand_multiplier}
        return dataclasses.replace(self, **{name: getattr(self, name) or (base[name],) for name in GRID_PARAMS})


@dataclasses.dataclass(frozen=True)
class BaselinePoint:
    """The scenario point every other is compared with, seed by seed (paired differences). A
    fleet parameter left out takes the base scenario's value; the baseline is matched at each
    demand multiplier of the grid."""

    planner: str = "noop"
    """the baseline's planner (one of the sweep's planners)"""
    trucks: int | None = None
    """its number of trucks (default: the scenario's; ignored for a planner that moves no bikes)"""
    truck_capacity: int | None = None
    """its truck capacity (default: the scenario's)"""
    visits_per_hour: int | None = None
    """its visits per truck and hour (default: the scenario's)"""
    radius_km: float | None = None
    """its action radius (default: the scenario's)"""

    def resolved(self, scenario) -> BaselinePoint:
        """This point with every fleet parameter left out set to ``scenario``'s value."""
        fleet = scenario.fleet
        return dataclasses.replace(self, **{name: getattr(fleet, name) if getattr(self, name) is None
                                            else getattr(self, name) for name in FLEET_PARAMS})


@dataclasses.dataclass(frozen=True)
class WhatIfConfig:
    """A what-if sweep, loaded from TOML (see pipelines/whatif-fleet.toml)."""

    name: str = "whatif"
    """name of the sweep (the default output folder is runs/whatif/<name>)"""
    scenario: str = "synthetic-default"
    """base scenario: a name in sim/scenarios/ or a path to a scenario TOML"""
    start: str | None = None
    """first simulated day (YYYY-MM-DD) of a synthetic network; default 2018-09-27 (a Thursday:
    days = 4 simulates Thursday to Sunday, two weekdays and a weekend)"""
    run: str | None = None
    """finished nightly run folders: sweep on their networks, start states and forecast days
    instead of the scenario's synthetic ones; one folder, or a glob pattern naming several
    nights (e.g. "data/runs/nightly/2019-10-2*": several real days, each from its own forecast;
    then days must be the number of folders it names)"""
    days: int = 1
    """consecutive days each task simulates"""
    planners: tuple[str, ...] = ("noop", "greedy")
    """planners to compare (names for bicimad.plan.make_planner)"""
    seeds: int = 3
    """seed indices per scenario point (intervals are over these)"""
    seed: int = 2018
    """root seed; task seeds derive from it and the seed index"""
    workers: int = 0
    """local worker processes (0: one per core)"""
    grid: SweepGrid = SweepGrid()
    """the scenario parameters to sweep"""
    baseline: BaselinePoint | None = None
    """the point paired differences are taken against (default: no-op, where it is a planner of
    the sweep; else no paired differences)"""
    target_problem_share: float | None = None
    """answer: the smallest fleet whose problem share (0-1) meets this target"""
    target_lost_trips: float | None = None
    """answer: the smallest fleet whose lost trips per simulated day meet this target"""
    def validate(self) -> None:
        if self.days < 1:
            raise ValueError("days: must be >= 1")
        if self.seeds < 1:
            raise ValueError("seeds: must be >= 1")
        if not self.planners:
            raise ValueError("planners: needs at least one planner")
        if self.workers < 0:
            raise ValueError("workers: must be >= 0")
        if self.target_problem_share is not None and not 0 <= self.target_problem_share <= 1:
            raise ValueError(f"target_problem_share: a share in 0-1, got {self.target_problem_share}")
        if self.target_lost_trips is not None and not self.target_lost_trips >= 0:
            raise ValueError(f"target_lost_trips: must be >= 0, got {self.target_lost_trips}")
        if self.run is not None and self.days != len(run_folders(self.run)):
            raise ValueError(f"days: run names {len(run_folders(self.run))} nightly run folder(s), one forecast day "
                             f"each; days must be {len(run_folders(self.run))}, not {self.days}")


@dataclasses.dataclass(frozen=True)
class Task:
    """One simulation of the sweep: a scenario point, a planner and a seed."""

    scenario: str
    start: str | None
    run: str | None
    days: int
    trucks: int
    truck_capacity: int
    visits_per_hour: int
    radius_km: float
    demand_scale: float
    planner: str
    seed_index: int
    seed: int

    @property
    def task_id(self) -> str:
        return (f"{file_stem(self.planner)}-t{self.trucks}-c{self.truck_capacity}-v{self.visits_per_hour}"
                f"-r{self.radius_km:g}-d{self.demand_scale:g}-s{self.seed_index}")


def task_seed(root: int, index: int) -> int:
    """The seed of seed index ``index``: independent streams from one root, the same on every
    machine and in every order."""
    return derive_seed(root, index)


def run_folders(run: str) -> list[str]:
    """The nightly run folders ``run`` names (a folder, or a glob pattern), in date order."""
    if glob.has_magic(run):
        return sorted(str(Path(p).resolve()) for p in glob.glob(run) if Path(p).is_dir())
    return [str(Path(run).resolve())]


def make_tasks(config: WhatIfConfig) -> list[Task]:
    """Every task of the sweep, in a fixed order."""
    seeds = [task_seed(config.seed, i) for i in range(config.seeds)]
    # absolute paths: workers may start in another folder
    run = (config.run if glob.has_magic(config.run) else str(Path(config.run).resolve())) if config.run else None
    if run and glob.has_magic(run):
        run = str(Path(run).absolute())
    scenario = str(Path(config.scenario).resolve()) if Path(config.scenario).is_file() else config.scenario
    grid = config.grid.resolved(load_scenario(scenario))
    tasks = []
    for values in itertools.product(*(getattr(grid, p) for p in GRID_PARAMS)):
        point = dict(zip(GRID_PARAMS, values))
        for planner in config.planners:
            for index, seed in enumerate(seeds):
                tasks.append(Task(scenario=scenario, start=config.start, run=run, days=config.days,
                                  planner=planner, seed_index=index, seed=seed, **point))
    return tasks


def simulations(tasks: list[Task]) -> dict[str, Task]:
    """The task whose simulation answers each task, by task id: itself, except for a planner
    that moves no bikes (:data:`FLEET_FREE_PLANNERS`), whose tasks at one demand multiplier and
    seed index share the first one's simulation (the fleet cannot change what it does)."""
    first: dict[tuple, Task] = {}
    answer = {}
    for task in tasks:
        if task.planner in FLEET_FREE_PLANNERS:
            key = (task.planner, task.demand_scale, task.seed_index)
            answer[task.task_id] = first.setdefault(key, task)
        else:
            answer[task.task_id] = task
    return answer


def expand_results(tasks: list[Task], answer: dict[str, Task], rows: list[dict]) -> list[dict]:
    """One row per task of the sweep from the rows of the tasks simulated (``run_sweep`` over the
    distinct values of ``answer``): a task answered by another's simulation gets that result
    under its own fields, and ``simulated_as`` names the task that was simulated."""
    fields = {"task_id", *(f.name for f in dataclasses.fields(Task))}
    results = {row["task_id"]: {k: v for k, v in row.items() if k not in fields} for row in rows}
    return [{"task_id": t.task_id, "simulated_as": answer[t.task_id].task_id, **dataclasses.asdict(t),
             **results[answer[t.task_id].task_id]} for t in tasks]


# ---------------------------------------------------------------------------------------------
# The sweep engine: local process pool or Ray, resumable, in a fixed result order
# ---------------------------------------------------------------------------------------------

class TaskFailed(RuntimeError):
    """A task raised; the message names the task. Finished tasks stay stored."""


def _task_file(out: Path, task: Task) -> Path:
    return out / "tasks" / f"{task.task_id}.json"


def _load_done(out: Path, tasks: list[Task]) -> dict[str, dict]:
    done = {}
    for task in tasks:
        path = _task_file(out, task)
        if path.exists():
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("task") == dataclasses.asdict(task):
                done[task.task_id] = record["result"]
            else:  # same id, different definition (e.g. the root seed changed): run it again
                log.info("%s: stored task differs from the config; running it again", path)
    return done


def _store(out: Path, task: Task, result: dict) -> None:

    # keys kept in the task function's order, so a resumed sweep's table has the same columns
    with atomic_open(_task_file(out, task), "w", encoding="utf-8") as fh:
        json.dump({"task": dataclasses.asdict(task), "result": result}, fh, indent=1)


def _iter_local(fn, tasks: list[Task], workers: int):
    """(task, result) as tasks finish, in a pool of ``workers`` processes (in-process for 1)."""
    if workers == 1:
        for task in tasks:
            try:
                result = fn(task)
            except Exception as exc:
                raise TaskFailed(f"task {task.task_id} failed: {type(exc).__name__}: {exc}") from exc
            yield task, result
        return

    # spawn: workers start clean (no inherited threads or locks from the parent's libraries)
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, task): task for task in tasks}
        for future in cf.as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise TaskFailed(f"task {task.task_id} failed: {type(exc).__name__}: {exc}") from exc
            yield task, result


def _call(fn, task: Task) -> dict:
    """``fn(task)``: the one remote function, so any picklable callable can be a task function."""
    return fn(task)


def _iter_ray(fn, tasks: list[Task], address: str, workers: int):
    """(task, result) as tasks finish on a Ray cluster (``local``: start one with ``workers`` CPUs)."""
    import ray  # only for sweeps on Ray: a heavy import

    from bicimad.plan.ray_envs import connect_ray

    started_here = connect_ray(None if address == "local" else address, workers)
    try:
        # a task whose worker dies (node lost, process killed) is run again elsewhere; a task
        # that raises is not (a deterministic error would only raise again)
        remote = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES, retry_exceptions=False)(_call)
        pending = {remote.remote(fn, task): task for task in tasks}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                    raise TaskFailed(f"task {task.task_id} failed: {type(cause).__name__}: {cause}") from exc
                yield task, result
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(tasks: list[Task], fn: Callable[[Task], dict], out: str | os.PathLike, *,
              workers: int = 0, ray_address: str | None = None, progress: bool = True) -> list[dict]:
    """Run ``fn`` on every task not already stored in ``out/tasks`` and return all results, in
    task order, each with the task's fields and ``task_id`` first.

    ``fn`` must be a picklable function of the task alone (and seeded by
    ``task.seed``), so where it runs cannot change what it returns.
    """
    out = Path(out)
    workers = workers or os.cpu_count() or 1
    done = _load_done(out, tasks)
    pending = [t for t in tasks if t.task_id not in done]
    if done:
        log.info("%d of %d tasks already done in %s; running %d", len(done), len(tasks), out, len(pending))
    if pending:
        finished = (_iter_ray(fn, pending, ray_address, workers) if ray_address
                    else _iter_local(fn, pending, min(workers, len(pending))))
        with tqdm(total=len(tasks), initial=len(done), desc="what-if", unit="task", disable=not progress) as bar:
            for task, result in finished:
                _store(out, task, result)
                done[task.task_id] = result
                bar.update()
    return [{"task_id": t.task_id, **dataclasses.asdict(t), **done[t.task_id]} for t in tasks]


# ---------------------------------------------------------------------------------------------
# Results: tidy table, intervals over seeds, paired differences, the fleet needed, plots
# ---------------------------------------------------------------------------------------------

def _metric_values(results: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` per row: per simulated day for counts (``METRICS``), as is for shares."""
    return results[metric] / results["days"] if METRICS[metric] else results[metric]


def _metric_label(metric: str) -> str:
    return f"{metric}_per_day" if METRICS[metric] else metric


def interval_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % interval over seeds per planner and scenario point: ``mean``, ``lo``,
    ``hi`` of the problem share, then ``<metric>_per_day`` (and ``_lo``, ``_hi``) of every other
    metric of :data:`METRICS` the results hold."""
    keys = ["planner", *GRID_PARAMS]
    others = [m for m in METRICS if m != "problem_share" and m in results]
    rows = []
    for key, group in results.groupby(keys, sort=False):
        mean, lo, hi = mean_interval(group["problem_share"])
        row = {**dict(zip(keys, key)), "seeds": len(group), "mean": mean, "lo": lo, "hi": hi}
        for metric in others:
            label = _metric_label(metric)
            row[label], row[f"{label}_lo"], row[f"{label}_hi"] = mean_interval(_metric_values(group, metric))
        rows.append(row)
    columns = [*keys, "seeds", "mean", "lo", "hi"]
    columns += [f"{_metric_label(m)}{end}" for m in others for end in ("", "_lo", "_hi")]
    return pd.DataFrame(rows, columns=columns)


def paired_table(results: pd.DataFrame, baseline: BaselinePoint) -> pd.DataFrame:
    """Paired differences against ``baseline`` (resolved: every fleet parameter set): for each
    planner and scenario point, the difference to the baseline's result with the same seed
    index and demand multiplier (the same riders, by common random numbers), then its mean and
    95 % interval over seeds, as ``d_<metric>`` (and ``_lo``, ``_hi``; counts per day).
    Negative: fewer than the baseline."""
    base = results[results["planner"] == baseline.planner]
    if baseline.planner not in FLEET_FREE_PLANNERS:
        for name in FLEET_PARAMS:
            base = base[np.isclose(base[name], getattr(baseline, name))]
    if base.empty:
        raise ValueError(f"baseline {baseline}: no such point in the sweep's results")
    base = base.drop_duplicates(["demand_scale", "seed_index"]).set_index(["demand_scale", "seed_index"])
    metrics = [m for m in METRICS if m in results]
    keys = ["planner", *GRID_PARAMS]
    rows = []
    for key, group in results.groupby(keys, sort=False):
        index = pd.MultiIndex.from_frame(group[["demand_scale", "seed_index"]])
        matched = base.reindex(index)
        row = {**dict(zip(keys, key)), "pairs": int(matched["days"].notna().sum())}
        for metric in metrics:
            diff = (_metric_values(group, metric).to_numpy()
                    - _metric_values(matched.reset_index(drop=True), metric).to_numpy())
            row[f"d_{metric}"], row[f"d_{metric}_lo"], row[f"d_{metric}_hi"] = mean_interval(diff)
        rows.append(row)
    return pd.DataFrame(rows)


def trucks_needed(intervals: pd.DataFrame, metric: str, target: float) -> pd.DataFrame:
    """Per planner and rider setting (radius, demand multiplier): the smallest fleet of the grid
    that meets ``target`` on ``metric`` (``problem_share`` or ``lost_trips_per_day``), by two
    rules: ``upper bound`` (the smallest fleet whose upper 95 % bound over seeds is at or below
    the target: met with confidence) and ``mean`` (where the mean crosses the target).

    Fleets are ordered by the bikes they can move per hour (trucks x capacity x visits per
    hour), then by trucks. A rule no fleet of the grid meets gives ``status`` "not reached in
    the grid" and no fleet."""
    lo, hi = ("lo", "hi") if metric == "problem_share" else (f"{metric}_lo", f"{metric}_hi")
    mean = "mean" if metric == "problem_share" else metric
    frame = intervals.assign(bikes_per_hour=intervals["trucks"] * intervals["truck_capacity"]
                             * intervals["visits_per_hour"])
    frame = frame.sort_values(["bikes_per_hour", "trucks", "truck_capacity", "visits_per_hour"], kind="stable")
    rows = []
    for (planner, radius, scale), group in frame.groupby(["planner", "radius_km", "demand_scale"], sort=False):
        for rule, column in (("upper bound", hi), ("mean", mean)):
            met = group[group[column] <= target]
            row = {"planner": planner, "radius_km": radius, "demand_scale": scale, "metric": metric,
                   "target": target, "rule": rule, "status": "reached" if len(met) else "not reached in the grid"}
            hit = met.iloc[0] if len(met) else None
            for name in ("trucks", "truck_capacity", "visits_per_hour", "bikes_per_hour"):
                row[name] = hit[name] if hit is not None else None
            for name, source in (("mean", mean), ("lo", lo), ("hi", hi)):
                row[name] = float(hit[source]) if hit is not None else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def write_outputs(rows: list[dict], out: str | os.PathLike, *, baseline: BaselinePoint | None = None,
                  targets: dict[str, float] | None = None, context: dict | None = None) -> dict[str, Path]:
    """Write the results table, the intervals, the paired differences against ``baseline``
    (resolved; None: none), the fleet needed for each of ``targets`` (metric -> target), the
    plots and the report; return their paths by kind. ``context`` (label -> text) heads the report."""
    out = Path(out)
    results = pd.DataFrame(rows)
    written = {"results_parquet": out / "results.parquet", "results_csv": out / "results.csv"}
    with atomic_path(written["results_parquet"]) as tmp:
        results.to_parquet(tmp, index=False)
    _write_table(results, written["results_csv"])
    intervals = interval_table(results)
    written["intervals"] = _write_table(intervals, out / "intervals.csv")
    paired = needed = None
    if baseline is not None:
        paired = paired_table(results, baseline)
        written["paired"] = _write_table(paired, out / "paired.csv")
    if targets:
        needed = pd.concat([trucks_needed(intervals, m, t) for m, t in targets.items()], ignore_index=True)
        written["trucks_needed"] = _write_table(needed, out / "trucks_needed.csv")
    written.update(sweep_figures(intervals, paired, out, targets or {}))
    figures = [p for k, p in written.items() if k.startswith(("plot ", "figure "))]
    written["report"] = build_whatif_report(out / "report.html", intervals=intervals, figures=figures,
                                            paired=paired, needed=needed, context=context or {})
    return written


def throughput(rows: Iterable[dict], wall_s: float) -> float:
    """Scenario-days simulated per minute of wall time."""
    days = sum(r["days"] for r in rows)
    return days / wall_s * 60 if wall_s > 0 else math.nan


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WhatIfResult(JobResult):
    """A finished sweep: one row per task, the files written, and the fleet needed per target."""

    rows: list[dict]
    written: dict[str, Path]
    seconds: float
    simulated: int = 0
    needed: pd.DataFrame | None = None

    def summary(self) -> str:
        days = sum({r["simulated_as"]: r["days"] for r in self.rows}.values())
        lines = [f"{len(self.rows)} tasks ({self.simulated} simulated; no-op reused across fleet sizes), "
                 f"{days} scenario-days simulated in {self.seconds:.1f} s"]
        if self.needed is not None:
            lines += ["fleet needed (smallest trucks x capacity x visits/h of the grid):", *needed_lines(self.needed)]
        lines += [f"{kind.replace('_', ' ')}: {self.written[kind].resolve()}"
                  for kind in ("results_csv", "intervals", "paired", "trucks_needed", "report") if kind in self.written]
        return "\n".join(lines)


def needed_lines(needed: pd.DataFrame) -> list[str]:
    """One line per planner, rider setting and target: the fleet by each rule, or 'not reached'."""
    lines = []
    for (metric, target, planner, radius, scale), group in needed.groupby(
            ["metric", "target", "planner", "radius_km", "demand_scale"], sort=False):
        shown = f"{100 * target:g} %" if metric == "problem_share" else f"{target:g}"
        parts = []
        for row in group.itertuples():
            if row.status != "reached":
                parts.append(f"{row.rule}: not reached in the grid")
                continue
            value = (f"{100 * row.mean:.1f} % [{100 * row.lo:.1f}, {100 * row.hi:.1f}]" if metric == "problem_share"
                     else f"{row.mean:.0f} [{row.lo:.0f}, {row.hi:.0f}]")
            parts.append(f"{row.rule}: {row.trucks:g} trucks x {row.truck_capacity:g} bikes x "
                         f"{row.visits_per_hour:g} visits/h ({value})")
        lines.append(f"  {metric} <= {shown}, {planner} (radius {radius:g} km, demand x{scale:g}): " + "; ".join(parts))
    return lines


def whatif_command(config_path: str, *, out=None, ray: str | None = None, workers: int | None = None,
                   data_dir=None, progress: bool = True, target_problem_share: float | None = None,
                   target_lost_trips: float | None = None) -> WhatIfResult:
    """The command line's entry: load and check the sweep's config file (targets given here
    replace the config's), then run it."""
    try:
        config = load_config(WhatIfConfig, config_path)
        targets = {k: v for k, v in (("target_problem_share", target_problem_share),
                                     ("target_lost_trips", target_lost_trips)) if v is not None}
        config = dataclasses.replace(config, **targets)
        config.validate()
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:
        raise CommandError(f"{config_path}: {exc}", EXIT_USAGE) from None
    try:
        scenario = load_scenario(config.scenario)
    except ValueError as exc:
        raise CommandError(f"{config_path}: scenario: {exc}", EXIT_USAGE) from None
    unknown = [name for name in config.planners if not is_planner_name(name)]
    if unknown:
        raise CommandError(f"{config_path}: planners: unknown planner {unknown[0]!r}; known: {known_planners()}",
                           EXIT_USAGE)
    _check_routers(config, scenario, config_path)
    try:
        check_baseline(config, scenario)
    except ValueError as exc:
        raise CommandError(f"{config_path}: {exc}", EXIT_USAGE) from None
    if config.run:
        try:
            for folder in run_folders(config.run):
                load_run_inputs(folder)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"{config_path}: run: {exc}", EXIT_USAGE) from None
    return whatif(config, out=out, ray=ray, workers=workers, data_dir=data_dir, progress=progress)


def _check_routers(config: WhatIfConfig, scenario, config_path) -> None:
    """Every router planner of the sweep (``router``: the scenario's own; ``router:DIR``) reads and
    may plan this scenario (:func:`bicimad.jobs.policy_fit.check_router_fit`; its warnings go
    to the log), before any task runs."""
    for name in config.planners:
        if not is_router_name(name):
            continue
        try:
            check_router_planner(name, scenario)
        except (FileNotFoundError, ValueError, CommandError) as exc:
            raise CommandError(f"{config_path}: planners: {name}: {exc}", EXIT_USAGE) from None


def check_baseline(config: WhatIfConfig, scenario) -> BaselinePoint | None:
    """The config's baseline with the scenario's values filled in (none given: no-op where the
    sweep has it, else None); a ValueError naming the key if it is not a point of the sweep."""
    if config.baseline is None:
        return BaselinePoint() if BaselinePoint().planner in config.planners else None
    baseline = config.baseline.resolved(scenario)
    if baseline.planner not in config.planners:
        raise ValueError(f"baseline.planner: {baseline.planner!r} is not one of the planners {list(config.planners)}")
    if baseline.planner not in FLEET_FREE_PLANNERS:
        grid = config.grid.resolved(scenario)
        for name in FLEET_PARAMS:
            if getattr(baseline, name) not in getattr(grid, name):
                raise ValueError(f"baseline.{name}: {getattr(baseline, name)} is not in grid.{name} {list(getattr(grid, name))}")
    return baseline


def sweep_context(config: WhatIfConfig, scenario) -> dict[str, str]:
    """What a sweep simulated, for its report: city and dataset, days, scenario, planners."""
    if config.run:
        folders = run_folders(config.run)
        city = f"the networks, start states and forecasts of the nightly runs {', '.join(folders)}"
        days = f"{len(folders)} forecast day(s), one per run"
    else:
        city = (f"synthetic city (bicimad.opendata.synthetic), {scenario.network.stations} stations, "
                f"network seed {scenario.network.seed}; riders: the city's truth rates per day type")
        start = pd.Timestamp(config.start or DEFAULT_START)
        dates = [start + pd.Timedelta(days=d) for d in range(config.days)]
        days = ", ".join(f"{d:%a %Y-%m-%d}" for d in dates)
    return {"city and dataset": city, "days": days,
            "scenario": f"{scenario.name}: {scenario.description}".rstrip(": "),
            "planners": ", ".join(config.planners),
            "seeds": f"{config.seeds} seed indices from root seed {config.seed} (common random numbers)",
            "baseline": _describe(check_baseline(config, scenario)),
            "objective": "bicimad.sim.objective with the scenario's [reward] weights: "
                         + ", ".join(f"{k}={v:g}" for k, v in dataclasses.asdict(scenario.reward).items())}


def _describe(baseline: BaselinePoint | None) -> str:
    if baseline is None:
        return "none (no no-op in the sweep and no [baseline] given)"
    if baseline.planner in FLEET_FREE_PLANNERS:
        return f"{baseline.planner} (moves no bikes: any fleet)"
    return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(baseline).items())


def whatif(config: WhatIfConfig, *, out=None, ray: str | None = None, workers: int | None = None,
           data_dir=None, progress: bool = True) -> WhatIfResult:
    """Run the sweep (resuming from the tasks stored in ``out``) and write its outputs. Tasks of
    a planner that moves no bikes are simulated once per demand multiplier and seed."""
    scenario = load_scenario(config.scenario)
    if "ppo" in config.planners:
        check_sweep_policy(config, scenario)
    out = Path(out) if out else paths.runs_dir(data_dir) / "whatif" / config.name
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / "whatif.toml")
    tasks = make_tasks(config)
    answer = simulations(tasks)
    simulated = list(dict.fromkeys(answer.values()))
    workers = workers if workers is not None else config.workers
    log.info("%d tasks (%d scenario points x %d planners x %d seeds), %d simulated", len(tasks),
             len(tasks) // (len(config.planners) * config.seeds), len(config.planners), config.seeds, len(simulated))
    t0 = time.perf_counter()
    try:
        rows = run_sweep(simulated, simulate_task, out, workers=workers, ray_address=ray, progress=progress)
    except TaskFailed as exc:
        raise CommandError(f"{exc} (finished tasks are kept in {out / 'tasks'}; re-run to resume)",
                           EXIT_SOFTWARE) from None
    rows = expand_results(tasks, answer, rows)
    targets = {k: v for k, v in (("problem_share", config.target_problem_share),
                                 ("lost_trips_per_day", config.target_lost_trips)) if v is not None}
    written = write_outputs(rows, out, baseline=check_baseline(config, scenario), targets=targets,
                            context=sweep_context(config, scenario))
    needed = pd.read_csv(written["trucks_needed"]) if "trucks_needed" in written else None
    return WhatIfResult(rows=rows, written=written, seconds=time.perf_counter() - t0, simulated=len(simulated),
                        needed=needed)


def check_sweep_policy(config: WhatIfConfig, scenario) -> None:
    """``ppo`` plans with the scenario's own policy where there is one, else the committed default
    (:func:`bicimad.jobs.policy_fit.announce_policy`): refuse it (exit 2) unless every fleet of
    the grid and every network of the sweep is the one it was trained for
    (:mod:`bicimad.jobs.policy_fit`)."""
    folder = policy_folder(announce_policy(scenario))
    card = read_card(folder)
    grid = config.grid.resolved(scenario)
    for values in itertools.product(*(getattr(grid, name) for name in FLEET_PARAMS)):
        point = dict(zip(FLEET_PARAMS, values))
        where = f"grid point {', '.join(f'{k}={v}' for k, v in point.items())} of {config.name!r}"
        check_policy_fleet(folder, card, dataclasses.replace(scenario.fleet, **point), where, config.scenario, DEFAULT_POLICY_HINT)
    if config.run:
        for run in run_folders(config.run):
            try:
                source = run_network_source(run)
            except ValueError as exc:
                raise CommandError(f"run: {exc}", EXIT_USAGE) from None
            check_policy_network(folder, card, source, [(f"nightly run {run}", load_run_inputs(run)[0])],
                                 config.scenario, DEFAULT_POLICY_HINT)
    elif scenario.network.source == "synthetic":
        network = synthetic_network(scenario.network.stations, scenario.network.seed)
        check_policy_network(folder, card, "synthetic", [(f"the synthetic city of scenario {scenario.name!r}", network)],
                             config.scenario, DEFAULT_POLICY_HINT)


def simulate_task(task: Task) -> dict:
    """Simulate one task: the base scenario with the task's fleet and demand multiplier, driven
    by the task's planner, on the scenario's synthetic network or on a nightly run's network,
    start state and forecast (``task.run``). Day ``d`` of the task is an independent day
    (starting from the network's initial bikes) whose riders come from the task's seed and
    ``d`` only. ``objective`` is the declared objective (:func:`bicimad.sim.objective.objective`
    with the scenario's reward weights) of the task's days summed."""
    t0 = time.perf_counter()
    scenario = load_scenario(task.scenario).override({
        "fleet.trucks": task.trucks,
        "fleet.truck_capacity": task.truck_capacity,
        "fleet.visits_per_hour": task.visits_per_hour,
        "fleet.radius_km": task.radius_km,
        "fleet.initial_load": min(load_scenario(task.scenario).fleet.initial_load, task.truck_capacity),
        "fleet.bases": [],  # bases are chosen for the task's fleet size
        "riders.demand_multiplier": task.demand_scale,
    })
    day_seeds = [derive_seed(task.seed, day) for day in range(task.days)]
    rows = []
    for (network, demand), day_seed in zip(_day_inputs(task, scenario), day_seeds):
        # the planner sees the demand it is judged on: a what-if asks what the fleet could do
        result = run_episode(network, demand, None, scenario, planner_for(task.planner, scenario), seed=int(day_seed))
        rows.append(result.summary.iloc[0])
    days = pd.DataFrame(rows)
    counts = {k: int(days[k].sum()) for k in ("balanced", "empty", "full", "empty_and_full")}
    totals = {k: float(days[k].fillna(0.0).sum()) for k in ("lost_trips", "diverted_returns", "bikes_moved", "truck_km")}
    return {
        **counts,
        "problem_share": problem_share(counts),
        **totals,
        "objective": objective({**counts, **totals}, scenario.reward),
        "decision_s_per_hour": float(days["decision_s_per_hour"].mean()),
        "task_s": time.perf_counter() - t0,
    }


def _day_inputs(task: Task, scenario) -> list[tuple]:
    """(network, riders) of each simulated day of ``task``."""
    if task.run:
        return [load_run_inputs(folder) for folder in run_folders(task.run)]
    if scenario.network.source != "synthetic":
        raise ValueError(f"scenario {scenario.name!r} (network.source = {scenario.network.source!r}): "
                         "give a nightly run folder as `run` for a processed network")
    network = synthetic_network(scenario.network.stations, scenario.network.seed)
    start = pd.Timestamp(task.start or DEFAULT_START)
    return [(network, synthetic_demand(network, date=(start + pd.Timedelta(days=d)).date().isoformat(),
                                       seed=scenario.network.seed)) for d in range(task.days)]
