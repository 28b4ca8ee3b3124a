"""Self-contained HTML comparison of runs: the decision, the occupancy table, an interactive map
of tomorrow's routes and predicted risk (nightly runs), the hourly profile, static maps of
stations coloured by problem hours and the worst stations. Images are embedded as PNG data URIs
and the map's library is inlined, so the single file can be mailed or archived and works offline.

Number formats: counts are whole numbers (means over several demand draws are rounded, and the
table says over how many draws), shares are percentages, small quantities are never written in
scientific notation, and interval lower bounds of non-negative quantities are clipped at 0 (the
table says so)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bicimad.config import TZ
from bicimad.io import atomic_open, file_stem
from bicimad.opendata.schemas import OCCUPANCY_STATES, OCCUPANCY_SUMMARY_COLUMNS, read_table
from bicimad.report import maps, plots
from bicimad.report import occupancy as occ

#: Summary columns that count things (whole numbers; means over draws are rounded).
COUNT_COLUMNS = (*OCCUPANCY_STATES, "lost_trips", "diverted_returns", "bikes_moved", "seeds")


class RunFolderError(ValueError):
    """A folder is not a readable run (the message names the folder and the file)."""


@dataclasses.dataclass
class RunData:
    """What a report needs from one run folder."""

    label: str
    path: Path
    summary: pd.DataFrame                           # one row per planner
    station_hours: dict[str, pd.DataFrame]          # planner -> occupancy table
    stations: pd.DataFrame | None = None
    manifest: dict = dataclasses.field(default_factory=dict)
    plan: pd.DataFrame | None = None                # the dispatched plan (nightly runs)
    start: pd.DataFrame | None = None               # the start snapshot (snapshots table)
    route_sheet: pd.DataFrame | None = None         # route_sheet.csv (bicimad.report.routes)


def _read_route_sheet(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    sheet = pd.read_csv(path, dtype={"number": str, "base_number": str})
    if "arrival" in sheet:
        sheet["arrival"] = pd.to_datetime(sheet["arrival"], utc=True).dt.tz_convert(TZ)
    return sheet


def load_run(path: str | os.PathLike, label: str | None = None) -> RunData:
    """Read a run folder (see :mod:`bicimad.report`)."""
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"{path}: not a run folder (no such directory)")
    summary_path = path / "occupancy.csv"
    per_planner = {p.stem: read_table("occupancy", p) for p in sorted((path / "occupancy").glob("*.parquet"))}
    if summary_path.exists():
        summary = pd.read_csv(summary_path)
        missing = [c for c in OCCUPANCY_SUMMARY_COLUMNS if c not in summary.columns]
        if missing:
            raise RunFolderError(f"{summary_path}: missing column(s) {missing}")
    elif per_planner:
        summary = occ.summary_table(occ.summarise(frame, planner) for planner, frame in per_planner.items())
    else:
        raise RunFolderError(f"{path}: no occupancy.csv and no occupancy/<planner>.parquet; not a run folder")
    # station-hour tables under the summary's planner names (a file is named by file_stem), in its order
    names = {file_stem(name): name for name in summary["planner"].astype(str)}
    per_planner = {names.get(stem, stem): frame for stem, frame in per_planner.items()}
    order = {name: i for i, name in enumerate(summary["planner"].astype(str))}
    per_planner = dict(sorted(per_planner.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    stations = read_table("stations", path / "stations.parquet") if (path / "stations.parquet").exists() else None
    start = read_table("snapshots", path / "start.parquet") if (path / "start.parquet").exists() else None
    manifest = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunFolderError(f"{path / 'manifest.json'}: not valid JSON: {exc}") from None
    plan = pd.read_csv(path / "plan.csv") if (path / "plan.csv").exists() else None
    return RunData(label or path.name, path, summary, per_planner, stations, manifest, plan, start,
                   _read_route_sheet(path / "route_sheet.csv"))


def plan_summary(plan: pd.DataFrame) -> pd.DataFrame:
    """Per truck: visits, bikes loaded and unloaded, distinct stations, first and last hour."""
    hours = pd.to_datetime(plan["hour"], utc=True)
    frame = plan.assign(loaded=plan["bikes"].clip(lower=0), unloaded=(-plan["bikes"]).clip(lower=0), t=hours)
    table = frame.groupby("truck").agg(visits=("bikes", "size"), bikes_loaded=("loaded", "sum"),
                                       bikes_unloaded=("unloaded", "sum"), stations=("station_id", "nunique"),
                                       first=("hour", "min"), last=("hour", "max"))
    return table.reset_index()


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def format_number(v) -> str:
    """A table cell: thousands separators, no scientific notation (tiny values as ``< 0.001``)."""
    if pd.isna(v):
        return ""
    if float(v).is_integer():
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    return f"{v:.3f}" if abs(v) >= 0.001 else ("< 0.001" if v > 0 else "> -0.001")


def _float_formatter(column: pd.Series):
    """One format per column: whole numbers as such, else two decimals, and (with values below 1)
    :func:`format_number`'s three decimals or ``< 0.001``."""
    values = column.dropna()
    if (values % 1 == 0).all():
        return lambda v: "" if pd.isna(v) else f"{v:,.0f}"
    if ((values.abs() >= 1) | (values == 0)).all():
        return lambda v: "" if pd.isna(v) else f"{v:,.2f}"
    return format_number


def _percent(v) -> str:
    return "" if pd.isna(v) else f"{100 * v:.1f} %"


def _table(frame: pd.DataFrame, css: str) -> str:
    formatters = {}
    for column in frame.columns:
        if "share" in column:
            formatters[column] = _percent
        elif column in COUNT_COLUMNS and pd.api.types.is_numeric_dtype(frame[column]):
            formatters[column] = lambda v: "" if pd.isna(v) else f"{round(v):,d}"
        elif pd.api.types.is_float_dtype(frame[column]):
            formatters[column] = _float_formatter(frame[column])
    frame = frame.rename(columns=lambda c: str(c).replace("_", " "))
    formatters = {k.replace("_", " "): f for k, f in formatters.items()}
    return frame.to_html(index=False, classes=css, formatters=formatters, border=0, na_rep="", escape=True)


def clip_lower_bounds(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Interval lower bounds (``<column>_lo``) of the summary's non-negative quantities (counts,
    shares, km, seconds) clipped at 0; differences and other bounds are kept. Returns the frame
    and the columns that had a negative bound."""
    nonnegative = (set(OCCUPANCY_SUMMARY_COLUMNS) | set(COUNT_COLUMNS)) - {"planner"}
    clipped = [c for c in frame.columns if str(c).endswith("_lo") and str(c)[:-3] in nonnegative
               and pd.api.types.is_numeric_dtype(frame[c]) and (frame[c] < 0).any()]
    return frame.assign(**{c: frame[c].clip(lower=0) for c in clipped}), clipped


def _summary_section(runs: list[RunData]) -> list[str]:
    summary = pd.concat([r.summary.assign(run=r.label) for r in runs], ignore_index=True)
    summary = summary[["run"] + [c for c in summary.columns if c != "run"]]
    if len(runs) == 1:  # one run: its label is the page's, not every row's
        summary = summary.drop(columns="run")
    if "decision_s_per_hour" in summary:  # seconds per hour are microseconds for the simple planners
        summary = summary.assign(decision_s_per_hour=1000 * summary["decision_s_per_hour"]).rename(
            columns={"decision_s_per_hour": "decision_ms_per_hour"})
    summary, clipped = clip_lower_bounds(summary)
    notes = []
    draws = sorted({int(n) for n in summary["seeds"].dropna()}) if "seeds" in summary else []
    if any(n > 1 for n in draws):
        notes.append(f"Counts are means over {' / '.join(map(str, draws))} demand draws, rounded to whole "
                     "numbers; the problem share is the mean over the draws with its 95 % Student-t interval "
                     "(lo, hi).")
    if clipped:
        notes.append(f"Lower bounds clipped at 0 (a count or share is never negative): {', '.join(clipped)}.")
    return ["<h2>Occupancy</h2>",
            "<p class='note'>Station-hours per class: balanced (never empty nor full), empty (at some moment "
            "0 bikes), full (at some moment 0 free docks), empty and full (both in the hour). Problem share = "
            "the share of station-hours not balanced. Simulated runs see every moment; occupancy observed in "
            "snapshots sees only the snapshot instant, so it understates within-hour problems.</p>",
            *[f"<p class='note'>{html.escape(n)}</p>" for n in notes], _table(summary, "summary")]


def _decision_section(decision: str | None, table: pd.DataFrame | None) -> list[str]:
    if decision is None and table is None:
        return []
    parts = ["<h2>Decision</h2>"]
    if decision:
        parts.append(f"<p class='decision'>{html.escape(decision)}</p>")
    if table is not None and len(table):
        frame, clipped = clip_lower_bounds(table)
        if "dispatched" in frame:
            frame = frame.assign(dispatched=["yes" if bool(d) else "" for d in frame["dispatched"]])
        parts.append(_table(frame, "decision-table"))
        if clipped:
            parts.append(f"<p class='note'>Lower bounds clipped at 0: {html.escape(', '.join(clipped))}.</p>")
    return parts


def _banner(dataset: str | None, warnings: Sequence[str]) -> list[str]:
    parts = []
    if dataset:
        parts.append(f"<p class='dataset'>Dataset: <b>{html.escape(dataset)}</b></p>")
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<div class='stale'><b>Stale input</b>: this plan was made from input beyond its freshness "
                     f"limits.<ul>{items}</ul></div>")
    return parts


def _map_section(runs: list[RunData], risk_planner: str | None) -> tuple[list[str], bool]:
    """The interactive map for each run with stations and a plan or route sheet."""
    parts = []
    shown = [r for r in runs if r.stations is not None and (r.route_sheet is not None or r.plan is not None)]
    for i, r in enumerate(shown):
        default = risk_planner or r.manifest.get("dispatch")
        data = maps.map_data(r.stations, risk=maps.station_risk(r.station_hours), start=r.start,
                             sheet=r.route_sheet, plan=r.plan, risk_default=default)
        title = "Tomorrow's routes and predicted risk" + (f": {r.label}" if len(runs) > 1 else "")
        parts += [f"<h2>{html.escape(title)}</h2>",
                  "<p class='note'>Stations coloured by the predicted problem hours tomorrow (the first demand "
                  "draw of the chosen planner's simulation), sized by docks; each truck's route from its base "
                  "(B) through its numbered stops. Hover a station or a stop for details; tick trucks on and off "
                  "at the top right. Street tiles load from OpenStreetMap when online.</p>",
                  maps.map_fragment(data, element_id=f"route-map-{i}")]
    return parts, bool(shown)


def _static_sections(runs: list[RunData], worst_n: int) -> list[str]:
    """The hourly profile, a static map per run and planner (one colour scale) and the worst stations."""
    parts = []
    single = len(runs) == 1
    with tempfile.TemporaryDirectory(prefix="bicimad-report-") as tmp:
        tmp = Path(tmp)
        profiles = {(planner if single else f"{r.label} / {planner}"): occ.hourly_profile(frame)
                    for r in runs for planner, frame in r.station_hours.items()}
        if profiles:
            png = plots.plot_hourly_profile(profiles, tmp / "profile.png")
            parts += ["<h2>Hourly profile</h2>", _img(png, "problem share by hour of day")]
        per_station = {(i, planner): occ.station_problem_hours(frame)
                       for i, r in enumerate(runs) for planner, frame in r.station_hours.items()}
        # one colour scale for every map, so colours compare across runs and planners
        vmax = max([1] + [int(t["problem_hours"].max()) for t in per_station.values() if len(t)])
        figures, worst = [], []
        for i, r in enumerate(runs):
            for j, (planner, frame) in enumerate(r.station_hours.items()):
                label = planner if single else f"{r.label} / {planner}"
                if r.stations is not None:
                    png = plots.plot_station_map(per_station[i, planner], r.stations, tmp / f"map-{i}-{j}.png",
                                                 title=f"Problem hours: {label}", vmax=vmax)
                    figures.append(f"<figure>{_img(png, 'map: ' + label)}<figcaption>{html.escape(label)}"
                                   f"</figcaption></figure>")
                worst.append(f"<h3>{html.escape(label)}</h3>"
                             + _table(occ.worst_stations(frame, r.stations, worst_n), "worst"))
    if figures:
        parts += ["<h2>Stations by problem hours</h2>", "<div class='maps'>", *figures, "</div>"]
    if worst:
        parts += [f"<h2>Worst {worst_n} stations</h2>", *worst]
    return parts


def route_summary(sheet: pd.DataFrame) -> pd.DataFrame:
    """Per truck and shift of a route sheet: base, stops, bikes loaded and unloaded, km, driving
    minutes, first and last arrival."""
    frame = sheet.assign(loaded=sheet["bikes"].where(sheet["action"] == "load", 0),
                         unloaded=sheet["bikes"].where(sheet["action"] == "unload", 0))
    table = frame.groupby(["truck", "shift"], sort=False).agg(
        base=("base_name", "first"), stops=("stop", "size"), bikes_loaded=("loaded", "sum"),
        bikes_unloaded=("unloaded", "sum"), km=("km_from_previous", "sum"),
        drive_min=("drive_min_from_previous", "sum"), first=("arrival", "min"), last=("arrival", "max"))
    table["km"] = table["km"].round(1)
    table["drive_min"] = table["drive_min"].round(0)
    for column in ("first", "last"):
        table[column] = [t.strftime("%H:%M") if not pd.isna(t) else "" for t in table[column]]
    return table.reset_index()


def _plan_section(runs: list[RunData]) -> list[str]:
    plans = [r for r in runs if (r.plan is not None and len(r.plan)) or r.route_sheet is not None]
    if not plans:
        return []
    parts = ["<h2>Truck plan</h2>"]
    for r in plans:
        dispatch = r.manifest.get("dispatch", "")
        parts.append(f"<h3>{html.escape(r.label)}{' / ' + html.escape(dispatch) if dispatch else ''}</h3>")
        if r.route_sheet is not None:
            pages = sorted(r.path.glob("route-truck-*.html"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
            links = " ".join(f"<a href='{html.escape(p.name)}'>truck {html.escape(p.stem.rsplit('-', 1)[1])}</a>"
                             for p in pages)
            parts.append("<p class='note'>Route sheets: every stop in order with its arrival time, address, "
                         "bikes and the truck's load after it in <a href='route_sheet.csv'>route_sheet.csv</a>"
                         + (f"; printable pages per truck: {links}" if links else "") + ".</p>"
                         + _table(route_summary(r.route_sheet), "routes"))
        if r.plan is not None and len(r.plan):
            parts.append(f"<p class='note'>Per truck; every visit, in order, is in "
                         f"<a href='{html.escape((r.path / 'plan.csv').resolve().as_uri())}'>plan.csv</a>. "
                         "Trucks are replanned every hour; the plan is the one made under the first demand "
                         "draw.</p>" + _table(plan_summary(r.plan), "plan"))
    return parts


def _provenance_section(runs: list[RunData]) -> list[str]:
    provenance = [r for r in runs if r.manifest]
    if not provenance:
        return []
    parts = ["<h2>Provenance</h2>"]
    for r in provenance:
        keys = {k: r.manifest[k] for k in ("date", "target_date", "dataset", "git", "seeds", "models", "planners")
                if k in r.manifest}
        parts.append(f"<h3>{html.escape(r.label)}</h3><pre>{html.escape(json.dumps(keys, indent=2, default=str))}</pre>")
    return parts


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #eee; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .maps { display: flex; flex-wrap: wrap; gap: 1em; }
.maps figure { margin: 0; width: 48%; } .note { color: #555; font-size: 0.9em; }
p.decision { font-size: 1.25em; font-weight: 600; background: #eef5ff; border-left: 5px solid #1f4e9c;
  padding: 0.6em 0.9em; }
.dataset { display: inline-block; background: #f3f3f3; border: 1px solid #ccc; padding: 0.2em 0.6em; }
.stale { background: #fff1e6; border: 2px solid #d9480f; padding: 0.5em 0.9em; margin: 0.8em 0; }
.stale ul { margin: 0.3em 0 0; }
@media print { .bm-wrap { display: none; } body { margin: 0; max-width: none; } }
"""


def build_report(runs: list[RunData], out: str | os.PathLike, title: str = "BiciMAD occupancy comparison",
                 worst_n: int = 10, *, dataset: str | None = None, warnings: Sequence[str] = (),
                 decision: str | None = None, decision_table: pd.DataFrame | None = None,
                 risk_planner: str | None = None) -> Path:
    """Write the HTML comparison of ``runs`` to ``out`` (atomically) and return its path.

    ``dataset`` (e.g. "real EMT data", "synthetic city") goes into the title and a badge;
    ``warnings`` (stale or short input, one sentence each) into a "stale input" banner;
    ``decision`` (one sentence) and ``decision_table`` (planner, problem_share, its interval
    problem_share_lo/hi, objective, dispatched, paired differences...) into the decision
    section; ``risk_planner`` picks whose predicted problem hours colour the interactive map at
    first (default: the dispatched planner)."""
    if not runs:
        raise ValueError("a report needs at least one run")
    out = Path(out)
    full_title = f"{title} ({dataset})" if dataset else title
    warnings = list(warnings)
    map_parts, with_map = _map_section(runs, risk_planner)
    head = maps.map_head() if with_map else ""
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(('STALE INPUT: ' if warnings else '') + full_title)}</title>",
             f"<style>{_CSS}</style>{head}</head><body>", f"<h1>{html.escape(full_title)}</h1>",
             *_banner(dataset, warnings),
             f"<p class='note'>Generated {dt.datetime.now().astimezone().isoformat(timespec='seconds')} "
             f"from {len(runs)} run(s).</p>",
             *_decision_section(decision, decision_table), *_summary_section(runs), *map_parts,
             *_static_sections(runs, worst_n), *_plan_section(runs), *_provenance_section(runs),
             "</body></html>\n"]
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return out


def build_sweep_report(intervals: pd.DataFrame, plots: list[Path], out: str | os.PathLike,
                       title: str = "BiciMAD what-if sweep") -> Path:
    """Write the HTML page of a what-if sweep: the problem share against trucks per planner
    (the plots, one per combination of the other parameters) and the intervals table."""
    out = Path(out)
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>Generated {dt.datetime.now().astimezone().isoformat(timespec='seconds')}. "
             "Mean problem share over seeds with its 95 % Student-t interval; every planner and fleet "
             "size with the same seed index met the same riders.</p>",
             "<h2>Problem share against trucks</h2>"]
    parts += [_img(Path(p), Path(p).stem) for p in plots]
    table = intervals.rename(columns={"mean": "problem_share", "lo": "problem_share_lo", "hi": "problem_share_hi"})
    parts += ["<h2>Intervals</h2>", _table(table, "intervals"), "</body></html>\n"]
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return out
