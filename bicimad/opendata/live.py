"""The live station state, stored as one more EMT snapshot line.

A nightly plan starts from the network's state now. Two sources give it:

- **GBFS** (the bike-share standard; BiciMAD and most other systems publish it):
  ``station_information`` (where and how big) joined with ``station_status`` (bikes and docks
  now), found through the ``gbfs.json`` discovery file or side by side under a base URL;
- **EMT MobilityLabs** (``openapi.emtmadrid.es``): log in with credentials from the environment,
  then read the BiciMAD station list with the access token.

Either way the result is written as ONE line in EMT's snapshot JSON-lines format,
``{"_id": "<naive local time>", "stations": [13 EMT fields per station]}``, to
``dest_dir/<source>/<YYYYmmddTHHMMSS>.json``, atomically, so the readers of EMT's monthly
snapshot files read it unchanged. A stored snapshot is never replaced: the same content again is
not stored twice, other content with the same time gets ``<YYYYmmddTHHMMSS>-<sha256 prefix>.json``.

HTTP goes through :class:`bicimad.opendata.http.Client` (urllib3's ``Retry`` on the session's
adapter); only ``http``/``https`` URLs are fetched and each answer is capped at
``HttpPolicy.max_body_bytes``.

Credentials and tokens never appear in logs, files or error messages: errors carry the URL, the
HTTP status and the API's own code only, scrubbed of every secret before any cut to length, and
are raised without the underlying exception chained. Authenticated calls never follow a redirect
to another origin (scheme, host, port) than the configured one, so credentials reach no other host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from bicimad.config import TZ
from bicimad.opendata.http import Client, DownloadError, check_url, origin

log = logging.getLogger(__name__)


class LiveError(RuntimeError):
    """The live state could not be fetched or understood; the message holds no secret."""


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retries for the live APIs (small: a nightly run should not hang on them)."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    retries: int = 3
    """Further attempts after a failed one (connection error, timeout, broken body, 429, 5xx)."""
    backoff_s: float = 1.0
    """Wait before the first retry; it doubles with each further retry."""
    max_wait_s: float = 30.0
    """Longest wait between two attempts, a server's ``Retry-After`` included."""
    max_body_bytes: int = 32 << 20
    """Largest answer accepted (BiciMAD's station feeds are about 100 kB)."""

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)

    def client(self, session=None, sleep: Callable[[float], None] = time.sleep) -> Client:
        """An HTTP client with these timeouts and retries (``session`` gets the adapter mounted)."""
        return Client(session, connect_timeout_s=self.connect_timeout_s, read_timeout_s=self.read_timeout_s,
                      retries=self.retries, backoff_s=self.backoff_s, max_wait_s=self.max_wait_s, sleep=sleep)


@dataclass(frozen=True)
class MobilityLabsConfig:
    """Endpoints of EMT's MobilityLabs API (the defaults are the public v2 ones)."""

    base_url: str = "https://openapi.emtmadrid.es"
    login_path: str = "/v2/mobilitylabs/user/login/"
    """GET with headers ``X-ClientId`` + ``passKey`` (or ``email`` + ``password``); answers
    ``{"code": "00"|"01", "data": [{"accessToken": ...}]}``."""
    stations_path: str = "/v2/transport/bicimad/stations/"
    """GET with header ``accessToken``; answers ``{"code": "00", "data": [station, ...]}``."""


#: BiciMAD's public GBFS discovery file (the system operator's feed since 2023).
BICIMAD_GBFS_URL = "https://madrid.publicbikesystem.net/customer/gbfs/v2/gbfs.json"

#: Environment variables holding MobilityLabs credentials, as (variable, request header) pairs;
#: the first complete pair wins.
CREDENTIAL_ENV = (
    (("EMT_CLIENT_ID", "X-ClientId"), ("EMT_PASS_KEY", "passKey")),
    (("EMT_EMAIL", "email"), ("EMT_PASSWORD", "password")),
)
#: MobilityLabs answer codes that mean success ("00" ok, "01" token issued or extended).
OK_CODES = ("00", "01")
#: Longest server text (after masking secrets) quoted in an error message.
SERVER_TEXT_CHARS = 200
#: Same-origin redirects an authenticated call follows at most.
MAX_REDIRECTS = 5
#: Plausible GBFS ``last_updated`` times: from this floor to :data:`MAX_AHEAD` past the clock.
LAST_UPDATED_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# EMT snapshot records
# ---------------------------------------------------------------------------------------------

def _light(bikes: int, capacity: int, available: bool) -> int:
    """EMT's traffic light: 0 few bikes, 1 many, 2 in between, 3 not available."""
    if not available:
        return 3
    share = bikes / capacity if capacity else 0.0
    return 0 if share < 0.3 else 1 if share > 0.7 else 2


def emt_station_record(*, station_id: int, number: str, name: str, address: str, lat: float, lon: float,
                 capacity: int, bikes: int, free: int, active: bool, available: bool, reserved: int = 0) -> dict:
    """The 13 fields of an EMT station record, in EMT's key order (shared with the synthetic city)."""
    return {
        "activate": int(active), "name": name, "reservations_count": int(reserved),
        "light": _light(bikes, capacity, available and active), "total_bases": int(capacity),
        "free_bases": int(free), "number": number, "longitude": f"{lon:.7f}", "no_available": int(not available),
        "address": address, "latitude": f"{lat:.7f}", "dock_bikes": int(bikes), "id": int(station_id),
    }


def _write_snapshot(dest_dir: Path, source: str, when: datetime, stations: list[dict]) -> Path:
    """Store one EMT snapshot line; ``when`` is tz-aware and stored as naive Madrid time.

    The file is ``<source>/<YYYYmmddTHHMMSS>.json``. Raw files are never replaced: if that name
    holds the same bytes, nothing is written and its path is returned; if it holds other bytes,
    the snapshot goes to ``<YYYYmmddTHHMMSS>-<first 12 hex digits of its sha256>.json``.
    """
    local = when.astimezone(ZoneInfo(TZ)).replace(tzinfo=None)
    record = {"_id": local.isoformat(timespec="microseconds"), "stations": stations}
    data = (json.dumps(record) + "\n").encode("utf-8")
    folder = Path(dest_dir) / source
    stem = f"{local:%Y%m%dT%H%M%S}"
    digest = hashlib.sha256(data).hexdigest()[:12]
    for path in (folder / f"{stem}.json", folder / f"{stem}-{digest}.json"):
        if path.exists() or not _create_new(path, data):
            if path.read_bytes() == data:
                log.info("%s: the same snapshot at %s is already stored in %s", source, record["_id"], path)
                return path
            continue
        log.info("%s: %d stations at %s -> %s", source, len(stations), record["_id"], path)
        return path
    raise LiveError(f"{folder}: {stem}.json and {stem}-{digest}.json both hold other snapshots; nothing was replaced")


def _create_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if no file is there; False if one is (never replaced).

    The bytes go to a temporary file that is hard-linked into place, so ``path`` appears complete
    or not at all; where the file system has no hard links, an exclusive create is used.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here: exclusive create instead
            try:
                with open(path, "xb") as fh:
                    fh.write(data)
            except FileExistsError:
                return False
        return True
    finally:
        os.unlink(tmp)


def _json(body: bytes, status: int, url: str, what: str) -> dict:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise LiveError(f"{url}: {what} is not JSON (HTTP {status})") from None
    if not isinstance(parsed, dict):
        raise LiveError(f"{url}: {what} is not a JSON object")
    return parsed


def _count(record: dict, key: str, default=None) -> int:
    """A non-negative whole count from a station record (``default`` when absent or null)."""
    value = record.get(key)
    if value is None:
        if default is None:
            raise KeyError(key)
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{key!r} is {value!r}, not a count")
    number = float(value)
    if not math.isfinite(number) or number != int(number) or number < 0 or number > 1_000_000:
        raise ValueError(f"{key!r} is {value!r}, not a count between 0 and 1000000")
    return int(number)


def _coordinate(value, key: str, bound: float) -> float:
    number = float(value)
    if not math.isfinite(number) or abs(number) > bound:
        raise ValueError(f"{key!r} is {value!r}, outside -{bound:g}..{bound:g}")
    return number


# ---------------------------------------------------------------------------------------------
# GBFS
# ---------------------------------------------------------------------------------------------

def _gbfs_station_id(raw) -> int:
    """GBFS ids are strings; BiciMAD's are EMT's integer ids. Others get a stable 31-bit number."""
    text = str(raw)
    return int(text) if text.isdigit() else zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


def _gbfs_text(value) -> str:
    """GBFS v3 localises names as [{"text", "language"}]; v2 has plain strings."""
    if isinstance(value, list):
        by_language = {item.get("language"): item.get("text", "") for item in value if isinstance(item, dict)}
        return by_language.get("es") or by_language.get("en") or next(iter(by_language.values()), "")
    return "" if value is None else str(value)


def _gbfs_feeds(discovery: dict, url: str) -> dict[str, str]:
    """Feed name -> URL from a gbfs.json (v2: data.<language>.feeds; v3: data.feeds)."""
    try:
        data = discovery.get("data") or {}
        feeds = data.get("feeds")
        if feeds is None:
            languages = [lang for lang in ("es", "en") if lang in data] + sorted(set(data) - {"es", "en"})
            feeds = data[languages[0]].get("feeds", []) if languages else []
        return {str(f["name"]): str(f["url"]) for f in feeds if isinstance(f, dict) and "name" in f and "url" in f}
    except (AttributeError, TypeError):
        raise LiveError(f"{url}: GBFS discovery has no data.feeds or data.<language>.feeds list") from None


def fetch_gbfs(base_url: str, dest_dir: Path, *, session=None, policy: HttpPolicy | None = None,
               sleep: Callable[[float], None] = time.sleep) -> Path:
    """Fetch a GBFS system's station state and store it as one EMT snapshot under ``dest_dir/gbfs/``.

    ``base_url`` is a ``gbfs.json`` discovery URL (BiciMAD's: :data:`BICIMAD_GBFS_URL`), or a
    folder URL holding ``gbfs.json`` or the ``station_information`` and ``station_status`` feeds
    side by side (with or without ``.json``); it and every feed URL must be http(s). The snapshot
    time is the status feed's ``last_updated`` (the fetch time when it has none); an implausible
    one (before 2000, more than :data:`MAX_AHEAD` ahead, not a number or RFC 3339 time) is refused.
    Stations missing from either feed are left out; a station with a bad field fails the fetch.
    """
    policy = policy or HttpPolicy()

    def get(url: str, what: str, missing_ok: bool = False) -> dict | None:
        try:
            check_url(url, f"GBFS {what}")
            response, body = client.fetch(url, limit=policy.max_body_bytes, what=f"GBFS {what} feed")
        except DownloadError as exc:
            raise LiveError(f"GBFS {what}: {exc}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise LiveError(f"GBFS {what}: {url}: HTTP {response.status_code}")
        return _json(body, response.status_code, url, f"GBFS {what}")

    try:
        check_url(base_url, "GBFS")
    except DownloadError as exc:
        raise LiveError(str(exc)) from None
    with policy.client(session, sleep) as client:
        folder = base_url if base_url.endswith("/") else base_url + "/"
        discovery_url = base_url if base_url.endswith(".json") else urljoin(folder, "gbfs.json")
        discovery = get(discovery_url, "discovery", missing_ok=not base_url.endswith(".json"))
        feeds = _gbfs_feeds(discovery, discovery_url) if discovery else {}

        def feed(name: str) -> tuple[str, dict]:
            if name in feeds:
                return feeds[name], get(feeds[name], name)
            # No discovery: the feeds side by side, named with '.json' or (as some systems do) without.
            url = urljoin(folder, f"{name}.json")
            body = get(url, name, missing_ok=True)
            if body is None:
                url = urljoin(folder, name)
                body = get(url, name)
            return url, body

        info_url, info = feed("station_information")
        status_url, status = feed("station_status")

    when = _gbfs_time(status.get("last_updated"), f"GBFS station_status {status_url}")
    return _write_snapshot(dest_dir, "gbfs", when, _gbfs_stations(info, status, info_url, status_url))


def _gbfs_stations(info: dict, status: dict, info_url: str, status_url: str) -> list[dict]:
    """EMT station records from the two GBFS feeds, in status order; a bad field raises LiveError."""
    try:
        info_by_id = {str(s["station_id"]): s for s in info["data"]["stations"]}
        status_list = list(status["data"]["stations"])
    except (KeyError, TypeError):
        raise LiveError(f"{info_url} / {status_url}: no data.stations list (not a GBFS station feed)") from None
    stations = []
    for k, st in enumerate(status_list):
        try:
            sid = str(st["station_id"])
            inf = info_by_id.get(sid)
            if inf is None:
                continue
            bikes = _count(st, "num_bikes_available" if "num_bikes_available" in st else "num_vehicles_available", 0)
            free = _count(st, "num_docks_available", 0)
            broken = _count(st, "num_bikes_disabled" if "num_bikes_disabled" in st else "num_vehicles_disabled", 0)
            capacity = (_count(inf, "capacity") if inf.get("capacity") else
                        bikes + free + broken + _count(st, "num_docks_disabled", 0))
            stations.append(emt_station_record(
                station_id=_gbfs_station_id(sid), number=str(inf.get("short_name") or sid),
                name=_gbfs_text(inf.get("name")), address=_gbfs_text(inf.get("address")),
                lat=_coordinate(inf["lat"], "lat", 90), lon=_coordinate(inf["lon"], "lon", 180),
                capacity=capacity, bikes=bikes, free=free,
                active=bool(st.get("is_installed", True)),
                available=bool(st.get("is_renting", True)) and bool(st.get("is_returning", True)),
                reserved=_count(st, "num_bikes_reserved", 0),
            ))
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            sid = st.get("station_id") if isinstance(st, dict) else None
            raise LiveError(f"{status_url}: station record {k} (station_id {sid!r}): bad or missing field {exc}") from None
    if not stations:
        raise LiveError(f"{status_url}: no station appears in both station_information and station_status")
    return stations


def _gbfs_time(value, feed: str, now: datetime | None = None) -> datetime:
    """GBFS ``last_updated``: epoch seconds (v1, v2) or RFC 3339 with an offset (v3); now when absent.

    Anything else, or a time before :data:`LAST_UPDATED_FLOOR` or more than :data:`MAX_AHEAD` past
    ``now``, raises :class:`LiveError` naming ``feed`` and the field.
    """
    now = now or datetime.now(UTC)
    if value is None:
        return now
    when = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        floor, ceiling = LAST_UPDATED_FLOOR.timestamp(), (now + MAX_AHEAD).timestamp()
        if floor <= value <= ceiling:
            when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None and LAST_UPDATED_FLOOR <= parsed <= now + MAX_AHEAD:
            when = parsed
    if when is None:
        raise LiveError(f"{feed}: last_updated {value!r} is not a plausible time (expected epoch seconds or "
                        f"RFC 3339 with an offset, from {LAST_UPDATED_FLOOR:%Y-%m-%d} to {MAX_AHEAD.days} day "
                        f"past now)")
    return when


# ---------------------------------------------------------------------------------------------
# EMT MobilityLabs
# ---------------------------------------------------------------------------------------------

def _credentials(env: Mapping[str, str]) -> dict[str, str]:
    for pair in CREDENTIAL_ENV:
        if all(env.get(var) for var, _ in pair):
            return {header: env[var] for var, header in pair}
    names = " or ".join(" and ".join(var for var, _ in pair) for pair in CREDENTIAL_ENV)
    raise LiveError(f"MobilityLabs credentials missing: set {names} in the environment")


class _Scrubber:
    """Removes every known secret from text that may reach a message."""

    def __init__(self, secrets):
        self.secrets = [s for s in secrets if s]

    def add(self, secret: str | None):
        if secret:
            self.secrets.append(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def quote(self, text, limit: int = SERVER_TEXT_CHARS) -> str:
        """Server text fit for a message: secrets masked first, then cut to ``limit`` characters
        (cutting first could leave the start of a secret that no longer matches)."""
        masked = self(str(text))
        return masked if len(masked) <= limit else masked[:limit] + "..."


def _station_from_mobilitylabs(record: dict, k: int, url: str) -> dict:
    """Map one MobilityLabs station (GeoJSON point, or flat latitude/longitude) to EMT's fields."""
    try:
        if "geometry" in record and record["geometry"]:
            lon, lat = record["geometry"]["coordinates"][:2]
        else:
            lat, lon = record["latitude"], record["longitude"]
        bikes = _count(record, "dock_bikes")
        free = _count(record, "free_bases")
        capacity = _count(record, "total_bases") if record.get("total_bases") else bikes + free
        return emt_station_record(
            station_id=_count(record, "id"), number=str(record.get("number", record["id"])),
            name=str(record.get("name", "")), address=str(record.get("address", "")),
            lat=_coordinate(lat, "latitude", 90), lon=_coordinate(lon, "longitude", 180),
            capacity=capacity, bikes=bikes, free=free,
            active=int(record.get("activate", 1)) == 1, available=int(record.get("no_available", 0)) == 0,
            reserved=_count(record, "reservations_count", 0),
        )
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError) as exc:
        sid = record.get("id") if isinstance(record, dict) else None
        raise LiveError(f"{url}: station record {k} (id {sid!r}): bad or missing field {exc}") from None


def _authenticated_get(client: Client, url: str, headers: dict, what: str, *, base: str, scrub: _Scrubber,
                       limit: int):
    """GET ``url`` with credential headers: ``(response, JSON object or {})``.

    Redirects are followed by hand, only to the origin of ``base`` (at most :data:`MAX_REDIRECTS`);
    a redirect elsewhere raises :class:`LiveError` before anything is sent there.
    """
    home = origin(base)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response, content = client.fetch(url, limit=limit, headers=headers, allow_redirects=False,
                                             what=f"MobilityLabs {what} answer")
        except DownloadError as exc:
            raise LiveError(scrub(f"MobilityLabs {what}: {exc}")) from None
        location = response.headers.get("Location") if response.is_redirect else None
        if not location:
            break
        target = urljoin(url, location)
        if origin(target) != home:
            scheme, host, port = origin(target)
            raise LiveError(scrub(f"MobilityLabs {what}: {url} redirects to {scheme}://{host}:{port}, another "
                                  f"origin than {base}; credentials are sent to {base} only, so it was not followed"))
        url = target
    else:
        raise LiveError(scrub(f"MobilityLabs {what}: more than {MAX_REDIRECTS} redirects from {base}"))
    body = None
    if response.headers.get("Content-Type", "").startswith("application/json") or content[:1] == b"{":
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            body = None
    return response, body if isinstance(body, dict) else {}


def fetch_mobilitylabs(dest_dir: Path, *, base_url: str | None = None, session=None,
                       env: Mapping[str, str] | None = None, config: MobilityLabsConfig | None = None,
                       policy: HttpPolicy | None = None, sleep: Callable[[float], None] = time.sleep) -> Path:
    """Log in to EMT MobilityLabs, read BiciMAD's stations and store them as one EMT snapshot.

    Credentials come from ``env`` (default ``os.environ``): ``EMT_CLIENT_ID`` and ``EMT_PASS_KEY``
    (an application key), or ``EMT_EMAIL`` and ``EMT_PASSWORD`` (a user account). A token the API
    rejects as expired (HTTP 401 or code 80/81) is renewed once. The file lands in
    ``dest_dir/mobilitylabs/``; the snapshot time is the moment of the answer.

    Credentials and the token go to ``base_url`` (an http(s) URL) alone: a redirect is followed
    only to the same scheme, host and port (at most :data:`MAX_REDIRECTS`), any other one is
    refused with :class:`LiveError` before anything is sent there.
    """
    config = config or MobilityLabsConfig()
    policy = policy or HttpPolicy()
    base = (base_url or config.base_url).rstrip("/")
    try:
        check_url(base, "MobilityLabs")
    except DownloadError as exc:
        raise LiveError(str(exc)) from None
    credentials = _credentials(os.environ if env is None else env)
    scrub = _Scrubber(credentials.values())

    def call(url: str, headers: dict, what: str):
        return _authenticated_get(client, url, headers, what, base=base, scrub=scrub, limit=policy.max_body_bytes)

    def describe(response, body) -> str:
        code, text = body.get("code"), body.get("description")
        detail = f" code {scrub.quote(code)!r}" if code is not None else ""
        detail += f" ({scrub.quote(text)})" if text else ""
        return f"HTTP {response.status_code}{detail}"

    def login() -> str:
        url = base + config.login_path
        response, body = call(url, credentials, "login")
        data = body.get("data")
        token = data[0].get("accessToken") if isinstance(data, list) and data and isinstance(data[0], dict) else None
        if response.status_code >= 400 or body.get("code") not in OK_CODES or not token or not isinstance(token, str):
            raise LiveError(scrub(f"MobilityLabs login refused: {url}: {describe(response, body)}"))
        scrub.add(token)
        log.info("logged in to MobilityLabs")
        return token

    with policy.client(session, sleep) as client:
        url = base + config.stations_path
        token = login()
        for renewed in (False, True):
            response, body = call(url, {"accessToken": token}, "stations")
            expired = response.status_code == 401 or body.get("code") in ("80", "81")
            if expired and not renewed:
                log.info("MobilityLabs token rejected; logging in again")
                token = login()
                continue
            if response.status_code >= 400 or body.get("code") not in OK_CODES:
                raise LiveError(scrub(f"MobilityLabs stations: {url}: {describe(response, body)}"))
            break
        when = datetime.now(UTC)
    records = body.get("data")
    if not isinstance(records, list) or not records:
        raise LiveError(f"{url}: the answer holds no station list in 'data'")
    stations = [_station_from_mobilitylabs(record, k, url) for k, record in enumerate(records)]
    return _write_snapshot(dest_dir, "mobilitylabs", when, stations)
