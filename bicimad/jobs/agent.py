"""``bicimad train-agent``: train the PPO fleet policy in the simulator and write its model card.

The policy is trained on the demand of ``--period`` (a synthetic scenario: its generated days;
a processed one: each day's rates fitted to the days before it, i.e. the forecasts a planner
would have had) and evaluated on other rider draws of the same days against no-op and the
OR-Tools planner. Everything goes to ``models/policies/<run>/``: the policy (``policy.pt``,
``policy.json``), ``MODEL_CARD.md`` and ``model_card.json`` (scenario, data span, steps, seeds,
results, and the fleet and network fingerprint every job that plans with the policy checks:
:mod:`bicimad.jobs.policy_fit`), ``scenario.toml`` and PPO's metrics, learning curve and
checkpoint in ``ppo/``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bicimad.config import models_dir
from bicimad.errors import CommandError
from bicimad.io import atomic_open, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.batch import git_commit
from bicimad.jobs.compare import parse_period, prepare_days, run_comparison
from bicimad.jobs.policy_fit import fleet_record, network_fingerprint
from bicimad.plan import make_planner, planner_for
from bicimad.plan.policy import ObservationConfig, PolicyPlanner, load_policy
from bicimad.plan.training import TrainingConfig, train_fleet_policy
from bicimad.sim.network import Network
from bicimad.sim.riders import Demand
from bicimad.sim.scenario import ScenarioError, load_scenario, write_scenario

CARD = """# Fleet policy `{run}`

PPO fleet agent (parameters shared across trucks; each truck scores its {candidates} candidate
stations within its radius; masked MultiDiscrete actions), trained in the simulator.

| | |
|---|---|
| scenario | `{scenario}` ({trucks} trucks x {truck_capacity} bikes, {visits} visits/h, {radius} km) |
| training data | {period} ({source}; {n_days} day(s): {first}..{last}) |
| training network | {stations} stations (the last training day's; each day's demand moved onto them) |
| imitation warm start | {imitation} |
| PPO steps | {steps} fleet-hours ({envs} envs, seed {seed}) |
| rollout | {rollout} |
| training wall time | {wall_s:.0f} s |
| evaluation | {eval_days} training day(s) x seeds {eval_seeds} (other rider draws of days it trained on: a check, not a test) |

## Results (problem share of station-hours, mean over evaluation seeds)

| planner | problem share | lost trips | bikes moved |
|---|---|---|---|
{rows}

{verdict}
Written by `bicimad train-agent` at commit `{commit}`.
"""


def on_network(demand: Demand, source: Network, target: Network) -> Demand:
    """``demand`` of the stations of ``source`` moved onto those of ``target``: a station of
    ``target`` that ``source`` lacks gets rate 0, a station ``target`` lacks is dropped (with
    the trips it would start or end). Returns ``demand`` itself when the stations are the same."""
    if np.array_equal(source.station_ids, target.station_ids):
        return demand
    column = pd.Index(source.station_ids).get_indexer(target.station_ids)
    known, take = column >= 0, np.maximum(column, 0)

    def move(rates):
        return np.where(known[None, :], np.asarray(rates)[:, take], 0.0)

    od = None
    if demand.od is not None:
        od = np.asarray(demand.od)[..., take, :][..., take] * known[:, None] * known[None, :]
    return Demand(demand.hours, move(demand.pickup_rate), move(demand.return_rate), od)


def evaluate(scenario, days, planners: dict, seeds: list[int]) -> dict:
    """Mean problem share, lost trips and bikes moved per planner over ``days`` x ``seeds``."""
    per_seed, _, _ = run_comparison(scenario, days, planners, seeds, progress=False)
    return {name: {col: float(np.mean(group[col])) for col in ("problem_share", "lost_trips", "bikes_moved")}
            for name, group in per_seed.groupby("planner", sort=False)}


@dataclasses.dataclass(frozen=True)
class TrainedPolicy(JobResult):
    """A trained fleet policy: its folder and its evaluation (planner -> mean metrics)."""

    out: Path
    results: dict

    def summary(self) -> str:
        lines = [f"{name:8s} problem share {r['problem_share']:.2%}  lost trips {r['lost_trips']:.0f}"
                 for name, r in self.results.items()]
        return "\n".join([*lines, f"wrote {self.out}"])


def _rollout(card: dict) -> str:
    """Where the envs ran, in words."""
    if not card["workers"]:
        return "envs in the training process"
    where = card["ray_address"] or "a local cluster"
    return f"envs split over {card['workers']} Ray worker(s) on {where}; the learner in the training process"


def _write_card(out: Path, card: dict, scenario, same, eval_days) -> None:
    results = card["evaluation"]["results"]
    share = {name: r["problem_share"] for name, r in results.items()}
    rows = "\n".join(f"| {name} | {r['problem_share']:.2%} | {r['lost_trips']:.0f} | {r['bikes_moved']:.0f} |"
                     for name, r in results.items())
    fleet = scenario.fleet
    imitate = card["imitation_days"]
    with atomic_open(out / "MODEL_CARD.md") as fh:
        fh.write(CARD.format(
            run=card["run"], candidates=card["candidates"], scenario=scenario.name, trucks=fleet.trucks,
            truck_capacity=fleet.truck_capacity, visits=fleet.visits_per_hour, radius=fleet.radius_km,
            period=card["period"], source=scenario.network.source, n_days=len(same), first=same[0].date,
            last=same[-1].date, imitation=f"{imitate} day(s) of OR-Tools demonstrations" if imitate else "none",
            steps=card["steps"], envs=card["envs"], seed=card["seed"], rollout=_rollout(card), wall_s=card["wall_s"],
            eval_days=len(eval_days),
            eval_seeds=card["evaluation"]["seeds"], rows=rows or "| (not evaluated) | | | |",
            stations=card["network"]["stations"],
            verdict=(f"PPO vs no-op: {share['ppo'] / share['noop'] - 1:+.1%} problem station-hours; PPO vs OR-Tools: "
                     f"{share['ppo'] / share['ortools'] - 1:+.1%} (on training days)." if share else
                     "Not evaluated at training (`--eval-seeds 0`): test it with `bicimad compare` on months it never saw."),
            commit=(card["git_commit"] or "unknown")[:7],
        ))


def train_agent(scenario: str = "synthetic-default", period: str = "2018-09-24:2018-09-28", *, steps: int = 20_000,
                envs: int = 8, imitate: int = 2, candidates: int = 16, seed: int = 0, run: str | None = None,
                out=None, eval_days: int = 2, eval_seeds: int = 2, force: bool = False, data_dir=None,
                workers: int = 0, ray_address: str | None = None, progress: bool = True) -> TrainedPolicy:
    """Train the PPO fleet policy on ``period``'s demand, evaluate it and write its folder.

    ``workers`` > 0 splits the envs over that many Ray actors (on the cluster at ``ray_address``,
    None: a fresh local one); the same seed gives the same policy with any number of workers."""
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    if steps < 0 or envs < 1 or candidates < 1 or imitate < 0:
        raise CommandError("--steps and --imitate must be >= 0, --envs and --candidates >= 1")
    if not 0 <= workers <= envs:
        raise CommandError(f"--workers must be from 0 (envs in this process) to --envs ({envs}), got {workers}")
    if ray_address is not None and workers == 0:
        raise CommandError("--ray-address needs --workers >= 1")
    start, end = parse_period(period)
    days, skipped = prepare_days(loaded, start, end, data_dir)
    if not days:
        raise CommandError(f"no day of {period} can be simulated: " + "; ".join(skipped or ["empty period"]))
    run_name = run or f"{loaded.name}-seed{seed}"
    out = Path(out) if out else models_dir() / "policies" / run_name
    if (out / "policy.pt").exists() and not force:
        raise CommandError(f"{out} already holds a policy (use --force to replace it)")

    # Train on what a planner sees: the forecast where there is one (processed data), else
    # the synthetic truth. Real networks change from day to day (stations opened, closed, out of
    # service): every day is trained on the last day's network, its demand moved onto it.
    network = days[-1].network
    training_days = [(demand, demand) for demand in
                     (on_network(d.forecast or d.truth, d.network, network) for d in days)]
    config = TrainingConfig(seed=seed, total_steps=steps, num_envs=envs, imitation_days=imitate,
                            workers=workers, ray_address=ray_address,
                            observation=ObservationConfig(candidates=candidates,
                                                          visits_per_hour=loaded.fleet.visits_per_hour))
    t0 = time.perf_counter()
    report = train_fleet_policy(loaded, network, training_days, config, out, progress=progress)
    wall_s = time.perf_counter() - t0

    evaluated = days[:eval_days]
    seeds = list(range(10_000 + seed, 10_000 + seed + eval_seeds))
    planners = {"noop": make_planner("noop"), "ortools": planner_for("ortools", loaded),
                "ppo": PolicyPlanner(load_policy(out))}
    results = evaluate(loaded, evaluated, planners, seeds) if eval_seeds and evaluated else {}
    card = {
        "run": run_name, "scenario": loaded.name, "period": period, "source": loaded.network.source,
        "days": [d.date for d in days], "skipped_days": skipped, "seed": seed, "steps": steps,
        "envs": envs, "workers": workers, "ray_address": ray_address, "imitation_days": imitate,
        "candidates": candidates,
        "fleet": fleet_record(loaded.fleet), "network": network_fingerprint(network, loaded.network.source,
                                                                        with_ids=loaded.network.source == "processed"),
        "training": report, "wall_s": wall_s, "evaluation": {"days": [d.date for d in evaluated],
                                                            "seeds": seeds, "results": results},
        "git_commit": git_commit().get("commit"),
    }
    write_json(out / "model_card.json", card)
    write_scenario(loaded, out / "scenario.toml")
    _write_card(out, card, loaded, days, evaluated)
    return TrainedPolicy(out=out, results=results)
