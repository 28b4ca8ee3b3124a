"""The EMT-derived count tables read by bicimad.opendata.auxiliary."""

from __future__ import annotations

import pandas as pd
import pytest

from bicimad.opendata.auxiliary import read_daily_trip_counts, read_station_hour_counts
from bicimad.opendata.rejects import IngestError

DERIVED = "raw/trips/derived"


def test_daily_trip_counts(shared_data):
    df = read_daily_trip_counts(shared_data / DERIVED / "javomorales_BiciMadAnalysis/EdadesUsoBiciMad.csv")
    assert len(df) == 539  # the header's glued first row included
    assert df.iloc[0].tolist()[:3] == [pd.Timestamp("2017-04-01").date(), 655, 224]
    assert (df["date"] == pd.Timestamp("2018-08-01").date()).sum() == 2  # EMT's overlap, kept
    sep = df[df["date"].astype(str).str.startswith("2018-09")]
    assert len(sep) == 28 and sep["total"].mean() == pytest.approx(14_200, rel=0.01)  # PROVENANCE: 14.2k a day
    assert df.loc[df["date"] == pd.Timestamp("2018-07-20").date(), "total"].item() == 13_006


def test_station_hour_counts(shared_data):
    df = read_station_hour_counts(shared_data / DERIVED / "gia-urjc_Bike3S-Simulator/demandDataMadrid_200718_210718.csv")
    assert len(df) == 8_112 and df["station_id"].nunique() == 169
    daily = df.groupby(df["hour"].dt.day)[["pickups", "returns"]].sum()
    assert daily.loc[20].tolist() == [12_103, 12_108] and daily.loc[21].tolist() == [7_991, 8_000]
    assert df["hour"].min() == pd.Timestamp("2018-07-20 00:00+02:00")


def test_daily_counts_bad_record_is_named(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("FECHA -- ERR // 652018-01-01  1 2 3 4 5 6 7\n2018-01-02  1 2 3\n")
    with pytest.raises(IngestError, match=r"record 2 \(2018-01-02\): expected a date and 7 counts, got 3"):
        read_daily_trip_counts(path)
