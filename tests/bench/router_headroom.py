"""Where the router's room is: what it would gain from more information, from more trucks, and
from planning its visits otherwise.

    .venv/bin/python tests/bench/router_headroom.py --data-dir DATA --period 2019-08-01:2019-08-31 \\
        --daily-usage U --router models/routers/seed-fleet-2019 --workers 2 [--group planning] [--every 3]
    .venv/bin/python -m pytest -m bench tests/bench/router_headroom.py -s   # synthetic city, checked

One router (``--router``, a ``bicimad train-router`` folder) plans every day of ``--period`` (or
every ``--every``-th) on the same rider draws (common random numbers) in each setting of a group,
each paired by day with the router as it plans in every comparison (``router``, seeing the forecast
made from the days before: forecast ≠ truth); mean objective a day and the 95 % bootstrap interval
over days of the relative change (:func:`bicimad.jobs.compare.paired_by_day`).

``--group headroom`` (the default) changes what the router sees, or the fleet:

- ``perfect``: the day's truth itself (the router's perfect-forecast bound);
- ``true volume``: the forecast scaled so its day total is the truth's (the day's volume known);
- ``true net flows``: each station-hour's net flow (returns − pickups) the truth's, its gross
  volume the forecast's (where each station drifts known, not how busy the day is);
- ``12 trucks`` and ``4 visits an hour``: the forecast again, with twice the fleet's visits;
  ``any reach`` (a 50 km radius: every station within every truck's reach) and ``44-bike
  trucks``: the same visits, with the truck's reach or its load no longer a limit;
- ``each slot`` and ``ortools each slot``: the router (nowcast off) and OR-Tools planning at
  the start of each of the hour's visit slots, on the state then (half an hour of the day's
  riders seen), the rest of the hour's forecast and the visits left, each truck's first stop
  executed (:func:`run_each_slot`); against ``no nowcast`` and ``ortools``, the same planners
  deciding once an hour.

``--group planning`` keeps the information and the fleet and changes how the visits are spent
(the router's parameters as trained; nothing here is retrained):

- ``best first``: all trucks' next stops ranked together (the best stop of any truck first), not
  truck by truck; ``sized with the second``: the first of two stops sized (every size tried) for
  the best stop after it, not for its own station; ``both``; ``slots first``: every truck's
  first stop (the hour's earlier slot) chosen before any truck's second, so the most valuable
  stops are made first, not each truck's two in turn;
- ``urgency S``: a stop's worth less share ``S`` of what the station would be worth a visit an
  hour later (waiting an hour, then the best move of up to a truckload);
- ``rollout H×R``: each hour the best of four routers' plans (this one; problem scale ×2; 2 hours
  of look-ahead; 6 first stops weighed with loads valued 0.1), each simulated ``H`` hours on ``R``
  rider draws of the forecast (common to the plans), this router planning the later hours;
- ``ortools``, and ``ortools, learnt valuation``: OR-Tools valuing its stops with the router's
  cost-to-go and km scale (nowcast off), against ``no nowcast`` (the router with it off too) and
  ``no nowcast, one stop ahead`` (and without its two-visit look-ahead);
- ``unusable known`` and ``ortools, unusable known``: the router and OR-Tools valuing stations
  with the scenario's riders' unusable bikes and docks in their chain (``expected_cost``'s
  ``unusable_bikes``, ``unusable_docks``: at ``x`` bikes a pickup finds none usable with chance
  ``q ** x``), as the simulator draws them;
- ``net flows shrunk K`` and ``hours smoothed``: the forecast's net flows shrunk by share ``K``
  towards none, or each hour's rates averaged half with the hours either side.

It also measures how far the day so far predicts the forecast's error (what a nowcast could
correct): per station-hour the residual ``r`` = truth's net flow − forecast's, and its
correlation with the mean of the same station's residuals earlier that day, both as the rates
say (an oracle reading the day's true rates so far) and as a planner could see them (with each
hour's Poisson noise of the riders). Use a training month: nothing here may touch test days.

"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bicimad.jobs.compare import day_seed, load_daily_usage, paired_by_day, parse_period, prepare_days
from bicimad.plan import planner_for
from bicimad.plan.greedy_objective import ObjectiveGreedyPlanner
from bicimad.plan.ortools_planner import objective_weights
from bicimad.plan.router import GREEDY_START, SPACE, read_router
from bicimad.plan.targets import expected_cost
from bicimad.sim import run_episode
from bicimad.sim.core import FleetSim
from bicimad.sim.interface import Visit
from bicimad.sim.objective import objective
from bicimad.sim.riders import Demand
from bicimad.sim.scenario import load_scenario
from bicimad.sim.seeds import derive_seed, rider_rng

BASELINE = "router"
INFORMATION = ("perfect", "true volume", "true net flows")
#: Planned at each slot's start (the state of the half hour), against the same router planning hourly.
SLOTS = ("no nowcast", "each slot", "ortools", "ortools each slot")
#: Pairs the command line also reports (setting, against), where both ran.
SLOT_PAIRS = (("each slot", "no nowcast"), ("ortools each slot", "ortools"), ("each slot", "ortools each slot"),
              ("no nowcast", "ortools"))
FLEET = {"12 trucks": {"trucks": 12}, "4 visits an hour": {"visits_per_hour": 4}, "any reach": {"radius_km": 50.0},
         "44-bike trucks": {"truck_capacity": 44}}
GROUPS = {
    "headroom": (BASELINE, *INFORMATION, *FLEET, *SLOTS),
    "planning": (BASELINE, "best first", "sized with the second", "both", "slots first", "urgency 0.25", "urgency 0.5",
                 "urgency 1", "rollout 2x2", "rollout 3x6", "ortools", "ortools, learnt valuation", "unusable known",
                 "ortools, unusable known", "no nowcast", "no nowcast, one stop ahead", "net flows shrunk 0.2",
                 "net flows shrunk 0.4", "hours smoothed"),
}

_WORK: dict = {}


def seen_by_planner(setting: str, truth: Demand, forecast: Demand) -> Demand:
    """What the planner sees in ``setting`` (module docstring), built from the truth and the forecast."""
    if setting == "perfect":
        return Demand(truth.hours, truth.pickup_rate, truth.return_rate, truth.od)
    if setting == "true volume":
        scale = (truth.pickup_rate.sum() + truth.return_rate.sum()) / max(
            forecast.pickup_rate.sum() + forecast.return_rate.sum(), 1e-9)
        return Demand(forecast.hours, forecast.pickup_rate * scale, forecast.return_rate * scale, forecast.od)
    if setting == "true net flows":
        return _with_net(forecast, truth.return_rate - truth.pickup_rate)
    if setting.startswith("net flows shrunk"):
        share = float(setting.rsplit(" ", 1)[1])
        return _with_net(forecast, (1 - share) * (forecast.return_rate - forecast.pickup_rate))
    if setting == "hours smoothed":
        def smooth(rate):
            out = rate.copy()
            out[1:-1] = 0.5 * rate[1:-1] + 0.25 * (rate[:-2] + rate[2:])
            return out
        return Demand(forecast.hours, smooth(forecast.pickup_rate), smooth(forecast.return_rate), forecast.od)
    return forecast


def _with_net(forecast: Demand, net: np.ndarray) -> Demand:
    """``forecast``'s gross volume (pickups + returns) with net flow ``net`` (returns − pickups)."""
    half_gross = (forecast.pickup_rate + forecast.return_rate) / 2
    return Demand(forecast.hours, np.maximum(half_gross - net / 2, 0), np.maximum(half_gross + net / 2, 0), forecast.od)


@dataclass
class VariantRouter(ObjectiveGreedyPlanner):
    """The router with the planning changes of ``--group planning`` (prototypes: not kept)."""

    best_first: bool = False
    joint_size: bool = False
    urgency: float = 0.0
    slots_first: bool = False
    unusable: tuple[float, float] = (0.0, 0.0)

    def station_cost(self, view):
        if any(self.unusable):
            pickup, returns = self.rates(view)
            return expected_cost(view.capacity, pickup, returns, hour_weights=self.discount ** np.arange(len(pickup)),
                                 **self.cost_weights(), unusable_bikes=self.unusable[0], unusable_docks=self.unusable[1])
        if not self.urgency or min(int(self.horizon_hours), view.pickup_rate.shape[0]) < 2:
            return super().station_cost(view)
        pickup, returns = self.rates(view)
        weights, kw = self.discount ** np.arange(len(pickup)), self.cost_weights()
        after = expected_cost(view.capacity, pickup[1:], returns[1:], hour_weights=weights[1:], **kw)
        cost = expected_cost(view.capacity, pickup[:1], returns[:1], terminal=after, **kw)
        reach = view.truck_capacity   # left alone an hour, then the best move of up to a truckload
        padded = np.pad(after, ((0, 0), (reach, reach)), constant_values=np.inf)
        best_after = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1, axis=1).min(axis=2)
        waited = expected_cost(view.capacity, pickup[:1], returns[:1], **kw,
                               terminal=np.where(np.isfinite(after), best_after, 0.0))
        now = np.minimum(view.bikes.astype(np.int64), view.capacity)
        rows = np.arange(view.n_stations)
        worth_later = np.maximum(cost[rows, now] - waited[rows, now], 0.0)
        moved = np.arange(cost.shape[1])[None, :] != now[:, None]
        return cost + np.where(moved, self.urgency * worth_later[:, None], 0.0)

    def plan(self, view):
        if not (self.slots_first or self.best_first):
            return super().plan(view)
        h = self._hour(view)
        if self.slots_first:   # every truck's first stop (the hour's earlier slot) before any truck's second
            done = set()
            for visit in range(view.visits_per_hour):
                for truck in (t for t in range(view.n_trucks) if t not in done):
                    station, move = self._next_stop(view, h.cost, h.bikes, h.claimed, truck, h.here[truck],
                                                    h.load[truck], view.visits_per_hour - visit - 1)
                    if station < 0:
                        done.add(truck)
                    else:
                        self._take(h, truck, station, move)
            return self._done(h)
        open_ = set(range(view.n_trucks))
        while open_:
            best = None
            for truck in sorted(open_):
                left = view.visits_per_hour - len(h.routes[truck]) - 1
                station, move, value = self._valued_stop(view, h.cost, h.bikes, h.claimed, truck, h.here[truck],
                                                         h.load[truck], left)
                if station < 0:
                    open_.discard(truck)
                elif best is None or value > best[0]:
                    best = (value, truck, station, move)
            if best is None:
                break
            _, truck, station, move = best
            self._take(h, truck, station, move)
            if len(h.routes[truck]) == view.visits_per_hour:
                open_.discard(truck)
        return self._done(h)

    def _hour(self, view) -> SimpleNamespace:
        """The hour's planning state: station costs, docked bikes, claimed stations, routes, loads, places."""
        return SimpleNamespace(cost=self.station_cost(view), bikes=view.bikes.astype(np.int64).copy(),
                               claimed=np.zeros(view.n_stations, dtype=bool), routes=[[] for _ in range(view.n_trucks)],
                               load=view.truck_load.astype(int).tolist(), here=view.truck_station.astype(int).tolist())

    @staticmethod
    def _take(h: SimpleNamespace, truck: int, station: int, move: int) -> None:
        h.routes[truck].append(Visit(station, move))
        h.load[truck] += move
        h.bikes[station] -= move
        h.claimed[station] = True
        h.here[truck] = station

    def _done(self, h: SimpleNamespace):
        if self._day is not None:
            self._day["expected"] = h.bikes.astype(float)
        return h.routes

    def _next_stop(self, view, cost, bikes, claimed, truck, here, load, left):
        station, move, _ = self._valued_stop(view, cost, bikes, claimed, truck, here, load, left)
        return station, move

    def _valued_stop(self, view, cost, bikes, claimed, truck, here, load, left):
        """The next stop, its size and its worth (with the best stop after it, where looked ahead)."""
        move, value = self._stop_values(view, cost, bikes, claimed, truck, here, load)
        k = min(self.pair_candidates, int(np.isfinite(value).sum()))
        if left < 1 or k <= 1:
            s = int(value.argmax())
            return (s, int(move[s]), float(value[s])) if value[s] >= self.min_gain else (-1, 0, -np.inf)
        best = (-1, 0, -np.inf)
        for s in (int(x) for x in np.argpartition(-value, k - 1)[:k]):
            if not value[s] >= self.min_gain:
                continue
            for q in self._sizes(view, cost, bikes, s, int(move[s]), load):
                first = cost[s, bikes[s]] - cost[s, bikes[s] - q] - self.km_scale * self.km_cost * view.distance_km[here, s] \
                    + self.load_value * q
                bikes[s] -= q
                claimed[s] = True
                _, after = self._stop_values(view, cost, bikes, claimed, truck, s, load + q)
                bikes[s] += q
                claimed[s] = False
                total = first + max(float(after.max(initial=-np.inf)), 0.0)
                if first >= self.min_gain and total > best[2]:
                    best = (s, q, total)
        return best

    def _sizes(self, view, cost, bikes, s, move, load):
        if not self.joint_size:
            return [move]
        if move > 0:   # every load the truck and the station allow, or every unload
            return range(1, min(view.truck_capacity - load, int(bikes[s])) + 1)
        return range(-1, -min(load, int(view.capacity[s] - bikes[s])) - 1, -1)


class RolloutRouter:
    """Each hour, the best of several routers' plans, each simulated ``hours`` hours on ``draws``
    rider draws of the forecast (common to the plans), ``then`` planning the later hours."""

    def __init__(self, routers, then, network, scenario, forecast: Demand, hours: int, draws: int, seed: int):
        self.name, self.routers, self.then = "rollout", routers, then
        self.network, self.scenario, self.forecast = network, scenario, forecast
        self.hours, self.draws, self.seed = hours, draws, seed

    def plan(self, view):
        plans = {}
        for router in self.routers:
            plan = router.plan(view)
            plans.setdefault(tuple(tuple((v.station, v.bikes) for v in route) for route in plan), plan)
        plans = list(plans.values())
        if len(plans) == 1:
            return plans[0]
        h, fc = view.hour_index, self.forecast
        hours = min(self.hours, fc.n_hours - h)
        od = fc.od if fc.od is None or fc.od.ndim == 2 else fc.od[h:h + hours]
        demand = Demand(fc.hours[h:h + hours], fc.pickup_rate[h:h + hours], fc.return_rate[h:h + hours], od)
        envs = len(plans) * self.draws
        sim = FleetSim(self.network, self.scenario.override({"episode.hours": hours}), demand, n_envs=envs)
        sim.reset([np.random.default_rng(derive_seed(self.seed, 100 * h + e % self.draws)) for e in range(envs)],
                  bikes=view.bikes)
        sim.reachable = view.reachable.copy()
        sim.truck_pos[:], sim.truck_load[:] = view.truck_station[None, :], view.truck_load[None, :]
        cost, w = np.zeros(envs), self.scenario.reward
        for hour in range(hours):
            chosen = [plans[e // self.draws] if hour == 0 else self.then.plan(sim.fleet_view(e)) for e in range(envs)]
            for slot in range(sim.vph):
                station, take = np.full((envs, sim.k), -1), np.zeros((envs, sim.k), np.int64)
                for e, plan in enumerate(chosen):
                    for j, route in enumerate(plan):
                        if slot < len(route):
                            station[e, j], take[e, j] = route[slot].station, route[slot].bikes
                out = sim.step(station, take=take)
                cost += (w.problem_hour * out["new_problem_hours"] + w.lost_trip * out["lost_trips"]
                         + w.diverted_return * out["diverted_returns"] + w.truck_km * out["truck_km"])
        return plans[int(np.argmin(cost.reshape(len(plans), self.draws).mean(axis=1)))]


class ORToolsKnowingUnusable:
    """OR-Tools valuing its stops with the riders' unusable bikes and docks in the chain."""

    def __init__(self, scenario):
        self.name, self.inner = "ortools, unusable known", planner_for("ortools", scenario)
        self.unusable = {"unusable_bikes": scenario.riders.unusable_bike_share,
                         "unusable_docks": scenario.riders.unusable_dock_share}

    def plan(self, view):
        import bicimad.plan.ortools_planner as ortools

        def cost(v, hours, **weights):
            hours = max(1, min(hours, v.pickup_rate.shape[0]))
            return expected_cost(v.capacity, v.pickup_rate[:hours], v.return_rate[:hours], **weights, **self.unusable)

        plain, ortools.forecast_cost = ortools.forecast_cost, cost
        try:
            return self.inner.plan(view)
        finally:
            ortools.forecast_cost = plain


class ORToolsWithValuation:
    """OR-Tools valuing its stops with ``valuation``'s cost-to-go, its km by ``km_scale``."""

    def __init__(self, scenario, valuation: ObjectiveGreedyPlanner):
        self.name, self.valuation = "ortools, learnt valuation", valuation
        self.inner = planner_for("ortools", scenario)

    def plan(self, view):
        import bicimad.plan.ortools_planner as ortools

        plain = ortools.forecast_cost
        ortools.forecast_cost = lambda v, hours, **weights: self.valuation.station_cost(v)
        try:
            return self.inner.plan(dataclasses.replace(view, distance_km=view.distance_km * self.valuation.km_scale))
        finally:
            ortools.forecast_cost = plain


def setting_planner(setting: str, scenario, params: dict, day, seed: int):
    """The planner of ``setting`` (module docstring) on ``day``."""
    weights = objective_weights(scenario.reward)

    def router(**changes):
        knobs = {k: (int(v) if SPACE[k].integer else float(v)) for k, v in {**params, **changes}.items()
                 if k in SPACE}
        extra = {k: v for k, v in changes.items() if k not in SPACE}
        return VariantRouter(name=setting, **weights, **knobs, **extra)

    quiet = {"nowcast_volume": 0.0, "nowcast_drift": 0.0}
    if setting == "slots first":
        return router(slots_first=True)
    if setting in ("best first", "both"):
        return router(best_first=True, joint_size=setting == "both")
    if setting == "sized with the second":
        return router(joint_size=True)
    if setting.startswith("urgency"):
        return router(urgency=float(setting.split()[1]))
    if setting.startswith("rollout"):
        hours, draws = (int(x) for x in setting.split()[1].split("x"))
        others = [router(**quiet, problem_scale=2 * params["problem_scale"]), router(**quiet, horizon_hours=2),
                  router(**quiet, pair_candidates=6, load_value=0.1)]
        return RolloutRouter([router(), *others], router(**quiet), day.network, scenario,
                             day.forecast if day.forecast is not None else day.truth, hours, draws, seed)
    if setting == "ortools":
        return planner_for("ortools", scenario)
    if setting == "unusable known":
        return router(unusable=(scenario.riders.unusable_bike_share, scenario.riders.unusable_dock_share))
    if setting == "ortools, unusable known":
        return ORToolsKnowingUnusable(scenario)
    if setting == "ortools, learnt valuation":
        return ORToolsWithValuation(scenario, router(**quiet))
    if setting == "no nowcast":
        return router(**quiet)
    if setting == "no nowcast, one stop ahead":
        return router(**quiet, pair_candidates=1)
    return router()


def run_each_slot(network, truth: Demand, seen: Demand, scenario, planner, seed: int) -> dict:
    """A day whose trucks are planned at every slot's start (the state then, the rest of the
    hour's forecast, the visits left this hour), each truck's first stop of each plan executed:
    the summary row of :meth:`FleetSim.summary`."""
    sim = FleetSim(network, scenario, truth, n_envs=1, forecast=seen)
    sim.reset([rider_rng(seed)])
    for _ in range(sim.H):
        for slot in range(sim.vph):
            view = sim.fleet_view(0)
            left = 1.0 - slot / sim.vph
            view = dataclasses.replace(view, visits_per_hour=sim.vph - slot,
                                       pickup_rate=np.vstack([view.pickup_rate[:1] * left, view.pickup_rate[1:]]),
                                       return_rate=np.vstack([view.return_rate[:1] * left, view.return_rate[1:]]))
            station, take = sim.plan_arrays([route[:1] for route in planner.plan(view)], 0)
            sim.step(station, take=take)
    return sim.summary(0, planner=planner.name)


def _simulate(task) -> float:
    setting, index, seed = task
    scenario, days, params = _WORK["scenario"], _WORK["days"], _WORK["params"]
    day = days[index]
    if setting in ("each slot", "ortools each slot"):
        hourly = "no nowcast" if setting == "each slot" else "ortools"
        planner = setting_planner(hourly, scenario, params, day, seed)
        forecast = day.forecast if day.forecast is not None else day.truth
        return objective(run_each_slot(day.network, day.truth, forecast, scenario, planner, seed), scenario.reward)
    if setting in FLEET:
        scenario = dataclasses.replace(scenario, fleet=dataclasses.replace(scenario.fleet, **FLEET[setting]))
    forecast = day.forecast if day.forecast is not None else day.truth
    seen = seen_by_planner(setting, day.truth, forecast)
    result = run_episode(day.network, day.truth, seen, scenario, setting_planner(setting, scenario, params, day, seed),
                         seed=seed)
    return objective(result.summary.iloc[0], scenario.reward)


def headroom(scenario, days, params: dict, settings=GROUPS["headroom"], draws: int = 1,
             workers: int = 1) -> pd.DataFrame:
    """One row per setting, day and draw: the day's declared objective (``paired_by_day``'s input)."""
    _WORK.update(scenario=scenario, days=days, params=params)
    keys = [(s, i, d) for s in settings for i in range(len(days)) for d in range(draws)]
    tasks = [(s, i, day_seed(d, i)) for s, i, d in keys]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            costs = list(pool.map(_simulate, tasks, chunksize=1))
    else:
        costs = [_simulate(t) for t in tasks]
    return pd.DataFrame([{"planner": s, "day": days[i].date, "seed": d, "objective": c}
                         for (s, i, d), c in zip(keys, costs)])

def nowcast_reach(days, seed: int = 0) -> dict:
    """How well each station's mean residual so far predicts its next hour's (module docstring)."""
    rng = np.random.default_rng(seed)
    seen, oracle, target = [], [], []
    for day in days:
        if day.forecast is None:
            continue
        truth, forecast = day.truth, day.forecast
        residual = (truth.return_rate - truth.pickup_rate) - (forecast.return_rate - forecast.pickup_rate)
        noisy = residual + rng.normal(0.0, np.sqrt(truth.return_rate + truth.pickup_rate))
        for hour in range(3, residual.shape[0]):
            oracle.append(residual[:hour].mean(axis=0))
            seen.append(noisy[:hour].mean(axis=0))
            target.append(residual[hour])
    if not target:
        return {"station_hours": 0}
    y, x_true, x_seen = (np.concatenate(v) for v in (target, oracle, seen))
    return {"station_hours": int(y.size), "residual_std": float(y.std()),
            "corr_true_rates_so_far": float(np.corrcoef(x_true, y)[0, 1]),
            "corr_seen_so_far": float(np.corrcoef(x_seen, y)[0, 1])}


def report(per_day: pd.DataFrame) -> pd.DataFrame:
    """Each setting's objective a day and its change against the router (95 % bootstrap over days)."""
    paired = paired_by_day(per_day, baselines=(BASELINE,), metrics=("objective",))
    base = per_day[per_day["planner"] == BASELINE]["objective"].mean()
    rows = [{"setting": BASELINE, "objective a day": base, "vs router": "–"}]
    for row in paired.itertuples():
        rows.append({"setting": row.planner, "objective a day": row.value,
                     "vs router": f"{100 * row.change:+.1f} % [{100 * row.change_ci_low:+.1f}, {100 * row.change_ci_high:+.1f}]"})
    return pd.DataFrame(rows)


@pytest.mark.bench
def test_headroom_and_planning_variants_on_the_synthetic_city():
    scenario = load_scenario("synthetic-default")
    days, _ = prepare_days(scenario, pd.Timestamp("2018-09-24"), pd.Timestamp("2018-09-26"))
    settings = tuple(dict.fromkeys((*GROUPS["headroom"], *(s for s in GROUPS["planning"][1:] if s != "rollout 3x6"))))
    table = report(headroom(scenario, days, dict(GREEDY_START), settings)).set_index("setting")["objective a day"]
    print(table)
    # The synthetic city's planners see its truth: every information setting is the same run, and
    # the variants that only switch the nowcast or an unused look-ahead off (the plain greedy's knobs
    # look one stop ahead) plan as the router.
    same = [*INFORMATION, "no nowcast", "no nowcast, one stop ahead", "sized with the second"]
    assert np.allclose(table[same], table[BASELINE])
    # with the plain greedy's knobs the learnt valuation is OR-Tools' own
    assert table["ortools, learnt valuation"] == pytest.approx(table["ortools"])
    # the synthetic city's riders find every bike and dock usable: knowing so changes nothing
    assert table["unusable known"] == pytest.approx(table[BASELINE])
    assert table["ortools, unusable known"] == pytest.approx(table["ortools"])
    assert table["12 trucks"] < table[BASELINE] and table["4 visits an hour"] < table[BASELINE]
    assert table["any reach"] <= table[BASELINE] * 1.05 and table["44-bike trucks"] <= table[BASELINE] * 1.05
    # planned at each slot, the trucks' second stops follow the state of the half hour: other plans
    assert table["each slot"] != pytest.approx(table["no nowcast"])
    assert table["ortools each slot"] != pytest.approx(table["ortools"])
    assert table.notna().all() and len(table) == len(settings)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="seed-fleet-2019")
    parser.add_argument("--period", required=True, help="START:END, a training month (never a test month)")
    parser.add_argument("--router", required=True, help="a router folder (bicimad train-router's output)")
    parser.add_argument("--group", choices=sorted(GROUPS), default="headroom", help="which settings (module docstring)")
    parser.add_argument("--settings", help="settings of the group separated by ';' (default: all)")
    parser.add_argument("--every", type=int, default=1, help="every N-th day of the period only")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--daily-usage", default=None, help="EMT's counted trips (bici_disponibilidad_*.csv)")
    parser.add_argument("--draws", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = GROUPS[args.group] if not args.settings else (BASELINE, *(x.strip() for x in args.settings.split(";")))
    unknown = sorted(set(settings) - set(GROUPS["headroom"]) - set(GROUPS["planning"]))
    if unknown:
        parser.error(f"--settings: unknown {unknown}; the groups hold {GROUPS}")
    scenario = load_scenario(args.scenario)
    start, end = parse_period(args.period)
    usage = load_daily_usage(args.daily_usage, args.data_dir) if scenario.network.source == "processed" else None
    days, skipped = prepare_days(scenario, start, end, args.data_dir, daily_usage=usage)
    days = days[::args.every]
    print(f"{len(days)} days; skipped: {'; '.join(skipped) or 'none'}", file=sys.stderr)
    per_day = headroom(scenario, days, read_router(args.router)["params"], settings, args.draws, args.workers)
    table = report(per_day)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print(f"| {row[0]} | {row[1]:.1f} | {row[2]} |")
    pairs = [(a, b) for a, b in SLOT_PAIRS if {a, b} <= set(per_day["planner"])]
    if pairs:
        print("\n| setting | against | change [95 %] |\n|---|---|---|")
        for a, b in pairs:
            row = paired_by_day(per_day[per_day["planner"].isin((a, b))], baselines=(b,), metrics=("objective",)).iloc[0]
            print(f"| {a} | {b} | {100 * row.change:+.1f} % [{100 * row.change_ci_low:+.1f}, {100 * row.change_ci_high:+.1f}] |")
    if args.group == "headroom":
        print()
        print(pd.Series(nowcast_reach(days)).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
