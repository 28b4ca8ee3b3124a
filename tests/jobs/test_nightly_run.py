"""The nightly job end to end on a small generated city: outputs, kill and resume, re-runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from bicimad.config import REPO_ROOT
from bicimad.jobs.batch import KILL_AT_ENV
from bicimad.opendata.schemas import read_table
from tests.jobs.conftest import small_city_config

DATE = "2018-09-08"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A small synthetic city (40 stations, 10 days) in EMT's raw formats, and a fast config."""
    return small_city_config(tmp_path_factory.mktemp("city"), seed=4, n_stations=40, trips_per_day=3500, seeds=2,
                             days=10)


def nightly(data_dir, config, *extra, env=None, timeout=300, cwd=REPO_ROOT):
    return subprocess.run(
        [sys.executable, "-m", "bicimad", "--data-dir", str(data_dir), "nightly", "--date", DATE,
         "--config", str(config), *extra],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


def outputs(run_dir):
    """What a run produced, comparable across runs (wall-time columns left out)."""
    occupancy = pd.read_csv(run_dir / "occupancy.csv").drop(columns=["decision_s_per_hour"])
    return {
        "plan": pd.read_csv(run_dir / "plan.csv"),
        "plans": pd.read_csv(run_dir / "plans.csv"),
        "forecast": read_table("forecast", run_dir / "forecast.parquet"),
        "od": read_table("od", run_dir / "od.parquet"),
        "occupancy": occupancy,
        **{p.stem: read_table("occupancy", p) for p in (run_dir / "occupancy").glob("*.parquet")},
    }


@pytest.fixture(scope="module")
def reference(city, tmp_path_factory):
    data = tmp_path_factory.mktemp("reference") / "data"
    done = nightly(data, city)
    assert done.returncode == 0, done.stderr
    return data, done


def test_nightly_writes_a_complete_run_folder(reference):
    data, done = reference
    run_dir = data / "runs" / "nightly" / DATE
    assert f"report: {(run_dir / 'report.html').resolve()}" in done.stdout
    for name in ("plan.csv", "forecast.parquet", "od.parquet", "occupancy.csv", "manifest.json", "report.html",
                 "nightly.log", "nightly.toml", "scenario.toml", "ledger.json"):
        assert (run_dir / name).is_file(), name

    forecast = read_table("forecast", run_dir / "forecast.parquet")
    assert set(forecast["hour"].dt.date.astype(str)) == {"2018-09-09"}  # D+1 only
    assert (forecast["pickup_rate"] >= 0).all() and forecast["pickup_rate"].sum() > 100

    plan = pd.read_csv(run_dir / "plan.csv")
    assert list(plan.columns) == ["truck", "hour", "order", "station_id", "number", "name", "bikes", "action", "dataset"]
    assert set(plan["dataset"]) == {"synthetic city"}   # the plan says what it was planned on
    assert len(plan) > 0 and plan["hour"].str.startswith("2018-09-09").all()
    assert plan["order"].max() <= 2 and (plan["bikes"] != 0).all()
    assert ((plan["bikes"] > 0) == (plan["action"] == "load")).all()
    # a truck never carries more than it loaded: running load per truck stays within 0..capacity
    load = plan.sort_values(["truck", "hour", "order"]).groupby("truck")["bikes"].cumsum()
    assert load.between(0, 22).all()

    summary = pd.read_csv(run_dir / "occupancy.csv").set_index("planner")
    assert list(summary.index) == ["noop", "greedy"]
    assert summary.loc["noop", "bikes_moved"] == 0 and summary.loc["greedy", "bikes_moved"] > 0

    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'class="dataframe plan"' in report and "plan for 2018-09-09 / greedy" in report

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["date"] == DATE and manifest["target_date"] == "2018-09-09"
    assert len(manifest["seeds"]) == 2 and manifest["git"]["commit"]
    assert manifest["models"]["demand"]["version"] == f"lightgbm-{DATE}"
    inputs = {os.path.basename(i["path"]): i for i in manifest["inputs"]}
    assert {"stations.parquet", "snapshots.parquet", "station_hours.parquet"} <= set(inputs)
    assert all(len(i["sha256"]) == 64 for i in inputs.values())


def test_killed_run_resumes_to_the_same_outputs(city, reference, tmp_path):
    data = tmp_path / "data"
    run_dir = data / "runs" / "nightly" / DATE
    # a relative --data-dir, as `make run` uses (./data)
    killed = nightly("data", city, env={KILL_AT_ENV: "simulate:written"}, cwd=tmp_path)
    assert killed.returncode == -9  # SIGKILL after simulate wrote its outputs, before the ledger knew
    ledger = json.loads((run_dir / "ledger.json").read_text())["steps"]
    assert set(ledger) == {"ingest", "demand_model", "forecast"}
    assert not (run_dir / "plan.csv").exists()

    resumed = nightly("data", city, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    log = (run_dir / "nightly.log").read_text()
    for step in ("ingest", "demand_model", "forecast"):
        assert f"step {step}: already done, skipped" in log
    assert log.count("step simulate: started") == 2 and log.count("step simulate: done") == 1

    ref = outputs(reference[0] / "runs" / "nightly" / DATE)
    got = outputs(run_dir)
    assert set(got) == set(ref)
    for name in ref:
        pd.testing.assert_frame_equal(got[name], ref[name], obj=name)
    # nothing duplicated: one model, station-hours unique, plans once per planner
    assert len(list((data / "models" / "demand").iterdir())) == 1
    station_hours = read_table("station_hours", data / "processed" / "station_hours.parquet")
    assert not station_hours.duplicated(["station_id", "hour"]).any()
    assert not got["plans"].duplicated().any()

    # the same date again: every step skipped, nothing rewritten
    stamps = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log"}
    again = nightly(data, city)
    assert again.returncode == 0 and "already complete" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()
            if p.is_file() and p.suffix != ".log"} == stamps


@pytest.mark.slow
@pytest.mark.parametrize("step", ["demand_model", "simulate"])
def test_run_killed_from_outside_mid_step_resumes(city, reference, tmp_path, step):
    """SIGKILL from another process while a step is running (not at a chosen point)."""
    import signal
    import time

    data = tmp_path / "data"
    log_path = data / "runs" / "nightly" / DATE / "nightly.log"
    proc = subprocess.Popen([sys.executable, "-m", "bicimad", "--data-dir", str(data), "nightly", "--date", DATE,
                             "--config", str(city)], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (log_path.exists() and f"step {step}: started" in log_path.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the step started"
        time.sleep(0.02)
    time.sleep(0.3)  # inside the step
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -9
    assert f"step {step}: done" not in log_path.read_text()

    resumed = nightly(data, city)
    assert resumed.returncode == 0, resumed.stderr
    ref, got = outputs(reference[0] / "runs" / "nightly" / DATE), outputs(data / "runs" / "nightly" / DATE)
    for name in ref:
        pd.testing.assert_frame_equal(got[name], ref[name], obj=name)
    assert len(list((data / "models" / "demand").iterdir())) == 1


def test_rerun_with_another_config_is_refused(city, reference, tmp_path):
    changed = tmp_path / "nightly.toml"
    changed.write_text(city.read_text().replace("seeds = 2", "seeds = 3"), encoding="utf-8")
    done = nightly(reference[0], changed)
    assert done.returncode == 2
    assert "was run with a different config" in done.stderr and "--force" in done.stderr


def test_date_beyond_the_data_exits_66(city, tmp_path):
    done = nightly(tmp_path / "data", city, "--date", "2018-10-20")
    assert done.returncode == 66, done.stderr
    assert "no snapshot on 2018-10-20" in done.stderr and "Traceback" not in done.stderr


def test_whatif_sweeps_the_fleet_on_a_nightly_run(reference, tmp_path):
    run_dir = reference[0] / "runs" / "nightly" / DATE
    config = tmp_path / "sweep.toml"
    config.write_text(textwrap.dedent(f"""
        name = "tomorrow"
        run = "{run_dir}"
        planners = ["noop", "greedy"]
        seeds = 1
        [grid]
        trucks = [0, 6]
    """), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bicimad", "whatif", "--config", str(config), "--out",
                           str(tmp_path / "out"), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(tmp_path / "out" / "results.csv").set_index(["planner", "trucks"])
    stations = len(read_table("stations", run_dir / "stations.parquet"))
    assert (results[["balanced", "empty", "full", "empty_and_full"]].sum(axis=1) == 24 * stations).all()
    assert results.loc[("noop", 0), "problem_share"] == results.loc[("greedy", 0), "problem_share"]
    assert results.loc[("greedy", 6), "bikes_moved"] > 0


def test_whatif_with_a_folder_that_is_not_a_run_is_a_config_error(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'run = "{tmp_path}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bicimad", "whatif", "--config", str(config), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not a finished nightly run folder" in done.stderr
