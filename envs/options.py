"""Validation shared by the TRM environments: ``reset(options=...)``, constructor
arguments, and the error raised when no episode is in progress."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from trm_rl.config import require_int, require_number


class ResetNeeded(gym.error.ResetNeeded, RuntimeError):
    """``step`` or ``render`` called with no episode in progress: before the first
    ``reset()``, or ``step`` after the episode terminated (Gymnasium leaves stepping a
    terminated env undefined; the TRM envs refuse it rather than pay rewards twice). It is
    both Gymnasium's ``ResetNeeded`` (what its ``OrderEnforcing`` wrapper raises) and a
    ``RuntimeError``."""


def checked_options(options: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``options`` as a dict (``{}`` for None) whose keys are all in ``allowed``.

    Raises:
        TypeError: ``options`` is neither a dict nor None.
        ValueError: a key outside ``allowed``, naming it and the allowed keys.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: {list(allowed)}")
    return options


def checked_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low`` (numpy integers accepted), else the error of
    :func:`trm_rl.config.require_int` naming ``name``."""
    value = int(value) if isinstance(value, np.integer) else value
    require_int(name, value, low)
    return value


def checked_number(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (a bound excluded with ``low_open`` /
    ``high_open``; numpy floats and ints accepted), else the error of
    :func:`trm_rl.config.require_number` naming ``name``."""
    value = value.item() if isinstance(value, np.integer | np.floating) else value
    require_number(name, value, low, high, low_open=low_open, high_open=high_open)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)
