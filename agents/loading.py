"""``load_agent(DIR)``: any agent directory written by ``trm-rl train``, behind SB3's
``predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm


class SB3Agent:
    """A trained SB3 model with the uniform agent interface.

    Attributes:
        model: the SB3 algorithm (``PPO``, ``A2C`` or ``MaskablePPO``).
        config: the agent directory's ``config.json`` as a dict (empty if built in memory).
        observation_space, action_space: the model's spaces.
    """

    def __init__(self, model: BaseAlgorithm, config: dict[str, Any] | None = None) -> None:
        self.model = model
        self.config = dict(config or {})
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.masked = type(model).__name__ == "MaskablePPO"

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` for one observation or a batch; ``action_masks`` (``[A]`` or
        ``[B, A]`` booleans) are used by MaskablePPO agents and ignored by the others,
        whose policies never saw masks."""
        if self.masked:
            return self.model.predict(
                observation, state, episode_start, deterministic, action_masks=action_masks
            )
        return self.model.predict(observation, state, episode_start, deterministic)


def load_agent(directory: str | Path, device: str = "auto") -> Any:
    """Load the agent saved in ``directory`` by ``trm-rl train``.

    Args:
        directory: holds ``config.json`` and ``model.zip`` (SB3) or ``model.pt`` (REINFORCE).
        device: torch device for SB3 models (``"auto"`` as in SB3).

    Returns:
        An object with SB3's ``predict(obs, state=None, episode_start=None,
        deterministic=False, action_masks=None)`` and the attributes ``observation_space``,
        ``action_space`` and ``config``.

    Raises:
        FileNotFoundError: no ``config.json`` in ``directory``.
        ValueError: an unknown ``algo`` in ``config.json``.
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found; pass a directory written by `trm-rl train --out DIR`"
        )
    config = json.loads(config_path.read_text())
    algo = config.get("algo")
    if algo == "reinforce":
        from trm_rl.agents.reinforce.trainer import ReinforceAgent

        return ReinforceAgent.load(directory)
    from trm_rl.agents.sb3.hyperparams import ALGOS
    from trm_rl.agents.sb3.training import algorithm_class

    if algo not in ALGOS:
        raise ValueError(f"config.json 'algo' must be one of {(*ALGOS, 'reinforce')}, got {algo!r}")
    model = algorithm_class(algo).load(directory / "model.zip", device=device)
    return SB3Agent(model, config)
