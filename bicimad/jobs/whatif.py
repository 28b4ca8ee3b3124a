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

import dataclasses
import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

#: Result columns that measure wall time: they differ between otherwise identical runs.
TIMING_COLUMNS = ("decision_s_per_hour", "task_s")

#: The scenario parameters a sweep varies, in the order of a task id.
GRID_PARAMS = ("trucks", "truck_capacity", "visits_per_hour", "radius_km", "demand_scale")


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """The values each scenario parameter takes (the sweep is their product)."""

    trucks: tuple[int, ...] = (0, 2, 4, 6, 8, 10, 12)
    """number of trucks"""
    truck_capacity: tuple[int, ...] = (22,)
    """bikes a truck carries at most"""
    visits_per_hour: tuple[int, ...] = (2,)
    """station visits per truck and hour at most"""
    radius_km: tuple[float, ...] = (3.5,)
    """action radius around each truck's base"""
    demand_scale: tuple[float, ...] = (1.0,)
    """multiplier on the forecast pickup and return rates"""

    def validate(self) -> None:
        for name in GRID_PARAMS:
            values = getattr(self, name)
            if not values:
                raise ValueError(f"grid.{name}: needs at least one value")
            if len(set(values)) < len(values):
                raise ValueError(f"grid.{name}: repeated value in {list(values)}")
            if any(v < 0 for v in values):
                raise ValueError(f"grid.{name}: values must be >= 0, got {list(values)}")


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
    import numpy as np

    return int(np.random.SeedSequence(root, spawn_key=(index,)).generate_state(1, dtype=np.uint32)[0])


def make_tasks(config: WhatIfConfig) -> list[Task]:
    """Every task of the sweep, in a fixed order."""
    seeds = [task_seed(config.seed, i) for i in range(config.seeds)]
    # absolute paths: workers may start in another folder
    run = str(Path(config.run).resolve()) if config.run else None
    scenario = str(Path(config.scenario).resolve()) if Path(config.scenario).is_file() else config.scenario
    grid = config.grid
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
    from bicimad.io import atomic_open

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
    import concurrent.futures as cf
    import multiprocessing

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
    import ray

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
    from tqdm import tqdm

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
    import pandas as pd

    from bicimad.report.occupancy import mean_interval

    keys = ["planner", *GRID_PARAMS]
    rows = []
    for key, group in results.groupby(keys, sort=False):
        mean, lo, hi = mean_interval(group["problem_share"])
        rows.append({**dict(zip(keys, key)), "seeds": len(group), "mean": mean, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=[*keys, "seeds", "mean", "lo", "hi"])


def write_outputs(rows: list[dict], out: str | os.PathLike) -> dict[str, Path]:
    """Write the results table, the intervals and the plots; return their paths by kind."""
    import pandas as pd

    from bicimad.io import atomic_path
    from bicimad.report.html import build_sweep_report
    from bicimad.report.plots import plot_share_vs_trucks

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

def register(sub) -> None:
    parser = sub.add_parser(
        "whatif", help="sweep fleet scenarios x planners x seeds (local cores or a Ray cluster)",
        description="Sweep scenario parameters (trucks, capacity, visits per hour, radius, demand "
        "multiplier) x planners x seeds, in parallel on local cores or on a Ray cluster, and write "
        "a tidy results table, intervals over seeds and plots. Finished tasks are kept and "
        "skipped on a re-run.",
    )
    parser.add_argument("--config", default="pipelines/whatif-fleet.toml",
                        help="sweep definition (TOML; default pipelines/whatif-fleet.toml)")
    parser.add_argument("--out", default=None, help="output folder (default: <data-dir>/runs/whatif/<name>)")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run on a Ray cluster: an address, 'auto', or 'local' for a fresh local one")
    parser.add_argument("--workers", type=int, default=None,
                        help="local worker processes (default: the config's; 0 = one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    import time

    from bicimad import config as paths
    from bicimad.errors import CommandError
    from bicimad.jobs.batch import EXIT_SOFTWARE, EXIT_USAGE, ConfigError, load_config, write_config

    try:
        config = load_config(WhatIfConfig, args.config)
    except ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    try:
        from bicimad.sim import load_scenario

        load_scenario(config.scenario)
    except ValueError as exc:
        raise CommandError(f"{args.config}: scenario: {exc}", EXIT_USAGE) from None
    if config.run:
        from bicimad.jobs.nightly import load_run_inputs

        try:
            load_run_inputs(config.run)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(f"{args.config}: run: {exc}", EXIT_USAGE) from None
    out = Path(args.out) if args.out else paths.runs_dir(args.data_dir) / "whatif" / config.name
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / "whatif.toml")
    tasks = make_tasks(config)
    workers = args.workers if args.workers is not None else config.workers
    log.info("%d tasks (%d scenario points x %d planners x %d seeds)", len(tasks),
             len(tasks) // (len(config.planners) * config.seeds), len(config.planners), config.seeds)
    t0 = time.perf_counter()
    try:
        rows = run_sweep(tasks, simulate_task, out, workers=workers, ray_address=args.ray,
                         progress=not args.no_progress)
    except TaskFailed as exc:
        raise CommandError(f"{exc} (finished tasks are kept in {out / 'tasks'}; re-run to resume)",
                           EXIT_SOFTWARE) from None
    wall = time.perf_counter() - t0
    written = write_outputs(rows, out)
    print(f"{len(rows)} tasks, {sum(r['days'] for r in rows)} scenario-days in {wall:.1f} s")
    print(f"results: {written['results_csv'].resolve()}")
    print(f"intervals: {written['intervals'].resolve()}")
    print(f"report: {written['report'].resolve()}")
    return 0



def simulate_task(task: Task) -> dict:
    """Simulate one task: the base scenario with the task's fleet and demand multiplier, driven
    by the task's planner, on the scenario's synthetic network or on a nightly run's network,
    start state and forecast (``task.run``). Day ``d`` of the task is an independent day
    (starting from the network's initial bikes) whose riders come from the task's seed and
    ``d`` only."""
    import time

    import numpy as np
    import pandas as pd

    from bicimad.plan import make_planner
    from bicimad.sim import load_scenario, run_episode
    from bicimad.sim.network import synthetic_network
    from bicimad.sim.riders import synthetic_demand

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
        from bicimad.jobs.nightly import load_run_inputs

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
    total = sum(counts.values())
    return {
        **counts,
        "problem_share": (total - counts["balanced"]) / total if total else math.nan,
        **{k: float(days[k].sum()) for k in ("lost_trips", "diverted_returns", "bikes_moved", "truck_km")},
        "decision_s_per_hour": float(days["decision_s_per_hour"].mean()),
        "task_s": time.perf_counter() - t0,
    }
