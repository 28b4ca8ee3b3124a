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
snapshot files read it unchanged.

Credentials and tokens never appear in logs, files or error messages: errors carry the URL, the
HTTP status and the API's own code only, scrubbed of every secret, and are raised without the
underlying exception chained.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

from bicimad.config import TZ
from bicimad.io import atomic_open
from bicimad.opendata.portal import DownloadError, get_with_retries

log = logging.getLogger(__name__)


class LiveError(RuntimeError):
    """The live state could not be fetched or understood; the message holds no secret."""


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retries for the live APIs (small: a nightly run should not hang on them)."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout_s, self.read_timeout_s)


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
    """Write one EMT snapshot line; ``when`` is tz-aware and stored as naive Madrid time."""
    import json

    local = when.astimezone(ZoneInfo(TZ)).replace(tzinfo=None)
    path = Path(dest_dir) / source / f"{local:%Y%m%dT%H%M%S}.json"
    record = {"_id": local.isoformat(timespec="microseconds"), "stations": stations}
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps(record) + "\n")
    log.info("%s: %d stations at %s -> %s", source, len(stations), record["_id"], path)
    return path


def _json(response, url: str, what: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise LiveError(f"{url}: {what} is not JSON (HTTP {response.status_code})") from None
    if not isinstance(body, dict):
        raise LiveError(f"{url}: {what} is not a JSON object")
    return body


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


def _gbfs_feeds(discovery: dict) -> dict[str, str]:
    """Feed name -> URL from a gbfs.json (v2: data.<language>.feeds; v3: data.feeds)."""
    data = discovery.get("data") or {}
    feeds = data.get("feeds")
    if feeds is None:
        languages = [lang for lang in ("es", "en") if lang in data] + sorted(set(data) - {"es", "en"})
        feeds = data[languages[0]].get("feeds", []) if languages else []
    return {f["name"]: f["url"] for f in feeds if isinstance(f, dict) and "name" in f and "url" in f}


def fetch_gbfs(base_url: str, dest_dir: Path, *, session=None, policy: HttpPolicy | None = None,
               sleep: Callable[[float], None] = time.sleep) -> Path:
    """Fetch a GBFS system's station state and store it as one EMT snapshot under ``dest_dir/gbfs/``.

    ``base_url`` is a ``gbfs.json`` discovery URL (BiciMAD's: :data:`BICIMAD_GBFS_URL`), or a
    folder URL holding ``gbfs.json`` or the ``station_information`` and ``station_status`` feeds
    side by side (with or without ``.json``). The snapshot time is
    the status feed's ``last_updated``. Stations missing from either feed are left out.
    """
    import requests

    policy = policy or HttpPolicy()
    own = session is None
    session = session or requests.Session()

    def get(url: str, what: str, missing_ok: bool = False) -> dict | None:
        try:
            response = get_with_retries(session, url, timeout=policy.timeout, retries=policy.retries,
                                        backoff_s=policy.backoff_s, sleep=sleep)
        except DownloadError as exc:
            raise LiveError(f"GBFS {what}: {exc}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise LiveError(f"GBFS {what}: {url}: HTTP {response.status_code}")
        return _json(response, url, f"GBFS {what}")

    try:
        folder = base_url if base_url.endswith("/") else base_url + "/"
        discovery_url = base_url if base_url.endswith(".json") else urljoin(folder, "gbfs.json")
        discovery = get(discovery_url, "discovery", missing_ok=not base_url.endswith(".json"))
        feeds = _gbfs_feeds(discovery) if discovery else {}

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
    finally:
        if own:
            session.close()

    try:
        info_by_id = {str(s["station_id"]): s for s in info["data"]["stations"]}
        status_list = status["data"]["stations"]
    except (KeyError, TypeError):
        raise LiveError(f"{info_url} / {status_url}: no data.stations list (not a GBFS station feed)") from None
    stations = []
    for k, st in enumerate(status_list):
        try:
            sid = str(st["station_id"])
            inf = info_by_id.get(sid)
            if inf is None:
                continue
            bikes = int(st.get("num_bikes_available", st.get("num_vehicles_available", 0)))
            free = int(st.get("num_docks_available", 0))
            broken = int(st.get("num_bikes_disabled", st.get("num_vehicles_disabled", 0)) or 0)
            capacity = int(inf.get("capacity") or bikes + free + broken + int(st.get("num_docks_disabled", 0) or 0))
            stations.append(emt_station_record(
                station_id=_gbfs_station_id(sid), number=str(inf.get("short_name") or sid),
                name=_gbfs_text(inf.get("name")), address=_gbfs_text(inf.get("address")),
                lat=float(inf["lat"]), lon=float(inf["lon"]), capacity=capacity, bikes=bikes, free=free,
                active=bool(st.get("is_installed", True)),
                available=bool(st.get("is_renting", True)) and bool(st.get("is_returning", True)),
                reserved=int(st.get("num_bikes_reserved", 0) or 0),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise LiveError(f"{status_url}: station record {k} (station_id {st.get('station_id')!r}): "
                            f"bad or missing field {exc}") from None
    if not stations:
        raise LiveError(f"{status_url}: no station appears in both station_information and station_status")
    return _write_snapshot(dest_dir, "gbfs", _gbfs_time(status.get("last_updated")), stations)


def _gbfs_time(value) -> datetime:
    """GBFS last_updated: epoch seconds (v1, v2) or RFC 3339 (v3); now when absent."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)


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


def _station_from_mobilitylabs(record: dict, k: int, url: str) -> dict:
    """Map one MobilityLabs station (GeoJSON point, or flat latitude/longitude) to EMT's fields."""
    try:
        if "geometry" in record and record["geometry"]:
            lon, lat = record["geometry"]["coordinates"][:2]
        else:
            lat, lon = record["latitude"], record["longitude"]
        bikes = int(record["dock_bikes"])
        free = int(record["free_bases"])
        capacity = int(record.get("total_bases") or bikes + free)
        return emt_station_record(
            station_id=int(record["id"]), number=str(record.get("number", record["id"])),
            name=str(record.get("name", "")), address=str(record.get("address", "")),
            lat=float(lat), lon=float(lon), capacity=capacity, bikes=bikes, free=free,
            active=int(record.get("activate", 1)) == 1, available=int(record.get("no_available", 0)) == 0,
            reserved=int(record.get("reservations_count", 0) or 0),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise LiveError(f"{url}: station record {k} (id {record.get('id')!r}): bad or missing field {exc}") from None


def fetch_mobilitylabs(dest_dir: Path, *, base_url: str | None = None, session=None,
                       env: Mapping[str, str] | None = None, config: MobilityLabsConfig | None = None,
                       policy: HttpPolicy | None = None, sleep: Callable[[float], None] = time.sleep) -> Path:
    """Log in to EMT MobilityLabs, read BiciMAD's stations and store them as one EMT snapshot.

    Credentials come from ``env`` (default ``os.environ``): ``EMT_CLIENT_ID`` and ``EMT_PASS_KEY``
    (an application key), or ``EMT_EMAIL`` and ``EMT_PASSWORD`` (a user account). A token the API
    rejects as expired (HTTP 401 or code 80/81) is renewed once. The file lands in
    ``dest_dir/mobilitylabs/``; the snapshot time is the moment of the answer.
    """
    import requests

    config = config or MobilityLabsConfig()
    policy = policy or HttpPolicy()
    base = (base_url or config.base_url).rstrip("/")
    credentials = _credentials(os.environ if env is None else env)
    scrub = _Scrubber(credentials.values())
    own = session is None
    session = session or requests.Session()

    def call(url: str, headers: dict, what: str):
        try:
            response = get_with_retries(session, url, headers=headers, timeout=policy.timeout,
                                        retries=policy.retries, backoff_s=policy.backoff_s, sleep=sleep)
        except DownloadError as exc:
            raise LiveError(scrub(f"MobilityLabs {what}: {exc}")) from None
        body = None
        if response.headers.get("Content-Type", "").startswith("application/json") or response.content[:1] == b"{":
            try:
                body = response.json()
            except ValueError:
                body = None
        return response, body if isinstance(body, dict) else {}

    def describe(response, body) -> str:
        code, text = body.get("code"), body.get("description")
        detail = f" code {code!r}" if code is not None else ""
        detail += f" ({str(text)[:200]})" if text else ""
        return f"HTTP {response.status_code}{detail}"

    def login() -> str:
        url = base + config.login_path
        response, body = call(url, credentials, "login")
        data = body.get("data")
        token = data[0].get("accessToken") if isinstance(data, list) and data and isinstance(data[0], dict) else None
        if response.status_code >= 400 or body.get("code") not in OK_CODES or not token:
            raise LiveError(scrub(f"MobilityLabs login refused: {url}: {describe(response, body)}"))
        scrub.add(token)
        log.info("logged in to MobilityLabs")
        return token

    try:
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
    finally:
        if own:
            session.close()
    records = body.get("data")
    if not isinstance(records, list) or not records:
        raise LiveError(f"{url}: the answer holds no station list in 'data'")
    stations = [_station_from_mobilitylabs(record, k, url) for k, record in enumerate(records)]
    return _write_snapshot(dest_dir, "mobilitylabs", when, stations)
