"""Fuzzing the readers: random bytes and random mutations of real raw files (small prefixes of
``../shared/data/bicimad/raw``) give records, rejects or an :class:`IngestError`, never another
exception; and an ingest of such a file never loses what was ingested before."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bicimad.errors import CommandError
from bicimad.jobs.ingest import IngestSources, ingest
from bicimad.opendata import normalise, schemas
from bicimad.opendata.archive import Limits
from bicimad.opendata.rejects import IngestError

from .conftest import hourly_snapshots, trip_line, write_lines

#: Names that steer format detection to every reader.
NAMES = ("201907_stations_madrid.json", "201907_movements.json", "stations.json", "bases.csv", "all_stations.csv",
         "EstacionesVacias.xlsx", "Usos092018_Estaciones.xlsx", "situaciones.parquet", "situaciones.txt",
         "201907_movements.zip", "users_configuration.json")
#: Small limits, so that the fuzzer reaches them too.
LIMITS = Limits(max_member_bytes=1 << 20, max_ratio=50, ratio_floor_bytes=4096, max_line_bytes=32 << 10)
_counter = itertools.count()


def _read(folder, name: str, data: bytes) -> None:
    """Read one file to parts: records, rejects or an IngestError; anything else fails the test."""
    sub = folder / f"case{next(_counter)}"
    sub.mkdir()
    path = sub / ("conf_27-06-2018_" + name if name.startswith("users") else name)
    path.write_bytes(data)
    try:
        normalise.read_to_parts(path, path.name, sub / "processed", {}, limits=LIMITS)
    except IngestError as exc:
        assert str(exc)  # a message for the user


def _prefixes(shared_data) -> list[tuple[str, bytes]]:
    out = []
    for path in sorted((shared_data / "raw").rglob("*")):
        if path.is_file() and path.suffix.lower() in (".json", ".csv", ".txt", ".xlsx", ".parquet", ".zip"):
            with open(path, "rb") as fh:
                out.append((path.name, fh.read(48 << 10)))
    return out


@st.composite
def mutated(draw, sources: list[tuple[str, bytes]]):
    """A real file's prefix with a few random edits: flipped bytes, cuts, inserts, repeats."""
    name, data = draw(st.sampled_from(sources))
    data = bytearray(data[: draw(st.integers(64, len(data)))] if len(data) > 64 else data)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(("flip", "cut", "insert", "repeat", "truncate")))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from((b"\x00", b"\xff\xfe", b"\n", b"{", b"]", b'"', b"1e300", b"-1",
                                                 b"\xe9", b"\xef\xbb\xbf", b"NaN", b"[" * 50)))
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 512))]
        else:
            del data[at:]
    return name, bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=3000))
def test_random_bytes_never_raise_anything_else(tmp_path, name, data):
    _read(tmp_path, name, data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), head=st.sampled_from((b"PK\x03\x04", b"PAR1", b'{"_id": "', b"['{", b"[{\"id\": ",
                                                           b"Id_Estacion;", b",id,total_bases,")),
       data=st.binary(max_size=2000))
def test_random_bytes_behind_a_known_head(tmp_path, name, head, data):
    _read(tmp_path, name, head + data)


@pytest.fixture(scope="module")
def real_prefixes(shared_data):
    return _prefixes(shared_data)


def test_mutated_real_files(tmp_path_factory, real_prefixes):
    folder = tmp_path_factory.mktemp("mutated")

    @settings(max_examples=100, deadline=None, database=None)
    @given(case=mutated(real_prefixes))
    def check(case):
        _read(folder, *case)

    check()


def test_nothing_ingested_is_lost(tmp_path_factory, real_prefixes):
    """A good data folder, then ingests of mutated real files: each is accepted or refused
    (quarantined, exit 3), and the good tables' rows are all still there."""
    root = tmp_path_factory.mktemp("folder") / "data"
    good = tmp_path_factory.mktemp("good")
    write_lines(good / "201907_stations_madrid.json", hourly_snapshots("2019-07-01 00:00", 24, n_stations=3))
    write_lines(good / "201907_movements.json",
                [trip_line(f"g{i}", f"2019-07-01T{i % 24:02d}:00:00Z", 1 + i % 3, 2) for i in range(60)])
    ingest(IngestSources(paths=(good,)), data_dir=root, progress=False)
    processed = root / "processed"
    before = {t: schemas.read_table(t, processed / f"{t}.parquet") for t in ("snapshots", "trips")}
    own = {t: df[df["source"].str.startswith("local/")] for t, df in before.items()}
    files = tmp_path_factory.mktemp("fuzzed")

    @settings(max_examples=6, deadline=None, database=None)
    @given(case=mutated(real_prefixes))
    def check(case):
        name, data = case
        path = files / f"zz{next(_counter)}" / name
        path.parent.mkdir()
        path.write_bytes(data)
        try:
            ingest(IngestSources(paths=(path,)), data_dir=root, progress=False, max_reject_share=1.0, limits=LIMITS)
        except CommandError as exc:
            assert exc.code == 3, exc  # refused: bad input, quarantined
        for table, rows in own.items():
            now = schemas.read_table(table, processed / f"{table}.parquet")
            kept = now[now["source"].isin(set(rows["source"]))].reset_index(drop=True)
            pd.testing.assert_frame_equal(kept, rows.reset_index(drop=True), check_dtype=False)  # nulls elsewhere widen ints

    check()
