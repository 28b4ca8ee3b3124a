import datetime as dt

import pandas as pd
import pytest

from bicimad.demand.calendar import TABLE_YEARS, day_type, easter_sunday, holidays, is_holiday, rule_holidays


@pytest.mark.parametrize("year, easter", [(2018, dt.date(2018, 4, 1)), (2019, dt.date(2019, 4, 21)),
                                          (2024, dt.date(2024, 3, 31)), (2027, dt.date(2027, 3, 28))])
def test_easter_known_dates(year, easter):
    assert easter_sunday(year) == easter


@pytest.mark.parametrize("year", list(TABLE_YEARS))
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


def test_day_types_around_known_days():
    days = ["2019-10-11", "2019-10-12", "2019-10-13", "2019-10-14", "2019-11-09", "2019-12-09", "2019-12-10"]
    # Fri weekday; Sat holiday (Fiesta Nacional); Sun; Mon; Sat (Almudena); Mon holiday (moved Inmaculada); Tue
    assert day_type(days).tolist() == [0, 2, 2, 0, 2, 2, 0]
    assert is_holiday(pd.to_datetime(["2019-05-15 08:00"]).tz_localize("Europe/Madrid")).tolist() == [True]


def test_years_outside_table_use_rules():
    table = holidays("2030-01-01", "2030-12-31")
    assert len(table) == len(rule_holidays(2030))
    assert easter_sunday(2030) - dt.timedelta(days=2) in set(table["date"])
