"""Download EMT's monthly BiciMAD files from the open-data portal.

The portal has no URL pattern per month. Its catalogue page ("Datos generales") links every file
as ``/getattachment/<guid>/<file name>.aspx``, so :func:`download` reads that page's links and
picks files by name (:class:`PortalConfig` holds the name patterns, with the portal's real ones as
defaults), then fetches each with one ``requests`` session:

- timeouts on connect and read; retries with exponential backoff on connection errors, dropped
  or slow responses and 5xx answers (a 4xx is final);
- a partial file is resumed with an HTTP ``Range`` request: a ``206`` answer is appended, a
  ``200`` (the server ignores ranges) restarts the file cleanly;
- bytes go to ``.<name>.part`` beside the target and are renamed into place only when complete;
- ``dest/manifest.json`` records url, size and sha256 per file; a file whose size and sha256
  still match its manifest entry is skipped.

Files land in ``dest/<kind>/<file name><ext>``; the extension comes from the server's
``Content-Disposition`` or, failing that, from the first bytes (EMT serves zip archives, a few
months as rar, some as plain JSON).
"""

from __future__ import annotations

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

from bicimad.io import sha256_file, write_json

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
    """Further attempts after a failed one (connection error, drop, timeout, 5xx)."""
    backoff_s: float = 1.0
    """Wait before the first retry; it doubles with each further retry."""
    chunk_bytes: int = 1 << 16
    """Bytes read and written at a time (a dropped connection loses at most the chunk in flight)."""
    user_agent: str = "bicimad-ingest (+https://opendata.emtmadrid.es)"


class DownloadError(RuntimeError):
    """A file or the catalogue could not be fetched; the message names the URL and the cause."""


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


def _attempts(url: str, retries: int, backoff_s: float, sleep: Callable[[float], None]):
    """Yield attempt numbers, sleeping with exponential backoff between them."""
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff_s * 2 ** (attempt - 1)
            log.info("retrying %s in %.2f s (attempt %d of %d)", url, delay, attempt + 1, retries + 1)
            sleep(delay)
        yield attempt


def get_with_retries(session, url: str, *, timeout: tuple[float, float], retries: int, backoff_s: float,
                     headers: dict | None = None, sleep: Callable[[float], None] = time.sleep):
    """GET ``url``, retrying connection errors, timeouts and 5xx answers with exponential backoff.

    Returns the first response below 500 (the caller judges 4xx); raises :class:`DownloadError`
    naming the URL and the last cause after ``retries`` further attempts. Request headers are never
    part of a message.
    """
    import requests

    last = None
    for _ in _attempts(url, retries, backoff_s, sleep):
        try:
            response = session.get(url, headers=headers, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code < 500:
            return response
        last = f"HTTP {response.status_code}"
    raise DownloadError(f"{url}: gave up after {retries + 1} attempts ({last})")


class _Fetcher:
    """Fetches URLs with retries, backoff, resume and atomic rename."""

    def __init__(self, session, config: PortalConfig, sleep: Callable[[float], None]):
        import requests

        self.session, self.config, self.sleep = session, config, sleep
        self._retryable = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

    def _attempts(self, url: str):
        return _attempts(url, self.config.retries, self.config.backoff_s, self.sleep)

    def _get(self, url: str, **kwargs):
        return self.session.get(url, timeout=(self.config.connect_timeout_s, self.config.read_timeout_s), **kwargs)

    def text(self, url: str) -> str:
        response = get_with_retries(
            self.session, url, timeout=(self.config.connect_timeout_s, self.config.read_timeout_s),
            retries=self.config.retries, backoff_s=self.config.backoff_s, sleep=self.sleep,
        )
        if response.status_code >= 400:
            raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
        if response.encoding is None or response.encoding.lower() == "iso-8859-1":
            response.encoding = response.apparent_encoding or "utf-8"
        return response.text

    def file(self, url: str, part: Path, label: str) -> tuple[Path, str | None]:
        """Download ``url`` into ``part`` (resuming what is there); return it and the server's file name."""
        from tqdm import tqdm

        last = None
        server_name = None
        for _ in self._attempts(url):
            have = part.stat().st_size if part.exists() else 0
            # Identity encoding: byte ranges must count the bytes as stored, not a compressed stream.
            headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
            try:
                with self._get(url, headers=headers, stream=True) as response:
                    status = response.status_code
                    if status == 416 and have:  # our partial no longer fits the file: start again
                        part.unlink()
                        last = "HTTP 416 (range not satisfiable); restarting"
                        continue
                    if status >= 500:
                        last = f"HTTP {status}"
                        continue
                    if status >= 400:
                        raise DownloadError(f"{url}: HTTP {status} {response.reason}")
                    server_name = _disposition_name(response.headers.get("Content-Disposition")) or server_name
                    total = _expected_size(response)
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
                    with open(part, mode) as fh, tqdm(
                        total=total, initial=have, unit="B", unit_scale=True, desc=label,
                        leave=False, disable=None,
                    ) as bar:
                        for chunk in response.iter_content(self.config.chunk_bytes):
                            fh.write(chunk)
                            bar.update(len(chunk))
                    size = part.stat().st_size
                    if total is not None and size != total:
                        last = f"incomplete body: {size} of {total} bytes"
                        continue
                    return part, server_name
            except self._retryable as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise DownloadError(f"{url}: gave up after {self.config.retries + 1} attempts ({last})")


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
    import json

    if not path.exists():
        return {"files": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DownloadError(f"{path}: manifest is not valid JSON ({exc}); move it aside to start afresh") from exc
    manifest.setdefault("files", {})
    return manifest


def _complete(dest: Path, record: dict | None) -> Path | None:
    """The recorded file if it is still there with the recorded size and sha256."""
    if not record:
        return None
    path = dest / record["path"]
    if path.is_file() and path.stat().st_size == record["size"] and sha256_file(path) == record["sha256"]:
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
    catalogue or a file cannot be fetched; files completed before that stay recorded.
    """
    import requests

    config = config or PortalConfig()
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {unknown}; known: {', '.join(KINDS)}")
    months = _months(start, end)
    dest = Path(dest)
    catalogue_url = catalogue_url or config.catalogue_url
    own_session = session is None
    session = session or requests.Session()
    session.headers.setdefault("User-Agent", config.user_agent)
    fetch = _Fetcher(session, config, sleep)
    try:
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
    finally:
        if own_session:
            session.close()
