"""``bicimad demand backtest|train|forecast``: the demand model's batch jobs.

Spans are ``START:END`` with both ends included, as dates (``2019-07-01:2019-09-30``) or months
(``2019-07:2019-09``); a lone month or date (``2019-10``) is a span of its own. Inputs are
``processed/{station_hours,stations,trips}.parquet`` under the data directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bicimad import config
from bicimad.config import TZ
from bicimad.demand.backtest import run_backtest, write_backtest
from bicimad.demand.forecast import forecast_day, load_model
from bicimad.demand.models import make_model
from bicimad.demand.od import build_od
from bicimad.demand.panel import build_panel
from bicimad.errors import CommandError
from bicimad.io import sha256_file, write_json
from bicimad.jobs import JobResult
from bicimad.jobs.batch import git_commit
from bicimad.opendata.schemas import SchemaError, read_table, write_table

log = logging.getLogger(__name__)

MODEL_NAMES = ("lightgbm", "historical_mean", "seasonal_naive")
_DAY_OR_MONTH = re.compile(r"\d{4}-\d{2}(-\d{2})?")


def load_weather(path: Path | None):
    """Daily weather CSV -> frame indexed by local date (naive midnight), numeric columns only."""
    if path is None:
        return None
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read weather CSV: {exc}") from None
    if "date" not in frame:
        raise CommandError(f"{path}: weather CSV needs a `date` column (has {list(frame.columns)})")
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        line = int(dates.isna().to_numpy().argmax()) + 2          # 1-based, after the header
        raise CommandError(f"{path}: line {line}, field date: {frame['date'].iloc[line - 2]!r} is not YYYY-MM-DD")
    out = pd.DataFrame(index=pd.DatetimeIndex(dates, name="date"))
    for column in frame.columns.drop("date"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            line = int(bad.to_numpy().argmax()) + 2
            raise CommandError(f"{path}: line {line}, field {column}: {frame[column].iloc[line - 2]!r} is not a number")
        out[column] = values.to_numpy()
    if out.index.duplicated().any():
        raise CommandError(f"{path}: date {out.index[out.index.duplicated()][0].date()} appears twice")
    return out


def parse_span(text: str, option: str):
    """``START:END`` (dates or months, END included; a lone date or month is both) -> (start, end_exclusive)."""
    start, end = text.split(":", 1) if ":" in text else (text, text)
    try:
        if not (_DAY_OR_MONTH.fullmatch(start.strip()) and _DAY_OR_MONTH.fullmatch(end.strip())):
            raise ValueError(text)
        first = pd.Timestamp(start)
        last = pd.Timestamp(end)
    except ValueError:
        raise CommandError(f"{option}: expected START:END as YYYY-MM-DD or YYYY-MM, got {text!r}") from None
    end_exclusive = last + (pd.offsets.MonthBegin(1) if len(end.strip()) <= 7 else pd.Timedelta(days=1))
    if end_exclusive <= first:
        raise CommandError(f"{option}: END {end} is before START {start}")
    return first.normalize(), end_exclusive.normalize()


def _model_kwargs(rounds: int, seed: int, threads: int, weather: Path | None) -> dict:
    return {"lightgbm": {"num_boost_round": rounds, "seed": seed, "num_threads": threads,
                         "weather": load_weather(weather)}}


def read_processed(data_dir, table: str, required: bool = True):
    """A processed table of the data folder, or None when absent and not required."""
    path = config.processed_dir(data_dir) / f"{table}.parquet"
    if not path.exists():
        if required:
            raise CommandError(f"{path}: missing (run `bicimad ingest` first)")
        return None
    try:
        return read_table(table, path)
    except SchemaError as exc:
        raise CommandError(str(exc)) from None


def _panel(data_dir, first, end):
    """The panel from ``first`` to ``end`` (exclusive), with the lag window before it."""
    station_hours = read_processed(data_dir, "station_hours")
    stations = read_processed(data_dir, "stations", required=False)
    hours = station_hours["hour"]
    rows = station_hours[(hours >= first.tz_localize(TZ)) & (hours < end.tz_localize(TZ))]
    if rows["net_flow"].notna().sum() == 0 and rows["pickups"].notna().sum() == 0:
        raise CommandError(f"no station hours with net flow or trips between {first.date()} and "
                           f"{(end - pd.Timedelta(days=1)).date()} in {config.processed_dir(data_dir)}")
    # The panel covers the span, cut to the days that hold data (a wide span costs no memory).
    local = rows["hour"].dt.tz_convert(TZ).dt.tz_localize(None)
    first = max(first, local.min().normalize())
    end = min(end, local.max().normalize() + pd.Timedelta(days=1))
    return build_panel(rows, stations, start=first, end=end), stations


# ---------------------------------------------------------------------------------------------
# backtest
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BacktestSummary(JobResult):
    """A finished backtest: its comparison table and where it was written."""

    train: str
    test: str
    table: pd.DataFrame
    reference: dict
    rider_hours: int
    truck_hours: int
    observed_hours: int
    seconds: float
    out: Path
    metrics_path: Path

    def summary(self) -> str:
        lines = [f"backtest: train {self.train}, test {self.test}, {self.rider_hours:,} rider station-hours, "
                 f"{self.truck_hours:,} of {self.observed_hours:,} observed hours flagged as truck moves "
                 f"({self.seconds:.0f} s)", self.table.to_string(float_format=lambda v: f"{v:.3f}")]
        if "lightgbm" in self.table.index:
            for base in ("historical_mean", "seasonal_naive"):
                if base in self.table.index:
                    gain = 1 - self.table.loc["lightgbm", "mae"] / self.table.loc[base, "mae"]
                    lines.append(f"lightgbm net-flow MAE vs {base}: {gain:+.1%} ({'lower' if gain > 0 else 'higher'})")
        lines += [f"reference, not a forecast ({name}): MAE {ref['mae']:.3f}, RMSE {ref['rmse']:.3f}"
                  for name, ref in self.reference.items()]
        lines.append(f"wrote {self.metrics_path} and plots in {self.out}")
        return "\n".join(lines)


def backtest(train: str, test: str, out: Path, *, models: tuple[str, ...] | None = None, data_dir=None,
             rounds: int = 300, seed: int = 0, threads: int = 1, weather: Path | None = None,
             progress: bool = True) -> BacktestSummary:
    """Fit every model on ``train``, forecast each day of ``test`` from the midnight before it, and
    write ``out/metrics.json``, CSV breakdowns and plots."""
    train_start, train_end = parse_span(train, "--train")
    test_start, test_end = parse_span(test, "--test")
    if test_start < train_end:
        raise CommandError("--test must start after --train ends (a backtest never trains on the future)")
    models = MODEL_NAMES if models is None else models
    unknown = set(models) - set(MODEL_NAMES)
    if unknown or not models:
        raise CommandError(f"--models: unknown {sorted(unknown)}; known: {', '.join(MODEL_NAMES)}")
    panel, _ = _panel(data_dir, train_start, test_end)
    train_days, test_days = panel.day_mask(train_start, train_end), panel.day_mask(test_start, test_end)
    t0 = time.perf_counter()
    try:
        result = run_backtest(panel, train_days, test_days, models=models,
                              model_kwargs=_model_kwargs(rounds, seed, threads, weather), progress=progress)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    spans = {"train": [str(train_start.date()), str(train_end.date())],
             "test": [str(test_start.date()), str(test_end.date())], "end_exclusive": True}
    paths = write_backtest(result, out, spans=spans)
    return BacktestSummary(train=train, test=test, table=result.table(), reference=result.reference,
                           rider_hours=int(result.rider.sum()), truck_hours=int(result.truck_moves.sum()),
                           observed_hours=int(np.isfinite(result.actual_net).sum()),
                           seconds=time.perf_counter() - t0, out=Path(out), metrics_path=paths["metrics"])


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrainedModel(JobResult):
    """A trained, saved demand model: its folder and its metadata (``meta.json``)."""

    directory: Path
    meta: dict

    def summary(self) -> str:
        meta = self.meta
        lines = [f"trained {meta['model']} on {meta['span'][0]}..{meta['span'][1]} ({meta['stations']} stations) "
                 f"in {meta['train_s']:.1f} s -> {self.directory}"]
        if meta["metrics"]:
            lines += [f"  holdout {name}: MAE {m['mae']:.3f}  RMSE {m['rmse']:.3f}  "
                      f"Poisson deviance {m['poisson_deviance']:.3f}" for name, m in meta["metrics"]["models"].items()]
        return "\n".join(lines)


def _holdout_metrics(panel, model: str, kwargs: dict, holdout_days: int, progress: bool) -> dict:
    """Scores of ``model`` and the baselines on the last ``holdout_days`` of the panel."""
    if holdout_days == 0:
        return {}
    if panel.n_days <= holdout_days + 7:
        raise CommandError(f"--holdout-days {holdout_days}: the span has only {panel.n_days} days")
    cut = panel.n_days - holdout_days
    train_days = np.arange(panel.n_days) < cut
    try:
        result = run_backtest(panel, train_days, ~train_days,
                              models=tuple(dict.fromkeys((model, "historical_mean", "seasonal_naive"))),
                              model_kwargs={model: kwargs}, progress=progress)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return {"holdout_days": [str(panel.days[cut].date()), str(panel.days[-1].date())], "models": result.metrics}


def train(*, span: str | None = None, model: str = "lightgbm", version: str | None = None,
          out_root: Path | None = None, holdout_days: int = 7, data_dir=None, rounds: int = 300, seed: int = 0,
          threads: int = 1, weather: Path | None = None, progress: bool = True) -> TrainedModel:
    """Score ``model`` on the span's last ``holdout_days`` (fitted on the days before), fit it on
    the whole span and save it under ``<out_root>/demand/<version>/`` with ``meta.json`` and a
    model card."""
    if model not in MODEL_NAMES:
        raise CommandError(f"--model: unknown {model!r}; known: {', '.join(MODEL_NAMES)}")
    if span:
        first, end = parse_span(span, "--span")
    else:
        hours = read_processed(data_dir, "station_hours")["hour"].dt.tz_localize(None)
        first, end = hours.min().normalize(), hours.max().normalize() + np.timedelta64(1, "D")
    panel, _ = _panel(data_dir, first, end)
    code = git_commit()  # before anything is written: a model saved inside the checkout would mark it dirty
    kwargs = _model_kwargs(rounds, seed, threads, weather).get(model, {})
    metrics = _holdout_metrics(panel, model, kwargs, holdout_days, progress)
    t0 = time.perf_counter()
    fitted = make_model(model, **kwargs).fit(panel, np.ones(panel.n_days, dtype=bool))
    train_s = time.perf_counter() - t0
    last_day = panel.days[-1].date()
    version = version or f"{model}-{last_day}"
    directory = (out_root or config.models_dir()) / "demand" / version
    fitted.save(directory)
    meta = {
        "version": version, "model": model, "span": [str(panel.days[0].date()), str(last_day)],
        "features": getattr(fitted, "features", []), "target": "gross" if fitted.gross_mode else "net_flow",
        "stations": int(panel.n_stations), "metrics": metrics, "train_s": round(train_s, 2),
        "git": code, "station_hours_sha256": sha256_file(config.processed_dir(data_dir) / "station_hours.parquet"),
        "params": {k: v for k, v in kwargs.items() if k != "weather"},
        "weather": str(weather) if weather else None,
    }
    write_json(directory / "meta.json", meta)
    (directory / "MODEL_CARD.md").write_text(_model_card(meta), encoding="utf-8")
    return TrainedModel(directory=directory, meta=meta)


def _model_card(meta: dict) -> str:
    target = "gross pickups/returns" if meta["target"] == "gross" else "net flow; gross from the Skellam cell rates"
    lines = [
        f"# Demand model {meta['version']}", "",
        f"- Kind: `{meta['model']}` ({target})",
        f"- Data span: {meta['span'][0]} to {meta['span'][1]}, {meta['stations']} stations "
        f"(station_hours sha256 {meta['station_hours_sha256'][:16]})",
        f"- Code: git {meta['git'].get('commit')}{' (uncommitted changes)' if meta['git'].get('dirty') else ''}",
        f"- Training time: {meta['train_s']} s; parameters: {json.dumps(meta['params'])}",
        f"- Features: {', '.join(meta['features']) or 'none (cell rates)'}", "",
        "## Holdout (fitted on the days before it; net-flow MAE/RMSE per rider station-hour)", "",
    ]
    if meta["metrics"]:
        lines += [f"Days {meta['metrics']['holdout_days'][0]} to {meta['metrics']['holdout_days'][1]}.", "",
                  "| model | MAE | RMSE | Poisson deviance |", "|---|---|---|---|"]
        lines += [f"| {name} | {m['mae']:.3f} | {m['rmse']:.3f} | {m['poisson_deviance']:.3f} |"
                  for name, m in meta["metrics"]["models"].items()]
    else:
        lines.append("No holdout (--holdout-days 0).")
    lines += ["", "## Use", "", "Forecasts are made the night before: only data before the day's midnight is read. "
              "Stations the model never saw get a capacity-scaled network profile (`method` says so).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# forecast
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ForecastResult(JobResult):
    """A day's forecast and OD tables, written to ``out``; ``facts`` is ``summary.json``."""

    out: Path
    facts: dict

    def summary(self) -> str:
        f = self.facts
        return (f"forecast {f['date']}: {f['stations']} stations, {f['pickups']:.0f} pickups and "
                f"{f['returns']:.0f} returns expected; methods {f['methods']}\n"
                f"od: {f['od_trips_used']} trips, distance decay {f['od_decay_km']:.2f} km -> {self.out}")


def forecast(date: str, *, model: Path | None = None, out: Path | None = None, history_days: int = 35,
             daily_trips: float | None = None, weather: Path | None = None, data_dir=None) -> ForecastResult:
    """Forecast local day ``date`` from data before its midnight; write ``forecast.parquet``,
    ``od.parquet`` and ``summary.json`` (methods and fallbacks used)."""
    try:
        day = pd.Timestamp(date).normalize()
    except ValueError:
        raise CommandError(f"--date: expected YYYY-MM-DD, got {date!r}") from None
    try:
        fitted = load_model(model)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if weather is not None:
        if not hasattr(fitted, "weather"):
            raise CommandError(f"--weather: the {fitted.name} model takes no weather")
        fitted.weather = load_weather(weather)
    station_hours = read_processed(data_dir, "station_hours")
    stations = read_processed(data_dir, "stations", required=False)
    trips = read_processed(data_dir, "trips", required=False)
    try:
        rates = forecast_day(fitted, station_hours, stations, day, history_days=history_days, daily_trips=daily_trips)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    listed = stations if stations is not None else pd.DataFrame({"station_id": rates["station_id"].unique()})
    listed = listed[listed["station_id"].isin(rates["station_id"].unique())]
    for column in ("lat", "lon", "capacity"):
        if column not in listed:
            listed = listed.assign(**{column: float("nan")})
    if trips is not None:
        trips = trips[trips["unplug_ts"] < day.tz_localize(TZ)]
    od = build_od(listed, trips)
    out = Path(out) if out else config.processed_dir(data_dir) / "forecasts" / str(day.date())
    write_table(rates, "forecast", out / "forecast.parquet")
    write_table(od, "od", out / "od.parquet")
    facts = {"date": str(day.date()), "model": fitted.name, "methods": rates.attrs["methods"],
             "stations": int(rates["station_id"].nunique()), "pickups": float(rates["pickup_rate"].sum()),
             "returns": float(rates["return_rate"].sum()), "od_decay_km": od.attrs["decay_km"],
             "od_trips_used": od.attrs["trips_used"]}
    write_json(out / "summary.json", facts)
    return ForecastResult(out=out, facts=facts)
