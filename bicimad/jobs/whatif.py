"""``bicimad whatif --config pipelines/whatif-fleet.toml``: sweep fleet scenarios.

The sweep is the product of the grid's parameters (trucks, truck capacity, visits per hour,
action radius, demand multiplier) × planners × seeds. Each task simulates ``days`` scenario
days, on the scenario's synthetic network or on a nightly run folder's network, start state
and forecast (``run``), and returns one tidy row. Tasks run in a local process pool by default,
or on a Ray cluster with ``--ray ADDRESS`` (``auto``: the cluster this machine belongs to;
``local``: a fresh local one; the cluster's workers need this package installed and, with
``run``, the run folder at the same path). Either way the results are identical for identical
seeds:

- a task's seed depends only on the config's ``seed`` and the task's seed index
  (``numpy.random.SeedSequence(seed, spawn_key=(index,))``), never on the worker or the
  order of completion; every planner and fleet size with the same index therefore sees the
  same demand draws (common random numbers), so differences between them are not noise;
- each finished task is stored as ``tasks/<task_id>.json`` in the output folder (written
  atomically by the driver) and skipped when the sweep is run again, so an interrupted sweep
  resumes where it stopped.

Outputs: ``results.parquet`` and ``results.csv`` (one row per task), ``intervals.csv`` (mean
problem share and its 95 % interval over seeds per planner and scenario point), a plot of the
problem share against trucks per planner for each combination of the other parameters,
``report.html`` (the plots and the intervals), and the config as ``whatif.toml``.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
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
from bicimad.io import atomic_open, atomic_path
from bicimad.jobs import JobResult
from bicimad.jobs.batch import ConfigError, load_config, write_config
from bicimad.jobs.nightly import load_run_inputs
from bicimad.plan import PLANNER_NAMES, make_planner
from bicimad.report.html import build_sweep_report
from bicimad.report.occupancy import mean_interval, problem_share
from bicimad.report.plots import plot_share_vs_trucks
from bicimad.sim import load_scenario, run_episode
from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand

log = logging.getLogger(__name__)

#: Result columns that measure wall time: they differ between otherwise identical runs.
TIMING_COLUMNS = ("decision_s_per_hour", "task_s")

#: The scenario parameters a sweep varies, in the order of a task id.
GRID_PARAMS = ("trucks", "truck_capacity", "visits_per_hour", "radius_km", "demand_scale")


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
class WhatIfConfig:
    """A what-if sweep, loaded from TOML (see pipelines/whatif-fleet.toml)."""
    name: str = "whatif"
    """name of the sweep (the default output folder is runs/whatif/<name>)"""
    scenario: str = "synthetic-default"
    """base scenario: a name in sim/scenarios/ or a path to a scenario TOML"""
    start: str | None = None
    """first simulated day (YYYY-MM-DD) of a synthetic network; default 2018-09-27"""
    run: str | None = None
    """a finished nightly run folder: sweep on its network, start state and forecast day
    instead of the scenario's synthetic ones (then days must be 1)"""
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
    def validate(self) -> None:
        if self.days < 1:
            raise ValueError("days: must be >= 1")
        if self.seeds < 1:
            raise ValueError("seeds: must be >= 1")
        if not self.planners:
            raise ValueError("planners: needs at least one planner")
        if self.workers < 0:
            raise ValueError("workers: must be >= 0")
        if self.run is not None and self.days != 1:
            raise ValueError("days: a nightly run folder holds one forecast day; days must be 1 with run")


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
        return (f"{self.planner}-t{self.trucks}-c{self.truck_capacity}-v{self.visits_per_hour}"
                f"-r{self.radius_km:g}-d{self.demand_scale:g}-s{self.seed_index}")


def task_seed(root: int, index: int) -> int:
    """The seed of seed index ``index``: independent streams from one root, the same on every
    machine and in every order."""
    return int(np.random.SeedSequence(root, spawn_key=(index,)).generate_state(1, dtype=np.uint32)[0])


def make_tasks(config: WhatIfConfig) -> list[Task]:
    """Every task of the sweep, in a fixed order."""
    seeds = [task_seed(config.seed, i) for i in range(config.seeds)]
    # absolute paths: workers may start in another folder
    run = str(Path(config.run).resolve()) if config.run else None
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


def _iter_ray(fn, tasks: list[Task], address: str, workers: int):
    """(task, result) as tasks finish on a Ray cluster (``local``: start one with ``workers`` CPUs)."""
    import ray  # only for sweeps on Ray: a heavy import

    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(fn)
        pending = {remote.remote(task): task for task in tasks}
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

    ``fn`` must be a picklable top-level function of the task alone (and seeded by
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
# Results: tidy table, intervals over seeds, plots
# ---------------------------------------------------------------------------------------------

def interval_table(results):
    """Mean problem share and its 95 % interval over seeds, per planner and scenario point."""
    keys = ["planner", *GRID_PARAMS]
    rows = []
    for key, group in results.groupby(keys, sort=False):
        mean, lo, hi = mean_interval(group["problem_share"])
        rows.append({**dict(zip(keys, key)), "seeds": len(group), "mean": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=[*keys, "seeds", "mean", "lo", "hi"])


def write_outputs(rows: list[dict], out: str | os.PathLike) -> dict[str, Path]:
    """Write the results table, the intervals and the plots; return their paths by kind."""
    out = Path(out)
    results = pd.DataFrame(rows)
    paths = {"results_parquet": out / "results.parquet", "results_csv": out / "results.csv",
             "intervals": out / "intervals.csv"}
    with atomic_path(paths["results_parquet"]) as tmp:
        results.to_parquet(tmp, index=False)
    with atomic_path(paths["results_csv"]) as tmp:
        results.to_csv(tmp, index=False)
    intervals = interval_table(results)
    with atomic_path(paths["intervals"]) as tmp:
        intervals.to_csv(tmp, index=False)
    others = [p for p in GRID_PARAMS if p != "trucks"]
    for values, group in intervals.groupby(others, sort=False):
        point = dict(zip(others, values))
        suffix = "-".join(f"{k}{v:g}" for k, v in point.items())
        title = "Problem share against trucks (" + ", ".join(f"{k}={v:g}" for k, v in point.items()) + ")"
        paths[f"plot {suffix}"] = plot_share_vs_trucks(group, out / f"share_vs_trucks-{suffix}.png", title=title)
    plots = [p for k, p in paths.items() if k.startswith("plot ")]
    paths["report"] = build_sweep_report(intervals, plots, out / "report.html")
    return paths


def throughput(rows: Iterable[dict], wall_s: float) -> float:
    """Scenario-days simulated per minute of wall time."""
    days = sum(r["days"] for r in rows)
    return days / wall_s * 60 if wall_s > 0 else math.nan


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WhatIfResult(JobResult):
    """A finished sweep: one row per task, and the files written."""
    rows: list[dict]
    written: dict[str, Path]
    seconds: float

    def summary(self) -> str:
        return "\n".join([
            f"{len(self.rows)} tasks, {sum(r['days'] for r in self.rows)} scenario-days in {self.seconds:.1f} s",
            f"results: {self.written['results_csv'].resolve()}",
            f"intervals: {self.written['intervals'].resolve()}",
            f"report: {self.written['report'].resolve()}"])


def whatif_command(config_path: str, *, out=None, ray: str | None = None, workers: int | None = None,
                   data_dir=None, progress: bool = True) -> WhatIfResult:
    """The command line's entry: load and check the sweep's config file, then run it."""
    try:
        config = load_config(WhatIfConfig, config_path)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    try:
        load_scenario(config.scenario)
    except ValueError as exc:
        raise CommandError(f"{config_path}: scenario: {exc}", EXIT_USAGE) from None
    unknown = [name for name in config.planners if name not in PLANNER_NAMES]
    if unknown:
        raise CommandError(f"{config_path}: planners: unknown planner {unknown[0]!r}; known: {', '.join(PLANNER_NAMES)}",
                           EXIT_USAGE)
    if config.run:
        try:
            load_run_inputs(config.run)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"{config_path}: run: {exc}", EXIT_USAGE) from None
    return whatif(config, out=out, ray=ray, workers=workers, data_dir=data_dir, progress=progress)


def whatif(config: WhatIfConfig, *, out=None, ray: str | None = None, workers: int | None = None,
           data_dir=None, progress: bool = True) -> WhatIfResult:
    """Run the sweep (resuming from the tasks stored in ``out``) and write its outputs."""
    out = Path(out) if out else paths.runs_dir(data_dir) / "whatif" / config.name
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / "whatif.toml")
    tasks = make_tasks(config)
    workers = workers if workers is not None else config.workers
    log.info("%d tasks (%d scenario points x %d planners x %d seeds)", len(tasks),
             len(tasks) // (len(config.planners) * config.seeds), len(config.planners), config.seeds)
    t0 = time.perf_counter()
    try:
        rows = run_sweep(tasks, simulate_task, out, workers=workers, ray_address=ray, progress=progress)
    except TaskFailed as exc:
        raise CommandError(f"{exc} (finished tasks are kept in {out / 'tasks'}; re-run to resume)",
                           EXIT_SOFTWARE) from None
    return WhatIfResult(rows=rows, written=write_outputs(rows, out), seconds=time.perf_counter() - t0)


def simulate_task(task: Task) -> dict:
    """Simulate one task: the base scenario with the task's fleet and demand multiplier, driven
    by the task's planner, on the scenario's synthetic network or on a nightly run's network,
    start state and forecast (``task.run``). Day ``d`` of the task is an independent day
    (starting from the network's initial bikes) whose riders come from the task's seed and
    ``d`` only."""
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
    if task.run:
        network, demand = load_run_inputs(task.run)
        day_inputs = [(network, demand)]
    else:
        if scenario.network.source != "synthetic":
            raise ValueError(f"scenario {scenario.name!r} (network.source = {scenario.network.source!r}): "
                             "give a nightly run folder as `run` for a processed network")
        network = synthetic_network(scenario.network.stations, scenario.network.seed)
        start = pd.Timestamp(task.start or "2018-09-27")
        day_inputs = [(network, synthetic_demand(network, date=(start + pd.Timedelta(days=d)).date().isoformat(),
                                                 seed=scenario.network.seed)) for d in range(task.days)]
    day_seeds = np.random.SeedSequence(task.seed).generate_state(task.days, dtype=np.uint32)
    rows = []
    for (network, demand), day_seed in zip(day_inputs, day_seeds):
        # the planner sees the demand it is judged on: a what-if asks what the fleet could do
        result = run_episode(network, demand, None, scenario, make_planner(task.planner), seed=int(day_seed))
        rows.append(result.summary.iloc[0])
    days = pd.DataFrame(rows)
    counts = {k: int(days[k].sum()) for k in ("balanced", "empty", "full", "empty_and_full")}
    return {
        **counts,
        "problem_share": problem_share(counts),
        **{k: float(days[k].sum()) for k in ("lost_trips", "diverted_returns", "bikes_moved", "truck_km")},
        "decision_s_per_hour": float(days["decision_s_per_hour"].mean()),
        "task_s": time.perf_counter() - t0,
    }
