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
    # each day's truth is calibrated to its counted trips (14,665 on Mon 10 Sep ...)
    assert table.loc["status-quo", "pickups_median_abs_error"] < 1e-6
    assert 14_000 < table.loc["status-quo", "daily_pickups"] < 17_000
    assert (tmp_path / "validation.csv").is_file() and (tmp_path / "validation_by_hour.csv").is_file()


def test_validate_refuses_a_synthetic_scenario(capsys):
    assert main(["sim", "validate", "--scenario", "synthetic-default", "--period", "2018-09-10:2018-09-11"]) == 2
    assert "needs observed data" in capsys.readouterr().err
