"""Origin-destination model: where a bike picked up at station i is returned.

``build_od(stations, trips=None)`` returns the ``od`` table (from_station, to_station, prob),
with the probabilities of each origin summing to 1 over every listed station.

The prior is a distance-decay (gravity) model on straight-line distance d (km):

    P(j | i) ∝ capacity_j · exp(-d_ij / L)

with the decay length L fitted by maximum likelihood to the trips given (1.5 km without trips).
Where trips exist (the 2018-09-27 windows, April 2020, any ingested trip month), each origin's
observed destinations are blended with that prior as a Dirichlet posterior mean,
``(count_ij + α · prior_ij) / (n_i + α)`` with ``α = prior_trips``: origins with many trips
follow their counts, origins with few stay close to the distance model. EMT staff trips
(user_type 3) are the operator's own moves and are left out. A station without coordinates
gets uniform probabilities (the only fallback left).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from bicimad.geo import pairwise_km

log = logging.getLogger(__name__)

DEFAULT_DECAY_KM = 1.5
def _gravity(dist: np.ndarray, capacity: np.ndarray, decay_km: float) -> np.ndarray:
    weights = capacity[None, :] * np.exp(-dist / decay_km)
    return weights / weights.sum(axis=1, keepdims=True)


def fit_decay_km(dist: np.ndarray, capacity: np.ndarray, counts: np.ndarray) -> float:
    """Maximum-likelihood decay length for trip ``counts`` (origins × destinations)."""
    from scipy.optimize import minimize_scalar

    rows = counts.sum(axis=1)

    def neg_loglik(log_l: float) -> float:
        logw = np.log(capacity)[None, :] - dist / np.exp(log_l)
        norm = np.log(np.exp(logw - logw.max(axis=1, keepdims=True)).sum(axis=1)) + logw.max(axis=1)
        return -(float((counts * logw).sum()) - float((rows * norm).sum()))

    best = minimize_scalar(neg_loglik, bounds=(np.log(0.1), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def build_od(stations: pd.DataFrame, trips: pd.DataFrame | None = None, *, decay_km: float | None = None,
             prior_trips: float = 10.0) -> pd.DataFrame:
    """The ``od`` table for ``stations`` (see the module docstring)."""
    stations = stations.drop_duplicates("station_id").sort_values("station_id")
    ids = stations["station_id"].to_numpy(dtype=np.int64)
    n = len(ids)
    if n == 0:
        raise ValueError("build_od: no stations")
    lat = pd.to_numeric(stations["lat"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    lon = pd.to_numeric(stations["lon"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    capacity = pd.to_numeric(stations["capacity"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    capacity = np.where(np.isfinite(capacity) & (capacity > 0), capacity, np.nanmedian(capacity) if np.isfinite(capacity).any() else 1.0)
    located = np.isfinite(lat) & np.isfinite(lon)

    counts = np.zeros((n, n))
    if trips is not None and len(trips):
        usable = trips.dropna(subset=["to_station"])
        if "user_type" in usable:
            usable = usable[usable["user_type"].fillna(0).astype(int) != 3]
        index = pd.Index(ids)
        i = index.get_indexer(usable["from_station"].to_numpy())
        j = index.get_indexer(usable["to_station"].astype(np.int64).to_numpy())
        ok = (i >= 0) & (j >= 0)
        np.add.at(counts, (i[ok], j[ok]), 1.0)
        log.info("od: %d trips between listed stations (%d left out)", int(ok.sum()), int((~ok).sum()))

    prior = np.full((n, n), 1.0 / n)
    if located.any():
        sub = np.ix_(located, located)
        dist = pairwise_km(lat[located], lon[located])
        if decay_km is None:
            decay_km = fit_decay_km(dist, capacity[located], counts[sub]) if counts[sub].sum() >= 200 else DEFAULT_DECAY_KM
        block = np.zeros((n, located.sum()))
        block[located] = _gravity(dist, capacity[located], decay_km)
        prior[located] = 0.0
        prior[np.ix_(located, located)] = block[located]
    if (~located).any():
        log.warning("od: %d station(s) without coordinates get uniform destinations", int((~located).sum()))
    rows = counts.sum(axis=1, keepdims=True)
    prob = (counts + prior_trips * prior) / (rows + prior_trips)
    prob /= prob.sum(axis=1, keepdims=True)
    out = pd.DataFrame({
        "from_station": np.repeat(ids, n).astype(np.int32),
        "to_station": np.tile(ids, n).astype(np.int32),
        "prob": prob.ravel(),
    })
    out.attrs["decay_km"] = decay_km
    out.attrs["trips_used"] = int(counts.sum())
    return out
