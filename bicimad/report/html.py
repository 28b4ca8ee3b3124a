"""Self-contained HTML comparison of runs: the occupancy table, the hourly profile, a map of
stations coloured by problem hours and the worst stations. Images are embedded as PNG data
URIs, so the single file can be mailed or archived."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from bicimad.io import atomic_open
from bicimad.opendata.schemas import OCCUPANCY_SUMMARY_COLUMNS, read_table
from bicimad.report import occupancy as occ
from bicimad.report import plots


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
    # station-hour tables in the summary's planner order (the order the run chose)
    order = {name: i for i, name in enumerate(summary["planner"].astype(str))}
    per_planner = dict(sorted(per_planner.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    stations = read_table("stations", path / "stations.parquet") if (path / "stations.parquet").exists() else None
    manifest = {}
    if (path / "manifest.json").exists():
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RunFolderError(f"{path / 'manifest.json'}: not valid JSON: {exc}") from None
    plan = pd.read_csv(path / "plan.csv") if (path / "plan.csv").exists() else None
    return RunData(label or path.name, path, summary, per_planner, stations, manifest, plan)


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


def _table(frame: pd.DataFrame, css: str) -> str:
    formatters = {}
    for column in frame.columns:
        if "share" in column:
            formatters[column] = lambda v: "" if pd.isna(v) else f"{100 * v:.1f} %"
        elif pd.api.types.is_float_dtype(frame[column]):
            whole = bool((frame[column].dropna() % 1 == 0).all())  # counts stored as floats
            formatters[column] = lambda v, whole=whole: ("" if pd.isna(v) else f"{v:,.0f}" if whole
                                                         else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}")
    frame = frame.rename(columns=lambda c: str(c).replace("_", " "))
    formatters = {k.replace("_", " "): f for k, f in formatters.items()}
    return frame.to_html(index=False, classes=css, formatters=formatters, border=0, na_rep="", escape=True)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #eee; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .maps { display: flex; flex-wrap: wrap; gap: 1em; }
.maps figure { margin: 0; width: 48%; } .note { color: #555; font-size: 0.9em; }
"""


def build_report(runs: list[RunData], out: str | os.PathLike, title: str = "BiciMAD occupancy comparison",
                 worst_n: int = 10) -> Path:
    """Write the HTML comparison of ``runs`` to ``out`` (atomically) and return its path."""
    if not runs:
        raise ValueError("a report needs at least one run")
    out = Path(out)
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='note'>Generated {dt.datetime.now().astimezone().isoformat(timespec='seconds')} "
             f"from {len(runs)} run(s).</p>"]

    summary = pd.concat([r.summary.assign(run=r.label) for r in runs], ignore_index=True)
    summary = summary[["run"] + [c for c in summary.columns if c != "run"]]
    parts += ["<h2>Occupancy</h2>",
              "<p class='note'>Station-hours per class: balanced (never empty nor full), empty (at some moment "
              "0 bikes), full (at some moment 0 free docks), empty and full (both in the hour). Problem share = "
              "the share of station-hours not balanced. Simulated runs see every moment; occupancy observed in "
              "snapshots sees only the snapshot instant, so it understates within-hour problems.</p>",
              _table(summary, "summary")]

    with tempfile.TemporaryDirectory(prefix="bicimad-report-") as tmp:
        tmp = Path(tmp)
        profiles = {f"{r.label} / {planner}": occ.hourly_profile(frame)
                    for r in runs for planner, frame in r.station_hours.items()}
        if profiles:
            png = plots.plot_hourly_profile(profiles, tmp / "profile.png")
            parts += ["<h2>Hourly profile</h2>", _img(png, "problem share by hour of day")]

        per_station = {(i, planner): occ.station_problem_hours(frame)
                       for i, r in enumerate(runs) for planner, frame in r.station_hours.items()}
        # one colour scale for every map, so colours compare across runs and planners
        vmax = max([1] + [int(t["problem_hours"].max()) for t in per_station.values() if len(t)])
        maps, worst = [], []
        for i, r in enumerate(runs):
            for j, (planner, frame) in enumerate(r.station_hours.items()):
                label = f"{r.label} / {planner}"
                if r.stations is not None:
                    png = plots.plot_station_map(per_station[i, planner], r.stations, tmp / f"map-{i}-{j}.png",
                                                 title=f"Problem hours: {label}", vmax=vmax)
                    maps.append(f"<figure>{_img(png, 'map: ' + label)}<figcaption>{html.escape(label)}"
                                f"</figcaption></figure>")
                worst.append(f"<h3>{html.escape(label)}</h3>"
                             + _table(occ.worst_stations(frame, r.stations, worst_n), "worst"))
        if maps:
            parts += ["<h2>Stations by problem hours</h2>", "<div class='maps'>", *maps, "</div>"]
        if worst:
            parts += [f"<h2>Worst {worst_n} stations</h2>", *worst]

    plans = [r for r in runs if r.plan is not None and len(r.plan)]
    if plans:
        parts.append("<h2>Truck plan</h2>")
        for r in plans:
            dispatch = r.manifest.get("dispatch", "")
            parts.append(f"<h3>{html.escape(r.label)}{' / ' + html.escape(dispatch) if dispatch else ''}</h3>"
                         f"<p class='note'>Per truck; every visit, in order, is in "
                         f"<a href='{html.escape((r.path / 'plan.csv').resolve().as_uri())}'>plan.csv</a>. "
                         "Trucks are replanned every hour; the plan is the one made under the first demand "
                         "draw.</p>" + _table(plan_summary(r.plan), "plan"))

    provenance = [r for r in runs if r.manifest]
    if provenance:
        parts.append("<h2>Provenance</h2>")
        for r in provenance:
            keys = {k: r.manifest[k] for k in ("date", "target_date", "git", "seeds", "models", "planners")
                    if k in r.manifest}
            parts.append(f"<h3>{html.escape(r.label)}</h3><pre>{html.escape(json.dumps(keys, indent=2, default=str))}</pre>")
    parts.append("</body></html>\n")
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
