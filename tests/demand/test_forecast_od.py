import numpy as np
import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.demand.forecast import forecast_day
from bicimad.demand.models import make_model
from bicimad.demand.od import DEFAULT_DECAY_KM, build_od
from bicimad.demand.panel import build_panel
from bicimad.geo import pairwise_km
from bicimad.opendata.schemas import conform


@pytest.fixture(scope="module")
def fitted(city):
    panel = build_panel(city.station_hours, city.stations, end="2019-09-01")
    return make_model("lightgbm", num_boost_round=60, learning_rate=0.1).fit(panel, np.ones(panel.n_days, dtype=bool))


def test_forecast_day_is_a_complete_valid_table(fitted, city):
    table = forecast_day(fitted, city.station_hours, city.stations, "2019-09-10")
    conform(table, "forecast")
    assert len(table) == 24 * len(city.stations)
    assert table["hour"].dt.tz_convert(TZ).dt.date.eq(pd.Timestamp("2019-09-10").date()).all()
    assert np.isfinite(table[["pickup_rate", "return_rate"]]).all().all()
    assert (table[["pickup_rate", "return_rate"]] >= 0).all().all()
    assert table.attrs["methods"] == {"lightgbm": len(city.stations)}
    # The forecast follows the true weekday pattern of the synthetic city.
    pick = table.pivot(index="hour", columns="station_id", values="pickup_rate").to_numpy()
    assert np.corrcoef(pick.ravel(), city.pickup[1 - 1].ravel())[0, 1] > 0.8


def test_forecast_never_reads_the_day_or_later(fitted, city):
    base = forecast_day(fitted, city.station_hours, city.stations, "2019-09-10")
    changed = city.station_hours.copy()
    later = changed["hour"] >= pd.Timestamp("2019-09-10", tz=TZ)
    changed.loc[later, "net_flow"] = 25
    again = forecast_day(fitted, changed, city.stations, "2019-09-10")
    pd.testing.assert_frame_equal(base, again)


def test_fallbacks_for_new_gappy_and_retired_stations(fitted, city):
    day = pd.Timestamp("2019-09-10", tz=TZ)
    history = city.station_hours
    # Station 3 went silent two weeks ago (a data gap); station 4 was retired long ago;
    # 999 opened yesterday and 1000 opens next month.
    gap = (history["station_id"] == 3) & (history["hour"] >= day - pd.Timedelta(days=15))
    gone = (history["station_id"] == 4) & (history["hour"] >= day - pd.Timedelta(days=60))
    history = history[~gap & ~gone]
    stations = city.stations.assign(last_seen=pd.Series(pd.NaT, index=city.stations.index, dtype=f"datetime64[us, {TZ}]"))
    stations.loc[stations["station_id"] == 4, "last_seen"] = day - pd.Timedelta(days=60)
    new = pd.DataFrame({"station_id": [999, 1000], "lat": [40.42, 40.43], "lon": [-3.70, -3.71], "capacity": [40, 20],
                        "first_seen": [day - pd.Timedelta(days=1), day + pd.Timedelta(days=40)]})
    stations = pd.concat([stations, new], ignore_index=True)
    table = forecast_day(fitted, history, stations, day)
    per_station = table.groupby("station_id")["method"].first()
    assert per_station[3] == "fallback:station_history"
    assert per_station[999] == "fallback:network_profile"
    assert 4 not in per_station.index and 1000 not in per_station.index    # retired; not yet installed
    assert (per_station.drop([3, 999]) == "lightgbm").all()
    assert table.attrs["methods"]["fallback:network_profile"] == 1
    assert np.isfinite(table[["pickup_rate", "return_rate"]]).all().all()
    new_rates = table[table["station_id"] == 999]["pickup_rate"].sum()
    assert new_rates > 0                      # capacity-scaled profile, not zeros


def test_forecast_on_the_spring_dst_day_has_23_hours(make_city):
    truth = make_city(4, 6, "2019-02-20", 40)
    panel = build_panel(truth.station_hours, truth.stations, end="2019-03-31")
    model = make_model("historical_mean").fit(panel, np.ones(panel.n_days, dtype=bool))
    table = forecast_day(model, truth.station_hours, truth.stations, "2019-03-31")
    assert len(table) == 23 * 6
    assert not table.duplicated(["station_id", "hour"]).any()


def test_od_from_distance_decay_alone(city):
    od = build_od(city.stations)
    conform(od, "od")
    sums = od.groupby("from_station")["prob"].sum()
    np.testing.assert_allclose(sums, 1.0)
    # Without trips: P(j | i) ∝ capacity_j · exp(-d_ij / 1.5 km) exactly.
    assert od.attrs["decay_km"] == DEFAULT_DECAY_KM and od.attrs["trips_used"] == 0
    dist = pairwise_km(city.stations["lat"].to_numpy(), city.stations["lon"].to_numpy())
    prob = od["prob"].to_numpy().reshape(len(city.stations), -1)
    cap = city.stations["capacity"].to_numpy()
    residual = np.log(prob / cap[None, :]) + dist / DEFAULT_DECAY_KM
    assert np.ptp(residual, axis=1).max() < 1e-9


def test_od_learns_from_trips_and_fits_the_decay(city):
    rng = np.random.default_rng(3)
    stations = city.stations
    dist = pairwise_km(stations["lat"].to_numpy(), stations["lon"].to_numpy())
    true = stations["capacity"].to_numpy()[None, :] * np.exp(-dist / 0.8)
    true /= true.sum(axis=1, keepdims=True)
    ids = stations["station_id"].to_numpy()
    origins = rng.integers(0, len(ids), 20_000)
    dests = np.array([rng.choice(len(ids), p=true[o]) for o in origins])
    trips = pd.DataFrame({"from_station": ids[origins], "to_station": ids[dests], "user_type": 1})
    staff = pd.DataFrame({"from_station": ids[:1].repeat(500), "to_station": ids[1:2].repeat(500), "user_type": 3})
    od = build_od(stations, pd.concat([trips, staff]))
    assert od.attrs["decay_km"] == pytest.approx(0.8, rel=0.1)
    assert od.attrs["trips_used"] == 20_000                     # staff moves are not demand
    prob = od["prob"].to_numpy().reshape(len(ids), -1)
    assert np.abs(prob - true).max() < 0.05


def test_committed_default_model_forecasts(city):
    from bicimad.config import REPO_ROOT
    from bicimad.demand.forecast import load_model

    model = load_model(REPO_ROOT / "models" / "demand" / "default")
    assert model.name == "lightgbm" and not model.gross_mode
    table = forecast_day(model, city.station_hours, city.stations, "2019-09-10")
    conform(table, "forecast")
    assert len(table) == 24 * len(city.stations)
    assert (table[["pickup_rate", "return_rate"]] >= 0).all().all()
    assert table["pickup_rate"].sum() > 0


def test_calibration_to_counted_trips_keeps_every_net_rate(fitted, city):
    base = forecast_day(fitted, city.station_hours, city.stations, "2019-09-10")
    target = 0.7 * base["pickup_rate"].sum()
    scaled = forecast_day(fitted, city.station_hours, city.stations, "2019-09-10", daily_trips=target)
    assert scaled["pickup_rate"].sum() == pytest.approx(target, rel=1e-6)
    np.testing.assert_allclose(scaled["return_rate"] - scaled["pickup_rate"], base["return_rate"] - base["pickup_rate"],
                               atol=1e-9)
    assert (scaled[["pickup_rate", "return_rate"]] >= 0).all().all()
