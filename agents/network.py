"""Observation tokens -> recursive core -> per-cycle features: the network every agent shares.

``TRMPolicy`` (SB3) reads the last cycle's features; the REINFORCE trainer applies its
action head to every cycle's features (deep supervision). Both feed observations that have
been through SB3's ``preprocess_obs`` (Discrete/MultiDiscrete one-hot, Box as float), so
one tokeniser serves both.
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces
from torch import Tensor, nn

from trm_rl.config import GRID_MIXERS, TRMConfig, require_choice, require_int
from trm_rl.core import CoreOutput, RecursiveCore

VECTOR_TOKENS = ("single", "per_feature")
POSITIONS = ("learned", "none")
"""Token positions: ``"learned"`` adds a learned vector per token (``[T, D]``, which ties the
network to one token count); ``"none"`` adds nothing (tokens are told apart by their content
and, on grids, by the conv mixer's zero padding), so a grid network's parameters do not
depend on the grid size."""


class ObservationTokenizer(nn.Module):
    """Preprocessed observations ``[B, ...]`` -> tokens ``[B, T, D]``.

    ========================  ==============================  ============================
    observation space         tokens                          embedding
    ========================  ==============================  ============================
    ``Box (C, H, W)``         one per cell, ``T = H * W``      ``Linear(C, D)`` + position
    ``Box (H, W)``            one per cell, ``T = H * W``      ``Linear(1, D)`` + position
    ``MultiDiscrete(nvec)``   one per entry, ``T = len(nvec)``  value one-hot ``Linear`` +
                                                              position
    ``Box (n,)``, ``MultiBinary(n)``  one (``"single"``) or    ``Linear(n, D)``, or
                              ``n`` (``"per_feature"``)       ``value * w_i + p_i``
    ``Discrete(n)``           one                             ``Linear(n, D)`` of the one-hot
    ========================  ==============================  ============================

    With ``positions="none"`` no position is added (:data:`POSITIONS`); the parameters of a
    grid tokeniser are then the same for every grid size ``H x W``.

    Attributes:
        n_tokens: T.
        grid_shape: ``(H, W)`` for grid observations (cell tokens in row-major order), else
            ``None``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        hidden_dim: int,
        vector_tokens: str = "single",
        positions: str = "learned",
    ) -> None:
        super().__init__()
        require_choice("vector_tokens", vector_tokens, VECTOR_TOKENS)
        require_choice("positions", positions, POSITIONS)
        self.positions = positions
        self.grid_shape: tuple[int, int] | None = None
        self.kind, self.n_tokens, in_width = self._layout(observation_space, vector_tokens)
        self.hidden_dim = hidden_dim
        if self.kind == "per_feature":
            self.value = nn.Parameter(torch.randn(self.n_tokens, hidden_dim))
        else:
            self.value = nn.Linear(in_width, hidden_dim, bias=self.kind == "vector")
            if self.kind != "vector":
                nn.init.trunc_normal_(self.value.weight, std=1.0)
        self.position = (
            nn.Parameter(0.5 * torch.randn(self.n_tokens, hidden_dim))
            if self.n_tokens > 1 and positions == "learned"
            else None
        )

    def _layout(self, space: spaces.Space, vector_tokens: str) -> tuple[str, int, int]:
        """(kind, tokens, input width per token) for a supported space."""
        if isinstance(space, spaces.Box) and len(space.shape) in (2, 3):
            channels = 1 if len(space.shape) == 2 else space.shape[0]
            height, width = space.shape[-2:]
            self.grid_shape = (height, width)
            return "grid", height * width, channels
        if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
            self.nvec = [int(n) for n in space.nvec]
            side = math.isqrt(len(self.nvec))
            if side * side == len(self.nvec):
                self.grid_shape = (side, side)
            return "categorical", len(self.nvec), max(self.nvec)
        if isinstance(space, spaces.Box | spaces.MultiBinary) and len(space.shape) == 1:
            size = int(space.shape[0])
            if vector_tokens == "per_feature":
                return "per_feature", size, 1
            return "vector", 1, size
        if isinstance(space, spaces.Discrete):
            return "vector", 1, int(space.n)
        raise TypeError(
            "observation_space must be Box (n,), (H, W) or (C, H, W), MultiDiscrete, "
            f"MultiBinary or Discrete, got {space}"
        )

    def forward(self, obs: Tensor) -> Tensor:
        """``obs [B, ...]`` (SB3-preprocessed) -> ``[B, T, D]``."""
        batch = obs.shape[0]
        if self.kind == "grid":
            cells = obs.reshape(batch, -1, self.n_tokens).transpose(1, 2)
            tokens = self.value(cells)
        elif self.kind == "categorical":
            tokens = self.value(self._one_hot_per_entry(obs))
        elif self.kind == "per_feature":
            tokens = obs.reshape(batch, self.n_tokens, 1) * self.value
        else:
            tokens = self.value(obs.reshape(batch, 1, -1))
        if self.position is not None:
            tokens = tokens + self.position
        return tokens

    def _one_hot_per_entry(self, obs: Tensor) -> Tensor:
        """Concatenated one-hots ``[B, sum(nvec)]`` -> ``[B, T, max(nvec)]`` (zero-padded)."""
        width = max(self.nvec)
        if all(n == width for n in self.nvec):
            return obs.reshape(obs.shape[0], self.n_tokens, width)
        chunks = torch.split(obs, self.nvec, dim=1)
        return torch.stack([nn.functional.pad(c, (0, width - c.shape[1])) for c in chunks], 1)


class Readout(nn.Module):
    """Token states ``[..., B, T, D]`` -> features ``[..., B, F]``.

    With several tokens, ``F = 2 D``: the mean over tokens, and a pool over tokens with
    weights ``[B, T]`` that either are given (``focus``, e.g. the agent's cell of a maze) or
    are an attention computed from the *input* tokens ``x [B, T, D]``, so the readout can
    learn to look at the cells that matter for the action. With one token, ``F = D`` and
    the features are that token's state.
    """

    def __init__(self, hidden_dim: int, n_tokens: int) -> None:
        super().__init__()
        self.pooled = n_tokens > 1
        self.score = nn.Linear(hidden_dim, 1) if self.pooled else None
        self.features_dim = 2 * hidden_dim if self.pooled else hidden_dim

    def forward(self, states: Tensor, x: Tensor, focus: Tensor | None = None) -> Tensor:
        if not self.pooled:
            return states[..., 0, :]
        weights = torch.softmax(self.score(x).squeeze(-1), dim=-1) if focus is None else focus
        attended = torch.einsum("...btd,bt->...bd", states, weights)
        return torch.cat([states.mean(dim=-2), attended], dim=-1)


class TRMNetwork(nn.Module):
    """Tokeniser + :class:`~trm_rl.RecursiveCore` + readout.

    Args:
        observation_space: the (unflattened) observation space.
        config: the core's config; ``mixer="mlp"`` uses the tokeniser's token count,
            ``mixer="conv"`` and ``"peers"`` its grid shape (grid observations only).
        vector_tokens: ``"single"`` or ``"per_feature"`` tokens for vector observations.
        focus_channel: for grid observations ``(C, H, W)``, read the pooled features at the
            cells marked in this channel (e.g. 1, the agent, in a maze) instead of through
            the learned attention pool. ``None`` (default) learns the pool.
        positions: ``"learned"`` (default) or ``"none"`` token positions
            (:data:`POSITIONS`). With ``"none"``, a grid observation and a mixer other than
            ``"mlp"``, no parameter depends on the grid size: the network built for
            ``(C, n, n)`` loads the state dict of one built for ``(C, m, m)``.

    ``forward(obs)`` gives the final cycle's features ``[B, F]``;
    ``forward(obs, all_cycles=True)`` gives every cycle's ``[H, B, F]``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        config: TRMConfig,
        vector_tokens: str = "single",
        focus_channel: int | None = None,
        positions: str = "learned",
    ) -> None:
        super().__init__()
        self.tokenizer = ObservationTokenizer(
            observation_space, config.hidden_dim, vector_tokens, positions
        )
        if config.mixer in GRID_MIXERS and self.tokenizer.grid_shape is None:
            raise ValueError(
                f'mixer="{config.mixer}" needs grid observations (Box (H, W) or (C, H, W), or '
                f'a square MultiDiscrete), got {observation_space}; use mixer="mlp" or '
                '"attention"'
            )
        self.focus_channel = self._check_focus(observation_space, focus_channel)
        self.core = RecursiveCore(
            config, n_tokens=self.tokenizer.n_tokens, grid_shape=self.tokenizer.grid_shape
        )
        self.readout = Readout(config.hidden_dim, self.tokenizer.n_tokens)
        self.features_dim = self.readout.features_dim

    @staticmethod
    def _check_focus(space: spaces.Space, focus_channel: int | None) -> int | None:
        if focus_channel is None:
            return None
        if not (isinstance(space, spaces.Box) and len(space.shape) == 3):
            raise ValueError(
                f"focus_channel needs a (C, H, W) Box observation space, got {space}; leave it None"
            )
        channels = space.shape[0]
        require_int("focus_channel", focus_channel, 0)
        if focus_channel >= channels:
            raise ValueError(
                f"focus_channel must be an int in [0, {channels}), got {focus_channel}"
            )
        return focus_channel

    def focus(self, obs: Tensor) -> Tensor | None:
        """Readout weights ``[B, T]`` from ``obs [B, C, H, W]``'s focus channel (uniform
        where the channel is empty), or ``None`` without ``focus_channel``."""
        if self.focus_channel is None:
            return None
        marks = obs[:, self.focus_channel].reshape(obs.shape[0], -1)
        total = marks.sum(dim=-1, keepdim=True)
        return torch.where(total > 0, marks / total.clamp_min(1e-8), 1.0 / marks.shape[-1])

    def recurse(self, obs: Tensor) -> tuple[Tensor, CoreOutput]:
        """Input tokens ``x [B, T, D]`` and the core's output (every cycle's z_H)."""
        x = self.tokenizer(obs)
        return x, self.core(x)

    def read(self, states: Tensor, x: Tensor, obs: Tensor) -> Tensor:
        """Features ``[..., B, F]`` of token states ``[..., B, T, D]`` (from :meth:`recurse`)."""
        return self.readout(states, x, self.focus(obs))

    def forward(self, obs: Tensor, all_cycles: bool = False) -> Tensor:
        x, out = self.recurse(obs)
        return self.read(out.states if all_cycles else out.states[-1], x, obs)


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
