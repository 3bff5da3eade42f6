"""trm-rl: Tiny Recursive Models for reinforcement learning and control.

``import trm_rl`` registers the ``TRM-*`` Gymnasium environments.
"""

from importlib.metadata import PackageNotFoundError, version

from trm_rl import envs as envs
from trm_rl.config import TRMConfig
from trm_rl.core import Carry, CoreOutput, RecursiveCore

try:
    __version__ = version("trm-rl")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"

__all__ = ["Carry", "CoreOutput", "RecursiveCore", "TRMConfig", "__version__"]
