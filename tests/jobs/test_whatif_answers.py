"""The what-if's answers: the fleet needed for a target, paired differences against a baseline,
no-op simulated once per demand multiplier and seed, the objective and the report's context."""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pandas as pd
import pytest

from bicimad.jobs import whatif
from bicimad.jobs.whatif import BaselinePoint, SweepGrid, WhatIfConfig, make_tasks, paired_table, trucks_needed
from bicimad.sim import load_scenario
from bicimad.sim.objective import objective


def _intervals(points):
    """An intervals table from (planner, trucks, capacity, mean, lo, hi) rows."""
    return pd.DataFrame([{"planner": p, "trucks": t, "truck_capacity": c, "visits_per_hour": 2, "radius_km": 3.5,
                          "demand_scale": 1.0, "seeds": 3, "mean": m, "lo": lo, "hi": hi}
                         for p, t, c, m, lo, hi in points])


def test_trucks_needed_by_upper_bound_and_by_mean():
    intervals = _intervals([
        ("greedy", 0, 22, 0.30, 0.28, 0.32), ("greedy", 4, 22, 0.20, 0.17, 0.23),
        ("greedy", 8, 22, 0.14, 0.12, 0.17),   # the mean crosses 0.15 here, the upper bound not yet
        ("greedy", 12, 22, 0.11, 0.09, 0.13),  # 528 bikes/h
        ("greedy", 10, 30, 0.10, 0.08, 0.12),  # 600 bikes/h: meets it too, but is the larger fleet
        ("noop", 0, 22, 0.30, 0.28, 0.32), ("noop", 12, 22, 0.30, 0.28, 0.32)])
    needed = trucks_needed(intervals, "problem_share", 0.15).set_index(["planner", "rule"])
    assert needed.loc[("greedy", "upper bound"), ["trucks", "truck_capacity", "bikes_per_hour"]].tolist() == [12, 22, 528]
    assert needed.loc[("greedy", "upper bound"), "hi"] == pytest.approx(0.13)
    assert needed.loc[("greedy", "mean"), "trucks"] == 8 and needed.loc[("greedy", "mean"), "status"] == "reached"
    assert (needed.loc["noop", "status"] == "not reached in the grid").all() and needed.loc["noop", "trucks"].isna().all()
    lines = whatif.needed_lines(needed.reset_index())
    assert any("greedy" in line and "upper bound: 12 trucks x 22 bikes" in line and "mean: 8 trucks" in line
               for line in lines)
    assert any("noop" in line and line.count("not reached in the grid") == 2 for line in lines)


def test_paired_differences_are_taken_seed_by_seed():
    rows = []
    for seed_index, riders in enumerate((100.0, 400.0, 250.0)):  # seeds differ a lot, the effect does not
        for planner, trucks, effect in (("noop", 0, 0.0), ("greedy", 0, 0.0), ("greedy", 6, -30.0)):
            rows.append({"planner": planner, "trucks": trucks, "truck_capacity": 22, "visits_per_hour": 2,
                         "radius_km": 3.5, "demand_scale": 1.0, "seed_index": seed_index, "days": 2,
                         "problem_share": riders / 1000 + effect / 1000, "lost_trips": 2 * (riders + effect)})
    paired = paired_table(pd.DataFrame(rows), BaselinePoint(planner="noop", trucks=6, truck_capacity=22,
                                                            visits_per_hour=2, radius_km=3.5))
    six = paired[(paired.planner == "greedy") & (paired.trucks == 6)].iloc[0]
    assert six["pairs"] == 3
    # the same effect on every seed: the paired interval has zero width, the absolute one does not
    assert six["d_lost_trips"] == pytest.approx(-30.0) and six["d_lost_trips_hi"] == pytest.approx(-30.0)
    assert six["d_problem_share"] == pytest.approx(-0.03)
    zero = paired[(paired.planner == "greedy") & (paired.trucks == 0)].iloc[0]
    assert zero["d_lost_trips"] == 0.0
    with pytest.raises(ValueError, match="no such point"):
        paired_table(pd.DataFrame(rows), BaselinePoint(planner="greedy", trucks=4, truck_capacity=22,
                                                       visits_per_hour=2, radius_km=3.5))


@pytest.fixture
def small_scenario(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(textwrap.dedent("""
        name = "small"
        description = "40 stations"
        [network]
        source = "synthetic"
        stations = 40
        seed = 3
    """), encoding="utf-8")
    return path


def test_noop_is_simulated_once_and_does_not_depend_on_the_fleet(small_scenario):
    config = WhatIfConfig(scenario=str(small_scenario), planners=("noop", "greedy"), seeds=2, seed=4,
                          grid=SweepGrid(trucks=(0, 3, 6), truck_capacity=(10, 22)))
    tasks = make_tasks(config)
    answer = whatif.simulations(tasks)
    simulated = set(answer.values())
    assert len(simulated) == 2 + 3 * 2 * 2  # no-op: one per seed; greedy: every fleet x seed
    assert all(answer[t.task_id] == t for t in tasks if t.planner == "greedy")
    # a no-op task with trucks simulated on its own gives what its reused simulation gave
    noop6 = next(t for t in tasks if t.planner == "noop" and t.trucks == 6 and t.truck_capacity == 22)
    reused = whatif.simulate_task(answer[noop6.task_id])
    own = whatif.simulate_task(noop6)
    strip = [{k: v for k, v in r.items() if k not in whatif.TIMING_COLUMNS} for r in (reused, own)]
    assert strip[0] == strip[1] and answer[noop6.task_id] != noop6
    weights = load_scenario(str(small_scenario)).reward
    assert own["objective"] == pytest.approx(objective(own, weights)) and own["objective"] > 0


def test_whatif_answers_the_target_and_names_what_it_simulated(tmp_path, small_scenario):
    config = WhatIfConfig(scenario=str(small_scenario), planners=("noop", "greedy"), seeds=2, seed=4, days=3,
                          start="2018-09-28", target_problem_share=0.5, target_lost_trips=0.0,
                          grid=SweepGrid(trucks=(0, 4)))
    result = whatif.whatif(config, out=tmp_path, workers=1, progress=False)
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 8 and results["task_id"].is_unique and (results["days"] == 3).all()
    noop = results[results.planner == "noop"]
    assert noop.groupby("seed_index")["simulated_as"].nunique().eq(1).all()
    assert (noop.groupby("seed_index")["lost_trips"].nunique() == 1).all()
    greedy4 = results[(results.planner == "greedy") & (results.trucks == 4)]
    assert (greedy4["bikes_moved"] > 0).all() and np.isfinite(results["objective"]).all()
    needed = pd.read_csv(tmp_path / "trucks_needed.csv")
    assert set(needed.metric) == {"problem_share", "lost_trips_per_day"} and len(needed) == 2 * 2 * 2
    # no fleet loses no trips at all; a 50 % problem share is met without trucks
    assert (needed[needed.metric == "lost_trips_per_day"].status == "not reached in the grid").all()
    assert (needed[(needed.metric == "problem_share") & (needed.rule == "mean")].trucks == 0).all()
    text = result.summary()
    assert "not reached in the grid" in text and "6 simulated" in text
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert (paired[paired.planner == "noop"]["d_problem_share"] == 0).all()
    assert (paired[(paired.planner == "greedy") & (paired.trucks == 4)]["d_lost_trips"] < 0).all()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for words in ("synthetic city", "40 stations", "Fri 2018-09-28", "Sat 2018-09-29", "Sun 2018-09-30",
                  "small: 40 stations", "noop, greedy", "Fleet needed", "Paired differences"):
        assert words in page, words
    assert page.count("data:image/png;base64,") == 3  # problem share, fleet metrics, paired differences


def test_bad_target_or_baseline_is_a_usage_error_naming_the_key(tmp_path, small_scenario):
    from bicimad.errors import EXIT_USAGE, CommandError

    config = tmp_path / "sweep.toml"
    config.write_text(f'scenario = "{small_scenario}"\nplanners = ["noop", "greedy"]\n[grid]\ntrucks = [0, 4]\n',
                      encoding="utf-8")
    with pytest.raises(CommandError, match="target_problem_share: a share in 0-1, got 15") as err:
        whatif.whatif_command(str(config), out=tmp_path / "o", target_problem_share=15.0)
    assert err.value.code == EXIT_USAGE
    for baseline, key in (('planner = "ortools"', "baseline.planner"), ('planner = "greedy"\ntrucks = 6', "baseline.trucks")):
        config.write_text(config.read_text() + f"[baseline]\n{baseline}\n", encoding="utf-8")
        with pytest.raises(CommandError, match=key):
            whatif.whatif_command(str(config), out=tmp_path / "o")
        config.write_text(config.read_text().split("[baseline]")[0], encoding="utf-8")
    assert not (tmp_path / "o").exists()  # nothing written before the config is checked


def test_sweep_without_noop_has_no_paired_differences_unless_a_baseline_is_named(tmp_path, small_scenario):
    config = WhatIfConfig(scenario=str(small_scenario), planners=("greedy",), seeds=2, grid=SweepGrid(trucks=(2, 4)))
    result = whatif.whatif(config, out=tmp_path / "none", workers=1, progress=False)
    assert "paired" not in result.written and not (tmp_path / "none" / "paired.csv").exists()
    assert "Paired differences" not in result.written["report"].read_text(encoding="utf-8")
    named = dataclasses.replace(config, baseline=BaselinePoint(planner="greedy", trucks=2))
    paired = pd.read_csv(whatif.whatif(named, out=tmp_path / "named", workers=1, progress=False).written["paired"])
    assert paired.set_index("trucks").loc[2, "d_problem_share"] == 0.0
    assert paired.set_index("trucks").loc[4, "d_truck_km"] > 0  # twice the trucks drive more
