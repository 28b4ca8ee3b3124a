"""The interactive map in headless Chromium with the network off: the station markers, the route
polylines and the numbered stops render without tiles; hovering shows the details; screenshots
of the report's map and of the standalone map are kept under the test's tmp folder."""

from __future__ import annotations

import re
import time

import pytest

from bicimad.report import html as report
from bicimad.report import maps

COUNTS = """
var m = window.bicimadMaps && window.bicimadMaps[arguments[0]];
if (!m) { return null; }
var el = document.getElementById(arguments[0]), box = el.getBoundingClientRect();
function inside(e) { var r = e.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.right > box.left && r.left < box.right && r.bottom > box.top && r.top < box.bottom; }
var st = Array.from(el.querySelectorAll('path.bm-station')), rt = Array.from(el.querySelectorAll('path.bm-route'));
var tiles = Array.from(el.querySelectorAll('img.leaflet-tile'));
return {stations: m.stations, routes: m.routes, stops: m.stops,
        station_paths: st.length, station_inside: st.filter(inside).length,
        route_paths: rt.length, route_inside: rt.filter(inside).length,
        route_d: rt.map(function (p) { return (p.getAttribute('d') || '').split('L').length; }),
        stop_labels: el.querySelectorAll('.bm-stop').length, bases: el.querySelectorAll('.bm-base').length,
        fills: Array.from(new Set(st.map(function (p) { return p.getAttribute('fill'); }))).length,
        tiles_loaded: tiles.filter(function (t) { return t.complete && t.naturalWidth > 0; }).length,
        tile_errors: m.tileErrors()};
"""


def _wait_for(driver, map_id: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts = driver.execute_script(COUNTS, map_id)
        if counts and counts["tile_errors"] > 0:
            return counts
        time.sleep(0.25)
    return driver.execute_script(COUNTS, map_id)


TOPMOST = """
return Array.from(document.querySelectorAll(arguments[0])).find(function (e) {
  var r = e.getBoundingClientRect(), hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit === e || e.contains(hit); });
"""


def _hover_text(driver, css: str) -> str:
    """Hover the first element matching ``css`` that nothing covers; the tooltip's text."""
    from selenium.webdriver.common.action_chains import ActionChains

    element = driver.execute_script(TOPMOST, css)
    assert element is not None, f"every {css} is covered"
    ActionChains(driver).move_to_element(element).perform()
    time.sleep(0.3)
    return driver.execute_script("var t = document.querySelector('.leaflet-tooltip'); return t ? t.innerText : '';")


def test_report_map_renders_offline(nightly_run, tmp_path, chromium):
    run = report.load_run(nightly_run, label="plan for 2018-09-05")
    sheet = run.route_sheet
    out = report.build_report([run], nightly_run / "report.html", title="BiciMAD nightly plan",
                              dataset="synthetic city")
    driver = chromium(offline=True, size="1200,1400")
    driver.get(out.resolve().as_uri())
    counts = _wait_for(driver, "route-map-0")
    assert counts is not None, "the map script did not run"
    # network really off: every tile failed, none loaded
    assert counts["tile_errors"] > 0 and counts["tiles_loaded"] == 0
    assert counts["stations"] == counts["station_paths"] == 30
    assert counts["station_inside"] == 30  # every station is drawn inside the map
    shifts = sheet.groupby("truck")["shift"].nunique().sum()
    assert counts["routes"] == counts["route_paths"] == shifts == 3
    assert counts["route_inside"] == 3
    # each polyline runs from the base through every stop of the truck, in order: 1 + 8 vertices
    assert sorted(counts["route_d"]) == [1 + n for n in sorted(sheet.groupby("truck").size())]
    assert counts["stop_labels"] == counts["stops"] == len(sheet) == 24
    assert counts["bases"] == 3
    assert counts["fills"] > 1  # stations coloured by risk, not all alike

    first = sheet.iloc[0]
    text = _hover_text(driver, ".bm-stop")
    assert "truck" in text and "stop" in text and ("load" in text or "unload" in text) and "bikes now" in text
    text = _hover_text(driver, "path.bm-station")
    assert "bikes now:" in text and "predicted problem hours tomorrow: noop" in text
    assert first["name"]  # the route sheet's stops are named stations

    driver.execute_script("document.getElementById('route-map-0').scrollIntoView();")
    shot = tmp_path / "report-map-offline.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_standalone_map_renders_offline_and_switches_risk(nightly_run, tmp_path, chromium):
    run = report.load_run(nightly_run)
    data = maps.map_data(run.stations, risk=maps.station_risk(run.station_hours), start=run.start,
                         sheet=run.route_sheet, risk_default="ortools")
    page = maps.build_map(data, tmp_path / "map.html")
    text = page.read_text(encoding="utf-8")
    # Leaflet and the data are inline: no file is fetched but the tiles
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=", text) and "leaflet.js" not in text
    driver = chromium(offline=True, size="1100,900")
    driver.get(page.resolve().as_uri())
    counts = _wait_for(driver, "route-map")
    assert counts["station_paths"] == 30 and counts["route_paths"] == 3 and counts["stop_labels"] == 24
    fill = "return Array.from(document.querySelectorAll('path.bm-station')).map(function (p) { return p.getAttribute('fill'); });"
    before = driver.execute_script(fill)
    driver.execute_script("var s = document.getElementById('route-map-risk'); s.value = 'noop';"
                          "s.dispatchEvent(new Event('change'));")
    after = driver.execute_script(fill)
    assert before != after  # noop leaves more stations at risk than ortools
    shot = tmp_path / "map-offline.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


@pytest.mark.parametrize("with_sheet", [False])
def test_map_from_plan_without_route_sheet(nightly_run, with_sheet):
    run = report.load_run(nightly_run)
    data = maps.map_data(run.stations, risk=maps.station_risk(run.station_hours), plan=run.plan)
    assert [r["base"] for r in data["routes"]] == [None, None, None]
    assert [len(r["shifts"][0]["stops"]) for r in data["routes"]] == [8, 8, 8]
    assert data["risk_default"] == "noop"
