"""The synthetic city against its generator before its docks ran on the simulator's core.

Until commit ``OLD_GENERATOR`` the city replayed its trips on a dock simulator of its own
(continuous time, its own riding speed, instant truck moves); since then the simulator's core
(:func:`bicimad.sim.core.replay_docks`) runs them. This compares the two generators' key
statistics over the same seeds (30 days, 172 stations), the old one loaded from git:

    .venv/bin/python tests/bench/bench_synthetic.py               # markdown table, seeds 0-4
    .venv/bin/python -m pytest -m bench tests/bench/bench_synthetic.py -s   # the same, checked

Each figure is the mean over seeds (± the standard deviation between seeds). The check: every
statistic of the new generator within 3 standard deviations (between seeds, pooled) or 3 %
of the old one's; weekday trips by hour correlated above 0.99; weekday docked bikes by hour
correlated above 0.95 with the morning and evening dips at the same hours. The docked profile
is the one that moves: a rider at a full dock now rides straight to the nearest dock with room
(the core's rule) instead of trying each next-nearest dock in turn, so fewer bikes are still on
the road after the morning peak (09-11 h: about 5 % more bikes docked).
"""

from __future__ import annotations

import subprocess
import sys
import time
import types
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from bicimad.config import REPO_ROOT, TZ

#: The last commit whose synthetic city had its own dock simulator.
OLD_GENERATOR = "57f14a1"
SEEDS = (0, 1, 2, 3, 4)
#: Statistics compared as scalars (name, what).
SCALARS = {
    "stations": "stations",
    "median_capacity": "median docks per station",
    "fill": "docked bikes / docks at snapshots",
    "docked_min": "fewest docked bikes at a snapshot",
    "docked_max": "most docked bikes at a snapshot",
    "trips_per_day": "realised trips a day",
    "weekday_trips": "realised trips a weekday",
    "weekend_trips": "realised trips a weekend day",
    "lost_per_day": "pickups lost at an empty station a day",
    "diverted_share": "share of trips diverted from a full station",
    "truck_bikes_per_day": "bikes moved by the operator's trucks a day",
    "empty_share": "snapshot station share with 0 bikes",
    "full_share": "snapshot station share with 0 free docks",
    "problem_share": "snapshot station share empty or full",
    "median_duration_s": "median trip duration (s)",
    "mean_abs_net": "mean absolute net flow per station between snapshots",
    "std_net": "std of net flow per station between snapshots",
}
#: Hourly profiles (24 values each): what, and the least correlation between old and new.
PROFILES = {
    "weekday_trips_by_hour": ("weekday realised trips by local hour", 0.99),
    "weekday_docked_by_hour": ("weekday docked bikes by local hour", 0.95),
}
#: Hours in which the weekday docked bikes dip (morning, evening): the same hour old and new.
DIPS = (range(6, 12), range(15, 23))


def old_generator(commit: str = OLD_GENERATOR) -> types.ModuleType:
    """The synthetic city module as it was at ``commit`` (read from git)."""
    source = subprocess.run(["git", "show", f"{commit}:bicimad/opendata/synthetic.py"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType(f"synthetic_at_{commit}")
    module.__file__ = f"{commit}:bicimad/opendata/synthetic.py"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def city_statistics(city) -> dict:
    """The figures of one generated city (a ``SyntheticCity``, old or new)."""
    tz = ZoneInfo(TZ)
    snaps, cap = city.snapshot_bikes, city.capacity
    docked = snaps.sum(axis=1)
    local = [datetime.fromtimestamp(float(t), tz) for t in city.snapshot_ts]
    snap_hour = np.array([t.hour for t in local])
    snap_weekday = np.array([t.weekday() < 5 for t in local])
    trips = city.trips
    days = city.params.days
    weekday_trip = city.day_type[trips["day"]] == 0
    n_weekdays = int(np.count_nonzero(city.day_type == 0))
    net = np.diff(snaps, axis=0)
    moved = city.truck_moves["bikes"].sum()
    return {
        "stations": city.n,
        "median_capacity": float(np.median(cap)),
        "fill": docked.mean() / cap.sum(),
        "docked_min": float(docked.min()),
        "docked_max": float(docked.max()),
        "trips_per_day": len(trips["unplug_ts"]) / days,
        "weekday_trips": np.count_nonzero(weekday_trip) / n_weekdays,
        "weekend_trips": np.count_nonzero(~weekday_trip) / (days - n_weekdays),
        "lost_per_day": len(city.lost_pickups["ts"]) / days,
        "diverted_share": float(trips["diverted"].mean()),
        "truck_bikes_per_day": moved / days,
        "empty_share": float((snaps == 0).mean()),
        "full_share": float((snaps >= cap).mean()),
        "problem_share": float(((snaps == 0) | (snaps >= cap)).mean()),
        "median_duration_s": float(np.median(trips["plug_ts"] - trips["unplug_ts"])),
        "mean_abs_net": float(np.abs(net).mean()),
        "std_net": float(net.std()),
        "weekday_trips_by_hour": np.bincount(trips["hour"][weekday_trip], minlength=24) / n_weekdays,
        "weekday_docked_by_hour": np.array([docked[snap_weekday & (snap_hour == h)].mean() for h in range(24)]),
    }


def compare(seeds=SEEDS, days: int = 30) -> dict:
    """Statistics of the old and the new generator per seed, and their CPU seconds."""
    from bicimad.opendata import synthetic

    old = old_generator()
    result = {}
    for label, module in (("old", old), ("new", synthetic)):
        stats, start = [], time.process_time()
        for seed in seeds:
            stats.append(city_statistics(module.generate_city(seed, days=days)))
        result[label] = {"stats": stats, "cpu_s": (time.process_time() - start) / len(seeds)}
    return result


def _mean_sd(stats: list[dict], key: str) -> tuple[float, float]:
    values = np.array([s[key] for s in stats], dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def table(result: dict) -> str:
    old, new = result["old"]["stats"], result["new"]["stats"]
    lines = [f"| statistic (mean ± sd over {len(old)} seeds) | old ({OLD_GENERATOR}) | new |", "|---|---|---|"]
    for key, what in SCALARS.items():
        (om, osd), (nm, nsd) = _mean_sd(old, key), _mean_sd(new, key)
        digits = 4 if abs(om) < 1 else 2 if abs(om) < 100 else 0
        lines.append(f"| {what} | {om:,.{digits}f} ± {osd:,.{digits}f} | {nm:,.{digits}f} ± {nsd:,.{digits}f} |")
    for key, (what, _) in PROFILES.items():
        a, b = _profiles(old, new, key)
        lines.append(f"| {what}: correlation old vs new; largest difference | 1; 0 | "
                     f"{np.corrcoef(a, b)[0, 1]:.4f}; {np.max(np.abs(b - a)):+,.0f} at {np.argmax(np.abs(b - a))} h |")
    a, b = _profiles(old, new, "weekday_docked_by_hour")
    lines.append(f"| weekday docked-bike dips (h) | {', '.join(str(_dip(a, h)) for h in DIPS)} | "
                 f"{', '.join(str(_dip(b, h)) for h in DIPS)} |")
    lines.append(f"| CPU seconds per 30-day city | {result['old']['cpu_s']:.2f} | {result['new']['cpu_s']:.2f} |")
    return "\n".join(lines)


def differences(result: dict) -> list[str]:
    """The statistics where the new generator leaves the old one's spread (empty: none)."""
    old, new = result["old"]["stats"], result["new"]["stats"]
    off = []
    for key in SCALARS:
        (om, osd), (nm, nsd) = _mean_sd(old, key), _mean_sd(new, key)
        allowed = max(3 * np.hypot(osd, nsd), 0.03 * abs(om))
        if abs(nm - om) > allowed:
            off.append(f"{key}: old {om:.4g}, new {nm:.4g} (allowed ±{allowed:.3g})")
    for key, (_, least) in PROFILES.items():
        r = np.corrcoef(*_profiles(old, new, key))[0, 1]
        if r < least:
            off.append(f"{key}: correlation {r:.4f} (at least {least})")
    a, b = _profiles(old, new, "weekday_docked_by_hour")
    for hours in DIPS:
        if _dip(a, hours) != _dip(b, hours):
            off.append(f"docked-bike dip in {hours.start}-{hours.stop - 1} h: old at {_dip(a, hours)}, new at {_dip(b, hours)}")
    return off


def _profiles(old: list[dict], new: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    return np.mean([s[key] for s in old], axis=0), np.mean([s[key] for s in new], axis=0)


def _dip(profile: np.ndarray, hours: range) -> int:
    return hours.start + int(np.argmin(profile[hours.start:hours.stop]))


@pytest.mark.bench
def test_new_generator_keeps_the_old_ones_statistics():
    try:
        result = compare()
    except subprocess.CalledProcessError:
        pytest.skip(f"the old generator needs the git history (commit {OLD_GENERATOR})")
    print("\n" + table(result))
    assert differences(result) == []


if __name__ == "__main__":
    outcome = compare()
    print(table(outcome))
    print("\n".join(differences(outcome)) or "every statistic within the old generator's spread")
