"""The ``bicimad sim`` commands end to end."""

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata.schemas import OCCUPANCY_SUMMARY_COLUMNS, read_table
from bicimad.sim.scenario import Scenario, load_scenario, write_scenario


@pytest.fixture
def small_toml(tmp_path):
    scenario = Scenario(name="tiny").override({"network.stations": 30, "fleet.trucks": 3, "episode.hours": 4})
    return write_scenario(scenario, tmp_path / "tiny.toml"), scenario


@pytest.mark.parametrize("planner", ["none", "greedy"])
def test_sim_run_writes_results_and_scenario(data_dir, small_toml, planner, capsys):
    path, scenario = small_toml
    assert main(["sim", "run", "--scenario", str(path), "--planner", planner, "--seed", "3"]) == 0
    runs = list((data_dir / "runs" / "sim").iterdir())
    assert len(runs) == 1 and runs[0].name == f"tiny-2018-09-27-{planner}-3"
    out = runs[0]
    assert load_scenario(out / "scenario.toml") == scenario
    occupancy = read_table("occupancy", out / "occupancy.parquet")
    assert len(occupancy) == 4 * 30
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == list(OCCUPANCY_SUMMARY_COLUMNS)
    assert summary.loc[0, "lost_trips"] == occupancy["lost_trips"].sum()
    assert (summary.loc[0, "bikes_moved"] > 0) == (planner != "none")
    assert len(pd.read_csv(out / "steps.csv")) == 4
    assert "problem_share" in capsys.readouterr().out


def test_sim_run_bad_scenario_names_the_key(tmp_path, data_dir, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[fleet]\ntrucks = 6\nradius = 3.5\n")
    assert main(["sim", "run", "--scenario", str(bad)]) == 2
    assert "unknown key fleet.radius" in capsys.readouterr().err


def test_fidelity_without_data_is_a_clear_error(data_dir, capsys):
    assert main(["sim", "fidelity", "--period", "2018-09"]) == 3
    assert "bicimad ingest" in capsys.readouterr().err


def test_fidelity_on_real_september_2018(real_processed, tmp_path, capsys):
    """No-truck runs from real 7 h snapshots beat persistence at 2 hours on Sep 2018."""
    root, _ = real_processed
    out = tmp_path / "fid"
    assert main(["--data-dir", str(root), "sim", "fidelity", "--period", "2018-09", "--origins", "7",
                 "--horizons", "2", "--draws", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out / "fidelity-2018-09.csv")
    assert list(table["horizon"]) == [1, 2]
    assert table["n"].min() > 25 * 160  # most days x stations
    two = table.set_index("horizon").loc[2]
    assert two["mae_sim"] < two["mae_persistence"]
    assert 0 <= two["truck_error_share"] < 0.5
    assert "truck move" in capsys.readouterr().out


def test_sim_run_seed_fleet_on_the_real_2018_network(real_processed, tmp_path):
    """The bundled seed-fleet scenario on the real network of 2018-09-27 (snapshot at midnight,
    rates fitted to Sep 2018): 172 stations x 24 hours, the greedy planner moves bikes."""
    root, _ = real_processed
    out = tmp_path / "run"
    assert main(["--data-dir", str(root), "sim", "run", "--scenario", "seed-fleet-2018", "--planner", "greedy",
                 "--out", str(out)]) == 0
    occupancy = read_table("occupancy", out / "occupancy.parquet")
    assert occupancy["station_id"].nunique() == 172 and occupancy["hour"].nunique() == 24
    assert str(occupancy["hour"].min()) == "2018-09-27 00:00:00+02:00"
    summary = pd.read_csv(out / "summary.csv").iloc[0]
    assert summary["bikes_moved"] > 0 and summary["truck_km"] > 0
    assert load_scenario(out / "scenario.toml") == load_scenario("seed-fleet-2018")


def test_sim_run_on_a_synthetic_saturday_uses_weekend_demand(data_dir, small_toml):
    path, _ = small_toml
    lost = {}
    for date in ("2018-09-27", "2018-09-29"):           # a Thursday, a Saturday
        assert main(["sim", "run", "--scenario", str(path), "--planner", "none", "--seed", "3", "--date", date]) == 0
        out = data_dir / "runs" / "sim" / f"tiny-{date}-none-3"
        occupancy = read_table("occupancy", out / "occupancy.parquet")
        assert occupancy["hour"].dt.date.astype(str).eq(date).all()
        lost[date] = pd.read_csv(out / "summary.csv").loc[0, ["lost_trips", "diverted_returns"]].to_numpy()
    assert not (lost["2018-09-27"] == lost["2018-09-29"]).all()
