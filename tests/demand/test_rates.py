import numpy as np
import pandas as pd

from bicimad.demand.panel import build_panel
from bicimad.demand.rates import CellRates, fit_period_rates, flag_truck_moves
from bicimad.opendata.schemas import conform


def test_skellam_recovers_gross_rates_from_net_flow(uncensored_city):
    panel = build_panel(uncensored_city.station_hours, uncensored_city.stations)
    assert np.isnan(panel.pickups).all()        # snapshot-only data: net flow is all there is
    cells = CellRates.fit(panel)
    assert cells.method == "skellam"
    true_gross = uncensored_city.pickup + uncensored_city.returns
    true_net = uncensored_city.returns - uncensored_city.pickup
    # Network totals and per-station weekday totals come back closely ...
    assert abs(cells.gross.sum() / true_gross.sum() - 1) < 0.03
    station_day = cells.gross[0].sum(axis=0) / true_gross[0].sum(axis=0)
    assert np.median(np.abs(station_day - 1)) < 0.05 and np.abs(station_day - 1).max() < 0.15
    # ... and so does each direction separately, not only their sum.
    assert np.abs(cells.pickup[0].sum(0) / uncensored_city.pickup[0].sum(0) - 1).max() < 0.2
    assert np.abs(cells.net - true_net).mean() < 0.25
    assert (cells.pickup >= 0).all() and (cells.returns >= 0).all()


def test_shrinkage_beats_raw_cell_moments(uncensored_city):
    panel = build_panel(uncensored_city.station_hours, uncensored_city.stations)
    true_gross = uncensored_city.pickup + uncensored_city.returns
    shrunk = np.abs(CellRates.fit(panel, shrinkage=4).gross - true_gross).mean()
    raw = np.abs(CellRates.fit(panel, shrinkage=0).gross - true_gross).mean()
    assert shrunk < 0.9 * raw


def test_gross_counts_are_used_where_trips_exist(make_city):
    truth = make_city(3, 10, "2019-09-02", 28, with_trips=True)
    cells = CellRates.fit(build_panel(truth.station_hours, truth.stations))
    assert cells.method == "trips"
    weekday_pickups = cells.pickup[0].sum() / truth.pickup[0].sum()
    assert abs(weekday_pickups - 1) < 0.05


def test_truck_moves_are_flagged(make_city):
    truth = make_city(5, 30, "2019-09-02", 63, truck_share=0.02)
    panel = build_panel(truth.station_hours, truth.stations)
    flags = flag_truck_moves(panel)
    local = pd.to_datetime(truth.station_hours["hour"]).dt.tz_localize(None)
    d = ((local.dt.normalize() - panel.days[0]).dt.days).to_numpy()
    flagged = flags[d, local.dt.hour.to_numpy(), panel.station_ids.searchsorted(truth.station_hours["station_id"])]
    assert truth.trucks.sum() > 500
    assert flagged[truth.trucks].mean() > 0.9           # recall
    assert truth.trucks[flagged].mean() > 0.97          # precision
    assert flagged[~truth.trucks].mean() < 0.001        # rider hours almost never flagged


def test_calibration_keeps_net_and_sets_the_daily_total(uncensored_city):
    cells = CellRates.fit(build_panel(uncensored_city.station_hours, uncensored_city.stations))
    scaled = cells.calibrated(0.7 * cells.pickup[0].sum())
    assert np.isclose(scaled.pickup[0].sum(), 0.7 * cells.pickup[0].sum(), rtol=0.02)
    np.testing.assert_allclose(scaled.net, cells.net, atol=1e-9)


def test_period_rates_are_a_valid_forecast_table(city):
    rates = fit_period_rates(city.station_hours, "2019-09-02", "2019-09-30", stations=city.stations)
    table = conform(rates, "forecast").to_pandas()
    assert len(table) == 28 * 24 * len(city.stations)
    assert (table["pickup_rate"] >= 0).all() and (table["return_rate"] >= 0).all()
    assert table["method"].eq("period_fit:skellam").all()
    # Fitted to its own four weeks, the weekday rates follow the true ones.
    weekday = table[table["hour"].dt.date == pd.Timestamp("2019-09-04").date()]     # a Wednesday
    fitted = (weekday["return_rate"] - weekday["pickup_rate"]).to_numpy().reshape(len(city.stations), 24).T
    true_net = city.returns[0] - city.pickup[0]
    assert np.corrcoef(fitted.ravel(), true_net.ravel())[0, 1] > 0.7


def test_period_rates_of_a_short_period_keep_every_station(city):
    # Monday to Friday only: the weekend day types are never seen, yet the stations are fitted
    # (all but those with an hour never observed uncensored in those five days).
    rates = fit_period_rates(city.station_hours, "2019-09-02", "2019-09-07", stations=city.stations)
    kept = rates["station_id"].nunique()
    assert kept >= 0.9 * len(city.stations)
    assert len(rates) == 5 * 24 * kept
    assert np.isfinite(rates[["pickup_rate", "return_rate"]].to_numpy()).all()

