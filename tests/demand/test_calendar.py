import datetime as dt

import pandas as pd
import pytest
from dateutil.easter import easter as easter_sunday

from bicimad.demand.calendar import YEARS, city_holidays, day_type, holidays, is_holiday

#: The years of the EMT data and the plans made from it.
DATA_YEARS = range(2017, 2028)


def _days(year: int) -> set[dt.date]:
    return set(holidays(f"{year}-01-01", f"{year}-12-31")["date"])


@pytest.mark.parametrize("year, easter", [(2018, dt.date(2018, 4, 1)), (2019, dt.date(2019, 4, 21)),
                                          (2024, dt.date(2024, 3, 31)), (2027, dt.date(2027, 3, 28))])
def test_easter_known_dates(year, easter):
    assert easter_sunday(year) == easter
    days = _days(year)
    assert easter - dt.timedelta(days=2) in days  # Viernes Santo
    assert easter - dt.timedelta(days=3) in days  # Jueves Santo


@pytest.mark.parametrize("year", list(DATA_YEARS))
def test_table_year_is_consistent(year):
    table = holidays(f"{year}-01-01", f"{year}-12-31")
    days = set(table["date"])
    easter = easter_sunday(year)
    assert easter - dt.timedelta(days=2) in days          # Viernes Santo
    assert easter - dt.timedelta(days=3) in days          # Jueves Santo (Comunidad de Madrid)
    assert table["date"].is_unique
    city = table[table["scope"] == "city"]
    assert [d.month for d in city["date"]] == [5, 11]     # San Isidro and La Almudena
    assert set(table["scope"]) == {"national", "regional", "city"}
    # Madrid has at most 14 paid holidays a year (12 national/regional + 2 local).
    assert 12 <= len(table) <= 15
    assert len(table) <= 14 and len(table[table["scope"] != "city"]) <= 12
    assert dt.date(year, 5, 2) in days or dt.date(year, 5, 2).weekday() == 6  # Fiesta de la Comunidad


def test_official_moves_of_the_regional_calendar():
    # Days the Comunidad de Madrid's decrees moved or chose (BOCM), read from the package.
    assert {dt.date(2017, 3, 20), dt.date(2019, 1, 7), dt.date(2019, 12, 9), dt.date(2020, 11, 2),
            dt.date(2020, 12, 7), dt.date(2021, 5, 3), dt.date(2022, 12, 26), dt.date(2024, 7, 25)} <= (
        _days(2017) | _days(2019) | _days(2020) | _days(2021) | _days(2022) | _days(2024))
    # San José was not a holiday in 2018-2020 (the region kept 2 May instead), nor 2 January 2017.
    assert not {dt.date(2017, 1, 2), dt.date(2018, 3, 19), dt.date(2019, 3, 19), dt.date(2020, 3, 19)} & (
        _days(2017) | _days(2018) | _days(2019) | _days(2020))


def test_city_days_move_from_sunday_to_monday():
    assert city_holidays(2022)[0] == (dt.date(2022, 5, 16), "San Isidro (trasladado)")  # 15 May 2022: Sunday
    assert city_holidays(2025)[1][0] == dt.date(2025, 11, 10)                           # 9 Nov 2025: Sunday
    assert [d for d, _ in city_holidays(2021)] == [dt.date(2021, 5, 15), dt.date(2021, 11, 9)]  # Saturday stays
    table = holidays("2022-05-01", "2022-05-31")
    assert table[table["scope"] == "city"]["date"].tolist() == [dt.date(2022, 5, 16)]


def test_day_types_around_known_days():
    days = ["2019-10-11", "2019-10-12", "2019-10-13", "2019-10-14", "2019-11-09", "2019-12-09", "2019-12-10"]
    # Fri weekday; Sat holiday (Fiesta Nacional); Sun; Mon; Sat (Almudena); Mon holiday (moved Inmaculada); Tue
    assert day_type(days).tolist() == [0, 2, 2, 0, 2, 2, 0]
    assert is_holiday(pd.to_datetime(["2019-05-15 08:00"]).tz_localize("Europe/Madrid")).tolist() == [True]


def test_years_beyond_the_data_follow_the_rules():
    table = holidays("2030-01-01", "2030-12-31")
    assert easter_sunday(2030) - dt.timedelta(days=2) in set(table["date"])
    assert 12 <= len(table) <= 14


def test_years_the_package_does_not_know_are_refused():
    with pytest.raises(ValueError, match=rf"known for {YEARS.start}-{YEARS.stop - 1} only; got a date in 1990"):
        day_type(["1990-05-15"])
