"""The committed 2019 policy plans real days: taken as the scenario's own, and accepted on the
2018 network (99 % of whose stations it trained on), on real Sep 2018 data."""

from __future__ import annotations

import json

import pandas as pd

from bicimad.cli import main
from bicimad.config import models_dir
from bicimad.jobs.compare import scenario_policy
from bicimad.sim.scenario import load_scenario

POLICY = models_dir() / "policies" / "seed-fleet-2019"


def test_the_2019_policy_is_its_scenarios_own_and_its_card_says_how_it_did_on_unseen_months():
    assert scenario_policy(load_scenario("seed-fleet-2019")) == str(POLICY)
    assert scenario_policy(load_scenario("seed-fleet-2018")) is None  # no policy of its own: the default
    card = json.loads((POLICY / "model_card.json").read_text())
    assert card["network"]["source"] == "processed" and len(card["network"]["station_ids"]) == card["network"]["stations"]
    trained = set(card["days"])
    assert all(day.startswith(("2019-07", "2019-08")) for day in trained) and len(trained) >= 50
    assert {"2019-10", "2018-09"} <= set(card["test"])
    assert "Results on months it never saw" in (POLICY / "MODEL_CARD.md").read_text()


def test_the_2019_policy_plans_a_real_sep_2018_day(real_processed, tmp_path, capsys):
    root, _ = real_processed
    out = tmp_path / "cmp"
    assert main(["--data-dir", str(root), "compare", "--scenario", "seed-fleet-2018", "--period", "2018-09-01:2018-09-30",
                 "--planners", "noop,ppo", "--policy", str(POLICY), "--seeds", "1", "--max-days", "1",
                 "--out", str(out), "--no-progress"]) == 0
    per_day = pd.read_csv(out / "per_day.csv")
    ppo, noop = (per_day[per_day.planner == name].iloc[0] for name in ("ppo", "noop"))
    assert ppo.bikes_moved > 0 and ppo.objective < noop.objective


ROUTER = models_dir() / "routers" / "seed-fleet-2019"


def test_the_2019_router_is_its_scenarios_own_and_its_card_keeps_the_split():
    from bicimad.jobs.compare import router_folders
    from bicimad.plan.router import read_router

    labels, folders = router_folders(["noop", "router"], load_scenario("seed-fleet-2019"))
    assert labels == ["noop", "router"] and folders == {"router": ROUTER}
    card = read_router(ROUTER)
    assert card["source"] == "processed" and card["seed"] == 0
    assert all(day.startswith(("2019-07", "2019-08")) for day in card["days"]) and len(card["days"]) >= 50
    assert all(day.startswith("2019-09") for day in card["selection_days"])
    assert "Results on months it never saw" in (ROUTER / "MODEL_CARD.md").read_text()


def test_the_2019_router_plans_a_real_sep_2018_day_better_than_no_op(real_processed, tmp_path):
    root, _ = real_processed
    out = tmp_path / "cmp"
    assert main(["--data-dir", str(root), "compare", "--scenario", "seed-fleet-2018", "--period", "2018-09-01:2018-09-30",
                 "--planners", f"noop,router:{ROUTER}", "--seeds", "1", "--max-days", "1",
                 "--out", str(out), "--no-progress"]) == 0
    per_day = pd.read_csv(out / "per_day.csv").set_index("planner")
    assert per_day.loc["router:seed-fleet-2019", "bikes_moved"] > 0
    assert per_day.loc["router:seed-fleet-2019", "objective"] < per_day.loc["noop", "objective"]
