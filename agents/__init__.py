"""Agents built on the recursive core: SB3 policies and trainers."""

if __name__ != "trm_rl.agents":
    raise ImportError("import trm_rl.agents, not agents")
