"""What-if on several nightly run folders: several days, each from its own network and forecast."""

from __future__ import annotations

import shutil
import textwrap

import pandas as pd
import pytest

from bicimad.cli import main
from tests.jobs.conftest import small_city_config


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Two nightly run folders (the same small night copied twice: the plumbing of several days)."""
    root = tmp_path_factory.mktemp("whatif-runs")
    config = small_city_config(root, seed=8, n_stations=25, trips_per_day=2000, planners=("noop",), dispatch="noop",
                               rounds=10)
    data = root / "data"
    assert main(["--data-dir", str(data), "nightly", "--date", "2018-09-08", "--config", str(config), "--no-progress"]) == 0
    night = data / "runs" / "nightly" / "2018-09-08"
    shutil.copytree(night, root / "nights" / "2018-09-08")
    shutil.copytree(night, root / "nights" / "2018-09-09")
    return root / "nights"


def _sweep(tmp_path, pattern: str, days: int):
    path = tmp_path / "sweep.toml"
    path.write_text(textwrap.dedent(f"""
        name = "runs"
        run = "{pattern}"
        days = {days}
        planners = ["noop", "greedy"]
        seeds = 1
        workers = 1
        [grid]
        trucks = [0, 2]
    """), encoding="utf-8")
    return path


def test_a_sweep_over_several_nights_simulates_one_day_per_run(nights, tmp_path, capsys):
    config = _sweep(tmp_path, f"{nights}/2018-09-0*", days=2)
    assert main(["whatif", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert (results["days"] == 2).all() and set(results["planner"]) == {"noop", "greedy"}
    # the two nights are the same day copied: each task's totals are twice one night's
    assert (results["balanced"] + results["empty"] + results["full"] + results["empty_and_full"]
            == 2 * 24 * 25).all()
    report = (tmp_path / "out" / "report.html").read_text()
    assert "2 forecast day(s), one per run" in report


def test_days_must_match_the_nights_named(nights, tmp_path, capsys):
    assert main(["whatif", "--config", str(_sweep(tmp_path, f"{nights}/2018-09-0*", days=1)),
                 "--out", str(tmp_path / "out")]) == 2
    assert "names 2 nightly run folder(s)" in capsys.readouterr().err


def test_the_default_policy_is_refused_on_the_nights_networks(nights, tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(textwrap.dedent(f"""
        name = "runs-ppo"
        run = "{nights}/2018-09-08"
        days = 1
        planners = ["noop", "ppo"]
        seeds = 1
        workers = 1
    """), encoding="utf-8")
    assert main(["whatif", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "network.stations is 210, nightly run " in err and "(210 synthetic stations trained on, 25 synthetic here)" in err
    assert not (tmp_path / "out").exists()
