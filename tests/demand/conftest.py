"""Station-hour tables drawn from known rates (bicimad.demand.synthetic), shared by the demand tests."""

import numpy as np
import pytest

from bicimad.demand.synthetic import demand_profiles, simulate_station_hours, synthetic_stations


class Truth:
    """Known-truth test data: stations, true rates and a station_hours table drawn from them."""

    def __init__(self, seed, n_stations, start, days, **kwargs):
        rng = np.random.default_rng(seed)
        self.stations = synthetic_stations(n_stations, rng)
        self.pickup, self.returns = demand_profiles(n_stations, rng)
        self.station_hours, self.trucks = simulate_station_hours(
            self.pickup, self.returns, self.stations, start, days, rng, **kwargs)


@pytest.fixture(scope="session")
def make_city():
    """Factory: ``make_city(seed, n_stations, start, days, **simulate_kwargs)``."""
    return Truth


@pytest.fixture(scope="session")
def uncensored_city():
    """30 stations, 13 weeks from Sep 2019, docks never bind, no trucks: net flow is exactly R - P."""
    return Truth(11, 30, "2019-09-02", 91)


@pytest.fixture(scope="session")
def city():
    """25 stations, Jul-Oct 2019 with docks that bind and 1 % truck moves: like the real network."""
    return Truth(7, 25, "2019-07-01", 100, censor=True, truck_share=0.01)
