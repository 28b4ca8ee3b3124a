"""Every file of the real EMT data parses, with the counts PROVENANCE.md documents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bicimad.opendata.formats import AUXILIARY, file_format, read_file
from bicimad.opendata.rejects import Rejects

from .conftest import part

# Records per part kind for every file under raw/ (PROVENANCE.md); auxiliary files yield none.
EXPECTED = {
    "meta/javomorales_BiciMadAnalysis/EjEstaciones.json": {"stations": 172},
    "meta/paulamartinm_bicimad_prevision_tfm/all_stations.csv": {"stations": 264},
    "meta/rameerez_bicimad-data-analysis/stations.json": {"stations": 172},
    "meta/tfm2022_bicimad/bases_bicimad.csv": {"stations": 264},
    "stations/gonfuso_AnalyticsBiciMad/situaciones_2019-07_2019-10.parquet": {"snapshots": 574_288},
    "stations/javomorales_BiciMadAnalysis/EstacionesVacias.xlsx": {"snapshots": 123_668},
    "stations/martasbarro_biciMAD/try.parquet": {"snapshots": 135_058},
    "stations/samples/DavMat857_BiciMad/situaciones.txt": {"snapshots": 224},
    "trips/derived/Catedra-Cabify-ETSIT-UPM_bicimad_dashboard/bicimad.gexf": {},
    "trips/derived/gia-urjc_Bike3S-Simulator/conf_27-06-2018/stations_configuration.json": {},
    "trips/derived/gia-urjc_Bike3S-Simulator/conf_27-06-2018/users_configuration.json": {"trip_positions": 4_011},
    "trips/derived/gia-urjc_Bike3S-Simulator/demandDataMadrid_200718_210718.csv": {},
    "trips/derived/ireneromero_bicimad/bicimad_daily.csv": {},
    "trips/derived/ireneromero_bicimad/bicimad_hourly.csv": {},
    "trips/derived/javomorales_BiciMadAnalysis/EdadesUsoBiciMad.csv": {},
    "trips/derived/javomorales_BiciMadAnalysis/TiempoUsoBiciSep17_18.xlsx": {},
    "trips/derived/javomorales_BiciMadAnalysis/Usos092018_Estaciones.xlsx": {"trips": 10_695},
    "trips/paulamartinm_bicimad_prevision_tfm/202004_movements.zip": {"trips": 10_447},
    "trips/samples/MiguelGomezC_Sparkinson/sample_10e3.json": {"trips": 1000},
    "trips/samples/javomorales_BiciMadAnalysis/ej.json": {"trips": 3},
    **{f"trips/samples/luciabp_Bicimad/{m}_Usage_Bicimad.json": {"trips": 100} for m in ("201905", "201906")},
    **{f"trips/samples/luciabp_Bicimad/{m}_movements.json": {"trips": 100}
       for m in ("201907", "201908", "201909", "201910", "202005", "202006", "202007", "202008", "202009", "202010")},
}


def _read(path, label):
    rejects = Rejects()
    frames: dict[str, list[pd.DataFrame]] = {}
    for _fmt, chunk in read_file(path, label, rejects):
        frames.setdefault(chunk.kind, []).append(chunk.frame)
    return {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}, rejects


def test_every_shared_file_is_covered(shared_data):
    present = {p.relative_to(shared_data / "raw").as_posix() for p in (shared_data / "raw").rglob("*") if p.is_file()}
    assert present == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_file_parses_with_documented_counts(shared_data, real_ingest, rel):
    _root, _tables, log = real_ingest
    (entry,) = [f for f in log["files"] if f["source"] == f"local/raw/{rel}"]
    rows = {kind: n for kind, n in entry["rows"].items() if kind != "stations" or "stations" in EXPECTED[rel]}
    assert rows == EXPECTED[rel]
    assert entry["rejected"] == {}
    if not EXPECTED[rel]:
        assert entry["format"] == AUXILIARY == file_format(shared_data / "raw" / rel)


def test_sep_2018_snapshots_are_719_instants_of_172_stations(real_ingest):
    root, _, log = real_ingest
    rel = "stations/javomorales_BiciMadAnalysis/EstacionesVacias.xlsx"
    snaps = part(root, log, rel, "snapshots")
    assert snaps["ts_local"].nunique() == 719
    assert snaps["station_id"].nunique() == 172
    assert snaps["station_id"].between(1, 175).all()
    assert str(snaps["ts_local"].min()) == "2018-09-01 00:21:08.052690"
    assert str(snaps["ts_local"].max()) == "2018-09-30 23:42:38.647290"
    assert (snaps["bikes"] <= snaps["capacity"]).all()
    stations = part(root, log, rel, "stations")
    assert set(stations.loc[stations["source"].str.endswith("#Estaciones"), "station_id"]) == set(snaps["station_id"])


def test_situaciones_has_numbers_but_no_ids(real_ingest):
    root, _, log = real_ingest
    snaps = part(root, log, "stations/gonfuso_AnalyticsBiciMad/situaciones_2019-07_2019-10.parquet", "snapshots")
    assert snaps["station_id"].isna().all()
    assert snaps["number"].nunique() == 215
    assert snaps["free_docks"].notna().all() and snaps["available"].notna().all()
    # light=3 <=> no_available=1: 10,240 rows of Jul-Oct are out of service.
    assert int((~snaps["available"].astype(bool)).sum()) == 10_240


def test_mojibake_station_list_is_repaired(shared_data):
    rel = "meta/javomorales_BiciMadAnalysis/EjEstaciones.json"
    tables, rejects = _read(shared_data / "raw" / rel, rel)
    sol = tables["stations"].set_index("station_id").loc[1]
    assert sol["address"] == "Puerta del Sol nº 1"
    assert not tables["stations"]["address"].str.contains("∫").any()
    assert rejects.warnings


def test_bases_csv_utm_matches_published_coordinates(shared_data):
    rel = "meta/tfm2022_bicimad/bases_bicimad.csv"
    tables, _ = _read(shared_data / "raw" / rel, rel)
    st = tables["stations"].set_index("station_id")
    ref = pd.read_csv(shared_data / "raw" / rel, sep=";", encoding="cp850", decimal=",").set_index("Id_Estacion")
    ref = ref.reindex(st.index)
    dy = (st["lat"] - ref["Latitud"].astype(float)) * 111_000
    dx = (st["lon"] - ref["Longitud"].astype(float)) * 111_000 * np.cos(np.radians(40.4))
    dist = np.hypot(dx, dy).dropna()
    assert len(dist) > 250
    assert dist.median() < 5  # metres: our UTM inverse agrees with the file's own lat/lon
    assert st.loc[1, "number"] == "1a"
    assert str(st["as_of"].min().date()) == "2014-05-23"


def test_trip_times_are_converted_to_madrid(shared_data):
    rel_compact = "trips/samples/luciabp_Bicimad/201907_movements.json"
    rel_mongo = "trips/samples/luciabp_Bicimad/201905_Usage_Bicimad.json"
    compact, _ = _read(shared_data / "raw" / rel_compact, rel_compact)
    mongo, rejects = _read(shared_data / "raw" / rel_mongo, rel_mongo)
    # 2019-07-01T00:00:00Z is 02:00 in Madrid (CEST); 2019-05-01T00:00:00.000+0200 is midnight.
    assert str(compact["trips"]["unplug_ts"].min()) == "2019-07-01 02:00:00+02:00"
    assert str(mongo["trips"]["unplug_ts"].min()) == "2019-05-01 00:00:00+02:00"
    # 201905 has Latin-1 addresses inside `track`, which is never decoded: no line is lost.
    assert len(mongo["trips"]) == 100 and rejects.total() == 0


def test_april_2020_trip_file(shared_data):
    rel = "trips/paulamartinm_bicimad_prevision_tfm/202004_movements.zip"
    tables, _ = _read(shared_data / "raw" / rel, rel)
    trips = tables["trips"]
    assert len(trips) == 10_447
    assert trips["unplug_ts"].min() == pd.Timestamp("2020-04-19 08:00", tz="Europe/Madrid")
    assert trips["unplug_ts"].max() == pd.Timestamp("2020-05-01 01:00", tz="Europe/Madrid")
    assert trips["user_type"].value_counts().to_dict() == {1: 8312, 3: 2120, 2: 15}
    assert pd.concat([trips["from_station"], trips["to_station"]]).nunique() == 213
    assert (trips["plug_ts"] - trips["unplug_ts"]).dt.total_seconds().equals(trips["duration_s"])
