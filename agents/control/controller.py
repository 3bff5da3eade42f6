"""``RecursiveController``: a trained recursive control model behind a numpy ``plan`` call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_rl.agents.control.model import ControlModelConfig, RecursiveControlModel
from trm_rl.atomic import atomic_path, atomic_write_text
from trm_rl.envs.vanderpol import STATE_LIMIT, TARGET_LIMIT

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


def _problems(name: str, value: Any, limit: float) -> np.ndarray:
    """``value`` as float32 ``[B, 2]`` with every ``|x|, |v| <= limit``."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of shape [B, 2], got {value!r:.80}") from error
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise ValueError(f"{name} must have shape [B, 2] with B >= 1, got {array.shape}")
    outside = ~(np.abs(array) <= limit).all(1)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{name} must be finite with |x|, |v| <= {limit} (TRM-VanDerPol-v0's limits; "
            f"`control generate` trains on |x|, |v| <= 2), got {array[row].tolist()} in row "
            f"{row}"
        )
    return array


def _finite_parameters(model: RecursiveControlModel) -> None:
    """Raise naming the parameters of ``model`` that hold a NaN or an infinity."""
    bad = [name for name, value in model.state_dict().items() if not value.isfinite().all()]
    if bad:
        raise ValueError(
            f"the model has non-finite weights ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): it would plan garbage; retrain it"
        )


class RecursiveController:
    """Plans Van der Pol control sequences with a :class:`RecursiveControlModel`.

    Args:
        model: the model (put in eval mode; planning runs on the CPU without gradients).

    Raises:
        ValueError: a weight of ``model`` is NaN or infinite.
    """

    def __init__(self, model: RecursiveControlModel) -> None:
        if not isinstance(model, RecursiveControlModel):
            raise TypeError(f"model must be a RecursiveControlModel, got {type(model).__name__}")
        _finite_parameters(model)
        self.model = model.cpu().eval()

    @property
    def config(self) -> ControlModelConfig:
        return self.model.config

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write ``model.pt`` (weights) and ``config.json`` (model config and ``metadata``),
        each atomically (a temporary file moved over the old one)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / MODEL_FILE) as temporary:
            torch.save(self.model.state_dict(), temporary)
        config = {"model": self.config.to_dict(), **(metadata or {})}
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> RecursiveController:
        """Load a controller written by :meth:`save` (or ``trm-rl control train``); the
        weights are read as tensors only (``torch.load(weights_only=True)``).

        Raises:
            FileNotFoundError: ``directory`` lacks ``config.json`` or ``model.pt``.
            ValueError: either file is unreadable or does not fit the other, or a weight is
                not finite; the message names the file.
        """
        directory = Path(directory)
        config_path, model_path = directory / CONFIG_FILE, directory / MODEL_FILE
        if not config_path.is_file() or not model_path.is_file():
            raise FileNotFoundError(
                f"{directory} has no {CONFIG_FILE} and {MODEL_FILE}: pass the --out directory "
                "of `trm-rl control train`"
            )
        try:
            model_config = ControlModelConfig(**json.loads(config_path.read_text())["model"])
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(
                f"{config_path} does not describe a control model: {error!r:.200}"
            ) from error
        model = RecursiveControlModel(model_config)
        try:
            model.load_state_dict(torch.load(model_path, weights_only=True))
        except (RuntimeError, OSError, EOFError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(
                f"{model_path} holds no weights for the model of {config_path}: {reason}"
            ) from error
        try:
            return cls(model)
        except ValueError as error:
            raise ValueError(f"{model_path}: {error}") from error

    def plan(self, states: Any, targets: Any | None = None, return_all: bool = False) -> np.ndarray:
        """Control sequences for a batch of problems.

        Args:
            states: ``[B, 2]`` initial states ``(x, v)``, ``|x|, |v| <= 4`` (the states
                ``TRM-VanDerPol-v0`` accepts).
            targets: ``[B, 2]`` targets, ``|x|, |v| <= 3``, or ``None`` for the origin.
            return_all: return every iteration, not only the last.

        Returns:
            float32 controls in ``[-2, 2]``: ``[B, T]``, or ``[K + 1, B, T]`` (the initial
            guess and every refinement) with ``return_all``.

        Raises:
            ValueError: a shape other than ``[B, 2]``, a NaN, or a state or target out of
                the limits above (naming the row).
        """
        states = torch.from_numpy(_problems("states", states, STATE_LIMIT))
        if targets is not None:
            targets = torch.from_numpy(_problems("targets", targets, TARGET_LIMIT))
            if targets.shape != states.shape:
                raise ValueError(
                    f"targets must have the shape of states {tuple(states.shape)}, "
                    f"got {tuple(targets.shape)}"
                )
        with torch.no_grad():
            controls = self.model(states, targets, simulate=False).controls.numpy()
        return controls if return_all else controls[-1]
