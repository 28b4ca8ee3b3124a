"""Rider streams: destinations follow the OD, arrivals follow the return rates, bad inputs are named."""

import numpy as np
import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.opendata.synthetic import city_truth
from bicimad.sim.network import Network, synthetic_network
from bicimad.sim.riders import Demand, PoissonSampler, balance_od, distance_od, synthetic_demand
from bicimad.sim.scenario import Scenario


def test_destinations_follow_the_hourly_od():
    network = synthetic_network(6, seed=2)
    day = synthetic_demand(network, daily_trips=1e6, seed=2)
    demand = Demand(day.hours[8:10], day.pickup_rate[8:10], day.return_rate[8:10])
    sampler = PoissonSampler(demand, network, Scenario().override({"episode.hours": 2}))
    stream = sampler.draw(np.random.default_rng(0))
    probs = np.diff(np.concatenate([np.zeros((2, 6, 1)), sampler._cdf.reshape(2, 6, 6)], axis=2), axis=2)
    hour = stream.minute // 60
    for h in range(2):
        for i in range(6):
            sel = (hour == h) & (stream.origin == i)
            n = sel.sum()
            assert abs(n - demand.pickup_rate[h, i]) < 5 * np.sqrt(demand.pickup_rate[h, i])
            empirical = np.bincount(stream.dest[sel], minlength=6) / n
            se = np.sqrt(probs[h, i] * (1 - probs[h, i]) / n)
            assert np.all(np.abs(empirical - probs[h, i]) <= 5 * se + 1e-9)
    assert np.all(np.diff(stream.minute) >= 0)


def test_synthetic_network_and_demand_are_the_synthetic_citys_truth():
    city = city_truth(4, n_stations=25)
    network = synthetic_network(25, seed=4)
    np.testing.assert_array_equal(network.station_ids, city.station_id)
    np.testing.assert_array_equal(network.capacity, city.capacity)
    np.testing.assert_array_equal(network.bikes, city.initial_bikes)
    np.testing.assert_allclose(network.lat, city.lat)
    thursday = synthetic_demand(network, "2018-09-27", seed=4)
    saturday = synthetic_demand(network, "2018-09-29", seed=4)
    for demand, day_type in ((thursday, 0), (saturday, 1)):
        assert demand.n_hours == 24 and demand.hours[0] == pd.Timestamp(demand.hours[0].date(), tz=TZ)
        np.testing.assert_allclose(demand.pickup_rate, city.pickup_rate[day_type])
        np.testing.assert_allclose(demand.return_rate, city.return_rate[day_type])
        np.testing.assert_allclose(demand.od[8], city.od_prob(day_type, 8))
    assert saturday.pickup_rate.sum() < thursday.pickup_rate.sum()
    # the autumn DST Sunday has 25 hours; the city draws the repeated 02 h once
    autumn = synthetic_demand(network, "2018-10-28", seed=4)
    assert autumn.n_hours == 25 and autumn.pickup_rate[3].sum() == 0 and autumn.pickup_rate[2].sum() > 0
    np.testing.assert_allclose(autumn.pickup_rate.sum(), city.pickup_rate[1].sum())
    np.testing.assert_allclose(synthetic_demand(network, daily_trips=8000.0, seed=4).pickup_rate,
                               city_truth(4, n_stations=25, trips_per_day=8000.0).pickup_rate[0])
    with pytest.raises(ValueError, match="not the synthetic city of seed 4"):
        synthetic_demand(synthetic_network(25, seed=5), seed=4)


def test_riders_take_an_hourly_od_as_is():
    network = synthetic_network(6, seed=2)
    day = synthetic_demand(network, daily_trips=3e5, seed=2)
    sampler = PoissonSampler(day, network, Scenario())
    probs = np.diff(np.concatenate([np.zeros((24, 6, 1)), sampler._cdf.reshape(24, 6, 6)], axis=2), axis=2)
    np.testing.assert_allclose(probs, day.od, atol=1e-12)  # not re-weighted to the return rates
    stream = sampler.draw(np.random.default_rng(0))
    hour = stream.minute // 60
    for h in (8, 18):
        for i in range(6):
            sel = (hour == h) & (stream.origin == i)
            empirical = np.bincount(stream.dest[sel], minlength=6) / sel.sum()
            se = np.sqrt(day.od[h, i] * (1 - day.od[h, i]) / sel.sum())
            assert np.all(np.abs(empirical - day.od[h, i]) <= 5 * se + 1e-9)


def test_balanced_od_matches_return_rates_and_keeps_rows():
    rng = np.random.default_rng(1)
    network = synthetic_network(12, seed=1)
    od = distance_od(network, 1.5, 0.05)
    pickups = rng.uniform(1, 20, (3, 12))
    returns = rng.uniform(1, 20, (3, 12))
    probs = balance_od(od, pickups, returns)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0)
    expected = np.einsum("hi,hij->hj", pickups, probs)
    target = returns * pickups.sum(axis=1, keepdims=True) / returns.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(expected, target, rtol=1e-3)


def test_demand_from_tables_aligns_and_rejects_bad_rates():
    network = Network.build([10, 20], [40.41, 40.42], [-3.70, -3.69], [20, 20])
    hours = pd.date_range("2019-10-01", periods=2, freq="h", tz=TZ)
    forecast = pd.DataFrame({"station_id": [20, 10, 20, 99], "hour": [hours[0], hours[1], hours[1], hours[0]],
                             "pickup_rate": [1.0, 2.0, 3.0, 9.0], "return_rate": [0.5, 0.5, 0.5, 9.0], "method": "t"})
    demand = Demand.from_tables(network, forecast)
    np.testing.assert_array_equal(demand.pickup_rate, [[0.0, 1.0], [2.0, 3.0]])
    with pytest.raises(ValueError, match="finite and >= 0"):
        Demand(hours, -demand.pickup_rate, demand.return_rate)
    with pytest.raises(ValueError, match="lacks column"):
        Demand.from_tables(network, forecast.drop(columns="return_rate"))


def test_network_rejects_bad_stations():
    with pytest.raises(ValueError, match="station 2 has bikes outside"):
        Network.build([1, 2], [40.4, 40.5], [-3.7, -3.6], [10, 10], bikes=[3, 11])
    with pytest.raises(ValueError, match="duplicate station ids"):
        Network.build([1, 1], [40.4, 40.5], [-3.7, -3.6], [10, 10])


def test_bases_cover_the_network_and_follow_demand():
    from bicimad.sim.network import choose_bases

    network = synthetic_network(210, seed=0)
    demand = synthetic_demand(network, seed=0)
    weights = (demand.pickup_rate + demand.return_rate).sum(axis=0)
    bases = choose_bases(network, 6, weights, radius_km=3.5)
    assert len(set(bases.tolist())) == 6
    assert np.all(network.distance_km[bases].min(axis=0) <= 3.5)  # every station within some truck's reach
    np.testing.assert_array_equal(bases, choose_bases(network, 6, weights, radius_km=3.5))  # deterministic
    # all the weight on one corner of the city pulls a base there
    corner = np.argmax(network.lat + network.lon)
    heavy = np.where(network.distance_km[corner] < 0.5, 1000.0, 1.0)
    assert network.distance_km[choose_bases(network, 6, heavy, radius_km=3.5)][:, corner].min() < 0.5


def test_demand_reuses_its_sampler_and_pickles():
    import pickle

    network = synthetic_network(8, seed=3)
    demand = synthetic_demand(network, seed=3)
    scenario = Scenario()
    assert demand.sampler(network, scenario) is demand.sampler(network, scenario)
    doubled = scenario.override({"riders.demand_multiplier": 2.0})
    assert demand.sampler(network, doubled) is not demand.sampler(network, scenario)
    copy = pickle.loads(pickle.dumps(demand))
    np.testing.assert_array_equal(copy.pickup_rate, demand.pickup_rate)
    a = copy.sampler(network, scenario).draw(np.random.default_rng(1))
    b = demand.sampler(network, scenario).draw(np.random.default_rng(1))
    np.testing.assert_array_equal(a.dest, b.dest)
