"""EMT's daily usage series: the Spanish number format, bad input, and the inconsistent-row rule."""

import numpy as np
import pandas as pd
import pytest

from bicimad.opendata.daily_usage import counted_trips, parse_spanish_number, read_daily_usage
from bicimad.opendata.rejects import IngestError
from bicimad.opendata.schemas import read_table, write_table

HEADER = ("DIA;HORAS_TOTALES_USOS_BICICLETAS;HORAS_TOTALES_DISPONIBILIDAD_BICICLETAS_EN _ANCLAJES;"
          "TOTAL_HORAS_SERVICIO_BICICLETAS;MEDIA_BICICLETAS_DISPONIBLES;USOS_ABONADO_ANUAL;USOS_ABONADO_OCASIONAL;TOTAL_USOS")


def spanish(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"                      # 3,991.13
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def usage_line(day: pd.Timestamp, annual: int, occasional: int, total: int | None = None, hours_per_trip: float = 0.3) -> str:
    total = annual + occasional if total is None else total
    in_use = hours_per_trip * (annual + occasional)
    docked = 40_000.0 + day.day
    return ";".join([f"{day:%d/%m/%Y}", spanish(in_use, 2), spanish(docked, 2), spanish(in_use + docked, 2),
                     spanish((in_use + docked) / 24, 2), spanish(annual, 0), spanish(occasional, 0), spanish(total, 0)])


def write_usage(path, lines, newline="\r\n"):
    path.write_bytes((newline.join([HEADER, *lines]) + newline).encode("ascii"))
    return path


@pytest.fixture
def month(tmp_path):
    """30 days of Sep 2018 with weekday/weekend volumes; two inconsistent days of each kind."""
    days = pd.date_range("2018-09-01", periods=30)
    rng = np.random.default_rng(3)
    lines = []
    for day in days:
        annual = int(rng.integers(13_000, 16_000) if day.day_of_week < 5 else rng.integers(8_000, 11_000))
        occasional = int(rng.integers(100, 400))
        total = annual + occasional - int(rng.integers(0, 10))        # a few trips apart: consistent
        if day.day == 10:
            total = 2_168                                               # TOTAL_USOS far too low
        if day.day == 20:
            total = annual + occasional + 3_000                         # TOTAL_USOS far too high
        lines.append(usage_line(day, annual, occasional, total))
    lines.append(usage_line(pd.Timestamp("2018-10-01"), 6_000, 100, 14_000, hours_per_trip=0.9))  # neither count fits
    return write_usage(tmp_path / "bici_disponibilidad.csv", lines)


def test_spanish_numbers():
    assert parse_spanish_number("8.175", count=True) == 8175
    assert parse_spanish_number("3.991,13", count=False) == pytest.approx(3991.13)
    assert parse_spanish_number("1.007,57", count=False) == pytest.approx(1007.57)
    assert parse_spanish_number("995,22", count=False) == pytest.approx(995.22)
    assert parse_spanish_number("63", count=True) == 63
    for bad, count in (("8,175", True), ("3991.13", False), ("1.00", True), ("-5", True), ("1.0000", True), ("", False)):
        with pytest.raises(ValueError, match="Spanish format"):
            parse_spanish_number(bad, count=count)


def test_reads_a_generated_month_and_resolves_inconsistent_rows(month, tmp_path):
    usage = read_daily_usage(month)
    assert len(usage) == 31 and usage["date"].is_monotonic_increasing
    by_date = usage.set_index("date")
    typical = by_date.loc["2018-09-03"]
    assert typical["consistent"] and typical["usable"] and typical["total_source"] == "TOTAL_USOS"
    assert typical["total_trips"] == typical["published_total_trips"]
    assert typical["bike_hours_in_use"] == pytest.approx(0.3 * (typical["annual_trips"] + typical["occasional_trips"]), abs=0.01)
    # Bike-hours side with the user types on both inconsistent days, whichever count is larger.
    for day in ("2018-09-10", "2018-09-20"):
        row = by_date.loc[day]
        assert not row["consistent"] and row["usable"] and row["total_source"] == "user_types"
        assert row["total_trips"] == row["annual_trips"] + row["occasional_trips"]
    # Three times the hours per trip: neither published count is within 15 % of what the hours imply.
    odd = by_date.loc["2018-10-01"]
    assert not odd["consistent"] and not odd["usable"]
    counts = counted_trips(usage, ["2018-09-03", "2018-10-01", "2018-12-01"])
    assert counts[0] == typical["total_trips"] and np.isnan(counts[1]) and np.isnan(counts[2])
    # The table round-trips through its schema.
    back = read_table("daily_usage", write_table(usage, "daily_usage", tmp_path / "daily_usage.parquet"))
    assert back["total_trips"].tolist() == usage["total_trips"].tolist()


def test_total_usos_kept_when_the_hours_agree(tmp_path):
    days = pd.date_range("2019-07-01", periods=20)
    lines = [usage_line(d, 15_000, 100) for d in days[1:]]
    # As on 2019-07-01: the user types add up to more, the hours fit TOTAL_USOS.
    lines.insert(0, usage_line(days[0], 13_339, 102, 11_830, hours_per_trip=0.3 * 11_830 / 13_441))
    row = read_daily_usage(write_usage(tmp_path / "u.csv", lines, newline="\n")).iloc[0]
    assert not row["consistent"] and row["usable"] and row["total_source"] == "TOTAL_USOS" and row["total_trips"] == 11_830


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.replace("8.175", "8,175", 1), r"line 2: field TOTAL_USOS: expected a whole number"),
    (lambda f: f.replace("3.991,13", "3991.13", 1), r"line 2: field HORAS_TOTALES_USOS_BICICLETAS: expected a number"),
    (lambda f: f.replace("10/08/2015", "2015-08-10", 1), r"line 2: field DIA: expected dd/mm/yyyy"),
    (lambda f: f.replace("11/08/2015", "31/02/2015", 1), r"line 3: field DIA: day is out of range"),
    (lambda f: f.replace("11/08/2015", "10/08/2015", 1), r"line 3: field DIA: 10/08/2015 appears twice"),
    (lambda f: f.replace(";189;", ";189;;", 1), r"line 2: expected 8 fields, got 9"),
    (lambda f: f.replace("TOTAL_USOS", "USOS", 1), r"line 1: missing column\(s\) \['TOTAL_USOS'\]"),
])
def test_bad_values_name_file_line_and_field(tmp_path, mutate, message):
    good = (HEADER + "\r\n10/08/2015;3.991,13;19.894,18;23.885,31;995,22;7.986;189;8.175\r\n"
            "11/08/2015;4.364,40;19.817,30;24.181,70;1.007,57;8.750;191;8.941\r\n")
    assert read_daily_usage(write_raw(tmp_path / "ok.csv", good))["total_trips"].tolist() == [8175, 8941]
    path = write_raw(tmp_path / "bad.csv", mutate(good))
    with pytest.raises(IngestError, match=message) as err:
        read_daily_usage(path)
    assert str(path) in str(err.value)


def write_raw(path, text):
    path.write_bytes(text.encode("ascii"))
    return path


def test_real_series(shared_data):
    path = shared_data / "calibration" / "bici_disponibilidad_2015-08_2019-10.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    usage = read_daily_usage(path)
    assert len(usage) == 1_544 and usage["date"].iloc[0] == pd.Timestamp("2015-08-10")
    assert usage["date"].diff().dropna().eq(pd.Timedelta(days=1)).all()
    assert counted_trips(usage, ["2018-09-01", "2018-09-10", "2018-09-12"]).tolist() == [9_714, 14_665, 16_276]
    # Sep 2018 and Oct 2019 (periods with snapshots) are consistent on every day.
    for month_ in ("2018-09", "2019-10"):
        rows = usage[usage["date"].dt.strftime("%Y-%m") == month_]
        assert len(rows) in (30, 31) and rows["consistent"].all()
    by_date = usage.set_index("date")
    assert by_date.loc["2015-11-25", "total_trips"] == 2_168          # the hours agree with TOTAL_USOS
    assert by_date.loc["2019-07-01", "total_source"] == "TOTAL_USOS"
    assert by_date.loc["2015-10-26", "total_source"] == "user_types"
    assert 0.98 < usage["consistent"].mean() < 1.0 and usage["usable"].mean() > 0.99
