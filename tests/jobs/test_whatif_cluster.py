"""The what-if sweep on a real two-node Ray cluster: a head and a worker node started as separate
processes on 127.0.0.1 (``ray start --head``, ``ray start --address``), one CPU each.

Checks: the sweep run with ``bicimad whatif --ray ADDRESS`` equals the local run (timing columns
aside); a task whose worker process is killed mid-sweep is retried by Ray, and the results table
holds every task exactly once with the same values as an undisturbed run.

Each node is started with ``--block`` in its own process group and stopped by signalling that
group, so teardown ends this cluster's processes only (``ray stop`` would end every Ray process
of the user on the machine).
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from bicimad.config import REPO_ROOT
from bicimad.jobs import whatif
from bicimad.jobs.whatif import TIMING_COLUMNS, SweepGrid, WhatIfConfig, make_tasks, run_sweep

RAY = Path(sys.executable).parent / "ray"
SCENARIO = """
name = "small"
[network]
source = "synthetic"
stations = 40
seed = 3
"""


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _node_command(head: bool, gcs_port: int, temp_dir: str) -> list[str]:
    ports = _free_ports(6)
    cmd = [str(RAY), "start", "--block", "--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
           f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
           f"--metrics-export-port={ports[2]}", f"--dashboard-agent-listen-port={ports[3]}",
           f"--dashboard-agent-grpc-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
           # worker ports away from other clusters' defaults (10002-19999)
           f"--min-worker-port={20000 + 200 * head + gcs_port % 40 * 400}",
           f"--max-worker-port={20000 + 200 * head + gcs_port % 40 * 400 + 199}"]
    if head:
        return cmd + ["--head", f"--port={gcs_port}", "--include-dashboard=false", f"--temp-dir={temp_dir}",
                      f"--ray-client-server-port={_free_ports(1)[0]}"]
    return cmd + [f"--address=127.0.0.1:{gcs_port}"]


def _alive_nodes(address: str, env: dict) -> int:
    probe = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(procs: list[subprocess.Popen]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    """The address of a head and a worker node (1 CPU each) started for this module."""
    if not RAY.exists():
        pytest.skip(f"no ray executable at {RAY}")
    temp_dir = tempfile.mkdtemp(prefix="bmray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}  # a private test cluster: no token
    gcs_port = _free_ports(1)[0]
    address = f"127.0.0.1:{gcs_port}"
    procs = []
    try:
        for head in (True, False):
            procs.append(subprocess.Popen(_node_command(head, gcs_port, temp_dir), env=env, start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 90
            while not (_listening(gcs_port) if head else _alive_nodes(address, env) == 2):
                if procs[-1].poll() is not None:  # ray is installed: a node that cannot start is a failure
                    pytest.fail(f"`ray start` exited {procs[-1].returncode} (a missing Ray dependency such as grpcio?)")
                if time.monotonic() > deadline:
                    pytest.skip("`ray start`: the node did not come up within 90 s")
                time.sleep(0.5)
        yield address, env
    finally:
        _stop(procs)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _strip(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def test_cli_sweep_on_two_node_cluster_equals_local_run(cluster, tmp_path):
    address, env = cluster
    (tmp_path / "small.toml").write_text(SCENARIO, encoding="utf-8")
    config = tmp_path / "sweep.toml"
    config.write_text(textwrap.dedent(f"""
        name = "cluster"
        scenario = "{tmp_path / 'small.toml'}"
        planners = ["noop", "greedy"]
        days = 2
        seeds = 2
        [grid]
        trucks = [0, 3]
    """), encoding="utf-8")
    outs = {"local": tmp_path / "local", "ray": tmp_path / "ray"}
    # the local run in this process; the cluster run through the command line
    whatif.whatif_command(str(config), out=outs["local"], workers=1, progress=False, target_problem_share=0.2)
    done = subprocess.run([sys.executable, "-m", "bicimad", "whatif", "--config", str(config), "--out",
                           str(outs["ray"]), "--no-progress", "--target-problem-share", "0.2", "--ray", address],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8 tasks (6 simulated" in done.stdout and "greedy" in done.stdout
    local, on_ray = (pd.read_csv(outs[m] / "results.csv") for m in ("local", "ray"))
    assert len(local) == 8 and local["task_id"].is_unique
    pd.testing.assert_frame_equal(_strip(on_ray), _strip(local))
    pd.testing.assert_frame_equal(pd.read_csv(outs["ray"] / "trucks_needed.csv"),
                                  pd.read_csv(outs["local"] / "trucks_needed.csv"))


def kill_worker_once(marker_dir: str, victim: str, task: whatif.Task) -> dict:
    """``simulate_task``, except that the first run of task ``victim`` kills its own worker
    process (SIGKILL: no clean-up, as a node lost mid-task) after leaving a marker."""
    marker = Path(marker_dir) / f"{task.task_id}.killed"
    if task.task_id == victim and not marker.exists():
        marker.write_text(str(os.getpid()), encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    (Path(marker_dir) / f"{task.task_id}.{os.getpid()}.ran").write_text("", encoding="utf-8")
    return whatif.simulate_task(task)


def test_task_of_a_killed_worker_is_retried_with_nothing_lost_or_duplicated(cluster, tmp_path, monkeypatch):
    import ray

    address, env = cluster
    (tmp_path / "small.toml").write_text(SCENARIO, encoding="utf-8")
    tasks = make_tasks(WhatIfConfig(scenario=str(tmp_path / "small.toml"), planners=("greedy",), seeds=2, seed=9,
                                    grid=SweepGrid(trucks=(2, 4, 6))))
    victim = tasks[2].task_id
    markers = tmp_path / "markers"
    markers.mkdir()
    fn = functools.partial(kill_worker_once, str(markers), victim)
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(address=address, log_to_driver=False)
    try:
        rows = run_sweep(tasks, fn, tmp_path / "ray", ray_address=address, progress=False)
    finally:
        ray.shutdown()
    killed = (markers / f"{victim}.killed").read_text()
    ran = sorted(p.name for p in markers.glob("*.ran"))
    assert [r for r in ran if r.startswith(victim)] and not any(r == f"{victim}.{killed}.ran" for r in ran)
    assert len(ran) == len(tasks)  # every task finished once; the killed attempt did not
    results = pd.DataFrame(rows)
    assert list(results["task_id"]) == [t.task_id for t in tasks]
    assert len(list((tmp_path / "ray" / "tasks").glob("*.json"))) == len(tasks)
    clean = pd.DataFrame(run_sweep(tasks, whatif.simulate_task, tmp_path / "local", workers=1, progress=False))
    pd.testing.assert_frame_equal(_strip(results), _strip(clean))
