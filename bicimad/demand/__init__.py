"""Hourly demand per station: targets, features, models, backtests, forecasts and OD.

Modules, in the order data flows through them:

* :mod:`~bicimad.demand.calendar` — Madrid holidays (the `holidays` package plus the city's two days) and day types;
* :mod:`~bicimad.demand.panel` — ``station_hours`` as a (day, hour, station) panel;
* :mod:`~bicimad.demand.rates` — gross rates from net flow (Skellam, with shrinkage), truck-move
  flags, ``fit_period_rates`` (a period's own rates: the simulator's truth for evaluation);
* :mod:`~bicimad.demand.features` — day-ahead features;
* :mod:`~bicimad.demand.models` — LightGBM (Poisson), historical mean, seasonal naive;
* :mod:`~bicimad.demand.backtest` — rolling-origin backtest, metrics and plots;
* :mod:`~bicimad.demand.forecast` — ``forecast_day``: the ``forecast`` table for one day, with fallbacks;
* :mod:`~bicimad.demand.od` — ``build_od``: the ``od`` table from trips or distance decay;
* :mod:`~bicimad.demand.synthetic` — station hours drawn from known rates (tests, default model).
"""
