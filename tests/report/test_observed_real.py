"""Observed occupancy from real snapshots: Sep 2018 against the figures in ARCHITECTURE.md."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bicimad.opendata.schemas import read_table
from bicimad.report.occupancy import occupancy_from_station_hours, state_counts


@pytest.mark.slow
def test_sep_2018_problem_share_at_snapshot_instants(shared_data, tmp_path):
    xlsx = shared_data / "raw" / "stations" / "javomorales_BiciMadAnalysis" / "EstacionesVacias.xlsx"
    done = subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(tmp_path), "ingest", "--no-progress",
                           "--from", str(xlsx)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    observed = occupancy_from_station_hours(read_table("station_hours", tmp_path / "processed" / "station_hours.parquet"))
    counts = state_counts(observed)
    total = sum(counts.values())
    # 30 days x 24 hours x 172 stations, less the 2 hours without a snapshot (09-14, 09-17);
    # the 25th snapshot of 09-10 shares an hour with another and is not a station-hour of its own
    assert total == (720 - 2) * 172
    # ARCHITECTURE.md: empty 8.6 %, full 1.7 %, problem share 10.3 % at the snapshot instant
    assert (counts["empty"] + counts["empty_and_full"]) / total == pytest.approx(0.086, abs=0.002)
    assert (counts["full"] + counts["empty_and_full"]) / total == pytest.approx(0.017, abs=0.002)
