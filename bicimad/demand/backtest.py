"""Rolling-origin backtest of the demand models, its metrics and plots.

Every model is fitted once on the training days, which all precede the test days. Each test
day is then forecast from the midnight before it (the origin rolls forward one day at a time):
its features read only earlier days, training or test, never the day itself or later.

Metrics, per model, over the *rider* station-hours of the test span (net flow observed and not
flagged as a truck move; ``*_all_hours`` keep the flagged ones too):

* ``mae``, ``rmse`` of the net flow forecast ``return_rate - pickup_rate``;
* ``poisson_deviance``: mean Poisson deviance per station-hour of the two count sides — counted
  pickups and returns where trips exist; otherwise the negative and positive parts of net flow
  against their expectations under the Skellam law of the forecast rates. Expectations are
  floored at 0.01 so that a forecast of exactly zero is scored, not infinite.

The same three per hour of day and per station (``by_hour.csv``, ``by_station.csv``, plots).
``reference`` holds the score of the test span's own cell means fitted in sample: no forecast
made the night before can expect to beat it by much, so it shows how much of the error is
noise that a rate model cannot forecast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ive

from bicimad.demand.models import DemandModel, make_model
from bicimad.demand.panel import HOURS, Panel, quiet
from bicimad.demand.rates import flag_truck_moves
from bicimad.io import write_json

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("lightgbm", "historical_mean", "seasonal_naive")
DEVIANCE_FLOOR = 0.01


def skellam_parts(pickup: np.ndarray, returns: np.ndarray, chunk: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """E[max(N, 0)] and E[max(-N, 0)] for N ~ Skellam(returns, pickup), elementwise (exact sums)."""
    r = np.maximum(np.asarray(returns, dtype=float).ravel(), 1e-3)
    p = np.maximum(np.asarray(pickup, dtype=float).ravel(), 1e-3)
    pos = np.empty_like(r)
    for lo in range(0, len(r), chunk):
        rr, pp = r[lo:lo + chunk], p[lo:lo + chunk]
        top = int(np.ceil((rr + pp).max() + 10 * np.sqrt((rr + pp).max()) + 10))
        k = np.arange(1, top + 1)[None, :]
        z = 2 * np.sqrt(rr * pp)[:, None]
        # log pmf(k) = -(√r - √p)² + (k/2) log(r/p) + log ive(k, 2√(rp)), for k > 0.
        with np.errstate(divide="ignore"):
            log_pmf = (-(np.sqrt(rr) - np.sqrt(pp)) ** 2)[:, None] + 0.5 * k * np.log(rr / pp)[:, None] + np.log(ive(k, z))
        pos[lo:lo + chunk] = (k * np.exp(log_pmf)).sum(axis=1)
    shape = np.shape(returns)
    pos = pos.reshape(shape)
    return pos, pos - (np.asarray(returns) - np.asarray(pickup))  # E[N⁻] = E[N⁺] - E[N]


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Unit Poisson deviance 2 (y log(y/μ) - (y - μ)), μ floored at ``DEVIANCE_FLOOR``."""
    mu = np.maximum(mu, DEVIANCE_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu), 0.0)
    return 2 * (term - (y - mu))


@dataclass
class BacktestResult:
    """Forecasts and actuals for the test station-hours, with metrics per model."""

    panel: Panel
    test_days: np.ndarray
    actual_net: np.ndarray                     # (days, 24, n)
    rider: np.ndarray                          # observed and not a truck move
    truck_moves: np.ndarray                    # hours flagged as truck moves
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    deviance: dict[str, np.ndarray] = field(default_factory=dict)   # per station-hour
    metrics: dict[str, dict] = field(default_factory=dict)
    reference: dict[str, dict] = field(default_factory=dict)
    gross_mode: bool = False

    def _breakdown(self, axis) -> dict[str, np.ndarray]:
        out = {}
        for name, (pick, ret) in self.predictions.items():
            err = np.where(self.rider, ret - pick - self.actual_net, np.nan)
            with np.errstate(invalid="ignore"):
                out[f"{name}_mae"] = quiet(np.nanmean, np.abs(err), axis=axis)
                out[f"{name}_rmse"] = np.sqrt(quiet(np.nanmean, err ** 2, axis=axis))
                out[f"{name}_poisson_deviance"] = quiet(np.nanmean, np.where(self.rider, self.deviance[name], np.nan), axis=axis)
        return out

    def by_hour(self) -> pd.DataFrame:
        """Net-flow MAE and RMSE and Poisson deviance per hour of day, per model."""
        return pd.DataFrame(self._breakdown((0, 2)), index=pd.RangeIndex(HOURS, name="hour"))

    def by_station(self) -> pd.DataFrame:
        """Net-flow MAE and RMSE and Poisson deviance per station, per model, with coordinates."""
        frame = pd.DataFrame({"station_id": self.panel.station_ids, "lat": self.panel.lat, "lon": self.panel.lon,
                              "hours": self.rider.sum(axis=(0, 1)), **self._breakdown((0, 1))})
        return frame[frame["hours"] > 0].reset_index(drop=True)

    def table(self) -> pd.DataFrame:
        """The comparison table: one row per model."""
        frame = pd.DataFrame(self.metrics).T
        frame.index.name = "model"
        return frame


def run_backtest(panel: Panel, train_mask: np.ndarray, test_mask: np.ndarray, *,
                 models: tuple[str, ...] = DEFAULT_MODELS, model_kwargs: dict | None = None,
                 fitted: dict[str, DemandModel] | None = None, progress: bool = False) -> BacktestResult:
    """Fit each model on ``train_mask`` days, forecast every ``test_mask`` day, score them.

    ``fitted`` supplies models already fitted (on the same training days); ``progress`` shows
    a bar per model on stderr. ``result.reference`` scores the test span's own cell means
    (fitted in sample, so not a forecast): how far any per station × hour × day-type mean
    could go, against which the models' gains are to be read.
    """
    from tqdm import tqdm

    train_mask, test_mask = np.asarray(train_mask, bool), np.asarray(test_mask, bool)
    if not train_mask.any() or not test_mask.any():
        raise ValueError("backtest: the training and the test span must each hold at least one day")
    last_train = np.flatnonzero(train_mask).max()
    test_days = np.flatnonzero(test_mask)
    if test_days.min() <= last_train:
        raise ValueError("backtest: test days must all come after the training days (no training on the future)")
    flags = flag_truck_moves(panel)
    actual = panel.net[test_days]
    rider = np.isfinite(actual) & ~flags[test_days]
    result = BacktestResult(panel, test_days, actual, rider, flags[test_days], gross_mode=panel.has_gross(train_mask))
    fitted = dict(fitted or {})
    for name in tqdm(models, desc="backtest", unit="model", disable=not progress):
        if name not in fitted:
            log.info("fitting %s", name)
            fitted[name] = make_model(name, **(model_kwargs or {}).get(name, {})).fit(panel, train_mask)
        result.predictions[name] = fitted[name].predict_rates(panel, test_days)
    # Score every model on the same hours: those every model can forecast (a station unseen in
    # training has no rates; the forecast gives it a fallback, the backtest leaves it out).
    result.rider &= np.all([np.isfinite(p) & np.isfinite(r) for p, r in result.predictions.values()], axis=0)
    for name, (pick, ret) in result.predictions.items():
        result.deviance[name] = _deviance(result, pick, ret)
        result.metrics[name] = _metrics(result, pick, ret, result.deviance[name])
    own = make_model("historical_mean").fit(panel, test_mask).predict_rates(panel, test_days)
    # Cells the test span alone cannot fill (a station with a handful of hours) are left out.
    scored = result.rider & np.isfinite(own[0]) & np.isfinite(own[1])
    if scored.any():
        result.reference["test_span_cell_mean_in_sample"] = _metrics(result, *own, _deviance(result, *own, scored), scored)
    return result


def _deviance(result: BacktestResult, pick: np.ndarray, ret: np.ndarray, rider: np.ndarray | None = None) -> np.ndarray:
    """Poisson deviance per station-hour of the two count sides (module docstring)."""
    rider = result.rider if rider is None else rider
    if result.gross_mode:
        days = result.test_days
        return (poisson_deviance(result.panel.pickups[days], pick)
                + poisson_deviance(result.panel.returns[days], ret))
    mu_r, mu_p = skellam_parts(np.where(rider, pick, 0), np.where(rider, ret, 0))
    y_r, y_p = np.maximum(result.actual_net, 0), np.maximum(-result.actual_net, 0)
    return poisson_deviance(y_p, mu_p) + poisson_deviance(y_r, mu_r)


def _metrics(result: BacktestResult, pick: np.ndarray, ret: np.ndarray, dev: np.ndarray,
             rider: np.ndarray | None = None) -> dict:
    rider = result.rider if rider is None else rider
    net_err = ret - pick - result.actual_net
    all_hours = np.isfinite(result.actual_net) & np.isfinite(net_err)
    ok = rider & np.isfinite(dev)
    return {
        "mae": float(np.abs(net_err[rider]).mean()),
        "rmse": float(np.sqrt((net_err[rider] ** 2).mean())),
        "poisson_deviance": float(dev[ok].mean()),
        "mae_all_hours": float(np.abs(net_err[all_hours]).mean()),
        "rmse_all_hours": float(np.sqrt((net_err[all_hours] ** 2).mean())),
        "station_hours": int(rider.sum()),
    }


def write_backtest(result: BacktestResult, out: str | Path, *, spans: dict | None = None,
                   sample_stations: int = 4) -> dict[str, Path]:
    """Write metrics.json, by_hour.csv, by_station.csv and the three plots under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "by_hour": out / "by_hour.csv", "by_station": out / "by_station.csv"}
    observed = np.isfinite(result.actual_net)
    truck_share = float(result.truck_moves[observed].mean()) if observed.any() else 0.0
    write_json(paths["metrics"], {"models": result.metrics, "reference": result.reference, "spans": spans or {},
                                  "target": "gross" if result.gross_mode else "net_flow",
                                  "truck_move_share": truck_share})
    by_hour, by_station = result.by_hour(), result.by_station()
    by_hour.to_csv(paths["by_hour"])
    by_station.to_csv(paths["by_station"], index=False)

    # Predicted vs actual mean net flow by hour, for the busiest stations.
    busiest = np.argsort(-np.nansum(np.abs(np.where(result.rider, result.actual_net, 0)), axis=(0, 1)))[:sample_stations]
    fig, axes = plt.subplots(1, len(busiest), figsize=(4 * len(busiest), 3.2), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], busiest):
        actual = np.nanmean(np.where(result.rider[:, :, s], result.actual_net[:, :, s], np.nan), axis=0)
        ax.plot(range(HOURS), actual, "k-", lw=2, label="actual")
        for name, (pick, ret) in result.predictions.items():
            ax.plot(range(HOURS), np.nanmean(np.where(result.rider[:, :, s], ret[:, :, s] - pick[:, :, s], np.nan), axis=0),
                    label=name)
        ax.set_title(f"station {result.panel.station_ids[s]}")
        ax.set_xlabel("hour")
    axes[0][0].set_ylabel("mean net flow (bikes/h)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    paths["stations_plot"] = out / "predicted_vs_actual_by_hour.png"
    fig.savefig(paths["stations_plot"], dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    by_hour[[f"{name}_mae" for name in result.predictions]].plot(ax=ax, marker="o", ms=3)
    ax.set_ylabel("net-flow MAE (bikes)")
    ax.set_title("error by hour of day")
    fig.tight_layout()
    paths["hour_plot"] = out / "error_by_hour.png"
    fig.savefig(paths["hour_plot"], dpi=90)
    plt.close(fig)

    main = next(iter(result.predictions))
    located = by_station.dropna(subset=["lat", "lon"])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = ax.scatter(located["lon"], located["lat"], c=located[f"{main}_mae"], s=12 + located["hours"] / max(located["hours"].max(), 1) * 40,
                        cmap="viridis")
    fig.colorbar(points, ax=ax, label=f"{main} net-flow MAE (bikes)")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("error per station")
    fig.tight_layout()
    paths["map_plot"] = out / "error_by_station_map.png"
    fig.savefig(paths["map_plot"], dpi=90)
    plt.close(fig)
    return paths
