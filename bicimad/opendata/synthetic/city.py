"""The synthetic city's model: its constants, its knobs (:class:`CityParams`), its truth
(:class:`CityTruth`) and what a realisation adds (:class:`SyntheticCity`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from bicimad.geo import pairwise_km
from bicimad.sim.scenario import RiderSpec

#: Business districts (lat, lon, radius m, weight): Sol/Gran Vía, AZCA/Castellana, Atocha.
BUSINESS = ((40.4190, -3.7030, 1300.0, 1.0), (40.4480, -3.6920, 1000.0, 1.0), (40.4070, -3.6910, 600.0, 0.6))
#: Capacities EMT uses, and their shares (median 24, range 12–30).
CAPACITIES = np.array([12, 15, 18, 20, 21, 24, 27, 30])
CAPACITY_SHARES = np.array([0.03, 0.05, 0.09, 0.07, 0.05, 0.40, 0.14, 0.17])
#: Relative all-purpose trip volume per local hour, weekday and weekend.
BASE_PROFILE = np.array([
    [.40, .25, .15, .09, .06, .08, .15, .35, .65, .70, .62, .60, .66, .85, 1.15, 1.15, .92, .92, 1.0, 1.0, .92, .78, .60, .52],
    [.85, .75, .60, .42, .30, .22, .16, .12, .18, .32, .55, .78, .92, 1.0, 1.0, .85, .95, 1.0, 1.05, 1.15, 1.15, 1.0, .85, .75],
])
#: The end of every synthetic station's name and address, so no one takes the city for BiciMAD's
#: own stations (ingest recognises synthetic data by it).
SYNTHETIC_MARK = " [synthetic]"
#: Madrid streets used for synthetic station names (non-ASCII on purpose: EMT's files have it).
STREETS = (
    "Calle de Alcalá", "Gran Vía", "Calle Mayor", "Paseo del Prado", "Calle de Atocha", "Calle de Toledo",
    "Calle de Segovia", "Calle de Bailén", "Calle de Fuencarral", "Calle de Hortaleza", "Calle de Serrano",
    "Calle de Velázquez", "Calle de Goya", "Calle de O'Donnell", "Paseo de la Castellana", "Calle de Génova",
    "Calle de Sagasta", "Calle de Bravo Murillo", "Calle de Santa Engracia", "Calle de Embajadores",
    "Calle de Lavapiés", "Ronda de Valencia", "Paseo de las Delicias", "Calle de Méndez Álvaro",
    "Calle de Princesa", "Calle de Alberto Aguilera", "Plaza de España", "Calle de Ferraz",
    "Calle de José Abascal", "Calle de Raimundo Fernández Villaverde", "Calle de Núñez de Balboa",
    "Calle de Príncipe de Vergara", "Calle del Doctor Esquerdo", "Calle de Ibiza", "Paseo de Recoletos",
    "Plaza de Colón", "Calle de Argumosa", "Calle de la Ribera de Curtidores", "Calle de Cea Bermúdez",
    "Calle de Joaquín Costa", "Plaza de la Puerta del Sol", "Calle de Mesón de Paredes",
)
SECONDS_PER_HOUR = 3600.0
#: Snapshot period: EMT's clock drifts by about 2 s an hour.
SNAPSHOT_PERIOD_S = 3602.0
#: The riders of the simulator's default scenario (speed, detour, round-trip minutes): trip
#: durations and the rides of diverted riders follow them.
RIDERS = RiderSpec()
#: The operator's trucks take bikes from stations at least this full to stations at most this full.
TRUCK_FROM_FILL, TRUCK_TO_FILL = 0.85, 0.15


@dataclass(frozen=True)
class CityParams:
    """Knobs of the synthetic city; the defaults mimic BiciMAD in September 2018."""

    n_stations: int = 172
    """Number of stations."""
    start: str = "2018-09-01"
    """First local day (YYYY-MM-DD)."""
    days: int = 30
    """Number of days of snapshots (and of demand)."""
    trips_per_day: float = 16_000.0
    """Expected trip demand per day over the period; realised trips are fewer, as pickups at an
    empty station are lost (the default realises about 14,200 a day, EMT's Sep 2018 count)."""
    weekend_volume: float = 0.68
    """Weekend day volume relative to a weekday."""
    commute_share: tuple[float, float] = (0.26, 0.04)
    """Share of a day's trips that are commuting (morning + evening), weekday and weekend."""
    round_trip_share: tuple[float, float] = (0.04, 0.08)
    """Share of all-purpose trips that return to their start station, weekday and weekend."""
    fill: float = 0.39
    """Average share of docks holding a bike (the fleet also covers the bikes being ridden)."""
    day_variation: float = 0.10
    """Standard deviation of the log of each day's demand multiplier."""
    trip_days: int | None = 7
    """Write trips for the first this many days only (None: every day); snapshots cover all days."""
    trucks: int = 3
    """Operator trucks moving bikes every hour (0: no truck moves)."""
    truck_capacity: int = 20
    """Bikes a truck carries at most."""
    missing_snapshot_prob: float = 0.002
    """Chance that a snapshot is missing from the file."""
    restart_prob: float = 0.004
    """Chance per snapshot that the snapshot clock restarts at a new minute."""

    def __post_init__(self):
        if self.n_stations < 2:
            raise ValueError(f"n_stations must be at least 2, got {self.n_stations}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if not 0 < self.fill < 1:
            raise ValueError(f"fill must be in (0, 1), got {self.fill}")
        if self.trips_per_day < 0:
            raise ValueError(f"trips_per_day must be >= 0, got {self.trips_per_day}")
        date.fromisoformat(self.start)


@dataclass
class CityTruth:
    """The generating truth of a synthetic city: stations, capacities, start state and rates.

    Station arrays are in station order (index ``k`` is station ``station_id[k]``). Day type 0 is
    a weekday, 1 a Saturday or Sunday (:func:`day_type_of`).
    """

    params: CityParams
    seed: int
    """The int seed (-1 where a Generator was passed)."""
    station_id: np.ndarray
    """EMT station id per station (int, ascending, with gaps)."""
    number: list[str]
    """EMT station number, e.g. '1a'."""
    name: list[str]
    address: list[str]
    lat: np.ndarray
    lon: np.ndarray
    capacity: np.ndarray
    business: np.ndarray
    """How much a station is a commuting destination (0..1); 1 - business is its residential weight."""
    dates: list[date]
    """The local days generated."""
    day_type: np.ndarray
    """0 weekday, 1 weekend, per day."""
    day_factor: np.ndarray
    """Demand multiplier per day (mean about 1)."""
    trip_rates: np.ndarray
    """Expected trips per local hour: shape (2 day types, 24 hours, n origins, n destinations), before the day factor."""
    return_rate: np.ndarray
    """Expected returns per station by plug hour: shape (2, 24, n) (trips crossing the hour spill into the next)."""
    initial_bikes: np.ndarray
    """Docked bikes per station at the start of the first day."""

    @property
    def n(self) -> int:
        return len(self.station_id)

    @property
    def pickup_rate(self) -> np.ndarray:
        """Expected pickups per station and local hour: shape (2 day types, 24, n)."""
        return self.trip_rates.sum(axis=3)

    def od_prob(self, day_type: int, hour: int) -> np.ndarray:
        """P(destination | origin) for one day type and hour: shape (n, n), rows sum to 1."""
        rates = self.trip_rates[day_type, hour]
        return rates / rates.sum(axis=1, keepdims=True)

    def rates_frame(self):
        """Expected pickups and returns per station, day type and local hour, as a long DataFrame
        (station_id, day_type, hour, pickup_rate, return_rate), before the day factor."""

        shape = self.return_rate.shape  # (2, 24, n)
        day_type, hour, station = np.indices(shape).reshape(3, -1)
        return pd.DataFrame({
            "station_id": self.station_id[station], "day_type": day_type, "hour": hour,
            "pickup_rate": self.pickup_rate.ravel(), "return_rate": self.return_rate.ravel(),
        })

    def od_frame(self, day_type: int):
        """The day's P(destination | origin) for a day type, in the ``od`` table's columns."""

        daily = self.trip_rates[day_type].sum(axis=0)
        prob = daily / daily.sum(axis=1, keepdims=True)
        origin, dest = np.nonzero(prob)
        return pd.DataFrame({"from_station": self.station_id[origin], "to_station": self.station_id[dest],
                             "prob": prob[origin, dest]})

    def distance_m(self) -> np.ndarray:
        """Straight-line distances between stations (m), shape (n, n)."""
        return pairwise_km(self.lat, self.lon) * 1000.0


@dataclass
class SyntheticCity(CityTruth):
    """The truth of a synthetic city and what was realised from it. Times are Unix epoch seconds."""

    snapshot_ts: np.ndarray = field(repr=False)
    """Instants of the snapshots kept (epoch s)."""
    snapshot_bikes: np.ndarray = field(repr=False)
    """Docked bikes at each snapshot kept: shape (n snapshots, n stations)."""
    trips: dict[str, np.ndarray] = field(repr=False)
    """Realised trips: unplug_ts, plug_ts (epoch s), from_idx, to_idx (station indices, to_idx after any
    diversion), diverted (bool), day (index into ``dates``), hour (local unplug hour)."""
    lost_pickups: dict[str, np.ndarray] = field(repr=False)
    """Pickups that found the station empty: ts, station_idx."""
    truck_moves: dict[str, np.ndarray] = field(repr=False)
    """Operator moves: ts, from_idx, to_idx, bikes."""
    record_seed: int = 0
    """Seed of the record-level details the writer invents (user codes, ages, docks, object ids)."""


def day_type_of(day: date) -> int:
    """The city's day type of a local date: 0 weekday (Mon-Fri), 1 Saturday or Sunday."""
    return 1 if day.weekday() >= 5 else 0
