"""``bicimad sim validate``: the status-quo replay measured against the snapshots it came from."""

from __future__ import annotations

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.jobs.validate import validate
from bicimad.report.occupancy import occupancy_from_station_hours


def _observed_share(data_root, dates) -> float:
    hours = pd.read_parquet(data_root / "processed" / "station_hours.parquet")
    local = pd.to_datetime(hours["hour"]).dt.tz_convert("Europe/Madrid").dt.strftime("%Y-%m-%d")
    occupancy = occupancy_from_station_hours(hours[local.isin(dates)])
    return float((occupancy["state"] != "balanced").mean())


def test_validate_on_real_sep_2018(real_processed, shared_data, tmp_path):
    root, _ = real_processed
    counts = shared_data / "calibration" / "bici_disponibilidad_2015-08_2019-10.csv"
    result = validate("seed-fleet-2018", "2018-09-10:2018-09-12", seeds=1, out=tmp_path, data_dir=root, progress=False,
                      daily_usage=counts)
    table = result.table.set_index("source")
    assert list(table.index) == ["observed", "status-quo", "noop"]
    assert table["station_hours"].nunique() == 1          # every source on the same station-hours
    # the observed row is the snapshots' own share at the hour start on those days
    assert table.loc["observed", "problem_share_at_hour_start"] == pytest.approx(
        _observed_share(root, ["2018-09-10", "2018-09-11", "2018-09-12"]), abs=0.01)
    # replaying EMT's own moves brings the docked bikes closer to what the snapshots saw
    assert table.loc["status-quo", "bikes_mae"] < table.loc["noop", "bikes_mae"]
    assert result.by_hour.shape == (24, 3)
    # each day's truth is calibrated to its counted trips (14,665 on Mon 10 Sep ...) over the
    # counted share: the riders the simulation serves come within 5 % of the counts
    assert table.loc["status-quo", "pickups_median_abs_error"] < 0.05
    assert 13_000 < table.loc["status-quo", "daily_pickups"] < 16_000
    assert (tmp_path / "validation.csv").is_file() and (tmp_path / "validation_by_hour.csv").is_file()


def test_validate_refuses_a_synthetic_scenario(capsys):
    assert main(["sim", "validate", "--scenario", "synthetic-default", "--period", "2018-09-10:2018-09-11"]) == 2
    assert "needs observed data" in capsys.readouterr().err


def test_validate_on_the_odd_days_only(real_processed, shared_data):
    root, _ = real_processed
    counts = shared_data / "calibration" / "bici_disponibilidad_2015-08_2019-10.csv"
    result = validate("seed-fleet-2018", "2018-09-10:2018-09-13", seeds=1, data_dir=root, progress=False,
                      daily_usage=counts, parity="odd")
    assert result.table["days"].tolist() == [2, 2, 2]   # the 11th and the 13th


def test_fit_riders_finds_unusable_bikes_on_real_sep_2018(real_processed, shared_data, tmp_path):
    from bicimad.jobs.fit_riders import fit_riders
    from bicimad.sim.scenario import load_scenario

    root, _ = real_processed
    counts = shared_data / "calibration" / "bici_disponibilidad_2015-08_2019-10.csv"
    out = tmp_path / "fitted.toml"
    fit = fit_riders("seed-fleet-2018", "2018-09-10:2018-09-14", daily_usage=counts, grid=(0.0, 0.4, 0.8), out=out,
                     data_dir=root, progress=False)
    grid = fit.grid.set_index("share")
    # Poisson riders alone start more station-hours empty than the snapshots, and empty stations
    # at 1 bike too often (log ratio > 0); 0.8 overshoots both; the fit lies between
    assert grid.loc[0.0, "empty_gap"] > 0 > grid.loc[0.8, "empty_gap"]
    assert grid.loc[0.0, "bike_log_ratio_1"] > 0.2 and grid.loc[0.8, "bike_log_ratio_1"] < 0
    assert 0.0 < fit.unusable_bike_share < 0.8 and 0.0 <= fit.unusable_dock_share <= 0.8
    assert ("unusable_dock_share" in fit.at_grid_end) == (fit.unusable_dock_share == 0.8)
    assert "unusable_bike_share" not in fit.at_grid_end
    assert 0.75 < fit.counted_share < 0.97 and fit.pickups_ratio == pytest.approx(1.0, abs=0.02)
    scenario = load_scenario(out)
    assert scenario.riders.unusable_bike_share == fit.unusable_bike_share
    assert scenario.riders.counted_share == fit.counted_share
