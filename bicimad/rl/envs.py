"""Environments: gymnasium classic control, Atari (ale-py), stable-retro games and probe envs.

``make_vector_env(env_id, num_envs, seed)`` is the one entry point. Env ids:

* any registered gymnasium id (``CartPole-v1``, ``Acrobot-v1``...);
* ``ALE/<Game>-v5`` (``ALE/Pong-v5``, ``ALE/Breakout-v5``): the Nature/seed preprocessing —
  up to 30 no-op starts, frame skip 4 with a max over the last two frames, episodic life and
  fire reset where the game has them, reward clipping to {-1, 0, 1}, 84×84 grayscale, 4 frames
  stacked. Sticky actions are off (as in the seed work); returns are recorded on whole games
  with raw (unclipped) scores;
* ``retro/Airstriker-Genesis`` or ``retro/GradiusIII-Snes`` (stable-retro): the same frame
  preprocessing over a small discrete set of button combinations (see ``RETRO_ACTIONS``);
  Gradius III needs the user's own ROM (``python -m stable_retro.import DIR``) and is trained on
  the seed's shaped reward (score, power-ups, boss damage, deaths: :mod:`.retro_rewards`),
  unclipped, with episode returns recorded on that reward;
* ``probe/<name>``: tiny envs with a known optimum for testing the algorithms (:mod:`.probes`).

Vector envs auto-reset in the same step (``AutoresetMode.SAME_STEP``): the final observation of a
finished episode is in ``info["final_obs"]``, which the rollout uses to bootstrap truncations.
"""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import numpy as np

DIRECTIONS = [["UP"], ["DOWN"], ["LEFT"], ["RIGHT"], ["UP", "LEFT"], ["UP", "RIGHT"], ["DOWN", "LEFT"],
              ["DOWN", "RIGHT"]]

#: Discrete button sets for retro games: each action is the list of buttons held.
RETRO_ACTIONS: dict[str, list[list[str]]] = {
    # Airstriker (B fires): no-op, 8 directions, fire, and the 8 directions while firing.
    "Airstriker-Genesis": [[]] + DIRECTIONS + [["B"]] + [d + ["B"] for d in DIRECTIONS],
    # Gradius III (the seed's 11 actions): no-op, 8 directions, power-up (A), fire (B), reading
    # the game's default controller set-up.
    "GradiusIII-Snes": [[]] + DIRECTIONS + [["A"], ["B"]],
}


#: Retro games trained on the RAM-variable reward of :mod:`.retro_rewards` instead of the score.
RAM_REWARD_GAMES = ("GradiusIII-Snes",)


class RomNotFoundError(RuntimeError):
    """A retro game whose ROM the user has not imported."""


# --- frame preprocessing wrappers (generic over ALE and retro) ---------------------------------

class NoopReset(gym.Wrapper):
    """After reset, take a random number (1..noop_max) of no-op actions (action 0)."""

    def __init__(self, env: gym.Env, noop_max: int = 30):
        super().__init__(env)
        self.noop_max = noop_max

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(int(self.unwrapped.np_random.integers(1, self.noop_max + 1))):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat each action ``skip`` frames; observe the max over the last two (removes flicker)."""

    def __init__(self, env: gym.Env, skip: int = 4):
        super().__init__(env)
        self.skip = skip
        self._frames = np.zeros((2, *env.observation_space.shape), dtype=env.observation_space.dtype)

    def step(self, action):
        total = 0.0
        for i in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            if i >= self.skip - 2:
                self._frames[i - (self.skip - 2)] = obs
            total += float(reward)
            if terminated or truncated:
                self._frames[:] = obs  # the episode ended mid-skip: no older frame to pool with
                break
        return self._frames.max(axis=0), total, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """End the learning episode at a life loss, but reset the game only when it is really over."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, _, _, info = self.env.step(0)  # no-op to step past the lost life
        self.lives = self.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after reset, for games that wait for it to start (Breakout)."""

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


class ClipReward(gym.RewardWrapper):
    """Reward sign only, so one learning rate fits games with very different score scales."""

    def reward(self, reward):
        return float(np.sign(reward))


class GrayResize(gym.ObservationWrapper):
    """RGB or gray frame → ``size``×``size`` grayscale uint8 by area averaging.

    Area weights (rather than point sampling) keep thin objects such as Pong's ball visible.
    The resize is two small matrix products, so it needs no image library.
    """

    def __init__(self, env: gym.Env, size: int = 84):
        super().__init__(env)
        self.size = size
        height, width = env.observation_space.shape[:2]
        self._rows = _area_weights(height, size)        # (size, height)
        self._cols = _area_weights(width, size).T      # (width, size)
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, obs):
        frame = obs.astype(np.float32)
        if frame.ndim == 3:  # ITU-R 601 luma, as the usual RGB→gray conversions
            frame = frame @ np.array([0.299, 0.587, 0.114], np.float32)
        out = self._rows @ frame @ self._cols
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _area_weights(src: int, dst: int) -> np.ndarray:
    """``(dst, src)``: the share of each source pixel inside each output pixel (rows sum to 1)."""
    edges = np.arange(dst + 1) * src / dst
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / (src / dst)).astype(np.float32)


class RetroDiscrete(gym.ActionWrapper):
    """A discrete action set over a retro console's buttons (each action: buttons held)."""

    def __init__(self, env: gym.Env, combos: list[list[str]]):
        super().__init__(env)
        buttons = list(env.unwrapped.buttons)
        self._arrays = np.zeros((len(combos), len(buttons)), dtype=np.int8)
        for i, combo in enumerate(combos):
            for button in combo:
                self._arrays[i, buttons.index(button)] = 1
        self.combos = combos
        self.action_space = gym.spaces.Discrete(len(combos))

    def action(self, action):
        return self._arrays[int(action)].copy()


# --- env construction --------------------------------------------------------------------------

def _atari(env_id: str) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.0, obs_type="grayscale",
                   full_action_space=False)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # whole games, raw scores
    env = NoopReset(env, noop_max=30)
    env = MaxAndSkip(env, skip=4)
    env = EpisodicLife(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = FireReset(env)
    env = ClipReward(env)
    env = GrayResize(env, 84)
    return gym.wrappers.FrameStackObservation(env, 4)


def _retro(game: str) -> gym.Env:
    import stable_retro

    if game not in RETRO_ACTIONS:
        raise ValueError(f"unknown retro game {game!r}: known are {sorted(RETRO_ACTIONS)}")
    try:
        env = stable_retro.make(f"{game}-v0", render_mode=None)
    except FileNotFoundError as exc:
        raise RomNotFoundError(
            f"the ROM of {game} is not imported ({exc}). stable-retro ships only Airstriker's ROM; "
            f"import a copy of the game you own with `python -m stable_retro.import /path/to/your/roms/` "
            f"(it scans the folder and installs every ROM whose checksum it knows), then retry."
        ) from exc
    shaped = game in RAM_REWARD_GAMES
    if shaped:  # every emulator frame's RAM change counts: below the frame skip
        from bicimad.rl.retro_rewards import RamReward, load_game

        env = RamReward(env, *load_game(game))
    env = RetroDiscrete(env, RETRO_ACTIONS[game])
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = NoopReset(env, noop_max=30)
    env = MaxAndSkip(env, skip=4)
    if not shaped:  # the shaped reward's weights set its scale; the plain score is clipped
        env = ClipReward(env)
    env = GrayResize(env, 84)
    return gym.wrappers.FrameStackObservation(env, 4)


def make_env(env_id: str) -> gym.Env:
    """One preprocessed env (episode statistics recorded in ``info["episode"]``)."""
    if env_id.startswith("ALE/"):
        return _atari(env_id)
    if env_id.startswith("retro/"):
        return _retro(env_id.removeprefix("retro/"))
    if env_id.startswith("probe/"):
        from bicimad.rl.probes import make_probe

        return gym.wrappers.RecordEpisodeStatistics(make_probe(env_id.removeprefix("probe/")))
    return gym.wrappers.RecordEpisodeStatistics(gym.make(env_id))


class NativeAtariVectorEnv(gym.vector.VectorEnv):
    """Atari through ale-py's C++ vector env (``ale_py.vector_env.AtariVectorEnv``), with the
    same learning signal as :func:`make_env`'s wrapper stack.

    The C++ side does the frame work on its own threads: up to 30 no-op starts, FIRE on reset,
    frame skip 4 with a max over the last two frames, 84×84 grayscale, 4 frames stacked, sticky
    actions off, same-step autoreset with ``info["final_obs"]``. This class adds, in numpy over
    the env axis, what ale-py's vector env does differently: a life loss is reported as a
    termination for learning while the game goes on (ale-py's own ``episodic_life`` restarts
    the whole game at every life loss), rewards are clipped to their sign, and whole-game raw
    scores are recorded as ``info["final_info"]["episode"]`` (``r``, ``l``, ``t``) as
    ``RecordEpisodeStatistics`` does. One difference from :func:`make_env` remains: FIRE is
    pressed at a game's start only, not after each lost life, so on Breakout the agent presses
    it itself (it is one of its four actions).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, env_id: str, num_envs: int, num_threads: int = 0):
        from ale_py.vector_env import AtariVectorEnv

        name = env_id.removeprefix("ALE/").rsplit("-v", 1)[0]
        game = "".join(("_" + c.lower()) if c.isupper() and i else c.lower() for i, c in enumerate(name))
        self.env_id = env_id
        self.ale_env = AtariVectorEnv(game, num_envs, num_threads=num_threads, autoreset_mode="SameStep",
                                      episodic_life=False, reward_clipping=False, repeat_action_probability=0.0,
                                      noop_max=30, use_fire_reset=True, frameskip=4, stack_num=4)
        self.num_envs = num_envs
        self.single_observation_space = self.ale_env.single_observation_space
        self.single_action_space = self.ale_env.single_action_space
        self.observation_space = self.ale_env.observation_space
        self.action_space = self.ale_env.action_space
        self._lives = np.zeros(num_envs, np.int64)
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)
        self._starts = np.zeros(num_envs, np.float64)

    def reset(self, *, seed=None, options=None):
        import time

        if isinstance(seed, (list, tuple)):
            seed = np.asarray(seed, np.int64)
        obs, info = self.ale_env.reset(seed=seed, options=options)
        self._lives[:] = info["lives"]
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._starts[:] = time.perf_counter()
        return obs, info

    def step(self, actions):
        import time

        obs, reward, terminated, truncated, info = self.ale_env.step(np.asarray(actions, np.int64))
        reward = np.asarray(reward, np.float64)
        self._returns += reward
        self._lengths += 1
        game_over = terminated | truncated
        lives = np.asarray(info["lives"], np.int64)
        life_lost = (lives < self._lives) & ~game_over
        self._lives[:] = lives
        if game_over.any():
            now = time.perf_counter()
            info = dict(info)
            info["final_info"] = {
                "episode": {"r": np.where(game_over, self._returns, 0.0),
                            "l": np.where(game_over, self._lengths, 0),
                            "t": np.where(game_over, np.round(now - self._starts, 6), 0.0)},
                "_episode": game_over.copy(),
            }
            self._returns[game_over] = 0.0
            self._lengths[game_over] = 0
            self._starts[game_over] = now
        return obs, np.sign(reward).astype(np.float32), terminated | life_lost, truncated, info

    def close_extras(self, **kwargs):
        self.ale_env.close()


def make_vector_env(env_id: str, num_envs: int, seed: int) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id``, seeded ``seed, seed+1, ...``, auto-resetting in the same step.

    Atari runs on ale-py's C++ vector env (:class:`NativeAtariVectorEnv`), CartPole-v1 on one
    numpy vector env (:class:`bicimad.rl.classic.CartPoleVectorEnv`). Retro games run one
    emulator per process, so several retro envs use subprocesses.
    """
    mode = gym.vector.AutoresetMode.SAME_STEP
    if env_id.startswith("ALE/"):
        envs = NativeAtariVectorEnv(env_id, num_envs)
    elif env_id == "CartPole-v1":
        from bicimad.rl.classic import CartPoleVectorEnv

        envs = CartPoleVectorEnv(num_envs)
    elif env_id.startswith("retro/") and num_envs > 1:
        fns = [lambda: _make_single_threaded(env_id) for _ in range(num_envs)]
        envs = gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
    else:
        envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id) for _ in range(num_envs)], autoreset_mode=mode)
    envs.action_space.seed(seed)
    return envs


def _make_single_threaded(env_id: str) -> gym.Env:
    """``make_env`` in a worker process whose BLAS runs on one thread.

    The frame resize is a BLAS matrix product; with one emulator per process, every process's
    BLAS pool spinning on all cores made 8 retro envs on 2 cores 12x slower than one thread each.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    return make_env(env_id)


def is_image_env(env_id: str) -> bool:
    return env_id.startswith(("ALE/", "retro/"))


def episode_extras(infos: dict) -> Iterator[dict[str, float]]:
    """Other numbers an env reports for each ended episode beside return and length (keys of
    ``final_info["episode"]`` other than ``r``, ``l``, ``t`` and the vector env's ``_``-prefixed
    masks; the fleet env adds ``problem_share``), as ``episode/<key>``, one dict per ended episode."""
    final = infos.get("final_info")
    if not final or "episode" not in final:
        return
    episode = final["episode"]
    keys = [key for key in episode if key not in ("r", "l", "t") and not key.startswith("_")]
    if not keys:
        return
    for i in np.flatnonzero(final["_episode"]):
        yield {f"episode/{key}": float(episode[key][i]) for key in keys}


def episode_returns(infos: dict) -> Iterator[tuple[float, int]]:
    """``(return, length)`` of every episode that ended in this vector step."""
    final = infos.get("final_info")
    if not final or "episode" not in final:
        return
    episode = final["episode"]
    for i in np.flatnonzero(final["_episode"]):
        yield float(episode["r"][i]), int(episode["l"][i])
