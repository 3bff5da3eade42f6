"""``MaskableOutcomeLearner`` (``algo="maskable-outcome"``): action logits fitted to the
played actions' outcomes."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from trm_rl import load_agent
from trm_rl.agents.evaluation import evaluate
from trm_rl.agents.sb3.outcome import MaskableOutcomeLearner
from trm_rl.agents.sb3.training import TrainConfig, make_model, train
from trm_rl.cli import main

TINY = {"hidden_dim": 8, "h_cycles": 1}


def sudoku_config(**changes) -> TrainConfig:
    settings = {
        "env_id": "TRM-Sudoku-v0",
        "algo": "maskable-outcome",
        "n_envs": 2,
        "policy_kwargs": TINY,
        "algo_kwargs": {"n_steps": 32, "batch_size": 32},
        **changes,
    }
    return TrainConfig(**settings)


def buffer_loss(model: MaskableOutcomeLearner) -> float:
    """The cross-entropy of the played actions' logits on the whole rollout buffer."""
    batch = next(model.rollout_buffer.get(None))
    with torch.no_grad():
        logits = model.action_logits(batch.observations)
    played = logits.gather(1, batch.actions.long()).squeeze(1)
    return F.binary_cross_entropy_with_logits(played, batch.returns).item()


def test_factored_head_is_refused():
    config = sudoku_config(policy_kwargs={**TINY, "factored_actions": True})
    with pytest.raises(ValueError, match="one logit per action"):
        make_model(config)


def test_ppo_only_arguments_are_refused():
    with pytest.raises(ValueError, match="clip_range"):
        sudoku_config(algo_kwargs={"clip_range": 0.1})


def test_labels_are_the_rewards_and_only_the_actor_trains():
    model = make_model(sudoku_config())
    model.learn(64)
    rewards = model.rollout_buffer.rewards.swapaxes(0, 1).reshape(-1)
    np.testing.assert_array_equal(model.rollout_buffer.returns.reshape(-1), rewards > 0)
    assert set(np.unique(rewards)) <= {0.0, 1.0, 11.0} and (rewards == 0).any()
    value_weights = model.policy.value_net.weight.detach().clone()
    before = buffer_loss(model)
    for _ in range(5):
        model.train()
    assert buffer_loss(model) < before - 0.05
    torch.testing.assert_close(model.policy.value_net.weight, value_weights)


def test_save_load_round_trip_and_cli(tmp_path):
    out = tmp_path / "run"
    model = train(sudoku_config(timesteps=128), out)
    agent = load_agent(out)
    assert agent.config["algo"] == "maskable-outcome"
    env = gym.make("TRM-Sudoku-v0")
    observations = np.stack([env.reset(seed=seed)[0] for seed in range(4)])
    with torch.no_grad():
        logits = model.action_logits(torch.as_tensor(observations))
    actions, _ = agent.predict(observations, deterministic=True)
    np.testing.assert_array_equal(actions, logits.argmax(1).numpy())
    argv = ["train", "--env", "TRM-Sudoku-v0", "--algo", "maskable-outcome", "--n-envs", "2"]
    argv += ["--timesteps", "256", "--hidden-dim", "8", "--no-progress", "--out"]
    assert main([*argv, str(tmp_path / "cli")]) == 0
    assert load_agent(tmp_path / "cli").config["algo"] == "maskable-outcome"


@pytest.mark.slow
def test_learns_4x4_sudoku():
    config = sudoku_config(timesteps=20_000, policy_kwargs={}, n_envs=8, algo_kwargs={})
    untrained = evaluate(make_model(config), "TRM-Sudoku-v0", episodes=100)
    trained = evaluate(train(config), "TRM-Sudoku-v0", episodes=100)
    assert trained.success_rate >= 0.8 > untrained.success_rate, (untrained, trained)
