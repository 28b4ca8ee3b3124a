"""``bicimad rl train|eval``: train REINFORCE, A2C or PPO on a gymnasium, Atari or retro env,
and evaluate a trained run."""

from __future__ import annotations

import argparse
import json

from bicimad.errors import CommandError


def register(subparsers) -> None:
    rl = subparsers.add_parser("rl", help="policy-gradient training and evaluation (REINFORCE, A2C, PPO)")
    sub = rl.add_subparsers(dest="rl_command", metavar="ACTION")
    rl.set_defaults(func=lambda args: rl.print_help() or 2)

    train = sub.add_parser("train", help="train an agent; writes checkpoint.pt, metrics.csv, learning_curve.png to --out")
    train.add_argument("--env", required=True, help="CartPole-v1, ALE/Pong-v5, retro/Airstriker-Genesis, probe/chain ...")
    train.add_argument("--algo", choices=("reinforce", "a2c", "ppo"), default="ppo")
    train.add_argument("--total-steps", type=int, help="environment steps in all (default: the algorithm's)")
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--num-envs", type=int, help="parallel envs (default: the algorithm's)")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="any other config field, e.g. --set kl_penalty=true (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.add_argument("--stop-after", type=int, metavar="STEPS",
                       help="checkpoint and stop after this many steps (continue later with --resume)")
    train.set_defaults(func=run_train)

    ev = sub.add_parser("eval", help="play a trained run; prints mean and std of the episode return")
    ev.add_argument("run_dir", help="run folder written by `rl train`")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--seed", type=int, default=10_000, help="evaluation seed (default far from training seeds)")
    ev.add_argument("--deterministic", action="store_true", help="most likely action instead of sampling")
    ev.set_defaults(func=run_eval)


def _parse_sets(items: list[str], config_cls) -> dict:
    """``FIELD=VALUE`` strings → typed overrides (JSON values, bare strings allowed)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(config_cls)}
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
    from pathlib import Path

    import gymnasium as gym

    from bicimad.rl.checkpoints import CheckpointError
    from bicimad.rl.envs import RomNotFoundError
    from bicimad.rl.runs import ALGORITHMS, load_config, make_config

    out = Path(args.out)
    if args.resume:
        try:
            algo, config = load_config(out)
        except (FileNotFoundError, CheckpointError) as exc:
            raise CommandError(str(exc)) from exc
        if algo != args.algo or config.env_id != args.env:
            raise CommandError(f"{out} holds a {algo} run on {config.env_id}, not {args.algo} on {args.env}")
        if args.total_steps is not None:
            config.total_steps = args.total_steps  # extends (or shortens) the run; the LR schedule follows
    else:
        if (out / "checkpoint.pt").exists():
            raise CommandError(f"{out} already holds a run: use --resume to continue it, or another --out")
        overrides = _parse_sets(args.set, ALGORITHMS[args.algo][0])
        for field, value in (("total_steps", args.total_steps), ("num_envs", args.num_envs)):
            if value is not None:
                overrides[field] = value
        try:
            config = make_config(args.algo, args.env, seed=args.seed, **overrides)
        except (ValueError, TypeError) as exc:
            raise CommandError(str(exc)) from exc
    try:
        ALGORITHMS[args.algo][1](config, out, resume=args.resume, stop_after_steps=args.stop_after)
    except RomNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    except gym.error.Error as exc:  # e.g. an unknown gymnasium id
        raise CommandError(f"environment {args.env!r}: {exc}") from exc
    print(f"run written to {out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from bicimad.rl.checkpoints import CheckpointError
    from bicimad.rl.runs import evaluate

    if args.episodes < 1:
        raise CommandError("--episodes must be at least 1")
    try:
        returns = evaluate(args.run_dir, args.episodes, seed=args.seed, deterministic=args.deterministic)
    except (FileNotFoundError, CheckpointError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"return over {len(returns)} episodes: mean {returns.mean():.2f} std {returns.std():.2f} "
          f"(min {returns.min():.2f}, max {returns.max():.2f})")
    return 0
