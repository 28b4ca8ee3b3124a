"""The learnt fleet policy: observation, action decoding, the shared-parameter network, a planner.

Each hour every truck looks at its neighbourhood: the ``candidates`` stations within its radius
whose move to target (as the OR-Tools planner computes targets: the inventory minimising
expected empty and full events over the forecast horizon) is worth most, half of them stations
to load at and half to unload at while both kinds last (:func:`_candidates`). For each it sees
15 features (:data:`FEATURES`): fill, target, gap, the expected events a move avoids with the
truck's load as it is, distance, forecast net flow, and the truck's own load and the hour.

Action: per truck and per visit slot, one of its candidates or "no visit" (``MultiDiscrete``
with ``candidates + 1`` choices per component, truck-major). A chosen station is moved towards
its target as far as the truck's load or room allows (:func:`decode`), so every decoded plan
keeps the fleet limits by construction. Masks rule out padding candidates and, in the first
slot, moves the truck cannot make (unloading an empty truck, loading a full one).

The network (:class:`FleetAgent`) scores every (truck, candidate) pair with one MLP shared by
all trucks, so one policy serves any number of trucks; the value is read from the mean over
trucks. It implements the :class:`bicimad.rl.agents.Agent` protocol the PPO core trains.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bicimad.io import atomic_path, write_json
from bicimad.plan.targets import expected_events, station_targets
from bicimad.rl.agents import MultiCategorical, layer_init
from bicimad.sim.interface import FleetView, Plan, Visit

#: The one list of feature names, in column order; the first ``len(STATION_FEATURES)`` are
#: per station (``value_now`` and ``distance`` also per truck), the rest per truck.
FEATURES = (
    "fill", "target_fill", "gap", "value_full", "value_now", "distance", "net_next_hour",
    "net_horizon", "risk_now", "capacity", "truck_load", "hour_sin", "hour_cos", "here", "valid",
)
#: Column of each feature.
COLUMN = {name: i for i, name in enumerate(FEATURES)}
STATION_FEATURES = FEATURES[: COLUMN["capacity"] + 1]
POLICY_FILE = "policy.pt"
POLICY_CONFIG = "policy.json"


@dataclass(frozen=True)
class ObservationConfig:
    """How a fleet view becomes the policy's observation."""

    candidates: int = 16        #: stations each truck chooses among
    horizon_hours: int = 3      #: forecast hours for targets and expected events
    visits_per_hour: int = 2    #: visit slots per truck the action has
    hidden: int = 64            #: width of the shared MLP
    prior: float = 1.0          #: initial weight of the expected-events prior on the logits


@dataclass(frozen=True)
class Observation:
    """The policy's input for one hour, and what decoding an action needs."""

    features: np.ndarray        # (k, candidates, len(FEATURES)) float32
    candidates: np.ndarray      # (k, candidates) station index, -1 = padding
    mask: np.ndarray            # flat bool, (k * visits) components of (candidates + 1) choices
    target: np.ndarray          # (n,) target inventory per station


def observe(view: FleetView, config: ObservationConfig, events: np.ndarray | None = None) -> Observation:
    """Features, candidate stations and the action mask for ``view``.

    ``events`` (from :func:`~bicimad.plan.targets.expected_events` over the view's first
    ``horizon_hours``) may be passed in: it depends on the forecast only, not on the bikes, so
    copies of one city at the same hour share it. Distances are scaled by the view's
    ``radius_km`` and capacities by its ``capacity_scale`` (both the scenario's).
    """
    if view.visits_per_hour != config.visits_per_hour:
        raise ValueError(f"policy plans {config.visits_per_hour} visits per hour; the fleet makes {view.visits_per_hour}")
    k, c = view.n_trucks, config.candidates
    hours = max(1, min(config.horizon_hours, view.pickup_rate.shape[0]))
    if events is None:
        events = expected_events(view.capacity, view.pickup_rate[:hours], view.return_rate[:hours])
    target = station_targets(events)
    station = _station_features(view, events, target, hours)
    gap = view.bikes.astype(np.int64) - target

    features = np.zeros((k, c, len(FEATURES)), dtype=np.float32)
    candidates = np.full((k, c), -1, dtype=np.int64)
    mask = np.zeros((k, config.visits_per_hour, c + 1), dtype=bool)
    mask[:, :, c] = True                                  # "no visit" is always allowed
    angle = 2 * np.pi * view.hour_of_day / 24
    for truck in range(k):
        load = int(view.truck_load[truck])
        # The move this truck could make now: load up to its room, unload up to its load.
        move_now = np.where(gap > 0, np.minimum(gap, view.truck_capacity - load), -np.minimum(-gap, load))
        value_now = _avoided(events, view.bikes, move_now)
        chosen = _candidates(view.reachable[truck], gap, station[:, COLUMN["value_full"]], c)
        m = len(chosen)
        candidates[truck, :m] = chosen
        rows = features[truck, :m]
        rows[:, : len(STATION_FEATURES)] = station[chosen]
        rows[:, COLUMN["value_now"]] = value_now[chosen]
        rows[:, COLUMN["distance"]] = view.distance_km[view.truck_station[truck], chosen] / view.radius_km
        rows[:, COLUMN["truck_load"]] = load / view.truck_capacity
        rows[:, COLUMN["hour_sin"]] = np.sin(angle)
        rows[:, COLUMN["hour_cos"]] = np.cos(angle)
        rows[:, COLUMN["here"]] = chosen == view.truck_station[truck]
        rows[:, COLUMN["valid"]] = 1.0
        mask[truck, :, :m] = True
        mask[truck, 0, :m] = move_now[chosen] != 0
    return Observation(features, candidates, mask.reshape(-1), target)


def _avoided(events: np.ndarray, bikes: np.ndarray, move: np.ndarray) -> np.ndarray:
    """Per station, the expected events avoided by taking ``move`` bikes (< 0: leaving them)."""
    rows = np.arange(len(bikes))
    bikes = bikes.astype(np.int64)
    return events[rows, bikes] - events[rows, bikes - move]


def _station_features(view: FleetView, events: np.ndarray, target: np.ndarray, hours: int) -> np.ndarray:
    """(n, len(STATION_FEATURES)) the features of each station that no truck changes; the
    truck-dependent ones (``value_now``, ``distance``) are left at zero."""
    bikes = view.bikes.astype(np.int64)
    capacity = np.maximum(view.capacity.astype(np.float64), 1.0)
    gap = bikes - target
    net = view.return_rate[:hours] - view.pickup_rate[:hours]
    values = {
        "fill": bikes / capacity,
        "target_fill": target / capacity,
        "gap": np.clip(gap / view.truck_capacity, -1, 1),
        "value_full": _avoided(events, bikes, np.clip(gap, -view.truck_capacity, view.truck_capacity)),
        "net_next_hour": net[0] / capacity,
        "net_horizon": net.sum(axis=0) / capacity,
        "risk_now": events[np.arange(len(bikes)), bikes],
        "capacity": capacity / view.capacity_scale,
    }
    out = np.zeros((len(bikes), len(STATION_FEATURES)))
    for name, value in values.items():
        out[:, COLUMN[name]] = value
    return out


def _candidates(reachable: np.ndarray, gap: np.ndarray, value: np.ndarray, c: int) -> np.ndarray:
    """Up to ``c`` reachable stations off target, best ``value`` first, half of them sources
    (above target) and half sinks (below) while both kinds last.

    A route loads at sources and unloads at sinks; ranked on one list, a neighbourhood short
    of bikes fills every slot with sinks and leaves an empty truck nothing to load first.
    """
    sides = []
    for side in (gap > 0, gap < 0):
        stations = np.flatnonzero(reachable & side)
        sides.append(stations[np.argsort(-value[stations], kind="stable")])
    half = c // 2
    take_up = min(len(sides[0]), max(half, c - len(sides[1])))
    chosen = np.concatenate([sides[0][:take_up], sides[1][: c - take_up]])
    return chosen[np.argsort(-value[chosen], kind="stable")]


def decode(view: FleetView, obs: Observation, action: np.ndarray | None, ranking: np.ndarray | None = None) -> Plan:
    """The plan an action stands for: each chosen station moved towards its target.

    Trucks act in order; a station already visited this hour, a padding choice or a move the
    truck cannot make (no bikes to unload, no room) is skipped, so the plan keeps every limit.
    With ``ranking`` (per component, every choice in order of preference) instead of
    ``action``, a skipped choice gives way to the next one until a stop is made or "no visit"
    comes first: how the planner resolves two trucks wanting the same station.
    """
    k, c = obs.candidates.shape
    prefs = ranking if ranking is not None else np.asarray(action)[:, None]
    visits = len(prefs) // k
    bikes = view.bikes.astype(np.int64).copy()
    visited = np.zeros(view.n_stations, dtype=bool)
    plan: Plan = []
    for truck in range(k):
        load = int(view.truck_load[truck])
        route = []
        for slot in range(visits):
            for choice in prefs[truck * visits + slot]:
                if choice >= c:
                    break                                   # "no visit" preferred
                station = int(obs.candidates[truck, choice])
                if station < 0 or visited[station]:
                    continue
                gap = int(bikes[station] - obs.target[station])
                move = min(gap, view.truck_capacity - load) if gap > 0 else -min(-gap, load)
                if move == 0:
                    continue
                route.append(Visit(station, move))
                load += move
                bikes[station] -= move
                visited[station] = True
                break
        plan.append(route)
    return plan


def plan_to_action(obs: Observation, plan: Plan, visits: int) -> np.ndarray:
    """The policy action closest to ``plan``: each stop as its candidate index, "no visit"
    where the planner stops nowhere or at a station outside the truck's candidates."""
    k, c = obs.candidates.shape
    action = np.full(k * visits, c, dtype=np.int64)
    for truck, route in enumerate(plan):
        for slot, visit in enumerate(route[:visits]):
            hit = np.flatnonzero(obs.candidates[truck] == visit.station)
            if hit.size:
                action[truck * visits + slot] = hit[0]
    return action


class FleetAgent(nn.Module):
    """Per-candidate MLP shared by every truck; logits per visit slot; value from the fleet mean.

    Observations are ``(batch, k * candidates * len(FEATURES))`` or already shaped
    ``(batch, k, candidates, len(FEATURES))``.
    """

    def __init__(self, config: ObservationConfig):
        super().__init__()
        self.config = config
        f, h, v = len(FEATURES), config.hidden, config.visits_per_hour
        self.encoder = nn.Sequential(layer_init(nn.Linear(f, h)), nn.Tanh(), layer_init(nn.Linear(h, h)), nn.Tanh())
        # A candidate's logit sees its own embedding and its truck's (mean) context.
        self.score = nn.Sequential(layer_init(nn.Linear(2 * h, h)), nn.Tanh(), layer_init(nn.Linear(h, v), std=0.01))
        self.stay = layer_init(nn.Linear(h, v), std=0.01)
        # Prior: a candidate's logit starts as a weighted sum of the expected events its move
        # avoids with the load as it is (first slot) and, in later slots, of the value of
        # unloading there (the truck will usually have loaded first), so an untrained policy
        # already makes valuable load-then-unload stops; PPO adjusts the weights with the rest.
        prior = torch.zeros(v, 2)
        prior[0, 0] = config.prior
        prior[1:, 1] = config.prior
        self.prior_weight = nn.Parameter(prior)
        self.critic = nn.Sequential(layer_init(nn.Linear(h, h)), nn.Tanh(), layer_init(nn.Linear(h, 1), std=1.0))

    def _shape(self, obs: torch.Tensor) -> torch.Tensor:
        c, f = self.config.candidates, len(FEATURES)
        return obs.float().reshape(obs.shape[0], -1, c, f)

    def _encode(self, obs: torch.Tensor):
        x = self._shape(obs)
        valid = x[..., COLUMN["valid"], None]                     # (b, k, c, 1)
        emb = self.encoder(x) * valid
        context = emb.sum(2) / valid.sum(2).clamp(min=1.0)        # (b, k, h)
        return x, emb, context

    def _logits(self, x, emb, context):
        b, k, c, h = emb.shape
        pair = torch.cat([emb, context[:, :, None, :].expand(b, k, c, h)], dim=-1)
        unload_value = x[..., COLUMN["value_full"]] * (x[..., COLUMN["gap"]] < 0)
        prior_features = torch.stack([x[..., COLUMN["value_now"]], unload_value], dim=-1)
        prior = prior_features @ self.prior_weight.T                # (b, k, c, v)
        per_candidate = self.score(pair) + prior                  # (b, k, c, v)
        stay = self.stay(context)[:, :, None, :]                  # (b, k, 1, v)
        logits = torch.cat([per_candidate, stay], dim=2)          # (b, k, c + 1, v)
        return logits.permute(0, 1, 3, 2).reshape(b, -1)          # truck-major, slot, choice

    def _nvec(self, k: int) -> tuple[int, ...]:
        return (self.config.candidates + 1,) * (k * self.config.visits_per_hour)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        _, _, context = self._encode(obs)
        return self.critic(context.mean(1)).squeeze(-1)

    def get_action_and_value(self, obs, action=None, mask=None):
        x, emb, context = self._encode(obs)
        dist = MultiCategorical(self._logits(x, emb, context), self._nvec(emb.shape[1]), mask)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(context.mean(1)).squeeze(-1)

    def ranking(self, obs: Observation) -> np.ndarray:
        """Per action component, every choice from most to least likely (masked ones last)."""
        x = torch.as_tensor(obs.features[None])
        with torch.inference_mode():
            x, emb, context = self._encode(x)
            dist = MultiCategorical(self._logits(x, emb, context), self._nvec(emb.shape[1]),
                                    torch.as_tensor(obs.mask[None]))
            log_probs = dist.log_probs[0, :, : self.config.candidates + 1]
            return torch.argsort(log_probs, dim=-1, descending=True, stable=True).numpy()


def save_policy(agent: FleetAgent, out_dir: str | os.PathLike) -> Path:
    """Write the network and its observation config to ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / POLICY_FILE) as tmp:
        torch.save(agent.state_dict(), tmp)
    write_json(out_dir / POLICY_CONFIG, asdict(agent.config))
    return out_dir


def load_policy(policy_dir: str | os.PathLike) -> FleetAgent:
    """The network saved in ``policy_dir``; a clear error if it is not a policy folder."""
    policy_dir = Path(policy_dir)
    for name in (POLICY_CONFIG, POLICY_FILE):
        if not (policy_dir / name).is_file():
            raise FileNotFoundError(f"{policy_dir}: not a policy folder (no {name}); train one with `bicimad train-agent`")
    try:
        config = ObservationConfig(**json.loads((policy_dir / POLICY_CONFIG).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{policy_dir / POLICY_CONFIG}: bad policy config: {exc}") from exc
    agent = FleetAgent(config)
    try:  # weights only: a file that needs unpickling is refused, never run
        state = torch.load(policy_dir / POLICY_FILE, weights_only=True)
        agent.load_state_dict(state)
    except pickle.UnpicklingError:
        raise ValueError(f"{policy_dir / POLICY_FILE}: not a plain tensor file (it would need unpickling, which is "
                         "refused)") from None
    except (RuntimeError, EOFError, ValueError, TypeError, KeyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{policy_dir / POLICY_FILE}: not a fleet policy of this shape ({first[:200]})") from None
    agent.eval()
    return agent


def scenario_policy_dir(scenario) -> Path | None:
    """The scenario's own policy, ``models/policies/<scenario name>/``, where it holds a
    ``policy.pt`` (e.g. ``seed-fleet-2019``); None where it does not (``ppo`` then plans with the
    default policy, ``models/policies/default``, trained on the synthetic city)."""
    from bicimad.config import models_dir

    folder = models_dir() / "policies" / scenario.name
    return folder if (folder / "policy.pt").is_file() else None


class PolicyPlanner:
    """Plans with a trained fleet policy (the ``ppo`` planner)."""

    def __init__(self, agent: FleetAgent, name: str = "ppo"):
        self.agent = agent
        self.name = name

    @classmethod
    def load(cls, policy_dir: str | os.PathLike | None = None, name: str = "ppo") -> PolicyPlanner:
        """Load ``policy_dir`` (default: the committed synthetic-city policy, models/policies/default)."""
        from bicimad.config import models_dir

        return cls(load_policy(policy_dir or models_dir() / "policies" / "default"), name=name)

    def plan(self, view: FleetView) -> Plan:
        obs = observe(view, self.agent.config)
        return decode(view, obs, None, ranking=self.agent.ranking(obs))
