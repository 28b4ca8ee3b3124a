"""Policy-gradient cores (REINFORCE, A2C, PPO): generic, gymnasium and torch only.

Modules: ``core`` (rollout storage, GAE, metrics, checkpoints — shared), ``reinforce``, ``a2c``,
``ppo`` (one algorithm each, readable top to bottom), ``agents`` (the :class:`~bicimad.rl.agents.Agent`
protocol, masked multi-categorical actions, MLP and Nature CNN), ``envs`` (classic control, Atari,
retro, probes), ``runs`` (registry, presets, evaluation).

Training your own agent (e.g. a truck-fleet policy sharing parameters across trucks)::

    from bicimad.rl import ppo
    config = ppo.PPOConfig(num_envs=8, total_steps=2_000_000)
    ppo.train(config, "models/policies/run1", envs=my_vector_env, make_agent=my_factory)

``my_vector_env`` is any gymnasium ``VectorEnv`` with ``AutoresetMode.SAME_STEP`` whose
sub-envs record ``info["episode"]`` (``gymnasium.wrappers.RecordEpisodeStatistics``) and, for
masking, put a flat boolean ``info["action_mask"]`` (length ``sum(nvec)``) in every reset and
step info, or give the vector env (or, in-process, each sub-env) an ``action_masks()`` method. ``my_factory(obs_space, action_space)`` returns a
``torch.nn.Module`` with ``get_value(obs)`` and ``get_action_and_value(obs, action=None,
mask=None)``; build its action distribution with :class:`~bicimad.rl.agents.MultiCategorical`
to get masking and MultiDiscrete actions for free.
"""
