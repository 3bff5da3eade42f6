"""The speed benchmark's FLOP accounting."""

import pytest

from trm_rl.agents.sb3.training import TrainConfig, make_model
from trm_rl.benchmarks.policy_speed import flops_per_env_step

TINY = {"hidden_dim": 8, "h_cycles": 2, "l_cycles": 1}


def _flops(policy_kwargs, algo_kwargs=None):
    config = TrainConfig(
        "TRM-Maze-v0",
        n_envs=2,
        policy_kwargs=policy_kwargs,
        algo_kwargs={"n_steps": 16, "batch_size": 16, **(algo_kwargs or {})},
        device="cpu",
    )
    model = make_model(config)
    model.learn(32)
    return flops_per_env_step(model)


def test_flops_per_env_step_follow_the_cycles_and_epochs():
    base = _flops(TINY)
    assert 0 < base["rollout"] < base["update"]
    deeper = _flops({**TINY, "h_cycles": 4})
    assert deeper["rollout"] > 1.5 * base["rollout"]
    assert _flops(TINY, {"n_epochs": 2})["update"] == pytest.approx(base["update"] / 2)
