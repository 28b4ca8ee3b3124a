"""``bicimad demand backtest|train|forecast``: the demand model's batch jobs.

Spans are ``START:END`` with both ends included, as dates (``2019-07-01:2019-09-30``) or months
(``2019-07:2019-09``); a lone month or date (``2019-10``) is a span of its own. Inputs are ``processed/{station_hours,stations,trips}.parquet`` under the
data directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

from bicimad import config
from bicimad.errors import CommandError

log = logging.getLogger(__name__)

MODEL_NAMES = ("lightgbm", "historical_mean", "seasonal_naive")
_DAY_OR_MONTH = re.compile(r"\d{4}-\d{2}(-\d{2})?")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demand", help="demand model: backtest, train, forecast",
                       description="Hourly pickup and return rates per station: rolling-origin backtest, "
                       "training of versioned models, and the forecast + origin-destination tables for a day.")
    dsub = p.add_subparsers(dest="demand_command", metavar="SUBCOMMAND", required=True)

    b = dsub.add_parser("backtest", help="compare the models on a test span after a training span",
                        description="Fit every model on --train, forecast each day of --test from the midnight "
                        "before it, print the comparison table and write DIR/metrics.json, CSV breakdowns and plots.")
    b.add_argument("--train", required=True, metavar="START:END", help="training span (dates or months, inclusive)")
    b.add_argument("--test", required=True, metavar="START:END", help="test span, after the training span")
    b.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    b.add_argument("--models", default=",".join(MODEL_NAMES), help=f"comma-separated (default {','.join(MODEL_NAMES)})")
    _model_options(b)
    b.set_defaults(func=run_backtest)

    t = dsub.add_parser("train", help="train a model and save it under models/demand/<version>/",
                        description="Score the model on the last --holdout-days of the span (fitted on the days "
                        "before), then fit it on the whole span and save it with its feature list, metrics, data "
                        "span, git commit and a model card.")
    t.add_argument("--span", metavar="START:END", help="training span (default: every day with station hours)")
    t.add_argument("--model", default="lightgbm", choices=MODEL_NAMES)
    t.add_argument("--version", help="folder name (default: <model>-<last day of the span>)")
    t.add_argument("--out-root", type=Path, help="where versions go (default: $BICIMAD_MODELS_DIR or models/, then demand/)")
    t.add_argument("--holdout-days", type=int, default=7, help="days at the end of the span scored before the final fit")
    _model_options(t)
    t.set_defaults(func=run_train)

    f = dsub.add_parser("forecast", help="pickup/return rates per station-hour and the OD table for one day",
                        description="Forecast day D from data before its midnight; write forecast.parquet, od.parquet "
                        "and summary.json (methods and fallbacks used).")
    f.add_argument("--date", required=True, help="the local day to forecast, YYYY-MM-DD")
    f.add_argument("--model", type=Path, help="model folder (default: newest under models/demand/, else the default)")
    f.add_argument("--out", type=Path, help="output folder (default: $BICIMAD_DATA_DIR/processed/forecasts/D/)")
    f.add_argument("--history-days", type=int, default=35, help="days of history read before D (default 35)")
    f.add_argument("--daily-trips", type=float, metavar="N",
                   help="rescale gross rates so the day's pickups total N (e.g. EMT's counted trips), net kept")
    _weather_option(f)
    f.set_defaults(func=run_forecast)


def _model_options(p: argparse.ArgumentParser) -> None:
    _weather_option(p)
    p.add_argument("--rounds", type=int, default=300, help="LightGBM boosting rounds (default 300)")
    p.add_argument("--seed", type=int, default=0, help="LightGBM seed (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="LightGBM threads (default 1: more only pays on an otherwise idle machine, see BENCHMARKS.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _weather_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weather", type=Path, metavar="CSV",
                   help="optional daily weather for LightGBM: a CSV with a `date` column (YYYY-MM-DD) and numeric columns")


def load_weather(path: Path | None):
    """Daily weather CSV -> frame indexed by local date (naive midnight), numeric columns only."""
    import pandas as pd

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
    import pandas as pd

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


def _model_kwargs(args) -> dict:
    return {"lightgbm": {"num_boost_round": args.rounds, "seed": args.seed, "num_threads": args.threads,
                         "weather": load_weather(args.weather)}}


def _read(args, table: str, required: bool = True):
    from bicimad.opendata.schemas import SchemaError, read_table

    path = config.processed_dir(args.data_dir) / f"{table}.parquet"
    if not path.exists():
        if required:
            raise CommandError(f"{path}: missing (run `bicimad ingest` first)")
        return None
    try:
        return read_table(table, path)
    except SchemaError as exc:
        raise CommandError(str(exc)) from None


def _panel(args, first, end):
    """The panel from ``first`` to ``end`` (exclusive), with the lag window before it."""
    import pandas as pd

    from bicimad.config import TZ
    from bicimad.demand.panel import build_panel

    station_hours = _read(args, "station_hours")
    stations = _read(args, "stations", required=False)
    hours = station_hours["hour"]
    rows = station_hours[(hours >= first.tz_localize(TZ)) & (hours < end.tz_localize(TZ))]
    if rows["net_flow"].notna().sum() == 0 and rows["pickups"].notna().sum() == 0:
        raise CommandError(f"no station hours with net flow or trips between {first.date()} and "
                           f"{(end - pd.Timedelta(days=1)).date()} in {config.processed_dir(args.data_dir)}")
    # The panel covers the span, cut to the days that hold data (a wide span costs no memory).
    local = rows["hour"].dt.tz_convert(TZ).dt.tz_localize(None)
    first = max(first, local.min().normalize())
    end = min(end, local.max().normalize() + pd.Timedelta(days=1))
    return build_panel(rows, stations, start=first, end=end), stations


def run_backtest(args) -> int:
    import numpy as np

    from bicimad.demand.backtest import run_backtest as backtest
    from bicimad.demand.backtest import write_backtest

    train_start, train_end = parse_span(args.train, "--train")
    test_start, test_end = parse_span(args.test, "--test")
    if test_start < train_end:
        raise CommandError("--test must start after --train ends (a backtest never trains on the future)")
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = set(models) - set(MODEL_NAMES)
    if unknown:
        raise CommandError(f"--models: unknown {sorted(unknown)}; known: {', '.join(MODEL_NAMES)}")
    panel, _ = _panel(args, train_start, test_end)
    train, test = panel.day_mask(train_start, train_end), panel.day_mask(test_start, test_end)
    t0 = time.perf_counter()
    try:
        result = backtest(panel, train, test, models=models, model_kwargs=_model_kwargs(args),
                          progress=not args.no_progress)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    spans = {"train": [str(train_start.date()), str(train_end.date())], "test": [str(test_start.date()), str(test_end.date())],
             "end_exclusive": True}
    paths = write_backtest(result, args.out, spans=spans)
    table = result.table()
    observed = int(np.isfinite(result.actual_net).sum())
    print(f"backtest: train {args.train}, test {args.test}, {int(result.rider.sum()):,} rider station-hours, "
          f"{int(result.truck_moves.sum()):,} of {observed:,} observed hours flagged as truck moves "
          f"({time.perf_counter() - t0:.0f} s)")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if "lightgbm" in table.index:
        for base in ("historical_mean", "seasonal_naive"):
            if base in table.index:
                gain = 1 - table.loc["lightgbm", "mae"] / table.loc[base, "mae"]
                print(f"lightgbm net-flow MAE vs {base}: {gain:+.1%} ({'lower' if gain > 0 else 'higher'})")
    for name, ref in result.reference.items():
        print(f"reference, not a forecast ({name}): MAE {ref['mae']:.3f}, RMSE {ref['rmse']:.3f}")
    print(f"wrote {paths['metrics']} and plots in {args.out}")
    return 0


def run_train(args) -> int:
    import numpy as np

    from bicimad.demand.backtest import run_backtest as backtest
    from bicimad.demand.models import make_model
    from bicimad.io import sha256_file, write_json
    from bicimad.jobs.batch import git_commit

    if args.span:
        first, end = parse_span(args.span, "--span")
    else:
        hours = _read(args, "station_hours")["hour"].dt.tz_localize(None)
        first, end = hours.min().normalize(), hours.max().normalize() + np.timedelta64(1, "D")
    panel, _ = _panel(args, first, end)
    kwargs = _model_kwargs(args).get(args.model, {})
    metrics = {}
    if args.holdout_days > 0:
        if panel.n_days <= args.holdout_days + 7:
            raise CommandError(f"--holdout-days {args.holdout_days}: the span has only {panel.n_days} days")
        cut = panel.n_days - args.holdout_days
        train = np.arange(panel.n_days) < cut
        try:
            result = backtest(panel, train, ~train, models=tuple(dict.fromkeys((args.model, "historical_mean", "seasonal_naive"))),
                              model_kwargs={args.model: kwargs}, progress=not args.no_progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        metrics = {"holdout_days": [str(panel.days[cut].date()), str(panel.days[-1].date())], "models": result.metrics}
    t0 = time.perf_counter()
    model = make_model(args.model, **kwargs).fit(panel, np.ones(panel.n_days, dtype=bool))
    train_s = time.perf_counter() - t0
    last_day = panel.days[-1].date()
    version = args.version or f"{args.model}-{last_day}"
    root = (args.out_root or config.models_dir()) / "demand"
    directory = root / version
    model.save(directory)
    station_hours_path = config.processed_dir(args.data_dir) / "station_hours.parquet"
    meta = {
        "version": version, "model": args.model, "span": [str(panel.days[0].date()), str(last_day)],
        "features": getattr(model, "features", []), "target": "gross" if model.gross_mode else "net_flow",
        "stations": int(panel.n_stations), "metrics": metrics, "train_s": round(train_s, 2),
        "git": git_commit(), "station_hours_sha256": sha256_file(station_hours_path),
        "params": {k: v for k, v in kwargs.items() if k != "weather"},
        "weather": str(args.weather) if args.weather else None,
    }
    write_json(directory / "meta.json", meta)
    (directory / "MODEL_CARD.md").write_text(_model_card(meta), encoding="utf-8")
    print(f"trained {args.model} on {meta['span'][0]}..{meta['span'][1]} ({panel.n_stations} stations) "
          f"in {train_s:.1f} s -> {directory}")
    if metrics:
        for name, m in metrics["models"].items():
            print(f"  holdout {name}: MAE {m['mae']:.3f}  RMSE {m['rmse']:.3f}  Poisson deviance {m['poisson_deviance']:.3f}")
    return 0


def _model_card(meta: dict) -> str:
    lines = [
        f"# Demand model {meta['version']}", "",
        f"- Kind: `{meta['model']}` ({'gross pickups/returns' if meta['target'] == 'gross' else 'net flow; gross from the Skellam cell rates'})",
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


def run_forecast(args) -> int:
    import pandas as pd

    from bicimad.config import TZ
    from bicimad.demand.forecast import forecast_day, load_model
    from bicimad.demand.od import build_od
    from bicimad.io import write_json
    from bicimad.opendata.schemas import write_table

    try:
        day = pd.Timestamp(args.date).normalize()
    except ValueError:
        raise CommandError(f"--date: expected YYYY-MM-DD, got {args.date!r}") from None
    try:
        model = load_model(args.model)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if args.weather is not None:
        if not hasattr(model, "weather"):
            raise CommandError(f"--weather: the {model.name} model takes no weather")
        model.weather = load_weather(args.weather)
    station_hours = _read(args, "station_hours")
    stations = _read(args, "stations", required=False)
    trips = _read(args, "trips", required=False)
    try:
        forecast = forecast_day(model, station_hours, stations, day, history_days=args.history_days,
                                daily_trips=args.daily_trips)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    listed = stations if stations is not None else pd.DataFrame({"station_id": forecast["station_id"].unique()})
    listed = listed[listed["station_id"].isin(forecast["station_id"].unique())]
    for column in ("lat", "lon", "capacity"):
        if column not in listed:
            listed = listed.assign(**{column: float("nan")})
    if trips is not None:
        trips = trips[trips["unplug_ts"] < day.tz_localize(TZ)]
    od = build_od(listed, trips)
    out = args.out or config.processed_dir(args.data_dir) / "forecasts" / str(day.date())
    write_table(forecast, "forecast", out / "forecast.parquet")
    write_table(od, "od", out / "od.parquet")
    summary = {"date": str(day.date()), "model": model.name, "methods": forecast.attrs["methods"],
               "stations": int(forecast["station_id"].nunique()), "pickups": float(forecast["pickup_rate"].sum()),
               "returns": float(forecast["return_rate"].sum()), "od_decay_km": od.attrs["decay_km"],
               "od_trips_used": od.attrs["trips_used"]}
    write_json(out / "summary.json", summary)
    print(f"forecast {day.date()}: {summary['stations']} stations, {summary['pickups']:.0f} pickups and "
          f"{summary['returns']:.0f} returns expected; methods {summary['methods']}")
    print(f"od: {summary['od_trips_used']} trips, distance decay {summary['od_decay_km']:.2f} km -> {out}")
    return 0
