"""Raw files -> per-file parts -> the processed tables (stations, snapshots, trips, station_hours).

Resumable by construction:

1. Every raw file is read once into *parts* ``processed/parts/<sha16>.<kind>.parquet``
   (streamed through a ``ParquetWriter`` into a temporary name, renamed when complete) plus
   ``<sha16>.rejects.csv``. Only then is the file's entry added to ``parts/manifest.json``
   (keyed by the file's sha256, written atomically). A crash mid-file leaves no entry, so the
   next run re-reads that file from scratch; files already in the manifest are skipped.
2. The final tables are rebuilt from the parts of the files being ingested, every time, and
   written atomically. Re-running never duplicates rows (repeated snapshots and trips are
   dropped at this step) and never loses any (a part is either complete or absent).

Station ids are reconciled here: rows that carry only a station ``number`` (the 2019
flattened parquet) get the ``id`` that the station lists and other snapshots pair with it, and
a simulator's trips, which carry only positions, get the ids of the nearest stations
(:func:`bicimad.opendata.auxiliary.trips_from_positions`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bicimad.config import TZ
from bicimad.io import atomic_path, sha256_file, write_json
from bicimad.opendata import auxiliary, formats, schemas
from bicimad.opendata.archive import DEFAULT_LIMITS, Limits
from bicimad.opendata.readers import SNAPSHOT_PART_COLUMNS, STATION_PART_COLUMNS, TRIP_PART_COLUMNS
from bicimad.opendata.rejects import IngestError, Rejects
from bicimad.opendata.times import hour_floor, localize_wall_clock

log = logging.getLogger(__name__)

TS = pa.timestamp("us", tz=TZ)
PART_SCHEMAS = {
    "snapshots": pa.schema([
        ("ts_local", pa.timestamp("us")), ("station_id", pa.int32()), ("number", pa.string()),
        ("bikes", pa.int32()), ("free_docks", pa.int32()), ("capacity", pa.int32()),
        ("available", pa.bool_()), ("source", pa.string()),
    ]),
    "trips": pa.schema([
        ("unplug_ts", TS), ("plug_ts", TS), ("duration_s", pa.float64()), ("from_station", pa.int32()),
        ("to_station", pa.int32()), ("user_type", pa.int8()), ("source", pa.string()), ("trip_key", pa.string()),
    ]),
    "stations": pa.schema([
        ("station_id", pa.int32()), ("number", pa.string()), ("name", pa.string()), ("address", pa.string()),
        ("lat", pa.float64()), ("lon", pa.float64()), ("capacity", pa.int32()), ("as_of", pa.timestamp("us", tz=TZ)),
        ("source", pa.string()),
    ]),
    # A simulator's trips, before their stations are matched by position (build_tables).
    "trip_positions": pa.schema([
        ("unplug_ts", TS), ("from_lat", pa.float64()), ("from_lon", pa.float64()), ("to_lat", pa.float64()),
        ("to_lon", pa.float64()), ("speed_mps", pa.float64()), ("record", pa.int32()), ("source", pa.string()),
    ]),
}
PART_COLUMNS = {"snapshots": SNAPSHOT_PART_COLUMNS, "trips": TRIP_PART_COLUMNS, "stations": STATION_PART_COLUMNS,
                "trip_positions": auxiliary.POSITION_PART_COLUMNS}
TABLES = ("stations", "snapshots", "trips", "station_hours")

#: The end of every station name of the synthetic city: files whose names carry it hold
#: synthetic data, whatever folder they come from.
SYNTHETIC_MARK = " [synthetic]"

#: Snapshot hours further apart than this start a new coverage period: the gap between two
#: periods (e.g. Sep 2018 and Jul 2019) is not a run of missing hours.
PERIOD_GAP = pd.Timedelta(days=7)


@dataclass
class FileResult:
    source: str
    sha256: str
    format: str
    rows: dict[str, int]
    rejected: dict[str, int]
    warnings: dict[str, int]
    skipped: bool = False  # already in the manifest (resumed)
    names: int = 0  # station names read
    marked: int = 0  # of them, names carrying the synthetic city's mark

    @property
    def reject_share(self) -> float:
        """Rejected records over all records read (snapshot rows or trips; station rows for a station list)."""
        bad = sum(self.rejected.values())
        kept = sum(n for kind, n in self.rows.items() if kind != "stations") or self.rows.get("stations", 0)
        return bad / (bad + kept) if bad + kept else 0.0


class PartWriter:
    """Streams chunks of each kind into ``<stem>.<kind>.parquet`` under temporary names."""

    def __init__(self, parts_dir: Path, stem: str):
        self.parts_dir, self.stem = parts_dir, stem
        self._writers: dict[str, tuple[pq.ParquetWriter, object]] = {}
        self.rows: dict[str, int] = {}
        self.names = self.marked = 0

    def write(self, kind: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        table = pa.Table.from_pandas(frame[list(PART_COLUMNS[kind])], schema=PART_SCHEMAS[kind], preserve_index=False)
        if kind not in self._writers:
            ctx = atomic_path(self.parts_dir / f"{self.stem}.{kind}.parquet")
            tmp = ctx.__enter__()
            self._writers[kind] = (pq.ParquetWriter(tmp, PART_SCHEMAS[kind], compression="zstd"), ctx)
        self._writers[kind][0].write_table(table)
        self.rows[kind] = self.rows.get(kind, 0) + len(frame)
        if kind == "stations":
            names = frame["name"].dropna().astype(str)
            self.names += len(names)
            self.marked += int(names.str.endswith(SYNTHETIC_MARK).sum())

    def close(self, ok: bool) -> None:
        """Rename complete parts into place (``ok``) or discard them."""
        for writer, ctx in self._writers.values():
            writer.close()
            if ok:
                ctx.__exit__(None, None, None)
            else:
                ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        self._writers.clear()


def _manifest_path(processed: Path) -> Path:
    return processed / "parts" / "manifest.json"


def load_manifest(processed: Path) -> dict:
    """The parts manifest; parts are a cache, so an unreadable manifest is rebuilt (with a warning)."""
    path = _manifest_path(processed)
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and all(isinstance(e, dict) and "rows" in e for e in manifest.values()):
            return manifest
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    log.warning("%s is unreadable; the parts it listed are read again from raw/", path)
    return {}


def remove_stale_parts(processed: Path) -> None:
    """Delete temporary part files a killed process left behind (never renamed, never in the manifest)."""
    for tmp in (processed / "parts").glob(".*.tmp"):
        tmp.unlink()


def _part_paths(parts_dir: Path, stem: str) -> list[Path]:
    return sorted(parts_dir.glob(f"{stem}.*"))


def _parts_intact(parts_dir: Path, stem: str, entry: dict) -> str | None:
    """Why the parts of a manifest entry cannot be used (missing, truncated, wrong rows), or None."""
    for kind, n in entry["rows"].items():
        path = parts_dir / f"{stem}.{kind}.parquet"
        if not path.exists():
            return f"{path.name} is missing"
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            return f"{path.name} is unreadable ({str(exc)[:120]})"
        if rows != n:
            return f"{path.name} holds {rows} rows, the manifest says {n}"
    if entry["rejected"] and not (parts_dir / f"{stem}.rejects.csv").exists():
        return f"{stem}.rejects.csv is missing"
    return None


def forget_parts(processed: Path, manifest: dict, sha: str) -> None:
    """Drop a file's parts and its manifest entry, so that it is read again from raw/."""
    for path in _part_paths(processed / "parts", sha[:16]):
        path.unlink()
    if manifest.pop(sha, None) is not None:
        write_json(_manifest_path(processed), manifest)


def read_to_parts(path: Path, source: str, processed: Path, manifest: dict, *, expected_sha256: str | None = None,
                  progress: Callable[[int], None] | None = None, limits: Limits = DEFAULT_LIMITS) -> FileResult:
    """Read one raw file into parts and record it in the manifest (skipped if already there).

    ``expected_sha256`` is the checksum the raw manifest recorded: a raw file that changed
    since is refused, because raw data is immutable. Parts are a cache of ``raw/``: a file
    whose parts are missing, truncated or hold other row counts than recorded is read again.
    """
    sha = sha256_file(path)
    if expected_sha256 and sha != expected_sha256:
        raise IngestError(f"raw file {path} changed since it was recorded (sha256 {expected_sha256[:12]} -> "
                          f"{sha[:12]}); raw data is immutable: restore it or remove its entry from raw/manifest.json")
    if sha in manifest and manifest[sha]["format"] == formats.AUXILIARY and formats.file_format(path, limits) != formats.AUXILIARY:
        del manifest[sha]  # skipped by an older version that had no reader for it: read it now
    parts_dir = processed / "parts"
    if sha in manifest:
        entry = manifest[sha]
        broken = _parts_intact(parts_dir, entry.get("stem", sha[:16]), entry)
        if broken is None:
            return FileResult(source, sha, entry["format"], entry["rows"], entry["rejected"], entry["warnings"],
                              skipped=True, names=entry.get("names", 0), marked=entry.get("marked", 0))
        log.warning("%s: cached part %s; reading %s again", source, broken, path)
        forget_parts(processed, manifest, sha)
    return _read_new(path, source, sha, processed, manifest, progress, limits)


def _read_new(path: Path, source: str, sha: str, processed: Path, manifest: dict,
              progress: Callable[[int], None] | None, limits: Limits) -> FileResult:
    parts_dir = processed / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    stem = sha[:16]
    rejects = Rejects()
    writer = PartWriter(parts_dir, stem)
    fmt = formats.file_format(path, limits)
    ok = False
    try:
        for _fmt, chunk in formats.read_file(path, source, rejects, progress=progress, limits=limits):
            writer.write(chunk.kind, chunk.frame)
        ok = True
    finally:
        writer.close(ok)
    rejects.write_csv(parts_dir / f"{stem}.rejects.csv")
    rejected = {reason: n for (_f, reason), n in rejects.counts.items()}
    warnings = {f"{f}: {msg}": n for (f, msg), n in rejects.warnings.items()}
    manifest[sha] = {"source": source, "format": fmt, "rows": writer.rows, "rejected": rejected,
                     "warnings": warnings, "stem": stem, "names": writer.names, "marked": writer.marked}
    write_json(_manifest_path(processed), manifest)
    return FileResult(source, sha, fmt, writer.rows, rejected, warnings, names=writer.names, marked=writer.marked)


class PartError(IngestError):
    """A cached part that cannot be read; ``sha256`` names the raw file to read again."""

    def __init__(self, message: str, sha256: str):
        super().__init__(message)
        self.sha256 = sha256


def _read_parts(processed: Path, shas: Iterable[str], kind: str) -> pd.DataFrame:
    tables = []
    for sha in shas:
        path = processed / "parts" / f"{sha[:16]}.{kind}.parquet"
        if not path.exists():
            continue
        try:
            tables.append(pq.read_table(path))
        except (pa.ArrowException, OSError) as exc:
            raise PartError(f"{path}: damaged part ({str(exc)[:200]})", sha) from None
    if not tables:
        return PART_SCHEMAS[kind].empty_table().to_pandas()
    return pa.concat_tables(tables).to_pandas()


# --------------------------------------------------------------------------------------------
# Final tables
# --------------------------------------------------------------------------------------------

def number_map(stations: pd.DataFrame, snapshots: pd.DataFrame, rejects: Rejects) -> dict[str, int]:
    """station number -> id from every row that carries both; the latest source wins a conflict."""
    pairs = pd.concat([
        stations[["number", "station_id", "as_of"]],
        snapshots[["number", "station_id"]].drop_duplicates().assign(as_of=pd.NaT),
    ]).dropna(subset=["number", "station_id"])
    pairs = pairs.sort_values("as_of", na_position="first")
    conflicts = pairs.groupby("number")["station_id"].nunique()
    for number in conflicts[conflicts > 1].index:
        ids = sorted(pairs.loc[pairs["number"] == number, "station_id"].unique().tolist())
        rejects.warn("stations", f"station number {number!r} maps to several ids {ids}; the latest is used")
    return pairs.drop_duplicates("number", keep="last").set_index("number")["station_id"].astype(int).to_dict()


def _resolve_ids(df: pd.DataFrame, numbers: dict[str, int]) -> pd.Series:
    """Station ids, filled from the number where a source gave only the number."""
    by_number = pd.to_numeric(df["number"].map(numbers), errors="coerce").astype("Int64")
    return df["station_id"].astype("Int64").fillna(by_number)


def build_snapshots(parts: pd.DataFrame, numbers: dict[str, int], rejects: Rejects) -> pd.DataFrame:
    """Resolve ids, localise stamps (DST rule in :mod:`times`), drop repeated snapshots."""
    df = parts.assign(station_id=_resolve_ids(parts, numbers))
    unresolved = df["station_id"].isna()
    if unresolved.any():
        for (source, number), n in df[unresolved].groupby(["source", "number"]).size().items():
            rejects.counts[(source, f"station number {number!r} has no known id")] += n
            rejects.rows.append((source, "", "number", "station number has no known id", number))
        df = df[~unresolved]
    df["ts"] = localize_wall_clock(df["ts_local"])
    # The same instant and station from two sources (try.parquet repeats July 2019) is one snapshot.
    dup = df.duplicated(["ts", "station_id"], keep="first")
    if dup.any():
        first = df[~dup].set_index(["ts", "station_id"])["bikes"]
        again = df[dup].set_index(["ts", "station_id"])["bikes"]
        conflicting = int((first.reindex(again.index).to_numpy() != again.to_numpy()).sum())
        rejects.warn("snapshots", "repeated snapshot rows dropped (same station and instant)", int(dup.sum()))
        if conflicting:
            rejects.warn("snapshots", "repeated snapshot rows with different bikes; the first source kept", conflicting)
    df = df[~dup].sort_values(["ts", "station_id"], kind="stable").reset_index(drop=True)
    return df[[f.name for f in schemas.schema("snapshots")]]


def build_stations(parts: pd.DataFrame, snapshots: pd.DataFrame, trips: pd.DataFrame, numbers: dict[str, int]) -> pd.DataFrame:
    """One row per station id: the newest non-null value of each field, first/last seen."""
    df = parts.assign(station_id=_resolve_ids(parts, numbers)).dropna(subset=["station_id"])
    df["station_id"] = df["station_id"].astype(int)
    df = df.sort_values("as_of", na_position="first", kind="stable")
    info = df.groupby("station_id").agg(
        number=("number", "last"), name=("name", "last"), address=("address", "last"),
        lat=("lat", "last"), lon=("lon", "last"), capacity=("capacity", "last"),
        installed=("as_of", "min"), source=("source", lambda s: ",".join(sorted(set(s)))),
    )
    seen = snapshots.groupby("station_id").agg(first_seen=("ts", "min"), last_seen=("ts", "max"),
                                               snap_capacity=("capacity", "last"))
    ids = pd.Index(np.unique(np.concatenate([
        info.index.to_numpy(int), seen.index.to_numpy(int),
        trips["from_station"].dropna().to_numpy(int), trips["to_station"].dropna().to_numpy(int)])), name="station_id")
    out = info.reindex(ids).join(seen, how="left")
    out["capacity"] = out["snap_capacity"].fillna(out["capacity"])
    out["first_seen"] = out[["first_seen", "installed"]].min(axis=1)
    out.index.name = "station_id"
    out = out.reset_index()
    return out[[f.name for f in schemas.schema("stations")]]


def build_trips(parts: pd.DataFrame, rejects: Rejects) -> pd.DataFrame:
    """Concatenate trip parts, dropping trips seen in two files (same EMT ``_id``)."""
    keyed = parts["trip_key"].notna()
    dup = keyed & parts.duplicated("trip_key", keep="first")
    if dup.any():
        rejects.warn("trips", "repeated trips dropped (same EMT _id in several files)", int(dup.sum()))
    df = parts[~dup].sort_values("unplug_ts", kind="stable").reset_index(drop=True)
    return df[[f.name for f in schemas.schema("trips")]]


def _periods(hours: pd.Series) -> pd.Series:
    """Label each (sorted, distinct) hour with its coverage period (split at gaps > PERIOD_GAP)."""
    return (hours.diff() > PERIOD_GAP).cumsum()


def trip_coverage(trips: pd.DataFrame, complete_sources: set[str]) -> tuple[set, set]:
    """Hours in which trips are known completely: (pickup hours, return hours).

    Each source covers every hour from its first to its last unplug hour (an hour without
    trips is a real zero). The last hour is left out unless the source is known complete,
    because head extracts and truncated monthly files stop mid-hour. Returns need a plug
    time, so only sources with durations cover them.
    """
    pick, ret = set(), set()
    if trips.empty:
        return pick, ret
    hours = hour_floor(trips["unplug_ts"])
    for source, idx in trips.groupby("source").groups.items():
        h = hours.loc[idx]
        span = pd.date_range(h.min().tz_convert("UTC"), h.max().tz_convert("UTC"), freq="h").tz_convert(TZ)
        if source not in complete_sources:
            span = span[:-1]
        pick.update(span)
        if trips.loc[idx, "plug_ts"].notna().any():
            ret.update(span)
    return pick, ret


def build_station_hours(snapshots: pd.DataFrame, trips: pd.DataFrame, complete_trip_sources: set[str]) -> pd.DataFrame:
    """Per station and local hour: the first snapshot in the hour, empty/full, pickups and
    returns where trips cover the hour, and the net flow to the next hour's snapshot.

    Rows span, per coverage period, each station's first to last snapshot hour, so missing
    hours appear with a null ``snapshot_ts``; periods with trips but no snapshots get rows for
    the stations in those trips.

    ``empty``: 0 bikes. ``full``: 0 free docks where the source has ``free_bases`` (docks out of
    service do not count as free), else bikes >= capacity. ``returns`` count trips by plug hour,
    with plug time = unplug hour + travel time: EMT truncates unplug times to the hour, so a
    return lands on average half an hour early. Hours outside every trip source's coverage
    (:func:`trip_coverage`) have null pickups and returns; inside it, 0 means none.
    """
    snaps = snapshots.assign(hour=hour_floor(snapshots["ts"]))
    first = snaps.sort_values("ts", kind="stable").drop_duplicates(["station_id", "hour"], keep="first")
    pick_hours, ret_hours = trip_coverage(trips, complete_trip_sources)

    # Coverage periods over all known hours (snapshots and trips), in UTC to stay DST-safe.
    all_hours = pd.Series(sorted(set(first["hour"].unique()) | pick_hours), dtype=f"datetime64[us, {TZ}]")
    period_of = pd.Series(_periods(all_hours).to_numpy(), index=pd.DatetimeIndex(all_hours))
    grids = []
    if len(first):
        first = first.assign(period=period_of.reindex(pd.DatetimeIndex(first["hour"])).to_numpy())
        spans = first.groupby(["period", "station_id"])["hour"].agg(["min", "max"]).reset_index()
        grids.append(spans)
    if pick_hours:
        ph = pd.Series(sorted(pick_hours), dtype=f"datetime64[us, {TZ}]")
        tp = pd.DataFrame({"hour": ph, "period": period_of.reindex(pd.DatetimeIndex(ph)).to_numpy()})
        snap_periods = set(first["period"].unique()) if len(first) else set()
        trip_only = tp[~tp["period"].isin(snap_periods)]
        if len(trip_only):
            th = hour_floor(trips["unplug_ts"])
            tr = trips.assign(hour=th, period=period_of.reindex(pd.DatetimeIndex(th)).to_numpy())
            tr = tr[tr["period"].isin(set(trip_only["period"]))]
            span = trip_only.groupby("period")["hour"].agg(["min", "max"])
            st = pd.concat([tr[["period", "from_station"]].rename(columns={"from_station": "station_id"}),
                            tr[["period", "to_station"]].rename(columns={"to_station": "station_id"})]).dropna().drop_duplicates()
            grids.append(st.join(span, on="period"))
    if not grids:
        return schemas.empty_frame("station_hours")
    spans = pd.concat(grids, ignore_index=True)
    ids_parts, hour_parts = [], []
    for (lo, hi), group in spans.groupby(["min", "max"]):
        # Hours as UTC integers: tiling tz-aware timestamps would go through Python objects.
        hours = pd.date_range(lo.tz_convert("UTC"), hi.tz_convert("UTC"), freq="h").as_unit("us").asi8
        ids = group["station_id"].astype(int).unique()
        ids_parts.append(np.repeat(ids, len(hours)))
        hour_parts.append(np.tile(hours, len(ids)))
    grid = pd.DataFrame({
        "station_id": np.concatenate(ids_parts).astype(np.int32),
        "hour": pd.to_datetime(np.concatenate(hour_parts), unit="us", utc=True).tz_convert(TZ),
    }).drop_duplicates(["station_id", "hour"])

    sh = grid.merge(first[["station_id", "hour", "ts", "bikes", "capacity", "free_docks"]], on=["station_id", "hour"], how="left")
    sh = sh.rename(columns={"ts": "snapshot_ts"})
    sh["empty"] = (sh["bikes"] == 0).where(sh["bikes"].notna())
    full_known = sh["free_docks"].notna()
    sh["full"] = np.where(full_known, sh["free_docks"] == 0, sh["bikes"] >= sh["capacity"])
    sh["full"] = sh["full"].where(sh["bikes"].notna() & (full_known | sh["capacity"].notna()))

    # Trips: pickups by unplug hour at the origin, returns by plug hour at the destination.
    sh["pickups"] = _hour_counts(sh, trips["from_station"], hour_floor(trips["unplug_ts"]), pick_hours)
    plugged = trips["plug_ts"].notna() & trips["to_station"].notna()
    sh["returns"] = _hour_counts(sh, trips.loc[plugged, "to_station"], hour_floor(trips.loc[plugged, "plug_ts"]), ret_hours)

    nxt = sh[["station_id", "hour", "bikes"]].assign(hour=sh["hour"] - pd.Timedelta(hours=1))
    sh = sh.merge(nxt.rename(columns={"bikes": "bikes_next"}), on=["station_id", "hour"], how="left")
    sh["net_flow"] = sh["bikes_next"] - sh["bikes"]
    sh = sh.sort_values(["hour", "station_id"], kind="stable").reset_index(drop=True)
    return sh[[f.name for f in schemas.schema("station_hours")]]


def _hour_counts(grid: pd.DataFrame, stations: pd.Series, hours: pd.Series, covered: set) -> pd.Series:
    """Count per (station, hour) of the grid; null where the hour is not covered by trips."""
    counts = pd.DataFrame({"station_id": stations.astype(int).to_numpy(), "hour": hours.to_numpy()})
    counts = counts.groupby(["station_id", "hour"]).size().rename("n").reset_index()
    merged = grid[["station_id", "hour"]].merge(counts, on=["station_id", "hour"], how="left")["n"]
    is_covered = grid["hour"].isin(covered).to_numpy()
    return pd.Series(np.where(is_covered, merged.fillna(0).to_numpy(), np.nan), index=grid.index)


def build_tables(processed: Path, results: list[FileResult], rejects: Rejects) -> dict[str, pd.DataFrame]:
    """All four processed tables from the parts of ``results``' files."""
    shas = list(dict.fromkeys(r.sha256 for r in results))  # identical files count once
    station_parts = _read_parts(processed, shas, "stations")
    snapshot_parts = _read_parts(processed, shas, "snapshots")
    trip_parts = _read_parts(processed, shas, "trips")
    positions = _read_parts(processed, shas, "trip_positions")
    if len(positions):  # a simulator's trips: stations by position, from the station lists ingested
        located = auxiliary.trips_from_positions(positions, station_parts, rejects)
        if len(located):
            trip_parts = pd.concat([trip_parts, located], ignore_index=True)
    numbers = number_map(station_parts, snapshot_parts, rejects)
    snapshots = build_snapshots(snapshot_parts, numbers, rejects)
    trips = build_trips(trip_parts, rejects)
    stations = build_stations(station_parts, snapshots, trips, numbers)
    complete = {s for s in trips["source"].unique() if "#" in s}  # xlsx sheets: complete hour windows
    station_hours = build_station_hours(snapshots, trips, complete)
    return {"stations": stations, "snapshots": snapshots, "trips": trips, "station_hours": station_hours}


def write_tables(processed: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    return {name: schemas.write_table(df, name, processed / f"{name}.parquet") for name, df in tables.items()}
