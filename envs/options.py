"""Validation of ``reset(options=...)`` shared by the TRM environments."""

from __future__ import annotations

from typing import Any


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
