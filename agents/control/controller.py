"""``RecursiveController``: a trained recursive control model behind a numpy ``plan`` call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_rl.agents.control.model import ControlModelConfig, RecursiveControlModel

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


def _problems(name: str, value: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of shape [B, 2], got {value!r:.80}") from error
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise ValueError(f"{name} must have shape [B, 2] with B >= 1, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


class RecursiveController:
    """Plans Van der Pol control sequences with a :class:`RecursiveControlModel`.

    Args:
        model: the model (put in eval mode; planning runs on the CPU without gradients).
    """

    def __init__(self, model: RecursiveControlModel) -> None:
        if not isinstance(model, RecursiveControlModel):
            raise TypeError(f"model must be a RecursiveControlModel, got {type(model).__name__}")
        self.model = model.cpu().eval()

    @property
    def config(self) -> ControlModelConfig:
        return self.model.config

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write ``model.pt`` (weights) and ``config.json`` (model config and ``metadata``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / MODEL_FILE)
        config = {"model": self.config.to_dict(), **(metadata or {})}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RecursiveController:
        """Load a controller written by :meth:`save` (or ``trm-rl control train``)."""
        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file() or not (directory / MODEL_FILE).is_file():
            raise FileNotFoundError(
                f"{directory} has no {CONFIG_FILE} and {MODEL_FILE}: pass the --out directory "
                "of `trm-rl control train`"
            )
        config = json.loads((directory / CONFIG_FILE).read_text())
        model = RecursiveControlModel(ControlModelConfig(**config["model"]))
        model.load_state_dict(torch.load(directory / MODEL_FILE, weights_only=True))
        return cls(model)

    def plan(self, states: Any, targets: Any | None = None, return_all: bool = False) -> np.ndarray:
        """Control sequences for a batch of problems.

        Args:
            states: ``[B, 2]`` initial states ``(x, v)``.
            targets: ``[B, 2]`` targets, or ``None`` for the origin.
            return_all: return every iteration, not only the last.

        Returns:
            float32 controls in ``[-2, 2]``: ``[B, T]``, or ``[K + 1, B, T]`` (the initial
            guess and every refinement) with ``return_all``.
        """
        states = torch.from_numpy(_problems("states", states))
        if targets is not None:
            targets = torch.from_numpy(_problems("targets", targets))
            if targets.shape != states.shape:
                raise ValueError(
                    f"targets must have the shape of states {tuple(states.shape)}, "
                    f"got {tuple(targets.shape)}"
                )
        with torch.no_grad():
            controls = self.model(states, targets, simulate=False).controls.numpy()
        return controls if return_all else controls[-1]
