"""Job machinery: TOML configs as frozen dataclasses, the run lock, the step ledger."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

from bicimad.io import atomic_open
from bicimad.jobs.batch import (
    ConfigError,
    Ledger,
    LockHeld,
    RunLock,
    Step,
    StepResult,
    config_to_dict,
    load_config,
    run_steps,
    write_config,
)
from bicimad.jobs.whatif import SweepGrid, WhatIfConfig


def _write(tmp_path, text):
    path = tmp_path / "job.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_config_round_trips_through_toml(tmp_path):
    path = _write(tmp_path, """
        name = "fleet"
        planners = ["noop", "greedy"]
        seeds = 2
        [grid]
        trucks = [0, 6, 12]
        demand_scale = [0.8, 1, 1.3]
    """)
    config = load_config(WhatIfConfig, path)
    assert config.grid.trucks == (0, 6, 12)
    assert config.grid.demand_scale == (0.8, 1.0, 1.3)  # an int in a float list is accepted
    assert config.grid.truck_capacity == SweepGrid().truck_capacity
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seeds = 5
    again = load_config(WhatIfConfig, write_config(config, tmp_path / "copy.toml"))
    assert again == config
    assert "start" not in config_to_dict(config)  # None is left out (TOML has no null)


@pytest.mark.parametrize("text, key", [
    ("seedz = 3", "unknown key seedz"),
    ("[grid]\ntrucks = [0, 2]\nradius = [3.5]", "unknown key grid.radius"),
    ("seeds = 'three'", "seeds: expected int, got str"),
    ("[grid]\ntrucks = [0, 'six']", r"grid.trucks\[1\]: expected int"),
    ("planners = 'greedy'", "planners: expected a list"),
    ("seeds = 0", "seeds: must be >= 1"),
    ("[grid]\ntrucks = []", "grid.trucks: needs at least one value"),
    ("grid = 3", "grid: expected a table"),
    ("seeds = true", "seeds: expected int, got bool"),
    ("seeds = [", "not valid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=key) as err:
        load_config(WhatIfConfig, path)
    assert str(path) in str(err.value)


def test_lock_refuses_a_second_holder_and_names_the_pid(tmp_path):
    lock_path = tmp_path / "job.lock"
    with RunLock(lock_path):
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            RunLock(lock_path).acquire()
    # released: the next run gets it
    with RunLock(lock_path):
        pass


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    lock_path = tmp_path / "job.lock"
    code = (f"import os, signal; from bicimad.jobs.batch import RunLock; RunLock({str(lock_path)!r}).acquire(); "
            "print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    dead_pid = done.stdout.strip()
    assert done.returncode == -9 and f"pid {dead_pid}" in lock_path.read_text()
    with RunLock(lock_path):
        assert f"pid {os.getpid()}" in lock_path.read_text()


def _writer(name, calls):
    def run(ctx):
        calls.append(name)
        out = ctx / f"{name}.txt"
        with atomic_open(out) as fh:
            fh.write(f"{name} from {len(calls)}\n")
        return StepResult(outputs=[out], facts={"n": len(calls)})
    return Step(name, run)


def test_ledger_skips_done_steps_and_reruns_changed_outputs(tmp_path):
    calls = []
    steps = [_writer(n, calls) for n in ("a", "b", "c")]
    assert run_steps(steps, tmp_path, Ledger(tmp_path / "ledger.json")) == {"a": "done", "b": "done", "c": "done"}
    assert run_steps(steps, tmp_path, Ledger(tmp_path / "ledger.json")) == {"a": "skipped", "b": "skipped",
                                                                            "c": "skipped"}
    assert calls == ["a", "b", "c"]
    (tmp_path / "b.txt").write_text("tampered\n")
    # b's output changed: b and everything after it run again, a stays
    assert run_steps(steps, tmp_path, Ledger(tmp_path / "ledger.json")) == {"a": "skipped", "b": "done", "c": "done"}
    assert calls == ["a", "b", "c", "b", "c"]


def test_failed_step_is_not_recorded(tmp_path):
    calls = []

    def boom(ctx):
        raise RuntimeError("disk full")

    ledger = Ledger(tmp_path / "ledger.json")
    with pytest.raises(RuntimeError):
        run_steps([_writer("a", calls), Step("b", boom), _writer("c", calls)], tmp_path, ledger)
    assert set(Ledger(tmp_path / "ledger.json").entries) == {"a"}
    status = run_steps([_writer("a", calls), _writer("b", calls), _writer("c", calls)], tmp_path,
                       Ledger(tmp_path / "ledger.json"))
    assert status == {"a": "skipped", "b": "done", "c": "done"}
