"""Route sheets from a hand-made plan: arrival times, loads and distances worked out by hand.

The stations lie on one meridian, so the great-circle distance between two of them is the
Earth's radius times their latitude difference: we place them whole kilometres apart. With a
detour factor of 1.5 and 18 km/h, one straight-line km is 1.5 road km and 5 minutes' drive.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.geo import EARTH_RADIUS_KM
from bicimad.report import routes

KM = 180 / (math.pi * EARTH_RADIUS_KM)  # degrees of latitude per km


def _stations():
    at = {10: 0.0, 11: 2.0, 12: 3.0, 13: 0.5, 14: 1.0}  # station id -> km north of the base (10)
    return pd.DataFrame({
        "station_id": list(at),
        "number": ["1a", "2", "3", "4b", "5"],
        "name": ["Base Norte", "Plaza A", "=HYPERLINK(\"http://x\")", "-Calle D", "Plaza E"],
        "address": ["Calle Base 1", "Calle A 2", "Calle C 3", None, "@Calle E"],
        "lat": [40.40 + km * KM for km in at.values()],
        "lon": [-3.70] * len(at),
        "capacity": [20] * len(at),
    })


def _plan(rows):
    frame = pd.DataFrame(rows, columns=["truck", "hour", "order", "station_id", "bikes"])
    frame["hour"] = pd.to_datetime(frame["hour"]).dt.tz_localize(TZ).astype(str)  # as plans.csv writes it
    frame["planner"] = "ortools"
    frame["action"] = ["load" if b > 0 else "unload" for b in frame["bikes"]]
    return frame


PLAN = _plan([
    (1, "2018-09-28 08:00", 1, 11, 10),   # base -> A: 2 km (3 road km, 10 min): 08:10, load 2 + 10 = 12
    (1, "2018-09-28 08:00", 2, 12, -4),   # A -> C: 1 km (5 min): 08:15, load 8
    (1, "2018-09-28 09:00", 1, 13, 3),    # C -> D: 2.5 km (12.5 min) from 09:00: 09:12:30 -> 09:13, load 11
    (1, "2018-09-28 09:00", 2, 11, -9),   # D -> A: 1.5 km (7.5 min) from 09:13: 09:20:30 -> 09:21, load 2
    (2, "2018-09-28 10:00", 1, 14, 0),    # no bikes: not a stop
])


def test_route_sheet_times_loads_and_distances_by_hand():
    sheet = routes.route_sheet(PLAN, _stations(), {1: 10, 2: 10, 3: 14}, speed_kmh=18, detour=1.5, initial_load=2)
    assert list(sheet.columns) == list(routes.ROUTE_SHEET_COLUMNS)
    assert list(sheet["truck"]) == [1, 1, 1, 1] and list(sheet["stop"]) == [1, 2, 3, 4]
    assert set(sheet["shift"]) == {"2018-09-28"}
    assert [t.strftime("%H:%M") for t in sheet["arrival"]] == ["08:10", "08:15", "09:13", "09:21"]
    assert all(str(t.tz) == TZ for t in sheet["arrival"])
    assert list(sheet["km_from_previous"]) == pytest.approx([3.0, 1.5, 3.75, 2.25], abs=0.01)
    assert list(sheet["drive_min_from_previous"]) == pytest.approx([10.0, 5.0, 12.5, 7.5], abs=0.1)
    assert list(sheet["action"]) == ["load", "unload", "load", "unload"]
    assert list(sheet["bikes"]) == [10, 4, 3, 9]
    assert list(sheet["load_after"]) == [12, 8, 11, 2]
    assert list(sheet["number"]) == ["2", "3", "4b", "2"] and sheet["address"].iloc[0] == "Calle A 2"
    assert set(sheet["base_number"]) == {"1a"} and set(sheet["base_name"]) == {"Base Norte"}
    assert sorted(sheet.attrs["bases"]) == [1, 2, 3]  # trucks without stops keep their base


def test_arrival_never_before_the_hour_nor_the_previous_stop():
    # 50 minutes at each stop: C is reached at 08:10 + 50 + 5 = 09:05, past its hour's start;
    # D (planned for 09:00) waits for C: 09:55 + 12.5 min = 10:07:30 -> 10:08; A: 10:58 + 7.5 min -> 11:06
    sheet = routes.route_sheet(PLAN, _stations(), [10, 10], speed_kmh=18, detour=1.5, service_min=50)
    assert [t.strftime("%H:%M") for t in sheet["arrival"]] == ["08:10", "09:05", "10:08", "11:06"]
    assert list(sheet["load_after"]) == [10, 6, 9, 0]
    # a stop at the base itself is reached at the hour's start, not before
    at_base = routes.route_sheet(_plan([(1, "2018-09-28 07:00", 1, 10, 5)]), _stations(), [10], speed_kmh=18)
    assert at_base["arrival"].iloc[0] == pd.Timestamp("2018-09-28 07:00", tz=TZ)
    assert at_base["km_from_previous"].iloc[0] == 0


def test_shifts_start_at_the_base_and_night_shift_keeps_its_evening_date():
    plan = _plan([(1, "2018-09-28 05:00", 1, 11, 6), (1, "2018-09-28 06:00", 1, 12, -2),
                  (1, "2018-09-28 13:00", 1, 14, -1), (1, "2018-09-28 22:00", 1, 13, -3)])
    shifts = routes.parse_shifts("06-14,14-22,22-06")
    sheet = routes.route_sheet(plan, _stations(), [10], speed_kmh=18, detour=1.5, shifts=shifts)
    assert list(sheet["shift"]) == ["2018-09-27 22-06", "2018-09-28 06-14", "2018-09-28 06-14", "2018-09-28 22-06"]
    assert list(sheet["stop"]) == [1, 1, 2, 1]
    # first stop of each shift from the base: 2, 3 and 0.5 km; C -> E within the day shift: 2 km
    assert list(sheet["km_from_previous"]) == pytest.approx([3.0, 4.5, 3.0, 0.75], abs=0.01)
    assert [t.strftime("%H:%M") for t in sheet["arrival"]] == ["05:10", "06:15", "13:10", "22:03"]
    assert list(sheet["load_after"]) == [6, 4, 3, 0]  # the load carries over from shift to shift


def test_parse_shifts_rejects_gaps_and_overlaps():
    assert routes.parse_shifts("day") is None and routes.parse_shifts(None) is None
    assert routes.parse_shifts("00-24") == [(0, 0)]
    for bad in ("06-14,14-22", "06-14,13-06", "6:00-14", "05-05"):
        with pytest.raises(ValueError, match="shifts"):
            routes.parse_shifts(bad)


def test_route_sheet_names_a_missing_base_or_station():
    with pytest.raises(ValueError, match="no base for truck 1"):
        routes.route_sheet(PLAN, _stations(), {2: 10}, speed_kmh=18)
    with pytest.raises(ValueError, match="base 99"):
        routes.route_sheet(PLAN, _stations(), [99], speed_kmh=18)
    with pytest.raises(ValueError, match="station 77"):
        routes.route_sheet(_plan([(1, "2018-09-28 08:00", 1, 77, 3)]), _stations(), [10], speed_kmh=18)


def test_csv_escapes_formulas_and_keeps_numbers(tmp_path):
    sheet = routes.route_sheet(PLAN, _stations(), [10], speed_kmh=18, detour=1.5, initial_load=2)
    path = routes.write_route_csv(sheet, tmp_path / "route_sheet.csv")
    back = pd.read_csv(path, dtype={"number": str})
    assert list(back.columns) == list(routes.ROUTE_SHEET_COLUMNS)
    assert back["name"].iloc[1] == "'=HYPERLINK(\"http://x\")" and back["name"].iloc[2] == "'-Calle D"
    assert back["arrival"].iloc[0] == "2018-09-28 08:10+02:00"
    assert list(back["load_after"]) == [12, 8, 11, 2] and list(back["bikes"]) == [10, 4, 3, 9]
    assert not list(tmp_path.glob(".*.tmp"))


def test_printable_pages_one_per_truck(tmp_path):
    sheet = routes.route_sheet(PLAN, _stations(), {1: 10, 2: 14}, speed_kmh=18, detour=1.5, initial_load=2)
    paths = routes.write_route_pages(sheet, tmp_path, title="Route sheet 2018-09-28")
    assert [p.name for p in paths] == ["route-truck-1.html", "route-truck-2.html"]
    page = paths[0].read_text(encoding="utf-8")
    assert "@media print" in page and "Base: <b>1a Base Norte</b>, Calle Base 1" in page
    assert page.count("class='box'") == 4 and "=HYPERLINK(&quot;" in page
    assert "<td class='n'>4</td><td colspan='4'>stops; loaded 13, unloaded 13 bikes</td>" in page
    assert "<td class='n'>10.5</td><td class='n'>35</td></tr></tfoot>" in page  # 3 + 1.5 + 3.75 + 2.25 km
    assert "No stops planned" in paths[1].read_text(encoding="utf-8")


def test_the_repeated_hour_of_the_autumn_dst_change():
    """On 27 Oct 2019 clocks go back at 03:00: 02:xx happens twice. Arrival times in the first
    pass of that hour are still whole minutes with their own offset (no ambiguity error)."""
    first_pass = pd.Timestamp("2019-10-27 00:00", tz="UTC").tz_convert(TZ)   # 02:00 CEST (+02:00)
    plan = pd.DataFrame({"planner": "ortools", "truck": [1], "hour": [str(first_pass)], "order": [1], "station_id": [11],
                         "bikes": [5], "action": ["load"]})
    sheet = routes.route_sheet(plan, _stations(), [10], speed_kmh=18, detour=1.5)
    arrival = sheet["arrival"].iloc[0]
    assert arrival == first_pass + pd.Timedelta(minutes=10) and arrival.utcoffset() == pd.Timedelta(hours=2)
