"""Demand volume calibration against EMT's counted trips (``bicimad.demand.calibration``).

Data: the real snapshots and EMT's daily usage series in the shared data, ingested into a
temporary folder (or ``$BICIMAD_BENCH_DATA``, a data folder where ``bicimad ingest --from
<shared>/raw`` already ran). Measured:

* per period (Sep 2018, Oct 2019): daily pickups implied by the Skellam cells fitted to the
  period (the old truth), by a scale per day type fitted on the period's *other* days
  (leave-one-day-out: what calibration gives without the day's own count), and by the
  day-specific truth, each against the counted trips: median absolute error over days;
* where the inflation comes from (module docstring of ``bicimad.demand.calibration``);
* against the one real per-station count inside a snapshot period, the 10,695 trips of Thu
  27 Sep 2018 (origins by hour, 07-10, 14-16 and 17-20 h): old cells, cells calibrated to
  the day's count, and the day-specific truth;
* against real per-station counts outside the snapshot periods: Sep 2018 cells (same
  network) against Fri 20 / Sat 21 Jul 2018 (per-station hourly pickups) and the morning of
  Wed 27 Jun 2018 (4,011 trips, hours 0-9): total volume error, MAE of per-station pickups,
  MAE of the share of pickups by hour and by station, old (as fitted) and new (calibrated to
  that day's count).

Run: ``.venv/bin/python tests/bench/bench_calibration.py`` or
``.venv/bin/python -m pytest -m bench tests/bench/bench_calibration.py -s``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.bench

PERIODS = {"Sep 2018": ("2018-09-01", "2018-10-01"), "Oct 2019": ("2019-10-01", "2019-11-01")}
USAGE = "calibration/bici_disponibilidad_2015-08_2019-10.csv"


def _processed(shared: Path, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from bicimad.cli import main
    from bicimad.opendata.schemas import read_table

    if not (root / "processed" / "station_hours.parquet").exists():
        assert main(["--data-dir", str(root), "ingest", "--from", str(shared / "raw"), "--no-progress"]) == 0
    return (read_table("station_hours", root / "processed" / "station_hours.parquet"),
            read_table("stations", root / "processed" / "stations.parquet"))


def period_errors(hours, stations, usage, start, end) -> dict:
    """Median absolute error over days of the old, leave-one-out and day-specific pickups."""
    from bicimad.demand.calibration import calibrate_days, day_truth, scale_for_pickups
    from bicimad.demand.panel import build_panel
    from bicimad.demand.rates import CellRates, flag_truck_moves

    panel = build_panel(hours, stations, start=start, end=end)
    cells = CellRates.fit(panel)
    cal = calibrate_days(cells, panel, usage)
    flags = flag_truck_moves(panel)
    counted, types = cal.counted, panel.day_types
    loo, day = np.full(panel.n_days, np.nan), np.full(panel.n_days, np.nan)
    for d in np.flatnonzero(np.isfinite(counted)):
        others = (types == types[d]) & np.isfinite(counted) & (np.arange(panel.n_days) != d)
        if others.any():
            t = types[d]
            s = scale_for_pickups(cells.gross[t], cells.net[t], counted[others].mean())
            loo[d] = np.nansum((np.maximum(s * cells.gross[t], np.abs(cells.net[t])) - cells.net[t]) / 2)
        pickup, _ = day_truth(panel, cells, d, cal.trips[d], type_trips=cal.type_trips[types[d]], truck_flags=flags)
        day[d] = pickup.sum()

    def medae(values):
        rel = np.abs(values - counted) / counted
        return {"trips": float(np.nanmedian(np.abs(values - counted))), "share": float(np.nanmedian(rel))}

    ratio = cal.implied / counted
    return {"days": int(np.isfinite(counted).sum()), "old": medae(cal.implied), "leave_one_out": medae(loo),
            "day_truth": medae(day), "old_ratio_by_type": {t: float(np.nanmean(ratio[types == i]))
                                                          for i, t in enumerate(("weekday", "saturday", "sunday_holiday"))
                                                          if (types == i).any()},
            "inflation": inflation_sources(panel, cells, counted)}


def inflation_sources(panel, cells, counted) -> dict:
    """Measured pieces of the Skellam reading's excess over the counts (weekday cells)."""
    from bicimad.demand.rates import CellRates, flag_truck_moves

    weekday = panel.day_types == 0
    cv2 = float(np.nanvar(counted[weekday]) / np.nanmean(counted[weekday]) ** 2)
    city_share = cv2 * float(np.nansum(cells.net[0] ** 2) / np.nansum(cells.gross[0]))
    strict = CellRates.fit(panel, truck_flags=flag_truck_moves(panel, min_jump=5, k=3))
    return {"city_volume_share_of_gross": city_share,
            "stricter_flag_drop": 1 - float(np.nansum(strict.pickup[0]) / np.nansum(cells.pickup[0])),
            "stricter_flag_drop_poisson": _poisson_flag_drop(cells)}


def _poisson_flag_drop(cells) -> float:
    """What the same stricter flag trims from pure Poisson riders at these cells' rates."""
    from bicimad.demand.panel import build_panel
    from bicimad.demand.rates import CellRates, flag_truck_moves
    from bicimad.demand.synthetic import simulate_station_hours

    rng = np.random.default_rng(0)
    known = np.isfinite(cells.pickup).all(axis=(0, 1))
    pickup, returns = np.clip(cells.pickup[:, :, known], 0, None), np.clip(cells.returns[:, :, known], 0, None)
    ids = np.arange(1, known.sum() + 1)
    stations = pd.DataFrame({"station_id": ids, "lat": 40.4, "lon": -3.7, "capacity": 24})
    hours, _ = simulate_station_hours(pickup, returns, stations, "2019-09-02", 28, rng)
    panel = build_panel(hours, stations)
    loose = CellRates.fit(panel)
    strict = CellRates.fit(panel, truck_flags=flag_truck_moves(panel, min_jump=5, k=3))
    return 1 - float(np.nansum(strict.pickup[0]) / np.nansum(loose.pickup[0]))


def _compare_counts(old: np.ndarray, new: np.ndarray, real: np.ndarray) -> dict:
    """Errors of per-(hour, station) pickups ``old``/``new`` against ``real`` (same shape)."""
    out = {"real_total": float(real.sum())}
    for name, est in (("old", old), ("new", new)):
        out[name] = {
            "total": float(est.sum()), "total_error": float(est.sum() / real.sum() - 1),
            "station_mae": float(np.abs(est.sum(axis=0) - real.sum(axis=0)).mean()),
            "hour_share_mae_pp": float(100 * np.abs(est.sum(axis=1) / est.sum() - real.sum(axis=1) / real.sum()).mean()),
            "station_share_mae_pp": float(100 * np.abs(est.sum(axis=0) / est.sum() - real.sum(axis=0) / real.sum()).mean()),
        }
    return out


def sep27_check(root: Path, hours, stations, usage) -> dict:
    """Pickups per station-hour on 2018-09-27 (hours with real trips) by each method."""
    from bicimad.demand.calibration import calibrate_days, day_truth, rates_for_total
    from bicimad.demand.panel import build_panel
    from bicimad.demand.rates import CellRates, flag_truck_moves
    from bicimad.opendata.schemas import read_table

    trips = read_table("trips", root / "processed" / "trips.parquet")
    trips = trips[trips["source"].str.contains("Usos092018_Estaciones", regex=False)]
    panel = build_panel(hours, stations, start="2018-09-01", end="2018-10-01")
    cells = CellRates.fit(panel)
    cal = calibrate_days(cells, panel, usage)
    d = panel.day_index("2018-09-27")
    local = trips["unplug_ts"].dt.tz_convert("Europe/Madrid")
    ids = np.union1d(trips["from_station"].unique(), trips["to_station"].dropna().unique()).astype(int)
    real = pd.crosstab(local.dt.hour, trips["from_station"]).reindex(columns=ids, fill_value=0)
    arrivals = pd.crosstab(local.dt.hour, trips["to_station"]).reindex(index=real.index, columns=ids, fill_value=0)
    column = np.clip(np.searchsorted(cells.station_ids, ids), 0, len(cells.station_ids) - 1)
    keep = (cells.station_ids[column] == ids) & np.isfinite(cells.pickup[0][:, column]).all(axis=0)
    rows, columns = real.index.to_numpy(), column[keep]
    counted = rates_for_total(cells.pickup[0], cells.returns[0], cal.trips[d])
    day = day_truth(panel, cells, d, cal.trips[d], type_trips=cal.type_trips[0], truck_flags=flag_truck_moves(panel))
    truth = real.to_numpy()[:, keep].astype(float)
    # Net per station over each window: trips that ended there minus trips that started there
    # (a trip is counted in its start hour; the windows' edges blur both sides alike).
    windows = [rows < 12, (rows >= 12) & (rows < 17), rows >= 17]
    real_net = arrivals.to_numpy()[:, keep] - truth
    out = {"real_total": float(truth.sum()), "stations": int(keep.sum())}
    for name, (pickup, returns) in (("old", (cells.pickup[0], cells.returns[0])), ("counted", counted), ("day_truth", day)):
        est, net = pickup[rows][:, columns], (returns - pickup)[rows][:, columns]
        window_error = [np.abs(net[w].sum(axis=0) - real_net[w].sum(axis=0)).mean() for w in windows]
        out[name] = {"total": float(est.sum()), "station_hour_mae": float(np.abs(est - truth).mean()),
                     "station_mae": float(np.abs(est.sum(axis=0) - truth.sum(axis=0)).mean()),
                     "window_net_mae": float(np.mean(window_error))}
    return out


def real_count_checks(shared: Path, hours, stations, usage) -> dict:
    """Sep 2018 cells against the real per-station counts of Jul and Jun 2018."""
    from bicimad.demand.calibration import rates_for_total
    from bicimad.demand.panel import build_panel
    from bicimad.demand.rates import CellRates
    from bicimad.opendata.auxiliary import read_simulator_trips, read_station_hour_counts
    from bicimad.opendata.daily_usage import counted_trips

    panel = build_panel(hours, stations, start="2018-09-01", end="2018-10-01")
    cells = CellRates.fit(panel)
    derived = shared / "raw" / "trips" / "derived" / "gia-urjc_Bike3S-Simulator"
    counts = read_station_hour_counts(derived / "demandDataMadrid_200718_210718.csv")
    counts["local"] = counts["hour"].dt.tz_localize(None)
    out = {}
    for label, date, t in (("Fri 2018-07-20", "2018-07-20", 0), ("Sat 2018-07-21", "2018-07-21", 1)):
        day = counts[counts["local"].dt.normalize() == pd.Timestamp(date)]
        real = day.pivot_table(index=day["local"].dt.hour, columns="station_id", values="pickups", aggfunc="sum")
        real = real.reindex(index=range(24), fill_value=0)
        column = np.searchsorted(cells.station_ids, real.columns.to_numpy())
        keep = np.isfinite(cells.pickup[t][:, column]).all(axis=0)
        new, _ = rates_for_total(cells.pickup[t], cells.returns[t], counted_trips(usage, [date])[0])
        out[label] = _compare_counts(cells.pickup[t][:, column[keep]], new[:, column[keep]], real.to_numpy()[:, keep])
    trips = read_simulator_trips(derived / "conf_27-06-2018" / "users_configuration.json",
                                 shared / "raw" / "meta" / "javomorales_BiciMadAnalysis" / "EjEstaciones.json")
    hour = trips["unplug_ts"].dt.hour
    morning = trips[hour < 10]
    real = pd.crosstab(morning["unplug_ts"].dt.hour, morning["from_station"]).reindex(index=range(10), fill_value=0)
    column = np.searchsorted(cells.station_ids, real.columns.to_numpy())
    keep = (cells.station_ids[np.clip(column, 0, len(cells.station_ids) - 1)] == real.columns.to_numpy())
    keep &= np.isfinite(cells.pickup[0][:10, np.clip(column, 0, len(cells.station_ids) - 1)]).all(axis=0)
    new, _ = rates_for_total(cells.pickup[0], cells.returns[0], counted_trips(usage, ["2018-06-27"])[0])
    out["Wed 2018-06-27 00-10 h"] = _compare_counts(cells.pickup[0][:10, column[keep]], new[:10, column[keep]],
                                                   real.to_numpy()[:, keep])
    return out


def staff_share(shared: Path, usage) -> float:
    """All-user-type daily counts over TOTAL_USOS (which leaves out EMT staff), Sep 1-27 2018."""
    from bicimad.opendata.auxiliary import read_daily_trip_counts
    from bicimad.opendata.daily_usage import counted_trips

    ages = read_daily_trip_counts(shared / "raw" / "trips" / "derived" / "javomorales_BiciMadAnalysis" / "EdadesUsoBiciMad.csv")
    ages = ages.assign(date=pd.to_datetime(ages["date"])).drop_duplicates("date").set_index("date")["total"]
    days = pd.date_range("2018-09-01", "2018-09-27")
    return float(np.mean(ages.reindex(days).to_numpy() / counted_trips(usage, days)) - 1)


def measure(shared: Path, root: Path) -> dict:
    from bicimad.opendata.daily_usage import read_daily_usage

    hours, stations = _processed(shared, root)
    usage = read_daily_usage(shared / USAGE)
    result = {name: period_errors(hours, stations, usage, *span) for name, span in PERIODS.items()}
    result["staff_share"] = staff_share(shared, usage)
    result["sep27"] = sep27_check(root, hours, stations, usage)
    result["real_counts"] = real_count_checks(shared, hours, stations, usage)
    return result


def _report(result: dict) -> None:
    print("\nDaily pickups against counted trips, median absolute error over days:")
    for name in PERIODS:
        r = result[name]
        cells = ", ".join(f"{k} {100 * r[k]['share']:.1f} % ({r[k]['trips']:.0f} trips)" for k in ("old", "leave_one_out", "day_truth"))
        ratio = ", ".join(f"{k} {v:.3f}" for k, v in r["old_ratio_by_type"].items())
        inf = r["inflation"]
        print(f"  {name} ({r['days']} days): {cells}; old / counted by type: {ratio}")
        print(f"    city-volume variation {100 * inf['city_volume_share_of_gross']:.2f} % of gross; flag from 5 bikes drops "
              f"weekday pickups {100 * inf['stricter_flag_drop']:.1f} % (Poisson riders alone: {100 * inf['stricter_flag_drop_poisson']:.1f} %)")
    print(f"  EMT staff trips: all-user counts {100 * result['staff_share']:.1f} % above TOTAL_USOS (Sep 1-27 2018)")
    r = result["sep27"]
    print(f"2018-09-27, 11 hours with real trips ({r['real_total']:.0f} pickups, {r['stations']} stations):")
    for k in ("old", "counted", "day_truth"):
        m = r[k]
        print(f"  {k}: total {m['total']:.0f} ({100 * (m['total'] / r['real_total'] - 1):+.1f} %), "
              f"station-hour MAE {m['station_hour_mae']:.2f}, station MAE (11 h) {m['station_mae']:.1f}, "
              f"net per station-window MAE {m['window_net_mae']:.2f}")
    print("Sep 2018 cells against real per-station pickups:")
    for label, r in result["real_counts"].items():
        for k in ("old", "new"):
            m = r[k]
            print(f"  {label} {k}: total {m['total']:.0f} vs {r['real_total']:.0f} ({100 * m['total_error']:+.1f} %), "
                  f"station MAE {m['station_mae']:.1f}, hour-share MAE {m['hour_share_mae_pp']:.2f} pp, "
                  f"station-share MAE {m['station_share_mae_pp']:.3f} pp")


def test_calibration_against_counts(shared_data, tmp_path):
    root = Path(os.environ.get("BICIMAD_BENCH_DATA", tmp_path))
    result = measure(shared_data, root)
    _report(result)
    for name in PERIODS:
        assert result[name]["day_truth"]["share"] < 1e-6 < result[name]["old"]["share"]
    sep27 = result["sep27"]
    assert sep27["day_truth"]["window_net_mae"] < sep27["counted"]["window_net_mae"]


if __name__ == "__main__":
    from bicimad.config import shared_data_dir

    with tempfile.TemporaryDirectory() as tmp:
        _report(measure(shared_data_dir(), Path(os.environ.get("BICIMAD_BENCH_DATA", tmp))))
