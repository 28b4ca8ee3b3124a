"""The interactive map of a run: stations coloured by tomorrow's predicted risk, the trucks' routes.

Stations are SVG circle markers coloured by the predicted problem hours per station (one value
per simulated planner; a selector above the map switches between them), sized by docks; each
truck's route is a polyline from its base through its stops in order, with numbered stops.
Hovering a station shows its bikes at the start snapshot, its predicted problem hours and the
stops planned there; hovering a stop shows the truck, the arrival, the action and the load.

Leaflet (bundled in ``static/leaflet``, BSD-2) is inlined, so the page works offline: the
OpenStreetMap tiles load when online, and without a network the markers and routes still
render (they need no tiles). :func:`map_data` gathers the data, :func:`map_fragment` renders
it into a page that has :func:`map_head` in its ``<head>``, and :func:`build_map` writes a
standalone page.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from bicimad.io import atomic_open
from bicimad.report import occupancy as occ

#: Route colours, one per truck (cycled), chosen apart from the green-to-red risk scale.
TRUCK_COLOURS = ("#1f4e9c", "#7b3294", "#e66101", "#008b8b", "#5e3c1e", "#c51b7d", "#4d4d4d", "#0571b0")

_MAP_CSS = """
.bm-wrap { margin: 0.5em 0 1em; } .bm-map { width: 100%; border: 1px solid #bbb; background: #eef0f2; }
.bm-stop span { display: block; width: 15px; height: 15px; border-radius: 8px; color: #fff; font: bold 9px/15px
  system-ui, sans-serif; text-align: center; border: 1px solid #fff; box-shadow: 0 0 2px #000; }
.bm-base span { display: block; width: 20px; height: 20px; color: #fff; font: bold 10px/20px system-ui, sans-serif;
  text-align: center; border: 2px solid #fff; box-shadow: 0 0 3px #000; }
.bm-legend { background: #fff; padding: 6px 8px; font: 12px system-ui, sans-serif; box-shadow: 0 0 4px #888; }
.bm-legend .bar { height: 10px; width: 160px; background: linear-gradient(to right, #1a9850, #fee08b, #d73027); }
.bm-legend .ends { display: flex; justify-content: space-between; width: 160px; }
"""

_MAP_JS = """
(function () {
  var data = __DATA__, id = "__ID__", el = document.getElementById(id);
  var map = L.map(el, {zoomSnap: 0.25}), tileErrors = 0, vmax = Math.max(1, data.vmax);
  var tiles = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    {maxZoom: 19, attribution: "&copy; OpenStreetMap contributors"}).addTo(map);
  tiles.on("tileerror", function () { tileErrors += 1; });
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; }); }
  function mix(a, b, t) { return Math.round(a + (b - a) * t); }
  function colour(v) {
    if (v == null) { return "#9e9e9e"; }
    var t = Math.min(1, v / vmax), lo = t < 0.5 ? [26, 152, 80] : [254, 224, 139],
        hi = t < 0.5 ? [254, 224, 139] : [215, 48, 39], u = t < 0.5 ? 2 * t : 2 * t - 1;
    return "rgb(" + mix(lo[0], hi[0], u) + "," + mix(lo[1], hi[1], u) + "," + mix(lo[2], hi[2], u) + ")"; }
  function stationText(s) {
    var risk = data.planners.map(function (p) { return esc(p) + " " + (s.risk[p] == null ? "?" : s.risk[p]); });
    var stops = (s.stops || []).map(function (v) { return "truck " + v.truck + " stop " + v.stop + " " + esc(v.time) +
      ": " + v.action + " " + v.bikes; });
    return "<b>" + esc(s.number) + " " + esc(s.name) + "</b>" + (s.address ? "<br>" + esc(s.address) : "") +
      "<br>bikes now: " + (s.bikes == null ? "?" : s.bikes) + " of " + esc(s.capacity) + " docks" +
      "<br>predicted problem hours tomorrow: " + risk.join(", ") +
      (stops.length ? "<br>planned: " + stops.slice(0, 6).join("<br>") + (stops.length > 6 ? "<br>..." : "") : ""); }
  var markers = data.stations.map(function (s) {
    var m = L.circleMarker([s.lat, s.lon], {radius: 3 + Math.sqrt(s.capacity || 20) / 1.5, weight: 1,
      color: "#333", fillOpacity: 0.85, className: "bm-station"});
    return m.bindTooltip(function () { return stationText(s); }).addTo(map); });
  function recolour(planner) { data.stations.forEach(function (s, i) {
    markers[i].setStyle({fillColor: colour(s.risk[planner])}); }); }
  var overlays = {}, lines = 0, stops = 0;
  data.routes.forEach(function (r) {
    var group = L.layerGroup().addTo(map), c = r.colour;
    r.shifts.forEach(function (sh) {
      var pts = (r.base ? [[r.base.lat, r.base.lon]] : []).concat(sh.stops.map(function (p) { return [p.lat, p.lon]; }));
      L.polyline(pts, {color: c, weight: 3, opacity: 0.75, className: "bm-route"})
        .bindTooltip("truck " + r.truck + ", shift " + esc(sh.shift)).addTo(group); lines += 1;
      sh.stops.forEach(function (p) { stops += 1;
        L.marker([p.lat, p.lon], {icon: L.divIcon({className: "bm-stop", iconSize: [15, 15],
          html: "<span style='background:" + c + "'>" + p.stop + "</span>"})}).bindTooltip(
          "<b>truck " + r.truck + ", stop " + p.stop + "</b> (" + esc(sh.shift) + ")" + (p.time ? ", " + esc(p.time) : "") +
          "<br>" + p.action + " " + p.bikes + " bikes" + (p.load_after == null ? "" : "; truck load after: " + p.load_after) +
          "<br>" + esc(p.number) + " " + esc(p.name) + (p.bikes_now == null ? "" : "<br>bikes now: " + p.bikes_now))
          .addTo(group); }); });
    if (r.base) { L.marker([r.base.lat, r.base.lon], {icon: L.divIcon({className: "bm-base", iconSize: [20, 20],
      html: "<span style='background:" + c + "'>B" + r.truck + "</span>"})})
      .bindTooltip("base of truck " + r.truck + ": " + esc(r.base.number) + " " + esc(r.base.name)).addTo(group); }
    overlays["<span style='color:" + c + "'>&#9632;</span> truck " + r.truck] = group; });
  if (data.routes.length) { L.control.layers(null, overlays, {collapsed: false}).addTo(map); }
  var legend = L.control({position: "bottomleft"});
  legend.onAdd = function () { var d = L.DomUtil.create("div", "bm-legend");
    d.innerHTML = "predicted problem hours per station<div class='bar'></div><div class='ends'><span>0</span><span>" +
      vmax + "+</span></div>"; return d; };
  legend.addTo(map);
  var select = document.getElementById(id + "-risk");
  if (select) { select.addEventListener("change", function () { recolour(select.value); }); }
  recolour(data.risk_default);
  var ll = data.stations.map(function (s) { return [s.lat, s.lon]; });
  if (ll.length) { map.fitBounds(ll, {padding: [15, 15]}); } else { map.setView([40.4169, -3.7035], 12); }
  markers.forEach(function (m) { m.bringToFront(); });  // stations above the route lines, for hovering
  window.bicimadMaps = window.bicimadMaps || {};
  window.bicimadMaps[id] = {map: map, stations: markers.length, routes: lines, stops: stops, recolour: recolour,
    tileErrors: function () { return tileErrors; }};
})();
"""


@lru_cache(maxsize=1)
def leaflet_assets() -> tuple[str, str]:
    """The bundled Leaflet CSS and JavaScript (see ``static/leaflet/README.md``)."""
    root = resources.files("bicimad.report") / "static" / "leaflet"
    js = (root / "leaflet.js").read_text(encoding="utf-8")
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js)  # the map file is not bundled: nothing to fetch
    return (root / "leaflet.css").read_text(encoding="utf-8"), js


def map_head() -> str:
    """Leaflet's CSS and JavaScript and the map's CSS, inline, for a page's ``<head>``."""
    css, js = leaflet_assets()
    return f"<style>{css}\n{_MAP_CSS}</style>\n<script>{js}</script>"


def station_risk(station_hours: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Predicted problem hours per station (rows) and planner (columns), from each planner's
    station-hour occupancy table."""
    columns = {planner: occ.station_problem_hours(frame).set_index("station_id")["problem_hours"]
               for planner, frame in station_hours.items()}
    if not columns:
        return pd.DataFrame(index=pd.Index([], name="station_id"))
    return pd.DataFrame(columns).fillna(0).astype(int).rename_axis("station_id")


def _num(value):
    """A JSON-safe scalar: None for missing, int for whole numbers, rounded floats otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    return round(float(value), 6) if isinstance(value, float) else value


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _bikes_now(start: pd.DataFrame | None) -> dict[int, int]:
    if start is None or not len(start):
        return {}
    last = start.sort_values("ts").drop_duplicates("station_id", keep="last")
    return {int(i): int(b) for i, b in zip(last["station_id"], last["bikes"])}


def _route_stops(sheet: pd.DataFrame | None, plan: pd.DataFrame | None, stations: pd.DataFrame) -> pd.DataFrame:
    """Stops in order as route-sheet rows: the sheet itself, or (without one) the plan's rows in
    order, one shift, no base, no arrival."""
    if sheet is not None:
        return sheet
    if plan is None or not len(plan):
        return pd.DataFrame(columns=["truck", "shift", "stop", "station_id"])
    where = stations.drop_duplicates("station_id")[["station_id", "lat", "lon", "number", "name"]]
    frame = plan.drop(columns=[c for c in ("lat", "lon", "number", "name") if c in plan.columns])
    frame = frame.merge(where, on="station_id", how="inner").sort_values(["truck", "hour", "order"], kind="stable")
    frame = frame[frame["bikes"] != 0]
    return frame.assign(shift="day", stop=frame.groupby("truck").cumcount() + 1,
                        action=["load" if b > 0 else "unload" for b in frame["bikes"]], bikes=frame["bikes"].abs())


def _routes(stops: pd.DataFrame, stations: pd.DataFrame, bikes_now: dict[int, int]) -> list[dict]:
    located = stations.drop_duplicates("station_id").set_index("station_id")
    routes = []
    for i, (truck, group) in enumerate(stops.groupby("truck", sort=True)):
        base_id = group["base_station_id"].iloc[0] if "base_station_id" in group else None
        base = None
        if base_id is not None and not pd.isna(base_id) and int(base_id) in located.index:
            row = located.loc[int(base_id)]
            base = {"lat": float(row["lat"]), "lon": float(row["lon"]), "number": _text(row.get("number")),
                    "name": _text(row.get("name"))}
        shifts = []
        for shift, rows in group.groupby("shift", sort=False):
            shifts.append({"shift": str(shift), "stops": [{
                "stop": int(r["stop"]), "station_id": int(r["station_id"]), "lat": float(r["lat"]), "lon": float(r["lon"]),
                "number": _text(r.get("number")), "name": _text(r.get("name")), "action": str(r["action"]),
                "bikes": int(r["bikes"]), "load_after": _num(r.get("load_after")),
                "time": pd.Timestamp(r["arrival"]).strftime("%H:%M") if "arrival" in r and not pd.isna(r["arrival"])
                else "", "bikes_now": bikes_now.get(int(r["station_id"]))} for _, r in rows.iterrows()]})
        routes.append({"truck": int(truck), "colour": TRUCK_COLOURS[i % len(TRUCK_COLOURS)], "base": base,
                       "shifts": shifts})
    return routes


def map_data(stations: pd.DataFrame, *, risk: pd.DataFrame | None = None, start: pd.DataFrame | None = None,
             sheet: pd.DataFrame | None = None, plan: pd.DataFrame | None = None,
             risk_default: str | None = None) -> dict:
    """What the map shows: stations with coordinates (bikes at the ``start`` snapshot, ``risk``
    from :func:`station_risk`, the stops planned there), and the routes from a route sheet
    (:func:`bicimad.report.routes.route_sheet`) or, without one, from a plan in order."""
    risk = risk if risk is not None else pd.DataFrame(index=pd.Index([], name="station_id"))
    planners = [str(c) for c in risk.columns]
    bikes_now = _bikes_now(start)
    stops = _route_stops(sheet, plan, stations)
    routes = _routes(stops, stations, bikes_now)
    at_station: dict[int, list] = {}
    for route in routes:
        for shift in route["shifts"]:
            for stop in shift["stops"]:
                at_station.setdefault(stop["station_id"], []).append(
                    {"truck": route["truck"], **{k: stop[k] for k in ("stop", "time", "action", "bikes")}})
    rows = []
    for _, s in stations.drop_duplicates("station_id").dropna(subset=["lat", "lon"]).iterrows():
        sid = int(s["station_id"])
        rows.append({"id": sid, "number": _text(s.get("number")), "name": _text(s.get("name")),
                     "address": _text(s.get("address")), "lat": float(s["lat"]), "lon": float(s["lon"]),
                     "capacity": _num(s.get("capacity")), "bikes": bikes_now.get(sid),
                     "risk": {p: (int(risk.at[sid, p]) if sid in risk.index else None) for p in planners},
                     "stops": at_station.get(sid, [])})
    vmax = int(risk.to_numpy().max()) if risk.size else 1
    default = risk_default if risk_default in planners else (planners[0] if planners else None)
    return {"stations": rows, "routes": routes, "planners": planners, "risk_default": default, "vmax": vmax}


def map_fragment(data: dict, element_id: str = "route-map", height_px: int = 620) -> str:
    """The map's HTML (a risk selector, the map element and its script) for a page that has
    :func:`map_head` in its head."""
    payload = json.dumps(data, allow_nan=False, ensure_ascii=True).replace("</", "<\\/")
    options = "".join(f"<option value='{html.escape(p)}'{' selected' if p == data['risk_default'] else ''}>"
                      f"{html.escape(p)}</option>" for p in data["planners"])
    select = (f"<label>Colour stations by the predicted problem hours under <select id='{element_id}-risk'>"
              f"{options}</select></label>") if options else ""
    script = _MAP_JS.replace("__DATA__", payload).replace("__ID__", element_id)
    return (f"<div class='bm-wrap'>{select}<div id='{element_id}' class='bm-map' style='height:{int(height_px)}px'>"
            f"</div></div>\n<script>{script}</script>")


def build_map(data: dict, out: str | os.PathLike, title: str = "BiciMAD stations and routes") -> Path:
    """A standalone, self-contained HTML page with the map (atomically)."""
    out = Path(out)
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"{map_head()}<style>body {{ font-family: system-ui, sans-serif; margin: 1em; }}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{map_fragment(data, height_px=760)}</body></html>\n")
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write(page)
    return out
