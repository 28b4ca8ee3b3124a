"""The raw store: ``raw/`` (immutable source files, sha256 manifest) and its quarantine.

``raw/manifest.json`` maps each file's path under ``raw/`` to its sha256, size, origin and
the time it was added. Files are copied in once and never replaced: a new version under a
known name is refused.

A file that ingest refuses (unreadable, too many rejected records, synthetic-city data among
real data) is *quarantined*: moved to ``raw/rejected/<name>`` with ``<name>.reason.txt``
beside it, and removed from the manifest, so it never blocks another source. The quarantine's
own ``raw/rejected/manifest.json`` remembers each file's sha256: the same content given again
is skipped (and said so) until ``bicimad data rejected --drop NAME`` removes it.

Copying in follows no symbolic link that points out of the source folder (those are listed
as skipped); names too long for the file system are shortened, keeping their start and
extension (which format detection reads) and adding a checksum.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bicimad.errors import EXIT_BAD_INPUT, EXIT_DATAERR, EXIT_USAGE, CommandError
from bicimad.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"
REJECTED = "rejected"
#: Longest file name (bytes) stored as it is; longer ones are shortened (the atomic writer's
#: temporary name adds about 20 bytes, and most file systems stop at 255).
MAX_NAME_BYTES = 200


@dataclass
class CopyReport:
    """What copying sources in did besides storing files."""

    links_skipped: list[str] = field(default_factory=list)  # symlinks out of the source folder
    quarantined_skipped: list[str] = field(default_factory=list)  # content already in quarantine
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (source, stored name) shortened


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _read_json(path: Path, what: str) -> dict:
    if not path.exists():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CommandError(f"{path}: unreadable {what} ({exc}); restore it from a backup, or delete it and ingest "
                           "the sources again", EXIT_DATAERR) from None
    if not isinstance(obj, dict):
        raise CommandError(f"{path}: unreadable {what} (expected a JSON object, got {type(obj).__name__}); restore "
                           "it from a backup, or delete it and ingest the sources again", EXIT_DATAERR)
    return obj


def load_manifest(raw: Path) -> dict:
    return _read_json(raw / "manifest.json", "raw manifest")


def save_manifest(raw: Path, manifest: dict) -> None:
    write_json(raw / "manifest.json", manifest)


def record(raw: Path, manifest: dict, stored: Path, origin: str) -> None:
    """Enter ``stored`` (a file under ``raw``) in the manifest; a changed file is refused."""
    rel = stored.relative_to(raw).as_posix()
    sha = sha256_file(stored)
    prior = manifest.get(rel)
    if prior and prior["sha256"] != sha:
        raise CommandError(f"raw file {stored} changed since it was recorded (sha256 {prior['sha256'][:12]} -> "
                           f"{sha[:12]}); raw data is immutable — restore it or remove its manifest entry", EXIT_BAD_INPUT)
    manifest[rel] = {"sha256": sha, "size": stored.stat().st_size, "origin": origin,
                     "added": prior["added"] if prior else _now()}


def _source_files(path: Path, report: CopyReport) -> list[Path]:
    """Files under ``path`` (hidden ones and documentation left out), never leaving it by a link."""
    if path.is_file():
        return [path]
    root = path.resolve()
    files = []
    for folder, dirs, names in os.walk(path, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            f = Path(folder) / name
            if name.startswith(".") or name.endswith(".md"):
                continue  # hidden files; documentation beside the data (PROVENANCE.md, README.md)
            if f.is_symlink() and root not in f.resolve().parents:
                report.links_skipped.append(f"{f} -> {os.readlink(f)}")
                continue
            if f.is_file():
                files.append(f)
        for d in list(dirs):
            if (Path(folder) / d).is_symlink():
                report.links_skipped.append(f"{Path(folder) / d} -> {os.readlink(Path(folder) / d)}")
    return files


def _short_name(name: str, sha: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext}" if dot and len(ext) <= 10 else ""
    head = (stem if dot and ext else name).encode("utf-8")[:100].decode("utf-8", "ignore")
    return f"{head}~{sha[:12]}{ext}"


def copy_in(raw: Path, manifest: dict, path: Path, quarantined: set[str]) -> CopyReport:
    """Copy a file or folder under ``raw/local/<name>/``, keeping relative paths.

    Identical files are skipped; content in ``quarantined`` (sha256s) is skipped and reported.
    """
    report = CopyReport()
    if not path.exists():
        raise CommandError(f"--from {path}: no such file or folder")
    path = Path(os.path.abspath(path))
    files = _source_files(path, report)
    if not files and not report.links_skipped:
        raise CommandError(f"--from {path}: no files")
    base = raw / "local" / _short_name(path.name, hashlib.sha256(path.name.encode("utf-8")).hexdigest())
    for f in files:
        if raw.resolve() in f.resolve().parents:
            _record_in_place(raw, manifest, f.resolve(), quarantined, report)
            continue
        sha = sha256_file(f)
        if sha in quarantined:
            report.quarantined_skipped.append(str(f))
            continue
        rel = f.relative_to(path) if path.is_dir() else Path(f.name)
        short = Path(*rel.parts[:-1], _short_name(rel.name, sha))
        if short.name != rel.name:
            report.renamed.append((str(f), short.name))
        stored = base / short if path.is_dir() else raw / "local" / short
        if stored.exists():
            if sha256_file(stored) != sha:
                raise CommandError(f"--from {f}: differs from {stored}, already in raw/ under that name; raw data "
                                   "is immutable, so give the new version another name", EXIT_BAD_INPUT)
        else:
            with atomic_path(stored) as tmp:
                shutil.copyfile(f, tmp)
                tmp.chmod(0o444)  # raw is immutable
        record(raw, manifest, stored, str(f))
    return report


def _record_in_place(raw: Path, manifest: dict, f: Path, quarantined: set[str], report: CopyReport) -> None:
    """A file given with --from that is already under raw/ (not in the quarantine)."""
    if (raw / REJECTED) in f.parents:
        return
    if sha256_file(f) in quarantined:
        report.quarantined_skipped.append(str(f))
        return
    record(raw, manifest, f, str(f))


def dataset_files(raw: Path, manifest: dict, generated: bool) -> list[Path]:
    """The raw files of one dataset: the generated synthetic city, or every received file."""
    return [raw / rel for rel in sorted(manifest) if rel.startswith(f"{SYNTHETIC}/") == generated]


# --------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------

def _quarantine_dir(raw: Path) -> Path:
    return raw / REJECTED


def load_quarantine(raw: Path) -> dict:
    """name -> {sha256, rel, origin, reason, quarantined} of every quarantined file."""
    return _read_json(_quarantine_dir(raw) / "manifest.json", "quarantine manifest")


def quarantined_shas(raw: Path) -> set[str]:
    return {entry["sha256"] for entry in load_quarantine(raw).values() if isinstance(entry, dict) and "sha256" in entry}


def quarantine(raw: Path, manifest: dict, rel: str, reason: str) -> Path:
    """Move ``raw/<rel>`` to ``raw/rejected/<name>`` with its reason, out of the manifest."""
    entry = manifest.pop(rel)
    folder = _quarantine_dir(raw)
    folder.mkdir(parents=True, exist_ok=True)
    entries = load_quarantine(raw)
    name = Path(rel).name
    if name in entries or (folder / name).exists():
        name = _short_name(f"{entry['sha256'][:12]}-{name}", entry["sha256"])
    target = folder / name
    source = raw / rel
    if source.exists():
        os.replace(source, target)
    when = _now()
    (folder / f"{name}.reason.txt").write_text(
        f"file: {raw / rel}\norigin: {entry.get('origin')}\nsha256: {entry['sha256']}\nquarantined: {when}\n"
        f"reason: {reason}\n", encoding="utf-8")
    entries[name] = {"sha256": entry["sha256"], "rel": rel, "origin": entry.get("origin"), "reason": reason,
                     "quarantined": when}
    write_json(folder / "manifest.json", entries)
    log.warning("%s quarantined as %s: %s", raw / rel, target, reason)
    return target


def drop_quarantined(raw: Path, names: list[str] | None) -> list[str]:
    """Delete quarantined files (all when ``names`` is None); returns the names dropped."""
    entries = load_quarantine(raw)
    chosen = sorted(entries) if names is None else names
    unknown = [n for n in chosen if n not in entries]
    if unknown:
        raise CommandError(f"not in the quarantine ({_quarantine_dir(raw)}): {', '.join(unknown)}; "
                           f"quarantined: {', '.join(sorted(entries)) or 'none'}", EXIT_USAGE)
    folder = _quarantine_dir(raw)
    for name in chosen:
        for p in (folder / name, folder / f"{name}.reason.txt"):
            if p.exists():
                p.chmod(0o644)
                p.unlink()
        del entries[name]
    write_json(folder / "manifest.json", entries)
    return chosen
