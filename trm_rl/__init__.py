"""trm-rl: Tiny Recursive Models for reinforcement learning and control.

``import trm_rl`` registers the ``TRM-*`` Gymnasium environments. Everything else (the core,
the SB3 policies, ``load_agent``) is imported on first use, so that importing the package,
and the ``trm-rl`` command line, stay fast (no torch until it is needed).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from trm_rl import envs as envs

try:
    __version__ = version("trm-rl")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

_LAZY = {
    "TRMConfig": "trm_rl.config",
    "Carry": "trm_rl.core",
    "CoreOutput": "trm_rl.core",
    "RecursiveCore": "trm_rl.core",
    "TRMPolicy": "trm_rl.agents.sb3.policy",
    "MaskableTRMPolicy": "trm_rl.agents.sb3.policy",
    "MaskableOutcomeLearner": "trm_rl.agents.sb3.outcome",
    "load_agent": "trm_rl.agents.loading",
    "SymmetryEnsemble": "trm_rl.agents.symmetry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trm_rl' has no attribute {name!r}")


__all__ = [
    "Carry",
    "CoreOutput",
    "MaskableOutcomeLearner",
    "MaskableTRMPolicy",
    "RecursiveCore",
    "SymmetryEnsemble",
    "TRMConfig",
    "TRMPolicy",
    "__version__",
    "load_agent",
]
