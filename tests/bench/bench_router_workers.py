"""The router search's simulations: fleet-hours per second in process, on 2 local worker
processes, and as tasks on a Ray cluster of 1 and of 2 CPUs.

One generation's work of ``bicimad train-router`` (``CANDIDATES`` parameter sets, each simulated
on ``DAYS`` days of the synthetic default city, 24 fleet-hours a day), through the same runner
the job uses (:class:`bicimad.jobs.router._Runner`). Each mode's figure is divided by the
in-process figure of the same run; the costs must be identical in every mode (each task is
seeded by its day and draw alone). Wall time: other load on a shared machine moves the figures.

    .venv/bin/python -m pytest -m bench tests/bench/bench_router_workers.py -s
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from bicimad.jobs.compare import prepare_days
from bicimad.jobs.router import _mean_costs, _Runner
from bicimad.plan.router import SPACE, params_from_unit
from bicimad.sim.scenario import load_scenario

CANDIDATES = 6
DAYS = 4
MODES = {"in process": (1, None), "2 local processes": (2, None), "Ray, 1 CPU": (1, "local"), "Ray, 2 CPUs": (2, "local")}


@pytest.mark.bench
def test_router_search_fleet_hours_per_second():
    pytest.importorskip("ray")
    import pandas as pd

    scenario = load_scenario("synthetic-default")
    days, _ = prepare_days(scenario, pd.Timestamp("2018-09-24"), pd.Timestamp("2018-09-24") + pd.Timedelta(days=DAYS))
    rng = np.random.default_rng(0)
    candidates = [params_from_unit(rng.uniform(size=len(SPACE))) for _ in range(CANDIDATES)]
    rates, costs = {}, {}
    for mode, (workers, address) in MODES.items():
        runner = _Runner(scenario, days, workers, address)
        try:
            _mean_costs(runner, candidates[:1], [0], [0])          # warm: pool or cluster up, imports done
            t0 = time.perf_counter()
            costs[mode] = _mean_costs(runner, candidates, list(range(len(days))), [0])
            rates[mode] = CANDIDATES * len(days) * 24 / (time.perf_counter() - t0)
        finally:
            runner.close()
    base = rates["in process"]
    for mode, rate in rates.items():
        print(f"{mode:>18}: {rate:7.1f} fleet-hours/s ({rate / base:.2f}x in process)")
    assert all(c == costs["in process"] for c in costs.values())
