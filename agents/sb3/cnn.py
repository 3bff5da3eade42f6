"""A small ResNet-style CNN features extractor for grid observations: the benchmark's ``cnn``
agent, the conventional RL network for grids (no recursion, no weight sharing).

Observations, after SB3's ``preprocess_obs``, are read as an image ``[B, C, H, W]``:

=============================  ==================================================
observation space              image
=============================  ==================================================
``Box (C, H, W)``              as is (a maze: walls, agent, goal channels)
``Box (H, W)``                 one channel
square ``MultiDiscrete([k]*n)``  the one-hot board, ``C = k`` channels on a
                               ``sqrt(n) x sqrt(n)`` grid (Sudoku, as a board-game
                               network reads its board)
=============================  ==================================================

Network (IMPALA / AlphaZero style, no normalisation layers): a 3x3 convolution to
``channels``, ``blocks`` residual blocks ``x + conv(relu(conv(relu(x))))`` (3x3, zero
padding, so the receptive field grows by 4 cells per block), ReLU, flatten, and a
``Linear(channels * H * W, features_dim)`` with ReLU. Usage::

    PPO("MlpPolicy", env, policy_kwargs={"features_extractor_class": GridResNet,
                                         "net_arch": []})
"""

from __future__ import annotations

import math

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from trm_rl.config import require_int


def grid_image_shape(observation_space: spaces.Space) -> tuple[int, int, int]:
    """``(C, H, W)`` of the image :class:`GridResNet` reads from ``observation_space``.

    Raises:
        TypeError: the space is not a grid (see the module docstring).
    """
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3:
        channels, height, width = observation_space.shape
        return int(channels), int(height), int(width)
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 2:
        height, width = observation_space.shape
        return 1, int(height), int(width)
    if isinstance(observation_space, spaces.MultiDiscrete) and observation_space.nvec.ndim == 1:
        nvec = observation_space.nvec
        side = math.isqrt(nvec.size)
        if side * side == nvec.size and side > 1 and (nvec == nvec[0]).all():
            return int(nvec[0]), side, side
    raise TypeError(
        "GridResNet needs a grid observation space: Box (C, H, W) or (H, W), or a square "
        f"MultiDiscrete([k] * n) board; got {observation_space}"
    )


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))``, two 3x3 convolutions, ``[B, C, H, W]`` in and out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


class GridResNet(BaseFeaturesExtractor):
    """Grid observations ``[B, ...]`` (SB3-preprocessed) -> features ``[B, features_dim]``.

    Args:
        observation_space: a grid space (see :func:`grid_image_shape`).
        channels: convolution channels (default 16).
        blocks: residual blocks (default 2).
        features_dim: output width (default 64).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        channels: int = 16,
        blocks: int = 2,
        features_dim: int = 64,
    ) -> None:
        require_int("channels", channels, 1)
        require_int("blocks", blocks, 0)
        require_int("features_dim", features_dim, 1)
        super().__init__(observation_space, features_dim)
        self.image_shape = grid_image_shape(observation_space)
        in_channels, height, width = self.image_shape
        self.one_hot_board = isinstance(observation_space, spaces.MultiDiscrete)
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.head = nn.Linear(channels * height * width, features_dim)

    def image(self, observations: Tensor) -> Tensor:
        """Preprocessed observations -> ``[B, C, H, W]``."""
        channels, height, width = self.image_shape
        batch = observations.shape[0]
        if self.one_hot_board:
            cells = observations.reshape(batch, height * width, channels)
            return cells.transpose(1, 2).reshape(batch, channels, height, width)
        return observations.reshape(batch, channels, height, width)

    def forward(self, observations: Tensor) -> Tensor:
        hidden = torch.relu(self.blocks(self.stem(self.image(observations))))
        return torch.relu(self.head(hidden.flatten(1)))
