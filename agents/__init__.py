"""Agents built on the recursive core, one subpackage each, beside what they share.

========================  =============================================================
``trm_rl.agents.sb3``     ``TRMPolicy`` / ``MaskableTRMPolicy`` for Stable-Baselines3, the
                          trainer behind ``trm-rl train`` and the per-env recipes
``trm_rl.agents.reinforce``  REINFORCE with deep supervision over the core's cycles
``trm_rl.agents.control``    the supervised recursive controller (plans whole control
                          sequences, refined cycle by cycle)
``network``               observation tokeniser + core + readout, shared by all three
``evaluation``            held-out evaluation of any agent
``loading``               ``load_agent``: any saved agent behind SB3's ``predict``
``symmetry``              ``SymmetryEnsemble``: a 9x9 Sudoku agent asked about several
                          symmetric images of each board
========================  =============================================================

The names below are imported on first use, so importing one agent does not import the others.
"""

from importlib import import_module
from typing import Any

if __name__ != "trm_rl.agents":
    raise ImportError("import trm_rl.agents, not agents")

_LAZY = {
    "TRMPolicy": "trm_rl.agents.sb3.policy",
    "MaskableTRMPolicy": "trm_rl.agents.sb3.policy",
    "SB3Agent": "trm_rl.agents.loading",
    "load_agent": "trm_rl.agents.loading",
    "ReinforceAgent": "trm_rl.agents.reinforce.agent",
    "RecursiveController": "trm_rl.agents.control.controller",
    "SymmetryEnsemble": "trm_rl.agents.symmetry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trm_rl.agents' has no attribute {name!r}")


__all__ = sorted(_LAZY)
