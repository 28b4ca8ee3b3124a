"""Agents: the policy/value networks the algorithms train, and the extension point for new ones.

Every algorithm talks to its agent through :class:`Agent` only, so a new observation or action
structure needs a new agent, not a new algorithm. To train your own (for example a fleet policy
whose parameters are shared across trucks), write a ``torch.nn.Module`` with the two methods of
:class:`Agent` and pass a factory ``make_agent(obs_space, action_space) -> Agent`` to the
algorithm's ``train(..., make_agent=...)``.

Actions are always a vector of categorical choices: ``Discrete(n)`` is treated as
``MultiDiscrete([n])``, so one distribution class, :class:`MultiCategorical`, serves both.
Invalid-action masks follow the flat convention: a boolean vector of length ``sum(nvec)``,
the valid choices of each component one after another (True = allowed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@runtime_checkable
class Agent(Protocol):
    """What the algorithms need from a policy: sampled actions, their log-probability and a value."""

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values, shape ``(batch,)``."""
        ...

    def get_action_and_value(
        self, obs: torch.Tensor, action: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(action, log_prob, entropy, value)``; samples an action unless ``action`` is given.

        ``action`` has shape ``(batch, len(nvec))`` (int64); ``mask`` is ``(batch, sum(nvec))``
        bool or None; ``log_prob``, ``entropy`` and ``value`` are ``(batch,)``.
        """
        ...


AgentFactory = Callable[[gym.Space, gym.Space], Agent]

#: Optional fast path: an agent may define ``numpy_policy()`` returning a :data:`NumpyPolicy`, a
#: snapshot of its current weights that maps ``(obs, mask, rng)`` to numpy
#: ``(action (batch, k), log_prob (batch,), value (batch,))``. Rollouts then run without torch,
#: whose per-call overhead dominates for small networks; training still uses torch.
NumpyPolicy = Callable[[np.ndarray, "np.ndarray | None", np.random.Generator],
                       tuple[np.ndarray, np.ndarray, np.ndarray]]


class MultiCategorical:
    """Independent categorical choices over ``nvec`` with optional invalid-action masking.

    Logits of all components live in one padded ``(batch, k, max(nvec))`` tensor so sampling,
    log-probabilities and entropy are single batched operations, however many components.
    Masked-out logits are set to a large negative number: their probability is exactly zero
    in float32, so they are never sampled, and they add nothing to the entropy.
    """

    def __init__(self, flat_logits: torch.Tensor, nvec: tuple[int, ...], mask: torch.Tensor | None = None):
        batch, k, width = flat_logits.shape[0], len(nvec), max(nvec)
        if all(n == width for n in nvec):  # no padding needed (always so for Discrete)
            logits = flat_logits.reshape(batch, k, width)
            if mask is not None:
                logits = logits.masked_fill(~mask.to(torch.bool).reshape(batch, k, width), -1e9)
        else:
            valid = _padding_mask(nvec, flat_logits.device)            # (k, width)
            logits = flat_logits.new_full((batch, k, width), -1e9)
            logits[:, valid] = flat_logits
            if mask is not None:
                allowed = torch.zeros((batch, k, width), dtype=torch.bool, device=flat_logits.device)
                allowed[:, valid] = mask.to(torch.bool)
                logits = logits.masked_fill(~allowed, -1e9)
        self.log_probs = torch.log_softmax(logits, dim=-1)              # (batch, k, width)

    def sample(self) -> torch.Tensor:
        # One multinomial draw over all (batch, component) rows; masked choices have probability 0.
        batch, k, width = self.log_probs.shape
        return torch.multinomial(self.log_probs.exp().reshape(batch * k, width), 1).reshape(batch, k)

    def mode(self) -> torch.Tensor:
        return torch.argmax(self.log_probs, dim=-1)

    def log_prob(self, action: torch.Tensor) -> torch.Tensor:
        return self.log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        probs = self.log_probs.exp()
        return -(probs * self.log_probs).sum((-1, -2))


_PADDING_CACHE: dict[tuple, torch.Tensor] = {}


def _padding_mask(nvec: tuple[int, ...], device) -> torch.Tensor:
    """``(k, max(nvec))`` bool: which cells of the padded logit tensor are real choices."""
    key = (nvec, str(device))
    if key not in _PADDING_CACHE:
        width = max(nvec)
        with torch.inference_mode(False):  # cached: must be usable under autograd later
            _PADDING_CACHE[key] = torch.arange(width, device=device)[None, :] < torch.tensor(nvec, device=device)[:, None]
    return _PADDING_CACHE[key]


def sample_numpy(logits: np.ndarray, nvec: tuple[int, ...], mask: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The numpy twin of :class:`MultiCategorical`: ``(action (batch, k), summed log_prob (batch,))``."""
    batch, width = logits.shape[0], max(nvec)
    if all(n == width for n in nvec):
        padded = logits.reshape(batch, len(nvec), width)
        allowed = None if mask is None else mask.reshape(batch, len(nvec), width)
    else:
        valid = np.arange(width)[None, :] < np.array(nvec)[:, None]
        padded = np.full((batch, len(nvec), width), -1e9, np.float32)
        padded[:, valid] = logits
        allowed = np.zeros((batch, len(nvec), width), bool)
        allowed[:, valid] = True if mask is None else mask
    if allowed is not None:
        padded = np.where(allowed, padded, np.float32(-1e9))
    shifted = padded - padded.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    cdf = np.cumsum(np.exp(log_probs), -1)
    # First index whose cumulative probability exceeds u: zero-probability (masked) choices
    # never are, since their cumulative value equals the previous one.
    u = rng.random((batch, len(nvec), 1), dtype=np.float32) * cdf[..., -1:]
    action = (cdf > u).argmax(-1)
    log_prob = np.take_along_axis(log_probs, action[..., None], -1)[..., 0].sum(-1)
    return action, log_prob


def action_nvec(action_space: gym.Space) -> tuple[int, ...]:
    """The choice counts of a Discrete or MultiDiscrete space."""
    if isinstance(action_space, gym.spaces.Discrete):
        return (int(action_space.n),)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return tuple(int(n) for n in np.asarray(action_space.nvec).ravel())
    raise TypeError(f"unsupported action space {action_space!r}: use Discrete or MultiDiscrete")


def layer_init(layer: nn.Module, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std`` and constant bias (the PPO implementation detail)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class _CategoricalActorCritic(nn.Module):
    """Shared plumbing: subclasses set ``actor`` and ``critic`` heads and may override ``features``."""

    def __init__(self, nvec: tuple[int, ...]):
        super().__init__()
        self.nvec = nvec

    def distribution(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> MultiCategorical:
        return MultiCategorical(self.actor_logits(obs), self.nvec, mask)

    def get_action_and_value(self, obs, action=None, mask=None):
        hidden = self.features(obs)
        dist = MultiCategorical(self.actor(hidden), self.nvec, mask)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(hidden).squeeze(-1)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return obs

    def actor_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(self.features(obs))

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(obs)).squeeze(-1)


class MLPAgent(_CategoricalActorCritic):
    """Separate two-layer tanh MLPs for policy and value (the classic-control default)."""

    def __init__(self, obs_dim: int, nvec: tuple[int, ...], hidden: int = 64):
        super().__init__(nvec)
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
            layer_init(nn.Linear(hidden, sum(nvec)), std=0.01),
        )

    def features(self, obs):
        return obs.flatten(1).float()

    # The MLP paths call the functional ops directly: for networks this small, per-module call
    # overhead costs as much as the arithmetic, and rollouts call the agent once per step.
    @staticmethod
    def _mlp(x: torch.Tensor, net: nn.Sequential) -> torch.Tensor:
        first, _, second, _, head = net
        x = torch.tanh(F.linear(x, first.weight, first.bias))
        x = torch.tanh(F.linear(x, second.weight, second.bias))
        return F.linear(x, head.weight, head.bias)

    def get_action_and_value(self, obs, action=None, mask=None):
        x = self.features(obs)
        dist = MultiCategorical(self._mlp(x, self.actor), self.nvec, mask)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self._mlp(x, self.critic).squeeze(-1)

    def actor_logits(self, obs):
        return self._mlp(self.features(obs), self.actor)

    def numpy_policy(self) -> NumpyPolicy:
        """A numpy snapshot of the current weights for rollouts (see :data:`NumpyPolicy`)."""
        def weights(net):
            return [(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy())
                    for layer in net if isinstance(layer, nn.Linear)]

        actor, critic, nvec = weights(self.actor), weights(self.critic), self.nvec

        def mlp(x, layers):
            (w1, b1), (w2, b2), (w3, b3) = layers
            return np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2) @ w3 + b3

        def policy(obs, mask, rng):
            x = obs.reshape(len(obs), -1).astype(np.float32, copy=False)
            action, log_prob = sample_numpy(mlp(x, actor), nvec, mask, rng)
            return action, log_prob, mlp(x, critic)[:, 0]

        return policy

    def get_value(self, obs):
        return self._mlp(self.features(obs), self.critic).squeeze(-1)


class NatureCNNAgent(_CategoricalActorCritic):
    """The Nature DQN torso (3 convolutions, 512 units) shared by policy and value heads.

    Takes stacked uint8 frames ``(batch, 4, 84, 84)`` and scales them to [0, 1] itself.
    """

    def __init__(self, in_channels: int, nvec: tuple[int, ...]):
        super().__init__(nvec)
        self.network = nn.Sequential(
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * 7 * 7, 512)), nn.ReLU(),
        )
        self.actor = layer_init(nn.Linear(512, sum(nvec)), std=0.01)
        self.critic = layer_init(nn.Linear(512, 1), std=1.0)

    def features(self, obs):
        return self.network(obs.float() / 255.0)


def make_agent(obs_space: gym.Space, action_space: gym.Space) -> Agent:
    """The default agent: the Nature CNN for 84×84 frame stacks, else an MLP on flat observations."""
    nvec = action_nvec(action_space)
    if not isinstance(obs_space, gym.spaces.Box):
        raise TypeError(f"unsupported observation space {obs_space!r}: the default agents need a Box")
    if len(obs_space.shape) == 3 and obs_space.shape[1:] == (84, 84):
        return NatureCNNAgent(obs_space.shape[0], nvec)
    return MLPAgent(int(np.prod(obs_space.shape)), nvec)
