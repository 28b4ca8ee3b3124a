"""How close each forecast is to the simulator's truth, and how close to what the snapshots saw.

    .venv/bin/python tests/bench/forecast_truth.py --data-dir DATA --period 2019-09-01:2019-09-30 \\
        --daily-usage U --scenario seed-fleet-2019 --demand-model DIR [--demand-model DIR2 ...]
    .venv/bin/python -m pytest -m bench tests/bench/forecast_truth.py -s   # real Sep 2018 files, checked

Every day of ``--period`` that ``bicimad compare`` can run is prepared as it prepares it
(:func:`bicimad.jobs.compare.prepare_days`): its truth (the day's own demand) and the forecast
planners see, once with ``compare``'s default forecast (``cells``: cell rates of the 28 days
before) and once per ``--demand-model``. Per forecast, means over days of:

- ``net_vs_truth``: mean absolute error of each station-hour's net flow (returns − pickups)
  against the truth's;
- ``gross_vs_truth``: the same for the gross flow (pickups + returns);
- ``volume_vs_truth``: the forecast's pickups of the day over the truth's;
- ``net_vs_observed``: mean absolute error of the net flow against the net flow the snapshots
  saw, over the station-hours with riders only (not censored, not flagged as a truck move);
- ``truth_net_vs_observed``: the truth's own error there (the same for every forecast: the
  truth reads the day's snapshots, so it is the floor of that column).

and for each of the first four the relative change against ``cells`` with a 95 % bootstrap
interval over days.

Why it matters: a comparison of *planners* in ``compare`` gives every planner the same forecast,
so the truth's construction cancels out; a comparison of *forecasts* by the plans made from them
does not. The truth's net flows are the day's observed ones shrunk towards the period's cell
means, its gross the period's cell gross (:func:`bicimad.demand.calibration.day_truth`), so a
forecast that is itself made of cell means of overlapping days is near the truth by construction.
Rank forecasts on ``net_vs_observed`` (or ``bicimad demand backtest``); read the truth columns as
how far the simulator will judge a forecast by its likeness to cell means.
"""

from __future__ import annotations

import argparse
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from bicimad.demand.models import DemandModel
from bicimad.demand.panel import build_panel
from bicimad.demand.rates import flag_truck_moves
from bicimad.jobs.compare import load_daily_usage, paired_by_day, parse_period, prepare_days
from bicimad.sim.data import Processed
from bicimad.sim.scenario import load_scenario

COLUMNS = ("net_vs_truth", "gross_vs_truth", "volume_vs_truth", "net_vs_observed", "truth_net_vs_observed")
COMPARED = COLUMNS[:4]


def day_errors(day, panel, flags, index: int) -> dict:
    """The columns of one prepared ``day`` (panel day ``index`` holds its snapshots)."""
    column = np.clip(np.searchsorted(panel.station_ids, day.network.station_ids), 0, len(panel.station_ids) - 1)
    known = panel.station_ids[column] == day.network.station_ids
    f_net = day.forecast.return_rate - day.forecast.pickup_rate
    t_net = day.truth.return_rate - day.truth.pickup_rate
    f_gross = day.forecast.return_rate + day.forecast.pickup_rate
    t_gross = day.truth.return_rate + day.truth.pickup_rate
    observed = panel.net[index][:, column]
    riders = np.isfinite(observed) & ~flags[index][:, column] & ~panel.censored[index][:, column] & known[None, :]
    return {"net_vs_truth": float(np.abs(f_net - t_net).mean()),
            "gross_vs_truth": float(np.abs(f_gross - t_gross).mean()),
            "volume_vs_truth": float(day.forecast.pickup_rate.sum() / day.truth.pickup_rate.sum()),
            "net_vs_observed": float(np.abs(f_net - observed)[riders].mean()),
            "truth_net_vs_observed": float(np.abs(t_net - observed)[riders].mean())}


def forecast_errors(scenario, start, end, data_dir, usage, models: dict) -> pd.DataFrame:
    """One row per forecast and day: :data:`COLUMNS`. ``models`` maps a label to a
    :class:`DemandModel` (``None``: compare's default cell rates)."""
    processed = Processed.load(data_dir, with_hours=True)
    panel = build_panel(processed.station_hours, processed.stations, start=start, end=end)
    flags = flag_truck_moves(panel)
    index = {str(d.date()): i for i, d in enumerate(panel.days)}
    rows = []
    for label, model in models.items():
        days, _ = prepare_days(scenario, start, end, data_dir, forecast_model=model, daily_usage=usage)
        rows += [{"forecast": label, "day": day.date, **day_errors(day, panel, flags, index[day.date])} for day in days]
    return pd.DataFrame(rows)


def report(per_day: pd.DataFrame, reference: str = "cells") -> pd.DataFrame:
    """Means per forecast, and each compared column's relative change against ``reference``
    (``<col>_vs_ref``) with its 95 % bootstrap interval over days (``_low``, ``_high``), as
    :func:`bicimad.jobs.compare.paired_by_day` pairs planners."""
    out = per_day.groupby("forecast", sort=False)[list(COLUMNS)].mean()
    paired = paired_by_day(per_day.rename(columns={"forecast": "planner"}), baselines=(reference,), metrics=COMPARED)
    for row in paired.itertuples():
        out.loc[row.planner, [f"{row.metric}_vs_ref", f"{row.metric}_vs_ref_low", f"{row.metric}_vs_ref_high"]] = \
            (row.change, row.change_ci_low, row.change_ci_high)
    return out


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| forecast | net vs truth | gross vs truth | volume / truth's | net vs observed | truth's net vs observed |",
             "|---|---|---|---|---|---|"]
    for label, row in table.iterrows():
        cells = []
        for col in COLUMNS:
            text = f"{row[col]:.3f}"
            if col in COMPARED and label != "cells":
                text += (f" ({row[col + '_vs_ref']:+.1%} [{row[col + '_vs_ref_low']:+.1%}, "
                         f"{row[col + '_vs_ref_high']:+.1%}])")
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The shared files of Sep 2018 the check below ingests (snapshots, station list, bases).
SEP_2018 = ("stations/javomorales_BiciMadAnalysis/EstacionesVacias.xlsx",
            "meta/javomorales_BiciMadAnalysis/EjEstaciones.json",
            "meta/tfm2022_bicimad/bases_bicimad.csv")


@pytest.mark.bench
def test_forecasts_against_truth_and_snapshots_on_sep_2018(shared_data, tmp_path, data_dir):
    """The cell-rate forecast and a historical-mean model fitted on Sep 1-14 2018, over Sep 15-30.
    Checks what must hold whatever the ranking: the truth is the same for both forecasts, and it
    is nearer what the snapshots saw than either forecast (it reads the day's own snapshots)."""
    from bicimad.cli import main
    from bicimad.jobs import demand as demand_job

    raw = tmp_path / "raw"
    for rel in SEP_2018:
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "raw" / rel, raw / rel)
    assert main(["--data-dir", str(data_dir), "ingest", "--from", str(raw)]) == 0
    trained = demand_job.train(span="2018-09-01:2018-09-14", model="historical_mean", version="hm",
                               out_root=tmp_path / "models", holdout_days=0, data_dir=data_dir, progress=False)
    usage = load_daily_usage(shared_data / "calibration" / "bici_disponibilidad_2015-08_2019-10.csv")
    start, end = parse_period("2018-09-15:2018-09-30")
    per_day = forecast_errors(load_scenario("seed-fleet-2018"), start, end, data_dir, usage,
                              {"cells": None, "historical_mean": DemandModel.load(trained.directory)})
    table = report(per_day)
    print(_markdown(table))
    assert set(per_day["forecast"]) == {"cells", "historical_mean"} and per_day["day"].nunique() >= 10
    assert np.isfinite(per_day[list(COLUMNS)].to_numpy()).all()
    truth_floor = per_day.groupby("day")["truth_net_vs_observed"].agg(["min", "max"])
    np.testing.assert_allclose(truth_floor["min"], truth_floor["max"])  # one truth whatever the forecast
    assert (table["truth_net_vs_observed"] < table["net_vs_observed"]).all()
    assert (table["volume_vs_truth"] > 0.5).all() and (table["volume_vs_truth"] < 2).all()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a data folder `bicimad ingest` filled")
    parser.add_argument("--period", required=True, help="START:END, local dates, both included")
    parser.add_argument("--scenario", default="seed-fleet-2019", help="the compare scenario (its riders' counted share)")
    parser.add_argument("--daily-usage", help="EMT's counted trips (bici_disponibilidad_*.csv), as compare takes it")
    parser.add_argument("--demand-model", action="append", default=[], metavar="DIR",
                        help="a `bicimad demand train` folder to compare with the cell rates (repeatable)")
    parser.add_argument("--out", help="write the per-day rows to this CSV")
    args = parser.parse_args(argv)
    start, end = parse_period(args.period)
    models = {"cells": None, **{path: DemandModel.load(path) for path in args.demand_model}}
    per_day = forecast_errors(load_scenario(args.scenario), start, end, args.data_dir,
                              load_daily_usage(args.daily_usage, args.data_dir), models)
    if args.out:
        per_day.to_csv(args.out, index=False)
    print(_markdown(report(per_day)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
