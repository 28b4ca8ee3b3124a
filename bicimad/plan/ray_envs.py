"""Rollout workers as Ray actors: :class:`RayFleetVectorEnv`, the fleet env split over processes.

PPO's learner and its policy stay in the calling process; only the simulation moves out. The
``num_envs`` copies of :class:`~bicimad.plan.fleet_env.FleetPlanningVectorEnv` are split into
``workers`` consecutive shares (``numpy.array_split``: sizes differ by at most one), each held by
one Ray actor (:class:`FleetWorker`, one CPU) as a ``FleetPlanningVectorEnv`` of its share.
``step`` scatters the actions and gathers observations, rewards, dones and infos
(``action_mask``, ``final_obs``, ``final_info``) in copy order, so the vector env looks exactly
like the in-process one: same spaces, same ``SAME_STEP`` autoreset, same info keys.

Same seed, same result, whatever the number of workers: every copy draws its riders from its
own generator, seeded by its global index's seed, and every worker draws the day all copies
replay from one generator seeded by all the copies' seeds (the ``copies`` reset option of
``FleetPlanningVectorEnv``). For identical actions the split env therefore returns what the
in-process env returns, bit for bit, and PPO trained on it gives the same weights.

When it pays: the simulator batches its per-minute work over the copies, so a step of 8 copies
costs little more than a step of 4 in one process; splitting them pays only where every worker
has a core of its own, and most with many copies per worker (several machines, large
``num_envs``). ``tests/bench/bench_fleet_rollout_workers.py`` measures it against the envs in
process.

Ray: a fresh local cluster with one CPU per worker when no address is given, else the cluster at
``ray_address`` (``auto``: the one this machine belongs to; its nodes need this package
installed). A Ray already initialised in this process is used as it is and left running.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from bicimad.plan.fleet_env import FleetPlanningVectorEnv, copy_seeds, fleet_inputs
from bicimad.plan.policy import ObservationConfig
from bicimad.sim.network import Network
from bicimad.sim.scenario import Scenario


def connect_ray(address: str | None, num_cpus: int) -> bool:
    """Connect this process to Ray: a fresh local cluster of ``num_cpus`` CPUs when ``address``
    is None, else the cluster at ``address``. True when this call started Ray (the caller shuts
    it down); False when Ray was already initialised here (used as it is)."""
    import ray  # a heavy import, only for runs on Ray

    if ray.is_initialized():
        return False
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def worker_shares(num_envs: int, workers: int) -> list[range]:
    """The copies of each of ``workers`` workers: consecutive, sizes differing by at most one."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 1 <= workers <= num_envs:
        raise ValueError(f"workers must be an integer from 1 to num_envs ({num_envs}), got {workers!r}")
    return [range(int(part[0]), int(part[-1]) + 1) for part in np.array_split(np.arange(num_envs), int(workers))]


class FleetWorker:
    """One worker's share of the copies (run as a Ray actor): a ``FleetPlanningVectorEnv`` of
    copies ``copies`` of the whole vector env."""

    def __init__(self, inputs: tuple, copies: range):
        scenario, network, days, config, reward_scale = inputs
        self.copies = copies
        self.env = FleetPlanningVectorEnv(scenario, network, days, num_envs=len(copies), config=config,
                                          reward_scale=reward_scale)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.env.single_observation_space, self.env.single_action_space

    def reset(self, seeds: list[int] | None):
        """A new day: seeded with the whole env's ``seeds``, or going on with the generators (None)."""
        if seeds is None:
            return self.env.reset()
        return self.env.reset(seed=seeds, options={"copies": self.copies})

    def step(self, actions: np.ndarray):
        return self.env.step(actions)

    def planner_actions(self, planner) -> np.ndarray:
        return self.env.planner_actions(planner)

    def day_hours(self) -> int:
        return self.env.day_hours


def _concat(parts: list):
    """The workers' infos (or their nested dicts) joined along the copy axis, in worker order."""
    if isinstance(parts[0], dict):
        keys = set(parts[0])
        if any(set(part) != keys for part in parts):
            raise RuntimeError(f"workers out of lockstep: info keys {[sorted(part) for part in parts]}")
        return {key: _concat([part[key] for part in parts]) for key in parts[0]}
    return np.concatenate(parts)


class RayFleetVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of the fleet planning env split over ``workers`` Ray actors.

    Same arguments, spaces, autoreset mode, info keys and draws as
    :class:`~bicimad.plan.fleet_env.FleetPlanningVectorEnv` (see this module's docstring), plus
    ``workers`` (1 to ``num_envs``) and ``ray_address`` (None: a fresh local cluster). ``close()``
    ends the actors (and the local cluster it started); call it also when training fails.
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, scenario: Scenario | str | None = None, network: Network | None = None,
                 days: list[tuple[object, object]] | None = None, num_envs: int = 8,
                 config: ObservationConfig | None = None, reward_scale: float = 0.01, *,
                 workers: int = 2, ray_address: str | None = None, render_mode: str | None = None):
        import ray

        if render_mode is not None:
            raise ValueError("the fleet planning env does not render")
        self.render_mode = None
        self.num_envs = int(num_envs)
        self.shares = worker_shares(self.num_envs, workers)
        # Defaults filled in here, so every worker simulates the same city and days.
        self.scenario, network, days = fleet_inputs(scenario, network, days)
        self._actors: list = []
        self._seeded = False
        self._owns_ray = connect_ray(ray_address, len(self.shares))
        try:
            cpus = ray.cluster_resources().get("CPU", 0)
            if cpus < len(self.shares):  # the actors could never all start: refuse rather than wait
                raise ValueError(f"the Ray cluster has {cpus:g} CPU(s), fewer than the {len(self.shares)} "
                                 "workers need (one each)")
            inputs = ray.put((self.scenario, network, days, config, reward_scale))  # shipped once, shared
            actor = ray.remote(num_cpus=1)(FleetWorker)
            self._actors = [actor.remote(inputs, share) for share in self.shares]
            spaces = ray.get([a.spaces.remote() for a in self._actors])  # also surfaces errors building them
        except BaseException:
            self.close()
            raise
        self.single_observation_space, self.single_action_space = spaces[0]
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)

    @property
    def workers(self) -> int:
        return len(self.shares)

    @property
    def day_hours(self) -> int:
        """Hours of the day now simulated (every worker simulates the same day)."""
        return int(self._get(self._actors[0].day_hours.remote()))

    def _get(self, refs):
        import ray

        if self.closed:
            raise RuntimeError("RayFleetVectorEnv is closed")
        return ray.get(refs)

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict | None = None):
        """Start a day in every copy; ``seed`` as for ``FleetPlanningVectorEnv.reset``."""
        if options:
            raise ValueError(f"reset: RayFleetVectorEnv takes no options, got {sorted(options)}")
        # Fresh entropy is drawn here, not in each worker, so the workers agree on the day.
        seeds = copy_seeds(seed, self.num_envs) if seed is not None or not self._seeded else None
        results = self._get([a.reset.remote(seeds) for a in self._actors])
        self._seeded = True
        features = np.concatenate([features for features, _ in results])
        return features, _concat([info for _, info in results])

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"step: actions of shape {actions.shape} for {self.num_envs} envs")
        results = self._get([a.step.remote(actions[share.start:share.stop])
                             for a, share in zip(self._actors, self.shares)])
        features, reward, terminated, truncated, infos = zip(*results)
        return (np.concatenate(features), np.concatenate(reward), np.concatenate(terminated),
                np.concatenate(truncated), _concat(list(infos)))

    def planner_actions(self, planner) -> np.ndarray:
        """Each copy's action closest to ``planner``'s plan now, planned in the workers."""
        return np.concatenate(self._get([a.planner_actions.remote(planner) for a in self._actors]))

    def close_extras(self, **kwargs) -> None:
        import ray

        if ray.is_initialized():
            for actor in self._actors:
                ray.kill(actor)
            if self._owns_ray:
                ray.shutdown()
        self._actors = []
