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

Presets: ``bicimad rl train`` and :func:`bicimad.rl.runs.make_config` take their defaults from
:mod:`bicimad.rl.presets` (per env, with their sources).

Metrics: ``metrics.csv`` in the run folder, and TensorBoard event files in ``tb/`` when the
``tensorboard`` extra is installed (``pip install 'bicimad[tensorboard]'``;
``tensorboard --logdir DIR/tb``), under CleanRL's keys (see :class:`~bicimad.rl.core.MetricsLogger`).

Checkpoints and resume (``--stop-after`` / ``--resume``). ``checkpoint.pt`` holds tensors and plain
values only and is read with ``torch.load(weights_only=True)``; anything else is refused
(:mod:`bicimad.rl.checkpoints`). A resume always restores: the agent's weights, the optimiser's
state (Adam moments, step counts), the LR schedule, PPO's KL-penalty beta, the iteration and step
counters, python's, numpy's and torch's global RNGs and the rollout RNG, and the metrics (rows
and TensorBoard events logged after the checkpoint are dropped).

* In-process envs without an emulator (classic control, probes, any gymnasium env in a
  ``SyncVectorEnv`` whose state lives in plain attributes): their state is restored too (each
  wrapper's and the env's numbers, arrays and RNGs, and the pending observation), so a stopped
  and resumed run gives the same weights as one that never stopped.
* Atari (ALE) and retro runs: the emulators' state is **not** saved, so on resume every env
  starts a new game, seeded by the seed and the step reached. What is lost: the games in
  progress at the checkpoint (their partial returns are never logged as episodes), the frame
  stacks, no-op and life counters of the wrappers, and the episode-statistics accumulators.
  Everything in the list above is restored, so training continues from the same weights,
  optimiser and schedule; the run is not bit-identical to an uninterrupted one.
* Vector envs of other kinds (subprocess ``AsyncVectorEnv``, custom vector envs such as the
  fleet env) are treated as the emulators: reset on resume with the same derived seeds.
"""
