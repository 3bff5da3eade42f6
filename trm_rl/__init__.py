"""trm-rl: Tiny Recursive Models for reinforcement learning and control.

``import trm_rl`` registers the ``TRM-*`` Gymnasium environments. The SB3 policies
(``TRMPolicy``, ``MaskableTRMPolicy``) and ``load_agent`` are imported on first use, so
that importing the package stays fast.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from trm_rl import envs as envs
from trm_rl.config import TRMConfig
from trm_rl.core import Carry, CoreOutput, RecursiveCore

try:
    __version__ = version("trm-rl")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

_LAZY = {
    "TRMPolicy": "trm_rl.agents.policy",
    "MaskableTRMPolicy": "trm_rl.agents.policy",
    "load_agent": "trm_rl.agents.loading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trm_rl' has no attribute {name!r}")


__all__ = [
    "Carry",
    "CoreOutput",
    "MaskableTRMPolicy",
    "RecursiveCore",
    "TRMConfig",
    "TRMPolicy",
    "__version__",
    "load_agent",
]
