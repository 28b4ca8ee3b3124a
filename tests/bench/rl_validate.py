"""Validation of the policy-gradient cores against Stable-Baselines3 and random play.

Each invocation trains one (implementation, algorithm, env, seed) with the same budget and
hyperparameters on both sides, evaluates the final policy on held-out seeds and appends one
JSON line to ``OUT/results.jsonl``; ``report`` prints the markdown tables of BENCHMARKS.md.

    python tests/bench/rl_validate.py train --impl ours --algo ppo --env CartPole-v1 --steps 500000 --seed 1 --out /tmp/rlval
    python tests/bench/rl_validate.py train --impl sb3  --algo ppo --env CartPole-v1 --steps 500000 --seed 1 --out /tmp/rlval
    python tests/bench/rl_validate.py random --env ALE/Breakout-v5 --episodes 10 --out /tmp/rlval
    python tests/bench/rl_validate.py report --out /tmp/rlval

Both sides run single-threaded torch (``--threads 1``, our default; ``--threads 0`` keeps
SB3's own default, all cores) on the same machine, and are
evaluated with the same wrappers (ours, from ``bicimad.rl.envs``) over the same seeds, sampling
actions from the policy. REINFORCE has no SB3 counterpart: SB3's A2C is configured to match it
(lambda 1, 4 envs × 128 steps, Adam, one step per rollout).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bicimad.rl.core import read_metrics
from bicimad.rl.envs import make_env, make_vector_env
from bicimad.rl.runs import ALGORITHMS, evaluate, make_config, play

EVAL_SEED = 10_000


def train_ours(algo: str, env_id: str, steps: int, seed: int, run_dir: Path) -> dict:
    config = make_config(algo, env_id, total_steps=steps, seed=seed)
    cpu = time.process_time()
    ALGORITHMS[algo][1](config, run_dir, progress=False)
    cpu = time.process_time() - cpu
    # Wall time as the run measured it: from envs built to the last update.
    _, sps = read_metrics(run_dir, "charts/SPS")
    seconds = config.num_iterations * config.batch_size / sps[-1]
    steps_done, returns = read_metrics(run_dir, "charts/episodic_return")
    return {"seconds": seconds, "cpu": cpu, "curve": _curve(steps_done, returns, steps), "config": config}


def _curve(steps: np.ndarray, returns: np.ndarray, total: int, points: int = 10) -> list[float | None]:
    """Mean training return in each tenth of the run (return vs steps)."""
    edges = np.linspace(0, total, points + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = returns[(steps > lo) & (steps <= hi)]
        out.append(round(float(inside.mean()), 2) if len(inside) else None)
    return out


def train_sb3(algo: str, env_id: str, steps: int, seed: int, run_dir: Path):
    """The same algorithm and hyperparameters in SB3; returns (result dict, model)."""
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    config = make_config(algo, env_id, total_steps=steps, seed=seed)
    cpu = time.process_time()
    # SB3 trains on exactly our preprocessed env. Its monitor sits outside our wrappers, so on
    # Atari its training curve is per life with clipped rewards (ours: whole games, raw score);
    # the final evaluation, through our ``play``, is on the same scale for both.
    run_dir.mkdir(parents=True, exist_ok=True)
    monitor = run_dir / "monitor.csv"
    envs = VecMonitor(DummyVecEnv([lambda: make_env(env_id) for _ in range(config.num_envs)]), str(monitor))
    envs.seed(seed)
    image = env_id.startswith(("ALE/", "retro/"))
    policy = "CnnPolicy" if image else "MlpPolicy"
    lr = (lambda progress: progress * config.learning_rate) if config.anneal_lr else config.learning_rate
    common = dict(n_steps=config.num_steps, gamma=config.gamma, gae_lambda=config.gae_lambda,
                  ent_coef=config.ent_coef, vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm,
                  learning_rate=lr, seed=seed, verbose=0, device="cpu")
    if not image:
        common["policy_kwargs"] = {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh}
    if algo == "ppo":
        clip = (lambda progress: progress * config.clip_coef) if config.anneal_clip else config.clip_coef
        model = PPO(policy, envs, batch_size=config.batch_size // config.num_minibatches,
                    n_epochs=config.update_epochs, clip_range=clip,
                    clip_range_vf=clip if config.clip_vloss else None,
                    normalize_advantage=config.norm_adv, **common)
    elif algo == "a2c":
        model = A2C(policy, envs, normalize_advantage=config.norm_adv, rms_prop_eps=1e-5, **common)
    else:  # REINFORCE with baseline: A2C update over long rollouts, lambda 1, Adam
        common["policy_kwargs"] = dict(common.get("policy_kwargs", {}), optimizer_class=torch.optim.Adam,
                                       optimizer_kwargs={"eps": 1e-5})
        model = A2C(policy, envs, normalize_advantage=config.norm_adv, use_rms_prop=False, **common)
    start = time.perf_counter()
    model.learn(total_timesteps=config.num_iterations * config.batch_size)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    # The monitor lists episodes in completion order; summed lengths approximate the step reached.
    rows = np.genfromtxt(monitor, delimiter=",", skip_header=2, ndmin=2)
    curve = _curve(np.cumsum(rows[:, 1]), rows[:, 0], steps) if len(rows) else None
    return {"seconds": seconds, "cpu": cpu, "curve": curve, "config": config}, model


class SB3Agent:
    """An SB3 policy behind the interface our ``play`` uses (sampled actions)."""

    def __init__(self, model):
        self.model = model

    def get_action_and_value(self, obs, action=None, mask=None):
        act, _ = self.model.predict(obs.numpy(), deterministic=False)
        return torch.as_tensor(act).reshape(len(obs), -1), None, None, None


def cmd_train(args) -> None:
    out = Path(args.out)
    run_dir = out / f"{args.impl}_{args.algo}_{args.env.replace('/', '_')}_s{args.seed}"
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.impl == "ours":
        result = train_ours(args.algo, args.env, args.steps, args.seed, run_dir)
        returns = evaluate(run_dir, args.episodes, seed=EVAL_SEED)
    else:
        result, model = train_sb3(args.algo, args.env, args.steps, args.seed, run_dir)
        returns = play(SB3Agent(model), make_vector_env(args.env, 1, EVAL_SEED), args.episodes, EVAL_SEED)
    config = result.pop("config")
    steps_done = config.num_iterations * config.batch_size
    record = {"impl": args.impl, "threads": torch.get_num_threads(), "algo": args.algo, "env": args.env, "seed": args.seed, "steps": steps_done,
              "seconds": round(result["seconds"], 1), "sps": round(steps_done / result["seconds"], 1),
              "cpu_seconds": round(result["cpu"], 1), "sps_cpu": round(steps_done / result["cpu"], 1),
              "eval_mean": float(returns.mean()), "eval_std": float(returns.std()), "episodes": len(returns),
              "curve": result.get("curve")}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record))


def cmd_random(args) -> None:
    torch.set_num_threads(1)
    returns = play(None, make_vector_env(args.env, 1, EVAL_SEED), args.episodes, EVAL_SEED)
    record = {"impl": "random", "algo": "-", "env": args.env, "seed": EVAL_SEED, "steps": 0, "seconds": 0, "sps": None,
              "eval_mean": float(returns.mean()), "eval_std": float(returns.std()), "episodes": len(returns),
              "curve": None}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record))


def cmd_report(args) -> None:
    rows = [json.loads(line) for line in open(Path(args.out) / "results.jsonl")]
    print("| env | algo | impl | threads | seed | steps | wall s | CPU s | steps per CPU s | eval return (mean ± std, n) | train return by tenth of run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        curve = " ".join("-" if v is None else f"{v:g}" for v in r["curve"]) if r["curve"] else ""
        print(f"| {r['env']} | {r['algo']} | {r['impl']} | {r.get('threads', '')} | {r['seed']} | {r['steps']} | {r['seconds']} | "
              f"{r.get('cpu_seconds', '')} | {r.get('sps_cpu', '')} | {r['eval_mean']:.1f} ± {r['eval_std']:.1f} ({r['episodes']}) | {curve} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    train = sub.add_parser("train")
    train.add_argument("--impl", choices=("ours", "sb3"), required=True)
    train.add_argument("--algo", choices=sorted(ALGORITHMS), required=True)
    train.add_argument("--env", required=True)
    train.add_argument("--steps", type=int, required=True)
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--episodes", type=int, default=20)
    train.add_argument("--threads", type=int, default=1, help="torch threads (0: the library's default)")
    train.add_argument("--out", required=True)
    train.set_defaults(func=cmd_train)
    rand = sub.add_parser("random")
    rand.add_argument("--env", required=True)
    rand.add_argument("--episodes", type=int, default=20)
    rand.add_argument("--out", required=True)
    rand.set_defaults(func=cmd_random)
    report = sub.add_parser("report")
    report.add_argument("--out", required=True)
    report.set_defaults(func=cmd_report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
