"""``bicimad train-agent``: train the PPO fleet policy in the simulator and write its model card.

The policy is trained on the demand of ``--period`` (a synthetic scenario: its generated days;
a processed one: each day's rates fitted to the days before it, i.e. the forecasts a planner
would have had) and evaluated on other rider draws of the same days against no-op and the
OR-Tools planner. Everything goes to ``models/policies/<run>/``: the policy (``policy.pt``,
``policy.json``), ``MODEL_CARD.md`` and ``model_card.json`` (scenario, data span, steps, seeds,
results), ``scenario.toml`` and PPO's metrics, learning curve and checkpoint in ``ppo/``.
"""

from __future__ import annotations

import time
from pathlib import Path

from bicimad.errors import CommandError

CARD = """# Fleet policy `{run}`

PPO fleet agent (parameters shared across trucks; each truck scores its {candidates} candidate
stations within its radius; masked MultiDiscrete actions), trained in the simulator.

| | |
|---|---|
| scenario | `{scenario}` ({trucks} trucks x {truck_capacity} bikes, {visits} visits/h, {radius} km) |
| training data | {period} ({source}; {n_days} day(s): {first}..{last}) |
| imitation warm start | {imitation} |
| PPO steps | {steps} fleet-hours ({envs} envs, seed {seed}) |
| training wall time | {wall_s:.0f} s |
| evaluation | {eval_days} day(s) x seeds {eval_seeds} (rider draws not used in training) |

## Results (problem share of station-hours, mean over evaluation seeds)

| planner | problem share | lost trips | bikes moved |
|---|---|---|---|
{rows}

PPO vs no-op: {vs_noop:+.1%} problem station-hours; PPO vs OR-Tools: {vs_ortools:+.1%}.
Written by `bicimad train-agent` at commit `{commit}`.
"""


def evaluate(scenario, days, planners: dict, seeds: list[int]) -> dict:
    """Mean problem share, lost trips and bikes moved per planner over ``days`` x ``seeds``."""
    import numpy as np

    from bicimad.jobs.compare import run_comparison

    per_seed, _ = run_comparison(scenario, days, planners, seeds, progress=False)
    return {name: {col: float(np.mean(group[col])) for col in ("problem_share", "lost_trips", "bikes_moved")}
            for name, group in per_seed.groupby("planner", sort=False)}


def run(args) -> int:
    import subprocess

    import numpy as np

    from bicimad.config import models_dir
    from bicimad.io import atomic_open, write_json
    from bicimad.jobs.compare import parse_period, prepare_days
    from bicimad.plan import make_planner
    from bicimad.plan.policy import ObservationConfig, PolicyPlanner, load_policy
    from bicimad.plan.training import TrainingConfig, train_fleet_policy
    from bicimad.sim.scenario import ScenarioError, load_scenario, write_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc)) from None
    if args.steps < 0 or args.envs < 1:
        raise CommandError("--steps must be >= 0 and --envs >= 1")
    start, end = parse_period(args.period)
    days, skipped = prepare_days(scenario, start, end, args.data_dir)
    if not days:
        raise CommandError(f"no day of {args.period} can be simulated: " + "; ".join(skipped or ["empty period"]))
    run_name = args.run or f"{scenario.name}-seed{args.seed}"
    out = Path(args.out) if args.out else models_dir() / "policies" / run_name
    if (out / "policy.pt").exists() and not args.force:
        raise CommandError(f"{out} already holds a policy (use --force to replace it)")

    # Train on what a planner sees: the forecast where there is one (processed data), else
    # the synthetic truth; on the first day's stations (days with other stations are left out).
    same = [d for d in days if np.array_equal(d.network.station_ids, days[0].network.station_ids)]
    training_days = [(d.forecast or d.truth, d.forecast or d.truth) for d in same]
    config = TrainingConfig(seed=args.seed, total_steps=args.steps, num_envs=args.envs,
                            imitation_days=args.imitate, observation=ObservationConfig(
                                candidates=args.candidates, visits_per_hour=scenario.fleet.visits_per_hour))
    t0 = time.perf_counter()
    report = train_fleet_policy(scenario, days[0].network, training_days, config, out, progress=not args.no_progress)
    wall_s = time.perf_counter() - t0

    eval_days = days[: args.eval_days]
    eval_seeds = list(range(10_000 + args.seed, 10_000 + args.seed + args.eval_seeds))
    planners = {"noop": make_planner("noop"), "ortools": make_planner("ortools"),
                "ppo": PolicyPlanner(load_policy(out))}
    results = evaluate(scenario, eval_days, planners, eval_seeds) if args.eval_seeds else {}

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    card = {
        "run": run_name, "scenario": scenario.name, "period": args.period, "source": scenario.network.source,
        "days": [d.date for d in same], "skipped_days": skipped, "seed": args.seed, "steps": args.steps,
        "envs": args.envs, "imitation_days": args.imitate, "candidates": args.candidates,
        "training": report, "wall_s": wall_s, "evaluation": {"days": [d.date for d in eval_days],
                                                            "seeds": eval_seeds, "results": results},
        "git_commit": commit,
    }
    write_json(out / "model_card.json", card)
    write_scenario(scenario, out / "scenario.toml")
    share = {name: r["problem_share"] for name, r in results.items()}
    rows = "\n".join(f"| {name} | {r['problem_share']:.2%} | {r['lost_trips']:.0f} | {r['bikes_moved']:.0f} |"
                     for name, r in results.items())
    fleet = scenario.fleet
    with atomic_open(out / "MODEL_CARD.md") as fh:
        fh.write(CARD.format(
            run=run_name, candidates=args.candidates, scenario=scenario.name, trucks=fleet.trucks,
            truck_capacity=fleet.truck_capacity, visits=fleet.visits_per_hour, radius=fleet.radius_km,
            period=args.period, source=scenario.network.source, n_days=len(same), first=same[0].date,
            last=same[-1].date, imitation=f"{args.imitate} day(s) of OR-Tools demonstrations" if args.imitate else "none",
            steps=args.steps, envs=args.envs, seed=args.seed, wall_s=wall_s, eval_days=len(eval_days),
            eval_seeds=eval_seeds, rows=rows or "| (not evaluated) | | | |",
            vs_noop=share["ppo"] / share["noop"] - 1 if share else float("nan"),
            vs_ortools=share["ppo"] / share["ortools"] - 1 if share else float("nan"), commit=commit or "unknown",
        ))
    for name, r in results.items():
        print(f"{name:8s} problem share {r['problem_share']:.2%}  lost trips {r['lost_trips']:.0f}")
    print(f"wrote {out}")
    return 0


def register(sub) -> None:
    parser = sub.add_parser(
        "train-agent", help="train the PPO fleet policy in the simulator (models/policies/<run>/)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--scenario", default="synthetic-default", help="scenario name or TOML path")
    parser.add_argument("--period", default="2018-09-24:2018-09-28",
                        help="START:END local dates, both included, of the training demand")
    parser.add_argument("--steps", type=int, default=20_000, help="PPO fleet-hours over all envs (default 20000)")
    parser.add_argument("--envs", type=int, default=8, help="simulated cities in lockstep (default 8)")
    parser.add_argument("--imitate", type=int, default=2,
                        help="days of OR-Tools demonstrations per env before PPO (default 2; 0: none)")
    parser.add_argument("--candidates", type=int, default=16, help="candidate stations per truck (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", help="run name (default <scenario>-seed<seed>)")
    parser.add_argument("--out", help="output folder (default models/policies/<run>)")
    parser.add_argument("--eval-days", type=int, default=2, help="days evaluated after training (default 2)")
    parser.add_argument("--eval-seeds", type=int, default=2, help="rider draws per evaluated day (default 2; 0: none)")
    parser.add_argument("--force", action="store_true", help="replace an existing policy folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
