"""``bicimad compare`` and ``bicimad train-agent`` end to end on small cities."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.jobs.compare import METRICS
from bicimad.rl.core import read_metrics

SMALL = """
name = "small"
[network]
source = "{source}"
stations = 40
seed = 3
date = "{date}"
[fleet]
trucks = 2
[episode]
hours = {hours}
"""


def small_scenario(tmp_path, source="synthetic", date="", hours=10):
    path = tmp_path / f"small-{source}.toml"
    path.write_text(SMALL.format(source=source, date=date, hours=hours))
    return str(path)


def test_compare_runs_planners_on_common_random_numbers(tmp_path):
    scenario = small_scenario(tmp_path)
    out = tmp_path / "cmp"
    args = ["compare", "--scenario", scenario, "--period", "2018-09-24:2018-09-25", "--planners", "noop,greedy",
            "--seeds", "3", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    per_seed = pd.read_csv(out / "per_seed.csv")
    summary = pd.read_csv(out / "occupancy.csv")
    assert list(summary["planner"]) == ["noop", "greedy"]
    for column in METRICS:
        assert (summary[f"{column}_ci_low"] <= summary[column] + 1e-12).all()
        assert (summary[column] <= summary[f"{column}_ci_high"] + 1e-12).all()
    assert len(per_seed) == 6 and (per_seed["days"] == 2).all()
    assert (per_seed.loc[per_seed.planner == "noop", "bikes_moved"] == 0).all()
    # Same riders per seed for both planners: greedy's trucks help on every seed.
    paired = per_seed.pivot(index="seed", columns="planner", values="problem_share")
    assert (paired["greedy"] < paired["noop"]).all()
    assert paired["noop"].nunique() == 3        # different seeds, different riders
    # The paired change against no-op is the mean of the per-seed ratios, below zero throughout.
    relative = pd.read_csv(out / "relative.csv")
    assert list(zip(relative["planner"], relative["baseline"])) == [("greedy", "noop")]
    change = relative.iloc[0]
    assert change["change"] == pytest.approx((paired["greedy"] / paired["noop"] - 1).mean())
    assert change["change_ci_low"] <= change["change"] <= change["change_ci_high"] < 0
    # Station-hours are the same for every planner and seed.
    hours = per_seed[["balanced", "empty", "full", "empty_and_full"]].sum(axis=1)
    assert hours.nunique() == 1 and hours.iloc[0] == 2 * 10 * 40
    for name in ("occupancy.png", "hourly.png", "trade_off.png", "NOTE.md", "run.json", "scenario.toml"):
        assert (out / name).stat().st_size > 0
    # Re-running gives the same occupancy (only the decision times differ).
    assert main(args[:-3] + ["--out", str(tmp_path / "again"), "--no-progress"]) == 0
    again = pd.read_csv(tmp_path / "again" / "per_seed.csv")
    pd.testing.assert_frame_equal(per_seed.drop(columns="decision_s_per_hour"), again.drop(columns="decision_s_per_hour"))


def test_compare_on_processed_data_forecasts_from_the_past_and_shows_snapshots(tmp_path, data_dir):
    assert main(["--data-dir", str(data_dir), "ingest", "--synthetic", "--no-progress"]) == 0
    scenario = small_scenario(tmp_path, source="processed", date="2018-09-01", hours=24)
    out = tmp_path / "cmp"
    assert main(["--data-dir", str(data_dir), "compare", "--scenario", scenario, "--period", "2018-09-01:2018-09-14",
                 "--planners", "noop,ortools", "--seeds", "1", "--max-days", "1", "--out", str(out),
                 "--no-progress"]) == 0
    run = json.loads((out / "run.json").read_text())
    # The first week has too little history to forecast from: skipped and said so.
    assert run["days"] == ["2018-09-08"]
    assert len(run["skipped"]) == 7 and "history" in run["skipped"][0]
    assert "2018-09-01" in (out / "NOTE.md").read_text()
    summary = pd.read_csv(out / "occupancy.csv").set_index("planner")
    assert summary.loc["observed", "kind"] == "observed (snapshot instant)"
    assert 0 < summary.loc["observed", "problem_share"] < 1
    assert pd.isna(summary.loc["observed", "lost_trips"])
    # The optimiser, seeing only the forecast, still beats doing nothing on the day's truth.
    assert summary.loc["ortools", "problem_share"] < summary.loc["noop", "problem_share"]
    assert summary.loc["ortools", "bikes_moved"] > 0


@pytest.mark.parametrize("args, message", [
    (["--period", "2018-09-30:2018-09-01"], "END is before START"),
    (["--period", "september"], "expected START:END"),
    (["--period", "2018-09-01:2018-09-01", "--planners", "noop,oracle"], "unknown planner 'oracle'"),
    (["--period", "2018-09-01:2018-09-01", "--scenario", "no-such-scenario"], "no scenario"),
])
def test_compare_reports_bad_arguments(tmp_path, capsys, args, message):
    assert main(["compare", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err


def test_train_agent_writes_a_policy_and_its_model_card(tmp_path):
    scenario = small_scenario(tmp_path, hours=6)
    out = tmp_path / "policy"
    assert main(["train-agent", "--scenario", scenario, "--period", "2018-09-24:2018-09-24", "--steps", "24",
                 "--envs", "2", "--imitate", "1", "--candidates", "6", "--eval-days", "1", "--eval-seeds", "1",
                 "--out", str(out), "--no-progress"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["scenario"] == "small" and card["steps"] == 24 and card["seed"] == 0
    assert card["workers"] == 0 and card["ray_address"] is None
    assert card["days"] == ["2018-09-24"]
    # what every job that plans with it checks: the fleet and the training days' network
    assert card["fleet"] == {"trucks": 2, "truck_capacity": 22, "visits_per_hour": 2, "radius_km": 3.5}
    assert card["network"]["source"] == "synthetic" and card["network"]["stations"] == 40
    assert set(card["evaluation"]["results"]) == {"noop", "ortools", "ppo"}
    assert card["training"]["imitation"]["samples"] == 2 * 6
    # Each simulated day's problem share is in PPO's metrics (2 envs x 2 iterations of a 6-hour day).
    _, shares = read_metrics(out / "ppo", "episode/problem_share")
    assert len(shares) == 4 and ((shares > 0) & (shares <= 1)).all()
    text = (out / "MODEL_CARD.md").read_text()
    assert "small" in text and "PPO vs OR-Tools" in text and "| rollout | envs in the training process |" in text
    # The ppo planner plans from it in a comparison on a day it never trained on ...
    assert main(["compare", "--scenario", scenario, "--period", "2018-09-25:2018-09-25", "--planners", "ppo",
                 "--policy", str(out), "--seeds", "1", "--out", str(tmp_path / "cmp"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "cmp" / "run.json").read_text())["tested_on_training_days"] is False
    # ... is refused on its training day, and runs there only when asked, with the output marked.
    compare_on_training_day = ["compare", "--scenario", scenario, "--period", "2018-09-24:2018-09-24", "--planners",
                               "ppo", "--policy", str(out), "--seeds", "1", "--out", str(tmp_path / "seen"), "--no-progress"]
    assert main(compare_on_training_day) == 2
    assert main([*compare_on_training_day, "--allow-training-days"]) == 0
    run = json.loads((tmp_path / "seen" / "run.json").read_text())
    assert run["tested_on_training_days"] is True and "training days" in run["warnings"][0]
    assert "WARNING" in (tmp_path / "seen" / "NOTE.md").read_text()
    # An existing policy is not overwritten by accident.
    assert main(["train-agent", "--scenario", scenario, "--period", "2018-09-24:2018-09-24", "--steps", "0",
                 "--out", str(out)]) == 2


def test_compare_writes_per_day_pairs_and_the_seed_table(tmp_path):
    scenario = small_scenario(tmp_path, hours=8)
    out = tmp_path / "cmp"
    assert main(["compare", "--scenario", scenario, "--period", "2018-09-24:2018-09-26", "--planners", "noop,greedy",
                 "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    per_day = pd.read_csv(out / "per_day.csv")
    assert len(per_day) == 2 * 2 * 3 and set(per_day["day"]) == {0, 1, 2}
    summary = pd.read_csv(out / "occupancy.csv").set_index("planner")
    per_seed = pd.read_csv(out / "per_seed.csv")
    # occupancy.csv reports counts of events per day: the seeds' totals over 3 days, divided by 3
    noop_lost = per_seed.loc[per_seed.planner == "noop", "lost_trips"].mean() / 3
    assert summary.loc["noop", "lost_trips"] == pytest.approx(noop_lost)
    assert summary.loc["greedy", "objective"] < summary.loc["noop", "objective"]
    # paired by day: the day's difference averaged over seeds; its bootstrap interval brackets it
    paired = pd.read_csv(out / "paired.csv")
    row = paired[(paired.planner == "greedy") & (paired.baseline == "noop") & (paired.metric == "objective")].iloc[0]
    daily = per_day.groupby(["day", "planner"])["objective"].mean().unstack()
    assert row["diff"] == pytest.approx((daily["greedy"] - daily["noop"]).mean())
    assert row["diff_ci_low"] <= row["diff"] <= row["diff_ci_high"] and row["days"] == 3
    # the seed's table: each planner at the hour start and within the hour, station-hours complete
    table = pd.read_csv(out / "seed_table.csv")
    assert list(table["measured"].unique()) == ["at the hour start", "within the hour"]
    totals = table[["balanced", "empty", "full", "empty_and_full"]].sum(axis=1)
    assert (totals == 3 * 8 * 40).all()
    start = table[(table.planner == "noop") & (table.measured == "at the hour start")].iloc[0]
    assert start["problem_share"] == pytest.approx(summary.loc["noop", "problem_share_at_hour_start"])
    assert start["problem_share"] <= table[(table.planner == "noop") & (table.measured == "within the hour")
                                           ]["problem_share"].iloc[0]


def test_compare_forecasts_with_a_demand_model_trained_before_the_period(tmp_path, data_dir):
    assert main(["--data-dir", str(data_dir), "ingest", "--synthetic", "--no-progress"]) == 0
    models = tmp_path / "models"
    assert main(["--data-dir", str(data_dir), "demand", "train", "--span", "2018-09-01:2018-09-14", "--model",
                 "lightgbm", "--rounds", "10", "--holdout-days", "0", "--version", "early", "--out-root", str(models),
                 "--no-progress"]) == 0
    scenario = small_scenario(tmp_path, source="processed", date="2018-09-15", hours=24)
    run = ["--data-dir", str(data_dir), "compare", "--scenario", scenario, "--planners", "noop,greedy", "--seeds", "1",
           "--max-days", "1", "--demand-model", str(models / "demand" / "early"), "--no-progress"]
    assert main([*run, "--period", "2018-09-15:2018-09-21", "--out", str(tmp_path / "after")]) == 0
    info = json.loads((tmp_path / "after" / "run.json").read_text())
    assert info["forecast"].endswith("early") and info["tested_on_training_days"] is False
    # a model whose data reaches into the period is refused, or marked when allowed
    assert main([*run, "--period", "2018-09-10:2018-09-21", "--out", str(tmp_path / "inside")]) == 2
    assert main([*run, "--period", "2018-09-10:2018-09-21", "--out", str(tmp_path / "inside"),
                 "--allow-training-days"]) == 0
    assert json.loads((tmp_path / "inside" / "run.json").read_text())["tested_on_training_days"] is True


def test_a_perfect_forecast_planner_sees_the_truth(tmp_path, data_dir):
    """``<planner>-perfect`` plans on the day's truth: on processed data, where the forecast is
    the history's cell rates, OR-Tools (whose stop values read the rates) plans otherwise."""
    assert main(["--data-dir", str(data_dir), "ingest", "--synthetic", "--no-progress"]) == 0
    scenario = small_scenario(tmp_path, source="processed", date="2018-09-15", hours=24)
    out = tmp_path / "cmp"
    assert main(["--data-dir", str(data_dir), "compare", "--scenario", scenario, "--period", "2018-09-15:2018-09-30",
                 "--planners", "noop,ortools,ortools-perfect", "--seeds", "1", "--max-days", "1", "--time-limit", "0.2",
                 "--out", str(out), "--no-progress"]) == 0
    per_day = pd.read_csv(out / "per_day.csv")
    seen = per_day[per_day.planner == "ortools"].set_index("day")
    perfect = per_day[per_day.planner == "ortools-perfect"].set_index("day")
    assert not seen[["lost_trips", "bikes_moved"]].equals(perfect[["lost_trips", "bikes_moved"]])
    assert (perfect["problem_share"] < per_day[per_day.planner == "noop"].set_index("day")["problem_share"]).all()


def test_a_weight_sweep_moves_ortools_along_the_trade_off(tmp_path):
    """Weighting lost trips more makes OR-Tools lose fewer of them (the trade-off plot's points)."""
    scenario = small_scenario(tmp_path, hours=12)
    out = tmp_path / "cmp"
    assert main(["compare", "--scenario", scenario, "--period", "2018-09-24:2018-09-24", "--planners",
                 "ortools-lost0,ortools-lost5", "--seeds", "2", "--time-limit", "0.2", "--out", str(out),
                 "--no-progress"]) == 0
    summary = pd.read_csv(out / "occupancy.csv").set_index("planner")
    assert summary.loc["ortools-lost5", "lost_trips"] < summary.loc["ortools-lost0", "lost_trips"]
    assert (out / "trade_off.png").stat().st_size > 0
    assert main(["compare", "--scenario", scenario, "--period", "2018-09-24:2018-09-24", "--planners", "ortools-lostx",
                 "--out", str(tmp_path / "bad")]) == 2
