"""Madrid's public holidays 2017-2027 and the day types demand is modelled by.

Three layers of holiday apply to a bike trip in the city of Madrid:

* **national** days set by the State (BOE) that the Comunidad de Madrid keeps;
* **regional** days the Comunidad de Madrid sets (BOCM): 2 May, Holy Thursday, and the
  days it chooses each year (San José, Santiago, or the Monday after a national holiday
  that falls on a Sunday);
* **city** days of the Ayuntamiento de Madrid: San Isidro (15 May) and La Almudena
  (9 November), moved to the Monday when they fall on a Sunday.

The table below was written from the official yearly calendars. Years outside it fall back
to :func:`rule_holidays` (fixed dates plus Easter), which knows no yearly moves.

Day types (``DAY_TYPES``): 0 ``weekday`` (Mon-Fri, not a holiday), 1 ``saturday``
(not a holiday), 2 ``sunday_holiday`` (Sundays and any holiday).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

DAY_TYPES = ("weekday", "saturday", "sunday_holiday")

# (ISO date, scope, name). Scope: national | regional | city.
_TABLE = """
2017-01-02 regional Año Nuevo (trasladado)
2017-01-06 national Epifanía del Señor
2017-03-20 regional San José (trasladado)
2017-04-13 regional Jueves Santo
2017-04-14 national Viernes Santo
2017-05-01 national Fiesta del Trabajo
2017-05-02 regional Fiesta de la Comunidad de Madrid
2017-05-15 city San Isidro
2017-08-15 national Asunción de la Virgen
2017-10-12 national Fiesta Nacional de España
2017-11-01 national Todos los Santos
2017-11-09 city Nuestra Señora de la Almudena
2017-12-06 national Día de la Constitución
2017-12-08 national Inmaculada Concepción
2017-12-25 national Natividad del Señor
2018-01-01 national Año Nuevo
2018-01-06 national Epifanía del Señor
2018-03-19 regional San José
2018-03-29 regional Jueves Santo
2018-03-30 national Viernes Santo
2018-05-01 national Fiesta del Trabajo
2018-05-02 regional Fiesta de la Comunidad de Madrid
2018-05-15 city San Isidro
2018-08-15 national Asunción de la Virgen
2018-10-12 national Fiesta Nacional de España
2018-11-01 national Todos los Santos
2018-11-09 city Nuestra Señora de la Almudena
2018-12-06 national Día de la Constitución
2018-12-08 national Inmaculada Concepción
2018-12-25 national Natividad del Señor
2019-01-01 national Año Nuevo
2019-01-06 national Epifanía del Señor
2019-03-19 regional San José
2019-04-18 regional Jueves Santo
2019-04-19 national Viernes Santo
2019-05-01 national Fiesta del Trabajo
2019-05-02 regional Fiesta de la Comunidad de Madrid
2019-05-15 city San Isidro
2019-08-15 national Asunción de la Virgen
2019-10-12 national Fiesta Nacional de España
2019-11-01 national Todos los Santos
2019-11-09 city Nuestra Señora de la Almudena
2019-12-06 national Día de la Constitución
2019-12-09 regional Inmaculada Concepción (trasladado)
2019-12-25 national Natividad del Señor
2020-01-01 national Año Nuevo
2020-01-06 national Epifanía del Señor
2020-03-19 regional San José
2020-04-09 regional Jueves Santo
2020-04-10 national Viernes Santo
2020-05-01 national Fiesta del Trabajo
2020-05-02 regional Fiesta de la Comunidad de Madrid
2020-05-15 city San Isidro
2020-08-15 national Asunción de la Virgen
2020-10-12 national Fiesta Nacional de España
2020-11-02 regional Todos los Santos (trasladado)
2020-11-09 city Nuestra Señora de la Almudena
2020-12-07 regional Día de la Constitución (trasladado)
2020-12-08 national Inmaculada Concepción
2020-12-25 national Natividad del Señor
2021-01-01 national Año Nuevo
2021-01-06 national Epifanía del Señor
2021-03-19 regional San José
2021-04-01 regional Jueves Santo
2021-04-02 national Viernes Santo
2021-05-01 national Fiesta del Trabajo
2021-05-03 regional Fiesta de la Comunidad de Madrid (trasladado)
2021-05-15 city San Isidro
2021-08-15 national Asunción de la Virgen
2021-10-12 national Fiesta Nacional de España
2021-11-01 national Todos los Santos
2021-11-09 city Nuestra Señora de la Almudena
2021-12-06 national Día de la Constitución
2021-12-08 national Inmaculada Concepción
2021-12-25 national Natividad del Señor
2022-01-01 national Año Nuevo
2022-01-06 national Epifanía del Señor
2022-04-14 regional Jueves Santo
2022-04-15 national Viernes Santo
2022-05-02 regional Fiesta de la Comunidad de Madrid
2022-05-16 city San Isidro (trasladado)
2022-07-25 regional Santiago Apóstol
2022-08-15 national Asunción de la Virgen
2022-10-12 national Fiesta Nacional de España
2022-11-01 national Todos los Santos
2022-11-09 city Nuestra Señora de la Almudena
2022-12-06 national Día de la Constitución
2022-12-08 national Inmaculada Concepción
2022-12-26 regional Natividad del Señor (trasladado)
2023-01-06 national Epifanía del Señor
2023-03-20 regional San José (trasladado)
2023-04-06 regional Jueves Santo
2023-04-07 national Viernes Santo
2023-05-01 national Fiesta del Trabajo
2023-05-02 regional Fiesta de la Comunidad de Madrid
2023-05-15 city San Isidro
2023-08-15 national Asunción de la Virgen
2023-10-12 national Fiesta Nacional de España
2023-11-01 national Todos los Santos
2023-11-09 city Nuestra Señora de la Almudena
2023-12-06 national Día de la Constitución
2023-12-08 national Inmaculada Concepción
2023-12-25 national Natividad del Señor
2024-01-01 national Año Nuevo
2024-01-06 national Epifanía del Señor
2024-03-28 regional Jueves Santo
2024-03-29 national Viernes Santo
2024-05-01 national Fiesta del Trabajo
2024-05-02 regional Fiesta de la Comunidad de Madrid
2024-05-15 city San Isidro
2024-07-25 regional Santiago Apóstol
2024-08-15 national Asunción de la Virgen
2024-10-12 national Fiesta Nacional de España
2024-11-01 national Todos los Santos
2024-11-09 city Nuestra Señora de la Almudena
2024-12-06 national Día de la Constitución
2024-12-25 national Natividad del Señor
2025-01-01 national Año Nuevo
2025-01-06 national Epifanía del Señor
2025-04-17 regional Jueves Santo
2025-04-18 national Viernes Santo
2025-05-01 national Fiesta del Trabajo
2025-05-02 regional Fiesta de la Comunidad de Madrid
2025-05-15 city San Isidro
2025-07-25 regional Santiago Apóstol
2025-08-15 national Asunción de la Virgen
2025-11-01 national Todos los Santos
2025-11-10 city Nuestra Señora de la Almudena (trasladado)
2025-12-06 national Día de la Constitución
2025-12-08 national Inmaculada Concepción
2025-12-25 national Natividad del Señor
2026-01-01 national Año Nuevo
2026-01-06 national Epifanía del Señor
2026-04-02 regional Jueves Santo
2026-04-03 national Viernes Santo
2026-05-01 national Fiesta del Trabajo
2026-05-02 regional Fiesta de la Comunidad de Madrid
2026-05-15 city San Isidro
2026-08-15 national Asunción de la Virgen
2026-10-12 national Fiesta Nacional de España
2026-11-02 regional Todos los Santos (trasladado)
2026-11-09 city Nuestra Señora de la Almudena
2026-12-07 regional Día de la Constitución (trasladado)
2026-12-08 national Inmaculada Concepción
2026-12-25 national Natividad del Señor
2027-01-01 national Año Nuevo
2027-01-06 national Epifanía del Señor
2027-03-19 regional San José
2027-03-25 regional Jueves Santo
2027-03-26 national Viernes Santo
2027-05-01 national Fiesta del Trabajo
2027-05-03 regional Fiesta de la Comunidad de Madrid (trasladado)
2027-05-15 city San Isidro
2027-08-16 regional Asunción de la Virgen (trasladado)
2027-10-12 national Fiesta Nacional de España
2027-11-01 national Todos los Santos
2027-11-09 city Nuestra Señora de la Almudena
2027-12-06 national Día de la Constitución
2027-12-08 national Inmaculada Concepción
2027-12-25 national Natividad del Señor
"""

#: Years the written table covers; other years use :func:`rule_holidays`.
TABLE_YEARS = range(2017, 2028)


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 (the algorithm's own name)
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def rule_holidays(year: int) -> list[tuple[dt.date, str, str]]:
    """Holidays by rule alone (no yearly moves): for years the table does not cover."""
    easter = easter_sunday(year)
    fixed = [
        ((1, 1), "national", "Año Nuevo"), ((1, 6), "national", "Epifanía del Señor"),
        ((5, 1), "national", "Fiesta del Trabajo"), ((5, 2), "regional", "Fiesta de la Comunidad de Madrid"),
        ((5, 15), "city", "San Isidro"), ((8, 15), "national", "Asunción de la Virgen"),
        ((10, 12), "national", "Fiesta Nacional de España"), ((11, 1), "national", "Todos los Santos"),
        ((11, 9), "city", "Nuestra Señora de la Almudena"), ((12, 6), "national", "Día de la Constitución"),
        ((12, 8), "national", "Inmaculada Concepción"), ((12, 25), "national", "Natividad del Señor"),
    ]
    days = [(dt.date(year, m, d), scope, name) for (m, d), scope, name in fixed]
    days += [(easter - dt.timedelta(days=3), "regional", "Jueves Santo"),
             (easter - dt.timedelta(days=2), "national", "Viernes Santo")]
    return sorted(days)


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[dt.date, str, str], ...]:
    rows = []
    for line in _TABLE.strip().splitlines():
        day, scope, name = line.split(" ", 2)
        rows.append((dt.date.fromisoformat(day), scope, name))
    return tuple(rows)


def holidays(start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
    """Holidays in ``[start, end]`` as a frame with columns date, scope, name."""
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    rows = [r for r in _table() if start <= r[0] <= end]
    for year in range(start.year, end.year + 1):
        if year not in TABLE_YEARS:
            rows += [r for r in rule_holidays(year) if start <= r[0] <= end]
    return pd.DataFrame(sorted(rows), columns=["date", "scope", "name"])


def is_holiday(dates) -> np.ndarray:
    """Boolean array: is each date (anything ``pd.to_datetime`` reads) a Madrid holiday."""
    days = pd.DatetimeIndex(pd.to_datetime(dates)).tz_localize(None).normalize()
    if len(days) == 0:
        return np.zeros(0, dtype=bool)
    table = holidays(days.min().date(), days.max().date())
    return days.isin(pd.DatetimeIndex(pd.to_datetime(table["date"])))


def day_type(dates) -> np.ndarray:
    """Day type code per date: 0 weekday, 1 saturday, 2 sunday or holiday (see ``DAY_TYPES``)."""
    days = pd.DatetimeIndex(pd.to_datetime(dates))
    dow = days.day_of_week.to_numpy()
    codes = np.where(dow == 6, 2, np.where(dow == 5, 1, 0))
    codes[is_holiday(days)] = 2
    return codes.astype(np.int8)
