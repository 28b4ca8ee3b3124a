"""UTM -> WGS84: pyproj against an independent series expansion and against the real file's own lat/lon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bicimad.opendata.utm import utm_epsg, utm_to_latlon

#: (easting, northing) -> (lat, lon) from the transverse-Mercator series of Snyder, *Map Projections -
#: A Working Manual* (USGS 1987, eqs. 8-18 to 8-25) on the GRS80/WGS84 ellipsoid, zone 30N.
SERIES = [
    ((440440.0, 4474290.0), (40.417104553, -3.702040520)),  # Puerta del Sol
    ((446000.0, 4482000.0), (40.486939739, -3.637163899)),
    ((500000.0, 4427757.0), (39.999998028, -3.000000000)),  # on the central meridian
    ((700000.0, 4000000.0), (36.124095831, -0.777608614)),  # 200 km east of it
]
#: 1e-8 degrees is 1.1 mm of latitude; the two methods differ by 0.2 mm here.
TOLERANCE_DEG = 1e-8


@pytest.mark.parametrize("utm, latlon", SERIES)
def test_matches_the_series_expansion(utm, latlon):
    lat, lon = utm_to_latlon(*utm)
    assert lat == pytest.approx(latlon[0], abs=TOLERANCE_DEG)
    assert lon == pytest.approx(latlon[1], abs=TOLERANCE_DEG)


def test_equator_arrays_nan_and_other_zones():
    lat, lon = utm_to_latlon([500000.0, np.nan], [0.0, 4474290.0])
    assert lat[0] == pytest.approx(0.0, abs=1e-12) and lon[0] == pytest.approx(-3.0, abs=1e-12)
    assert np.isnan(lat[1]) and np.isnan(lon[1])
    assert utm_to_latlon(500000.0, 0.0, zone=31)[1] == pytest.approx(3.0, abs=1e-12)
    south_lat, _ = utm_to_latlon(500000.0, 9_000_000.0, zone=30, northern=False, datum="WGS84")
    assert -9.1 < south_lat < -9.0


def test_datums_and_zones_are_checked():
    assert utm_epsg() == 25830 and utm_epsg(datum="ED50") == 23030 and utm_epsg(zone=30, datum="WGS84") == 32630
    with pytest.raises(ValueError, match="unknown datum 'NAD27'"):
        utm_epsg(datum="NAD27")
    with pytest.raises(ValueError, match="no UTM zone 30S in datum ETRS89"):
        utm_epsg(30, northern=False)
    # ED50 puts the same numbers about 230 m away: the datum matters, so it is named.
    ed50 = np.array(utm_to_latlon(440440.0, 4474290.0, datum="ED50"))
    etrs = np.array(utm_to_latlon(440440.0, 4474290.0))
    shift_m = np.hypot((ed50[0] - etrs[0]) * 111_000, (ed50[1] - etrs[1]) * 111_000 * np.cos(np.radians(40.4)))
    assert 200 < shift_m < 260


def test_bases_file_is_etrs89(shared_data):
    path = shared_data / "raw" / "meta/tfm2022_bicimad/bases_bicimad.csv"
    ref = pd.read_csv(path, sep=";", encoding="cp850", decimal=",").dropna(subset=["Gis_X", "Gis_Y", "Latitud"])
    lat, lon = utm_to_latlon(ref["Gis_X"].astype(float), ref["Gis_Y"].astype(float))
    dy = (lat - ref["Latitud"].astype(float)) * 111_000
    dx = (lon - ref["Longitud"].astype(float)) * 111_000 * np.cos(np.radians(40.4))
    dist = np.hypot(dx, dy)
    assert len(dist) > 250
    assert dist.max() < 0.05  # metres: the file's lat/lon are its UTM in ETRS89 to the centimetre
