"""Agents built on the recursive core: SB3 policies and trainers."""

if __name__ != "trm_rl.agents":
    raise ImportError("import trm_rl.agents, not agents")

from trm_rl.agents.loading import SB3Agent, load_agent
from trm_rl.agents.policy import MaskableTRMPolicy, TRMPolicy

__all__ = ["MaskableTRMPolicy", "SB3Agent", "TRMPolicy", "load_agent"]
