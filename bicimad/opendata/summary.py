"""What the processed tables hold: per source file and month, stations, snapshot coverage,
missing hours and trips."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bicimad.config import TZ
from bicimad.opendata import schemas
from bicimad.opendata.times import hour_floor


def summarise(processed: Path) -> list[dict]:
    """One row per (source, month). Coverage counts distinct local hours with a snapshot
    against the hours from the source's first to last snapshot in that month; the rest are
    the missing hours."""
    snapshots = schemas.read_table("snapshots", processed / "snapshots.parquet")
    trips = schemas.read_table("trips", processed / "trips.parquet")
    rows: list[dict] = []
    if len(snapshots):
        snaps = snapshots.assign(hour=hour_floor(snapshots["ts"]),
                                 month=snapshots["ts"].dt.tz_localize(None).dt.strftime("%Y-%m"))
        for (source, month), g in snaps.groupby(["source", "month"], sort=True):
            hours = g["hour"].drop_duplicates()
            span = int((hours.max() - hours.min()) / pd.Timedelta(hours=1)) + 1
            rows.append({
                "source": source, "month": month, "kind": "snapshots",
                "stations": int(g["station_id"].nunique()), "snapshots": int(g["ts"].nunique()),
                "rows": len(g), "hours_covered": len(hours), "missing_hours": span - len(hours),
                "coverage": round(len(hours) / span, 4), "first": g["ts"].min(), "last": g["ts"].max(),
            })
    if len(trips):
        tr = trips.assign(month=trips["unplug_ts"].dt.tz_convert(TZ).dt.tz_localize(None).dt.strftime("%Y-%m"))
        for (source, month), g in tr.groupby(["source", "month"], sort=True):
            rows.append({
                "source": source, "month": month, "kind": "trips",
                "stations": int(pd.concat([g["from_station"], g["to_station"]]).dropna().nunique()),
                "trips": len(g), "rows": len(g), "first": g["unplug_ts"].min(), "last": g["unplug_ts"].max(),
            })
    return rows


REAL, SYNTHETIC = "real", "synthetic"
DATASETS = (REAL, SYNTHETIC)


def dataset_info(processed: Path) -> dict | None:
    """What ``processed/dataset.json`` records: ``dataset`` (real EMT or synthetic) and ``raw``
    (``generated``: the synthetic city under raw/synthetic/; ``received``: every other raw file).

    Older builds without it fall back to ``ingest.json``'s dataset (``emt`` meant real). None
    when nothing was built, or the record is unreadable.
    """
    for name in ("dataset.json", "ingest.json"):
        path = processed / name
        if not path.exists():
            continue
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        dataset = {"emt": REAL}.get(info.get("dataset"), info.get("dataset")) if isinstance(info, dict) else None
        if dataset in DATASETS:
            return {"dataset": dataset, "raw": info.get("raw", "generated" if dataset == SYNTHETIC else "received")}
    return None


def build_info(processed: Path) -> dict:
    """What the last successful ingest recorded (dataset, time, counts, rejects), if anything."""
    path = processed / "ingest.json"
    if not path.exists():
        return {}
    info = json.loads(path.read_text(encoding="utf-8"))
    return {k: info.get(k) for k in ("dataset", "built", "counts", "rejected")}


def format_table(rows: list[dict], info: dict | None = None) -> str:
    """A fixed-width text table of :func:`summarise`'s rows, under a line about the build."""
    head = []
    if info:
        counts = ", ".join(f"{n:,} {name}" for name, n in (info.get("counts") or {}).items())
        head.append(f"dataset {info.get('dataset')} built {info.get('built')}: {counts}; "
                    f"{info.get('rejected') or 0:,} record(s) rejected (processed/rejects.csv)")
    if not rows:
        return "\n".join(head + ["no data: the processed tables are empty"])
    cols = [("source", "source", 48), ("month", "month", 7), ("kind", "kind", 9), ("stations", "stations", 8),
            ("snapshots", "snapshots", 9), ("coverage", "coverage", 8), ("missing_hours", "missing h", 9),
            ("trips", "trips", 8)]
    def cell(row, key, width):
        v = row.get(key)
        if v is None:
            text = ""
        elif key == "coverage":
            text = f"{v:.1%}"
        elif isinstance(v, int):
            text = f"{v:,}"
        else:
            text = str(v)
            if len(text) > width:
                text = "…" + text[-(width - 1):]
        return text.ljust(width) if key in ("source", "month", "kind") else text.rjust(width)
    lines = head + ["  ".join(h.ljust(w) if k in ("source", "month", "kind") else h.rjust(w) for k, h, w in cols)]
    lines += ["  ".join(cell(r, k, w) for k, _, w in cols) for r in rows]
    snap_rows = sum(r["rows"] for r in rows if r["kind"] == "snapshots")
    trip_rows = sum(r["rows"] for r in rows if r["kind"] == "trips")
    lines.append(f"total: {snap_rows:,} snapshot rows, {trip_rows:,} trips")
    return "\n".join(lines)
