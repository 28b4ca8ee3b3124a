"""Seed derivation: keyed seeds independent of order, child generators as the envs draw them."""

from __future__ import annotations

import numpy as np
from gymnasium.utils import seeding

from bicimad.sim.seeds import child_rngs, derive_seed, rider_rng


def test_derived_seeds_are_the_spawned_children_and_independent_of_order():
    root = np.random.SeedSequence(42, spawn_key=(7,))
    spawned = [int(s.generate_state(1, dtype=np.uint32)[0]) for s in root.spawn(4)]
    assert [derive_seed(42, 7, i) for i in range(4)] == spawned
    assert [derive_seed(42, 7, i) for i in (3, 0)] == [spawned[3], spawned[0]]
    seeds = {derive_seed(root_seed, key) for root_seed in range(5) for key in range(20)}
    assert len(seeds) == 100 and all(0 <= s < 2**32 for s in seeds)


def test_child_generators_are_the_parents_next_draws():
    parent = np.random.default_rng(3)
    children = child_rngs(parent, 3)
    expected = np.random.default_rng(3).integers(2**63, size=3)
    for child, seed in zip(children, expected):
        assert child.random() == np.random.default_rng(int(seed)).random()
    # The riders of seed s are the first child of the env generator reset(seed=s) makes.
    env_rng, _ = seeding.np_random(11)
    assert rider_rng(11).random() == child_rngs(env_rng, 1)[0].random()
