"""A seeded synthetic BiciMAD, written as raw files in EMT's own formats.

This is the embedded default: a fresh machine without real data generates a city that looks
like BiciMAD in September 2018 (about 172 stations around central Madrid, median capacity 24,
about 39 % of docks holding a bike, about 14,200 trips a day, weekday commuting from the
residential periphery to the centre and business districts in the morning and back in the
evening, flatter weekends) and runs the whole pipeline on it.

Generation
----------
1. **Stations**: positions drawn in a ~5 × 6 km area around Sol, denser in the centre, at least
   180 m apart (except a few ``Na``/``Nb`` sub-station pairs, as EMT has); capacities from a
   discrete distribution with median 24 (12–30); ids 1..n with a few gaps, as EMT's; names
   and addresses from Madrid streets with house numbers, unique, each ending in " [synthetic]"
   (:data:`SYNTHETIC_MARK`).
2. **Demand** (the generating truth): expected trips per hour from station *i* to *j*,
   ``trip_rates[day_type, hour, i, j]``, is the sum of a symmetric gravity flow (all-purpose
   trips, plus a share of round trips), a morning commuting flow ``M`` (residential → business)
   and an evening flow ``Mᵀ`` with the same daily volume, so every station's expected daily
   pickups equal its expected daily returns. Each day has a multiplier (weather, events).
3. **Trips**: Poisson counts per (hour, origin, destination); unplug instant uniform within
   the hour; duration from distance at the simulator's riding speed and detour (its default
   scenario's riders) with lognormal noise (round trips: its round-trip minutes, lognormal).
4. **Docks**: the simulator's own core (:func:`bicimad.sim.core.replay_docks`) replays every
   pickup, return and operator truck visit minute by minute on the docks, and reads them at each
   snapshot's minute. A pickup at an empty station is lost (no trip is recorded); a return to a
   full station is diverted to the nearest station with a free dock (the trip records that
   station and the longer ride). The operator's trucks, every hour, move bikes from the fullest
   to the emptiest stations. Events get instants within their minute, after the minute's
   snapshot, so snapshot bikes change exactly by returns − pickups + truck moves.
5. **Snapshots**: about one an hour, ``_id`` in naive local time, minutes drifting by ~2 s an
   hour with an occasional restart, and a small chance of a missing snapshot, like EMT's.

Modules: :mod:`.city` (constants, knobs, the truth's and the realisation's data), :mod:`.truth`
(steps 1-2 and the fleet), :mod:`.realise` (steps 3-5), :mod:`.formats` (the files below).

Files (under ``raw_root/synthetic/``)
-------------------------------------
- ``meta/stations.json``: EMT station list ``{"stations": [13 fields]}`` (state at the start);
- ``stations/Bicimad_Estacions_YYYYMM.json``: one snapshot per line, ``{"_id", "stations"}``;
- ``trips/YYYYMM_Usage_Bicimad.json``: mongoexport JSON lines (``$oid``, ``$date`` with the
  local offset, hour-truncated unplug time).

The truth alone (:func:`city_truth`: layout, capacities, initial bikes, rates and OD per day
type, without drawing or replaying any trip) is cheap; the simulator's synthetic network and
demand (``bicimad.sim.network.synthetic_network``, ``bicimad.sim.riders.synthetic_demand``)
are built from it, so they are this same city.

Trips are written for the first ``trip_days`` days only (default 7, one full week: about
100,000 trips, ~37 MB), because a full month in EMT's verbose format would be ~150 MB; the
snapshots (~35 MB for 30 days) cover every day, as in the real data available for Sep 2018. ``trip_days=None``
writes every day. The truth (:class:`SyntheticCity`) covers the whole period either way.

Time: demand is defined per local (Europe/Madrid) hour. On a DST change the missing local hour
has no trips and the repeated one is generated once; snapshots are taken at absolute instants
and stamped in naive local time, so they repeat or skip a stamp hour there, as a naive clock does.
"""

from bicimad.opendata.synthetic.city import (
    BASE_PROFILE,
    BUSINESS,
    CAPACITIES,
    CAPACITY_SHARES,
    RIDERS,
    SECONDS_PER_HOUR,
    SNAPSHOT_PERIOD_S,
    STREETS,
    SYNTHETIC_MARK,
    TRUCK_FROM_FILL,
    TRUCK_TO_FILL,
    CityParams,
    CityTruth,
    SyntheticCity,
    day_type_of,
)
from bicimad.opendata.synthetic.formats import TRIP_LINE, write_city
from bicimad.opendata.synthetic.realise import generate_city
from bicimad.opendata.synthetic.truth import city_truth

__all__ = [
    "BASE_PROFILE", "BUSINESS", "CAPACITIES", "CAPACITY_SHARES", "RIDERS", "SECONDS_PER_HOUR", "SNAPSHOT_PERIOD_S",
    "STREETS", "SYNTHETIC_MARK", "TRIP_LINE", "TRUCK_FROM_FILL", "TRUCK_TO_FILL", "CityParams", "CityTruth", "SyntheticCity",
    "city_truth", "day_type_of", "generate_city", "write_city",
]
