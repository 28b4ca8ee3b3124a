"""The what-if sweep on the real simulator: Ray local cluster = local process pool; the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from bicimad.jobs import whatif
from bicimad.jobs.whatif import TIMING_COLUMNS, SweepGrid, WhatIfConfig, make_tasks, run_sweep


@pytest.fixture
def small_scenario(tmp_path):
    """The synthetic default shrunk to 60 stations (the fleet parameters are swept anyway)."""
    path = tmp_path / "small.toml"
    path.write_text(textwrap.dedent("""
        name = "small"
        [network]
        source = "synthetic"
        stations = 60
        seed = 3
    """), encoding="utf-8")
    return path


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows]


def test_ray_local_cluster_equals_local_pool(tmp_path, small_scenario):
    import ray

    config = WhatIfConfig(scenario=str(small_scenario), planners=("noop", "greedy"), seeds=2, seed=5,
                          grid=SweepGrid(trucks=(0, 4), demand_scale=(1.3,)))
    tasks = make_tasks(config)
    local = run_sweep(tasks, whatif.simulate_task, tmp_path / "local", workers=1, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_sweep(tasks, whatif.simulate_task, tmp_path / "ray", ray_address="auto", progress=False)
    finally:
        ray.shutdown()
    assert _without_timing(on_ray) == _without_timing(local)
    results = pd.DataFrame(local)
    # the sweep means something: common seeds make trucks=0 identical across planners, and
    # greedy with 4 trucks moves bikes and cuts problem hours on every seed and demand level
    noop = results[results.planner == "noop"].set_index(["trucks", "demand_scale", "seed_index"])
    greedy = results[results.planner == "greedy"].set_index(["trucks", "demand_scale", "seed_index"])
    assert (greedy.loc[0, "problem_share"] == noop.loc[0, "problem_share"]).all()
    assert (greedy.loc[4, "bikes_moved"] > 0).all()
    assert (greedy.loc[4, "problem_share"] < noop.loc[4, "problem_share"]).all()


def test_whatif_cli_writes_tables_and_plots_and_resumes(tmp_path, small_scenario):
    config = tmp_path / "sweep.toml"
    config.write_text(textwrap.dedent(f"""
        name = "cli"
        scenario = "{small_scenario}"
        planners = ["noop", "greedy"]
        seeds = 1
        [grid]
        trucks = [0, 3]
    """), encoding="utf-8")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bicimad", "whatif", "--config", str(config), "--out", str(out), "--workers", "1"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "4 tasks" in first.stdout and "what-if" in first.stderr  # the progress bar
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 4 and set(results.planner) == {"noop", "greedy"}
    assert (out / "whatif.toml").exists() and list(out.glob("share_vs_trucks-*.png"))
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.json")}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.json")} == stamps  # nothing re-run
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results)


def test_whatif_cli_unknown_scenario_is_a_config_error(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('scenario = "atlantis"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bicimad", "whatif", "--config", str(config), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "scenario" in done.stderr and "atlantis" in done.stderr
