"""UTM (ETRS89 / WGS84 ellipsoid) to latitude/longitude: the inverse transverse Mercator.

datos.madrid.es publishes station positions as UTM zone 30N eastings/northings (ETRS89,
which is WGS84 to well under a metre). This is the standard series expansion (Snyder, *Map
Projections — A Working Manual*, USGS 1987, eqs. 8-18 to 8-25), accurate to millimetres within a zone.
"""

from __future__ import annotations

import numpy as np

_A = 6378137.0  # WGS84 semi-major axis (m)
_F = 1 / 298.257223563  # WGS84 flattening
_K0 = 0.9996  # UTM scale factor on the central meridian
_E2 = _F * (2 - _F)  # first eccentricity squared
_EP2 = _E2 / (1 - _E2)  # second eccentricity squared


def utm_to_latlon(easting, northing, zone: int = 30, northern: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Convert UTM coordinates (metres) to WGS84 (lat, lon) in degrees; works on arrays."""
    x = np.asarray(easting, dtype=float) - 500000.0
    y = np.asarray(northing, dtype=float)
    if not northern:
        y = y - 10000000.0
    lon0 = np.radians((zone - 1) * 6 - 180 + 3)

    # Footpoint latitude from the meridional arc.
    m = y / _K0
    mu = m / (_A * (1 - _E2 / 4 - 3 * _E2**2 / 64 - 5 * _E2**3 / 256))
    e1 = (1 - np.sqrt(1 - _E2)) / (1 + np.sqrt(1 - _E2))
    phi1 = (
        mu
        + (3 * e1 / 2 - 27 * e1**3 / 32) * np.sin(2 * mu)
        + (21 * e1**2 / 16 - 55 * e1**4 / 32) * np.sin(4 * mu)
        + (151 * e1**3 / 96) * np.sin(6 * mu)
        + (1097 * e1**4 / 512) * np.sin(8 * mu)
    )

    sin1, cos1, tan1 = np.sin(phi1), np.cos(phi1), np.tan(phi1)
    c1 = _EP2 * cos1**2
    t1 = tan1**2
    n1 = _A / np.sqrt(1 - _E2 * sin1**2)
    r1 = _A * (1 - _E2) / (1 - _E2 * sin1**2) ** 1.5
    d = x / (n1 * _K0)

    lat = phi1 - (n1 * tan1 / r1) * (
        d**2 / 2
        - (5 + 3 * t1 + 10 * c1 - 4 * c1**2 - 9 * _EP2) * d**4 / 24
        + (61 + 90 * t1 + 298 * c1 + 45 * t1**2 - 252 * _EP2 - 3 * c1**2) * d**6 / 720
    )
    lon = lon0 + (
        d
        - (1 + 2 * t1 + c1) * d**3 / 6
        + (5 - 2 * c1 + 28 * t1 - 3 * c1**2 + 8 * _EP2 + 24 * t1**2) * d**5 / 120
    ) / cos1
    return np.degrees(lat), np.degrees(lon)
