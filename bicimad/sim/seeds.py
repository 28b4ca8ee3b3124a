"""The one home of seed derivation: keyed seeds from a root seed, and child generators.

* :func:`derive_seed` ``(root, *keys)``: the 32-bit seed of the stream named by ``keys`` (a
  day, a task, a seed index) under ``root``, through numpy's ``SeedSequence`` spawn keys, so
  streams are independent of each other and of how many there are or the order they run in.
* :func:`child_rngs` ``(parent, n)``: ``n`` generators drawn from a parent generator, e.g. the
  riders of each env copy from the env's own generator (actions never consume randomness).
* :func:`rider_rng` ``(seed)``: the riders' generator the envs derive on ``reset(seed=seed)``,
  so :func:`bicimad.sim.rollout.run_episode` with that seed meets the same riders.
"""

from __future__ import annotations

import numpy as np
from gymnasium.utils import seeding


def derive_seed(root: int, *keys: int) -> int:
    """The seed of the stream ``keys`` under ``root`` (``SeedSequence(root, spawn_key=keys)``).

    ``derive_seed(root, *keys, i)`` is also the seed of child ``i`` of
    ``SeedSequence(root, spawn_key=keys).spawn(n)``.
    """
    sequence = np.random.SeedSequence(int(root), spawn_key=tuple(int(k) for k in keys))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def child_rngs(parent: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` generators seeded from ``parent``'s next ``n`` draws in ``0..2**63``."""
    return [np.random.default_rng(int(s)) for s in parent.integers(2**63, size=n)]


def rider_rng(seed: int) -> np.random.Generator:
    """The riders' generator for ``seed`` (the one the env derives on ``reset(seed=seed)``)."""
    env_rng, _ = seeding.np_random(seed)
    return child_rngs(env_rng, 1)[0]
