"""What makes a nightly plan trustworthy: config errors before any work, freshness limits, and
the dispatch decision said plainly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from bicimad.config import REPO_ROOT

DATE = "2018-09-08"


@pytest.fixture(scope="module")
def raw_city(tmp_path_factory):
    from bicimad.opendata.synthetic import write_city

    root = tmp_path_factory.mktemp("trust-city")
    write_city(root / "raw", seed=5, n_stations=30, days=9, trip_days=2, trips_per_day=2500)
    return root / "raw" / "synthetic"


def _config(path, raw, top: str = "", tables: str = ""):
    path.write_text(textwrap.dedent(top) + textwrap.dedent(f"""
        scenario = "synthetic-default"
        seeds = 2
        [source]
        kind = "local"
        paths = ["{raw}"]
        [demand]
        history_days = 7
        rounds = 20
    """) + textwrap.dedent(tables), encoding="utf-8")
    return path


def _nightly(data_dir, config):
    return subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(data_dir), "nightly", "--date", DATE,
                           "--config", str(config), "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=dict(os.environ))


@pytest.mark.parametrize("body, key", [
    ('planners = ["noop", "gredy"]\ndispatch = "noop"', "planners: unknown planner 'gredy'"),
    ('scenario = "no-such-scenario"', "scenario"),
])
def test_a_config_error_exits_2_before_any_step_runs(tmp_path, raw_city, body, key):
    text = _config(tmp_path / "n.toml", raw_city).read_text().replace('scenario = "synthetic-default"\n', "")
    (tmp_path / "n.toml").write_text(body + "\n" + text)
    data = tmp_path / "data"
    done = _nightly(data, tmp_path / "n.toml")
    assert done.returncode == 2, done.stderr
    assert key in done.stderr and "Traceback" not in done.stderr
    assert not data.exists(), "no step may run (nothing ingested, no run folder) on a bad config"


def test_a_stale_start_snapshot_fails_with_its_own_exit_code(tmp_path, raw_city):
    # the synthetic city's last snapshot of the day is some minutes before the planned midnight: over 0.01 h
    config = _config(tmp_path / "n.toml", raw_city, 'planners = ["noop"]\ndispatch = "noop"\n',
                     '[freshness]\nmax_snapshot_age_hours = 0.01\n')
    done = _nightly(tmp_path / "data", config)
    assert done.returncode == 69, done.stderr
    assert "stale input" in done.stderr and "max_snapshot_age_hours" in done.stderr
    assert not (tmp_path / "data" / "runs" / "nightly" / DATE / "plan.csv").exists()


def test_best_dispatch_and_a_marked_stale_run(tmp_path, raw_city):
    config = _config(tmp_path / "n.toml", raw_city, 'planners = ["noop", "greedy"]\ndispatch = "best"\n',
                     '[freshness]\nmax_snapshot_age_hours = 0.01\non_stale = "mark"\n')
    done = _nightly(tmp_path / "data", config)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "data" / "runs" / "nightly" / DATE
    decision = json.loads((run_dir / "decision.json").read_text())
    table = pd.DataFrame(decision["table"])
    best = table.loc[table["objective"].idxmin(), "planner"]
    assert decision["planner"] == best and decision["rule"] == "lowest declared objective"
    assert decision["sentence"] in done.stdout and "without trucks" in decision["sentence"]
    plans = pd.read_csv(run_dir / "plans.csv")
    plan = pd.read_csv(run_dir / "plan.csv")
    assert len(plan) == int((plans["planner"] == best).sum())
    occupancy = pd.read_csv(run_dir / "occupancy.csv")
    assert occupancy.set_index("planner")["dispatched"].to_dict() == {p: p == best for p in occupancy["planner"]}
    # marked, not failed: the summary and the manifest carry the figures
    assert "STALE INPUT: start snapshot" in done.stdout and " h old at 2018-09-09 00:00:00+02:00" in done.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["warnings"] and "max_snapshot_age_hours" in manifest["warnings"][0]
    assert manifest["dispatch"] == best


@pytest.mark.parametrize("date", ["9999-12-31", "0001-01-01", "2018-13-45"])
def test_absurd_dates_exit_2_without_a_traceback(tmp_path, date):
    done = subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(tmp_path / "data"), "nightly", "--date",
                           date], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 2 and "--date" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_real_data_never_plans_with_the_synthetic_city_policy(tmp_path, raw_city):
    config = _config(tmp_path / "n.toml", raw_city, 'planners = ["noop", "ppo"]\ndispatch = "noop"\n')
    done = _nightly(tmp_path / "data", config)          # source.kind = "local": real EMT files
    assert done.returncode == 2 and "trained on the synthetic city" in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_real_data_folder_is_never_replanned_on_the_synthetic_city(tmp_path, shared_data):
    """The default config plans the synthetic city: on a folder holding real EMT data it refuses
    (exit 2) and names both, leaving the real tables as they were."""
    data = tmp_path / "data"
    source = tmp_path / "src"
    source.mkdir()
    (source / "EstacionesVacias.xlsx").write_bytes(
        (shared_data / "raw" / "stations" / "javomorales_BiciMadAnalysis" / "EstacionesVacias.xlsx").read_bytes())
    assert subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(data), "ingest", "--from", str(source),
                           "--no-progress"], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT).returncode == 0
    before = (data / "processed" / "snapshots.parquet").read_bytes()
    done = subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(data), "nightly", "--date", "2018-09-20",
                           "--no-progress"], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 2, done.stderr
    assert "real" in done.stderr and "synthetic" in done.stderr and "Traceback" not in done.stderr
    assert (data / "processed" / "snapshots.parquet").read_bytes() == before
    assert json.loads((data / "processed" / "dataset.json").read_text())["dataset"] == "real"


def test_the_synthetic_city_policy_is_refused_on_a_synthetic_city_of_other_stations(tmp_path, capsys):
    """source.kind = "synthetic" ingests the synthetic city at its Sep 2018 size (172 stations);
    the committed policy was trained on the 210-station one: the simulate step refuses it."""
    from bicimad.cli import main

    config = tmp_path / "n.toml"
    config.write_text('planners = ["noop", "ppo"]\ndispatch = "noop"\nseeds = 1\n'
                      "[demand]\nhistory_days = 7\nrounds = 20\n", encoding="utf-8")
    assert main(["--data-dir", str(tmp_path / "data"), "nightly", "--date", "2018-09-10", "--config", str(config),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "network.stations is 210, the network of 2018-09-11's is 172" in err
    assert "then put it in models/policies/<scenario name>" in err and "models/policies/default" in err
    assert not (tmp_path / "data" / "runs" / "nightly" / "2018-09-10" / "plan.csv").exists()
