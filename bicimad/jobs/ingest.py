"""``bicimad ingest`` and ``bicimad data summary|rejected``: the ingest job and its command line.

:func:`ingest` puts source files under ``$BICIMAD_DATA_DIR/raw/`` (immutable, with a sha256
manifest), reads each into per-file parts (a cache of ``raw/``) and rebuilds
``processed/{stations,snapshots,trips,station_hours}.parquet``.

- **One dataset per data folder.** ``processed/dataset.json`` records whether the tables hold
  ``real`` EMT data or the ``synthetic`` city (:func:`processed_dataset`). ``--synthetic`` builds
  from ``raw/synthetic/`` alone, every other source from everything else under ``raw/``; files
  whose station names end with " [synthetic]" are synthetic wherever they come from, and are never
  mixed with real files. An ingest that would switch a folder from one dataset to the other is
  refused (exit 2) unless ``replace_dataset`` (``--replace-dataset``) is given.
- **One lock per data folder** (:func:`bicimad.config.data_lock_path`, the nightly run's lock):
  an ingest waits up to ``lock_wait_s`` for it, then is refused (exit 75, naming the holder).
- **A refused file never blocks other sources**: it is quarantined under ``raw/rejected/``
  (:mod:`bicimad.opendata.rawstore`); ``bicimad data rejected`` lists and drops quarantined files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bicimad import config
from bicimad.argtypes import non_negative_float, positive_float, positive_int, share
from bicimad.errors import EXIT_BAD_INPUT, EXIT_DATAERR, EXIT_SOFTWARE, EXIT_TEMPFAIL, EXIT_USAGE, CommandError
from bicimad.jobs import JobResult
from bicimad.opendata import rawstore
from bicimad.opendata.archive import DEFAULT_LIMITS, Limits
from bicimad.opendata.summary import REAL, SYNTHETIC, dataset_info

log = logging.getLogger(__name__)

__all__ = ["EXIT_BAD_INPUT", "IngestResult", "IngestSources", "data_lock", "ingest", "processed_dataset",
           "register", "rejected", "summary"]


@dataclass(frozen=True)
class IngestSources:
    """Where new raw files come from (any combination; ``synthetic`` alone)."""

    paths: tuple[Path, ...] = ()
    """files or folders in any supported raw format"""
    synthetic: bool = False
    """generate and ingest the seeded synthetic city"""
    seed: int = 0
    """seed of the synthetic city"""
    portal: str | None = None
    """months ``YYYY-MM:YYYY-MM`` to download from EMT's open-data portal"""
    live: str | None = None
    """``gbfs`` or ``emt``: fetch the live station state as one more snapshot"""
    gbfs_url: str | None = None
    """GBFS discovery or feed-folder URL for ``live="gbfs"``"""

    @property
    def none(self) -> bool:
        """No new source: rebuild the tables from raw/."""
        return not (self.paths or self.synthetic or self.portal or self.live)


@dataclass(frozen=True)
class IngestResult(JobResult):
    """What one ingest wrote."""

    dataset: str  #: ``real`` or ``synthetic``
    tables: dict[str, Path]  #: table name -> parquet path
    counts: dict[str, int]  #: table name -> rows
    rejected: int  #: records rejected (details in processed/rejects.csv)
    files: tuple[dict, ...]  #: per raw file: source, sha256, format, rows, rejected, warnings, resumed
    notes: tuple[str, ...] = field(default=())  #: what was skipped and why (links not followed, quarantine)
    reject_lines: tuple[str, ...] = field(default=())  #: per file and reason: rejected records and warnings

    @property
    def resumed(self) -> int:
        return sum(bool(f["resumed"]) for f in self.files)

    def summary(self) -> str:
        processed = next(iter(self.tables.values())).parent if self.tables else "processed/"
        return (f"ingested {len(self.files)} file(s) ({self.resumed} already read) of {self.dataset} data into "
                f"{processed}: " + ", ".join(f"{n:,} {name}" for name, n in self.counts.items())
                + f"; {self.rejected:,} record(s) rejected")


def processed_dataset(data_dir: str | Path | None = None) -> str | None:
    """``real`` or ``synthetic``: the dataset the data folder's processed tables hold (None: none built)."""
    info = dataset_info(config.processed_dir(config.data_dir(data_dir)))
    return info["dataset"] if info else None


# --------------------------------------------------------------------------------------------
# Lock and file-system errors
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def data_lock(root: Path, *, wait_s: float = 0.0, hold: bool = True, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the data folder's lock (:func:`bicimad.config.data_lock_path`), waiting up to ``wait_s``.

    ``hold=False`` is for a caller that already holds it (the nightly run); a lock that this
    same process holds (its pid in the lock file) counts as held by the caller too.
    """
    from bicimad.jobs.batch import LockHeld, RunLock

    if not hold:
        yield
        return
    path = config.data_lock_path(root)
    lock = RunLock(path)
    deadline = time.monotonic() + max(wait_s, 0.0)
    while True:
        try:
            lock.acquire()
            break
        except LockHeld as exc:
            if _held_by_this_process(path):
                yield
                return
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
                raise CommandError(f"the data folder is in use{waited}: {exc}; try again when that run ends "
                                   "(or wait for it with --wait SECONDS)", EXIT_TEMPFAIL) from None
            time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.01)))
    try:
        yield
    finally:
        lock.release()


def _held_by_this_process(path: Path) -> bool:
    try:
        holder = path.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return holder[:2] == ["pid", str(os.getpid())]


@contextlib.contextmanager
def _file_system_errors(root: Path) -> Iterator[None]:
    """An OSError writing the data folder (read-only, full disk) becomes a clear CommandError."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or root
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
            raise CommandError(f"cannot write to {where}: {exc.strerror}; the data folder {root} must be writable "
                               "(--data-dir or $BICIMAD_DATA_DIR)", EXIT_USAGE) from None
        code = EXIT_TEMPFAIL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else EXIT_SOFTWARE
        raise CommandError(f"{where}: {exc.strerror or exc}", code) from None


def _check_options(sources: IngestSources, max_reject_share: float) -> None:
    if not (isinstance(max_reject_share, (int, float)) and math.isfinite(max_reject_share)
            and 0 <= max_reject_share <= 1):
        raise CommandError(f"--max-reject-share: expected a share between 0 and 1, got {max_reject_share!r}", EXIT_USAGE)
    if sources.synthetic and (sources.paths or sources.portal or sources.live):
        raise CommandError("--synthetic builds tables from the synthetic city alone; ingest real sources separately")
    if sources.live not in (None, "gbfs", "emt"):
        raise CommandError(f"--live: expected gbfs or emt, got {sources.live!r}")


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------

def ingest(sources: IngestSources, *, data_dir: str | Path | None = None, strict: bool = False,
           max_reject_share: float = 0.01, progress: bool = True, hold_lock: bool = True, lock_wait_s: float = 0.0,
           replace_dataset: bool = False, limits: Limits = DEFAULT_LIMITS) -> IngestResult:
    """Bring ``sources`` into the raw store and rebuild the processed tables from it.

    Raises :class:`CommandError`: exit 2 for bad options, a read-only folder or a dataset switch
    without ``replace_dataset``; 3 when input problems make the output wrong (a file refused, more
    than ``max_reject_share`` of a file's records rejected, any with ``strict``; the refused files
    are quarantined and the tables left unchanged); 65 for an unreadable raw manifest; 75 when the
    data folder's lock is held beyond ``lock_wait_s``.
    """
    _check_options(sources, max_reject_share)
    root = config.data_dir(data_dir).resolve()
    with _file_system_errors(root):
        config.raw_dir(root).mkdir(parents=True, exist_ok=True)
        with data_lock(root, wait_s=lock_wait_s, hold=hold_lock):
            return _ingest_locked(sources, root, strict=strict, max_reject_share=max_reject_share,
                                  progress=progress, replace_dataset=replace_dataset, limits=limits)


def _ingest_locked(sources: IngestSources, root: Path, *, strict: bool, max_reject_share: float, progress: bool,
                   replace_dataset: bool, limits: Limits) -> IngestResult:
    raw, processed = config.raw_dir(root), config.processed_dir(root)
    manifest = rawstore.load_manifest(raw)
    before = dataset_info(processed)
    generated = sources.synthetic or (sources.none and before is not None and before["raw"] == "generated")
    if generated and not replace_dataset:
        _check_switch(before, SYNTHETIC, processed)
    notes = _gather(raw, manifest, sources)
    rawstore.save_manifest(raw, manifest)
    files = rawstore.dataset_files(raw, manifest, generated)
    if not files:
        raise CommandError(f"nothing to ingest: {raw} holds no {'synthetic ' if generated else ''}raw files "
                           "(use --from PATH, --synthetic, --portal or --live)")
    for f in files:
        if not f.exists():
            raise CommandError(f"raw file {f} is in the manifest but missing; restore it or re-ingest its source")
    results, refused = _read_files(files, raw, manifest, processed, progress, limits)
    dataset, mixed = _classify(results, generated)
    refused += [(r.source, f"synthetic-city data ({_source_group(r.source)} holds station names ending with "
                 "' [synthetic]') among real EMT data; ingest it into a data folder of its own") for r in mixed]
    results = [r for r in results if r not in mixed]
    refused += [(r.source, f"{sum(r.rejected.values())} record(s) rejected ({r.reject_share:.1%})") for r in results
                if r.reject_share > max_reject_share or (strict and r.rejected)]
    rejects = _gather_rejects(processed, results)
    if refused:
        rejects.write_csv(processed / "rejects.csv")
        _refuse(raw, manifest, refused, processed)
    if not replace_dataset:
        _check_switch(before, dataset, processed)
    tables, results = _build(processed, results, rejects, raw, manifest, limits)
    return _write(processed, tables, results, rejects, dataset, generated, notes)


def _gather(raw: Path, manifest: dict, sources: IngestSources) -> list[str]:
    """Bring new files under raw/ and into the manifest; returns notes on what was skipped."""
    notes: list[str] = []
    if sources.synthetic:
        # The synthetic city is generated, not received: a new seed replaces the old files.
        for rel in [rel for rel in manifest if rel.startswith(f"{rawstore.SYNTHETIC}/")]:
            del manifest[rel]
        for p in _lazy("synthetic", "--synthetic").write_city(raw, seed=sources.seed):
            rawstore.record(raw, manifest, Path(p), f"synthetic city, seed {sources.seed}")
    quarantined = rawstore.quarantined_shas(raw)
    for path in sources.paths:
        report = rawstore.copy_in(raw, manifest, Path(path), quarantined)
        notes += [f"not followed (symbolic link out of {path}): {link}" for link in report.links_skipped]
        notes += [f"skipped (already quarantined in {raw / rawstore.REJECTED}; `bicimad data rejected` lists it): {f}"
                  for f in report.quarantined_skipped]
        notes += [f"stored under a shorter name: {src} -> {name}" for src, name in report.renamed]
    if sources.portal:
        notes += _fetch_portal(raw, manifest, sources.portal, quarantined)
    if sources.live:
        _fetch_live(raw, manifest, sources)
    return notes


def _fetch_portal(raw: Path, manifest: dict, months: str, quarantined: set[str]) -> list[str]:
    from bicimad.io import sha256_file

    start, sep, end = months.partition(":")
    if not sep:
        raise CommandError(f"--portal {months!r}: expected START:END as YYYY-MM:YYYY-MM")
    portal = _lazy("portal", "--portal")
    try:
        downloaded = portal.download(start, end or start, raw / "portal")
    except (portal.DownloadError, ValueError) as exc:
        raise CommandError(f"--portal {months}: {exc}") from exc
    notes = []
    for p in map(Path, downloaded):
        if sha256_file(p) in quarantined:  # refused before: not read again until dropped from the quarantine
            notes.append(f"skipped (already quarantined; `bicimad data rejected` lists it): {p}")
            p.unlink()
            continue
        rawstore.record(raw, manifest, p, "EMT open-data portal")
    return notes


def _fetch_live(raw: Path, manifest: dict, sources: IngestSources) -> None:
    live = _lazy("live", "--live")
    try:
        if sources.live == "gbfs":
            p = live.fetch_gbfs(sources.gbfs_url or live.BICIMAD_GBFS_URL, raw / "live")
        else:
            p = live.fetch_mobilitylabs(raw / "live")
    except live.LiveError as exc:
        raise CommandError(f"--live {sources.live}: {exc}") from exc
    rawstore.record(raw, manifest, Path(p), f"live {sources.live}")


def _lazy(module: str, flag: str):
    import importlib

    try:
        return importlib.import_module(f"bicimad.opendata.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bicimad.opendata.{module}":
            raise CommandError(f"{flag}: bicimad.opendata.{module} is not available in this installation") from None
        raise


def _read_files(files: list[Path], raw: Path, manifest: dict, processed: Path, show: bool, limits: Limits):
    """Read every raw file into parts (or find its parts cached): (results, refused (rel, reason) pairs)."""
    from tqdm import tqdm

    from bicimad.opendata import normalise
    from bicimad.opendata.rejects import IngestError

    parts_manifest = normalise.load_manifest(processed)
    normalise.remove_stale_parts(processed)
    results, refused = [], []
    with tqdm(total=sum(f.stat().st_size for f in files), unit="B", unit_scale=True, desc="ingest",
              disable=not show, file=sys.stderr) as bar:
        for f in files:
            done = bar.n
            bar.set_postfix_str(f.name[-40:])
            rel = f.relative_to(raw).as_posix()
            try:
                results.append(normalise.read_to_parts(
                    f, rel, processed, parts_manifest, expected_sha256=manifest[rel]["sha256"], limits=limits,
                    progress=lambda pos, done=done: bar.update(done + pos - bar.n)))
            except IngestError as exc:
                refused.append((rel, str(exc)))
            bar.update(done + f.stat().st_size - bar.n)
    return results, refused


def _source_group(rel: str) -> str:
    """The files one source brought: ``local/<folder or file given to --from>``, ``portal/<file>``, ..."""
    return "/".join(rel.split("/")[:2])


def _classify(results: list, generated: bool) -> tuple[str, list]:
    """The dataset of ``results`` and the synthetic files that must not join real ones.

    A source (a folder given to --from) holding a file whose station names carry the synthetic
    city's mark is synthetic as a whole (its trip files carry no names). Synthetic and real
    sources together: the real ones stay, the synthetic ones are refused.
    """
    if generated:
        return SYNTHETIC, []
    marked = {_source_group(r.source) for r in results if r.marked}
    synthetic = [r for r in results if _source_group(r.source) in marked]
    if synthetic and len(synthetic) < len(results):
        return REAL, synthetic
    return (SYNTHETIC if synthetic else REAL), []


def _check_switch(before: dict | None, dataset: str, processed: Path) -> None:
    if before is not None and before["dataset"] != dataset:
        raise CommandError(f"{processed} holds {before['dataset']} data; this ingest would replace it with {dataset} "
                           f"data. Keep them apart (another --data-dir), or pass --replace-dataset to replace it",
                           EXIT_USAGE)


def _gather_rejects(processed: Path, results: list):
    from bicimad.opendata.rejects import Rejects

    rejects = Rejects()
    for r in results:
        part_rejects = processed / "parts" / f"{r.sha256[:16]}.rejects.csv"
        if part_rejects.exists():
            rejects.rows.extend(Rejects.read_csv(part_rejects).rows)
        rejects.counts.update({(r.source, reason): n for reason, n in r.rejected.items()})
    return rejects


def _refuse(raw: Path, manifest: dict, refused: list[tuple[str, str]], processed: Path) -> None:
    """Quarantine the refused files and fail, leaving the processed tables as they were."""
    lines = []
    for rel, reason in refused:
        origin = manifest.get(rel, {}).get("origin", "")
        target = rawstore.quarantine(raw, manifest, rel, reason)
        lines.append(f"{raw / rel}{f' (from {origin})' if origin and origin != str(raw / rel) else ''}: {reason}; "
                     f"quarantined as {target}")
    rawstore.save_manifest(raw, manifest)
    raise CommandError("bad input, processed tables left unchanged:\n  " + "\n  ".join(lines)
                       + f"\nsee {processed / 'rejects.csv'}; the next ingest proceeds without these files "
                       "(`bicimad data rejected` lists them, --drop NAME removes one)", EXIT_BAD_INPUT)


def _build(processed: Path, results: list, rejects, raw: Path, manifest: dict, limits: Limits):
    """The four tables; a cached part that turns out damaged is read again from raw/ (once)."""
    from bicimad.opendata import normalise

    for attempt in (1, 2):
        try:
            return normalise.build_tables(processed, results, rejects), results
        except normalise.PartError as exc:
            if attempt == 2:
                raise CommandError(f"{exc}; it was rebuilt from raw/ and is still unreadable", EXIT_DATAERR) from None
            log.warning("%s; reading its raw file again", exc)
            parts_manifest = normalise.load_manifest(processed)
            normalise.forget_parts(processed, parts_manifest, exc.sha256)
            redo = next(r for r in results if r.sha256 == exc.sha256)
            fresh = normalise.read_to_parts(raw / redo.source, redo.source, processed, parts_manifest,
                                            expected_sha256=manifest[redo.source]["sha256"], limits=limits)
            results = [fresh if r.sha256 == exc.sha256 else r for r in results]
    raise AssertionError("unreachable")


def _write(processed: Path, tables: dict, results: list, rejects, dataset: str, generated: bool,
           notes: list[str]) -> IngestResult:
    from bicimad.io import write_json
    from bicimad.opendata import normalise

    rejects.write_csv(processed / "rejects.csv")
    paths = normalise.write_tables(processed, tables)
    counts = {name: len(df) for name, df in tables.items()}
    built = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    files = tuple({"source": r.source, "sha256": r.sha256, "format": r.format, "rows": r.rows,
                   "rejected": r.rejected, "warnings": r.warnings, "resumed": r.skipped} for r in results)
    raw_kind = "generated" if generated else "received"
    write_json(processed / "dataset.json", {"dataset": dataset, "raw": raw_kind, "built": built})
    write_json(processed / "ingest.json", {"dataset": dataset, "raw": raw_kind, "built": built, "counts": counts,
                                           "rejected": rejects.total(), "files": list(files), "notes": notes})
    return IngestResult(dataset=dataset, tables=paths, counts=counts, rejected=rejects.total(), files=files,
                        notes=tuple(notes), reject_lines=tuple(rejects.summary_lines()))


# --------------------------------------------------------------------------------------------
# data summary, data rejected
# --------------------------------------------------------------------------------------------

def summary(data_dir: str | Path | None = None) -> tuple[list[dict], dict]:
    """Per source and month of the processed tables (:func:`bicimad.opendata.summary.summarise`),
    and what the last ingest recorded."""
    from bicimad.opendata.summary import build_info, summarise

    processed = config.processed_dir(config.data_dir(data_dir))
    try:
        return summarise(processed), build_info(processed)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc


def rejected(data_dir: str | Path | None = None, *, drop: list[str] | None = None, drop_all: bool = False,
             hold_lock: bool = True) -> dict:
    """The quarantined files (name -> entry), after dropping ``drop`` (or every one, ``drop_all``)."""
    root = config.data_dir(data_dir).resolve()
    raw = config.raw_dir(root)
    if not (drop or drop_all):
        return rawstore.load_quarantine(raw)
    with _file_system_errors(root), data_lock(root, hold=hold_lock):
        rawstore.drop_quarantined(raw, None if drop_all else list(drop or ()))
        return rawstore.load_quarantine(raw)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="ingest EMT data (local files, the portal, live state or a synthetic city) into processed tables",
        description="Copy source files under raw/ (immutable, sha256 manifest), read every raw format "
        "(snapshot JSON lines, xlsx, parquet; trip JSON lines mongoexport/compact, zipped or not; station "
        "lists) and rebuild processed/{stations,snapshots,trips,station_hours}.parquet. An interrupted "
        "ingest resumes: files already read are skipped by sha256. With no source option, rebuild from raw/. "
        "A refused file is quarantined under raw/rejected/ (see `bicimad data rejected`).",
    )
    src = p.add_argument_group("sources (any combination; --synthetic builds from the synthetic city alone)")
    src.add_argument("--from", dest="paths", nargs="+", metavar="PATH", type=Path,
                     help="files or folders in any supported raw format (format detected from content; symbolic "
                     "links out of the folder are not followed)")
    src.add_argument("--synthetic", action="store_true", help="generate and ingest the seeded synthetic city")
    src.add_argument("--seed", type=int, default=0, help="seed of the synthetic city (default 0)")
    src.add_argument("--portal", metavar="START:END", help="download months YYYY-MM:YYYY-MM from EMT's open-data portal")
    src.add_argument("--live", choices=("gbfs", "emt"), help="fetch the live station state as one more snapshot")
    src.add_argument("--gbfs-url", help="GBFS discovery or feed-folder URL for --live gbfs (default: BiciMAD's public feed)")
    p.add_argument("--replace-dataset", action="store_true",
                   help="allow replacing the folder's processed tables of one dataset (real EMT or synthetic) "
                   "with the other; without it such an ingest is refused (exit 2)")
    p.add_argument("--wait", type=non_negative_float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a running nightly or ingest to release the data folder "
                   "(default 0: refuse at once, exit 75)")
    chk = p.add_argument_group("bad input and limits")
    chk.add_argument("--strict", action="store_true", help="any rejected record fails the ingest (exit 3)")
    chk.add_argument("--max-reject-share", type=share, default=0.01, metavar="SHARE",
                     help="fail (exit 3) when a file rejects more than this share of its records, 0..1 (default 0.01)")
    chk.add_argument("--max-member-bytes", type=positive_int, default=DEFAULT_LIMITS.max_member_bytes,
                     metavar="BYTES", help="refuse archive members larger than this (default 2 GiB)")
    chk.add_argument("--max-compression-ratio", type=positive_float, default=DEFAULT_LIMITS.max_ratio,
                     metavar="RATIO", help="refuse archive members that expand more than this (default 200)")
    chk.add_argument("--max-line-bytes", type=positive_int, default=DEFAULT_LIMITS.max_line_bytes, metavar="BYTES",
                     help="reject JSON lines longer than this, and refuse documents larger (default 64 MiB)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_ingest)
    _register_data(sub)


def _register_data(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("data", help="inspect the ingested data")
    dsub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    s = dsub.add_parser("summary", help="per source and month: stations, snapshot coverage, missing hours, trips")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=run_summary)
    r = dsub.add_parser("rejected", help="list the quarantined raw files (raw/rejected/) and drop them",
                        description="Files an ingest refused are moved to raw/rejected/<name> with <name>.reason.txt. "
                        "Their content is skipped by later ingests until dropped here; a dropped file given again "
                        "is read again.")
    group = r.add_mutually_exclusive_group()
    group.add_argument("--drop", nargs="+", metavar="NAME", help="delete these quarantined files")
    group.add_argument("--all", action="store_true", help="delete every quarantined file")
    r.add_argument("--json", action="store_true", help="print JSON instead of a list")
    r.set_defaults(func=run_rejected)


def run_ingest(args: argparse.Namespace) -> int:
    sources = IngestSources(paths=tuple(args.paths or ()), synthetic=args.synthetic, seed=args.seed,
                            portal=args.portal, live=args.live, gbfs_url=args.gbfs_url)
    limits = Limits(max_member_bytes=args.max_member_bytes, max_ratio=args.max_compression_ratio,
                    max_line_bytes=args.max_line_bytes)
    result = ingest(sources, data_dir=args.data_dir, strict=args.strict, max_reject_share=args.max_reject_share,
                    progress=not args.no_progress, lock_wait_s=args.wait, replace_dataset=args.replace_dataset,
                    limits=limits)
    for line in (*result.notes, *result.reject_lines):
        print(line, file=sys.stderr)
    return result.print()


def run_summary(args: argparse.Namespace) -> int:
    from bicimad.opendata.summary import format_table

    rows, info = summary(args.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(format_table(rows, info))
    return 0


def run_rejected(args: argparse.Namespace) -> int:
    before = rejected(args.data_dir)
    after = rejected(args.data_dir, drop=args.drop, drop_all=args.all)
    dropped = sorted(set(before) - set(after))
    if args.json:
        print(json.dumps({"quarantined": after, "dropped": dropped}, indent=2, sort_keys=True))
        return 0
    folder = config.raw_dir(config.data_dir(args.data_dir)) / rawstore.REJECTED
    for name in dropped:
        print(f"dropped {folder / name}")
    if not after:
        print(f"no quarantined files in {folder}")
    for name, entry in sorted(after.items()):
        print(f"{folder / name}\n  from {entry.get('origin')}, quarantined {entry.get('quarantined')}\n"
              f"  reason: {entry.get('reason')}")
    return 0
