"""REINFORCE with deep supervision: config, episode rollouts, the agent and its trainer."""
