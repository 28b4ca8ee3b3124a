"""Download EMT's monthly BiciMAD files from the open-data portal.

The portal has no URL pattern per month. Its catalogue page ("Datos generales") links every file
as ``/getattachment/<guid>/<file name>.aspx``, so :func:`download` reads that page's links and
picks files by name (:class:`PortalConfig` holds the name patterns, with the portal's real ones as
defaults), then fetches each with one ``requests`` session:

- timeouts on connect and read; retries with exponential backoff on connection errors, dropped
  or slow responses, 429 and 5xx answers (a ``Retry-After`` is honoured; another 4xx is final),
  through urllib3's ``Retry`` on the session's adapter (:mod:`bicimad.opendata.http`);
- a partial file is resumed with an HTTP ``Range`` request: a ``206`` answer is appended, a
  ``200`` (the server ignores ranges) restarts the file cleanly;
- a file above ``max_file_bytes`` (announced or counted) is refused and its partial removed;
- bytes go to ``.<name>.part`` beside the target and are renamed into place only when complete;
- ``dest/manifest.json`` records url, size and sha256 per file; a file whose size and sha256
  still match its manifest entry is skipped.

Files land in ``dest/<kind>/<file name><ext>``; the extension comes from the server's
``Content-Disposition`` or, failing that, from the first bytes (EMT serves zip archives, a few
months as rar, some as plain JSON).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests

from bicimad.io import sha256_file, write_json
from bicimad.opendata.http import RETRY_STATUSES, Client, DownloadError, check_url

log = logging.getLogger(__name__)

KINDS = ("trips", "snapshots")


@dataclass(frozen=True)
class PortalConfig:
    """Where the portal is and how its files are named; the defaults are the real portal's."""

    catalogue_url: str = "https://opendata.emtmadrid.es/Datos-estaticos/Datos-generales-(1)"
    """The page that links every monthly BiciMAD file."""
    trip_patterns: tuple[str, ...] = (
        r"(?P<year>\d{4})(?P<month>\d{2})_Usage_Bicimad",  # 2017 – mid 2019, mongoexport JSON lines
        r"(?P<year>\d{4})(?P<month>\d{2})_movements",  # mid 2019 – 2020, compact JSON lines (UTC)
        r"trips_(?P<yy>\d{2})_(?P<month>\d{2})_[A-Za-z]+",  # 2021 on, CSV
    )
    """File-name patterns (regular expressions, matched case-insensitively against the whole link
    name without ``.aspx`` and an optional ``-csv``/``-json`` suffix) of monthly trip files; each
    names the month and either ``year`` or two-digit ``yy``."""
    snapshot_patterns: tuple[str, ...] = (
        r"Bicimad_Estacions_(?P<year>\d{4})(?P<month>\d{2})",  # 2018 – mid 2019
        r"(?P<year>\d{4})(?P<month>\d{2})_stations_madrid",  # mid 2019 – 2020
        r"(?P<year>\d{4})(?P<month>\d{2})",  # later months, linked as e.g. '202210-json'
    )
    """File-name patterns of the monthly hourly station-snapshot files (same rules)."""
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    """Longest silence while reading a response before the attempt counts as failed."""
    retries: int = 5
    """Further attempts after a failed one (connection error, drop, timeout, 429, 5xx), per file."""
    backoff_s: float = 1.0
    """Wait before the first retry; it doubles with each further retry."""
    max_wait_s: float = 120.0
    """Longest wait between two attempts, a server's ``Retry-After`` included."""
    max_file_bytes: int = 4 << 30
    """Largest file accepted (4 GiB; EMT's monthly files are far smaller): a larger one is refused,
    announced or not, and its partial file removed."""
    max_page_bytes: int = 16 << 20
    """Largest catalogue page accepted."""
    chunk_bytes: int = 1 << 16
    """Bytes read and written at a time (a dropped connection loses at most the chunk in flight)."""
    user_agent: str = "bicimad-ingest (+https://opendata.emtmadrid.es)"


@dataclass(frozen=True)
class CatalogueEntry:
    """One monthly file linked from the catalogue page."""

    kind: str
    month: str
    """'YYYY-MM'."""
    name: str
    """The file name as linked, without '.aspx'."""
    url: str


class _LinkParser(HTMLParser):
    """Collects the href of every <a> tag; tolerant of broken markup."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag.lower() == "a":
            for key, value in attrs:
                if key.lower() == "href" and value:
                    self.hrefs.append(value.strip())


def _link_name(url: str) -> str:
    """The file name a portal link carries: last path segment, unquoted, without '.aspx'."""
    segment = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    return re.sub(r"\.aspx$", "", segment, flags=re.IGNORECASE)


def _match_month(name: str, patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        m = re.fullmatch(rf"(?:{pattern})(?:[-_.](?:csv|json|zip|rar|txt))?", name, flags=re.IGNORECASE)
        if m:
            groups = m.groupdict()
            year = int(groups["year"]) if groups.get("year") else 2000 + int(groups["yy"])
            month = int(groups["month"])
            if 1 <= month <= 12:
                return f"{year:04d}-{month:02d}"
    return None


def parse_catalogue(html: str, base_url: str, config: PortalConfig | None = None) -> list[CatalogueEntry]:
    """Monthly trip and snapshot files linked from a catalogue page, in page order, without duplicates.

    Links are resolved against ``base_url``; anything whose name matches no pattern is ignored.
    """
    config = config or PortalConfig()
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    entries, seen = [], set()
    for href in parser.hrefs:
        url = urljoin(base_url, href)
        if urlsplit(url).scheme not in ("http", "https"):
            continue
        name = _link_name(url)
        for kind, patterns in (("trips", config.trip_patterns), ("snapshots", config.snapshot_patterns)):
            month = _match_month(name, patterns)
            if month and (kind, name.lower()) not in seen:
                seen.add((kind, name.lower()))
                entries.append(CatalogueEntry(kind, month, name, url))
                break
    return entries


def _months(start: str, end: str) -> list[str]:
    def parse(label, value):
        try:
            return datetime.strptime(value, "%Y-%m")
        except (TypeError, ValueError):
            raise ValueError(f"{label} month must look like 'YYYY-MM', got {value!r}") from None

    first, last = parse("start", start), parse("end", end)
    if last < first:
        raise ValueError(f"end month {end} is before start month {start}")
    months, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


class _Fetcher:
    """Fetches the catalogue page and the files: retries, resume, size limit, atomic rename."""

    def __init__(self, client: Client, config: PortalConfig):
        self.client, self.config = client, config
        self._broken = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

    def text(self, url: str) -> str:
        """The catalogue page as text (at most ``max_page_bytes``)."""
        response, body = self.client.fetch(url, limit=self.config.max_page_bytes, what="catalogue page")
        if response.status_code >= 400:
            raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
        encoding = response.encoding if response.encoding and response.encoding.lower() != "iso-8859-1" else None
        if encoding:
            return body.decode(encoding, errors="replace")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode("cp1252", errors="replace")

    def _too_big(self, url: str, part: Path, size: int, announced: bool) -> DownloadError:
        """Drop the partial file (it can never complete) and name the limit."""
        part.unlink(missing_ok=True)
        what = "is" if announced else "is larger than"
        return DownloadError(f"{url}: the file {what} {size} bytes, above the limit of {self.config.max_file_bytes} "
                             "bytes (PortalConfig.max_file_bytes); nothing was kept")

    def file(self, url: str, part: Path, label: str) -> tuple[Path, str | None]:
        """Download ``url`` into ``part`` (resuming what is there); return it and the server's file name.

        ``retries + 1`` attempts in all, whether they fail before the answer (urllib3's Retry) or in
        the middle of the body (counted here, then resumed with a ``Range`` request).
        """
        from tqdm import tqdm

        limit = self.config.max_file_bytes
        retry = None
        server_name = None
        while True:
            have = part.stat().st_size if part.exists() else 0
            # Identity encoding: byte ranges must count the bytes as stored, not a compressed stream.
            headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
            response, retry = self.client.get(url, retry=retry, headers=headers, stream=True)
            try:
                with response:
                    status = response.status_code
                    if status == 416 and have:  # our partial no longer fits the file: start again
                        part.unlink()
                        retry = self.client.fail(url, retry, "HTTP 416 (range not satisfiable); restarting")
                        continue
                    if status in RETRY_STATUSES:
                        raise self.client.gave_up(url, response)
                    if status >= 400:
                        raise DownloadError(f"{url}: HTTP {status} {response.reason}")
                    server_name = _disposition_name(response.headers.get("Content-Disposition")) or server_name
                    total = _expected_size(response)
                    if total is not None and total > limit:
                        raise self._too_big(url, part, total, announced=True)
                    if status == 206:
                        start = _range_start(response.headers.get("Content-Range"))
                        if start != have:
                            raise DownloadError(f"{url}: server resumed at byte {start}, expected {have}")
                        mode = "ab"
                    else:  # 200: the server ignored the range (or there was none): restart cleanly
                        if have:
                            log.info("%s: server does not resume; restarting from byte 0", url)
                        have, mode = 0, "wb"
                    part.parent.mkdir(parents=True, exist_ok=True)
                    size = have
                    with open(part, mode) as fh, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, desc=label,
                        leave=False, disable=None,
                    ) as bar:
                        for chunk in response.iter_content(self.config.chunk_bytes):
                            size += len(chunk)
                            if size > limit:
                                break
                            fh.write(chunk)
                            bar.update(len(chunk))
                    if size > limit:
                        raise self._too_big(url, part, limit, announced=False)
                    size = part.stat().st_size
                    if total is not None and size != total:
                        retry = self.client.fail(url, retry, f"incomplete body: {size} of {total} bytes")
                        continue
                    return part, server_name
            except self._broken as exc:
                retry = self.client.fail(url, retry, f"{type(exc).__name__}: {exc}")


def _expected_size(response) -> int | None:
    """The full file's size, from Content-Range (206) or Content-Length (200), where given."""
    if response.status_code == 206:
        m = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range", ""))
        return int(m.group(1)) if m else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() and "Content-Encoding" not in response.headers else None


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-", content_range or "")
    return int(m.group(1)) if m else None


def _disposition_name(header: str | None) -> str | None:
    if not header:
        return None
    m = re.search(r"filename\*?=(?:UTF-8'')?\"?([^\";]+)\"?", header, flags=re.IGNORECASE)
    return Path(unquote(m.group(1))).name if m else None


def _sniff_extension(path: Path) -> str:
    """The extension the first bytes imply: EMT serves zip, rar, 7z, JSON and CSV."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04"):
        return ".zip"
    if head.startswith(b"Rar!"):
        return ".rar"
    if head.startswith(b"7z\xbc\xaf"):
        return ".7z"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return ".json"
    return ".csv" if b"\x00" not in head else ".bin"


def _load_manifest(path: Path) -> dict:
    if not path.exists():
        return {"files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise DownloadError(f"{path}: manifest is not valid JSON ({exc}); move it aside to start afresh") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.setdefault("files", {}), dict):
        raise DownloadError(f"{path}: manifest is not an object with a 'files' object; move it aside to start afresh")
    return manifest


def _complete(dest: Path, record) -> Path | None:
    """The recorded file if it is still there, inside ``dest``, with the recorded size and sha256."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return None
    path = dest / record["path"]
    if not path.resolve().is_relative_to(dest.resolve()):
        return None
    if path.is_file() and path.stat().st_size == record.get("size") and sha256_file(path) == record.get("sha256"):
        return path
    return None


def download(
    start: str,
    end: str,
    dest: Path,
    *,
    kinds=KINDS,
    catalogue_url: str | None = None,
    session=None,
    config: PortalConfig | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Download the monthly files of ``kinds`` for months ``start``..``end`` ('YYYY-MM', inclusive).

    Returns the local paths of every requested file (downloaded now or already complete). Months
    the catalogue does not list are logged as warnings. Raises :class:`DownloadError` when the
    catalogue or a file cannot be fetched, or a file is above ``config.max_file_bytes``; files
    completed before that stay recorded. ``session`` (default: a new one) gets the retrying adapter
    mounted; ``sleep`` is what waits between attempts.
    """
    config = config or PortalConfig()
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {unknown}; known: {', '.join(KINDS)}")
    months = _months(start, end)
    dest = Path(dest)
    catalogue_url = check_url(catalogue_url or config.catalogue_url, "portal catalogue")
    client = Client(session, connect_timeout_s=config.connect_timeout_s, read_timeout_s=config.read_timeout_s,
                    retries=config.retries, backoff_s=config.backoff_s, max_wait_s=config.max_wait_s, sleep=sleep,
                    user_agent=config.user_agent)
    fetch = _Fetcher(client, config)
    with client:
        entries = parse_catalogue(fetch.text(catalogue_url), catalogue_url, config)
        wanted = [e for e in entries if e.kind in kinds and e.month in months]
        for kind in kinds:
            missing = sorted(set(months) - {e.month for e in wanted if e.kind == kind})
            if missing:
                log.warning("the catalogue %s lists no %s file for %s", catalogue_url, kind, ", ".join(missing))
        manifest_path = dest / "manifest.json"
        manifest = _load_manifest(manifest_path)
        paths = []
        for entry in wanted:
            key = f"{entry.kind}/{entry.name}"
            done = _complete(dest, manifest["files"].get(key))
            if done:
                log.info("%s: already complete, skipped", done)
                paths.append(done)
                continue
            folder = dest / entry.kind
            part, server_name = fetch.file(entry.url, folder / f".{entry.name}.part", entry.name)
            ext = Path(server_name).suffix if server_name and Path(server_name).suffix else _sniff_extension(part)
            target = folder / f"{entry.name}{ext.lower()}"
            os.replace(part, target)
            manifest["files"][key] = {
                "kind": entry.kind, "month": entry.month, "url": entry.url, "path": target.relative_to(dest).as_posix(),
                "size": target.stat().st_size, "sha256": sha256_file(target),
                "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            write_json(manifest_path, manifest)
            paths.append(target)
        return paths
