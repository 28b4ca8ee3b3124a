"""A fleet policy plans only for the fleet and on the network it was trained for."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from bicimad.cli import main
from bicimad.config import models_dir
from bicimad.errors import CommandError
from bicimad.jobs.compare import parse_period, prepare_days
from bicimad.jobs.nightly import NightlyConfig, validate_config
from bicimad.jobs.policy_fit import (
    check_policy_fleet,
    check_policy_network,
    fleet_record,
    network_fingerprint,
    read_card,
)
from bicimad.jobs.simulate import simulate_day
from bicimad.jobs.whatif import SweepGrid, WhatIfConfig, whatif
from bicimad.sim.network import Network, synthetic_network
from bicimad.sim.scenario import FleetSpec, load_scenario

DEFAULT = models_dir() / "policies" / "default"

#: The default policy's scenario with one change (``{change}``), as a user would write it.
VARIANT = """
name = "{name}"
[network]
source = "synthetic"
stations = {stations}
seed = {seed}
[fleet]
trucks = {trucks}
"""


def variant(tmp_path, name, trucks=6, stations=210, seed=0) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(VARIANT.format(name=name, trucks=trucks, stations=stations, seed=seed))
    return str(path)


def stations_of(network, order) -> Network:
    """The stations of ``network`` at positions ``order``, in that order."""
    return Network.build(*(getattr(network, f)[order] for f in ("station_ids", "lat", "lon", "capacity", "bikes")))


def test_the_default_policy_card_records_the_fleet_and_network_of_its_own_scenario_and_days():
    card = read_card(DEFAULT)
    scenario = load_scenario(DEFAULT / "scenario.toml")
    assert card["fleet"] == fleet_record(scenario.fleet) == {"trucks": 6, "truck_capacity": 22, "visits_per_hour": 2,
                                                             "radius_km": 3.5}
    days, _ = prepare_days(scenario, *parse_period(card["period"]))
    assert [d.date for d in days] == card["days"]
    assert card["network"] == network_fingerprint(days[0].network, "synthetic")
    assert card["network"]["stations"] == 210 and len(card["network"]["station_ids_sha256"]) == 64


def test_the_fingerprint_is_the_sorted_station_ids_and_nothing_else():
    network = synthetic_network(40, 3)
    shuffled = stations_of(network, list(range(39, -1, -1)))
    assert network_fingerprint(shuffled, "synthetic") == network_fingerprint(network, "synthetic")
    assert network_fingerprint(network, "processed")["source"] == "processed"
    assert network_fingerprint(stations_of(network, list(range(39))), "synthetic")["stations"] == 39
    # ids, not positions: a synthetic city of under 60 stations numbers them 1..n whatever its seed
    assert network_fingerprint(synthetic_network(40, 4), "synthetic") == network_fingerprint(network, "synthetic")
    assert network_fingerprint(synthetic_network(210, 1), "synthetic") != network_fingerprint(synthetic_network(210, 0),
                                                                                               "synthetic")


def test_another_fleet_is_refused_naming_the_field_and_both_values(tmp_path):
    card = read_card(DEFAULT)
    with pytest.raises(CommandError) as refused:
        check_policy_fleet(DEFAULT, card, FleetSpec(trucks=5), "scenario 'five'", "five.toml")
    message = str(refused.value)
    assert refused.value.code == 2
    assert f"policy {DEFAULT}" in message and "fleet.trucks = 6 (the scenario 'five' has 5)" in message
    assert "bicimad train-agent --scenario five.toml" in message
    with pytest.raises(CommandError, match=r"fleet.radius_km = 3.5 \(the x has 2.0\)"):
        check_policy_fleet(DEFAULT, card, FleetSpec(radius_km=2.0), "x", "x")
    check_policy_fleet(DEFAULT, card, FleetSpec(), "x", "x")        # the same fleet passes


def test_another_network_is_refused_naming_the_field_and_both_values():
    card = read_card(DEFAULT)
    trained = synthetic_network(210, 0)
    check_policy_network(DEFAULT, card, "synthetic", [("day 2018-10-01", trained)], "s")
    with pytest.raises(CommandError) as refused:
        check_policy_network(DEFAULT, card, "synthetic", [("day 2018-10-01", trained),
                                                          ("day 2018-10-02", stations_of(trained, list(range(209))))], "s")
    message = str(refused.value)
    assert "network.stations is 210, day 2018-10-02's is 209" in message and "bicimad train-agent" in message
    with pytest.raises(CommandError, match="network.station_ids_sha256 is '055fe41"):
        check_policy_network(DEFAULT, card, "synthetic", [("day d", synthetic_network(210, 1))], "s")
    with pytest.raises(CommandError, match="network.source is 'synthetic', day d's is 'processed'"):
        check_policy_network(DEFAULT, card, "processed", [("day d", trained)], "s")


def old_policy(tmp_path):
    """The default policy with a card written before the fleet and network were recorded."""
    folder = tmp_path / "old-policy"
    shutil.copytree(DEFAULT, folder)
    card = json.loads((folder / "model_card.json").read_text())
    del card["fleet"], card["network"]
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def compare(tmp_path, scenario, *extra):
    return main(["compare", "--scenario", scenario, "--period", "2018-10-01:2018-10-01", "--planners", "ppo",
                 "--seeds", "1", "--out", str(tmp_path / "cmp"), "--no-progress", *extra])


def test_compare_runs_the_default_policy_on_its_city_and_refuses_it_elsewhere(tmp_path, capsys):
    assert compare(tmp_path, "synthetic-default") == 0
    assert (tmp_path / "cmp" / "occupancy.csv").exists()
    # a scenario with 5 trucks: the policy was trained with 6
    assert compare(tmp_path, variant(tmp_path, "five", trucks=5)) == 2
    err = capsys.readouterr().err
    assert f"policy {DEFAULT} was trained with fleet.trucks = 6 (the scenario 'five' has 5)" in err
    assert "--scenario " in err and "five.toml" in err and "pass it with --policy" in err
    # another synthetic city with the same fleet: its stations are not the policy's
    assert compare(tmp_path, variant(tmp_path, "small", stations=40, seed=3)) == 2
    err = capsys.readouterr().err
    assert "network.stations is 210, day 2018-10-01's is 40" in err and "bicimad train-agent --scenario" in err
    # a card from before the check is refused, not passed
    assert compare(tmp_path, "synthetic-default", "--policy", str(old_policy(tmp_path))) == 2
    err = capsys.readouterr().err
    assert "predates the fleet and network check" in err and "fleet.trucks" in err
    assert "re-train it with `bicimad train-agent --scenario synthetic-default --period 2018-09-24:2018-09-28`" in err
    # and so is a policy with no card at all
    (tmp_path / "old-policy" / "model_card.json").unlink()
    assert compare(tmp_path, "synthetic-default", "--policy", str(tmp_path / "old-policy")) == 2
    assert "has no model_card.json" in capsys.readouterr().err


def test_nightly_sim_run_and_whatif_refuse_the_default_policy_for_another_fleet(tmp_path):
    five = variant(tmp_path, "five", trucks=5)
    with pytest.raises(CommandError, match=r"planners: ppo: policy .* fleet.trucks = 6 \(the scenario 'five' has 5\)"):
        validate_config(NightlyConfig(scenario=five, planners=("noop", "ppo"), dispatch="noop"))
    validate_config(NightlyConfig(planners=("noop", "ppo"), dispatch="noop"))     # its own fleet passes
    with pytest.raises(CommandError, match="fleet.trucks = 6"):
        simulate_day(five, planner="ppo", out=tmp_path / "sim")
    with pytest.raises(CommandError, match="network.stations is 210"):
        simulate_day(variant(tmp_path, "small", stations=40, seed=3), planner="ppo", out=tmp_path / "sim")
    sweep = WhatIfConfig(name="fleet", planners=("noop", "ppo"), grid=SweepGrid(trucks=(5, 6)), days=1, seeds=1)
    with pytest.raises(CommandError, match=r"fleet.trucks = 6 \(the grid point trucks=5, .* of 'fleet' has 5\)"):
        whatif(sweep, out=tmp_path / "whatif")
    assert not (tmp_path / "whatif").exists()


@pytest.fixture
def own_policy(tmp_path, monkeypatch):
    """A models folder (``$BICIMAD_MODELS_DIR``) with the default policy and scenario ``mine``'s
    own, a copy whose card says 5 trucks: its folder."""
    models = tmp_path / "models"
    shutil.copytree(DEFAULT, models / "policies" / "default")
    own = models / "policies" / "mine"
    shutil.copytree(DEFAULT, own)
    card = json.loads((own / "model_card.json").read_text())
    card["fleet"]["trucks"] = 5
    (own / "model_card.json").write_text(json.dumps(card))
    monkeypatch.setenv("BICIMAD_MODELS_DIR", str(models))
    return own


def test_compare_plans_ppo_with_the_scenarios_own_policy_when_none_is_given(tmp_path, own_policy):
    """``models/policies/<scenario name>/`` is the scenario's policy: ``ppo`` takes it without
    ``--policy``, and its checks apply to it (here: its card says 5 trucks, the scenario 6)."""
    own = own_policy
    assert compare(tmp_path, variant(tmp_path, "other")) == 0  # no policy of its own: the default
    with pytest.raises(CommandError, match=f"policy {own} was trained with fleet.trucks = 5"):
        from bicimad.jobs.compare import compare as run_compare

        run_compare(variant(tmp_path, "mine"), "2018-10-01:2018-10-01", out=tmp_path / "c2", planners=["ppo"],
                    seeds=1, progress=False)


def test_a_real_networks_policy_plans_where_it_knows_most_stations_and_is_refused_elsewhere():
    base = synthetic_network(100, seed=4)
    card = {"fleet": fleet_record(FleetSpec()), "network": network_fingerprint(base, "processed", with_ids=True)}
    assert card["network"]["station_ids"] == sorted(base.station_ids.tolist())
    order = np.arange(100)
    grown = Network.build(np.concatenate([base.station_ids[order[:85]], base.station_ids.max() + 1 + np.arange(15)]),
                          *(getattr(base, f) for f in ("lat", "lon", "capacity", "bikes")))
    check_policy_network(DEFAULT, card, "processed", [("day A", base), ("day B", grown)], "s")  # 85 % known
    shrunk = Network.build(np.concatenate([base.station_ids[:70], base.station_ids.max() + 1 + np.arange(30)]),
                           *(getattr(base, f) for f in ("lat", "lon", "capacity", "bikes")))
    with pytest.raises(CommandError, match="of day C's 100 stations only 70% are among the 100 it trained on"):
        check_policy_network(DEFAULT, card, "processed", [("day A", base), ("day C", shrunk)], "s")
    with pytest.raises(CommandError, match="trained on processed stations, day A is on synthetic"):
        check_policy_network(DEFAULT, card, "synthetic", [("day A", base)], "s")


def test_on_network_moves_a_days_demand_onto_the_training_stations():
    from bicimad.jobs.agent import on_network
    from bicimad.sim.riders import Demand

    src = synthetic_network(12, seed=1)
    keep = np.r_[0:8]
    dst = Network.build(np.concatenate([src.station_ids[keep], [999, 998]]),
                        *(np.concatenate([getattr(src, f)[keep], getattr(src, f)[:2]]) for f in ("lat", "lon", "capacity", "bikes")))
    rng = np.random.default_rng(0)
    demand = Demand(pd.date_range("2019-07-01", periods=24, freq="h"), rng.random((24, 12)), rng.random((24, 12)))
    moved = on_network(demand, src, dst)
    np.testing.assert_array_equal(moved.pickup_rate[:, :8], demand.pickup_rate[:, keep])
    np.testing.assert_array_equal(moved.return_rate[:, 8:], 0.0)  # stations the day did not have
    assert on_network(demand, src, src) is demand


def test_nightly_sim_run_and_whatif_plan_ppo_with_the_scenarios_own_policy(tmp_path, own_policy, monkeypatch, caplog):
    """As ``compare`` does: ``models/policies/<scenario name>/`` is what ``ppo`` plans with on that
    scenario, said in the log, and its checks apply to it (here its card says 5 trucks, the
    scenario 6); a scenario without one keeps the default."""
    from bicimad.jobs.policy_fit import policy_folder
    from bicimad.plan import planner_for
    from bicimad.plan.policy import PolicyPlanner

    own, models = own_policy, own_policy.parent.parent
    mine, other = load_scenario(variant(tmp_path, "mine")), load_scenario(variant(tmp_path, "other"))
    assert policy_folder(None, mine) == own and policy_folder(None, other) == models / "policies" / "default"
    loaded = []
    with monkeypatch.context() as patch:   # the folder planner_for loads: the scenario's own, else the default's None
        patch.setattr(PolicyPlanner, "load", classmethod(lambda cls, policy_dir=None, name="ppo": loaded.append(policy_dir)))
        planner_for("ppo", mine), planner_for("ppo", other), planner_for("ppo", mine, policy_dir=DEFAULT)
    assert loaded == [own, None, DEFAULT]
    caplog.set_level("WARNING")
    refused = rf"policy {own} was trained with fleet.trucks = 5 \(the scenario 'mine' has 6\)"
    with pytest.raises(CommandError, match=refused):
        validate_config(NightlyConfig(scenario=variant(tmp_path, "mine"), planners=("noop", "ppo"), dispatch="noop"))
    assert f"ppo plans with {own}, the policy of scenario 'mine'" in caplog.text
    with pytest.raises(CommandError, match=refused):
        simulate_day(variant(tmp_path, "mine"), planner="ppo", out=tmp_path / "sim")
    sweep = WhatIfConfig(name="mine", scenario=variant(tmp_path, "mine"), planners=("noop", "ppo"), days=1, seeds=1)
    with pytest.raises(CommandError, match=rf"policy {own} was trained with fleet.trucks = 5 \(the grid point .* of 'mine'"):
        whatif(sweep, out=tmp_path / "whatif")
    caplog.clear()
    validate_config(NightlyConfig(scenario=variant(tmp_path, "other"), planners=("noop", "ppo"), dispatch="noop"))
    assert "ppo plans with" not in caplog.text      # the default: nothing to say
