import json

import numpy as np
import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.opendata.schemas import read_table, write_table


@pytest.fixture(scope="module")
def processed(city, tmp_path_factory):
    """A data directory whose processed tables hold the synthetic city (snapshot-only)."""
    root = tmp_path_factory.mktemp("data")
    never = pd.Series(pd.NaT, index=city.stations.index, dtype="datetime64[us, Europe/Madrid]")
    stations = city.stations.assign(number=city.stations["station_id"].astype(str), name="s", address="a",
                                    first_seen=never, last_seen=never, source="test")
    write_table(stations, "stations", root / "processed" / "stations.parquet")
    write_table(city.station_hours, "station_hours", root / "processed" / "station_hours.parquet")
    return root


def test_backtest_command(processed, tmp_path, capsys):
    out = tmp_path / "bt"
    code = main(["--data-dir", str(processed), "demand", "backtest", "--train", "2019-08-01:2019-08-31",
                 "--test", "2019-09-01:2019-09-14", "--out", str(out), "--rounds", "20", "--no-progress", "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "lightgbm" in printed and "seasonal_naive" in printed and "vs historical_mean" in printed
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    assert set(metrics) == {"lightgbm", "historical_mean", "seasonal_naive"}
    assert all({"mae", "rmse", "poisson_deviance"} <= set(m) for m in metrics.values())
    for plot in ("predicted_vs_actual_by_hour.png", "error_by_hour.png", "error_by_station_map.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(out / "by_hour.csv")) == 24
    written = json.loads((out / "metrics.json").read_text())
    assert "test_span_cell_mean_in_sample" in written["reference"]
    assert 0 < written["truck_move_share"] < 0.05           # the city has 1 % truck moves


def test_train_then_forecast(processed, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BICIMAD_MODELS_DIR", str(tmp_path / "models"))
    assert main(["--data-dir", str(processed), "demand", "train", "--span", "2019-08-01:2019-08-31",
                 "--rounds", "20", "--threads", "1", "--no-progress", "--version", "v1"]) == 0
    version = tmp_path / "models" / "demand" / "v1"
    meta = json.loads((version / "meta.json").read_text())
    assert meta["span"] == ["2019-08-01", "2019-08-31"]
    assert "net_lag24" in meta["features"] and meta["git"]["commit"]
    assert set(meta["metrics"]["models"]) == {"lightgbm", "historical_mean", "seasonal_naive"}
    assert "Demand model v1" in (version / "MODEL_CARD.md").read_text()

    out = tmp_path / "fc"
    assert main(["--data-dir", str(processed), "demand", "forecast", "--date", "2019-09-03", "--out", str(out)]) == 0
    forecast = read_table("forecast", out / "forecast.parquet")
    od = read_table("od", out / "od.parquet")
    assert len(forecast) == 24 * 25 and forecast["method"].eq("lightgbm").all()
    np.testing.assert_allclose(od.groupby("from_station")["prob"].sum(), 1.0)
    assert json.loads((out / "summary.json").read_text())["methods"] == {"lightgbm": 25}


def test_default_forecast_location_and_bad_input(processed, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BICIMAD_MODELS_DIR", str(tmp_path / "none"))
    # No trained model and no default under this models dir: a clear error, no traceback.
    assert main(["--data-dir", str(processed), "demand", "forecast", "--date", "2019-09-03"]) == 2
    assert "no demand model" in capsys.readouterr().err
    assert main(["--data-dir", str(tmp_path / "empty"), "demand", "backtest", "--train", "2019-07:2019-08",
                 "--test", "2019-09", "--out", str(tmp_path / "x")]) == 2
    assert "station_hours.parquet: missing" in capsys.readouterr().err
    assert main(["--data-dir", str(processed), "demand", "backtest", "--train", "2019-07:2019-09",
                 "--test", "2019-09", "--out", str(tmp_path / "x")]) == 2
    assert "never trains on the future" in capsys.readouterr().err
    assert main(["--data-dir", str(processed), "demand", "backtest", "--train", "July", "--test", "2019-09",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--train: expected START:END" in capsys.readouterr().err
