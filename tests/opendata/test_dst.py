"""Madrid's DST changes: naive snapshot stamps, explicit trip instants, the station-hour grid."""

from __future__ import annotations

import pandas as pd

from bicimad.cli import main
from bicimad.opendata import schemas
from bicimad.opendata.times import hour_floor, localize_wall_clock, parse_instants

from .conftest import hourly_snapshots, trip_line, write_lines

TZ = "Europe/Madrid"


def _naive(*stamps):
    return pd.Series(pd.to_datetime(list(stamps)))


def test_fall_back_two_stamps_in_repeated_hour_are_two_passes():
    out = localize_wall_clock(_naive("2019-10-27 01:50", "2019-10-27 02:50", "2019-10-27 02:52", "2019-10-27 03:53"))
    offsets = [ts.utcoffset().total_seconds() / 3600 for ts in out]
    assert offsets == [2, 2, 1, 1]
    assert list(out.diff().dropna().dt.total_seconds() / 60) == [60, 62, 61]


def test_fall_back_lone_stamp_is_first_pass_and_copies_agree():
    out = localize_wall_clock(_naive("2019-10-27 02:47", "2019-10-27 01:47", "2019-10-27 02:47"))
    assert out[0] == pd.Timestamp("2019-10-27 02:47+02:00") == out[2]
    assert out[1] == pd.Timestamp("2019-10-27 01:47+02:00")


def test_spring_forward_nonexistent_stamp_is_read_in_standard_time():
    out = localize_wall_clock(_naive("2019-03-31 01:58", "2019-03-31 02:30", "2019-03-31 03:59"))
    assert out[1] == pd.Timestamp("2019-03-31 03:30+02:00")  # == 02:30+01:00
    assert out[1] == pd.Timestamp("2019-03-31 02:30+01:00")
    assert out.is_monotonic_increasing


def test_explicit_offsets_and_utc():
    out = parse_instants(pd.Series(["2019-10-27T02:00:00.000+0200", "2019-10-27T00:00:00Z", "2019-03-31T01:00:00Z"]))
    assert out[0] == out[1]  # the same instant, the first 02:00
    assert out[0].utcoffset() == pd.Timedelta(hours=2)
    assert out[2] == pd.Timestamp("2019-03-31 03:00+02:00")


def test_hour_floor_keeps_both_repeated_hours():
    ts = pd.Series(pd.to_datetime(["2019-10-27 00:30Z", "2019-10-27 01:30Z"])).dt.tz_convert(TZ)
    hours = hour_floor(ts)
    assert hours[0] != hours[1]
    assert [h.utcoffset().total_seconds() for h in hours] == [7200, 3600]


def _ingest(data_dir, src):
    assert main(["--data-dir", str(data_dir), "ingest", "--from", str(src), "--no-progress"]) == 0
    return schemas.read_table("station_hours", data_dir / "processed" / "station_hours.parquet")


def test_station_hours_across_fall_back(data_dir, raw_src):
    # 30 absolute hours from 2019-10-26 20:00 local: the 27th has 25 local hours.
    write_lines(raw_src / "201910_stations_madrid.json", hourly_snapshots("2019-10-26 20:00", 30, n_stations=2))
    write_lines(raw_src / "201910_movements.json", [
        trip_line("a1", "2019-10-27T00:00:00Z", 1, 2, 300),  # 02:00 CEST, first pass
        trip_line("a2", "2019-10-27T01:00:00Z", 1, 2, 300),  # 02:00 CET, second pass
        trip_line("a3", "2019-10-27T01:00:00Z", 2, 1, 4000),  # returns in the 03:00 CET hour
        trip_line("a4", "2019-10-27T03:00:00Z", 2, 1, 60),  # closes the coverage (last hour dropped)
    ])
    sh = _ingest(data_dir, raw_src)
    one = sh[sh["station_id"] == 1].set_index("hour")
    day = one[(one.index >= pd.Timestamp("2019-10-27 00:00", tz=TZ)) & (one.index < pd.Timestamp("2019-10-28", tz=TZ))]
    assert len(day) == 25 and day["snapshot_ts"].notna().all()
    first, second = pd.Timestamp("2019-10-27 02:00+02:00"), pd.Timestamp("2019-10-27 02:00+01:00")
    assert one.loc[first, "pickups"] == 1 and one.loc[second, "pickups"] == 1
    assert one.loc[pd.Timestamp("2019-10-27 03:00+01:00"), "returns"] == 1
    assert one.loc[first, "net_flow"] == one.loc[second, "bikes"] - one.loc[first, "bikes"]
    assert sh["pickups"].notna().sum() == 2 * 3  # covered hours: 02:00 CEST, 02:00 CET, 03:00 CET


def test_station_hours_across_spring_forward(data_dir, raw_src):
    write_lines(raw_src / "201903_stations_madrid.json", hourly_snapshots("2019-03-30 22:00", 30, n_stations=2))
    sh = _ingest(data_dir, raw_src)
    one = sh[sh["station_id"] == 2]
    day = one[(one["hour"] >= pd.Timestamp("2019-03-31", tz=TZ)) & (one["hour"] < pd.Timestamp("2019-04-01", tz=TZ))]
    assert len(day) == 23
    assert not (day["hour"].dt.hour == 2).any()
    assert day["net_flow"].notna().sum() >= 22 - 1
