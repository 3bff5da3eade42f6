"""Optional dependencies: import them, or fail with one line naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"ray": "cluster", "casadi": "ipopt"}
"""Optional module -> the ``trm-rl[extra]`` that installs it."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra installs it.

    Args:
        module: the optional module, a key of :data:`EXTRAS`.
        purpose: what needs it, for the message (e.g. ``"--executor ray"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = EXTRAS[module]
        raise MissingExtraError(
            f'{purpose} needs {module}, which is not installed: pip install "trm-rl[{extra}]"'
        ) from error
