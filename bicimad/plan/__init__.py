"""Planners behind one interface: each has a ``name`` and ``plan(view) -> Plan``.

``make_planner(name, **kwargs)`` builds one by name; the OR-Tools and policy planners are
imported only when asked for, so using the others never loads ortools or torch.

Importing this package registers ``bicimad/FleetPlanning-v0``, the hour-level env the fleet
policy trains on (:mod:`bicimad.plan.fleet_env`), with its vector env as ``vector_entry_point``.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium

from bicimad.sim.interface import Planner

FLEET_ENV_ID = "bicimad/FleetPlanning-v0"

if FLEET_ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=FLEET_ENV_ID,
        entry_point="bicimad.plan.fleet_env:FleetPlanningEnv",
        vector_entry_point="bicimad.plan.fleet_env:FleetPlanningVectorEnv",
    )

#: Planner names, in the order comparisons report them.
PLANNER_NAMES = ("noop", "greedy", "ortools", "ppo", "status-quo", "ortools-events", "ortools-gls", "greedy-objective",
                 "ortools-lookahead", "ortools-1h", "router")
#: The planners that value their stops on the scenario's declared objective (its weights).
OBJECTIVE_PLANNERS = ("ortools", "ortools-gls", "greedy-objective", "ortools-lookahead", "ortools-1h", "router")
#: ``router:DIR`` names the router trained in folder ``DIR`` (``bicimad train-router``'s output).
ROUTER_PREFIX = "router:"


def is_router_name(name: str) -> bool:
    """``router`` (the scenario's own) or ``router:DIR`` (a router folder)."""
    return name == "router" or (name.startswith(ROUTER_PREFIX) and len(name) > len(ROUTER_PREFIX))


def is_planner_name(name: str) -> bool:
    """One of :data:`PLANNER_NAMES`, or ``router:DIR`` (a router folder)."""
    return name in PLANNER_NAMES or is_router_name(name)


def known_planners() -> str:
    """The planner names a job accepts, for its error messages."""
    return ", ".join(PLANNER_NAMES) + ", router:DIR"


def make_planner(name: str, **kwargs) -> Planner:
    """The planner called ``name`` (one of :data:`PLANNER_NAMES`), built with ``kwargs``."""
    if name == "noop":
        from bicimad.plan.base import NoopPlanner
        return NoopPlanner(**kwargs)
    if name == "greedy":
        from bicimad.plan.base import GreedyPlanner
        return GreedyPlanner(**kwargs)
    if name == "ortools":  # every station in the trucks' reach is a candidate
        from bicimad.plan.ortools_planner import ORToolsPlanner
        return ORToolsPlanner(**kwargs)
    if name == "ortools-1h":  # the 60-station candidate cut the first headline results were measured with
        from bicimad.plan.ortools_planner import ORTOOLS_1H_CANDIDATES, ORToolsPlanner
        return ORToolsPlanner(**{**ORTOOLS_1H_CANDIDATES, "name": "ortools-1h", **kwargs})
    if name == "ortools-lookahead":  # routes two hours ahead, stops valued at arrival, end load valued
        from bicimad.plan.lookahead import LookaheadPlanner
        return LookaheadPlanner(**kwargs)
    if name == "greedy-objective":
        from bicimad.plan.greedy_objective import ObjectiveGreedyPlanner
        return ObjectiveGreedyPlanner(**kwargs)
    # ortools-gls and ortools-events keep ortools-1h's candidate cut: their results were measured with it.
    if name == "ortools-gls":  # guided local search: it uses the whole time limit (BENCHMARKS: 0.1 % from the optimum)
        from bicimad.plan.ortools_planner import ORTOOLS_1H_CANDIDATES, ORToolsPlanner
        return ORToolsPlanner(**{**ORTOOLS_1H_CANDIDATES, "metaheuristic": "guided_local_search", "name": "ortools-gls",
                                 **kwargs})
    if name == "ortools-events":
        from bicimad.plan.ortools_planner import EVENTS_ONLY, ORTOOLS_1H_CANDIDATES, ORToolsPlanner
        return ORToolsPlanner(**{**ORTOOLS_1H_CANDIDATES, **EVENTS_ONLY, "name": "ortools-events", **kwargs})
    if name == "router":  # greedy stops on a learnt cost-to-go: router_dir is a `bicimad train-router` folder
        from bicimad.plan.router import load_router
        if "router_dir" not in kwargs:
            raise ValueError("router: no router folder given (router_dir); planner_for takes the scenario's own")
        return load_router(**kwargs)
    if name == "status-quo":
        from bicimad.plan.status_quo import StatusQuoPlanner
        return StatusQuoPlanner(**kwargs)
    if name == "ppo":
        from bicimad.plan.policy import PolicyPlanner
        return PolicyPlanner.load(**kwargs)
    raise ValueError(f"unknown planner {name!r}; known: {', '.join(PLANNER_NAMES)}")


def planner_for(name: str, scenario, **kwargs) -> Planner:
    """The planner ``name`` for ``scenario``: OR-Tools values its stops on the scenario's
    declared objective (its ``[reward]`` weights); ``router`` without a ``router_dir`` is the
    scenario's own, ``models/routers/<scenario name>/`` (FileNotFoundError where there is none),
    and ``router:DIR`` the router in folder ``DIR``, named ``router:<folder name>``; ``ppo``
    without a ``policy_dir`` plans with the scenario's own policy where there is one
    (:func:`bicimad.plan.policy.scenario_policy_dir`), else the default; ``kwargs`` as for
    :func:`make_planner`."""
    if is_router_name(name):
        from bicimad.plan.ortools_planner import objective_weights
        from bicimad.plan.router import load_router, router_folder
        folder = kwargs.pop("router_dir", None) or router_folder(name, scenario)
        label = name if name == "router" else f"{ROUTER_PREFIX}{Path(folder).name}"
        return load_router(folder, name=kwargs.pop("name", label), **{**objective_weights(scenario.reward), **kwargs})
    if name == "ppo" and not kwargs.get("policy_dir"):
        from bicimad.plan.policy import scenario_policy_dir
        kwargs["policy_dir"] = scenario_policy_dir(scenario)
    if name in OBJECTIVE_PLANNERS:
        from bicimad.plan.ortools_planner import objective_weights
        kwargs = {**objective_weights(scenario.reward), **kwargs}
    return make_planner(name, **kwargs)
