"""UTM eastings/northings to WGS84 latitude/longitude, through ``pyproj``.

datos.madrid.es publishes station positions as UTM zone 30N in ETRS89 (EPSG:25830): the
"Bases BiciMAD" file's ``Gis_X``/``Gis_Y`` land within 7 mm of its own ``Latitud``/``Longitud``
columns with EPSG:25830, and 234 m away with the older ED50 datum (EPSG:23030), which
the city's older cartography used. ETRS89 and WGS84 differ by well under a metre, which
PROJ's ETRS89 -> WGS84 step treats as none, so ETRS89 coordinates come back unchanged in
degrees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pyproj import Transformer

#: Datum name -> EPSG code of its UTM zone ``zone`` (northern hemisphere; WGS84 also southern).
DATUMS = {
    "ETRS89": lambda zone, northern: 25800 + zone if northern and 28 <= zone <= 38 else None,
    "ED50": lambda zone, northern: 23000 + zone if northern and 28 <= zone <= 38 else None,
    "WGS84": lambda zone, northern: (32600 if northern else 32700) + zone if 1 <= zone <= 60 else None,
}


@lru_cache(maxsize=16)
def _transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)


def utm_epsg(zone: int = 30, northern: bool = True, datum: str = "ETRS89") -> int:
    """EPSG code of a UTM zone in ``datum`` (``ETRS89``, ``ED50`` or ``WGS84``); ValueError if none."""
    if datum not in DATUMS:
        raise ValueError(f"unknown datum {datum!r}; known: {', '.join(DATUMS)}")
    epsg = DATUMS[datum](int(zone), bool(northern))
    if epsg is None:
        raise ValueError(f"no UTM zone {zone}{'N' if northern else 'S'} in datum {datum}")
    return epsg


def utm_to_latlon(easting, northing, zone: int = 30, northern: bool = True,
                  datum: str = "ETRS89") -> tuple[np.ndarray, np.ndarray]:
    """Convert UTM coordinates (metres) to WGS84 (lat, lon) in degrees; works on arrays.

    The default is what datos.madrid.es uses, ETRS89 / UTM 30N (EPSG:25830). NaN in, NaN out.
    """
    lon, lat = _transformer(utm_epsg(zone, northern, datum)).transform(
        np.asarray(easting, dtype=float), np.asarray(northing, dtype=float))
    return np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
