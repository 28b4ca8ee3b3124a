"""Demand model speed: training on four months and forecasting one day, against the baseline.

Data: station hours drawn from known rates (``bicimad.demand.synthetic``) for 213 stations
over Jul-Oct 2019 (the real network's size and the issue's four months). Measured in the same
run: ``LightGBMDemand.fit`` (300 rounds, 2 threads) against ``HistoricalMean.fit`` (the
baseline), and ``forecast_day`` with each fitted model. Targets: fit < 2 min, forecast < 1 s.

Run: ``.venv/bin/python -m pytest -m bench tests/bench/bench_demand.py -s`` or
``.venv/bin/python tests/bench/bench_demand.py`` (``BICIMAD_BENCH_THREADS`` sets LightGBM's
threads, default 2). Results are printed and written to
``$BICIMAD_BENCH_OUT`` (JSON) if set.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.bench

STATIONS = 213
START, DAYS = "2019-07-01", 123          # Jul-Oct 2019
FORECAST_DAY = "2019-11-01"


def _best_of(func, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - t0)
    return best, result


def measure(threads: int = 2, rounds: int = 300) -> dict:
    from bicimad.demand.forecast import forecast_day
    from bicimad.demand.models import HistoricalMean, LightGBMDemand
    from bicimad.demand.panel import build_panel
    from bicimad.demand.synthetic import demand_profiles, simulate_station_hours, synthetic_stations

    rng = np.random.default_rng(0)
    stations = synthetic_stations(STATIONS, rng)
    pickup, returns = demand_profiles(STATIONS, rng)
    station_hours, _ = simulate_station_hours(pickup, returns, stations, START, DAYS, rng, censor=True,
                                              truck_share=0.005)
    panel = build_panel(station_hours, stations)
    train = np.ones(panel.n_days, dtype=bool)

    fit_base, base = _best_of(lambda: HistoricalMean().fit(panel, train), 3)
    fit_lgb, lgb = _best_of(lambda: LightGBMDemand(num_boost_round=rounds, num_threads=threads).fit(panel, train), 1)
    fc_base, _ = _best_of(lambda: forecast_day(base, station_hours, stations, FORECAST_DAY), 5)
    fc_lgb, table = _best_of(lambda: forecast_day(lgb, station_hours, stations, FORECAST_DAY), 5)
    return {
        "stations": STATIONS, "days": DAYS, "station_hours": len(station_hours), "threads": threads, "rounds": rounds,
        "fit_s": {"lightgbm": fit_lgb, "historical_mean": fit_base, "ratio": fit_lgb / fit_base},
        "forecast_s": {"lightgbm": fc_lgb, "historical_mean": fc_base, "ratio": fc_lgb / fc_base},
        "forecast_rows": len(table),
    }


def _report(result: dict) -> None:
    print(f"\n{result['stations']} stations x {result['days']} days ({result['station_hours']:,} station-hours), "
          f"LightGBM {result['rounds']} rounds on {result['threads']} threads")
    for what, target in (("fit_s", 120), ("forecast_s", 1)):
        r = result[what]
        print(f"{what:>10}: lightgbm {r['lightgbm']:.2f} s, historical_mean {r['historical_mean']:.3f} s "
              f"(ratio {r['ratio']:.0f}x); target < {target} s")
    if os.environ.get("BICIMAD_BENCH_OUT"):
        with open(os.environ["BICIMAD_BENCH_OUT"], "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


def test_train_four_months_and_forecast_one_day():
    result = measure(threads=int(os.environ.get("BICIMAD_BENCH_THREADS", 2)))
    _report(result)
    assert result["forecast_rows"] == 24 * STATIONS


if __name__ == "__main__":
    _report(measure(threads=int(os.environ.get("BICIMAD_BENCH_THREADS", 2))))
