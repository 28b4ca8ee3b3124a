"""The nightly job's config: frozen dataclasses loaded from TOML (``pipelines/nightly.toml``)."""

from __future__ import annotations

import dataclasses

from bicimad.report.routes import parse_shifts


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """Where new raw data comes from."""

    kind: str = "synthetic"
    """synthetic (the embedded default city), local (a folder of EMT raw files) or portal (EMT's open-data portal)"""
    paths: tuple[str, ...] = ()
    """local: the files or folders to ingest"""
    seed: int = 0
    """synthetic: the city's seed"""
    live: str | None = None
    """local or portal: also store the live station state as one more snapshot: gbfs or emt"""
    gbfs_url: str | None = None
    """live = gbfs: the feed's base URL (default: the ingest client's BiciMAD feed)"""

    def validate(self) -> None:
        if self.kind not in ("synthetic", "local", "portal"):
            raise ValueError(f"source.kind: must be synthetic, local or portal, got {self.kind!r}")
        if self.live not in (None, "gbfs", "emt"):
            raise ValueError(f"source.live: must be gbfs or emt, got {self.live!r}")
        if self.live and self.kind == "synthetic":
            raise ValueError("source.live: the synthetic city has no live state; use kind local or portal")
        if self.kind == "local" and not self.paths:
            raise ValueError("source.paths: required when source.kind is 'local'")


@dataclasses.dataclass(frozen=True)
class DemandConfig:
    """The demand model and its refresh schedule."""

    model: str = "lightgbm"
    """model to train and forecast with"""
    retrain_every_days: int = 7
    """retrain when the newest model's data ends this many days or more before the date"""
    history_days: int = 28
    """days of station-hours (up to D) the model is trained on"""
    rounds: int = 300
    """LightGBM boosting rounds"""
    threads: int = 1
    """LightGBM threads (one: on a busy machine spin-waiting OpenMP threads cost more than they give)"""

    def validate(self) -> None:
        if self.retrain_every_days < 1:
            raise ValueError("demand.retrain_every_days: must be >= 1")
        if self.history_days < 1:
            raise ValueError("demand.history_days: must be >= 1")
        if self.rounds < 1 or self.threads < 1:
            raise ValueError("demand.rounds and demand.threads: must be >= 1")


@dataclasses.dataclass(frozen=True)
class FreshnessConfig:
    """Limits on how old or thin the input may be before the plan cannot be trusted."""

    max_snapshot_age_hours: float = 3.0
    """the start snapshot (the last one before the planned day) may be at most this old at midnight"""
    min_history_share: float = 0.75
    """share of demand.history_days that must hold station-hour data up to the date"""
    on_stale: str = "fail"
    """fail: exit 69 before planning; mark: plan anyway and mark the plan, report and summary as stale input"""

    def validate(self) -> None:
        if not self.max_snapshot_age_hours > 0:
            raise ValueError("freshness.max_snapshot_age_hours: must be > 0")
        if not 0 <= self.min_history_share <= 1:
            raise ValueError("freshness.min_history_share: must be between 0 and 1")
        if self.on_stale not in ("fail", "mark"):
            raise ValueError(f"freshness.on_stale: must be fail or mark, got {self.on_stale!r}")


@dataclasses.dataclass(frozen=True)
class NightlyConfig:
    """The nightly job, loaded from TOML (see pipelines/nightly.toml)."""

    scenario: str = "synthetic-default"
    """fleet scenario (a name in sim/scenarios/ or a path); its network is the ingested one"""
    planners: tuple[str, ...] = ("noop", "greedy", "ortools")
    """planners whose predicted occupancy is compared"""
    dispatch: str = "ortools"
    """the planner whose plan goes to the trucks (plan.csv): one of planners, or "best": the one with
    the lowest declared objective (the scenario's weights) over the demand draws"""
    seeds: int = 3
    """demand draws per planner for the predicted occupancy"""
    seed: int = 2018
    """root seed; a run's seeds derive from it and the date"""
    shifts: str | None = None
    """route sheets per shift, e.g. "06-14,14-22,22-06" (every hour in one shift); default: one shift, the day"""
    source: SourceConfig = SourceConfig()
    demand: DemandConfig = DemandConfig()
    freshness: FreshnessConfig = FreshnessConfig()

    def validate(self) -> None:
        if not self.planners:
            raise ValueError("planners: needs at least one planner")
        if self.dispatch != "best" and self.dispatch not in self.planners:
            raise ValueError(f"dispatch: {self.dispatch!r} is not one of planners {list(self.planners)} (or \"best\")")
        if self.shifts is not None:
            try:
                parse_shifts(self.shifts)
            except ValueError as exc:
                raise ValueError(f"shifts: {exc}") from None
        if self.seeds < 1:
            raise ValueError("seeds: must be >= 1")
