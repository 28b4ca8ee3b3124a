"""What REINFORCE, A2C and PPO share: config fields, rollout storage and collection, GAE,
metrics logging and checkpoints. Each algorithm module keeps only its own loss and update.

Conventions. Storage is time-major ``(num_steps, num_envs, ...)``. ``dones[t]`` is True when the
episode ended with step ``t`` (terminated *or* truncated): the next stored observation belongs
to a new episode, so advantages never flow across it. A truncated episode did not really end,
so its step reward is bootstrapped with the value of the final observation,
``r_t + gamma * V(s_final)`` (the truncation bootstrap); a terminated one gets no bootstrap.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import random
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from bicimad.rl import checkpoints
from bicimad.rl.agents import Agent, AgentFactory, action_nvec
from bicimad.rl.agents import make_agent as default_make_agent
from bicimad.rl.envs import episode_extras, episode_returns, make_vector_env

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
CURVE = "learning_curve.png"


@dataclass
class CommonConfig:
    """Fields every algorithm has (each algorithm subclasses this with its own defaults)."""

    env_id: str = "CartPole-v1"
    """environment id: gymnasium id, ALE/<Game>-v5, retro/<Game>, probe/<name> (see envs.py)"""
    seed: int = 1
    """seed of python, numpy, torch and the environments"""
    total_steps: int = 500_000
    """environment steps to train for, summed over the vector envs"""
    num_envs: int = 4
    """parallel environments"""
    num_steps: int = 128
    """steps per environment in each rollout"""
    learning_rate: float = 2.5e-4
    """optimiser learning rate (at the start, if annealed)"""
    anneal_lr: bool = True
    """decay the learning rate linearly to zero over the run"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda (1.0 gives Monte Carlo returns with a value baseline)"""
    norm_adv: bool = True
    """normalise advantages to zero mean, unit std per (mini)batch"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """value loss coefficient"""
    max_grad_norm: float = 0.5
    """global gradient norm clip"""
    torch_threads: int = 1
    """torch CPU threads (1 is fastest for small networks on a shared machine)"""
    checkpoint_every: int = 20
    """write a checkpoint every this many iterations (and always at the end)"""
    tensorboard: bool = True
    """also write TensorBoard event files to out_dir/tb (needs the tensorboard extra)"""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range (see :data:`FIELD_RANGES`); ValueError names the field.

        An int given for a float field becomes a float; a float for an int field, or a string
        for a number, is refused.
        """
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
            if value is None and type(None) in kinds:
                continue
            if bool in kinds:
                ok = isinstance(value, bool)
            elif int in kinds:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif float in kinds:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                if ok:
                    value = float(value)
                    setattr(self, field.name, value)
            else:
                ok = isinstance(value, kinds)
            if not ok:
                names = " or ".join("None" if k is type(None) else
                                    {"int": "an integer", "float": "a finite number", "bool": "true or false",
                                     "str": "a string"}.get(k.__name__, k.__name__) for k in kinds)
                raise ValueError(f"config field {field.name} must be {names}, got {value!r}")
            low, high, what = FIELD_RANGES.get(field.name, (None, None, ""))
            if (low is not None and value < low) or (high is not None and value > high) or \
                    (what == "positive" and value <= 0):
                raise ValueError(f"config field {field.name} must be {what}, got {value!r}")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_iterations(self) -> int:
        return max(1, self.total_steps // self.batch_size)


#: field -> (minimum, maximum, description) checked by :meth:`CommonConfig.validate` (None: no bound).
FIELD_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "seed": (0, None, "at least 0"),
    "total_steps": (0, None, "at least 0"),
    "num_envs": (1, None, "at least 1"),
    "num_steps": (1, None, "at least 1"),
    "learning_rate": (None, None, "positive"),
    "gamma": (0, 1, "between 0 and 1"),
    "gae_lambda": (0, 1, "between 0 and 1"),
    "ent_coef": (0, None, "at least 0"),
    "vf_coef": (0, None, "at least 0"),
    "max_grad_norm": (None, None, "positive"),
    "torch_threads": (1, None, "at least 1"),
    "checkpoint_every": (1, None, "at least 1"),
    # algorithm fields
    "num_minibatches": (1, None, "at least 1"),
    "update_epochs": (1, None, "at least 1"),
    "clip_coef": (None, None, "positive"),
    "target_kl": (None, None, "positive"),
    "kl_beta": (None, None, "positive"),
    "kl_target": (None, None, "positive"),
    "rmsprop_alpha": (0, 1, "between 0 and 1"),
}


# --- advantages ---------------------------------------------------------------------------------

def compute_gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: np.ndarray,
                gamma: float, gae_lambda: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns (``advantages + values``), time-major.

    ``rewards`` already hold the truncation bootstrap; ``last_value`` is V of the observation
    after the last stored step. A done step gets neither the next value nor later advantages.
    """
    advantages = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros_like(last_value, dtype=np.float32)
    next_value = last_value
    for t in reversed(range(len(rewards))):
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * alive - values[t]
        running = delta + gamma * gae_lambda * alive * running
        advantages[t] = running
        next_value = values[t]
    return advantages, advantages + values


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """Scale the gradients so their global 2-norm is at most ``max_norm``; returns the norm before.

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_`` (norm of the per-tensor norms,
    factor ``max_norm / (norm + 1e-6)`` capped at 1) in three fused calls, without its
    wrappers, whose per-call cost is a tenth of a small network's whole update.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters, max_grad_norm: float) -> None:
    """One optimiser step on ``loss`` with the gradients' global norm clipped to ``max_grad_norm``."""
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        clip_grad_norm(parameters, max_grad_norm)
    optimizer.step()


def explained_variance(predicted: np.ndarray, target: np.ndarray) -> float:
    """1 - Var(target - predicted) / Var(target): 1 is perfect, 0 no better than a constant."""
    variance = np.var(target)
    return float("nan") if variance == 0 else float(1 - np.var(target - predicted) / variance)


# --- storage ------------------------------------------------------------------------------------

class RolloutBuffer:
    """Preallocated time-major arrays written in place by :meth:`Run.collect_rollout`.

    Storage is numpy (cheap per-step writes); the attributes ``obs``, ``actions``, ``logprobs``,
    ``rewards``, ``dones``, ``values``, ``masks`` are torch views of the same memory.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_space: gym.Space, nvec: tuple[int, ...],
                 masked: bool):
        shape = (num_steps, num_envs)
        self.arrays = {
            "obs": np.zeros(shape + obs_space.shape, np.uint8 if obs_space.dtype == np.uint8 else np.float32),
            "actions": np.zeros(shape + (len(nvec),), np.int64),
            "logprobs": np.zeros(shape, np.float32),
            "rewards": np.zeros(shape, np.float32),
            "dones": np.zeros(shape, np.float32),
            "values": np.zeros(shape, np.float32),
        }
        if masked:
            self.arrays["masks"] = np.ones(shape + (sum(nvec),), bool)
        for name, array in self.arrays.items():
            setattr(self, name, torch.from_numpy(array))
        if not masked:
            self.masks = None

    def flat(self, name: str) -> torch.Tensor | None:
        """A stored tensor with time and env axes merged, for minibatching."""
        tensor = getattr(self, name)
        return None if tensor is None else tensor.reshape((-1,) + tensor.shape[2:])


# --- metrics ------------------------------------------------------------------------------------

class MetricsLogger:
    """Metrics as a long CSV (``step,key,value``), plus TensorBoard event files in ``out_dir/tb``
    when ``tensorboard`` is asked for and the ``tensorboard`` extra is installed
    (``pip install bicimad[tensorboard]``; without it the CSV alone is written).

    Keys are namespaced as CleanRL's (SB3's ``train/`` is our ``losses/``):
    ``charts/episodic_return``, ``charts/episodic_length``, ``charts/learning_rate``,
    ``charts/SPS`` (and PPO's ``charts/clip_range``, ``charts/kl_beta``), ``losses/value_loss``,
    ``losses/policy_loss``, ``losses/entropy``, ``losses/explained_variance`` (and PPO's
    ``losses/approx_kl``, ``losses/clipfrac``, ``losses/first_ratio_max_dev``); envs may add
    ``episode/<key>``. On resume both the CSV and the event files drop what an interrupted run
    logged after its last checkpoint.
    """

    def __init__(self, out_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = out_dir / METRICS
        resuming = resume_step is not None and self.path.exists()
        if resuming:
            self._truncate_after(resume_step)
        self._file = open(self.path, "a" if resuming else "w", newline="")  # a new run starts afresh
        self._csv = csv.writer(self._file)
        if not resuming:
            self._csv.writerow(["step", "key", "value"])
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the optional extra is not installed
                SummaryWriter = None
            if SummaryWriter is not None:
                tb_dir = out_dir / "tb"
                if not resuming:  # a new run starts afresh here too
                    for old in tb_dir.glob("events.out.tfevents.*"):
                        old.unlink()
                self._tb = SummaryWriter(str(tb_dir), purge_step=resume_step + 1 if resuming else None)

    def _truncate_after(self, step: int) -> None:
        """Drop rows an interrupted run logged after its last checkpoint, so a resume has no duplicates."""
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= step]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, self.path)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._csv.writerow([step, key, f"{float(value):.6g}"])
            if self._tb is not None:
                self._tb.add_scalar(key, float(value), step)

    def flush(self) -> None:
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(out_dir: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one metric from a run's CSV."""
    steps, values = [], []
    with open(Path(out_dir) / METRICS, newline="") as f:
        for row in csv.DictReader(f):
            if row["key"] == key:
                steps.append(int(row["step"]))
                values.append(float(row["value"]))
    return np.array(steps), np.array(values)


def _episode_keys(out_dir: Path) -> list[str]:
    """The per-episode extras (``episode/<key>``) a run's CSV holds, in first-seen order."""
    keys: dict[str, None] = {}
    with open(Path(out_dir) / METRICS, newline="") as f:
        for row in csv.DictReader(f):
            if row["key"].startswith("episode/"):
                keys.setdefault(row["key"])
    return list(keys)


def plot_learning_curve(out_dir: Path, title: str) -> Path | None:
    """Episodic return against steps (points and a moving mean) as a PNG, with a panel below for
    each per-episode extra the env logged (e.g. the fleet env's problem share); None if no
    episode ended."""
    steps, returns = read_metrics(out_dir, "charts/episodic_return")
    if len(steps) == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("episodic return", steps, returns)]
    series += [(key.removeprefix("episode/").replace("_", " "), *read_metrics(out_dir, key))
               for key in _episode_keys(out_dir)]
    fig, axes = plt.subplots(len(series), 1, figsize=(7, 1 + 3 * len(series)), sharex=True, squeeze=False)
    for ax, (label, x, y) in zip(axes[:, 0], series):
        window = max(1, min(50, len(y) // 10))
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(x, y, ".", alpha=0.25, markersize=3, label="episode")
        ax.plot(x[window - 1:], smooth, label=f"mean of {window}")
        ax.set_ylabel(label)
        ax.legend()
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("environment steps")
    fig.tight_layout()
    path = Path(out_dir) / CURVE
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# --- the run: setup, rollout, checkpoints -------------------------------------------------------

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """The global RNGs' states as tensors and plain values (see checkpoints.py)."""
    return {"python": random.getstate(), "numpy": checkpoints.numpy_global_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    checkpoints.set_numpy_global_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _is_emulator(env: gym.Env) -> bool:
    """ALE and stable-retro envs: their state lives in native emulator memory."""
    return type(env.unwrapped).__module__.split(".")[0] in ("ale_py", "stable_retro", "retro")


def check_autoreset_mode(envs: gym.vector.VectorEnv) -> None:
    """Refuse a vector env that does not auto-reset in the same step.

    The rollout reads a finished episode's last observation from ``infos["final_obs"]`` (to
    bootstrap truncations) and treats the observation returned with it as the next episode's
    first, which is gymnasium's ``AutoresetMode.SAME_STEP``. With ``NEXT_STEP`` (gymnasium's
    default) the step after an episode's end is a reset step whose action is ignored, and
    there is no ``final_obs``; with ``DISABLED`` nothing resets.
    """
    mode = envs.metadata.get("autoreset_mode")
    same_step = gym.vector.AutoresetMode.SAME_STEP
    if mode == same_step or mode == same_step.value:
        return
    shown = "none declared (gymnasium then assumes NEXT_STEP)" if mode is None else \
        (mode.name if isinstance(mode, gym.vector.AutoresetMode) else repr(mode))
    raise ValueError(
        f"{type(envs).__name__} auto-resets in mode {shown}; the policy-gradient rollout supports only "
        f"AutoresetMode.SAME_STEP (metadata['autoreset_mode']), whose infos['final_obs'] it reads to "
        f"bootstrap truncated episodes: build the vector env with autoreset_mode=AutoresetMode.SAME_STEP")


class Run:
    """One training run's shared machinery; the algorithm owns the optimiser and the update.

    Typical use (see ppo.py): ``run = Run(...)``, build optimiser and scheduler,
    ``run.restore(optimizer, scheduler, extra)``, then per iteration ``collect_rollout()``,
    ``advantages()``, the algorithm's update, ``end_iteration(...)``.
    """

    def __init__(self, algo: str, config: CommonConfig, out_dir: str | Path, *,
                 make_agent: AgentFactory | None = None, envs: gym.vector.VectorEnv | None = None,
                 progress: bool = True):
        self.algo, self.config = algo, config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(config.torch_threads)
        seed_everything(config.seed)
        self.envs = envs if envs is not None else make_vector_env(config.env_id, config.num_envs, config.seed)
        check_autoreset_mode(self.envs)
        if self.envs.num_envs != config.num_envs:
            raise ValueError(f"envs has {self.envs.num_envs} sub-envs but config.num_envs is {config.num_envs}")
        obs_space = self.envs.single_observation_space
        self.nvec = action_nvec(self.envs.single_action_space)
        self.agent: Agent = (make_agent or default_make_agent)(obs_space, self.envs.single_action_space)
        self.next_obs, infos = self.envs.reset(seed=[config.seed + i for i in range(config.num_envs)])
        self._mask_source = self._find_mask_source(infos)
        self.next_mask = self._mask(infos)
        self.buffer = RolloutBuffer(config.num_steps, config.num_envs, obs_space, self.nvec,
                                    masked=self._mask_source is not None)
        self.rng = np.random.default_rng(config.seed)  # numpy-policy rollouts sample from it
        self.iteration = 0
        self.global_step = 0
        self.progress = progress
        self.logger: MetricsLogger | None = None
        self._bar = None
        self._start_time = 0.0
        self._start_step = 0

    # -- masks: info["action_mask"], else an ``action_masks()`` method of the vector env or of
    # -- each sub-env of an in-process vector env (asking subprocess workers for a method they
    # -- lack would shut them down, so those must use the info key) ------------------------------
    def _find_mask_source(self, infos: dict) -> str | None:
        if "action_mask" in infos:
            return "info"
        if callable(getattr(self.envs, "action_masks", None)):
            return "vector"
        if isinstance(self.envs, gym.vector.SyncVectorEnv) and self.envs.envs[0].has_wrapper_attr("action_masks"):
            return "method"
        return None

    def _mask(self, infos: dict) -> np.ndarray | None:
        if self._mask_source == "info":
            return np.asarray(infos["action_mask"], dtype=bool)
        if self._mask_source == "vector":
            return np.asarray(self.envs.action_masks(), dtype=bool)
        if self._mask_source == "method":
            return np.stack(self.envs.call("action_masks")).astype(bool)
        return None

    # -- checkpoints ------------------------------------------------------------------------------
    def restore(self, optimizer: torch.optim.Optimizer, scheduler, extra: dict, resume: bool) -> None:
        """Continue from the checkpoint in ``out_dir`` (if ``resume``), then open the logger."""
        path = self.out_dir / CHECKPOINT
        if resume:
            if not path.exists():
                raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {self.out_dir}")
            state = checkpoints.load(path)
            if state["algo"] != self.algo:
                raise ValueError(f"{path} is a {state['algo']} run, not {self.algo}")
            self.agent.load_state_dict(state["agent"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            extra.update(state["extra"])
            self.iteration, self.global_step = state["iteration"], state["global_step"]
            self._restore_envs(state["envs"], path)
            _set_rng_state(state["rng"])
            self.rng = checkpoints.generator_from_state(state["rng"]["rollout"])
        self._start_step = self.global_step
        self._start_time = time.perf_counter()  # steps/s counts training, not set-up
        self.logger = MetricsLogger(self.out_dir, resume_step=self.global_step if resume else None,
                                    tensorboard=self.config.tensorboard)
        if self.progress:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=self.config.num_iterations * self.config.batch_size,
                                 initial=self.global_step, unit="step", desc=f"{self.algo} {self.config.env_id}",
                                 dynamic_ncols=True)
            except ImportError:
                self._bar = None

    def _env_objects(self) -> list | None:
        """The objects whose plain state resumes the envs exactly (in-process, emulator-free
        envs), else None: those envs restart their episodes on resume."""
        if getattr(self.envs, "plain_state", False):
            return [self.envs, self.envs.action_space]
        if not isinstance(self.envs, gym.vector.SyncVectorEnv) or any(_is_emulator(env) for env in self.envs.envs):
            return None
        objects = [self.envs, self.envs.action_space]
        for env in self.envs.envs:
            objects += checkpoints.wrapper_stack(env)
        return objects

    def _env_state(self) -> dict:
        objects = self._env_objects()
        return {"next_obs": checkpoints.encode(self.next_obs),
                "next_mask": checkpoints.encode(self.next_mask),
                "exact": None if objects is None else checkpoints.capture_state(objects)}

    def _restore_envs(self, state: dict, source: Path) -> None:
        objects = self._env_objects()
        if objects is not None and state["exact"] is not None:
            checkpoints.apply_state(objects, state["exact"], source)
            self.next_obs = checkpoints.decode(state["next_obs"])
            self.next_mask = checkpoints.decode(state["next_mask"])
        else:
            # Emulator state is not saved: start fresh episodes, seeded by the step reached.
            seeds = [self.config.seed + self.global_step + i for i in range(self.config.num_envs)]
            self.next_obs, infos = self.envs.reset(seed=seeds)
            self.next_mask = self._mask(infos)

    def save(self, optimizer, scheduler, extra: dict) -> Path:
        state = {
            "algo": self.algo,
            "config": dataclasses.asdict(self.config),
            "iteration": self.iteration,
            "global_step": self.global_step,
            "agent": self.agent.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "extra": dict(extra),
            "rng": {**_rng_state(), "rollout": self.rng.bit_generator.state},
            "envs": self._env_state(),
        }
        path = self.out_dir / CHECKPOINT
        buffer = io.BytesIO()
        torch.save(state, buffer)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)  # a crash mid-write never replaces the last good checkpoint
        return path

    # -- the loop ----------------------------------------------------------------------------------
    def running(self, stop_after_steps: int | None = None) -> bool:
        """True while iterations remain (and, if given, fewer than ``stop_after_steps`` were done now)."""
        if self.iteration >= self.config.num_iterations:
            return False
        return stop_after_steps is None or self.global_step - self._start_step < stop_after_steps

    def collect_rollout(self) -> None:
        """Fill the buffer with ``num_steps`` vector steps; log every episode that ends.

        Uses the agent's ``numpy_policy()`` snapshot when it has one (see agents.py), else torch.
        """
        cfg, arrays, agent = self.config, self.buffer.arrays, self.agent
        single = len(self.nvec) == 1 and isinstance(self.envs.single_action_space, gym.spaces.Discrete)
        fast = agent.numpy_policy() if hasattr(agent, "numpy_policy") else None
        for t in range(cfg.num_steps):
            if fast is not None:
                action, logprob, value = fast(self.next_obs, self.next_mask, self.rng)
            else:
                mask = None if self.next_mask is None else torch.as_tensor(self.next_mask)
                with torch.inference_mode():
                    action, logprob, _, value = agent.get_action_and_value(torch.as_tensor(self.next_obs), mask=mask)
                action, logprob, value = action.numpy(), logprob.numpy(), value.numpy()
            arrays["obs"][t] = self.next_obs
            arrays["actions"][t] = action
            arrays["logprobs"][t] = logprob
            arrays["values"][t] = value
            if self.next_mask is not None:
                arrays["masks"][t] = self.next_mask
            self.next_obs, reward, terminated, truncated, infos = self.envs.step(action[:, 0] if single else action)
            arrays["rewards"][t] = reward
            cut = np.flatnonzero(truncated & ~terminated)
            if len(cut):  # truncation bootstrap: the episode would have gone on
                final_obs = torch.as_tensor(np.stack(infos["final_obs"][cut]))
                with torch.inference_mode():
                    arrays["rewards"][t, cut] += cfg.gamma * agent.get_value(final_obs).numpy()
            arrays["dones"][t] = terminated | truncated
            self.next_mask = self._mask(infos)
            self.global_step += cfg.num_envs
            for ret, length in episode_returns(infos):
                self.logger.log(self.global_step, {"charts/episodic_return": ret, "charts/episodic_length": length})
            for extras in episode_extras(infos):
                self.logger.log(self.global_step, extras)

    def advantages(self) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE advantages and returns for the buffer, bootstrapped from the current observation."""
        with torch.inference_mode():
            last_value = self.agent.get_value(torch.as_tensor(self.next_obs)).numpy()
        adv, ret = compute_gae(self.buffer.rewards.numpy(), self.buffer.values.numpy(), self.buffer.dones.numpy(),
                               last_value, self.config.gamma, self.config.gae_lambda)
        return torch.from_numpy(adv), torch.from_numpy(ret)

    def end_iteration(self, metrics: dict[str, float], optimizer, scheduler, extra: dict) -> None:
        """Step the LR schedule, log the iteration's metrics, checkpoint when due."""
        self.iteration += 1
        scheduler.step()
        elapsed = time.perf_counter() - self._start_time
        metrics = dict(metrics)
        metrics["charts/learning_rate"] = optimizer.param_groups[0]["lr"]
        metrics["charts/SPS"] = (self.global_step - self._start_step) / max(elapsed, 1e-9)
        self.logger.log(self.global_step, metrics)
        self.logger.flush()
        if self._bar is not None:
            self._bar.update(self.config.batch_size)
        if self.iteration % self.config.checkpoint_every == 0:
            self.save(optimizer, scheduler, extra)

    def close(self, optimizer, scheduler, extra: dict) -> Path:
        """Final checkpoint (also when stopped early) and learning curve; returns the output folder."""
        self.save(optimizer, scheduler, extra)
        self.logger.close()
        if self._bar is not None:
            self._bar.close()
        self.envs.close()
        plot_learning_curve(self.out_dir, f"{self.algo} on {self.config.env_id} (seed {self.config.seed})")
        return self.out_dir


def linear_schedule(optimizer: torch.optim.Optimizer, num_iterations: int, anneal: bool):
    """LR multiplier 1 → 0 over the run (or constant): a scheduler whose state checkpoints."""
    if anneal:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: max(0.0, 1.0 - it / num_iterations))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0)
