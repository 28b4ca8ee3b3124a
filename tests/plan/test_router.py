"""The router: greedy stops on a learnt cost-to-go, its search, its training job and its checks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.errors import CommandError
from bicimad.jobs.router import generation_days, train_router
from bicimad.plan import make_planner
from bicimad.plan.greedy_objective import ObjectiveGreedyPlanner
from bicimad.plan.router import (
    GREEDY_START,
    SPACE,
    SearchConfig,
    check_params,
    cross_entropy,
    params_from_unit,
    router_planner,
    unit_from_params,
)
from bicimad.sim.interface import check_plan

from .conftest import line_view, random_view


def test_the_knobs_map_to_the_unit_cube_and_back():
    assert params_from_unit(unit_from_params(GREEDY_START)) == pytest.approx(GREEDY_START)
    low = params_from_unit(np.zeros(len(SPACE)))
    high = params_from_unit(np.ones(len(SPACE)))
    assert all(low[k] == pytest.approx(SPACE[k].low) and high[k] == pytest.approx(SPACE[k].high) for k in SPACE)
    assert float(params_from_unit(np.full(len(SPACE), 0.51))["horizon_hours"]).is_integer()


@pytest.mark.parametrize("change, field", [({"discount": 2.0}, "discount"), ({"spread": "x"}, "spread"),
                                           ({"bogus": 1}, "unknown")])
def test_bad_parameters_are_refused_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        check_params({**GREEDY_START, **change}, "router.json")


def test_the_plain_greedys_knobs_give_the_plain_greedys_plan():
    rng = np.random.default_rng(5)
    for _ in range(5):
        view = random_view(rng)
        assert router_planner(GREEDY_START).plan(view) == ObjectiveGreedyPlanner().plan(view)


def test_the_two_visit_look_ahead_takes_a_lesser_first_stop_for_a_better_second():
    # Stations 1 km apart, the truck empty at station 1. Loading 6 at station 0 is worth 6,
    # loading 5 at station 2 is worth 5, and station 3 (empty, beside station 2, 3 km from
    # station 0) is worth 8 with 4 bikes. The plain greedy loads at 0, then drives 3 km to unload
    # (5 + 5); the look-ahead loads at 2 and unloads next door (4 + 7).
    view = line_view([20, 10, 20, 0], [20, 20, 20, 20], truck_station=(1,))
    levels = np.arange(21)
    cost = np.zeros((4, 21))
    cost[0], cost[2], cost[3] = np.abs(levels - 14), np.abs(levels - 15), 2 * np.abs(levels - 4)
    bikes, free = view.bikes.astype(np.int64), np.zeros(4, dtype=bool)
    greedy = ObjectiveGreedyPlanner(km_cost=1.0)
    ahead = ObjectiveGreedyPlanner(km_cost=1.0, pair_candidates=4)
    assert greedy._next_stop(view, cost, bikes, free, 0, 1, 0, left=1) == (0, 6)
    assert ahead._next_stop(view, cost, bikes, free, 0, 1, 0, left=1) == (2, 5)
    assert (bikes == view.bikes).all() and not free.any()  # the look-ahead leaves no trace


def test_a_value_on_the_trucks_load_makes_it_load_rather_than_unload():
    # The truck carries 5 bikes, one visit left: unloading 5 at station 1 is worth 1.0, loading 5
    # at station 2 is worth 0.8. A bike kept on the truck worth 0.05 (5 x 0.05 on each side) tips it.
    view = line_view([10, 10, 10], [20, 20, 20], truck_load=(5,))
    cost = np.zeros((3, 21))
    cost[1] = np.maximum(0, 15 - np.arange(21)) * 0.2   # 5 bikes short
    cost[2] = np.maximum(0, np.arange(21) - 5) * 0.16   # 5 bikes too many
    bikes, free = view.bikes.astype(np.int64), np.zeros(3, dtype=bool)
    assert ObjectiveGreedyPlanner(km_cost=0)._next_stop(view, cost, bikes, free, 0, 0, 5, left=0) == (1, -5)
    station, move = ObjectiveGreedyPlanner(km_cost=0, load_value=0.05)._next_stop(view, cost, bikes, free, 0, 0, 5, left=0)
    assert station == 2 and move >= 5


def test_learnt_knobs_keep_every_plan_within_the_fleets_limits():
    rng = np.random.default_rng(11)
    for _ in range(20):
        params = params_from_unit(rng.uniform(size=len(SPACE)))
        view = random_view(rng)
        check_plan(view, router_planner(params).plan(view))


def test_the_cross_entropy_search_finds_the_minimum_of_a_known_function_and_repeats_itself():
    target = np.linspace(0.2, 0.8, len(SPACE))

    def evaluate(candidates, generation):
        return [float(((unit_from_params(c) - target) ** 2).sum()) for c in candidates]

    config = SearchConfig(generations=25, population=16, elite=4)
    history = cross_entropy(evaluate, config, seed=3)
    start = evaluate([GREEDY_START], 0)[0]
    assert history[-2]["elite_cost"] < 0.05 * start
    again = cross_entropy(evaluate, config, seed=3)
    assert again[-1]["mean"] == history[-1]["mean"]
    assert cross_entropy(evaluate, config, seed=4)[-1]["mean"] != history[-1]["mean"]


def test_generation_days_are_a_seeded_sample_of_the_training_days():
    assert generation_days(5, 9, seed=0, generation=0) == list(range(5))
    picked = generation_days(50, 6, seed=0, generation=2)
    assert len(set(picked)) == 6 and picked == generation_days(50, 6, seed=0, generation=2)
    assert picked != generation_days(50, 6, seed=0, generation=3)


SMALL = dict(period="2018-09-10:2018-09-13", select="2018-09-17:2018-09-18",
             search=SearchConfig(generations=2, population=3, elite=1), days_per_generation=2, select_days=1,
             progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("router") / "r"
    return train_router("synthetic-default", out=out, workers=1, **SMALL), out


def test_train_router_writes_a_router_its_card_and_its_search(trained):
    result, out = trained
    card = json.loads((out / "router.json").read_text())
    assert card["params"] == result.params and set(card["params"]) == set(SPACE)
    assert card["days"] == [f"2018-09-{d}" for d in range(10, 14)] and card["selection_days"][0].startswith("2018-09-1")
    assert card["fleet"]["trucks"] == 6 and card["source"] == "synthetic"
    assert "Chosen on 2018-09-17:2018-09-18" in (out / "MODEL_CARD.md").read_text()
    search = pd.read_csv(out / "search.csv")
    assert len(search) == 2 * 3 and (search["cost"] > 0).all()
    assert (out / "search.png").stat().st_size > 0
    assert make_planner("router", router_dir=out).horizon_hours == int(card["params"]["horizon_hours"])


def test_the_same_seed_gives_the_same_router_on_one_or_two_workers_and_a_rerun_resumes(trained, tmp_path):
    result, out = trained
    two = train_router("synthetic-default", out=tmp_path / "two", workers=2, **SMALL)
    assert two.params == result.params
    # a stopped run resumes from its finished generations: with both recorded, nothing is simulated again
    saved = json.loads((out / "search.json").read_text())
    saved["costs"] = {k: [c + 1000.0 for c in v] for k, v in saved["costs"].items()}  # marks the recorded costs
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "search.json").write_text(json.dumps(saved))
    train_router("synthetic-default", out=tmp_path / "resumed", workers=1, **SMALL)
    assert pd.read_csv(tmp_path / "resumed" / "search.csv")["cost"].min() > 1000.0
    with pytest.raises(CommandError, match="exists"):
        train_router("synthetic-default", out=out, workers=1, **SMALL)


def test_train_router_refuses_a_selection_period_that_overlaps_training(tmp_path):
    with pytest.raises(CommandError, match="overlaps"):
        train_router("synthetic-default", "2018-09-10:2018-09-13", select="2018-09-13:2018-09-15", out=tmp_path / "x")


def test_compare_runs_routers_on_days_they_never_saw_and_reports_their_mean(trained, tmp_path, capsys):
    _, out = trained
    other = tmp_path / "r2"
    other.mkdir()
    card = json.loads((out / "router.json").read_text())
    (other / "router.json").write_text(json.dumps({**card, "params": dict(GREEDY_START)}))
    cmp = tmp_path / "cmp"
    assert main(["compare", "--period", "2018-09-20:2018-09-21", "--planners",
                 f"noop,greedy-objective,router:{out},router:{other},greedy-objective-perfect", "--seeds", "1",
                 "--out", str(cmp), "--no-progress"]) == 0
    per_day = pd.read_csv(cmp / "per_day.csv")
    assert set(per_day.planner) == {"noop", "greedy-objective", "router:r", "router:r2", "greedy-objective-perfect"}
    recovered = pd.read_csv(cmp / "occupancy.csv").set_index("planner")["bound_gain_recovered"]
    assert recovered["noop"] == 0 and recovered["greedy-objective-perfect"] == pytest.approx(1.0)
    assert 0 < recovered["router:r"] < 1.5
    same = per_day.set_index(["planner", "day"])["objective"]
    assert same["router:r2"].tolist() == same["greedy-objective"].tolist()  # the plain knobs: the same plan
    paired = pd.read_csv(cmp / "paired.csv")
    mean = paired[(paired.planner == "router:mean of 2") & (paired.baseline == "greedy-objective")
                  & (paired.metric == "objective")]
    assert len(mean) == 1
    assert json.loads((cmp / "run.json").read_text())["routers"]["router:r"] == str(out)


def test_compare_refuses_a_router_on_its_training_or_selection_days(trained, tmp_path, capsys):
    _, out = trained
    for period in ("2018-09-12:2018-09-14", "2018-09-17:2018-09-17"):
        assert main(["compare", "--period", period, "--planners", f"noop,router:{out}", "--seeds", "1",
                     "--out", str(tmp_path / "cmp"), "--no-progress"]) == 2
        assert "trained or chosen on" in capsys.readouterr().err


def test_compare_refuses_router_when_the_scenario_has_none_and_a_folder_without_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BICIMAD_MODELS_DIR", str(tmp_path / "models"))
    assert main(["compare", "--period", "2018-09-20:2018-09-20", "--planners", "noop,router", "--out",
                 str(tmp_path / "c"), "--no-progress"]) == 2
    assert "has no router" in capsys.readouterr().err
    assert main(["compare", "--period", "2018-09-20:2018-09-20", "--planners", f"noop,router:{tmp_path}", "--out",
                 str(tmp_path / "c"), "--no-progress"]) == 2
    assert "router.json" in capsys.readouterr().err


def test_router_for_a_scenario_is_its_own_and_nightly_checks_it_before_any_work(trained, tmp_path, monkeypatch):
    from bicimad.jobs.nightly import NightlyConfig, validate_config
    from bicimad.jobs.nightly.config import SourceConfig
    from bicimad.plan import planner_for
    from bicimad.sim.scenario import load_scenario

    _, out = trained
    monkeypatch.setenv("BICIMAD_MODELS_DIR", str(tmp_path / "models"))
    scenario = load_scenario("synthetic-default")
    config = NightlyConfig(planners=("noop", "router"), dispatch="router")
    with pytest.raises(FileNotFoundError, match="train-router"):
        planner_for("router", scenario)
    with pytest.raises(ValueError, match="router_dir"):   # not a TypeError: no folder named, none guessed
        make_planner("router")
    with pytest.raises(CommandError, match="planners: router"):
        validate_config(config)
    own = tmp_path / "models" / "routers" / "synthetic-default"
    own.mkdir(parents=True)
    (own / "router.json").write_text((out / "router.json").read_text())
    assert planner_for("router", scenario).name == "router"
    validate_config(config)
    with pytest.raises(CommandError, match="synthetic city"):  # a router of the synthetic city for real data
        validate_config(NightlyConfig(planners=("noop", "router"), dispatch="router", source=SourceConfig(kind="local")))


def test_a_router_folder_plans_in_nightly_whatif_and_sim_run_under_its_folders_name(trained, tmp_path, capsys):
    from bicimad.jobs.nightly import NightlyConfig, validate_config
    from bicimad.plan import is_planner_name, planner_for
    from bicimad.sim.scenario import load_scenario

    _, out = trained
    params = json.loads((out / "router.json").read_text())["params"]
    planner = planner_for(f"router:{out}", load_scenario("synthetic-default"))
    assert planner.name == "router:r" and planner.horizon_hours == int(params["horizon_hours"])
    assert is_planner_name(f"router:{out}") and not is_planner_name("router:") and not is_planner_name("routers")
    validate_config(NightlyConfig(planners=("noop", f"router:{out}"), dispatch=f"router:{out}"))
    with pytest.raises(CommandError, match=f"planners: router:{tmp_path}/missing: .*router.json"):
        validate_config(NightlyConfig(planners=("noop", f"router:{tmp_path}/missing"), dispatch="noop"))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'name = "r"\nscenario = "synthetic-default"\nplanners = ["noop", "router:{out}"]\n'
                     'days = 1\nseeds = 1\n[grid]\ntrucks = [2]\n', encoding="utf-8")
    assert main(["whatif", "--config", str(sweep), "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    results = pd.read_csv(tmp_path / "w" / "results.csv").set_index("planner")
    assert results.loc[f"router:{out}", "bikes_moved"] > 0 and results.loc["noop", "bikes_moved"] == 0
    sweep.write_text(sweep.read_text().replace(str(out), str(tmp_path / "missing")), encoding="utf-8")
    assert main(["whatif", "--config", str(sweep), "--out", str(tmp_path / "w2"), "--no-progress"]) == 2
    assert "router.json" in capsys.readouterr().err
    assert main(["sim", "run", "--planner", f"router:{out}", "--out", str(tmp_path / "day")]) == 0
    assert pd.read_csv(tmp_path / "day" / "summary.csv")["planner"].iloc[0] == "router:r"
    # a path in a planner's name makes no folders: one task file per task, one occupancy file per planner
    assert len(list((tmp_path / "w" / "tasks").glob("*.json"))) == len(results)


def test_a_nightly_run_dispatches_a_router_folder_and_reports_it_under_its_name(trained, tmp_path):
    from bicimad.io import file_stem

    _, out = trained
    name = f"router:{out}"
    config = tmp_path / "nightly.toml"
    config.write_text(f'scenario = "synthetic-default"\nplanners = ["noop", "{name}"]\ndispatch = "{name}"\n'
                      'seeds = 1\n[source]\nkind = "synthetic"\n', encoding="utf-8")
    assert main(["--data-dir", str(tmp_path / "data"), "nightly", "--date", "2018-09-24", "--config", str(config),
                 "--no-progress"]) == 0
    run = next((tmp_path / "data" / "runs" / "nightly").iterdir())
    assert sorted(p.name for p in (run / "occupancy").iterdir()) == sorted(["noop.parquet", f"{file_stem(name)}.parquet"])
    assert set(pd.read_csv(run / "plans.csv")["planner"]) == {name} and len(pd.read_csv(run / "plan.csv")) > 0
    assert name in (run / "report.html").read_text(encoding="utf-8")


def test_the_nowcast_corrects_a_station_draining_faster_than_forecast():
    # Forecast: 2 pickups and 2 returns an hour everywhere. In the first hour station 0 loses 6
    # bikes and no truck moves: with nowcast_drift 0.5 its pickups rise by 0.5 x 6 the next hour.
    first = line_view([10, 10], [20, 20], hours=3)
    planner = ObjectiveGreedyPlanner(nowcast_drift=0.5, min_gain=1e9)   # plans nothing: only the nowcast acts
    assert planner.plan(first) == [[]]
    second = dataclasses.replace(first, hour_index=1, bikes=np.array([4, 10]))
    pickup, returns = planner._nowcast(second, second.pickup_rate, second.return_rate)
    np.testing.assert_allclose(pickup[:, 0], 2.0 + 3.0)
    np.testing.assert_allclose(returns[:, 0], 2.0)
    np.testing.assert_allclose(pickup[:, 1], 2.0)
    # a view that does not follow the last one (another day) starts the day afresh: no correction
    again = dataclasses.replace(first, hour_index=0, bikes=np.array([4, 10]))
    pickup, _ = planner._nowcast(again, again.pickup_rate, again.return_rate)
    np.testing.assert_allclose(pickup, 2.0)


def test_the_nowcast_scales_a_busier_day_than_forecast():
    first = line_view([10, 10], [20, 20], hours=3, pickup_rate=np.full((3, 2), 1.0), return_rate=np.full((3, 2), 1.0))
    planner = ObjectiveGreedyPlanner(nowcast_volume=1.0, min_gain=1e9)
    planner.plan(first)
    # expected squared net flow 2 a station; realised (+4, -4): 16 each, rho = 8 (capped at 4)
    second = dataclasses.replace(first, hour_index=1, bikes=np.array([14, 6]))
    pickup, returns = planner._nowcast(second, second.pickup_rate, second.return_rate)
    np.testing.assert_allclose(pickup, 4.0)
    np.testing.assert_allclose(returns, 4.0)


def test_the_search_on_a_local_ray_cluster_gives_the_same_router(trained, tmp_path):
    pytest.importorskip("ray")
    result, _ = trained
    on_ray = train_router("synthetic-default", out=tmp_path / "ray", workers=2, ray_address="local", **SMALL)
    assert on_ray.params == result.params
