"""Run folders generated for report tests: a small seeded network with two planners."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bicimad.config import TZ
from bicimad.opendata.schemas import write_table
from bicimad.report.occupancy import summarise, summary_table


def make_stations(n: int, rng: np.random.Generator) -> pd.DataFrame:
    now = pd.Timestamp("2018-09-01", tz=TZ)
    return pd.DataFrame({
        "station_id": np.arange(1, n + 1),
        "number": [f"{i}a" for i in range(1, n + 1)],
        "name": [f"Plaza {i}" for i in range(1, n + 1)],
        "address": [f"Calle {i}" for i in range(1, n + 1)],
        "lat": 40.42 + rng.normal(0, 0.01, n),
        "lon": -3.70 + rng.normal(0, 0.012, n),
        "capacity": rng.integers(15, 30, n),
        "first_seen": now, "last_seen": now, "source": "test",
    })


def make_occupancy(station_ids, days: int, p_problem: float, rng: np.random.Generator) -> pd.DataFrame:
    """States drawn per station-hour; problems likelier at 08 and 18-20 h, as in Madrid."""
    hours = pd.date_range("2018-09-03", periods=24 * days, freq="h", tz=TZ)
    grid = pd.MultiIndex.from_product([station_ids, hours], names=["station_id", "hour"]).to_frame(index=False)
    peak = grid["hour"].dt.hour.isin([8, 18, 19, 20]).to_numpy()
    p = np.where(peak, min(1.0, 2.5 * p_problem), p_problem)
    problem = rng.random(len(grid)) < p
    kind = rng.choice(["empty", "full", "empty_and_full"], size=len(grid), p=[0.6, 0.25, 0.15])
    grid["state"] = np.where(problem, kind, "balanced")
    grid["lost_trips"] = np.where(np.isin(grid["state"], ["empty", "empty_and_full"]), rng.integers(1, 4, len(grid)), 0)
    grid["diverted_returns"] = np.where(np.isin(grid["state"], ["full", "empty_and_full"]), rng.integers(1, 3, len(grid)), 0)
    return grid


def write_run(folder, stations, planners: dict[str, float], rng: np.random.Generator, days: int = 2):
    folder.mkdir(parents=True)
    write_table(stations, "stations", folder / "stations.parquet")
    rows = []
    for planner, p in planners.items():
        frame = make_occupancy(stations["station_id"], days, p, rng)
        write_table(frame, "occupancy", folder / "occupancy" / f"{planner}.parquet")
        rows.append(summarise(frame, planner, bikes_moved=rng.integers(0, 500), truck_km=rng.uniform(0, 300),
                              decision_s_per_hour=rng.uniform(0, 1)))
    summary_table(rows).to_csv(folder / "occupancy.csv", index=False)
    return folder


@pytest.fixture
def two_runs(tmp_path):
    rng = np.random.default_rng(7)
    stations = make_stations(25, rng)
    a = write_run(tmp_path / "runs" / "2018-09-03", stations, {"noop": 0.18, "greedy": 0.12}, rng)
    b = write_run(tmp_path / "runs" / "2018-09-04", stations, {"noop": 0.20, "ortools": 0.09}, rng)
    return a, b


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

#: Chromium flags that cut it off the network: no name resolves and every request goes to a
#: proxy that is not there (file:// pages still load).
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                 "--proxy-bypass-list=<-loopback>")


@pytest.fixture
def chromium(tmp_path):
    """A factory of headless Chromium drivers (``offline=True``: without network); skips where
    Debian's chromium and chromium-driver are missing."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(offline: bool = False, size: str = "1200,2000"):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={size}", f"--user-data-dir={tmp_path / f'chromium-profile-{len(drivers)}'}"]
        for flag in flags + (list(OFFLINE_FLAGS) if offline else []):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        drivers.append(webdriver.Chrome(service=Service(CHROMEDRIVER), options=options))
        return drivers[-1]

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture
def browser(chromium):
    return chromium()


def make_plan(stations: pd.DataFrame, trucks: int, hours: int, rng: np.random.Generator,
              day: str = "2018-09-05") -> pd.DataFrame:
    """A plan as plans.csv holds it (one planner): per truck and hour two visits, a load then an
    unload of the same bikes, so the truck's load stays within 0..22."""
    rows = []
    for truck in range(1, trucks + 1):
        for hour in pd.date_range(day, periods=hours, freq="h", tz=TZ):
            take, give = rng.choice(stations["station_id"].to_numpy(), 2, replace=False)
            bikes = int(rng.integers(1, 12))
            rows += [(truck, str(hour), 1, int(take), bikes, "load"), (truck, str(hour), 2, int(give), -bikes, "unload")]
    plan = pd.DataFrame(rows, columns=["truck", "hour", "order", "station_id", "bikes", "action"])
    names = stations[["station_id", "number", "name"]]
    return plan.merge(names, on="station_id", how="left")[
        ["truck", "hour", "order", "station_id", "number", "name", "bikes", "action"]]


@pytest.fixture
def nightly_run(tmp_path):
    """A run folder as the nightly job leaves it: three planners' occupancy, the summary with means
    over three draws, the start snapshot, the dispatched plan and its route sheet and pages."""
    from bicimad.report import routes

    rng = np.random.default_rng(11)
    stations = make_stations(30, rng)
    folder = write_run(tmp_path / "runs" / "2018-09-04", stations, {"noop": 0.2, "greedy": 0.12, "ortools": 0.1},
                       rng, days=1)
    summary = pd.read_csv(folder / "occupancy.csv")
    summary["balanced"] = summary["balanced"] + 1 / 3  # means over 3 draws are not whole
    summary["decision_s_per_hour"] = [2.27e-06, 1.1e-4, 0.07]
    summary["problem_share_lo"] = summary["problem_share"] - [0.6, 0.02, 0.01]  # noop's bound below 0
    summary["problem_share_hi"] = summary["problem_share"] + 0.02
    summary["seeds"] = 3
    summary.to_csv(folder / "occupancy.csv", index=False)
    ts = pd.Timestamp("2018-09-04 23:30", tz=TZ)
    start = pd.DataFrame({"ts": ts, "station_id": stations["station_id"], "bikes": stations["capacity"] // 2,
                          "free_docks": stations["capacity"] - stations["capacity"] // 2,
                          "capacity": stations["capacity"], "available": True, "source": "test"})
    write_table(start, "snapshots", folder / "start.parquet")
    plan = make_plan(stations, trucks=3, hours=4, rng=rng)
    plan.to_csv(folder / "plan.csv", index=False)
    sheet = routes.route_sheet(plan, stations, [1, 2, 3], speed_kmh=20, detour=1.3)
    routes.write_route_csv(sheet, folder / "route_sheet.csv")
    routes.write_route_pages(sheet, folder)
    return folder
