"""Small seeded networks and demand for the simulator tests (generated here, no real data)."""

from __future__ import annotations

import shutil

import pytest

from bicimad.sim.network import synthetic_network
from bicimad.sim.riders import synthetic_demand
from bicimad.sim.scenario import Scenario


@pytest.fixture(scope="session")
def small_network():
    return synthetic_network(30, seed=7)


@pytest.fixture(scope="session")
def small_demand(small_network):
    return synthetic_demand(small_network, daily_trips=2500, seed=7)


@pytest.fixture(scope="session")
def small_scenario():
    return Scenario(name="small").override({"fleet.trucks": 3, "fleet.radius_km": 3.0, "episode.hours": 6,
                                            "network.stations": 30})


#: The shared files the replay tests need: Sep 2018 snapshots and station list, the
#: 2018-09-27 OD trips and the April 2020 trip month.
REAL_FILES = (
    "stations/javomorales_BiciMadAnalysis/EstacionesVacias.xlsx",
    "meta/javomorales_BiciMadAnalysis/EjEstaciones.json",
    "meta/tfm2022_bicimad/bases_bicimad.csv",
    "trips/derived/javomorales_BiciMadAnalysis/Usos092018_Estaciones.xlsx",
    "trips/paulamartinm_bicimad_prevision_tfm/202004_movements.zip",
)


@pytest.fixture(scope="session")
def real_processed(shared_data, tmp_path_factory):
    """Those real files ingested once into a temporary data dir (the ingestion's own command)."""
    from bicimad.cli import main
    from bicimad.sim.data import Processed

    picked = tmp_path_factory.mktemp("real-raw")
    for rel in REAL_FILES:
        target = picked / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "raw" / rel, target)  # ingest follows no link out of its source folder
    root = tmp_path_factory.mktemp("real-data")
    assert main(["--data-dir", str(root), "ingest", "--from", str(picked)]) == 0
    return root, Processed.load(root, with_hours=True, with_trips=True)
