"""``bicimad train-router``: learn the router's cost-to-go (:mod:`bicimad.plan.router`).

The protocol of DESIGN.md: the search sees only the training period's days (``--period``),
each day's truth its own calibrated demand and each planner's view the forecast made from the
days before it (forecast ≠ truth); the parameters it ends with are chosen on the selection
period (``--select``, never trained on) among a few finalists; the test months are for
``bicimad compare`` only, which refuses the router on a day it trained or was selected on.

Each generation simulates every candidate on ``--days`` training days drawn for that generation
(the same days and rider draws for every candidate: common random numbers). The days are spread
over local worker processes (``--workers``) or the tasks of a Ray cluster (``--ray-address``);
each task is one candidate on one day and one draw, seeded by the day and the draw alone, so the
same seed gives the same router with any number of workers. A run that stops is resumed by
running it again: every finished generation is kept in ``OUT/search.json``.

Writes ``OUT/router.json`` (the parameters and their card), ``OUT/MODEL_CARD.md``,
``OUT/search.csv`` (every candidate's cost) and ``OUT/search.png`` (the learning curve).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bicimad.config import models_dir
from bicimad.errors import CommandError
from bicimad.io import atomic_open, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.batch import git_commit
from bicimad.jobs.compare import day_seed, load_daily_usage, parse_period, prepare_days
from bicimad.jobs.policy_fit import fleet_record
from bicimad.plan.ortools_planner import objective_weights
from bicimad.plan.router import GREEDY_START, ROUTER_FILE, SearchConfig, cross_entropy, router_planner
from bicimad.report.plots import _pyplot, _save
from bicimad.sim import run_episode
from bicimad.sim.objective import objective
from bicimad.sim.scenario import ScenarioError, load_scenario
from bicimad.sim.seeds import derive_seed

log = logging.getLogger(__name__)

SEARCH_FILE = "search.json"

# The days and scenario the worker processes simulate (set before the pool forks, or in each Ray task).
_WORK: dict = {}


def _simulate(task: tuple) -> float:
    """One candidate on one day and draw: the day's declared objective."""
    params, day_index, rider_seed = task
    scenario, days = _WORK["scenario"], _WORK["days"]
    day = days[day_index]
    planner = router_planner(params, **objective_weights(scenario.reward))
    result = run_episode(day.network, day.truth, day.forecast, scenario, planner, seed=rider_seed)
    return objective(result.summary.iloc[0], scenario.reward)


class _Runner:
    """Runs tasks in this process, on local worker processes, or as Ray tasks."""

    def __init__(self, scenario, days, workers: int, ray_address: str | None):
        _WORK.update(scenario=scenario, days=days)
        self.pool, self.ray = None, None
        if ray_address is not None:
            import ray

            from bicimad.plan.ray_envs import connect_ray
            self.started_ray = connect_ray(None if ray_address == "local" else ray_address, max(workers, 1))
            self.ray = ray
            inputs = ray.put((scenario, days))
            remote = ray.remote(num_cpus=1)(_ray_simulate)
            self.run = lambda tasks: ray.get([remote.remote(inputs, t) for t in tasks])
        elif workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
            self.run = lambda tasks: list(self.pool.map(_simulate, tasks, chunksize=1))
        else:
            self.run = lambda tasks: [_simulate(t) for t in tasks]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
        if self.ray is not None and self.started_ray:
            self.ray.shutdown()


def _ray_simulate(inputs, task):
    _WORK.update(scenario=inputs[0], days=inputs[1])
    return _simulate(task)


@dataclasses.dataclass(frozen=True)
class TrainRouterResult(JobResult):
    out: Path = Path(".")
    params: dict = dataclasses.field(default_factory=dict)
    selection: pd.DataFrame | None = None
    wall_s: float = 0.0

    def summary(self) -> str:
        lines = [f"router written to {self.out / ROUTER_FILE} ({self.wall_s:.0f} s)"]
        if self.selection is not None:
            lines.append("selection days, objective a day (lower is better):")
            lines.append(self.selection.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        lines.append("parameters: " + ", ".join(f"{k}={v:.3g}" for k, v in self.params.items()))
        return "\n".join(lines)


def generation_days(n_days: int, per_generation: int, seed: int, generation: int) -> list[int]:
    """The training days generation ``generation`` simulates (sorted; all days when fewer)."""
    if per_generation >= n_days:
        return list(range(n_days))
    rng = np.random.default_rng(derive_seed(seed, 7919 + generation))
    return sorted(rng.choice(n_days, per_generation, replace=False).tolist())


def _mean_costs(runner: _Runner, candidates: list[dict], day_indices: list[int], seeds: list[int]) -> list[float]:
    """Each candidate's mean objective a day over ``day_indices`` × ``seeds`` (rider draws)."""
    tasks = [(c, d, day_seed(s, d)) for c in candidates for d in day_indices for s in seeds]
    costs = np.asarray(runner.run(tasks), dtype=float).reshape(len(candidates), -1)
    return costs.mean(axis=1).tolist()


def _resume(path: Path, fingerprint: dict) -> dict[int, list[float]]:
    """Finished generations' costs from an earlier run with the same settings."""
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("settings") != fingerprint:
        raise CommandError(f"{path} is from a search with other settings: remove it, or choose another --out")
    return {int(k): v for k, v in saved.get("costs", {}).items()}


def train_router(scenario: str, period: str, *, select: str, out=None, seed: int = 0,
                 search: SearchConfig | None = None, days_per_generation: int = 8, draws: int = 1,
                 select_days: int = 10, workers: int = 1, ray_address: str | None = None, daily_usage=None,
                 history_days: int = 28, force: bool = False, data_dir=None, progress: bool = True) -> TrainRouterResult:
    """Learn the router on ``period`` and choose it on ``select`` (module docstring)."""
    search = search or SearchConfig()
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    start, end = parse_period(period)
    sel_start, sel_end = parse_period(select)
    if sel_start < end and start < sel_end:
        raise CommandError(f"--select {select} overlaps --period {period}: the router is chosen on days it never trained on")
    if days_per_generation < 1 or draws < 1 or select_days < 1 or workers < 1:
        raise CommandError("--days, --draws, --select-days and --workers must be >= 1")
    out = Path(out) if out else models_dir() / "routers" / f"{loaded.name}-seed{seed}"
    if (out / ROUTER_FILE).exists() and not force:
        raise CommandError(f"{out / ROUTER_FILE} exists: pass --force to replace it, or choose another --out")
    usage = load_daily_usage(daily_usage, data_dir) if loaded.network.source == "processed" else None
    if loaded.network.source == "processed" and usage is None:
        raise CommandError("train-router on processed data needs EMT's counted trips for each day's truth: "
                           "pass --daily-usage CSV (bici_disponibilidad_*.csv)")
    t0 = time.perf_counter()
    train, skipped = prepare_days(loaded, start, end, data_dir, history_days, daily_usage=usage)
    chosen, sel_skipped = prepare_days(loaded, sel_start, sel_end, data_dir, history_days, daily_usage=usage)
    if not train or not chosen:
        raise CommandError(f"no day to {'train' if not train else 'select'} on: " + "; ".join(skipped + sel_skipped))
    chosen = [chosen[i] for i in np.unique(np.linspace(0, len(chosen) - 1, min(select_days, len(chosen))).round().astype(int))]
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {"scenario": loaded.name, "period": period, "seed": seed, "search": dataclasses.asdict(search),
                   "days": days_per_generation, "draws": draws}
    done = _resume(out / SEARCH_FILE, fingerprint)
    draw_seeds = [derive_seed(seed, 104_729 + d) for d in range(draws)]
    runner = _Runner(loaded, train + chosen, workers, ray_address)
    bar = tqdm(total=search.generations, desc="router search", unit="gen", disable=not progress, initial=len(done))

    def evaluate(candidates, generation):
        if generation in done:
            return done[generation]
        picked = generation_days(len(train), days_per_generation, seed, generation)
        costs = _mean_costs(runner, candidates, picked, draw_seeds)
        done[generation] = costs
        write_json(out / SEARCH_FILE, {"settings": fingerprint, "costs": {str(k): v for k, v in done.items()}})
        bar.update()
        bar.set_postfix(best=f"{min(costs):.1f}", mean=f"{costs[0]:.1f}")
        return costs

    try:
        history = cross_entropy(evaluate, search, seed)
        bar.close()
        finalists = _finalists(history)
        sel_index = list(range(len(train), len(train) + len(chosen)))
        sel_costs = _mean_costs(runner, [p for _, p in finalists], sel_index, draw_seeds)
    finally:
        runner.close()
    selection = pd.DataFrame({"candidate": [n for n, _ in finalists], "objective_per_day": sel_costs})
    best = finalists[int(np.argmin(sel_costs[1:])) + 1]   # the plain greedy is the reference, not a choice
    card = {
        "kind": "router", "name": out.name, "params": best[1], "chosen": best[0], "scenario": loaded.name,
        "source": loaded.network.source, "fleet": fleet_record(loaded.fleet),
        "objective_weights": dataclasses.asdict(loaded.reward), "period": period,
        "days": [d.date for d in train], "selection_period": select, "selection_days": [d.date for d in chosen],
        "skipped": skipped + sel_skipped, "seed": seed, "search": dataclasses.asdict(search),
        "days_per_generation": days_per_generation, "draws": draws,
        "forecast": "the truth (a synthetic city has no forecast error)" if loaded.network.source == "synthetic"
        else f"cell rates of the {history_days} days before each day",
        "truth": "synthetic city" if usage is None else "each day's own demand, calibrated to EMT's counted trips",
        "selection": selection.to_dict(orient="records"), "git_commit": git_commit().get("commit"),
        "wall_s": time.perf_counter() - t0,
    }
    write_json(out / ROUTER_FILE, card)
    _write_search(out, history)
    _write_card(out, card)
    return TrainRouterResult(out=out, params=best[1], selection=selection, wall_s=card["wall_s"])


def _finalists(history: list[dict]) -> list[tuple[str, dict]]:
    """The plain greedy (reference), the search's final mean, and the best candidate of each of
    its last two generations."""
    finalists = [("greedy-objective (reference)", dict(GREEDY_START)), ("final mean", history[-1]["mean"])]
    for record in history[-3:-1]:
        finalists.append((f"best of generation {record['generation']}", record["best"]))
    return finalists


def _write_search(out: Path, history: list[dict]) -> None:
    rows = [{"generation": r["generation"], "candidate": i, "cost": c["cost"], **c["params"]}
            for r in history if "candidates" in r for i, c in enumerate(r["candidates"])]
    frame = pd.DataFrame(rows)
    with atomic_open(out / "search.csv") as fh:
        frame.to_csv(fh, index=False)
    plot_search(frame, out / "search.png")


def plot_search(frame: pd.DataFrame, path: Path) -> Path:
    """The search by generation (``search.csv``'s rows): each candidate's objective against the
    search's mean (candidate 0) on the same days and draws. Each generation simulates its own
    days, so costs are compared within a generation only; the selection table on the card
    compares the finalists on common days."""
    mean = frame[frame["candidate"] == 0].set_index("generation")["cost"]
    relative = 100 * (frame["cost"] / frame["generation"].map(mean) - 1)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(frame["generation"], relative, s=10, alpha=0.5, label="candidates")
    best = relative.groupby(frame["generation"]).min()
    ax.plot(best.index, best.values, marker="o", label="best candidate")
    ax.axhline(0, color="grey", lw=1)
    ax.set_ylim(max(float(relative.min()) - 1, -30), min(float(relative.max()) + 1, 30))
    ax.set_xlabel("generation")
    ax.set_ylabel("objective vs the search's mean (%)")
    ax.set_title("Router search: candidates against the mean on the same days")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _write_card(out: Path, card: dict) -> None:
    lines = [
        f"# Router `{card['name']}`", "",
        "The greedy router on the declared objective with a learnt cost-to-go (`bicimad.plan.router`).", "",
        f"- Scenario: `{card['scenario']}` ({card['source']}); fleet: {card['fleet']}",
        f"- Trained on {card['period']} ({len(card['days'])} days; {card['days_per_generation']} a generation, "
        f"{card['draws']} rider draw(s)); forecast: {card['forecast']}; truth: {card['truth']}",
        f"- Chosen on {card['selection_period']} ({len(card['selection_days'])} days), among the finalists below",
        f"- Seed {card['seed']}; search {card['search']}; code {card['git_commit']}; {card['wall_s']:.0f} s of training", "",
        "| finalist | objective a day on the selection days |", "|---|---|",
        *[f"| {r['candidate']} | {r['objective_per_day']:.1f} |" for r in card["selection"]], "",
        f"Chosen: {card['chosen']}.", "",
        "| parameter | value |", "|---|---|", *[f"| {k} | {v:.4g} |" for k, v in card["params"].items()], "",
        "Test months: results belong in BENCHMARKS.md, measured with `bicimad compare --planners ...,router:DIR` "
        "on days the router neither trained nor was chosen on.",
    ]
    with atomic_open(out / "MODEL_CARD.md") as fh:
        fh.write("\n".join(lines) + "\n")
