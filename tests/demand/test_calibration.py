"""Gross demand calibrated to counted trips, and the day-specific truth, on known-truth data and real Sep 2018."""

import numpy as np
import pandas as pd
import pytest

from bicimad.demand.calendar import day_type
from bicimad.demand.calibration import calibrate_days, day_truth, implied_daily_pickups, rates_for_total, scale_for_pickups
from bicimad.demand.panel import build_panel
from bicimad.demand.rates import CellRates, flag_truck_moves
from bicimad.demand.synthetic import demand_profiles, simulate_station_hours, synthetic_stations


class VaryingCity:
    """Known truth with day-to-day variation: each day scales the city's volume by a common
    factor and each station's pickups and returns by factors of its own (an event nearby, a
    busier district), as the real net flow varies between days of one type."""

    def __init__(self, seed=5, n_stations=30, start="2019-09-02", days=63, station_sd=0.4, city_sd=0.1):
        rng = np.random.default_rng(seed)
        self.stations = synthetic_stations(n_stations, rng)
        pickup, returns = demand_profiles(n_stations, rng)
        self.days = pd.date_range(start, periods=days)
        self.types = day_type(self.days)
        frames, self.pickup, self.returns = [], [], []
        for d, date in enumerate(self.days):
            city = rng.lognormal(-city_sd ** 2 / 2, city_sd)
            p = pickup * city * rng.lognormal(-station_sd ** 2 / 2, station_sd, n_stations)
            r = returns * city * rng.lognormal(-station_sd ** 2 / 2, station_sd, n_stations)
            frame, _ = simulate_station_hours(p, r, self.stations, date, 1, rng)
            frames.append(frame)
            self.pickup.append(p[self.types[d]])
            self.returns.append(r[self.types[d]])
        self.station_hours = pd.concat(frames, ignore_index=True)
        self.pickup, self.returns = np.array(self.pickup), np.array(self.returns)   # (days, 24, n)
        self.usage = pd.DataFrame({"date": self.days, "total_trips": np.round(self.pickup.sum(axis=(1, 2))),
                                   "usable": True})


@pytest.fixture(scope="module")
def varying():
    city = VaryingCity()
    panel = build_panel(city.station_hours, city.stations)
    return city, panel, CellRates.fit(panel)


def test_scale_for_pickups_meets_the_target_and_keeps_net():
    rng = np.random.default_rng(0)
    pickup, returns = rng.gamma(2, 1, (24, 40)), rng.gamma(2, 1, (24, 40))
    pickup[0, 0] = np.nan
    for target in (0.6 * np.nansum(pickup), 1.7 * np.nansum(pickup)):
        p, r = rates_for_total(pickup, returns, target)
        assert np.nansum(p) == pytest.approx(target, rel=1e-9)
        np.testing.assert_allclose(r - p, returns - pickup)
        assert np.nanmin(p) >= 0 and np.nanmin(r) >= 0
    net = returns - pickup
    floor = np.nansum(np.maximum(-net, 0))
    assert scale_for_pickups(pickup + returns, net, 0.5 * floor) == 0.0
    assert scale_for_pickups(np.zeros_like(net), net, 2 * floor) == 0.0      # no gross to scale


def test_skellam_runs_high_and_calibration_brings_it_to_the_counts(varying):
    city, panel, cells = varying
    truth = np.array([city.pickup[city.types == t].mean(axis=0) for t in range(3)])   # (3, 24, n)
    implied = implied_daily_pickups(cells, panel.day_types)
    # Station-level day-to-day variation is read as rider volume: well above the truth.
    assert np.median(implied / city.usage["total_trips"]) > 1.1
    calibration = calibrate_days(cells, panel, city.usage)
    np.testing.assert_allclose(calibration.trips, city.usage["total_trips"], rtol=1e-9)
    for t in range(3):
        type_trips = calibration.type_trips[t]
        calibrated, _ = rates_for_total(cells.pickup[t], cells.returns[t], type_trips)
        before, after = np.abs(cells.pickup[t] - truth[t]).mean(), np.abs(calibrated - truth[t]).mean()
        # Weekdays (most days) gain most; 9 Saturdays or Sundays leave noisier cells.
        assert after < (0.6 if t == 0 else 0.9) * before, (t, before, after)


def test_day_truth_recovers_the_days_deviation_better_than_the_cell_mean(varying):
    city, panel, cells = varying
    calibration = calibrate_days(cells, panel, city.usage)
    flags = flag_truck_moves(panel)
    cell_error, day_error, raw_error, hour_alone_error, cell_pick_error, day_pick_error = [], [], [], [], [], []
    for d in range(panel.n_days):
        t = panel.day_types[d]
        pickup, returns = day_truth(panel, cells, d, calibration.trips[d], type_trips=calibration.type_trips[t],
                                    truck_flags=flags)
        assert pickup.sum() == pytest.approx(city.usage["total_trips"].iloc[d], rel=1e-9)
        assert pickup.min() >= 0 and returns.min() >= 0
        true_net = city.returns[d] - city.pickup[d]
        cell_error.append(np.abs(cells.net[t] - true_net).mean())
        day_error.append(np.abs((returns - pickup) - true_net).mean())
        raw_error.append(np.abs(panel.net[d] - true_net).mean())
        alone_pickup, alone_returns = day_truth(panel, cells, d, calibration.trips[d], truck_flags=flags, pool_hours=1,
                                                type_trips=calibration.type_trips[t])
        hour_alone_error.append(np.abs((alone_returns - alone_pickup) - true_net).mean())
        mean_pickup, _ = rates_for_total(cells.pickup[t], cells.returns[t], calibration.type_trips[t])
        cell_pick_error.append(np.abs(mean_pickup - city.pickup[d]).mean())
        day_pick_error.append(np.abs(pickup - city.pickup[d]).mean())
    # An hour's count is mostly Poisson noise, so the shrinkage matters: the day's raw net flow
    # is far worse than the cell mean, the shrunk estimate better than both.
    assert np.mean(day_error) < 0.95 * np.mean(cell_error) < 0.95 * np.mean(raw_error)
    # The day's deviation persists over hours: pooling neighbouring hours beats each hour alone,
    # which still beats the cell mean.
    assert np.mean(day_error) < 0.95 * np.mean(hour_alone_error) < 0.95 * np.mean(cell_error)
    assert np.mean(day_pick_error) < np.mean(cell_pick_error)
    # Better on most days, not only on average.
    assert np.mean(np.array(day_error) < np.array(cell_error)) > 0.75


def test_day_truth_in_a_network_order(varying):
    city, panel, cells = varying
    order = np.array([cells.station_ids[3], 9_999, cells.station_ids[0]])
    pickup, returns = day_truth(panel, cells, 0, 500.0, station_ids=order)
    full_pickup, _ = day_truth(panel, cells, 0, 500.0)
    assert pickup.shape == (24, 3) and (pickup[:, 1] == 0).all() and (returns[:, 1] == 0).all()
    np.testing.assert_allclose(pickup[:, [0, 2]], full_pickup[:, [3, 0]])


@pytest.fixture(scope="module")
def sep2018_period(shared_data, tmp_path_factory):
    from bicimad.cli import main
    from bicimad.opendata.daily_usage import read_daily_usage
    from bicimad.opendata.schemas import read_table

    usage_path = shared_data / "calibration" / "bici_disponibilidad_2015-08_2019-10.csv"
    if not usage_path.exists():
        pytest.skip(f"{usage_path} not found")
    root = tmp_path_factory.mktemp("sep2018")
    snapshots = shared_data / "raw" / "stations" / "javomorales_BiciMadAnalysis" / "EstacionesVacias.xlsx"
    assert main(["--data-dir", str(root), "ingest", "--from", str(snapshots), "--no-progress"]) == 0
    hours = read_table("station_hours", root / "processed" / "station_hours.parquet")
    panel = build_panel(hours, start="2018-09-01", end="2018-10-01")
    return panel, CellRates.fit(panel), read_daily_usage(usage_path)


def test_real_sep_2018_day_truth_matches_the_counted_trips(sep2018_period):
    panel, cells, usage = sep2018_period
    calibration = calibrate_days(cells, panel, usage)
    # The Skellam reading runs 10-64 % above EMT's counts, every day.
    ratio = calibration.implied / calibration.counted
    assert (1.05 < ratio).all() and (ratio < 1.7).all()
    flags = flag_truck_moves(panel)
    for d, count in ((0, 9_714), (9, 14_665), (11, 16_276)):
        assert calibration.counted[d] == count
        pickup, returns = day_truth(panel, cells, d, calibration.trips[d],
                                    type_trips=calibration.type_trips[panel.day_types[d]], truck_flags=flags)
        assert pickup.sum() == pytest.approx(count, rel=1e-9)
        # The day's own flow shows: its net differs from the cell mean, and it keeps the weekday peaks.
        assert np.nanmean(np.abs((returns - pickup) - cells.net[panel.day_types[d]])) > 0.05
        if panel.day_types[d] == 0:
            assert pickup.sum(axis=1).argmax() in (7, 8, 18, 19, 20)
