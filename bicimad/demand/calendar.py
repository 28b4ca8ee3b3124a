"""Madrid's public holidays and the day types demand is modelled by.

Three layers of holiday apply to a bike trip in the city of Madrid:

* **national** days set by the State (BOE) and kept by every region;
* **regional** days of the Comunidad de Madrid (BOCM): 2 May, Holy Thursday, and the days it
  chooses each year (San José, Santiago, or the Monday after a national holiday that falls on a
  Sunday);
* **city** days of the Ayuntamiento de Madrid: San Isidro (15 May) and La Almudena (9 November),
  moved to the Monday when they fall on a Sunday.

The national and regional layers come from the ``holidays`` package (Spain, subdivision ``MD``),
which tracks the yearly BOE and BOCM decrees; a day it lists for Spain as a whole is ``national``,
one it adds for the Comunidad de Madrid is ``regional``. Only the two city days are added here.
Years outside the package's range (:data:`YEARS`) raise :class:`ValueError`.

Day types (``DAY_TYPES``): 0 ``weekday`` (Mon-Fri, not a holiday), 1 ``saturday``
(not a holiday), 2 ``sunday_holiday`` (Sundays and any holiday).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays as holiday_calendars
import numpy as np
import pandas as pd

DAY_TYPES = ("weekday", "saturday", "sunday_holiday")

#: Years the ``holidays`` package knows Spain's calendar for.
YEARS = range(holiday_calendars.ES.start_year, holiday_calendars.ES.end_year + 1)

#: The city of Madrid's two local holidays, as (month, day, name).
CITY_DAYS = ((5, 15, "San Isidro"), (11, 9, "Nuestra Señora de la Almudena"))


def city_holidays(year: int) -> list[tuple[dt.date, str]]:
    """Madrid city's local days of ``year``: each moves to the Monday when it falls on a Sunday."""
    days = []
    for month, day, name in CITY_DAYS:
        date = dt.date(year, month, day)
        if date.weekday() == 6:
            date, name = date + dt.timedelta(days=1), f"{name} (trasladado)"
        days.append((date, name))
    return days


@lru_cache(maxsize=256)
def _year(year: int) -> tuple[tuple[dt.date, str, str], ...]:
    if year not in YEARS:
        raise ValueError(f"Madrid's holidays are known for {YEARS.start}-{YEARS.stop - 1} only; got a date in {year}")
    national = holiday_calendars.country_holidays("ES", years=year, language="es")
    madrid = holiday_calendars.country_holidays("ES", subdiv="MD", years=year, language="es")
    rows = [(day, "national" if day in national else "regional", name) for day, name in madrid.items()]
    rows += [(day, "city", name) for day, name in city_holidays(year)]
    return tuple(sorted(rows))


def holidays(start: dt.date | str, end: dt.date | str) -> pd.DataFrame:
    """Holidays in ``[start, end]`` as a frame with columns date, scope, name, sorted by date."""
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    rows = [row for year in range(start.year, end.year + 1) for row in _year(year) if start <= row[0] <= end]
    return pd.DataFrame(rows, columns=["date", "scope", "name"])


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
