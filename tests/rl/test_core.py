"""Advantage estimation, rollout bookkeeping and the action distribution."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from bicimad.rl.agents import MultiCategorical, make_agent
from bicimad.rl.core import (
    CommonConfig,
    MetricsLogger,
    Run,
    clip_grad_norm,
    compute_gae,
    explained_variance,
    linear_schedule,
    plot_learning_curve,
)


def test_gae_matches_hand_computation_with_termination_and_truncation():
    gamma, lam = 0.9, 0.8
    # One env, four steps: episode A ends terminated at t=1; episode B is truncated at t=2
    # (its reward already holds the bootstrap gamma * V(final) = 0.9 * 10); t=3 starts episode C.
    rewards = np.array([[1.0], [2.0], [0.5 + 0.9 * 10.0], [1.0]], np.float32)
    values = np.array([[3.0], [4.0], [5.0], [6.0]], np.float32)
    dones = np.array([[0.0], [1.0], [1.0], [0.0]], np.float32)
    last_value = np.array([7.0], np.float32)
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma, lam)

    d3 = 1.0 + gamma * 7.0 - 6.0                 # bootstrapped from the value after the rollout
    d2 = (0.5 + 9.0) - 5.0                       # truncated: bootstrap is inside the reward only
    d1 = 2.0 - 4.0                               # terminated: no bootstrap
    d0 = 1.0 + gamma * 4.0 - 3.0
    expected = [d0 + gamma * lam * d1, d1, d2, d3]
    np.testing.assert_allclose(adv[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(ret, adv + values, rtol=1e-6)


def test_gae_with_lambda_one_gives_discounted_monte_carlo_returns():
    rewards = np.ones((5, 2), np.float32)
    dones = np.zeros((5, 2), np.float32)
    dones[4, :] = 1.0
    values = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    _, ret = compute_gae(rewards, values, dones, np.array([100.0, 100.0], np.float32), 0.5, 1.0)
    expected = [sum(0.5 ** k for k in range(5 - t)) for t in range(5)]
    np.testing.assert_allclose(ret[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(ret[:, 1], expected, rtol=1e-6)


def test_truncated_step_reward_is_bootstrapped_with_value_of_final_observation(tmp_path):
    # probe/chain truncates after 15 steps; a policy that always moves left never terminates.
    config = CommonConfig(env_id="probe/chain", num_envs=1, num_steps=20, gamma=0.9, total_steps=20)

    def always_left(obs_space, action_space):
        agent = make_agent(obs_space, action_space)
        with torch.no_grad():
            agent.actor[-1].bias.copy_(torch.tensor([50.0, -50.0]))
        return agent

    run = Run("test", config, tmp_path, make_agent=always_left, progress=False)
    optimizer = torch.optim.Adam(run.agent.parameters())
    run.restore(optimizer, linear_schedule(optimizer, 1, anneal=False), {}, resume=False)
    run.collect_rollout()
    dones = run.buffer.dones[:, 0].numpy()
    assert np.flatnonzero(dones).tolist() == [14]          # the truncation step only
    at_start = torch.zeros((1, 5))
    at_start[0, 0] = 1.0                                     # the final observation: still at cell 0
    bootstrap = 0.9 * run.agent.get_value(at_start).item()
    assert run.buffer.rewards[14, 0].item() == pytest.approx(bootstrap, rel=1e-5)
    assert bootstrap != 0.0
    assert run.buffer.rewards[13, 0].item() == 0.0


def test_masking_never_samples_an_invalid_action():
    gen = torch.Generator().manual_seed(3)
    nvec = (4, 3, 5)
    for _ in range(50):
        logits = torch.randn((64, sum(nvec)), generator=gen) * 5
        mask = torch.rand((64, sum(nvec)), generator=gen) < 0.4
        offset = 0
        for n in nvec:  # at least one valid choice per component
            forced = torch.randint(n, (64,), generator=gen)
            mask[torch.arange(64), offset + forced] = True
            offset += n
        dist = MultiCategorical(logits, nvec, mask)
        for action in (dist.sample(), dist.mode()):
            offsets = torch.tensor([0, 4, 7])
            chosen = mask.gather(1, action + offsets)
            assert bool(chosen.all())
        assert torch.isfinite(dist.log_prob(dist.sample())).all()


def test_multicategorical_agrees_with_torch_categorical_without_mask():
    torch.manual_seed(0)
    logits = torch.randn(10, 5)
    ours = MultiCategorical(logits, (2, 3))
    action = ours.sample()
    reference = [torch.distributions.Categorical(logits=logits[:, :2]),
                 torch.distributions.Categorical(logits=logits[:, 2:])]
    expected_lp = reference[0].log_prob(action[:, 0]) + reference[1].log_prob(action[:, 1])
    expected_ent = reference[0].entropy() + reference[1].entropy()
    torch.testing.assert_close(ours.log_prob(action), expected_lp)
    torch.testing.assert_close(ours.entropy(), expected_ent)


def test_masked_choices_add_no_entropy():
    logits = torch.zeros(1, 4)
    mask = torch.tensor([[True, True, False, False]])
    assert MultiCategorical(logits, (4,), mask).entropy().item() == pytest.approx(np.log(2), rel=1e-6)


def test_explained_variance():
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(np.full(4, target.mean()), target) == pytest.approx(0.0)


def test_default_agent_shapes():
    box = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    agent = make_agent(box, gym.spaces.Discrete(6))
    obs = torch.zeros((2, 4, 84, 84), dtype=torch.uint8)
    action, logprob, entropy, value = agent.get_action_and_value(obs)
    assert action.shape == (2, 1) and logprob.shape == entropy.shape == value.shape == (2,)
    with pytest.raises(TypeError, match="MultiBinary"):
        make_agent(gym.spaces.Box(-1, 1, (3,)), gym.spaces.MultiBinary(3))


def test_numpy_rollout_policy_matches_torch_and_respects_masks():
    torch.manual_seed(0)
    agent = make_agent(gym.spaces.Box(-1, 1, (6,)), gym.spaces.MultiDiscrete([4, 3]))
    policy = agent.numpy_policy()
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(256, 6)).astype(np.float32)
    mask = rng.random((256, 7)) < 0.5
    mask[:, 0] = mask[:, 4] = True
    action, log_prob, value = policy(obs, mask, rng)
    assert np.take_along_axis(mask, action + np.array([0, 4]), 1).all()
    with torch.no_grad():
        _, lp, _, v = agent.get_action_and_value(torch.as_tensor(obs), torch.as_tensor(action), torch.as_tensor(mask))
    np.testing.assert_allclose(log_prob, lp.numpy(), atol=1e-5)
    np.testing.assert_allclose(value, v.numpy(), atol=1e-5)
    # Sampled frequencies follow the policy: the first component's choices, unmasked, one state.
    many = np.repeat(obs[:1], 20_000, axis=0)
    sampled, _, _ = policy(many, None, rng)
    with torch.no_grad():
        probs = agent.distribution(torch.as_tensor(obs[:1])).log_probs.exp()[0, 0].numpy()
    np.testing.assert_allclose(np.bincount(sampled[:, 0], minlength=4) / 20_000, probs, atol=0.015)


class _MaskMethod(gym.Wrapper):
    """The masked probe, its mask offered by a method instead of the info dict."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        info.pop("action_mask")
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.pop("action_mask")
        return obs, reward, terminated, truncated, info

    def action_masks(self):
        return self.env.unwrapped._mask.copy()


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_mask_sources_in_process_and_subprocess_envs(tmp_path, vector_cls):
    from bicimad.rl.envs import make_env

    sync = vector_cls is gym.vector.SyncVectorEnv
    fns = [(lambda: _MaskMethod(make_env("probe/masked"))) if sync else (lambda: make_env("CartPole-v1"))] * 2
    envs = vector_cls(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    config = CommonConfig(env_id="probe/masked" if sync else "CartPole-v1", num_envs=2, num_steps=32, total_steps=64)
    run = Run("test", config, tmp_path, envs=envs, progress=False)
    optimizer = torch.optim.Adam(run.agent.parameters())
    run.restore(optimizer, linear_schedule(optimizer, 1, anneal=False), {}, resume=False)
    run.collect_rollout()
    if sync:   # masks came from the method and were obeyed
        masks, actions = run.buffer.arrays["masks"], run.buffer.arrays["actions"]
        assert np.take_along_axis(masks, actions + np.array([0, 4]), -1).all()
        assert not masks.all()
    else:      # no mask anywhere: subprocess workers were not asked for a missing method
        assert run.buffer.masks is None
    envs.close()


def test_learning_curve_has_a_panel_per_episode_extra(tmp_path):
    import matplotlib.image

    def curve(out, extras: bool):
        out.mkdir()
        logger = MetricsLogger(out)
        for step in range(1, 41):
            logger.log(step * 10, {"charts/episodic_return": -step})
            if extras:
                logger.log(step * 10, {"episode/problem_share": 0.3 - step / 400})
        logger.close()
        return matplotlib.image.imread(plot_learning_curve(out, "probe"))

    plain, with_share = curve(tmp_path / "a", False), curve(tmp_path / "b", True)
    # One panel of 3 inches more at 100 dpi.
    assert with_share.shape[0] - plain.shape[0] == 300
    assert with_share.shape[1] == plain.shape[1]


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.DISABLED])
def test_run_refuses_a_vector_env_with_another_autoreset_mode(tmp_path, mode):
    from bicimad.rl.envs import make_env

    envs = gym.vector.SyncVectorEnv([lambda: make_env("CartPole-v1")], autoreset_mode=mode)
    config = CommonConfig(num_envs=1, num_steps=8, total_steps=8)
    with pytest.raises(ValueError, match=f"SyncVectorEnv auto-resets in mode {mode.name}.*SAME_STEP"):
        Run("test", config, tmp_path, envs=envs, progress=False)
    envs.close()


def test_config_fields_are_type_and_range_checked():
    from bicimad.rl.ppo import PPOConfig

    for field, value, message in [("num_envs", 0, "num_envs must be at least 1"),
                                  ("num_steps", 0, "num_steps must be at least 1"),
                                  ("learning_rate", "abc", "learning_rate must be a finite number"),
                                  ("gamma", float("nan"), "gamma must be a finite number"),
                                  ("gamma", 1.5, "gamma must be between 0 and 1"),
                                  ("num_envs", 2.5, "num_envs must be an integer"),
                                  ("anneal_lr", 1, "anneal_lr must be true or false"),
                                  ("target_kl", -0.1, "target_kl must be positive")]:
        with pytest.raises(ValueError, match=message):
            PPOConfig(**{field: value})
    assert PPOConfig(learning_rate=1).learning_rate == 1.0 and PPOConfig(target_kl=None).target_kl is None


def _tensorboard_scalars(tb_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_events_hold_the_csv_metrics_under_namespaced_keys(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from bicimad.rl.core import read_metrics
    from bicimad.rl.runs import ALGORITHMS, make_config

    config = make_config("ppo", "probe/chain", total_steps=2048, seed=3, num_envs=2, num_steps=64,
                         checkpoint_every=4)
    # An interrupted run: it logged up to step 2048, but its last checkpoint is from step 1024.
    ALGORITHMS["ppo"][1](config, tmp_path / "half", stop_after_steps=1024, progress=False)
    run = tmp_path / "run"
    ALGORITHMS["ppo"][1](config, run, progress=False)
    (run / "checkpoint.pt").write_bytes((tmp_path / "half" / "checkpoint.pt").read_bytes())
    ALGORITHMS["ppo"][1](config, run, resume=True, progress=False)
    scalars = _tensorboard_scalars(run / "tb")
    for key in ("charts/episodic_return", "charts/episodic_length", "charts/learning_rate", "charts/SPS",
                "charts/clip_range", "losses/value_loss", "losses/policy_loss", "losses/entropy",
                "losses/approx_kl", "losses/clipfrac", "losses/explained_variance"):
        steps, values = read_metrics(run, key)
        assert len(steps) > 0 and steps.max() > 1024, key
        logged = scalars[key]
        assert [step for step, _ in logged] == steps.tolist(), key   # one event per CSV row, no duplicates
        np.testing.assert_allclose([value for _, value in logged], values, rtol=1e-5, err_msg=key)
    assert not [key for key in scalars if key.startswith("train/")]


@pytest.mark.parametrize("scale", [1e-3, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(scale):
    torch.manual_seed(0)
    ours = make_agent(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    ref = make_agent(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    for a, b in zip(ours.parameters(), ref.parameters()):
        a.grad = torch.randn_like(a) * scale
        b.grad = a.grad.clone()
    norm = clip_grad_norm(ours.parameters(), 0.5)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
    torch.testing.assert_close(norm, ref_norm)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours.parameters()]))
    assert after <= 0.5 + 1e-5 and (scale < 0.01) == bool(torch.isclose(after, norm))
