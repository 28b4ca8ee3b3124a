"""Readers of EMT-derived count tables that are neither trips nor snapshots.

Ingest recognises these files and skips them (they do not fit the processed tables); demand
calibration and checks read them with these functions:

* :func:`read_daily_trip_counts`: EMT's daily trip counts by age band (``EdadesUsoBiciMad.csv``).
* :func:`read_station_hour_counts`: per-station hourly pick-ups and returns
  (``demandDataMadrid_*.csv``, built from an EMT monthly trip file).
"""

from __future__ import annotations

import os
import re

import pandas as pd

from bicimad.config import TZ
from bicimad.opendata.rejects import IngestError
from bicimad.opendata.times import localize_wall_clock

AGE_BANDS = ("err", "0-16", "17-18", "19-26", "27-40", "41-65", "65+")


def read_daily_trip_counts(path: str | os.PathLike) -> pd.DataFrame:
    """Daily trips by age band: columns ``date``, one per band of :data:`AGE_BANDS`, ``total``.

    The file's header is glued to its first row (``...// 652017-04-01  655 ...``), so rows are
    split at each ISO date rather than at line ends. Repeated dates (EMT's files overlap at month
    ends) are kept as they are; callers choose how to combine them.
    """
    with open(path, encoding="ascii") as fh:
        text = fh.read()
    starts = [m.start() for m in re.finditer(r"\d{4}-\d{2}-\d{2}", text)]
    if not starts:
        raise IngestError(f"{path}: no YYYY-MM-DD dates found")
    rows = []
    for k, (a, b) in enumerate(zip(starts, starts[1:] + [len(text)])):
        fields = text[a:b].split()
        if len(fields) != 1 + len(AGE_BANDS):
            raise IngestError(f"{path}: record {k + 1} ({fields[0]}): expected a date and {len(AGE_BANDS)} counts, "
                              f"got {len(fields) - 1}")
        try:
            rows.append([pd.Timestamp(fields[0]).date(), *map(int, fields[1:])])
        except ValueError as exc:
            raise IngestError(f"{path}: record {k + 1} ({fields[0]}): {exc}") from exc
    df = pd.DataFrame(rows, columns=["date", *AGE_BANDS])
    df["total"] = df[list(AGE_BANDS)].sum(axis=1)
    return df


def read_station_hour_counts(path: str | os.PathLike) -> pd.DataFrame:
    """Per-station hourly pick-ups and returns: ``station_id``, ``hour`` (local, tz-aware),
    ``pickups``, ``returns``.

    Format: ``;``-separated ``Station;dia;mes;año;hora;NumUsuariosCojenBiciEnEstacion;
    NumUsuariosReturnBiciAEstacion;...`` with local hours. The generator counted a return in the
    unplug hour plus whole hours of travel time and left out EMT staff trips.
    """
    raw = pd.read_csv(path, sep=";", encoding="utf-8")
    need = ["Station", "dia", "mes", "año", "hora", "NumUsuariosCojenBiciEnEstacion", "NumUsuariosReturnBiciAEstacion"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise IngestError(f"{path}: missing column(s) {missing}")
    naive = pd.to_datetime(pd.DataFrame({"year": raw["año"], "month": raw["mes"], "day": raw["dia"], "hour": raw["hora"]}),
                           errors="coerce")
    bad = naive.isna()
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2
        raise IngestError(f"{path}: line {line}: invalid dia/mes/año/hora")
    return pd.DataFrame({
        "station_id": raw["Station"].astype("int32"),
        "hour": localize_wall_clock(naive).dt.tz_convert(TZ),
        "pickups": raw["NumUsuariosCojenBiciEnEstacion"].astype("int32"),
        "returns": raw["NumUsuariosReturnBiciAEstacion"].astype("int32"),
    })
