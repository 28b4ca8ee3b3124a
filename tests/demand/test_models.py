import copy

import numpy as np
import pytest

from bicimad.demand.backtest import run_backtest, skellam_parts
from bicimad.demand.models import DemandModel, LightGBMDemand, make_model
from bicimad.demand.panel import build_panel

FAST = {"lightgbm": {"num_boost_round": 80, "learning_rate": 0.1}}


@pytest.fixture(scope="module")
def city_panel(city):
    return build_panel(city.station_hours, city.stations)


@pytest.fixture(scope="module")
def backtest(city_panel):
    train = city_panel.day_mask("2019-07-01", "2019-09-16")
    test = city_panel.day_mask("2019-09-16", "2019-10-07")
    return run_backtest(city_panel, train, test, model_kwargs=FAST)


def test_backtest_ranks_models_against_the_truth(backtest, city):
    m = backtest.metrics
    assert set(m) == {"lightgbm", "historical_mean", "seasonal_naive"}
    for name in m:
        assert set(m[name]) >= {"mae", "rmse", "poisson_deviance"}
    # The truth's own net rates, scored on the same hours, bound what any forecast can do.
    types = backtest.panel.day_types[backtest.test_days]
    oracle = (city.returns - city.pickup)[types]
    oracle_mae = np.abs(oracle - backtest.actual_net)[backtest.rider].mean()
    assert m["lightgbm"]["mae"] < 1.05 * m["historical_mean"]["mae"]
    assert m["lightgbm"]["mae"] < 0.8 * m["seasonal_naive"]["mae"]
    assert m["lightgbm"]["mae"] < 1.05 * oracle_mae
    assert m["lightgbm"]["poisson_deviance"] < m["seasonal_naive"]["poisson_deviance"]
    assert m["lightgbm"]["mae_all_hours"] >= m["lightgbm"]["mae"]      # truck moves are harder still


def test_forecast_ignores_the_day_itself_and_later(city_panel):
    panel = copy.deepcopy(city_panel)
    model = make_model("lightgbm", **FAST["lightgbm"]).fit(panel, panel.day_mask("2019-07-01", "2019-09-01"))
    day = panel.day_index("2019-09-10")
    before = model.predict_rates(panel, np.array([day]))
    panel.net[day:] += 5.0
    panel.bikes[day:] = 0.0
    after = model.predict_rates(panel, np.array([day]))
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])


@pytest.mark.parametrize("name", ["lightgbm", "historical_mean", "seasonal_naive"])
def test_save_load_round_trip(name, city, tmp_path):
    panel = build_panel(city.station_hours, city.stations)
    train = panel.day_mask("2019-07-01", "2019-08-15")
    model = make_model(name, **FAST.get(name, {})).fit(panel, train)
    days = np.arange(panel.day_index("2019-08-15"), panel.day_index("2019-08-18"))
    expected = model.predict_rates(panel, days)
    loaded = DemandModel.load(model.save(tmp_path / name))
    assert type(loaded) is type(model)
    got = loaded.predict_rates(panel, days)
    np.testing.assert_allclose(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1])
    assert (got[0] >= 0).all() and (got[1] >= 0).all()


def test_lightgbm_learns_gross_counts_where_trips_exist(make_city):
    truth = make_city(21, 15, "2019-09-02", 56, with_trips=True)
    panel = build_panel(truth.station_hours, truth.stations)
    model = LightGBMDemand(num_boost_round=80, learning_rate=0.1).fit(panel, panel.day_mask("2019-09-02", "2019-10-21"))
    assert model.gross_mode
    day = panel.day_index("2019-10-23")                    # a Wednesday
    pick, ret = model.predict_rates(panel, np.array([day]))
    assert abs(pick[0].sum() / truth.pickup[0].sum() - 1) < 0.1
    assert abs(ret[0].sum() / truth.returns[0].sum() - 1) < 0.1
    assert np.corrcoef(pick[0].ravel(), truth.pickup[0].ravel())[0, 1] > 0.9


def test_skellam_parts_match_simulation():
    rng = np.random.default_rng(0)
    pick, ret = np.array([0.0, 0.5, 3.0, 12.0]), np.array([2.0, 0.5, 1.0, 9.0])
    draws = rng.poisson(ret, (200_000, 4)) - rng.poisson(pick, (200_000, 4))
    pos, neg = skellam_parts(pick, ret)
    np.testing.assert_allclose(pos, np.maximum(draws, 0).mean(axis=0), rtol=0.02, atol=0.005)
    np.testing.assert_allclose(neg, np.maximum(-draws, 0).mean(axis=0), rtol=0.02, atol=0.005)
