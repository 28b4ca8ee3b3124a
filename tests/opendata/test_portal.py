"""The portal downloader against a real HTTP server on 127.0.0.1 that injects faults."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import time
import zipfile
from collections import defaultdict
from http.server import BaseHTTPRequestHandler

import pytest
import requests

from bicimad.opendata.portal import DownloadError, PortalConfig, download, parse_catalogue

from .conftest import loopback_server

GUIDS = iter(f"{k:08x}-1b2c-4d3e-8f40-{k:012x}" for k in range(1, 1000))

#: A catalogue page in the portal's style: a list of attachment links, noise around them, an
#: absolute link, a duplicate, entities, and markup that is not well-formed.
CATALOGUE = """<!DOCTYPE html><html><head><title>Datos generales</title></head><body>
<div class="contenido"><h2>BiciMAD</h2>
<ul class="ficheros">
<li style="margin-bottom: 6px"><img src="/Imagenes/Extensiones-de-archivos/zip_logo.aspx"/>
  <a target="_blank" href="/getattachment/{g1}/201809_Usage_Bicimad.aspx" title="Datos de uso de Septiembre de 2018. Nueva ventana" > Datos de uso de Septiembre de 2018</a>
<li><a target=_blank href="/getattachment/{g2}/Bicimad_Estacions_201809.aspx" title="Situaci&#243;n estaciones bicimad por d&#237;a y hora de Septiembre de 2018">Situaci&#243;n estaciones</a></li>
<li><a href="/getattachment/{g3}/201810_Usage_Bicimad.aspx">Datos de uso de Octubre de 2018</a></li>
<li><a href="{host}/getattachment/{g4}/Bicimad_Estacions_201810.aspx">Situaci&oacute;n Octubre 2018</a></li>
<li><a href="/getattachment/{g5}/201907_movements.aspx">Datos de uso de Julio de 2019</a></li>
<li><a href="/getattachment/{g6}/201907_stations_madrid.aspx">Situaci&#243;n Julio de 2019</a></li>
<li><a href="/getattachment/{g7}/trips_21_03_March-csv.aspx">Datos de uso de marzo de 2021</a></li>
<li><a href="/getattachment/{g8}/202210-json.aspx">Situaci&#243;n estaciones Octubre de 2022</a></li>
<li><a href="/getattachment/{g1}/201809_Usage_Bicimad.aspx">(duplicate link)</a></li>
<li><a href="/getattachment/{g9}/GTFS.aspx">GTFS de autobuses</a></li>
<li><a href="/getattachment/{g9}/Bicimad_Estacions_201813.aspx">not a month</a></li>
<li><a href="mailto:opendata@emtmadrid.es">Contacto</a><a>no href</a>
</ul><p>Fin <b>sin cerrar</div>
</body></html>
"""


def _zip_bytes(name: str, size: int) -> bytes:
    """A real zip archive holding about ``size`` bytes of JSON lines (stored, so the size is kept)."""
    lines, k = [], 0
    while sum(map(len, lines)) < size:
        digest = hashlib.sha256(f"{name}{k}".encode()).hexdigest()
        lines.append(json.dumps({"_id": {"$oid": digest[:24]}, "user_day_code": digest}) + "\n")
        k += 1
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}.json", "".join(lines))
    return buffer.getvalue()


class Site:
    """What the server serves, the faults it injects per path (consumed one per request), and a log."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.headers: dict[str, dict[str, str]] = defaultdict(dict)
        self.pages: dict[str, str] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.requests: list[tuple[str, str | None]] = []
        self.stall_s = 1.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts): expected in these tests

    def _send(self, status, body: bytes, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _serve(self):
        site: Site = self.server.site
        site.requests.append((self.path, self.headers.get("Range")))
        fault = site.faults[self.path].pop(0) if site.faults[self.path] else "ok"
        if fault == "500":
            return self._send(500, b"internal error")
        if fault == "503":
            return self._send(503, b"busy", [("Retry-After", "0")])
        if fault.startswith("retry-after:"):  # e.g. 'retry-after:429:7': status 429, Retry-After 7
            _, status, after = fault.split(":", 2)
            return self._send(int(status), b"later", [("Retry-After", after)])
        if fault == "slow":  # nothing at all until the client has timed out
            time.sleep(site.stall_s)
        if self.path in site.pages:
            return self._send(200, site.pages[self.path].encode("utf-8"), [("Content-Type", "text/html; charset=utf-8")])
        if self.path not in site.files:
            return self._send(404, b"not found")
        body = site.files[self.path]
        extra = list(site.headers[self.path].items())
        byte_range = self.headers.get("Range")
        start = 0
        if byte_range and fault != "norange":
            start = int(byte_range.split("=")[1].split("-")[0])
            if start >= len(body):
                return self._send(416, b"", [("Content-Range", f"bytes */{len(body)}")])
            status = 206
            extra.append(("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}"))
        else:
            status = 200
        payload = body[start:]
        if fault == "unannounced":  # no length given: the body ends when the connection closes
            self.send_response(status)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if fault == "drop":  # half the body, then the connection dies
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault == "stall":  # a third of the body, then silence past the client's read timeout
            self.wfile.write(payload[: len(payload) // 3])
            self.wfile.flush()
            time.sleep(site.stall_s)
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def portal():
    """A portal on 127.0.0.1 with four monthly files and the catalogue page."""
    site = Site()
    guids = {f"g{k}": next(GUIDS) for k in range(1, 10)}
    for guid, name, size in (("g1", "201809_Usage_Bicimad", 300_000), ("g2", "Bicimad_Estacions_201809", 200_000),
                             ("g3", "201810_Usage_Bicimad", 100_000), ("g4", "Bicimad_Estacions_201810", 50_000)):
        site.files[f"/getattachment/{guids[guid]}/{name}.aspx"] = _zip_bytes(name, size)
    with loopback_server(Handler, site=site) as base:
        site.base = base
        site.pages["/Datos-generales"] = CATALOGUE.format(host=site.base, **guids)
        site.catalogue = site.base + "/Datos-generales"
        site.path_of = {name: path for path in site.files for name in [path.rsplit("/", 1)[1][:-5]]}
        yield site


@pytest.fixture
def config():
    return PortalConfig(connect_timeout_s=2.0, read_timeout_s=0.3, retries=3, backoff_s=0.01)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_requests(site, name):
    return [r for r in site.requests if r[0] == site.path_of[name]]


def test_catalogue_parsing_picks_monthly_files_by_name():
    html = CATALOGUE.format(host="https://opendata.emtmadrid.es", **{f"g{k}": f"guid-{k}" for k in range(1, 10)})
    entries = parse_catalogue(html, "https://opendata.emtmadrid.es/Datos-estaticos/Datos-generales-(1)")
    found = [(e.kind, e.month, e.name) for e in entries]
    assert found == [
        ("trips", "2018-09", "201809_Usage_Bicimad"),
        ("snapshots", "2018-09", "Bicimad_Estacions_201809"),
        ("trips", "2018-10", "201810_Usage_Bicimad"),
        ("snapshots", "2018-10", "Bicimad_Estacions_201810"),
        ("trips", "2019-07", "201907_movements"),
        ("snapshots", "2019-07", "201907_stations_madrid"),
        ("trips", "2021-03", "trips_21_03_March-csv"),
        ("snapshots", "2022-10", "202210-json"),
    ]
    assert entries[0].url == "https://opendata.emtmadrid.es/getattachment/guid-1/201809_Usage_Bicimad.aspx"
    assert entries[3].url == "https://opendata.emtmadrid.es/getattachment/guid-4/Bicimad_Estacions_201810.aspx"


def test_catalogue_patterns_are_configuration():
    html = '<a href="/getattachment/x/BiciMAD_viajes_2030-01.aspx">x</a><a href="/getattachment/y/201809_Usage_Bicimad.aspx">'
    config = PortalConfig(trip_patterns=(r"BiciMAD_viajes_(?P<year>\d{4})-(?P<month>\d{2})",))
    entries = parse_catalogue(html, "http://example.org/", config)
    assert [(e.kind, e.month) for e in entries] == [("trips", "2030-01")]
    assert parse_catalogue("<p>no links <a href=", "http://example.org/") == []


def test_downloads_months_with_manifest(portal, config, tmp_path):
    paths = download("2018-09", "2018-10", tmp_path, catalogue_url=portal.catalogue, config=config)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "snapshots/Bicimad_Estacions_201809.zip", "snapshots/Bicimad_Estacions_201810.zip",
        "trips/201809_Usage_Bicimad.zip", "trips/201810_Usage_Bicimad.zip"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for path in paths:
        served = portal.files[portal.path_of[path.stem]]
        assert path.read_bytes() == served
        record = manifest["files"][f"{path.parent.name}/{path.stem}"]
        assert record["sha256"] == _sha(served) and record["size"] == len(served)
        assert record["url"] == portal.base + portal.path_of[path.stem]
        assert zipfile.ZipFile(path).namelist() == [f"{path.stem}.json"]
    assert not list(tmp_path.rglob("*.part"))


def test_kinds_and_month_range_select_files(portal, config, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        paths = download("2018-10", "2018-11", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue,
                         config=config)
    assert [p.name for p in paths] == ["201810_Usage_Bicimad.zip"]
    assert "no trips file for 2018-11" in caplog.text


def test_complete_files_are_skipped_and_damaged_ones_fetched_again(portal, config, tmp_path):
    download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config)
    before = len(portal.requests)
    paths = download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config)
    assert len(paths) == 2
    assert portal.requests[before:] == [("/Datos-generales", None)]  # only the catalogue
    damaged = tmp_path / "trips/201809_Usage_Bicimad.zip"
    damaged.write_bytes(b"PK\x03\x04 damaged")
    download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config)
    assert damaged.read_bytes() == portal.files[portal.path_of["201809_Usage_Bicimad"]]
    assert len(_file_requests(portal, "201809_Usage_Bicimad")) == 2


def test_5xx_is_retried_with_exponential_backoff(portal, config, tmp_path):
    path = portal.path_of["201809_Usage_Bicimad"]
    portal.faults[path] = ["500", "503", "500"]
    portal.faults["/Datos-generales"] = ["503"]
    sleeps = []
    paths = download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue,
                     config=config, sleep=sleeps.append)
    assert paths[0].read_bytes() == portal.files[path]
    assert sleeps == [0.01, 0.01, 0.02, 0.04]  # catalogue retried once, the file three times
    assert len(_file_requests(portal, "201809_Usage_Bicimad")) == 4


def test_dropped_connection_resumes_with_range(portal, config, tmp_path):
    path = portal.path_of["201809_Usage_Bicimad"]
    size = len(portal.files[path])
    portal.faults[path] = ["drop"]
    paths = download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert paths[0].read_bytes() == portal.files[path]
    ranges = [r for _, r in _file_requests(portal, "201809_Usage_Bicimad")]
    assert ranges[0] is None and len(ranges) == 2
    resumed_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= size // 2  # only what had arrived intact is kept


def test_server_ignoring_range_restarts_cleanly(portal, config, tmp_path):
    path = portal.path_of["201809_Usage_Bicimad"]
    portal.faults[path] = ["drop", "norange"]
    paths = download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert paths[0].read_bytes() == portal.files[path]  # not the first half twice
    assert len(_file_requests(portal, "201809_Usage_Bicimad")) == 2


def test_slow_and_stalled_responses_time_out_and_recover(portal, config, tmp_path):
    trips = portal.path_of["201809_Usage_Bicimad"]
    snaps = portal.path_of["Bicimad_Estacions_201809"]
    portal.faults[trips] = ["slow"]
    portal.faults[snaps] = ["stall"]
    portal.stall_s = 1.0
    paths = download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config)
    assert [p.read_bytes() for p in paths] == [portal.files[trips], portal.files[snaps]]
    stalled = [r for _, r in _file_requests(portal, "Bicimad_Estacions_201809")]
    assert stalled[0] is None and stalled[1].startswith("bytes=") and stalled[1] != "bytes=0-"


def test_interrupted_run_leaves_partial_that_the_next_run_resumes(portal, config, tmp_path):
    path = portal.path_of["201809_Usage_Bicimad"]
    body = portal.files[path]
    portal.faults[path] = ["drop"] + ["500"] * 3
    with pytest.raises(DownloadError) as err:
        download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert portal.base + path in str(err.value) and "HTTP 500" in str(err.value)
    part = tmp_path / "trips/.201809_Usage_Bicimad.part"
    kept = part.stat().st_size
    assert 0 < kept <= len(body) // 2 and part.read_bytes() == body[:kept]
    assert not (tmp_path / "trips/201809_Usage_Bicimad.zip").exists()
    assert not (tmp_path / "manifest.json").exists()
    paths = download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert paths[0].read_bytes() == body
    assert _file_requests(portal, "201809_Usage_Bicimad")[-1][1] == f"bytes={kept}-"
    assert not part.exists()


def test_not_found_fails_at_once_and_keeps_earlier_files(portal, config, tmp_path):
    del portal.files[portal.path_of["Bicimad_Estacions_201809"]]
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config,
                 sleep=lambda s: pytest.fail("a 404 must not be retried"))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert list(manifest["files"]) == ["trips/201809_Usage_Bicimad"]


def test_extension_from_content_disposition(portal, config, tmp_path):
    path = portal.path_of["201810_Usage_Bicimad"]
    portal.files[path] = b'{ "_id" : { "$oid" : "5b89bdf27a80090a160f1b98" } }\n'
    portal.headers[path]["Content-Disposition"] = 'attachment; filename="201810_Usage_Bicimad.JSON"'
    paths = download("2018-10", "2018-10", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert paths[0].name == "201810_Usage_Bicimad.json"


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="start month"):
        download("2018-9x", "2018-10", tmp_path)
    with pytest.raises(ValueError, match="before start"):
        download("2018-10", "2018-09", tmp_path)
    with pytest.raises(ValueError, match="unknown kind"):
        download("2018-09", "2018-09", tmp_path, kinds=("weather",))


def test_unreachable_catalogue_gives_up(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = PortalConfig(connect_timeout_s=0.5, retries=1, backoff_s=0.0)
    with pytest.raises(DownloadError, match=f"127.0.0.1:{port}.*gave up after 2 attempts"):
        download("2018-09", "2018-09", tmp_path, catalogue_url=f"http://127.0.0.1:{port}/x", config=config,
                 session=requests.Session())


def test_503_then_200_is_retried_after_the_backoff(portal, config, tmp_path):
    path = portal.path_of["201810_Usage_Bicimad"]
    portal.faults[path] = ["503"]
    sleeps = []
    paths = download("2018-10", "2018-10", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue,
                     config=config, sleep=sleeps.append)
    assert paths[0].read_bytes() == portal.files[path]
    assert sleeps == [0.01]  # Retry-After: 0 asks for no wait; the backoff still applies
    assert [r[1] for r in _file_requests(portal, "201810_Usage_Bicimad")] == [None, None]


def test_retry_after_is_honoured_and_capped(portal, tmp_path):
    path = portal.path_of["201810_Usage_Bicimad"]
    portal.faults[path] = ["retry-after:503:7", "retry-after:429:99999", "retry-after:503:soon"]
    config = PortalConfig(read_timeout_s=2.0, retries=3, backoff_s=0.01, max_wait_s=30.0)
    sleeps = []
    paths = download("2018-10", "2018-10", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue,
                     config=config, sleep=sleeps.append)
    assert paths[0].read_bytes() == portal.files[path]
    # 7 s as asked; 99999 s capped at max_wait_s; an unreadable Retry-After leaves the backoff (0.04 s).
    assert sleeps == [7, 30.0, 0.04]


def test_retry_budget_is_shared_by_broken_bodies_and_5xx(portal, config, tmp_path):
    path = portal.path_of["201809_Usage_Bicimad"]
    portal.faults[path] = ["drop", "500", "drop", "500"]
    with pytest.raises(DownloadError, match="gave up after 4 attempts"):
        download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert len(_file_requests(portal, "201809_Usage_Bicimad")) == 4


@pytest.mark.parametrize("fault", ["ok", "unannounced"])
def test_file_above_the_size_limit_is_refused_and_nothing_kept(portal, tmp_path, fault):
    path = portal.path_of["201809_Usage_Bicimad"]
    size = len(portal.files[path])
    portal.faults[path] = [fault]
    config = PortalConfig(read_timeout_s=2.0, retries=1, backoff_s=0.0, max_file_bytes=size // 3)
    with pytest.raises(DownloadError, match=rf"{path}: the file (is {size}|is larger than {size // 3}) bytes, "
                                            rf"above the limit of {size // 3} bytes"):
        download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config,
                 sleep=lambda s: pytest.fail("a file over the limit must not be retried"))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial, no file, no manifest
    # The same file under a limit it fits is downloaded whole.
    config = PortalConfig(read_timeout_s=2.0, retries=1, backoff_s=0.0, max_file_bytes=size)
    portal.faults[path] = [fault]
    paths = download("2018-09", "2018-09", tmp_path, kinds=("trips",), catalogue_url=portal.catalogue, config=config)
    assert paths[0].read_bytes() == portal.files[path]


def test_catalogue_page_above_its_limit_is_refused(portal, tmp_path):
    config = PortalConfig(read_timeout_s=2.0, retries=0, max_page_bytes=1000)
    with pytest.raises(DownloadError, match="catalogue page is .* above the limit of 1000 bytes"):
        download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://opendata.emtmadrid.es/x", "opendata.emtmadrid.es/x"])
def test_only_http_catalogues_are_fetched(tmp_path, url):
    with pytest.raises(DownloadError, match=r"portal catalogue: '.*' is not an http:// or https:// URL"):
        download("2018-09", "2018-09", tmp_path, catalogue_url=url)


def test_corrupt_manifest_is_named(portal, config, tmp_path):
    (tmp_path / "manifest.json").write_text('{"files": ["not", "an", "object"]}')
    with pytest.raises(DownloadError, match="manifest.json: manifest is not an object with a 'files' object"):
        download("2018-09", "2018-09", tmp_path, catalogue_url=portal.catalogue, config=config)
