"""The extrapolation benchmark (maze size x test-time cycles) end to end on a tiny policy."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from trm_rl import load_agent
from trm_rl.agents.sb3.training import TrainConfig, config_record, make_model, train
from trm_rl.benchmarks import extrapolation
from trm_rl.envs.maze_layouts import goal_distances, shortest_path

TINY = {"hidden_dim": 8, "h_cycles": 2, "l_cycles": 1}
SMOKE = {"n_steps": 64, "batch_size": 64, "n_epochs": 1}


def tiny_config(positions: str, timesteps: int) -> TrainConfig:
    return TrainConfig(
        env_id="TRM-Maze-v0",
        timesteps=timesteps,
        n_envs=2,
        policy_kwargs={**TINY, "positions": positions},
        algo_kwargs=SMOKE,
        device="cpu",
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("runs") / "tiny-posfree"
    train(tiny_config("none", 256), out=directory)
    return directory


class Scripted:
    """A memoryless greedy agent on maze observations: ``move(grid, agent, goal)``."""

    def __init__(self, move):
        self.move = move

    def predict(self, observation, deterministic=False):
        actions = []
        for obs in observation:
            agent = tuple(int(i) for i in np.argwhere(obs[1])[0])
            goal = tuple(int(i) for i in np.argwhere(obs[2])[0])
            actions.append(self.move(obs[0], agent, goal))
        return np.array(actions), None


def test_episodes_follow_the_agent_and_end_on_a_revisit():
    mazes = extrapolation.held_out_mazes(7, "perfect", 3, seed=0)
    oracle = Scripted(lambda grid, agent, goal: shortest_path(grid, agent, goal)[0])
    solved = extrapolation.play(oracle, mazes, 7)
    assert [e.ending for e in solved] == ["goal"] * 3 and all(e.success for e in solved)
    assert [e.steps for e in solved] == [e.shortest for e in solved]
    assert solved[0].path[0] == (0, 0) and solved[0].path[-1] == (6, 6)
    right = extrapolation.play(Scripted(lambda *_: 3), mazes, 7)
    assert [e.ending for e in right] == ["revisit"] * 3 and not any(e.success for e in right)
    for episode in right:
        assert episode.path[-1] == episode.path[-2]  # bumped into a wall or the border
        assert all(row == 0 for row, _ in episode.path)
    assert all(e.wrong_turn is None for e in solved)
    for episode, maze in zip(right, mazes, strict=True):
        distances = goal_distances(maze["grid"], maze["goal"])
        along = [int(distances[cell]) for cell in episode.path]
        first = next(i for i in range(len(along) - 1) if along[i + 1] >= along[i])
        assert episode.wrong_turn == along[first] > 0
    result = extrapolation.summarize(7, 2, solved + right, seconds=1.0)
    assert result.success_rate == 0.5 and result.path_ratio == 1.0 and result.revisits == 3
    assert result.wrong_turn_median == np.median([e.wrong_turn for e in right])
    assert result.success_ci95[0] < 0.5 < result.success_ci95[1]


def test_goal_distances_go_around_walls():
    grid = np.array([[0, 0, 0], [1, 1, 0], [0, 0, 0]])
    expected = np.array([[6, 5, 4], [-1, -1, 3], [0, 1, 2]])
    np.testing.assert_array_equal(goal_distances(grid, (2, 0)), expected)
    walled = np.array([[0, 1], [1, 0]])
    np.testing.assert_array_equal(goal_distances(walled, (1, 1)), [[-1, -1], [-1, 0]])


def test_held_out_mazes_are_fixed_by_the_seed_and_differ_between_seeds():
    first = extrapolation.held_out_mazes(9, "perfect", 4, seed=0)
    again = extrapolation.held_out_mazes(9, "perfect", 4, seed=0)
    other = extrapolation.held_out_mazes(9, "perfect", 4, seed=1)
    assert all(np.array_equal(a["grid"], b["grid"]) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a["grid"], b["grid"]) for a, b in zip(first, other, strict=True))


def test_end_to_end_writes_the_table_and_pictures(run_dir, tmp_path):
    argv = [str(run_dir), "--sizes", "5", "7", "--cycles", "1", "2", "--episodes", "4"]
    argv += ["--results", str(tmp_path)]
    assert extrapolation.main(argv) == 0
    out = tmp_path / "tiny-posfree"
    assert sorted(p.name for p in out.iterdir()) == [
        "episode.png",
        "results.json",
        "success.png",
        "table.md",
    ]
    report = json.loads((out / "results.json").read_text())
    cells = [(r["size"], r["h_cycles"], r["episodes"]) for r in report["results"]]
    assert cells == [(5, 1, 4), (5, 2, 4), (7, 1, 4), (7, 2, 4)]
    assert report["meta"]["trained"]["positions"] == "none" and report["meta"]["seconds"] > 0
    table = (out / "table.md").read_text()
    assert "| size | K=1 | K=2 (trained) |" in table
    rows = [line for line in table.splitlines() if line.startswith(("| 5x5", "| 7x7"))]
    assert len(rows) == 6 and all(row.count("|") == 4 for row in rows)  # three tables
    assert "Where the policy goes wrong" in table
    before = (out / "results.json").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        extrapolation.main(argv)
    assert (out / "results.json").read_text() == before
    with pytest.raises(ValueError, match="odd"):
        extrapolation.main([*argv[:2], "6", *argv[3:], "--name", "even"])
    assert not (tmp_path / "even").exists()


def test_learned_positions_are_refused_naming_the_parameter(tmp_path):
    config = tiny_config("learned", 64)
    model = make_model(config)
    model.save(tmp_path / "model.zip")
    (tmp_path / "config.json").write_text(json.dumps(config_record(config, model)))
    with pytest.raises(ValueError, match="position"):
        extrapolation.run(tmp_path, sizes=[7], cycles=[1], episodes=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": [8]}, ValueError, "odd"),
        ({"sizes": [2]}, ValueError, "sizes"),
        ({"cycles": [0]}, ValueError, "cycles"),
        ({"cycles": [1.5]}, TypeError, "cycles"),
        ({"episodes": 0}, ValueError, "episodes"),
        ({"family": "spiral"}, ValueError, "family"),
    ],
)
def test_bad_arguments_raise_naming_them(run_dir, kwargs, error, match):
    arguments = {"sizes": [5], "cycles": [1], "episodes": 1, **kwargs}
    with pytest.raises(error, match=match):
        extrapolation.run(run_dir, **arguments)


def test_carried_latent_starts_fresh_then_carries_each_episode_on_its_own(run_dir):
    agent = load_agent(run_dir, observation_space=extrapolation.maze_space(7))
    mazes = extrapolation.held_out_mazes(7, "perfect", 3, seed=0)
    env = gym.make("TRM-Maze-v0", size=7)
    observations = np.stack([env.reset(options={"maze": maze})[0] for maze in mazes])
    carried = extrapolation.CarriedLatent(agent, n_episodes=3)
    first = carried.actions(observations, [0, 1, 2])
    np.testing.assert_array_equal(first, agent.predict(observations, deterministic=True)[0])
    after_one = carried.carry.z_H.clone()
    carried.actions(observations[1:2], [1])
    assert torch.equal(carried.carry.z_H[[0, 2]], after_one[[0, 2]])
    assert not torch.equal(carried.carry.z_H[1], after_one[1])  # the latent moved on
    episodes = extrapolation.play(agent, mazes, 7, carry=True)
    for episode in episodes:
        assert episode.ending in ("goal", "revisit", "step_limit")
        if episode.ending == "revisit":
            assert episode.path.count(episode.path[-1]) == 3
    unchanged = agent.predict(observations, deterministic=True)[0]
    np.testing.assert_array_equal(unchanged, first)  # the model's initial states untouched
