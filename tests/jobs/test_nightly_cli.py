"""The nightly command's guards: config errors name the key, a second concurrent run is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from bicimad.config import REPO_ROOT


def nightly(data_dir, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bicimad", "--data-dir", str(data_dir), "nightly", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


@pytest.mark.parametrize("text, message", [
    ("planners = ['noop']\ndispatch = 'greedy'", "dispatch: 'greedy' is not one of planners"),
    ("[source]\nkind = 'ftp'", "source.kind: must be synthetic, local or portal"),
    ("[demand]\nretrain_every = 3", "unknown key demand.retrain_every"),
    ("seeds = 2.5", "seeds: expected int, got float"),
    ("[source]\nlive = 'gbfs'", "source.live: the synthetic city has no live state"),
])
def test_bad_config_exits_2_naming_the_key(tmp_path, text, message):
    config = tmp_path / "nightly.toml"
    config.write_text(textwrap.dedent(text), encoding="utf-8")
    done = nightly(tmp_path / "data", "--date", "2018-09-10", "--config", str(config))
    assert done.returncode == 2
    assert message in done.stderr and str(config) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "runs" / "nightly" / "2018-09-10").exists()


def test_bad_date_exits_2(tmp_path):
    done = nightly(tmp_path / "data", "--date", "10/09/2018")
    assert done.returncode == 2 and "--date: expected YYYY-MM-DD" in done.stderr


def test_second_concurrent_run_is_refused(tmp_path):
    data = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from bicimad.jobs.batch import RunLock; "
         f"RunLock({str(data / 'runs' / 'nightly.lock')!r}).acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        done = nightly(data, "--date", "2018-09-10")
        assert done.returncode == 75
        assert "another nightly run is in progress" in done.stderr and f"pid {holder.pid}" in done.stderr
        assert time.monotonic() - t0 < 30  # refused at once, not waiting for the lock
        assert not (data / "runs" / "nightly" / "2018-09-10").exists()
    finally:
        holder.kill()
        holder.wait()
