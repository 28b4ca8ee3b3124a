"""``bicimad ingest`` and ``bicimad data summary``.

Ingest puts source files under ``$BICIMAD_DATA_DIR/raw/`` (immutable, with a sha256
manifest), reads each into per-file parts and rebuilds ``processed/{stations,snapshots,trips,
station_hours}.parquet``. Real and synthetic data never mix: ``--synthetic`` builds the tables
from ``raw/synthetic/`` alone, every other source from everything else under ``raw/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
from pathlib import Path

from bicimad import config
from bicimad.errors import CommandError

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
#: Exit code when input problems make the output wrong (too many rejects, or any with --strict).
EXIT_BAD_INPUT = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="ingest EMT data (local files, the portal, live state or a synthetic city) into processed tables",
        description="Copy source files under raw/ (immutable, sha256 manifest), read every raw format "
        "(snapshot JSON lines, xlsx, parquet; trip JSON lines mongoexport/compact, zipped or not; station "
        "lists) and rebuild processed/{stations,snapshots,trips,station_hours}.parquet. An interrupted "
        "ingest resumes: files already read are skipped by sha256. With no source option, rebuild from raw/.",
    )
    src = p.add_argument_group("sources (any combination; --synthetic builds from the synthetic city alone)")
    src.add_argument("--from", dest="paths", nargs="+", metavar="PATH", type=Path,
                     help="files or folders in any supported raw format (format detected from content)")
    src.add_argument("--synthetic", action="store_true", help="generate and ingest the seeded synthetic city")
    src.add_argument("--seed", type=int, default=0, help="seed of the synthetic city (default 0)")
    src.add_argument("--portal", metavar="START:END", help="download months YYYY-MM:YYYY-MM from EMT's open-data portal")
    src.add_argument("--live", choices=("gbfs", "emt"), help="fetch the live station state as one more snapshot")
    src.add_argument("--gbfs-url", help="GBFS discovery or feed-folder URL for --live gbfs (default: BiciMAD's public feed)")
    chk = p.add_argument_group("bad input")
    chk.add_argument("--strict", action="store_true", help="any rejected record fails the ingest (exit 3)")
    chk.add_argument("--max-reject-share", type=float, default=0.01, metavar="SHARE",
                     help="fail (exit 3) when a file rejects more than this share of its records (default 0.01)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_ingest)

    d = sub.add_parser("data", help="inspect the ingested data")
    dsub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    s = dsub.add_parser("summary", help="per source and month: stations, snapshot coverage, missing hours, trips")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=run_summary)


# --------------------------------------------------------------------------------------------
# Raw store
# --------------------------------------------------------------------------------------------

def _raw_manifest_path(raw: Path) -> Path:
    return raw / "manifest.json"


def _load_raw_manifest(raw: Path) -> dict:
    path = _raw_manifest_path(raw)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _record_raw(raw: Path, manifest: dict, stored: Path, origin: str) -> None:
    from bicimad.io import sha256_file

    rel = stored.relative_to(raw).as_posix()
    sha = sha256_file(stored)
    prior = manifest.get(rel)
    if prior and prior["sha256"] != sha:
        raise CommandError(f"raw file {stored} changed since it was recorded (sha256 {prior['sha256'][:12]} -> "
                           f"{sha[:12]}); raw data is immutable — restore it or remove its manifest entry", EXIT_BAD_INPUT)
    manifest[rel] = {"sha256": sha, "size": stored.stat().st_size, "origin": origin,
                     "added": prior["added"] if prior else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _copy_in(raw: Path, manifest: dict, path: Path) -> None:
    """Copy a file or folder under raw/local/<name>/, keeping relative paths; identical files are skipped."""
    from bicimad.io import atomic_path, sha256_file

    path = path.resolve()
    if not path.exists():
        raise CommandError(f"--from {path}: no such file or folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise CommandError(f"--from {path}: no files")
    base = raw / "local" / path.name
    for f in files:
        if f.name.endswith(".md"):
            continue  # documentation beside the data (PROVENANCE.md, README.md)
        if raw.resolve() in f.parents:
            stored = f  # already in the raw store
        else:
            stored = base / f.relative_to(path) if path.is_dir() else base
            if stored.exists():
                if sha256_file(stored) != sha256_file(f):
                    raise CommandError(f"--from {f}: differs from {stored}, already in raw/ under that name; raw data "
                                       "is immutable, so give the new version another name", EXIT_BAD_INPUT)
            else:
                with atomic_path(stored) as tmp:
                    shutil.copyfile(f, tmp)
                    tmp.chmod(0o444)  # raw is immutable
        _record_raw(raw, manifest, stored, str(f))


def _dataset_files(raw: Path, manifest: dict, synthetic: bool) -> list[Path]:
    out = []
    for rel in sorted(manifest):
        if rel.startswith(f"{SYNTHETIC}/") == synthetic:
            out.append(raw / rel)
    return out


def _lazy(module: str, flag: str):
    import importlib

    try:
        return importlib.import_module(f"bicimad.opendata.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bicimad.opendata.{module}":
            raise CommandError(f"{flag}: bicimad.opendata.{module} is not available in this installation") from None
        raise


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------

def run_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bicimad.io import write_json
    from bicimad.opendata import normalise
    from bicimad.opendata.rejects import IngestError, Rejects

    root = config.data_dir(args.data_dir).resolve()
    raw, processed = config.raw_dir(root), config.processed_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    manifest = _load_raw_manifest(raw)
    if args.synthetic and (args.paths or args.portal or args.live):
        raise CommandError("--synthetic builds tables from the synthetic city alone; ingest real sources separately")

    if args.synthetic:
        # The synthetic city is generated, not received: a new seed replaces the old files.
        manifest = {rel: entry for rel, entry in manifest.items() if not rel.startswith(f"{SYNTHETIC}/")}
        written = _lazy("synthetic", "--synthetic").write_city(raw, seed=args.seed)
        for p in written:
            _record_raw(raw, manifest, Path(p), f"synthetic city, seed {args.seed}")
    for path in args.paths or ():
        _copy_in(raw, manifest, path)
    if args.portal:
        start, sep, end = args.portal.partition(":")
        if not sep:
            raise CommandError(f"--portal {args.portal!r}: expected START:END as YYYY-MM:YYYY-MM")
        portal = _lazy("portal", "--portal")
        try:
            downloaded = portal.download(start, end or start, raw / "portal")
        except (portal.DownloadError, ValueError) as exc:
            raise CommandError(f"--portal {args.portal}: {exc}") from exc
        for p in downloaded:
            _record_raw(raw, manifest, Path(p), "EMT open-data portal")
    if args.live:
        live = _lazy("live", "--live")
        try:
            if args.live == "gbfs":
                p = live.fetch_gbfs(args.gbfs_url or live.BICIMAD_GBFS_URL, raw / "live")
            else:
                p = live.fetch_mobilitylabs(raw / "live")
        except live.LiveError as exc:
            raise CommandError(f"--live {args.live}: {exc}") from exc
        _record_raw(raw, manifest, Path(p), f"live {args.live}")
    write_json(_raw_manifest_path(raw), manifest)

    files = _dataset_files(raw, manifest, synthetic=args.synthetic)
    if not files:
        raise CommandError(f"nothing to ingest: {raw} holds no {'synthetic ' if args.synthetic else ''}raw files "
                           "(use --from PATH, --synthetic, --portal or --live)")
    for f in files:
        if not f.exists():
            raise CommandError(f"raw file {f} is in the manifest but missing; restore it or re-ingest its source")

    parts_manifest = normalise.load_manifest(processed)
    normalise.remove_stale_parts(processed)
    results = []
    show = not args.no_progress
    with tqdm(total=sum(f.stat().st_size for f in files), unit="B", unit_scale=True, desc="ingest",
              disable=not show, file=sys.stderr) as bar:
        for f in files:
            done = bar.n
            bar.set_postfix_str(f.name[-40:])
            try:
                rel = f.relative_to(raw).as_posix()
                results.append(normalise.read_to_parts(
                    f, rel, processed, parts_manifest, expected_sha256=manifest[rel]["sha256"],
                    progress=lambda pos, done=done: bar.update(done + pos - bar.n)))
            except IngestError as exc:
                raise CommandError(str(exc), EXIT_BAD_INPUT) from exc
            bar.update(done + f.stat().st_size - bar.n)

    rejects = Rejects()
    for r in results:
        part_rejects = processed / "parts" / f"{r.sha256[:16]}.rejects.csv"
        if part_rejects.exists():
            rejects.rows.extend(Rejects.read_csv(part_rejects).rows)
        rejects.counts.update({(r.source, reason): n for reason, n in r.rejected.items()})
    tables = normalise.build_tables(processed, results, rejects)
    rejects.write_csv(processed / "rejects.csv")

    failures = [r for r in results if r.reject_share > args.max_reject_share or (args.strict and r.rejected)]
    for line in rejects.summary_lines():
        print(line, file=sys.stderr)
    if failures:
        names = "; ".join(f"{r.source}: {sum(r.rejected.values())} rejected ({r.reject_share:.1%})" for r in failures)
        raise CommandError(f"bad input, processed tables left unchanged ({names}); see {processed / 'rejects.csv'}",
                           EXIT_BAD_INPUT)

    normalise.write_tables(processed, tables)
    counts = {name: len(df) for name, df in tables.items()}
    write_json(processed / "ingest.json", {
        "dataset": SYNTHETIC if args.synthetic else "emt",
        "built": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "counts": counts,
        "rejected": rejects.total(),
        "files": [{"source": r.source, "sha256": r.sha256, "format": r.format, "rows": r.rows,
                   "rejected": r.rejected, "warnings": r.warnings, "resumed": r.skipped} for r in results],
    })
    resumed = sum(r.skipped for r in results)
    print(f"ingested {len(results)} file(s) ({resumed} already read) into {processed}: "
          + ", ".join(f"{n:,} {name}" for name, n in counts.items())
          + f"; {rejects.total():,} record(s) rejected")
    return 0


# --------------------------------------------------------------------------------------------
# data summary
# --------------------------------------------------------------------------------------------

def run_summary(args: argparse.Namespace) -> int:
    from bicimad.opendata.summary import build_info, format_table, summarise

    processed = config.processed_dir(config.data_dir(args.data_dir))
    try:
        rows = summarise(processed)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(format_table(rows, build_info(processed)))
    return 0
