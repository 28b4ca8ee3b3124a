"""The sweep engine on a small pure task function: seeds, resume, local pool vs in-process."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bicimad.jobs import whatif
from bicimad.jobs.whatif import SweepGrid, WhatIfConfig, make_tasks, run_sweep


def queue_task(task: whatif.Task) -> dict:
    """A seeded toy day: Poisson pickups against a stock that trucks top up."""
    rng = np.random.default_rng(task.seed)
    stock = 10.0
    empty_hours = 0
    for _ in range(24 * task.days):
        stock = max(0.0, stock - rng.poisson(4 * task.demand_scale) + rng.poisson(3))
        stock = min(20.0, stock + task.trucks * (task.planner == "greedy"))
        empty_hours += stock == 0
    return {"problem_share": empty_hours / (24 * task.days), "task_s": float(rng.random())}


class Crash(RuntimeError):
    pass


def crash_after(n: int):
    calls = []

    def fn(task):
        if len(calls) == n:
            raise Crash(f"killed after {n} tasks")
        calls.append(task.task_id)
        return queue_task(task)
    return fn, calls


CONFIG = WhatIfConfig(planners=("noop", "greedy"), seeds=3, seed=11,
                      grid=SweepGrid(trucks=(0, 2, 6), demand_scale=(0.8, 1.3)))


def test_tasks_cover_the_grid_with_common_seeds():
    tasks = make_tasks(CONFIG)
    assert len(tasks) == 3 * 2 * 2 * 3
    assert len({t.task_id for t in tasks}) == len(tasks)
    by_index = {}
    for t in tasks:
        by_index.setdefault(t.seed_index, set()).add(t.seed)
    # common random numbers: one seed per index across planners and fleet sizes, distinct across indices
    assert all(len(s) == 1 for s in by_index.values())
    assert len({next(iter(s)) for s in by_index.values()}) == 3
    assert make_tasks(CONFIG) == tasks
    assert [t.seed for t in make_tasks(dataclasses.replace(CONFIG, seed=12))] != [t.seed for t in tasks]


def test_interrupted_sweep_resumes_without_rerunning_finished_tasks(tmp_path):
    tasks = make_tasks(CONFIG)
    fn, calls = crash_after(7)
    with pytest.raises(whatif.TaskFailed, match="killed after 7 tasks") as err:
        run_sweep(tasks, fn, tmp_path / "sweep", workers=1, progress=False)
    assert tasks[7].task_id in str(err.value)
    assert len(list((tmp_path / "sweep" / "tasks").glob("*.json"))) == 7

    fn2, calls2 = crash_after(10_000)
    rows = run_sweep(tasks, fn2, tmp_path / "sweep", workers=1, progress=False)
    assert len(calls2) == len(tasks) - 7 and not set(calls) & set(calls2)
    clean = run_sweep(tasks, queue_task, tmp_path / "clean", workers=1, progress=False)
    assert rows == clean
    assert [r["task_id"] for r in rows] == [t.task_id for t in tasks]


def test_changed_task_definition_is_run_again(tmp_path):
    tasks = make_tasks(CONFIG)[:4]
    run_sweep(tasks, queue_task, tmp_path, workers=1, progress=False)
    reseeded = make_tasks(dataclasses.replace(CONFIG, seed=99))[:4]
    fn, calls = crash_after(10_000)
    run_sweep(reseeded, fn, tmp_path, workers=1, progress=False)
    assert len(calls) == 4
    stored = json.loads((tmp_path / "tasks" / f"{reseeded[0].task_id}.json").read_text())
    assert stored["task"]["seed"] == reseeded[0].seed


def test_process_pool_equals_in_process(tmp_path):
    tasks = make_tasks(CONFIG)
    pooled = run_sweep(tasks, queue_task, tmp_path / "pool", workers=2, progress=False)
    serial = run_sweep(tasks, queue_task, tmp_path / "serial", workers=1, progress=False)
    assert pooled == serial


def test_outputs_table_intervals_and_plots(tmp_path):
    import pandas as pd

    rows = run_sweep(make_tasks(CONFIG), queue_task, tmp_path, workers=1, progress=False)
    written = whatif.write_outputs(rows, tmp_path)
    results = pd.read_parquet(written["results_parquet"])
    assert len(results) == len(rows) and pd.read_csv(written["results_csv"]).shape == results.shape
    intervals = pd.read_csv(written["intervals"])
    assert len(intervals) == 3 * 2 * 2 and (intervals["seeds"] == 3).all()
    assert ((intervals["lo"] <= intervals["mean"]) & (intervals["mean"] <= intervals["hi"])).all()
    plots = [p for k, p in written.items() if k.startswith("plot")]
    assert len(plots) == 2 and all(p.stat().st_size > 5000 for p in plots)  # one per demand multiplier
    page = written["report"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2 and page.count("<tr") == len(intervals) + 1
