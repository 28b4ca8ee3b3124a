"""Each algorithm learns the optimum of tiny probe envs; PPO's first ratio is 1; resume is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bicimad.rl.core import read_metrics
from bicimad.rl.probes import OPTIMAL_RETURN
from bicimad.rl.runs import ALGORITHMS, evaluate, load_checkpoint, make_config

# (algorithm, probe, steps): budgets a few times what each needs with these seeds.
PROBE_CASES = [
    ("ppo", "contextual", 4096), ("ppo", "chain", 20_000), ("ppo", "masked", 8192),
    ("a2c", "contextual", 4096), ("a2c", "chain", 20_000), ("a2c", "masked", 8192),
    ("reinforce", "contextual", 4096), ("reinforce", "chain", 20_000), ("reinforce", "masked", 8192),
]


@pytest.mark.parametrize("algo,probe,steps", PROBE_CASES)
def test_algorithm_solves_probe(tmp_path, algo, probe, steps):
    config = make_config(algo, f"probe/{probe}", total_steps=steps, seed=7)
    ALGORITHMS[algo][1](config, tmp_path, progress=False)
    returns = evaluate(tmp_path, 50, deterministic=True)
    assert returns.mean() == pytest.approx(OPTIMAL_RETURN[probe], abs=0.05)


def test_ppo_ratio_is_one_on_first_minibatch_and_metrics_are_logged(tmp_path):
    config = make_config("ppo", "CartPole-v1", total_steps=2048, seed=3)
    ALGORITHMS["ppo"][1](config, tmp_path, progress=False)
    _, deviation = read_metrics(tmp_path, "losses/first_ratio_max_dev")
    assert len(deviation) == config.num_iterations
    assert deviation.max() < 1e-5
    for key in ("losses/approx_kl", "losses/clipfrac", "losses/explained_variance", "charts/episodic_return",
                "charts/learning_rate", "charts/SPS"):
        assert len(read_metrics(tmp_path, key)[0]) > 0, key
    _, lr = read_metrics(tmp_path, "charts/learning_rate")
    assert lr[0] < config.learning_rate and np.all(np.diff(lr) < 0)  # annealed every iteration
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    # CartPole reports nothing per episode beyond return and length: no episode/* extras (the
    # vector env's masks of the episode statistics are not numbers to log).
    with open(tmp_path / "metrics.csv") as f:
        assert not [line for line in f if ",episode/" in line]


def test_kl_penalty_adapts_beta_towards_the_target(tmp_path):
    target = 1e-4
    config = make_config("ppo", "CartPole-v1", total_steps=4096, seed=3, kl_penalty=True, kl_target=target)
    ALGORITHMS["ppo"][1](config, tmp_path, progress=False)
    _, kl = read_metrics(tmp_path, "losses/approx_kl")
    _, beta = read_metrics(tmp_path, "charts/kl_beta")
    previous = np.concatenate([[config.kl_beta], beta[:-1]])
    expected = previous * np.where(kl > 1.5 * target, 2.0, np.where(kl < target / 1.5, 0.5, 1.0))
    np.testing.assert_allclose(beta, expected)
    assert len(set(beta)) > 1  # it did adapt


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, algo):
    config = make_config(algo, "CartPole-v1", total_steps=3072, seed=5)
    train = ALGORITHMS[algo][1]
    train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "split", stop_after_steps=1024, progress=False)
    assert load_checkpoint(tmp_path / "split")["global_step"] < config.total_steps
    train(config, tmp_path / "split", resume=True, progress=False)

    whole, split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    assert whole["global_step"] == split["global_step"] == config.num_iterations * config.batch_size
    for name, tensor in whole["agent"].items():
        torch.testing.assert_close(split["agent"][name], tensor, rtol=0, atol=0)
    for key in ("charts/episodic_return", "losses/value_loss"):
        np.testing.assert_array_equal(read_metrics(tmp_path / "whole", key)[1], read_metrics(tmp_path / "split", key)[1])


def test_resume_without_checkpoint_is_an_error(tmp_path):
    config = make_config("ppo", "CartPole-v1", total_steps=512)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        ALGORITHMS["ppo"][1](config, tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_ppo_solves_cartpole_within_budget(tmp_path):
    config = make_config("ppo", "CartPole-v1", total_steps=500_000, seed=1)
    ALGORITHMS["ppo"][1](config, tmp_path, progress=False)
    assert evaluate(tmp_path, 20).mean() >= 475
