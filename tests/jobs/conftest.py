"""Shared by the job tests: a small synthetic city in EMT's raw formats and a fast nightly config."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


def small_city_config(root: Path, *, seed: int, n_stations: int, trips_per_day: int, planners=("noop", "greedy"),
                      dispatch: str = "greedy", seeds: int = 1, rounds: int = 20, days: int = 9) -> Path:
    """Write a ``days``-day city under ``root/raw`` and a nightly config reading it as local files;
    return the config's path."""
    from bicimad.opendata.synthetic import write_city

    write_city(root / "raw", seed=seed, n_stations=n_stations, days=days, trip_days=2, trips_per_day=trips_per_day)
    config = root / "nightly.toml"
    config.write_text(textwrap.dedent(f"""
        planners = {json.dumps(list(planners))}
        dispatch = "{dispatch}"
        seeds = {seeds}
        [source]
        kind = "local"
        paths = ["{root / 'raw' / 'synthetic'}"]
        [demand]
        history_days = 7
        rounds = {rounds}
    """), encoding="utf-8")
    return config
