"""``bicimad rl train|eval``: train REINFORCE, A2C or PPO on a gymnasium, Atari or retro env,
and evaluate a trained run.

:func:`train` and :func:`evaluate` are the jobs; the argparse handlers only parse and call them.
Every user error (bad value, unknown env, a refused checkpoint) is a :class:`CommandError`
with exit code 2.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bicimad.errors import CommandError


@dataclass(frozen=True)
class TrainResult:
    """What a training call did."""

    out: Path
    """run folder (checkpoint.pt, metrics.csv, learning_curve.png)"""
    algo: str
    env_id: str
    config: Any
    """the run's full config (a ``CommonConfig`` subclass)"""
    global_step: int
    """environment steps trained so far, over all calls"""
    finished: bool
    """True when the run reached its total steps (False after ``stop_after``)"""


@dataclass(frozen=True)
class EvalResult:
    """Returns of whole episodes played by a trained run."""

    run_dir: Path
    returns: Any
    """numpy array, one raw return per episode"""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def _at_least_one(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise CommandError(f"{name} must be at least 1, got {value}")


def train(env_id: str, *, algo: str = "ppo", out: str | Path, total_steps: int | None = None, seed: int = 1,
          num_envs: int | None = None, overrides: dict[str, Any] | None = None, resume: bool = False,
          stop_after: int | None = None, progress: bool = True) -> TrainResult:
    """Train ``algo`` on ``env_id`` into ``out`` (or, with ``resume``, continue the run there).

    Defaults are the preset for the env (see :data:`bicimad.rl.presets.PRESETS`); ``total_steps``,
    ``num_envs`` and ``overrides`` (config field -> value) replace them. On resume only
    ``total_steps`` may change (it extends or shortens the run; the LR schedule follows).
    ``stop_after`` checkpoints and returns after that many steps of this call.
    """
    import gymnasium as gym

    from bicimad.rl.checkpoints import CheckpointError
    from bicimad.rl.core import CHECKPOINT
    from bicimad.rl.envs import RomNotFoundError
    from bicimad.rl.runs import ALGORITHMS, load_checkpoint, load_config, make_config

    out = Path(out)
    _at_least_one("--total-steps", total_steps)
    _at_least_one("--stop-after", stop_after)
    _at_least_one("--num-envs", num_envs)
    if algo not in ALGORITHMS:
        raise CommandError(f"unknown algorithm {algo!r}: choose from {sorted(ALGORITHMS)}")
    if resume:
        try:
            saved_algo, config = load_config(out)
        except (FileNotFoundError, CheckpointError) as exc:
            raise CommandError(str(exc)) from exc
        if saved_algo != algo or config.env_id != env_id:
            raise CommandError(f"{out} holds a {saved_algo} run on {config.env_id}, not {algo} on {env_id}")
        if total_steps is not None:
            config.total_steps = total_steps
    else:
        if (out / CHECKPOINT).exists():
            raise CommandError(f"{out} already holds a run: use --resume to continue it, or another --out")
        values = dict(overrides or {})
        for field, value in (("total_steps", total_steps), ("num_envs", num_envs)):
            if value is not None:
                values[field] = value
        try:
            config = make_config(algo, env_id, seed=seed, **values)
        except (ValueError, TypeError) as exc:
            raise CommandError(str(exc)) from exc
    try:
        ALGORITHMS[algo][1](config, out, resume=resume, stop_after_steps=stop_after, progress=progress)
    except RomNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    except CheckpointError as exc:
        raise CommandError(str(exc)) from exc
    except gym.error.Error as exc:  # e.g. an unknown gymnasium id
        raise CommandError(f"environment {env_id!r}: {exc}") from exc
    global_step = int(load_checkpoint(out)["global_step"])
    return TrainResult(out=out, algo=algo, env_id=env_id, config=config, global_step=global_step,
                       finished=global_step >= config.num_iterations * config.batch_size)


def evaluate(run_dir: str | Path, *, episodes: int = 10, seed: int = 10_000,
             deterministic: bool = False) -> EvalResult:
    """Play ``episodes`` whole episodes with the trained agent of ``run_dir``."""
    from bicimad.rl.checkpoints import CheckpointError
    from bicimad.rl.runs import evaluate as play_run

    _at_least_one("--episodes", episodes)
    if seed < 0:
        raise CommandError(f"--seed must be at least 0, got {seed}")
    try:
        returns = play_run(run_dir, episodes, seed=seed, deterministic=deterministic)
    except (FileNotFoundError, CheckpointError) as exc:
        raise CommandError(str(exc)) from exc
    return EvalResult(run_dir=Path(run_dir), returns=returns)


# --- command line ---------------------------------------------------------------------------------

def register(subparsers) -> None:
    rl = subparsers.add_parser("rl", help="policy-gradient training and evaluation (REINFORCE, A2C, PPO)")
    sub = rl.add_subparsers(dest="rl_command", metavar="ACTION")
    rl.set_defaults(func=lambda args: rl.print_help() or 2)

    train_p = sub.add_parser("train", help="train an agent; writes checkpoint.pt, metrics.csv, learning_curve.png "
                                           "to --out")
    train_p.add_argument("--env", required=True, help="CartPole-v1, ALE/Pong-v5, retro/Airstriker-Genesis, "
                                                      "probe/chain ...")
    train_p.add_argument("--algo", choices=("reinforce", "a2c", "ppo"), default="ppo")
    train_p.add_argument("--total-steps", type=int, help="environment steps in all (default: the env's preset)")
    train_p.add_argument("--seed", type=int, default=1)
    train_p.add_argument("--out", required=True, help="run folder")
    train_p.add_argument("--num-envs", type=int, help="parallel envs (default: the env's preset)")
    train_p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                         help="any other config field, e.g. --set kl_penalty=true (repeatable)")
    train_p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train_p.add_argument("--stop-after", type=int, metavar="STEPS",
                         help="checkpoint and stop after this many steps (continue later with --resume)")
    train_p.set_defaults(func=run_train)

    ev = sub.add_parser("eval", help="play a trained run; prints mean and std of the episode return")
    ev.add_argument("run_dir", help="run folder written by `rl train`")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--seed", type=int, default=10_000, help="evaluation seed (default far from training seeds)")
    ev.add_argument("--deterministic", action="store_true", help="most likely action instead of sampling")
    ev.set_defaults(func=run_eval)


def parse_sets(items: list[str], algo: str) -> dict[str, Any]:
    """``FIELD=VALUE`` strings → overrides (JSON values, bare strings kept as strings for the
    config's own type check to refuse or accept)."""
    import dataclasses

    from bicimad.rl.runs import ALGORITHMS

    if algo not in ALGORITHMS:
        raise CommandError(f"unknown algorithm {algo!r}: choose from {sorted(ALGORITHMS)}")
    fields = {f.name for f in dataclasses.fields(ALGORITHMS[algo][0])}
    overrides = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or field not in fields:
            raise CommandError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        try:
            overrides[field] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[field] = raw
    return overrides


def run_train(args: argparse.Namespace) -> int:
    result = train(args.env, algo=args.algo, out=args.out, total_steps=args.total_steps, seed=args.seed,
                   num_envs=args.num_envs, overrides=parse_sets(args.set, args.algo), resume=args.resume,
                   stop_after=args.stop_after)
    print(f"run written to {result.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    result = evaluate(args.run_dir, episodes=args.episodes, seed=args.seed, deterministic=args.deterministic)
    returns = result.returns
    print(f"return over {len(returns)} episodes: mean {result.mean:.2f} std {result.std:.2f} "
          f"(min {returns.min():.2f}, max {returns.max():.2f})")
    return 0
