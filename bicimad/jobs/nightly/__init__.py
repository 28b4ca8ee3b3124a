"""``bicimad nightly --date D``: tomorrow's truck plan and predicted occupancy, as a cron job.

On the night of day D the job runs these steps, each writing its outputs atomically and then
recording them (with checksums) in the run folder's step ledger:

1. ``ingest``: new raw data (the synthetic default, local files, or EMT's portal; optionally the
   live station state) into the processed tables, including the station-hour table;
2. ``demand_model``: retrain the demand model if the newest one is older than the schedule
   (``demand.retrain_every_days``), else reuse it;
3. ``forecast``: pickup and return rates per station-hour for D+1 (``forecast.parquet``) and
   the origin-destination table (``od.parquet``);
4. ``simulate``: every configured planner drives the simulator over D+1 on the forecast
   demand, from the last state seen on D, for ``seeds`` demand draws (common to all planners):
   ``occupancy/<planner>.parquet`` (first draw), ``occupancy.csv`` (means and intervals over
   draws), ``plans.csv`` (every planner's plan under the first draw), and the inputs a
   what-if sweep can reuse (``stations.parquet``, ``start.parquet``, ``scenario.toml``);
   ``decision.json`` says which planner is dispatched (``dispatch``, or ``"best"``: the lowest
   declared objective over the draws, :mod:`bicimad.jobs.nightly.decision`) and why, with
   paired differences against no trucks and the runner-up;
5. ``plan``: ``plan.csv``, the dispatched planner's plan, per truck and hour: the stations in
   order and the bikes to load (> 0) or unload (< 0);
6. ``report``: ``report.html``;
7. ``manifest``: ``manifest.json`` (inputs with checksums, model version, seeds, git commit,
   config, step timings).

The run folder (default ``<data>/runs/nightly/<D>``) also holds the config (``nightly.toml``),
the log (``nightly.log``) and the ledger (``ledger.json``).

Re-running the same date skips the steps already done (``--force`` redoes them); a run killed
at any moment resumes at the step it was in, since a step's outputs replace the old ones only
when complete and the step counts as done only once recorded. Seeds derive from the config's
seed and the date alone, so a re-run reproduces the same plan. One run at a time per data
folder: a lock file (``<data>/runs/nightly.lock``) holds the running pid; a second run exits
with code 75, and a lock left by a killed run is taken over.

Exit codes (for cron):

====  ==================================================================================
0     the run finished, or was already complete
2     bad command line or bad config (the message names the key)
65    input data present but unusable (schema or values; the message names file and field)
66    input data missing (e.g. no snapshots up to the date, local folder absent)
69    stale input: the start snapshot is older, or the demand history thinner, than the
      ``[freshness]`` limits (with ``on_stale = "mark"`` the run plans anyway and marks the
      plan, the report and the printed summary "stale input" with the figures)
70    a step failed unexpectedly (traceback in nightly.log); re-running resumes at that step
75    another nightly run holds the lock; try again later
====  ==================================================================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from pathlib import Path

from bicimad import config as paths
from bicimad.errors import (
    EXIT_DATAERR,
    EXIT_NOINPUT,
    EXIT_SOFTWARE,
    EXIT_STALE,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    CommandError,
)
from bicimad.jobs import JobResult, batch
from bicimad.jobs.nightly.config import DemandConfig, NightlyConfig, SourceConfig
from bicimad.jobs.nightly.steps import STEPS, BadInputError, NightlyRun, NoInputError, StaleInputError, load_run_inputs
from bicimad.jobs.policy_fit import (
    DEFAULT_POLICY_HINT,
    announce_policy,
    check_policy_fleet,
    check_router_planner,
    policy_folder,
    read_card,
)
from bicimad.opendata.schemas import SchemaError
from bicimad.plan import is_planner_name, is_router_name, known_planners, make_planner
from bicimad.plan.router import router_folder
from bicimad.sim.scenario import ScenarioError, load_scenario

__all__ = ["DEFAULT_CONFIG", "DemandConfig", "NightlyConfig", "NightlyResult", "SourceConfig", "load_run_inputs",
           "nightly", "nightly_command", "validate_config"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "pipelines/nightly.toml"

#: Nights the job accepts: BiciMAD opened in 2014; the holiday calendar covers these years.
FIRST_DATE, LAST_DATE = dt.date(2014, 1, 1), dt.date(2100, 12, 31)


@dataclasses.dataclass(frozen=True)
class NightlyResult(JobResult):
    """A nightly run: its folder, the day planned and which steps ran now."""

    date: dt.date
    run_dir: Path
    steps_run: tuple[str, ...]
    seconds: float
    decision: str = ""
    warnings: tuple[str, ...] = ()
    dataset: str = ""

    @property
    def target(self) -> dt.date:
        return self.date + dt.timedelta(days=1)

    def summary(self) -> str:
        verdict = "already complete" if not self.steps_run else f"{len(self.steps_run)} step(s) run"
        lines = [f"nightly {self.date} -> plan for {self.target} on {self.dataset or 'unknown data'}: {verdict} "
                 f"in {self.seconds:.1f} s"]
        lines += [f"STALE INPUT: {w}" for w in self.warnings]
        if self.decision:
            lines.append(self.decision)
        lines += [f"plan: {(self.run_dir / 'plan.csv').resolve()}", f"report: {(self.run_dir / 'report.html').resolve()}"]
        return "\n".join(lines)


def validate_config(config: NightlyConfig, source: str = "config") -> None:
    """Every check that needs no data, before any work: planner names, the scenario, the policy.
    Raises :class:`CommandError` with exit code 2 naming the key."""
    unknown = [name for name in config.planners if not is_planner_name(name)]
    if unknown:
        raise CommandError(f"{source}: planners: unknown planner {unknown[0]!r}; known: {known_planners()}",
                           EXIT_USAGE)
    if "status-quo" in config.planners:
        raise CommandError(f"{source}: planners: status-quo replays EMT's moves observed on past days; it cannot "
                           "plan tomorrow (use it in `bicimad compare`)", EXIT_USAGE)
    try:
        scenario = load_scenario(config.scenario)
    except ScenarioError as exc:
        raise CommandError(f"{source}: scenario: {exc}", EXIT_USAGE) from None
    if "ppo" in config.planners:
        folder = policy_folder(announce_policy(scenario))
        try:
            make_planner("ppo", policy_dir=folder)
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(f"{source}: planners: ppo: {exc}", EXIT_USAGE) from None
        try:
            card = read_card(folder)
            _refuse_synthetic(config, card, f"the policy {folder}", "train a policy on real data first")
            check_policy_fleet(folder, card, scenario.fleet, f"scenario {scenario.name!r}", config.scenario,
                               DEFAULT_POLICY_HINT)
        except CommandError as exc:
            raise CommandError(f"{source}: planners: ppo: {exc}", EXIT_USAGE) from None
    for name in config.planners:
        if is_router_name(name):
            _validate_router(config, scenario, source, name)


def _validate_router(config: NightlyConfig, scenario, source: str, name: str) -> None:
    """Router planner ``name``'s folder (``router``: the scenario's own; ``router:DIR``) exists,
    reads, and was learnt on the kind of data planned."""
    def refuse_synthetic(card):
        _refuse_synthetic(config, card, f"the router {router_folder(name, scenario)}",
                          "train one on real days with `bicimad train-router`")

    try:
        check_router_planner(name, scenario, before_fit=refuse_synthetic)
    except (FileNotFoundError, ValueError, CommandError) as exc:
        raise CommandError(f"{source}: planners: {name}: {exc}", EXIT_USAGE) from None


def _refuse_synthetic(config: NightlyConfig, card: dict, what: str, remedy: str) -> None:
    """Refuse (exit 2) a learnt planner trained on the synthetic city for a night on real data."""
    if config.source.kind != "synthetic" and card.get("source") == "synthetic":
        raise CommandError(f"{what} was trained on the synthetic city (scenario {card.get('scenario')!r}), and "
                           f"source.kind = {config.source.kind!r} plans on real EMT data: {remedy}", EXIT_USAGE)


def _attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "nightly.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        # the file gets INFO even when the console shows warnings only
        root.setLevel(logging.INFO)
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(logging.WARNING)
    return handler


def nightly_command(date: str, config_path: str = DEFAULT_CONFIG, *, out=None, force: bool = False,
                    data_dir=None, progress: bool = True) -> NightlyResult:
    """The command line's entry: parse the date, load and validate the config file, run."""
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise CommandError(f"--date: expected YYYY-MM-DD, got {date!r}", EXIT_USAGE) from None
    if not FIRST_DATE <= day < LAST_DATE:
        raise CommandError(f"--date: {day} is outside {FIRST_DATE}..{LAST_DATE} (the calendar's years)", EXIT_USAGE)
    if config_path == DEFAULT_CONFIG and not Path(config_path).exists():
        config_path = str(paths.REPO_ROOT / DEFAULT_CONFIG)   # run from outside the checkout
    try:
        config = batch.load_config(NightlyConfig, config_path)
    except batch.ConfigError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    validate_config(config, str(config_path))
    return nightly(day, config, out=out, force=force, data_dir=data_dir, progress=progress)


def nightly(date: dt.date, config: NightlyConfig, *, out=None, force: bool = False, data_dir=None,
            progress: bool = True) -> NightlyResult:
    """Tonight's run for ``date`` (plans the day after) in its run folder, under the data
    folder's lock; resumes or skips the steps already done (``force`` redoes them)."""
    validate_config(config)
    data_root = paths.data_dir(data_dir).resolve()
    run_dir = (Path(out) if out else data_root / "runs" / "nightly" / date.isoformat()).resolve()
    lock = batch.RunLock(data_root / "runs" / "nightly.lock")
    try:
        lock.acquire()
    except batch.LockHeld as exc:
        raise CommandError(f"another nightly run is in progress: {exc}", EXIT_TEMPFAIL) from None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = _attach_log(run_dir)
        try:
            return _run_locked(NightlyRun(config, date, data_root, run_dir, progress), force=force)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
    finally:
        lock.release()


def _run_locked(ctx: NightlyRun, force: bool) -> NightlyResult:
    config, date, run_dir = ctx.config, ctx.date, ctx.run_dir
    config_path = run_dir / "nightly.toml"
    if config_path.exists() and not force:
        previous = batch.load_config(NightlyConfig, config_path)
        if previous != config:
            raise CommandError(f"{run_dir} was run with a different config ({config_path}); "
                               "use --force to redo the run with this one, or --out for another folder", EXIT_USAGE)
    if force or not config_path.exists():
        batch.write_config(config, config_path)
    log.info("nightly run for %s (plans %s) in %s", date, ctx.target, run_dir)
    t0 = time.perf_counter()
    try:
        status = batch.run_steps(STEPS, ctx, batch.Ledger(run_dir / "ledger.json"), force=force)
    except NoInputError as exc:
        log.error("missing input: %s", exc)
        raise CommandError(str(exc), EXIT_NOINPUT) from None
    except CommandError:
        raise
    except StaleInputError as exc:
        log.error("%s", exc)
        raise CommandError(f"{exc}; set freshness.on_stale = \"mark\" to plan anyway", EXIT_STALE) from None
    except (BadInputError, SchemaError) as exc:
        log.error("unusable input: %s", exc)
        raise CommandError(str(exc), EXIT_DATAERR) from None
    except Exception as exc:
        log.exception("step failed")
        raise CommandError(f"{type(exc).__name__}: {exc} (details in {run_dir / 'nightly.log'}; "
                           "re-run to resume)", EXIT_SOFTWARE) from None
    done = tuple(name for name, s in status.items() if s == "done")
    facts = _ledger_facts(run_dir)
    return NightlyResult(date=date, run_dir=run_dir, steps_run=done, seconds=time.perf_counter() - t0,
                         decision=facts.get("simulate", {}).get("decision", ""),
                         warnings=tuple(facts.get("ingest", {}).get("warnings", ())),
                         dataset=facts.get("ingest", {}).get("dataset", ""))


def _ledger_facts(run_dir: Path) -> dict:
    ledger = json.loads((run_dir / "ledger.json").read_text(encoding="utf-8"))["steps"]
    return {name: entry.get("facts", {}) for name, entry in ledger.items()}
