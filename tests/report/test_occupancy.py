import math

import numpy as np
import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.opendata.schemas import OCCUPANCY_SUMMARY_COLUMNS
from bicimad.report import occupancy as occ


def _frame(rows):
    return pd.DataFrame(rows, columns=["station_id", "hour", "state", "lost_trips", "diverted_returns"])


def test_summary_counts_classes_and_share():
    h = pd.Timestamp("2018-09-03 08:00", tz=TZ)
    frame = _frame([
        (1, h, "balanced", 0, 0), (2, h, "empty", 3, 0), (3, h, "full", 0, 2),
        (4, h, "empty_and_full", 1, 1), (5, h, "balanced", 0, 0),
    ])
    row = occ.summarise(frame, "greedy", bikes_moved=40, truck_km=12.5)
    assert list(row) == list(OCCUPANCY_SUMMARY_COLUMNS)
    assert (row["balanced"], row["empty"], row["full"], row["empty_and_full"]) == (2, 1, 1, 1)
    assert row["problem_share"] == pytest.approx(3 / 5)
    assert (row["lost_trips"], row["diverted_returns"], row["bikes_moved"]) == (4, 3, 40)
    assert math.isnan(row["decision_s_per_hour"])


def test_unknown_state_is_named():
    frame = _frame([(1, pd.Timestamp("2018-09-03", tz=TZ), "overfull", 0, 0)])
    with pytest.raises(ValueError, match="overfull"):
        occ.summarise(frame, "noop")


def test_hourly_profile_uses_local_hours_across_dst():
    # 2018-10-28 00:00-03:00 UTC is 02:00 CEST, 02:00 CET, 03:00, 04:00 local: hour 2 happens twice
    utc = pd.date_range("2018-10-28 00:00", periods=4, freq="h", tz="UTC")
    frame = _frame([(1, t.tz_convert(TZ), s, 0, 0) for t, s in zip(utc, ["empty", "balanced", "full", "balanced"])])
    profile = occ.hourly_profile(frame).set_index("hour_of_day")
    assert list(profile.loc[2:4, "station_hours"]) == [2, 1, 1]
    assert profile.loc[2, "problem_share"] == 0.5 and profile.loc[3, "problem_share"] == 1.0
    assert profile.loc[5:, "station_hours"].sum() == 0
    assert np.isnan(profile.loc[12, "problem_share"])


def test_worst_stations_sorted_and_named():
    h = pd.date_range("2018-09-03", periods=3, freq="h", tz=TZ)
    frame = _frame([
        (1, h[0], "empty", 1, 0), (1, h[1], "balanced", 0, 0), (1, h[2], "balanced", 0, 0),
        (2, h[0], "full", 0, 1), (2, h[1], "empty_and_full", 2, 1), (2, h[2], "empty", 4, 0),
        (3, h[0], "empty", 5, 0), (3, h[1], "balanced", 0, 0), (3, h[2], "balanced", 0, 0),
    ])
    stations = pd.DataFrame({"station_id": [1, 2, 3], "number": ["1a", "2", "3"], "name": ["A", "B", "C"]})
    worst = occ.worst_stations(frame, stations, n=2)
    assert list(worst["station_id"]) == [2, 3]  # 3 problem hours; then 1 hour with 5 lost trips beats 1 lost
    assert list(worst["name"]) == ["B", "C"]
    assert worst.loc[0, "problem_hours"] == 3 and worst.loc[0, "lost_trips"] == 6


def test_occupancy_from_snapshot_station_hours():
    h = pd.date_range("2018-09-03", periods=4, freq="h", tz=TZ)
    station_hours = pd.DataFrame({
        "station_id": [7] * 4, "hour": h, "snapshot_ts": [h[0], h[1], pd.NaT, h[3]],
        "empty": [True, False, None, True], "full": [False, True, None, True],
    })
    observed = occ.occupancy_from_station_hours(station_hours)
    assert list(observed["state"]) == ["empty", "full", "empty_and_full"]
    assert observed["lost_trips"].isna().all()


def test_mean_interval_covers_mean_and_narrows_with_seeds():
    rng = np.random.default_rng(3)
    few = rng.normal(0.12, 0.01, 4)
    many = rng.normal(0.12, 0.01, 64)
    m, lo, hi = occ.mean_interval(few)
    assert lo < m < hi and m == pytest.approx(few.mean())
    _, lo2, hi2 = occ.mean_interval(many)
    assert hi2 - lo2 < hi - lo
    assert occ.mean_interval([0.2]) == (0.2, 0.2, 0.2)
