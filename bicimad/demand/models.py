"""Demand models behind one interface: fit, predict rates, save, load.

Every model predicts, per station-hour, a pickup rate and a return rate (expected counts).
Its net-flow forecast is ``return_rate - pickup_rate``. Where training data has only net flow,
the models differ in how they forecast the net mean; the gross level (pickups + returns) comes
from the Skellam cell rates fitted on the training span (:mod:`bicimad.demand.rates`), and
``split_rates`` turns (gross, net) into the two rates. Where trips give gross counts, each model
forecasts pickups and returns directly.

* ``historical_mean`` — mean per station × hour × day type over the training span (shrunk).
* ``seasonal_naive`` — the same hour one week earlier (the historical mean where that is missing).
* ``lightgbm`` — gradient-boosted models with a Poisson objective on the features of
  :mod:`bicimad.demand.features`. With trips, one for pickups and one for returns. With net
  flow only, three: its positive part ``max(N, 0)`` and negative part ``max(-N, 0)`` (counts;
  since ``N = N⁺ - N⁻`` the difference of their expectations is exactly the expected net
  flow m), and its square ``N²``, whose expectation gives the Skellam variance
  ``E[N²] - m² = pickups + returns`` of that very station-hour. So the gross level follows
  the features (weather, season, yesterday's activity) instead of staying at the training
  span's cell rates.

Hours flagged as truck moves never serve as targets. A station a model knows nothing about gets
NaN rates: the forecast replaces them with an explicit fallback (:mod:`bicimad.demand.forecast`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from bicimad.demand.features import CATEGORICAL, FEATURES, feature_frame, history_arrays
from bicimad.demand.panel import Panel
from bicimad.demand.rates import CellRates, flag_truck_moves
from bicimad.io import atomic_path, write_json


def split_rates(gross: np.ndarray, net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pickup, return) rates with the given gross sum and net difference, both >= 0."""
    gross = np.maximum(gross, np.abs(net))
    return (gross - net) / 2, (gross + net) / 2


def _align(cells: np.ndarray, model_ids: np.ndarray, panel: Panel) -> np.ndarray:
    """Cell arrays (..., n_model) re-indexed onto the panel's station axis (NaN where unknown)."""
    pos = {int(s): i for i, s in enumerate(model_ids)}
    index = np.array([pos.get(int(s), -1) for s in panel.station_ids])
    out = np.full(cells.shape[:-1] + (panel.n_stations,), np.nan)
    out[..., index >= 0] = cells[..., index[index >= 0]]
    return out


def _before(panel: Panel, days: np.ndarray) -> np.ndarray:
    """Mask of the panel days before the first forecast day: all a forecast may learn from."""
    return np.arange(panel.n_days) < np.min(days)


class DemandModel(ABC):
    """Fit on a panel's training days, predict (pickup, return) rates for any of its days."""

    name: str = ""

    def __init__(self):
        self.cells: CellRates | None = None

    @abstractmethod
    def fit(self, panel: Panel, train_mask: np.ndarray) -> DemandModel:
        """Learn from the days in ``train_mask`` only."""

    @abstractmethod
    def predict_rates(self, panel: Panel, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pickup, return) rate arrays of shape (len(days), 24, n); only days before each may be read."""

    def _fit_cells(self, panel: Panel, train_mask: np.ndarray) -> None:
        self.gross_mode = panel.has_gross(train_mask)
        self.cells = CellRates.fit(panel, train_mask)

    def cell_rates(self, panel: Panel, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fitted cell rates laid out for ``days`` of ``panel`` (NaN for unknown stations)."""
        types = panel.day_types[np.asarray(days)]
        return (_align(self.cells.pickup, self.cells.station_ids, panel)[types],
                _align(self.cells.returns, self.cells.station_ids, panel)[types])

    def _with_net(self, panel: Panel, days: np.ndarray, net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pick, ret = self.cell_rates(panel, days)
        return split_rates(pick + ret, net)

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "cells.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self.cells.to_arrays())
        self._save_extra(directory)
        write_json(directory / "model.json", {"kind": self.name, "gross_mode": self.gross_mode, **self._meta()})
        return directory

    def _save_extra(self, directory: Path) -> None:  # noqa: B027  (an optional hook, not abstract)
        """Files beyond the cell rates (subclasses)."""

    def _meta(self) -> dict:
        return {}

    @classmethod
    def load(cls, directory: str | Path) -> DemandModel:
        """Load any saved model; the kind is read from ``model.json``."""
        directory = Path(directory)
        meta_path = directory / "model.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{directory}: not a demand model (no model.json)")
        meta = json.loads(meta_path.read_text())
        kind = meta.get("kind")
        if kind not in MODELS:
            raise ValueError(f"{meta_path}: unknown model kind {kind!r}; known: {', '.join(MODELS)}")
        model = MODELS[kind].__new__(MODELS[kind])
        DemandModel.__init__(model)
        with np.load(directory / "cells.npz", allow_pickle=False) as arrays:
            model.cells = CellRates.from_arrays(arrays)
        model.gross_mode = bool(meta["gross_mode"])
        model._load_extra(directory, meta)
        return model

    def _load_extra(self, directory: Path, meta: dict) -> None:  # noqa: B027  (an optional hook)
        """Counterpart of ``_save_extra``."""


class HistoricalMean(DemandModel):
    """Mean flow per station × hour × day type over the training span."""

    name = "historical_mean"

    def fit(self, panel, train_mask):
        self._fit_cells(panel, train_mask)
        # The net mean is that of all usable hours, censored ones included: it is the flow seen.
        observed = CellRates.fit(panel, train_mask, exclude_censored=False)
        self.observed_net = observed.net
        return self

    def predict_rates(self, panel, days):
        if self.gross_mode:
            return self.cell_rates(panel, days)
        net = _align(self.observed_net, self.cells.station_ids, panel)[panel.day_types[np.asarray(days)]]
        return self._with_net(panel, days, net)

    def _save_extra(self, directory):
        with atomic_path(directory / "observed_net.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, self.observed_net)

    def _load_extra(self, directory, meta):
        self.observed_net = np.load(directory / "observed_net.npy", allow_pickle=False)


class SeasonalNaive(DemandModel):
    """The same hour one week earlier; the historical cell mean where that hour is missing."""

    name = "seasonal_naive"

    def fit(self, panel, train_mask):
        self._fit_cells(panel, train_mask)
        return self

    def predict_rates(self, panel, days):
        days = np.asarray(days)
        pick, ret = self.cell_rates(panel, days)
        week = days - 7
        inside = week >= 0
        if self.gross_mode:
            last_p = np.full_like(pick, np.nan)
            last_r = np.full_like(ret, np.nan)
            last_p[inside], last_r[inside] = panel.pickups[week[inside]], panel.returns[week[inside]]
            return np.where(np.isnan(last_p), pick, last_p), np.where(np.isnan(last_r), ret, last_r)
        flags = flag_truck_moves(panel, _before(panel, days))
        net = np.full_like(pick, np.nan)
        net[inside] = np.where(flags[week[inside]], np.nan, panel.net[week[inside]])
        net = np.where(np.isnan(net), ret - pick, net)
        return split_rates(pick + ret, net)


class LightGBMDemand(DemandModel):
    """Poisson LightGBM models (pickup and return sides, and the square with net flow only) on the day-ahead features."""

    name = "lightgbm"

    def __init__(self, *, num_boost_round: int = 300, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_data_in_leaf: int = 200, seed: int = 0, num_threads: int = 1, weather=None):
        super().__init__()
        self.params = {
            "objective": "poisson", "learning_rate": learning_rate, "num_leaves": num_leaves,
            "min_data_in_leaf": min_data_in_leaf, "feature_fraction": 0.8, "bagging_fraction": 0.8,
            "bagging_freq": 1, "lambda_l2": 1.0, "seed": seed, "num_threads": num_threads,
            "deterministic": True, "force_row_wise": True, "verbosity": -1,
        }
        self.num_boost_round = num_boost_round
        self.weather = weather
        self.boosters: dict = {}
        self.features: list[str] = list(FEATURES)

    def _inputs(self, panel: Panel, days: np.ndarray, history_mask: np.ndarray):
        flags = flag_truck_moves(panel, history_mask)
        usable = np.where(flags, np.nan, panel.net)
        history = history_arrays(panel, usable)
        pos = {int(s): i for i, s in enumerate(self.station_ids)}
        codes = np.array([pos.get(int(s), -1) for s in panel.station_ids])
        frame = feature_frame(panel, days, history, codes, self.weather)
        return frame, usable

    def fit(self, panel, train_mask):
        import lightgbm as lgb

        self._fit_cells(panel, train_mask)
        days = np.flatnonzero(train_mask)
        seen = np.isfinite(panel.net[days]).any(axis=(0, 1)) | np.isfinite(panel.pickups[days]).any(axis=(0, 1))
        self.station_ids = panel.station_ids[seen]
        frame, usable = self._inputs(panel, days, train_mask)
        self.features = list(frame.columns)
        if self.gross_mode:
            targets = {"pickups": panel.pickups[days].ravel(), "returns": panel.returns[days].ravel()}
        else:
            net = usable[days].ravel()
            targets = {"pickups": np.maximum(-net, 0), "returns": np.maximum(net, 0), "square": net ** 2}
        rows = np.all([np.isfinite(y) for y in targets.values()], axis=0)
        if not rows.any():
            raise ValueError("lightgbm: no usable training station-hours in the training span")
        x = frame[rows]
        for side, y in targets.items():
            data = lgb.Dataset(x, label=y[rows], categorical_feature=CATEGORICAL, free_raw_data=True)
            self.boosters[side] = lgb.train(self.params, data, num_boost_round=self.num_boost_round)
        return self

    def predict_rates(self, panel, days):
        days = np.asarray(days)
        frame, _ = self._inputs(panel, days, _before(panel, days))
        shape = (len(days), 24, panel.n_stations)
        # Weather columns the model was trained with but not given now are missing values to LightGBM.
        x = frame.reindex(columns=self.features)
        side = {k: b.predict(x).reshape(shape) for k, b in self.boosters.items()}
        known = np.isin(panel.station_ids, self.station_ids)
        if self.gross_mode:
            pick, ret = side["pickups"], side["returns"]
        else:
            net = side["returns"] - side["pickups"]
            # Skellam moments row by row: Var N = E[N²] - (E N)² = pickups + returns.
            pick, ret = split_rates(side["square"] - net ** 2, net)
        return np.where(known, pick, np.nan), np.where(known, ret, np.nan)

    def _meta(self):
        return {"params": self.params, "num_boost_round": self.num_boost_round, "features": self.features,
                "boosters": list(self.boosters),
                "station_ids": [int(s) for s in self.station_ids]}

    def _save_extra(self, directory):
        for side, booster in self.boosters.items():
            with atomic_path(directory / f"{side}.txt") as tmp:
                booster.save_model(str(tmp))

    def _load_extra(self, directory, meta):
        import lightgbm as lgb

        self.params = meta["params"]
        self.num_boost_round = meta["num_boost_round"]
        self.features = meta["features"]
        self.station_ids = np.array(meta["station_ids"], dtype=np.int64)
        self.weather = None
        self.boosters = {side: lgb.Booster(model_file=str(directory / f"{side}.txt")) for side in meta["boosters"]}


MODELS: dict[str, type[DemandModel]] = {m.name: m for m in (LightGBMDemand, HistoricalMean, SeasonalNaive)}


def make_model(name: str, **kwargs) -> DemandModel:
    """A new, unfitted model by name (``lightgbm``, ``historical_mean``, ``seasonal_naive``)."""
    if name not in MODELS:
        raise ValueError(f"unknown demand model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
