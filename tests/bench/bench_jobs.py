"""Batch job benchmarks: the nightly run's wall time on the real September 2018 data, and what-if
throughput (scenario-days per minute) in one process, in a local process pool and on a Ray local
cluster, measured in the same run.

    .venv/bin/python -m pytest -m bench tests/bench/bench_jobs.py -s   # prints the tables

Nightly: ``bicimad nightly --date 2018-09-26`` (plans the 27th; and 2019-10-26 on the Oct 2019 parquet) from an empty data folder,
ingesting the real Sep 2018 snapshots (EstacionesVacias.xlsx: 719 snapshots x 172 stations)
and the 2018-09-27 origin-destination trips, with the seed fleet (6 trucks x 22 bikes) and the
no-op, greedy and OR-Tools planners x 3 seeds. The baseline in the same run is ``bicimad ingest``
of the same files alone (what any pipeline pays to read the month). Wall-clock seconds: the
machine is shared, so the figures are upper bounds of the job's own cost.

What-if: the same tasks (synthetic default network, 210 stations, 6-truck-class fleets) run
serially in one process (the baseline), in a 2-process local pool, and on a 2-CPU Ray local
cluster; every mode must return identical results. The Ray cluster's start-up is timed apart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from bicimad.config import REPO_ROOT

pytestmark = pytest.mark.bench

#: Targets from the issue.
TARGET_NIGHTLY_S = 180.0

SEP_2018 = ("stations/javomorales_BiciMadAnalysis/EstacionesVacias.xlsx",
            "trips/derived/javomorales_BiciMadAnalysis/Usos092018_Estaciones.xlsx")
OCT_2019 = (".",)   # the whole raw folder: the 2019 snapshots name stations by number, the lists map them


def _cli(data_dir, *args, timeout=900):
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return time.perf_counter() - t0


@pytest.mark.parametrize("month, files, scenario, date", [
    ("Sep 2018", SEP_2018, "seed-fleet-2018", "2018-09-26"),
    ("Oct 2019", OCT_2019, "seed-fleet-2019", "2019-10-26"),
])
def test_nightly_wall_time_on_real_data(shared_data, tmp_path, month, files, scenario, date):
    files = [shared_data / "raw" / f for f in files]
    config = tmp_path / "nightly.toml"
    config.write_text(textwrap.dedent(f"""
        scenario = "{scenario}"
        planners = ["noop", "greedy", "ortools"]
        dispatch = "best"
        seeds = 3
        [source]
        kind = "local"
        paths = {json.dumps([str(f) for f in files])}
        [demand]
        threads = 1
    """), encoding="utf-8")
    ingest_s = _cli(tmp_path / "baseline", "ingest", "--no-progress", "--from", *map(str, files))
    nightly_s = _cli(tmp_path / "data", "nightly", "--date", date, "--config", str(config), "--no-progress")
    run_dir = tmp_path / "data" / "runs" / "nightly" / date
    steps = json.loads((run_dir / "ledger.json").read_text())["steps"]
    print(f"\n| nightly on real {month} (the night of {date}) | seconds | x ingest alone |")
    print("|---|---|---|")
    print(f"| ingest alone (baseline) | {ingest_s:.1f} | 1.00 |")
    for name in ("ingest", "demand_model", "forecast", "simulate", "plan", "report", "manifest"):
        print(f"| step {name} | {steps[name]['seconds']:.1f} | |")
    print(f"| **nightly, whole command** | **{nightly_s:.1f}** | {nightly_s / ingest_s:.2f} |")
    print(open(run_dir / "occupancy.csv").read())
    print(json.loads((run_dir / "decision.json").read_text())["sentence"])
    assert nightly_s < TARGET_NIGHTLY_S


def test_whatif_throughput_pool_vs_ray():
    import tempfile

    import ray

    from bicimad.jobs.whatif import TIMING_COLUMNS, SweepGrid, WhatIfConfig, make_tasks, run_sweep, simulate_task, throughput

    config = WhatIfConfig(planners=("noop", "greedy"), seeds=2, seed=7,
                          grid=SweepGrid(trucks=(0, 4, 8, 12), demand_scale=(1.0,)))
    tasks = make_tasks(config)
    rows, rates = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("serial", "pool", "ray"):
            out = f"{tmp}/{mode}"
            if mode == "ray":
                t0 = time.perf_counter()
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                ray_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                rows[mode] = run_sweep(tasks, simulate_task, out, workers=1 if mode == "serial" else 2,
                                       ray_address="auto" if mode == "ray" else None, progress=False)
            finally:
                if mode == "ray":
                    ray.shutdown()
            rates[mode] = throughput(rows[mode], time.perf_counter() - t0)
    strip = [[{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows[m]] for m in rows]
    assert strip[0] == strip[1] == strip[2]
    print(f"\n| what-if, {len(tasks)} tasks x 1 day, 210 stations | scenario-days/min | x serial |")
    print("|---|---|---|")
    for mode, label in (("serial", "one process (baseline)"), ("pool", "local pool, 2 processes"),
                        ("ray", "Ray local cluster, 2 CPUs")):
        print(f"| {label} | {rates[mode]:.1f} | {rates[mode] / rates['serial']:.2f} |")
    print(f"Ray cluster start-up (not in the rate): {ray_start:.1f} s")


def test_whatif_throughput_ray_1_vs_2_workers():
    """The fleet sweep's tasks (no-op reused across fleets) on a Ray local cluster with 1 and with
    2 CPUs (``ray.init(num_cpus=N)``), each worker simulating one task at a time, against one
    process; all three must return identical results."""
    import tempfile

    import ray

    from bicimad.jobs.whatif import (
        TIMING_COLUMNS,
        SweepGrid,
        WhatIfConfig,
        make_tasks,
        run_sweep,
        simulate_task,
        simulations,
        throughput,
    )

    config = WhatIfConfig(planners=("noop", "greedy"), seeds=2, seed=7, days=2,
                          grid=SweepGrid(trucks=(0, 4, 8, 12, 16, 20)))
    tasks = list(dict.fromkeys(simulations(make_tasks(config)).values()))
    rows, rates, starts = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("serial", "ray1", "ray2"):
            if mode != "serial":
                t0 = time.perf_counter()
                ray.init(num_cpus=int(mode[-1]), include_dashboard=False, log_to_driver=False)
                starts[mode] = time.perf_counter() - t0
            t0 = time.perf_counter()
            try:
                rows[mode] = run_sweep(tasks, simulate_task, f"{tmp}/{mode}", workers=1,
                                       ray_address="auto" if mode != "serial" else None, progress=False)
            finally:
                if mode != "serial":
                    ray.shutdown()
            rates[mode] = throughput(rows[mode], time.perf_counter() - t0)
    strip = [[{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows[m]] for m in rows]
    assert strip[0] == strip[1] == strip[2]
    print(f"\n| what-if, {len(tasks)} simulated tasks x {config.days} days, 210 stations | scenario-days/min | x one process |")
    print("|---|---|---|")
    for mode, label in (("serial", "one process (baseline)"), ("ray1", "Ray local cluster, 1 worker (num_cpus=1)"),
                        ("ray2", "Ray local cluster, 2 workers (num_cpus=2)")):
        print(f"| {label} | {rates[mode]:.1f} | {rates[mode] / rates['serial']:.2f} |")
    print(f"Ray 2 workers / 1 worker: {rates['ray2'] / rates['ray1']:.2f}; cluster start-up (not in the rate): "
          + ", ".join(f"{m} {s:.1f} s" for m, s in starts.items()))
