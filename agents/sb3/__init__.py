"""Stable-Baselines3 agents: ``TRMPolicy``, the trainer of ``trm-rl train``, callbacks and
the per-env recipes (:mod:`trm_rl.agents.sb3.hyperparams`)."""
