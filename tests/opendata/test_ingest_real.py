"""`bicimad ingest --from <shared raw>` builds the processed tables with the documented counts."""

from __future__ import annotations

import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.io import sha256_file

TZ = "Europe/Madrid"


@pytest.fixture
def ingested(real_ingest):
    root, tables, _log = real_ingest
    return root, tables


def test_snapshot_counts(ingested):
    _, t = ingested
    snaps = t["snapshots"]
    sep18 = snaps[(snaps["ts"] >= pd.Timestamp("2018-09-01", tz=TZ)) & (snaps["ts"] < pd.Timestamp("2018-10-01", tz=TZ))]
    assert len(sep18) == 123_668 and sep18["ts"].nunique() == 719 and sep18["station_id"].nunique() == 172
    jul_oct = snaps[(snaps["ts"] >= pd.Timestamp("2019-07-01", tz=TZ)) & (snaps["ts"] < pd.Timestamp("2019-11-01", tz=TZ))]
    # try.parquet repeats July 2019 row for row: deduplicated, not doubled.
    assert len(jul_oct) == 574_288
    assert jul_oct["station_id"].notna().all() and jul_oct["station_id"].nunique() == 215
    assert len(snaps) == 123_668 + 574_288 + 224
    assert not snaps.duplicated(["ts", "station_id"]).any()


def test_trip_counts(ingested):
    _, t = ingested
    trips = t["trips"]
    apr20 = trips[trips["source"].str.contains("202004_movements")]
    assert len(apr20) == 10_447
    assert len(trips[trips["source"].str.contains("Usos092018")]) == 10_695
    # The 201906 head (100 lines) is contained in the 1,000-line sample: the same _id is one trip.
    june = trips[trips["unplug_ts"].dt.strftime("%Y-%m") == "2019-06"]
    assert len(june) == 1000
    # The simulator's 2018-06-27 morning: stations matched by position (PROVENANCE: 170/170/47).
    sim = trips[trips["source"].str.contains("users_configuration")]
    assert len(sim) == 4_011 and sim["from_station"].nunique() == 170 and sim["to_station"].nunique() == 170
    assert int((sim["from_station"] == sim["to_station"]).sum()) == 47
    assert (sim["unplug_ts"].dt.strftime("%Y-%m-%d") == "2018-06-27").all()


def test_stations_reconcile_ids_and_numbers(ingested):
    _, t = ingested
    st = t["stations"].set_index("station_id")
    assert st.index.is_unique
    assert st.loc[1, "number"] == "1a" and st.loc[2, "number"] == "1b"
    assert set(t["snapshots"]["station_id"]) <= set(st.index)
    assert st["lat"].between(40.3, 40.6).all() and st["lon"].between(-3.8, -3.6).all()


def test_station_hours(ingested):
    _, t = ingested
    sh = t["station_hours"]
    assert not sh.duplicated(["station_id", "hour"]).any()
    sep = sh[(sh["hour"] >= pd.Timestamp("2018-09-01", tz=TZ)) & (sh["hour"] < pd.Timestamp("2018-10-01", tz=TZ))]
    # 720 hours x 172 stations; the hours without a snapshot are there with a null snapshot_ts.
    assert len(sep) == 720 * 172
    assert sep["snapshot_ts"].notna().sum() == 172 * 718
    # net flow = next hour's bikes - this hour's, checked on one station by hand.
    one = sep[sep["station_id"] == 57].set_index("hour")
    later = one["bikes"].shift(-1)
    expected = (later - one["bikes"]).where(one.index.to_series().diff().shift(-1) == pd.Timedelta(hours=1))
    pd.testing.assert_series_equal(one["net_flow"].astype(float), expected.astype(float), check_names=False)
    # pickups only where trips cover the hour: the 2018-09-27 windows.
    covered = sep[sep["pickups"].notna()]
    assert set(covered["hour"].dt.hour) == set(range(7, 11)) | set(range(14, 17)) | set(range(17, 21))
    assert covered["pickups"].sum() == 10_695
    # empty share at the snapshot instant in Sep 2018 (PROVENANCE: 8.6 %).
    assert sep["empty"].dropna().mean() == pytest.approx(0.086, abs=0.002)


def test_dst_fall_back_2019(ingested):
    _, t = ingested
    sh = t["station_hours"]
    day = sh[(sh["station_id"] == 1) & (sh["hour"] >= pd.Timestamp("2019-10-27 00:00", tz=TZ))
             & (sh["hour"] < pd.Timestamp("2019-10-28 00:00", tz=TZ))]
    assert len(day) == 25  # the repeated 02:00 hour is two rows
    second_two = day[day["hour"] == pd.Timestamp("2019-10-27 02:00+01:00")]
    assert second_two["snapshot_ts"].isna().all()  # the lone 02:47 stamp was read as the first pass


def test_raw_is_copied_with_manifest_and_untouched(ingested, shared_data):
    import json

    root, _ = ingested
    manifest = json.loads((root / "raw" / "manifest.json").read_text())
    rel = "local/raw/trips/paulamartinm_bicimad_prevision_tfm/202004_movements.zip"
    assert manifest[rel]["sha256"] == sha256_file(shared_data / "raw/trips/paulamartinm_bicimad_prevision_tfm/202004_movements.zip")
    assert sha256_file(root / "raw" / rel) == manifest[rel]["sha256"]


def test_data_summary(ingested, capsys):
    import json

    root, _ = ingested
    assert main(["--data-dir", str(root), "data", "summary", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    sep = [r for r in rows if r["kind"] == "snapshots" and r["month"] == "2018-09"]
    assert len(sep) == 1 and sep[0]["snapshots"] == 719 and sep[0]["stations"] == 172
    assert sep[0]["missing_hours"] == 2  # 09-14 and 09-17 have 23 snapshots, 09-10 has 25
    apr = sum(r["trips"] for r in rows if r["kind"] == "trips" and "202004" in r["source"])
    assert apr == 10_447
    assert main(["--data-dir", str(root), "data", "summary"]) == 0
    assert "EstacionesVacias" in capsys.readouterr().out
