"""What a fleet policy was trained for, and the check that refuses it on another fleet or network.

``bicimad train-agent`` records in the policy's ``model_card.json`` the fleet it trained with
(``fleet``: trucks, truck capacity, visits per hour, radius in km) and the network of its
training days (``network``: its source, number of stations and the SHA-256 of its sorted station
ids, :func:`network_fingerprint`). Every job that plans with a policy on a scenario (``compare``,
``nightly``, ``whatif``, ``sim run``, ``replan``) calls :func:`check_policy_fleet` before any work
and :func:`check_policy_network` once the networks it plans on are known: a policy whose fleet
or network differs, or whose card does not say (a card written before these fields existed), is
refused with exit code 2, naming the folder, the field and both values.

A policy trained on real data also lists its training stations (``network.station_ids``; the
network of the last training day, onto which every training day's demand is moved): EMT opens,
closes and takes stations out of service from day to day, so such a policy plans on a day of the
same source at least :data:`MIN_KNOWN_STATIONS` of whose stations it trained on, and is refused
below that. A card without the list (synthetic cities) must match the fingerprint exactly.

The fingerprint is the station ids, not their positions: EMT's ids name real stations, but a
synthetic city of under 60 stations numbers its stations 1..n whatever its seed, so two such
cities of one size are not told apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bicimad.config import models_dir
from bicimad.errors import EXIT_USAGE, CommandError

CARD_FILE = "model_card.json"
#: How a job that plans ``ppo`` with the scenario's own policy or the default (nightly, whatif, sim run, replan) is given another.
DEFAULT_POLICY_HINT = (", then put it in models/policies/<scenario name> (the policy nightly, whatif, sim run and replan "
                       "plan with on that scenario) or models/policies/default (on a scenario without its own)")
#: The fleet fields a policy's card records, as named in the scenario's ``[fleet]``.
FLEET_FIELDS = ("trucks", "truck_capacity", "visits_per_hour", "radius_km")


def policy_folder(policy: str | os.PathLike | None, scenario=None) -> Path:
    """The policy folder a planner loads: ``policy``, else ``scenario``'s own where it has one
    (:func:`bicimad.plan.policy.scenario_policy_dir`, as ``planner_for`` loads it), else the
    committed default."""
    if policy:
        return Path(policy)
    from bicimad.plan.policy import scenario_policy_dir

    own = scenario_policy_dir(scenario) if scenario is not None else None
    return own or models_dir() / "policies" / "default"


def announce_policy(scenario) -> Path | None:
    """``scenario``'s own policy folder, which ``ppo`` plans with when no policy is given, said
    in the log at warning level (shown without -v): never chosen silently; None where it has
    none (the default, :func:`policy_folder`, plans)."""
    from bicimad.plan.policy import scenario_policy_dir

    own = scenario_policy_dir(scenario)
    if own is not None:
        logging.getLogger(__name__).warning("ppo plans with %s, the policy of scenario %r (no policy given)", own,
                                            scenario.name)
    return own


def fleet_record(fleet) -> dict:
    """The fleet fields a card records, from a scenario's :class:`~bicimad.sim.scenario.FleetSpec`."""
    return {"trucks": int(fleet.trucks), "truck_capacity": int(fleet.truck_capacity),
            "visits_per_hour": int(fleet.visits_per_hour), "radius_km": float(fleet.radius_km)}


def network_fingerprint(network, source: str, with_ids: bool = False) -> dict:
    """A network's identity: its ``source`` (``synthetic`` or ``processed``), number of stations
    and the SHA-256 of its station ids, sorted and written as comma-separated decimals; with
    ``with_ids``, the sorted ids themselves too (``station_ids``: what a real network's policy
    is checked against, see :func:`check_policy_network`)."""
    ids = np.sort(np.asarray(network.station_ids, dtype=np.int64))
    digest = hashlib.sha256(",".join(str(i) for i in ids.tolist()).encode("ascii")).hexdigest()
    record = {"source": source, "stations": int(len(ids)), "station_ids_sha256": digest}
    if with_ids:
        record["station_ids"] = ids.tolist()
    return record


#: A real network changes from day to day (stations opened, closed, out of service) while the
#: policy's weights are not tied to stations (it scores each truck's candidates from their
#: features): a policy with its training stations on its card plans on a day at least this share
#: of whose stations it trained on.
MIN_KNOWN_STATIONS = 0.8


def read_card(folder: Path) -> dict:
    """The policy's model card; refused (exit 2) when it is missing or unreadable."""
    path = folder / CARD_FILE
    if not path.is_file():
        raise CommandError(f"policy {folder} has no {CARD_FILE}: the fleet, network and days it was trained on "
                           "cannot be checked; train a policy with `bicimad train-agent --scenario ...`", EXIT_USAGE)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CommandError(f"policy {folder}: {path.name} is not readable JSON ({exc})", EXIT_USAGE) from None
    if not isinstance(card, dict):
        raise CommandError(f"policy {folder}: {path.name} is not a JSON object", EXIT_USAGE)
    return card


#: The network fields a policy's card records (:func:`network_fingerprint`).
NETWORK_FIELDS = ("source", "stations", "station_ids_sha256")


def recorded_fit(folder: Path, card: dict) -> tuple[dict, dict]:
    """The card's ``fleet`` and ``network`` tables; refused (exit 2) when the card predates them."""
    missing = [f"{key}.{f}" for key, fields in (("fleet", FLEET_FIELDS), ("network", NETWORK_FIELDS))
               for f in fields if not isinstance(card.get(key), dict) or f not in card[key]]
    if missing:
        raise CommandError(
            f"policy {folder}: its {CARD_FILE} predates the fleet and network check (no {', '.join(missing)}): "
            "the fleet and network it was trained for cannot be checked; re-train it with `bicimad train-agent "
            f"--scenario {card.get('scenario', 'SCENARIO')} --period {card.get('period', 'START:END')}`", EXIT_USAGE)
    return card["fleet"], card["network"]


def _retrain(scenario_arg: str, hint: str) -> str:
    return f"train one for it with `bicimad train-agent --scenario {scenario_arg} --period START:END`{hint}"


def check_policy_fleet(folder: Path, card: dict, fleet, where: str, scenario_arg: str, hint: str = "") -> None:
    """Refuse (exit 2) a policy whose card's fleet differs from ``fleet`` (``where`` names the
    scenario, e.g. ``scenario 'seed-fleet-2019'``)."""
    trained, _ = recorded_fit(folder, card)
    wanted = fleet_record(fleet)
    differ = [f"fleet.{f} = {trained[f]!r} (the {where} has {wanted[f]!r})" for f in FLEET_FIELDS
              if not math.isclose(float(trained[f]), float(wanted[f]), rel_tol=1e-9, abs_tol=1e-12)]
    if differ:
        raise CommandError(f"policy {folder} was trained with {'; '.join(differ)}: a policy plans for the fleet "
                           f"it was trained with; {_retrain(scenario_arg, hint)}", EXIT_USAGE)


def check_policy_network(folder: Path, card: dict, source: str, networks: Iterable[tuple[str, object]],
                         scenario_arg: str, hint: str = "") -> None:
    """Refuse (exit 2) a policy whose card's network differs from any of ``networks``
    (``(label, network)`` pairs, e.g. ``("day 2019-10-08", network)``) on ``source``'s data."""
    _, trained = recorded_fit(folder, card)
    if "station_ids" in trained:
        _check_known_share(folder, trained, source, networks, scenario_arg, hint)
        return
    differ = []
    for label, network in networks:
        seen = network_fingerprint(network, source)
        field = next((f for f in NETWORK_FIELDS if seen[f] != trained[f]), None)
        if field is not None:
            differ.append((label, field, seen))
    if not differ:
        return
    label, field, seen = differ[0]
    more = f"; {len(differ) - 1} more differ" if len(differ) > 1 else ""
    raise CommandError(f"policy {folder} was trained on another network: its network.{field} is {trained[field]!r}, "
                       f"{label}'s is {seen[field]!r} ({trained['stations']} {trained['source']} stations trained on, "
                       f"{seen['stations']} {seen['source']} here{more}): a policy plans on the stations it was trained "
                       f"on; {_retrain(scenario_arg, hint)}", EXIT_USAGE)


def _check_known_share(folder: Path, trained: dict, source: str, networks, scenario_arg: str, hint: str) -> None:
    """The rule for a card that lists its training stations: same source, and at least
    :data:`MIN_KNOWN_STATIONS` of each planned day's stations among them."""
    known_ids = np.asarray(trained["station_ids"], dtype=np.int64)
    worst = None
    for label, network in networks:
        ids = np.asarray(network.station_ids, dtype=np.int64)
        if source != trained["source"]:
            raise CommandError(f"policy {folder} was trained on {trained['source']} stations, {label} is on {source} "
                               f"ones: {_retrain(scenario_arg, hint)}", EXIT_USAGE)
        share = float(np.isin(ids, known_ids).mean()) if len(ids) else 1.0
        if worst is None or share < worst[1]:
            worst = (label, share, len(ids))
    if worst is not None and worst[1] < MIN_KNOWN_STATIONS:
        label, share, n = worst
        raise CommandError(f"policy {folder} was trained on another network: of {label}'s {n} stations only "
                           f"{share:.0%} are among the {len(known_ids)} it trained on (at least "
                           f"{MIN_KNOWN_STATIONS:.0%} needed): {_retrain(scenario_arg, hint)}", EXIT_USAGE)


def check_policy_fits(policy, scenario, source: str, networks: Iterable[tuple[str, object]], scenario_arg: str,
                      hint: str = "") -> Path:
    """Both checks for the policy folder ``policy`` (None: the scenario's own, else the default) planning on
    ``scenario``'s fleet and on ``networks``; returns the folder."""
    folder = policy_folder(policy, scenario)
    card = read_card(folder)
    check_policy_fleet(folder, card, scenario.fleet, f"scenario {scenario.name!r}", scenario_arg, hint)
    check_policy_network(folder, card, source, networks, scenario_arg, hint)
    return folder


def check_router_planner(name: str, scenario, dates: Iterable[str] = (), allow_training_days: bool = False,
                         before_fit=None) -> dict:
    """Router planner ``name``'s card (``router``: the scenario's own; ``router:DIR``), read and
    checked by :func:`check_router_fit` (its warnings go to the log) before the planner runs;
    ``before_fit(card)`` runs a caller's own refusal first. Raises FileNotFoundError or
    ValueError (no readable ``router.json``) or :class:`CommandError` (refused)."""
    from bicimad.plan.router import read_router, router_folder

    folder = router_folder(name, scenario)
    card = read_router(folder)
    if before_fit is not None:
        before_fit(card)
    for warning in check_router_fit(folder, card, scenario, dates, allow_training_days):
        logging.getLogger(__name__).warning("%s", warning)
    return card


def check_router_fit(folder: Path, card: dict, scenario, dates: Iterable[str], allow_training_days: bool) -> list[str]:
    """What a comparison must know of a router (:mod:`bicimad.plan.router`) before it plans:
    refused (exit 2) when it was learnt on the synthetic city and the scenario is real, or when a
    day of ``dates`` is among its training or selection days (unless ``allow_training_days``:
    then a warning marks the output); a warning when its fleet or objective differs from the
    scenario's (its parameters hold no station identity, so another network is no reason to refuse)."""
    if scenario.network.source == "processed" and card.get("source") == "synthetic":
        raise CommandError(f"router {folder} was learnt on the synthetic city (scenario {card.get('scenario')!r}); "
                           f"scenario {scenario.name!r} runs on processed data: train one on real days with "
                           "`bicimad train-router`", EXIT_USAGE)
    warnings = []
    seen = sorted(set(dates) & (set(card.get("days", [])) | set(card.get("selection_days", []))))
    if seen:
        message = (f"router {folder} was trained or chosen on {len(seen)} day(s) of this period ({seen[0]}..{seen[-1]}): "
                   "its results are measured on days it learnt from")
        if not allow_training_days:
            raise CommandError(message + "; choose a period it never saw, or pass --allow-training-days to mark the "
                               "output", EXIT_USAGE)
        warnings.append(message)
    wanted = fleet_record(scenario.fleet)
    differ = [f"{f} {card.get('fleet', {}).get(f)!r} (scenario: {wanted[f]!r})" for f in FLEET_FIELDS
              if card.get("fleet", {}).get(f) != wanted[f]]
    if differ:
        warnings.append(f"router {folder} was learnt for another fleet: {'; '.join(differ)}")
    weights = dataclasses.asdict(scenario.reward)
    if card.get("objective_weights") not in (None, weights):
        warnings.append(f"router {folder} was learnt on the objective {card['objective_weights']}; the scenario "
                        f"declares {weights}")
    return warnings
