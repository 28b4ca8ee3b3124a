"""``router``: the greedy router on the declared objective, driven by a learnt cost-to-go.

Policy v2 is a hybrid. The router is :class:`bicimad.plan.greedy_objective.ObjectiveGreedyPlanner`:
trucks plan one after another, visit by visit, each stop chosen on the state the earlier stops
leave, at any size, among every station in the truck's reach. What is learnt is how it values a
station's inventory over the coming hours, its cost-to-go, through a few parameters
(:data:`SPACE`): how many forecast hours it looks ahead and how it discounts them; how much
variance it adds to the forecast for the error forecasts make; how much weight it gives
problem hours and truck km inside its valuation; what a bike left on a truck at the end of an
hour is worth; how many first stops it weighs with the best stop after each (a two-visit
look-ahead); and how far it corrects the forecast by what the day has shown so far (its volume,
each station's drift). The parameters hold no station identity, so a router learnt on one network plans
on another.

Learning is a cross-entropy search (:func:`cross_entropy`): each generation draws a population
of parameter sets from a diagonal Gaussian, simulates each on the same training days and rider
draws (common random numbers, the forecast as planners see it, not the truth), and refits the
Gaussian to the best ones. The search needs only the declared objective of whole simulated
days, so its credit is exact for a day and free of a critic's bias; its noise is the rider draws,
which every candidate of a generation shares.

A trained router is a folder with ``router.json`` (parameters, the training and selection days,
the fleet, the objective weights, the seed, the code version, the search's history) and
``MODEL_CARD.md`` (see :mod:`bicimad.jobs.router`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bicimad.plan.greedy_objective import ObjectiveGreedyPlanner

ROUTER_FILE = "router.json"


@dataclass(frozen=True)
class Knob:
    """One learnt parameter: its range, whether it is searched on a log scale, and whether it is an integer."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def to_unit(self, value: float) -> float:
        lo, hi, v = (math.log(self.low), math.log(self.high), math.log(value)) if self.log else (self.low, self.high, value)
        return (v - lo) / (hi - lo)

    def from_unit(self, u: float) -> float:
        u = min(max(float(u), 0.0), 1.0)
        v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))) if self.log else \
            self.low + u * (self.high - self.low)
        return float(round(v)) if self.integer else v


#: The router's learnt parameters (fields of :class:`ObjectiveGreedyPlanner`) and their ranges.
SPACE: dict[str, Knob] = {
    "horizon_hours": Knob(1, 12, integer=True),
    "discount": Knob(0.5, 1.0),
    "spread": Knob(0.0, 0.6),
    "problem_scale": Knob(0.25, 4.0, log=True),
    "km_scale": Knob(0.25, 4.0, log=True),
    "load_value": Knob(0.0, 0.3),
    "pair_candidates": Knob(1, 12, integer=True),
    "min_gain": Knob(0.005, 0.5, log=True),
    "nowcast_volume": Knob(0.0, 1.0),
    "nowcast_drift": Knob(0.0, 1.0),
}

#: The plain greedy's values of the knobs: where the search starts.
GREEDY_START = {"horizon_hours": 3, "discount": 1.0, "spread": 0.0, "problem_scale": 1.0, "km_scale": 1.0,
                "load_value": 0.0, "pair_candidates": 1, "min_gain": 0.02, "nowcast_volume": 0.0, "nowcast_drift": 0.0}


def params_from_unit(u: np.ndarray) -> dict:
    """Parameters from a point of the unit cube (one coordinate per knob of :data:`SPACE`)."""
    return {name: knob.from_unit(x) for (name, knob), x in zip(SPACE.items(), u)}


def unit_from_params(params: dict) -> np.ndarray:
    return np.array([knob.to_unit(params[name]) for name, knob in SPACE.items()])


def check_params(params: dict, where: str) -> dict:
    """``params`` as floats, each within its knob's range; a ValueError names ``where`` and the field."""
    if not isinstance(params, dict):
        raise ValueError(f"{where}: params must be a table of {', '.join(SPACE)}")
    unknown = sorted(set(params) - set(SPACE))
    missing = [name for name in SPACE if name not in params]
    if unknown or missing:
        raise ValueError(f"{where}: params " + "; ".join(
            part for part in (f"unknown {unknown}" if unknown else "", f"missing {missing}" if missing else "") if part))
    out = {}
    for name, knob in SPACE.items():
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not knob.low <= value <= knob.high:
            raise ValueError(f"{where}: params.{name} = {value!r}: expected a number in [{knob.low}, {knob.high}]")
        out[name] = float(value)
    return out


def router_planner(params: dict, name: str = "router", **weights) -> ObjectiveGreedyPlanner:
    """The router with ``params`` on the objective ``weights`` (``problem_hour_weight``,
    ``lost_weight``, ``diverted_weight``, ``km_cost``)."""
    knobs = {k: (int(v) if SPACE[k].integer else float(v)) for k, v in params.items()}
    return ObjectiveGreedyPlanner(name=name, **weights, **knobs)


def scenario_router_dir(scenario) -> Path:
    """The scenario's own router: ``models/routers/<scenario name>/`` (what ``router`` plans with)."""
    from bicimad.config import models_dir

    return models_dir() / "routers" / scenario.name


def router_folder(name: str, scenario) -> Path:
    """The folder of router planner ``name``: ``router`` is the scenario's own
    (:func:`scenario_router_dir`), ``router:DIR`` is ``DIR``."""
    from bicimad.plan import ROUTER_PREFIX, is_router_name

    if not is_router_name(name):
        raise ValueError(f"{name!r} is not a router planner: expected router or router:DIR")
    return scenario_router_dir(scenario) if name == "router" else Path(name.removeprefix(ROUTER_PREFIX))


def read_router(folder: str | Path) -> dict:
    """A router folder's ``router.json``, its parameters checked; a ValueError says what is wrong."""
    path = Path(folder) / ROUTER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"router {folder}: no {ROUTER_FILE}; train one with `bicimad train-router`")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"router {path}: not readable JSON ({exc})") from None
    if not isinstance(card, dict):
        raise ValueError(f"router {path}: not a JSON object")
    card["params"] = check_params(card.get("params"), str(path))
    return card


def load_router(router_dir: str | Path, name: str = "router", **weights) -> ObjectiveGreedyPlanner:
    """The router planner of a trained router folder (``bicimad train-router``'s output)."""
    return router_planner(read_router(router_dir)["params"], name=name, **weights)


@dataclass(frozen=True)
class SearchConfig:
    """The cross-entropy search: ``generations`` of ``population`` candidates, the best
    ``elite`` refit the Gaussian (smoothed: ``smoothing`` of the old mean and spread kept);
    the spread starts at ``initial_std`` (unit cube) and never falls below ``min_std``."""

    generations: int = 12
    population: int = 12
    elite: int = 4
    initial_std: float = 0.3
    min_std: float = 0.03
    smoothing: float = 0.3

    def __post_init__(self):
        if self.generations < 1 or self.population < 2 or not 1 <= self.elite < self.population:
            raise ValueError(f"search: need generations >= 1, population >= 2 and 1 <= elite < population; got {self}")


def cross_entropy(evaluate: Callable[[list[dict], int], list[float]], config: SearchConfig, seed: int,
                  start: dict | None = None, on_generation: Callable[[dict], None] | None = None) -> list[dict]:
    """Minimise ``evaluate(candidates, generation) -> costs`` over :data:`SPACE`.

    Each generation's population holds the current mean itself and ``population - 1`` draws
    from the Gaussian; ``evaluate`` sees them all at once (so it can run them in parallel on the
    same days and rider draws). Returns one record per generation: the mean and spread it drew
    from, every candidate with its cost, and the elite's mean cost. The same ``seed`` gives the
    same draws."""
    rng = np.random.default_rng(seed)
    mean = unit_from_params(start or GREEDY_START)
    std = np.full(len(SPACE), config.initial_std)
    history = []
    for generation in range(config.generations):
        units = np.clip(mean + std * rng.standard_normal((config.population - 1, len(SPACE))), 0.0, 1.0)
        units = np.vstack([mean, units])
        candidates = [params_from_unit(u) for u in units]
        costs = np.asarray(evaluate(candidates, generation), dtype=float)
        order = np.argsort(costs, kind="stable")
        elite = units[order[:config.elite]]
        record = {"generation": generation, "mean": params_from_unit(mean), "std": std.tolist(),
                  "candidates": [{"params": c, "cost": float(v)} for c, v in zip(candidates, costs)],
                  "best": candidates[int(order[0])], "best_cost": float(costs[order[0]]),
                  "mean_cost": float(costs[0]), "elite_cost": float(costs[order[:config.elite]].mean())}
        history.append(record)
        if on_generation is not None:
            on_generation(record)
        a = config.smoothing
        mean = a * mean + (1 - a) * elite.mean(axis=0)
        std = np.maximum(a * std + (1 - a) * elite.std(axis=0), config.min_std)
    history.append({"generation": config.generations, "mean": params_from_unit(mean), "std": std.tolist()})
    return history
