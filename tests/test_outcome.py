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
from trm_rl.agents.sb3.policy import MaskableTRMPolicy
from trm_rl.agents.sb3.training import TrainConfig, make_model, train
from trm_rl.cli import main
from trm_rl.envs.sudoku9 import Sudoku9Env
from trm_rl.envs.sudoku9_puzzles import solve
from trm_rl.envs.sudoku_hindsight import solved_episode_outcomes

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


def test_factored_head_is_refused_by_the_config_and_the_learner():
    factored = {**TINY, "factored_actions": True}
    with pytest.raises(ValueError, match="one logit per action"):
        sudoku_config(policy_kwargs=factored)
    env = gym.make("TRM-Sudoku-v0")
    with pytest.raises(ValueError, match="one logit per action"):
        MaskableOutcomeLearner(MaskableTRMPolicy, env, policy_kwargs=factored)


@pytest.mark.parametrize("hindsight", ["maze", 1, ["sudoku-solution"]])
def test_unknown_hindsight_is_refused_by_the_config_and_the_learner(hindsight):
    with pytest.raises(ValueError, match=r"hindsight must be one of \['sudoku-solution'\] or None"):
        sudoku_config(algo_kwargs={"hindsight": hindsight})
    env = gym.make("TRM-Sudoku-v0")
    with pytest.raises(ValueError, match="hindsight must be one of"):
        MaskableOutcomeLearner(MaskableTRMPolicy, env, hindsight=hindsight)


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
    assert agent.config["algo"] == "maskable-outcome" and agent.masked
    with pytest.raises(ValueError, match="needs action_masks"):
        agent.predict(np.zeros(16, np.int64))
    played = evaluate(agent, "TRM-Sudoku-v0", episodes=8)
    assert played.mean_return > 0 and played.mean_length <= 12  # legal placements only
    env = gym.make("TRM-Sudoku-v0")
    starts = [env.reset(seed=seed) for seed in range(4)]
    observations = np.stack([obs for obs, _ in starts])
    masks = np.stack([info["action_mask"] for _, info in starts])
    with torch.no_grad():
        logits = model.action_logits(torch.as_tensor(observations))
    actions, _ = agent.predict(observations, deterministic=True, action_masks=masks)
    np.testing.assert_array_equal(
        actions, logits.masked_fill(~torch.as_tensor(masks), -1e9).argmax(1)
    )
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


def played_episode(observation: str, wrong_at: int | None = None):
    """A 9x9 episode playing the solution (a wrong legal digit at step ``wrong_at``): its
    observations, actions, rewards, masks and the solution."""
    env = Sudoku9Env("hidden", observation=observation)
    obs, info = env.reset(seed=3)
    solution = solve(env.unwrapped.puzzle).ravel()
    record = []
    for step, cell in enumerate(np.flatnonzero(env.unwrapped.puzzle.ravel() == 0)):
        legal = info["action_mask"]
        action = 9 * int(cell) + int(solution[cell]) - 1
        if step == wrong_at:
            action = next(a for a in np.flatnonzero(legal) if a % 9 + 1 != solution[a // 9])
        next_obs, reward, terminated, _, info_next = env.step(action)
        record.append((obs, action, reward, legal))
        obs, info = next_obs, info_next
        if terminated:
            break
    return (*(np.stack(x) for x in zip(*record, strict=True)), solution)


@pytest.mark.parametrize("observation", ["digits", "candidates"])
def test_a_solved_episode_labels_every_legal_placement(observation):
    observations, actions, rewards, masks, solution = played_episode(observation)
    labels = solved_episode_outcomes(observations, actions, rewards, masks)
    np.testing.assert_array_equal(np.isnan(labels), ~masks)
    right = np.arange(729) % 9 + 1 == solution.repeat(9)
    np.testing.assert_array_equal(labels[masks], np.broadcast_to(right, masks.shape)[masks])
    assert (labels[np.arange(len(actions)), actions] == 1).all()


def test_a_failed_episode_teaches_only_its_played_placements():
    observations, actions, rewards, masks, _ = played_episode("digits", wrong_at=2)
    assert rewards[-1] == 0 and len(actions) == 3
    assert solved_episode_outcomes(observations, actions, rewards, masks) is None


def test_hindsight_labels_one_right_digit_per_blank_across_rollouts(monkeypatch):
    model = make_model(sudoku_config(algo_kwargs={"n_steps": 8, "hindsight": "sudoku-solution"}))
    seen = []
    fit = model._labelled_loss
    monkeypatch.setattr(model, "_labelled_loss", lambda o, y: seen.append(y) or fit(o, y))
    model.learn(64)
    labels = torch.cat(seen).reshape(-1, 16, 4)
    known = ~labels.isnan()
    assert len(labels) > 0 and known.any()
    blanks = known.any(-1)
    assert ((labels.nan_to_num(0) == 1).sum(-1)[blanks] == 1).all()
