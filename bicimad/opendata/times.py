"""Time handling for EMT data: everything ends up tz-aware in Europe/Madrid.

Two kinds of stamps reach us:

* **Explicit instants** (trip ``unplug_hourTime``): ``{"$date": "...+0200"}`` or ``"...Z"``.
  They are parsed with their offset and converted to Europe/Madrid; no ambiguity arises.
* **Naive local wall-clock stamps** (snapshot ``_id``, xlsx ``fecha``, parquet ``_id``).
  Madrid's clock skips 02:00–03:00 on the last Sunday of March and repeats 02:00–03:00 on
  the last Sunday of October, so a naive stamp may not exist or may mean two instants.
  The rule (:func:`localize_wall_clock`):

  - **nonexistent** (spring forward, e.g. ``2019-03-31 02:30``): the recording clock had not
    moved yet, so the stamp is read in standard time (+01:00), i.e. it is the instant
    ``03:30+02:00``;
  - **ambiguous** (fall back, e.g. ``2019-10-27 02:47``): among the distinct stamps that fall in
    the repeated wall-clock hour, sorted, the first is read in summer time (+02:00, the first
    pass) and any later ones in standard time (+01:00, the second pass). Snapshots come about
    hourly, so two stamps in the same repeated hour can only be one per pass; a lone stamp is
    taken as the first pass and the second pass is then a missing hour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bicimad.config import TZ


def localize_wall_clock(naive: pd.Series) -> pd.Series:
    """Localise naive Madrid wall-clock stamps to tz-aware Europe/Madrid (rule in the module doc).

    Works on the distinct stamps, so repeated stamps (one per station) cost nothing extra and
    every copy of a stamp gets the same instant.
    """
    naive = pd.to_datetime(pd.Series(naive))
    if getattr(naive.dt, "tz", None) is not None:
        raise ValueError("localize_wall_clock expects naive timestamps")
    codes, uniques = pd.factorize(naive, sort=True)
    uniques = pd.DatetimeIndex(uniques)
    # Which distinct stamps are ambiguous: localising them with ambiguous='NaT' gives NaT,
    # while the same stamp read as summer time does not.
    probe = uniques.tz_localize(TZ, ambiguous="NaT", nonexistent="NaT")
    summer = uniques.tz_localize(TZ, ambiguous=np.ones(len(uniques), bool), nonexistent="NaT")
    ambiguous = np.asarray(probe.isna() & summer.notna())
    is_dst = np.ones(len(uniques), bool)
    if ambiguous.any():
        hours = uniques.floor("h")
        seen: set[pd.Timestamp] = set()
        for i in np.flatnonzero(ambiguous):  # uniques are sorted, so the first per hour comes first
            is_dst[i] = hours[i] not in seen
            seen.add(hours[i])
    local = uniques.tz_localize(TZ, ambiguous=is_dst, nonexistent=pd.Timedelta(hours=1))
    out = pd.Series(local.take(codes), index=naive.index)
    out[codes < 0] = pd.NaT
    return out


def parse_instants(values: pd.Series) -> pd.Series:
    """Parse ISO-8601 strings carrying an offset (``+0200``) or ``Z`` into Europe/Madrid.

    Unparsable values become NaT (callers reject those records, naming the field).
    """
    utc = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    return utc.dt.tz_convert(TZ)


def hour_floor(ts: pd.Series) -> pd.Series:
    """Start of the local hour of tz-aware stamps, safe across DST changes.

    Madrid's offsets are whole hours, so flooring in UTC and converting back gives the local
    hour without ever constructing an ambiguous or nonexistent wall-clock time.
    """
    return ts.dt.tz_convert("UTC").dt.floor("h").dt.tz_convert(TZ)
