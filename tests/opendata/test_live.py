"""Live station state: GBFS and EMT MobilityLabs against local servers speaking the same protocols."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from zoneinfo import ZoneInfo

import pytest

from bicimad.opendata.live import (
    SERVER_TEXT_CHARS,
    HttpPolicy,
    LiveError,
    MobilityLabsConfig,
    fetch_gbfs,
    fetch_mobilitylabs,
)

from .conftest import loopback_server

CLIENT_ID = "c0ffee00-1234-4bcd-9abc-0123456789ab"
PASS_KEY = "S3CRET-PASSKEY-9F2A7C41E0B6D8"
EMAIL = "planner@example.org"
PASSWORD = "hunter2-but-longer"
POLICY = HttpPolicy(connect_timeout_s=2.0, read_timeout_s=2.0, retries=2, backoff_s=0.0)
EMT_KEYS = ["activate", "name", "reservations_count", "light", "total_bases", "free_bases", "number",
            "longitude", "no_available", "address", "latitude", "dock_bikes", "id"]


class Api:
    """State of the fake services: routes by path, faults per path, requests seen."""

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.faults: dict[str, list[int]] = {}
        self.seen: list[tuple[str, dict]] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        api: Api = self.server.api
        api.seen.append((self.path, dict(self.headers)))
        faults = api.faults.get(self.path)
        headers: dict = {}
        if faults:
            status, body = faults.pop(0), {"code": "99", "description": "temporarily unavailable"}
        elif self.path in api.routes:
            route = api.routes[self.path]
            status, body, *more = route(self.headers) if callable(route) else (200, route)
            headers = more[0] if more else {}
        else:
            status, body = 404, {"error": "not found"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():  # a route may answer (status, body, headers)
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server():
    api = Api()
    with loopback_server(Handler, api=api) as base:
        api.base = base
        yield api


def _read_snapshot(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


# ---------------------------------------------------------------------------------------------
# GBFS
# ---------------------------------------------------------------------------------------------

INFO = {"last_updated": 1538375000, "ttl": 60, "data": {"stations": [
    {"station_id": "1", "name": "Puerta del Sol A", "short_name": "1a", "lat": 40.4168961, "lon": -3.7024255,
     "address": "Puerta del Sol nº 1", "capacity": 24},
    {"station_id": "2", "name": "Puerta del Sol B", "short_name": "1b", "lat": 40.4170009, "lon": -3.7024207,
     "address": "Puerta del Sol nº 1", "capacity": 24},
    {"station_id": "57", "name": "Santa Cruz de Marcenado", "lat": 40.4285, "lon": -3.7106, "capacity": 27},
]}}
# 2018-10-01T08:21:08Z = 10:21:08 in Madrid (CEST)
STATUS = {"last_updated": 1538382068, "ttl": 60, "data": {"stations": [
    {"station_id": "1", "num_bikes_available": 14, "num_docks_available": 10, "is_installed": 1,
     "is_renting": 1, "is_returning": 1, "last_reported": 1538382000},
    {"station_id": "2", "num_bikes_available": 0, "num_docks_available": 22, "num_bikes_disabled": 1,
     "num_docks_disabled": 1, "is_installed": 1, "is_renting": 0, "is_returning": 1},
    {"station_id": "57", "num_bikes_available": 27, "num_docks_available": 0, "is_installed": 1,
     "is_renting": 1, "is_returning": 1},
    {"station_id": "999", "num_bikes_available": 3, "num_docks_available": 3},  # not in information: left out
]}}


def _discovery(base, prefix):
    feeds = [{"name": name, "url": f"{base}{prefix}/{name}.json"}
             for name in ("system_information", "station_information", "station_status")]
    return {"last_updated": 1538382068, "ttl": 60, "data": {"en": {"feeds": feeds}}}


def test_gbfs_through_discovery(server, tmp_path):
    server.routes["/gbfs/gbfs.json"] = _discovery(server.base, "/feeds/en")
    server.routes["/feeds/en/station_information.json"] = INFO
    server.routes["/feeds/en/station_status.json"] = STATUS
    path = fetch_gbfs(server.base + "/gbfs/gbfs.json", tmp_path, policy=POLICY)
    assert path == tmp_path / "gbfs" / "20181001T102108.json"
    snapshot = _read_snapshot(path)
    assert snapshot["_id"] == "2018-10-01T10:21:08.000000"
    assert datetime.fromisoformat(snapshot["_id"]).tzinfo is None
    stations = snapshot["stations"]
    assert [s["id"] for s in stations] == [1, 2, 57]
    assert all(list(s) == EMT_KEYS for s in stations)
    sol_a, sol_b, busy = stations
    assert (sol_a["dock_bikes"], sol_a["free_bases"], sol_a["total_bases"], sol_a["number"]) == (14, 10, 24, "1a")
    assert (sol_a["latitude"], sol_a["longitude"]) == ("40.4168961", "-3.7024255")
    assert sol_a["address"] == "Puerta del Sol nº 1" and sol_a["light"] == 2
    assert sol_b["no_available"] == 1 and sol_b["light"] == 3 and sol_b["activate"] == 1
    assert busy["number"] == "57" and busy["light"] == 1 and busy["free_bases"] == 0


def test_gbfs_folder_without_discovery_and_v3_names(server, tmp_path):
    info = json.loads(json.dumps(INFO))
    info["data"]["stations"][0]["name"] = [{"text": "Sol A", "language": "es"}, {"text": "Sun A", "language": "en"}]
    status = json.loads(json.dumps(STATUS))
    status["last_updated"] = "2018-12-01T08:00:00+00:00"  # v3: RFC 3339; winter time in Madrid
    status["data"]["stations"][0] = {"station_id": "1", "num_vehicles_available": 5, "num_docks_available": 19,
                                     "is_installed": True, "is_renting": True, "is_returning": True}
    server.routes["/bike/station_information.json"] = info
    server.routes["/bike/station_status.json"] = status
    path = fetch_gbfs(server.base + "/bike", tmp_path, policy=POLICY)
    snapshot = _read_snapshot(path)
    assert snapshot["_id"] == "2018-12-01T09:00:00.000000"
    assert snapshot["stations"][0]["name"] == "Sol A" and snapshot["stations"][0]["dock_bikes"] == 5
    assert ("/bike/gbfs.json", ) == tuple(p for p, _ in server.seen[:1])  # discovery tried first


def test_gbfs_feeds_without_json_suffix(server, tmp_path):
    server.routes["/es/station_information"] = INFO
    server.routes["/es/station_status"] = STATUS
    path = fetch_gbfs(server.base + "/es", tmp_path, policy=POLICY)
    assert [s["id"] for s in _read_snapshot(path)["stations"]] == [1, 2, 57]
    assert [p for p, _ in server.seen] == ["/es/gbfs.json", "/es/station_information.json", "/es/station_information",
                                          "/es/station_status.json", "/es/station_status"]


def test_gbfs_retries_5xx_and_reports_bad_records(server, tmp_path):
    server.routes["/g/station_information.json"] = INFO
    server.routes["/g/station_status.json"] = STATUS
    server.faults["/g/station_status.json"] = [502, 500]
    path = fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    assert len(_read_snapshot(path)["stations"]) == 3
    broken = json.loads(json.dumps(STATUS))
    broken["data"]["stations"][1]["num_bikes_available"] = "many"
    server.routes["/g/station_status.json"] = broken
    with pytest.raises(LiveError, match=r"station record 1 \(station_id '2'\)"):
        fetch_gbfs(server.base + "/g/", tmp_path / "other", policy=POLICY)
    assert not (tmp_path / "other").exists()
    server.routes["/g/station_status.json"] = {"data": {}}
    with pytest.raises(LiveError, match="not a GBFS station feed"):
        fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    server.faults["/g/station_status.json"] = [503] * 3
    with pytest.raises(LiveError, match="station_status.*gave up after 3 attempts"):
        fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)


# ---------------------------------------------------------------------------------------------
# MobilityLabs
# ---------------------------------------------------------------------------------------------

ML_STATIONS = [
    {"activate": 1, "address": "Puerta del Sol nº 1", "dock_bikes": 11, "free_bases": 12, "geometry":
     {"type": "Point", "coordinates": [-3.7018341, 40.4172137]}, "id": 1, "light": 2, "name": "Puerta del Sol A",
     "no_available": 0, "number": "1a", "reservations_count": 0, "total_bases": 24},
    {"activate": 1, "address": "Calle Miguel Moya nº 1", "dock_bikes": 0, "free_bases": 24, "geometry":
     {"type": "Point", "coordinates": [-3.7058415, 40.4205886]}, "id": 3, "light": 0, "name": "Miguel Moya",
     "no_available": 0, "number": "2", "reservations_count": 1, "total_bases": 24},
]


class MobilityLabs:
    """The login and stations endpoints, with tokens that can be made to expire."""

    def __init__(self, api: Api):
        self.tokens: list[str] = []
        self.logins = 0
        self.expire_next = False
        api.routes["/v2/mobilitylabs/user/login/"] = self.login
        api.routes["/v2/transport/bicimad/stations/"] = self.stations

    def login(self, headers):
        self.logins += 1
        by_key = headers.get("X-ClientId") == CLIENT_ID and headers.get("passKey") == PASS_KEY
        by_account = headers.get("email") == EMAIL and headers.get("password") == PASSWORD
        if not (by_key or by_account):
            # Like a careless server, echo what it was sent: the client must scrub it.
            sent = headers.get("passKey") or headers.get("password")
            return 200, {"code": "80", "description": f"Error, invalid credentials ({sent})", "data": []}
        token = f"tok-{self.logins}-7d1e2c3b-aaaa-bbbb-cccc-{self.logins:012d}"
        self.tokens.append(token)
        return 200, {"code": "01", "description": "Token extended", "data": [{"accessToken": token,
                                                                              "tokenSecExpiration": 86400}]}

    def stations(self, headers):
        token = headers.get("accessToken")
        if self.expire_next and token in self.tokens:
            self.expire_next = False
            self.tokens.remove(token)
        if token not in self.tokens:
            return 401, {"code": "80", "description": f"Token {token} not valid"}
        return 200, {"code": "00", "description": "Data recovered OK", "datetime": "2024-05-14T10:00:00",
                     "data": ML_STATIONS}


KEY_ENV = {"EMT_CLIENT_ID": CLIENT_ID, "EMT_PASS_KEY": PASS_KEY}


def test_mobilitylabs_login_and_snapshot(server, tmp_path):
    ml = MobilityLabs(server)
    path = fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY)
    assert path.parent == tmp_path / "mobilitylabs"
    snapshot = _read_snapshot(path)
    assert path.stem == datetime.fromisoformat(snapshot["_id"]).strftime("%Y%m%dT%H%M%S")
    first, second = snapshot["stations"]
    assert list(first) == EMT_KEYS
    assert (first["id"], first["number"], first["dock_bikes"], first["free_bases"]) == (1, "1a", 11, 12)
    assert (first["latitude"], first["longitude"]) == ("40.4172137", "-3.7018341")
    assert second["reservations_count"] == 1 and second["light"] == 0
    login_headers = server.seen[0][1]
    assert login_headers["X-ClientId"] == CLIENT_ID and login_headers["passKey"] == PASS_KEY
    assert server.seen[1][1]["accessToken"] == ml.tokens[0]
    assert PASS_KEY not in path.read_text() and ml.tokens[0] not in path.read_text()


def test_mobilitylabs_account_credentials_and_token_renewal(server, tmp_path):
    ml = MobilityLabs(server)
    ml.expire_next = True
    env = {"EMT_EMAIL": EMAIL, "EMT_PASSWORD": PASSWORD}
    path = fetch_mobilitylabs(tmp_path, base_url=server.base, env=env, policy=POLICY)
    assert ml.logins == 2  # the first token was rejected and renewed once
    assert len(_read_snapshot(path)["stations"]) == 2
    assert server.seen[0][1]["email"] == EMAIL


def _assert_no_secret(text: str, secrets):
    for secret in secrets:
        assert secret not in text


def test_refused_login_never_shows_the_secret(server, tmp_path, caplog):
    MobilityLabs(server)
    env = {"EMT_CLIENT_ID": CLIENT_ID, "EMT_PASS_KEY": PASS_KEY + "-wrong"}
    with caplog.at_level(logging.DEBUG), pytest.raises(LiveError) as err:
        fetch_mobilitylabs(tmp_path, base_url=server.base, env=env, policy=POLICY)
    message = str(err.value)
    assert "login refused" in message and "code '80'" in message and "***" in message
    assert err.value.__cause__ is None and err.value.__context__ is None
    _assert_no_secret(message + caplog.text, [PASS_KEY, PASS_KEY + "-wrong"])
    assert not (tmp_path / "mobilitylabs").exists()


def test_server_errors_and_expired_tokens_never_show_secrets(server, tmp_path, caplog):
    ml = MobilityLabs(server)
    server.faults["/v2/transport/bicimad/stations/"] = [500, 500, 500]
    with caplog.at_level(logging.DEBUG), pytest.raises(LiveError, match="gave up after 3 attempts") as err:
        fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY)
    _assert_no_secret(str(err.value) + caplog.text, [PASS_KEY, CLIENT_ID, *ml.tokens])

    # A server that rejects every token (echoing it back) ends in an error without the token.
    server.routes["/v2/transport/bicimad/stations/"] = lambda h: (401, {"code": "80",
                                                                        "description": f"bad {h['accessToken']}"})
    caplog.clear()
    with caplog.at_level(logging.DEBUG), pytest.raises(LiveError, match="HTTP 401") as err:
        fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY)
    assert "***" in str(err.value)
    _assert_no_secret(str(err.value) + caplog.text, [PASS_KEY, CLIENT_ID, *ml.tokens])


def test_unreachable_api_and_missing_credentials(tmp_path, caplog):
    with pytest.raises(LiveError, match="EMT_CLIENT_ID and EMT_PASS_KEY or EMT_EMAIL and EMT_PASSWORD"):
        fetch_mobilitylabs(tmp_path, base_url="http://127.0.0.1:9", env={"EMT_EMAIL": EMAIL}, policy=POLICY)
    with caplog.at_level(logging.DEBUG), pytest.raises(LiveError, match="login.*gave up") as err:
        fetch_mobilitylabs(tmp_path, base_url="http://127.0.0.1:9", env=KEY_ENV,
                           policy=HttpPolicy(connect_timeout_s=0.5, retries=1, backoff_s=0.0))
    _assert_no_secret(str(err.value) + caplog.text, [PASS_KEY, CLIENT_ID])


def test_bad_station_record_is_named(server, tmp_path):
    MobilityLabs(server)
    broken = json.loads(json.dumps(ML_STATIONS))
    del broken[1]["dock_bikes"]
    server.routes["/v2/transport/bicimad/stations/"] = lambda h: (200, {"code": "00", "data": broken})
    with pytest.raises(LiveError, match=r"station record 1 \(id 3\): bad or missing field 'dock_bikes'"):
        fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY)


# ---------------------------------------------------------------------------------------------
# Hardening: redirects, raw files never replaced, secrets in messages, bad URLs and times
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def other_host():
    """A second server, reached as 'localhost' (another host and port than 127.0.0.1's server)."""
    api = Api()
    with loopback_server(Handler, api=api) as base:
        api.base = base.replace("127.0.0.1", "localhost")
        yield api


SECRET_HEADERS = ("x-clientid", "passkey", "accesstoken", "email", "password", "authorization")


def _sent_secrets(api: Api) -> list[str]:
    return [key for _, headers in api.seen for key in headers if key.lower() in SECRET_HEADERS]


def test_credentials_never_follow_a_redirect_to_another_host(server, other_host, tmp_path):
    MobilityLabs(other_host)  # the other host would accept the credentials and hand out a token
    login = "/v2/mobilitylabs/user/login/"
    server.routes[login] = lambda h: (302, {}, {"Location": other_host.base + login})
    with pytest.raises(LiveError, match=r"redirects to http://localhost:\d+, another origin .* not followed") as err:
        fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY)
    assert other_host.seen == [] and _sent_secrets(other_host) == []
    _assert_no_secret(str(err.value), [PASS_KEY, CLIENT_ID])

    # The token call is guarded the same way.
    ml = MobilityLabs(server)
    stations = "/v2/transport/bicimad/stations/"
    server.routes[stations] = lambda h: (307, {}, {"Location": other_host.base + stations})
    with pytest.raises(LiveError, match="stations: .* redirects to http://localhost"):
        fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY)
    assert other_host.seen == [] and ml.tokens

    # Without credentials (GBFS) the same kind of redirect is followed: the second server does record requests.
    other_host.routes["/g/station_information.json"] = INFO
    other_host.routes["/g/station_status.json"] = STATUS
    for name in ("station_information", "station_status"):
        server.routes[f"/g/{name}.json"] = lambda h, name=name: (302, {}, {"Location": f"{other_host.base}/g/{name}.json"})
    fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    assert [p for p, _ in other_host.seen] == ["/g/station_information.json", "/g/station_status.json"]
    assert _sent_secrets(other_host) == []


def test_same_origin_redirect_is_followed_with_credentials(server, tmp_path):
    MobilityLabs(server)
    server.routes["/v2/old-login/"] = lambda h: (301, {}, {"Location": "/v2/mobilitylabs/user/login/"})
    path = fetch_mobilitylabs(tmp_path, base_url=server.base, env=KEY_ENV, policy=POLICY,
                              config=MobilityLabsConfig(login_path="/v2/old-login/"))
    assert len(_read_snapshot(path)["stations"]) == 2
    assert [p for p, _ in server.seen[:2]] == ["/v2/old-login/", "/v2/mobilitylabs/user/login/"]
    assert server.seen[1][1]["passKey"] == PASS_KEY


def test_a_snapshot_is_never_replaced(server, tmp_path):
    server.routes["/g/station_information.json"] = INFO
    server.routes["/g/station_status.json"] = STATUS
    first = fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    first_bytes = first.read_bytes()
    assert fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY) == first  # same content: not stored twice
    assert sorted(p.name for p in (tmp_path / "gbfs").iterdir()) == [first.name]

    changed = json.loads(json.dumps(STATUS))  # same last_updated, other bikes
    changed["data"]["stations"][0]["num_bikes_available"] = 3
    server.routes["/g/station_status.json"] = changed
    second = fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    assert second != first and second.name.startswith("20181001T102108-") and second.suffix == ".json"
    assert first.read_bytes() == first_bytes
    assert _read_snapshot(second)["stations"][0]["dock_bikes"] == 3
    assert fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY) == second
    assert len(list((tmp_path / "gbfs").iterdir())) == 2  # no temporary file left either


def test_secrets_are_masked_before_server_text_is_cut(server, tmp_path):
    wrong = PASS_KEY + "-wrong"
    pad = SERVER_TEXT_CHARS - 8  # a cut at the limit would fall 8 characters into the secret
    server.routes["/v2/mobilitylabs/user/login/"] = lambda h: (
        200, {"code": "80", "description": "." * pad + h["passKey"] + " rejected", "data": []})
    with pytest.raises(LiveError) as err:
        fetch_mobilitylabs(tmp_path, base_url=server.base, env={"EMT_CLIENT_ID": CLIENT_ID, "EMT_PASS_KEY": wrong},
                           policy=POLICY)
    message = str(err.value)
    assert "." * pad + "***" in message
    for secret in (wrong, PASS_KEY, CLIENT_ID):
        assert not any(secret[:k] in message for k in range(4, len(secret) + 1)), secret


@pytest.mark.parametrize("url", ["file:///etc/gbfs.json", "ftp://example.org/gbfs/gbfs.json", "gbfs.json"])
def test_gbfs_url_must_be_http(url, tmp_path):
    with pytest.raises(LiveError, match=r"GBFS: '.*' is not an http:// or https:// URL"):
        fetch_gbfs(url, tmp_path, policy=POLICY, sleep=lambda s: pytest.fail("nothing to retry"))
    with pytest.raises(LiveError, match=r"MobilityLabs: '.*' is not an http:// or https:// URL"):
        fetch_mobilitylabs(tmp_path, base_url=url.removesuffix("gbfs.json") or "x", env=KEY_ENV, policy=POLICY)


def test_discovery_pointing_to_a_file_url_is_refused(server, tmp_path):
    discovery = _discovery(server.base, "/feeds")
    discovery["data"]["en"]["feeds"][1]["url"] = "file:///etc/passwd"
    server.routes["/gbfs.json"] = discovery
    with pytest.raises(LiveError, match=r"GBFS station_information: 'file:///etc/passwd' is not an http"):
        fetch_gbfs(server.base + "/gbfs.json", tmp_path, policy=POLICY)


def _plausible_now_plus(days: float) -> float:
    return datetime.now().timestamp() + days * 86400


@pytest.mark.parametrize("value", [-1, -30_610_224_000, 253_402_214_400, 1e300, float("nan"), True,
                                   "1000-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z", "2018-10-01T08:21:08",
                                   "yesterday", _plausible_now_plus(2)])
def test_absurd_last_updated_is_refused(server, tmp_path, value):
    status = json.loads(json.dumps(STATUS))
    status["last_updated"] = value
    server.routes["/g/station_information.json"] = INFO
    server.routes["/g/station_status.json"] = status
    with pytest.raises(LiveError, match=r"GBFS station_status http://127.0.0.1:\d+/g/station_status.json: "
                                        r"last_updated .* is not a plausible time"):
        fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    assert not (tmp_path / "gbfs").exists()


def test_recent_last_updated_is_kept(server, tmp_path):
    status = json.loads(json.dumps(STATUS))
    status["last_updated"] = int(_plausible_now_plus(-1 / 24))
    server.routes["/g/station_information.json"] = INFO
    server.routes["/g/station_status.json"] = status
    path = fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)
    stored = datetime.fromisoformat(_read_snapshot(path)["_id"]).replace(tzinfo=ZoneInfo("Europe/Madrid"))
    assert stored.timestamp() == status["last_updated"]


@pytest.mark.parametrize("feed, field, value", [("info", "lat", 999), ("info", "lon", -500), ("info", "capacity", -3),
                                                ("status", "num_docks_available", 1e300),
                                                ("status", "num_bikes_available", -2)])
def test_station_values_out_of_range_are_named(server, tmp_path, feed, field, value):
    info, status = json.loads(json.dumps(INFO)), json.loads(json.dumps(STATUS))
    (info if feed == "info" else status)["data"]["stations"][2][field] = value
    server.routes["/g/station_information.json"] = info
    server.routes["/g/station_status.json"] = status
    with pytest.raises(LiveError, match=rf"station record 2 \(station_id '57'\): bad or missing field '{field}' is"):
        fetch_gbfs(server.base + "/g/", tmp_path, policy=POLICY)


def test_answer_above_the_size_limit_is_refused(server, tmp_path):
    status = json.loads(json.dumps(STATUS))
    status["padding"] = "x" * 5000
    server.routes["/g/station_information.json"] = INFO
    server.routes["/g/station_status.json"] = status
    policy = HttpPolicy(connect_timeout_s=2.0, read_timeout_s=2.0, retries=0, max_body_bytes=4000)
    with pytest.raises(LiveError, match=r"station_status.json: the GBFS station_status feed is \d+ bytes, "
                                        r"above the limit of 4000 bytes"):
        fetch_gbfs(server.base + "/g/", tmp_path, policy=policy)


def test_503_then_200_is_retried(server, tmp_path):
    server.routes["/g/station_information.json"] = INFO
    server.routes["/g/station_status.json"] = STATUS
    server.faults["/g/station_status.json"] = [503]
    sleeps = []
    policy = HttpPolicy(connect_timeout_s=2.0, read_timeout_s=2.0, retries=2, backoff_s=0.5)
    path = fetch_gbfs(server.base + "/g/", tmp_path, policy=policy, sleep=sleeps.append)
    assert len(_read_snapshot(path)["stations"]) == 3 and sleeps == [0.5]
    assert [p for p, _ in server.seen].count("/g/station_status.json") == 2
