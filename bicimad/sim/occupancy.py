"""Occupancy accounting's one formula: the problem share of station-hours.

A station-hour is a *problem* hour when its class (``OCCUPANCY_STATES``) is not ``balanced``:
empty, full, or empty and full. The simulator's summaries, the fleet env's episode statistics
and the comparison reports all compute the share with :func:`problem_share`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from bicimad.opendata.schemas import OCCUPANCY_STATES

#: The classes that count as a problem hour.
PROBLEM_STATES = tuple(s for s in OCCUPANCY_STATES if s != "balanced")


def problem_share(counts: Mapping[str, int]) -> float:
    """Share of station-hours that were empty, full, or both (NaN with no station-hours).

    ``counts`` maps every class of ``OCCUPANCY_STATES`` to its station-hours.
    """
    total = sum(counts[s] for s in OCCUPANCY_STATES)
    return sum(counts[s] for s in PROBLEM_STATES) / total if total else math.nan
