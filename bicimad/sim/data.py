"""Simulator inputs from the processed tables: the network at a snapshot, demand, real trips."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from bicimad.config import TZ, processed_dir
from bicimad.opendata.schemas import read_table
from bicimad.sim.network import Network


@dataclass
class Processed:
    """The processed tables the simulator reads (``trips`` and ``station_hours`` may be absent)."""

    stations: pd.DataFrame
    snapshots: pd.DataFrame
    station_hours: pd.DataFrame | None = None
    trips: pd.DataFrame | None = None

    @classmethod
    def load(cls, data_dir: str | os.PathLike | None = None, with_hours: bool = True,
             with_trips: bool = False) -> Processed:
        root = processed_dir(data_dir)
        hours = root / "station_hours.parquet"
        trips = root / "trips.parquet"
        return cls(
            stations=read_table("stations", root / "stations.parquet"),
            snapshots=read_table("snapshots", root / "snapshots.parquet"),
            station_hours=read_table("station_hours", hours) if with_hours and hours.exists() else None,
            trips=read_table("trips", trips) if with_trips and trips.exists() else None,
        )

    def instants(self, start=None, end=None) -> pd.DatetimeIndex:
        """Snapshot instants (sorted), optionally within ``[start, end)``."""
        ts = pd.DatetimeIndex(self.snapshots["ts"].unique()).sort_values()
        if start is not None:
            ts = ts[ts >= _local(start)]
        if end is not None:
            ts = ts[ts < _local(end)]
        return ts

    def snapshot_at(self, ts) -> pd.DataFrame:
        """The rows of the first snapshot at or after ``ts`` (within an hour)."""
        ts = _local(ts)
        later = self.instants(ts, ts + pd.Timedelta(hours=1))
        if len(later) == 0:
            raise LookupError(f"no snapshot within an hour after {ts}")
        return self.snapshots[self.snapshots["ts"] == later[0]]

    def network_at(self, ts) -> Network:
        """The stations and docked bikes of the first snapshot at or after ``ts``."""
        return Network.from_tables(self.stations, self.snapshot_at(ts))


def _local(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize(TZ) if ts.tzinfo is None else ts.tz_convert(TZ)
