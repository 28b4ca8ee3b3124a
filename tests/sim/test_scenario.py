import dataclasses

import pytest

from bicimad.sim.scenario import SCENARIO_DIR, Scenario, ScenarioError, load_scenario, write_scenario


def _physics(s: Scenario) -> dict:
    d = s.to_dict()
    d.pop("name"), d.pop("description")
    return d


def test_bundled_scenarios_load_and_default_matches_dataclass():
    names = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
    assert {"seed-fleet-2018", "synthetic-default", "whatif-10-trucks"} <= set(names)
    for name in names:
        s = load_scenario(name)
        assert s.name == name
    assert _physics(load_scenario("synthetic-default")) == _physics(Scenario())
    assert load_scenario("whatif-10-trucks").fleet.trucks == 10
    assert load_scenario("seed-fleet-2018").fleet == Scenario().fleet


def test_round_trip_through_toml(tmp_path):
    s = Scenario(name="x").override({"fleet.bases": [3, 5], "fleet.trucks": 2, "episode.fill_levels": [0.5]})
    path = write_scenario(s, tmp_path / "run" / "scenario.toml")
    assert load_scenario(path) == s
    assert dataclasses.is_dataclass(s) and s.fleet.bases == (3, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.fleet.trucks = 3


@pytest.mark.parametrize("text, needle", [
    ("[fleet]\ntruks = 3\n", "unknown key fleet.truks"),
    ("[fleet]\ntrucks = 'six'\n", "fleet.trucks: expected int, got str"),
    ("[riders]\nspeed_kmh = true\n", "riders.speed_kmh: expected float, got bool"),
    ("colour = 1\n", "unknown key colour"),
    ("[fleet]\ntrucks = 2\nbases = [1]\n", "fleet.bases must list one station id per truck"),
    ("[episode]\nfill_levels = [1.5]\n", "episode.fill_levels"),
    ("[fleet\n", "not valid TOML"),
])
def test_bad_keys_are_named(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert needle in str(err.value)


def test_unknown_scenario_lists_bundled():
    with pytest.raises(ScenarioError, match="synthetic-default"):
        load_scenario("no-such-scenario")


def test_scenarios_and_job_configs_share_one_loader(tmp_path):
    from bicimad.config import ConfigError, load_config

    # The scenario's errors are the loader's (a ScenarioError is a ConfigError), with the file named.
    path = tmp_path / "bad.toml"
    path.write_text("[fleet]\ntrucks = 2\nbases = [1]\n")
    with pytest.raises(ConfigError, match=f"{path}: scenario 'bad': fleet.bases"):
        load_scenario(path)
    good = write_scenario(Scenario(name="x").override({"fleet.trucks": 4}), tmp_path / "x.toml")
    assert load_config(Scenario, good) == load_scenario(good)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(Scenario, tmp_path)


def test_the_objective_table_is_the_reward_table(tmp_path):
    path = tmp_path / "weights.toml"
    path.write_text('name = "weights"\n[objective]\nproblem_hour = 1.0\nlost_trip = 0.5\n')
    assert load_scenario(path).reward.lost_trip == 0.5
    path.write_text('name = "weights"\n[objective]\nlost_trip = 0.5\n[reward]\nlost_trip = 0.3\n')
    with pytest.raises(ScenarioError, match="not both"):
        load_scenario(path)
