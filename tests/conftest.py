"""Shared fixtures. Real-data tests read ``$BICIMAD_SHARED_DATA`` (default ../shared/data/bicimad)
and skip with a clear reason where it is absent."""

from __future__ import annotations

import os

import pytest

from bicimad.config import shared_data_dir

# Every Ray cluster the tests start is private to the test run (in this process or in `ray start`
# subprocesses): no token authentication. Set once for the whole run, so the clusters started in
# this process do not disagree with each other on it whatever the order the tests run in (without
# it, a local cluster started after a test connected to a `ray start` cluster failed with
# InvalidAuthToken).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def shared_data():
    """Root of the real EMT data (the folder holding PROVENANCE.md and raw/)."""
    root = shared_data_dir()
    if not (root / "raw").is_dir():
        pytest.skip(f"real EMT data not found at {root} (set BICIMAD_SHARED_DATA)")
    return root


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty, isolated $BICIMAD_DATA_DIR."""
    root = tmp_path / "data"
    monkeypatch.setenv("BICIMAD_DATA_DIR", str(root))
    return root
