"""MazeEnv and its layout helpers: generation, rewards, options, actions, rendering."""

import gymnasium as gym
import numpy as np
import pytest

import trm_rl  # noqa: F401  (registers the TRM-* ids)
from trm_rl.envs.maze import ORIGINAL_5X5_LAYOUT, MazeEnv
from trm_rl.envs.maze_layouts import (
    ACTION_DELTAS,
    generate_maze,
    open_grid,
    perfect_grid,
    shortest_path,
    validate_maze,
)

MAZE_IDS = ["TRM-Maze-v0", "TRM-Maze-7x7-v0", "TRM-Maze-9x9-v0", "TRM-Maze-Fixed-v0"]
UP, DOWN, LEFT, RIGHT = range(4)

# 5x5 with a wall column: from (0, 0) the agent must go down to row 4 and back up.
DETOUR = np.array(
    [
        [0, 1, 0, 0, 0],
        [0, 1, 0, 1, 0],
        [0, 1, 0, 1, 0],
        [0, 1, 0, 1, 0],
        [0, 0, 0, 1, 0],
    ]
)


def walk(grid, start, actions):
    """Follow ``actions`` on ``grid`` without the env; a blocked move raises."""
    row, col = start
    for action in actions:
        dr, dc = ACTION_DELTAS[action]
        row, col = row + dr, col + dc
        assert 0 <= row < len(grid) and 0 <= col < len(grid) and not grid[row][col]
    return row, col


def free_edges(grid):
    """Number of adjacent pairs of free cells."""
    free = np.asarray(grid) == 0
    return int((free[1:] & free[:-1]).sum() + (free[:, 1:] & free[:, :-1]).sum())


@pytest.mark.parametrize(
    ("size", "family"), [(5, "open"), (5, "perfect"), (5, "mixed"), (6, "open"), (9, "mixed")]
)
def test_thousand_generated_mazes_are_solvable(size, family):
    rng = np.random.default_rng(0)
    for _ in range(1000):
        maze = generate_maze(rng, size, family, wall_density=0.3)
        grid = maze["grid"]
        assert grid.shape == (size, size) and set(np.unique(grid)) <= {0, 1}
        assert maze["start"] == (0, 0) and maze["goal"] == (size - 1, size - 1)
        path = shortest_path(grid, maze["start"], maze["goal"])
        assert path is not None
        assert walk(grid, maze["start"], path) == maze["goal"]


def test_dense_open_grids_are_repaired_to_solvable():
    rng = np.random.default_rng(1)
    for _ in range(200):
        grid = open_grid(rng, 7, wall_density=0.95)
        assert shortest_path(grid, (0, 0), (6, 6)) is not None
        assert grid.mean() > 0.5


def test_perfect_mazes_are_trees_over_the_even_cells():
    rng = np.random.default_rng(2)
    for size in (3, 5, 9):
        for _ in range(50):
            grid = perfect_grid(rng, size)
            assert (grid[::2, ::2] == 0).all() and (grid[1::2, 1::2] == 1).all()
            free = int((grid == 0).sum())
            assert free_edges(grid) == free - 1


def test_mixed_family_draws_both_families_on_odd_sizes_only():
    def perfect_share(size):
        env = MazeEnv(size=size, family="mixed")
        env.reset(seed=3)
        hits = 0
        for _ in range(200):
            grid = env.maze["grid"]
            hits += bool((grid[1::2, 1::2] == 1).all() and (grid[::2, ::2] == 0).all())
            env.reset()
        return hits / 200

    assert 0.35 < perfect_share(7) < 0.65
    assert perfect_share(6) < 0.05


def test_shortest_path_solver():
    detour = [DOWN] * 4 + [RIGHT] * 2 + [UP] * 4 + [RIGHT] * 2
    assert shortest_path(DETOUR, (0, 0), (0, 4)) == detour
    assert len(shortest_path(DETOUR, (0, 0), (4, 4))) == 16
    assert shortest_path(DETOUR, (2, 2), (2, 2)) == []
    blocked = DETOUR.copy()
    blocked[4, 1] = 1
    assert shortest_path(blocked, (0, 0), (4, 4)) is None


def test_same_seed_same_layouts_and_trajectory_different_seeds_differ():
    def rollout(seed):
        env = gym.make("TRM-Maze-7x7-v0")
        env.action_space.seed(seed)
        observations, rewards = [env.reset(seed=seed)[0]], []
        for _ in range(60):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            observations.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                observations.append(env.reset()[0])
        return np.stack(observations), rewards

    first, again, other = rollout(11), rollout(11), rollout(12)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.array_equal(first[0][0, 0], other[0][0, 0])

    env = MazeEnv(size=7)
    env.reset(seed=5)
    layouts = [env.maze["grid"]] + [(env.reset(), env.maze["grid"])[1] for _ in range(5)]
    assert len({grid.tobytes() for grid in layouts}) > 3


def test_fixed_layout_is_the_original_open_5x5_on_every_episode():
    env = gym.make("TRM-Maze-Fixed-v0")
    assert env.spec.max_episode_steps == 100
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        np.testing.assert_array_equal(obs[0], ORIGINAL_5X5_LAYOUT)
        assert obs[1, 0, 0] == 1 and obs[2, 4, 4] == 1
        assert info["shortest_path"] == 8

    pinned = MazeEnv(layout=DETOUR)
    for seed in range(3):
        obs, info = pinned.reset(seed=seed)
        np.testing.assert_array_equal(obs[0], DETOUR)
        assert info["shortest_path"] == 16
    as_dict = MazeEnv(layout={"grid": DETOUR, "start": (2, 2), "goal": (0, 4)})
    obs, info = as_dict.reset(seed=0)
    assert obs[1, 2, 2] == 1 and obs[2, 0, 4] == 1 and info["shortest_path"] == 4


@pytest.mark.parametrize("env_id", MAZE_IDS)
def test_replaying_the_bfs_path_reaches_the_goal_with_the_expected_return(env_id):
    env = gym.make(env_id)
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        maze = env.unwrapped.maze
        path = shortest_path(maze["grid"], maze["start"], maze["goal"])
        assert info["shortest_path"] == len(path)
        start_distance = info["distance"]
        total = 0.0
        for i, action in enumerate(path):
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            assert terminated == (i == len(path) - 1) and not truncated
            assert info["is_success"] == terminated
        assert info["distance"] == 0 and obs[1, maze["goal"][0], maze["goal"][1]] == 1
        assert total == pytest.approx(10 + 0.2 * start_distance - 0.01 * len(path))


def test_reward_components_and_bumps_leave_the_agent_in_place():
    env = MazeEnv()
    grid = np.zeros((5, 5), dtype=int)
    grid[0, 1] = 1
    obs, info = env.reset(options={"maze": {"grid": grid}})
    for action in (UP, LEFT, RIGHT):  # border, border, wall
        next_obs, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(-0.5 - 0.01)
        assert env.agent_pos == (0, 0) and not terminated and not truncated
        np.testing.assert_array_equal(next_obs, obs)
        assert isinstance(reward, float) and isinstance(terminated, bool)
    _, reward, *_ = env.step(DOWN)
    assert reward == pytest.approx(-0.01 + 0.2) and env.agent_pos == (1, 0)
    _, reward, _, _, info = env.step(UP)
    assert reward == pytest.approx(-0.01 - 0.2) and info["distance"] == 8
    assert info["is_success"] is False


def test_reaching_the_goal_pays_ten_and_terminates():
    env = MazeEnv(size=3, layout=np.zeros((3, 3)))
    env.reset(seed=0)
    for action in (DOWN, DOWN, RIGHT, RIGHT):
        _, reward, terminated, _, info = env.step(action)
    assert terminated and info["is_success"] is True
    assert reward == pytest.approx(10 + 0.2 - 0.01)


def test_step_after_reaching_the_goal_raises_instead_of_paying_again():
    env = MazeEnv(size=3, layout=np.zeros((3, 3)))
    env.reset(seed=0)
    for action in (DOWN, DOWN, RIGHT, RIGHT):
        *_, terminated, _, _ = env.step(action)
    assert terminated
    for action in (LEFT, RIGHT):
        with pytest.raises(gym.error.ResetNeeded, match="goal was reached: call reset"):
            env.step(action)
    with pytest.raises(RuntimeError):
        env.step(UP)
    assert env.agent_pos == (2, 2)
    env.reset()
    _, reward, terminated, _, _ = env.step(DOWN)
    assert not terminated and reward == pytest.approx(0.2 - 0.01)


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array"])
def test_render_before_reset_raises_and_after_the_end_draws_the_final_state(render_mode):
    env = MazeEnv(size=3, layout=np.zeros((3, 3)), render_mode=render_mode)
    with pytest.raises(gym.error.ResetNeeded, match=r"reset\(\) before render"):
        env.render()
    env.reset(seed=0)
    first = env.render()
    for action in (DOWN, DOWN, RIGHT, RIGHT):
        env.step(action)
    last = env.render()
    assert type(last) is type(first) and np.any(last != first)


def test_truncation_reports_no_success():
    env = gym.make("TRM-Maze-v0")
    env.reset(seed=0)
    truncated = False
    steps = 0
    while not truncated:
        _, _, terminated, truncated, info = env.step(UP)  # never reaches the goal
        steps += 1
        assert not terminated and info["is_success"] is False
    assert steps == 100


def test_reset_options_play_the_given_maze_and_round_trip():
    env = MazeEnv()
    obs, info = env.reset(
        seed=0, options={"maze": {"grid": DETOUR, "start": [4, 4], "goal": np.array([0, 0])}}
    )
    np.testing.assert_array_equal(obs[0], DETOUR)
    assert obs[1, 4, 4] == 1 and obs[1].sum() == 1 and obs[2, 0, 0] == 1 and obs[2].sum() == 1
    assert info["shortest_path"] == 16 and env.maze["start"] == (4, 4)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)

    source, replay = MazeEnv(size=7, family="mixed"), MazeEnv(size=7, family="open")
    for seed in range(3):
        obs, _ = source.reset(seed=seed)
        np.testing.assert_array_equal(replay.reset(options={"maze": source.maze})[0], obs)
    source.reset(seed=0)
    assert not np.array_equal(replay.reset(seed=0)[0][0], source.maze["grid"])


@pytest.mark.parametrize(
    ("maze", "message"),
    [
        ({"grid": np.zeros((4, 4))}, r"shape \(5, 5\)"),
        ({"grid": np.full((5, 5), 2)}, "only 0"),
        ({"grid": np.full((5, 5), np.nan)}, "only 0"),
        ({"grid": np.zeros((5, 5)), "start": [5, 0]}, "outside the grid"),
        ({"grid": np.zeros((5, 5)), "start": [0.0, 1.0]}, "two integers"),
        ({"grid": np.zeros((5, 5)), "goal": [1, 2, 3]}, "two integers"),
        ({"grid": DETOUR, "start": [0, 1]}, "'start' .* on a wall"),
        ({"grid": DETOUR, "goal": [1, 3]}, "'goal' .* on a wall"),
        ({"grid": np.zeros((5, 5)), "start": [2, 2], "goal": [2, 2]}, "must differ"),
        ({"grid": np.pad(np.ones((1, 5)), ((2, 2), (0, 0)))}, "unsolvable"),
        ({"grid": np.zeros((5, 5)), "walls": 1}, "unknown maze keys"),
        ({"start": [0, 0]}, 'needs a "grid"'),
    ],
)
def test_malformed_or_unsolvable_mazes_raise(maze, message):
    env = MazeEnv()
    with pytest.raises(ValueError, match=message):
        env.reset(options={"maze": maze})
    with pytest.raises(ValueError, match=message):
        validate_maze(maze, 5)


def test_bad_reset_options_raise():
    env = MazeEnv()
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"layout": DETOUR})
    with pytest.raises(TypeError, match="maze must be a dict"):
        env.reset(options={"maze": DETOUR})
    with pytest.raises(TypeError, match="options must be a dict"):
        env.reset(options=[1])


@pytest.mark.parametrize("action", [4, -1, 1.5, 2.0, True, "1", None, np.array([1]), np.array(0.0)])
def test_bad_actions_raise(action):
    env = MazeEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


@pytest.mark.parametrize("action", [np.int64(DOWN), np.int32(DOWN), np.array(DOWN), np.uint8(1)])
def test_numpy_integer_actions_are_accepted(action):
    env = MazeEnv(layout=ORIGINAL_5X5_LAYOUT)
    env.reset(seed=0)
    env.step(action)
    assert env.agent_pos == (1, 0)


def test_step_before_reset_raises():
    with pytest.raises(gym.error.ResetNeeded):
        MazeEnv().step(0)


def test_ansi_render_shows_walls_agent_and_goal():
    env = MazeEnv(layout=DETOUR, render_mode="ansi")
    env.reset(seed=0)
    env.step(DOWN)
    text = env.render()
    assert text.splitlines() == [".#...", "A#.#.", ".#.#.", ".#.#.", "...#G"]


def test_rgb_render_is_a_clear_picture():
    env = MazeEnv(layout=DETOUR, render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (80, 80, 3) and image.dtype == np.uint8

    def centre(row, col):
        return image[16 * row + 8, 16 * col + 8].astype(int)

    agent, goal, wall, free = centre(0, 0), centre(4, 4), centre(0, 1), centre(0, 2)
    assert agent[2] > agent[0] + 100 and agent[2] > agent[1] + 100  # blue
    assert goal[1] > goal[0] + 100 and goal[1] > goal[2] + 100  # green
    assert wall.max() < 80 and free.min() > 200
    with pytest.warns(UserWarning, match="render_mode"):
        assert MazeEnv().render() is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size": 2}, ValueError, "size must be >= 3"),
        ({"size": 5.0}, TypeError, "size must be an int"),
        ({"size": True}, TypeError, "size must be an int"),
        ({"family": "spiral"}, ValueError, "family must be one of"),
        ({"size": 6, "family": "perfect"}, ValueError, "odd size"),
        ({"wall_density": 1.0}, ValueError, r"wall_density must be in \[0, 1\)"),
        ({"wall_density": -0.1}, ValueError, r"wall_density must be in \[0, 1\)"),
        ({"wall_density": float("nan")}, ValueError, r"wall_density must be in \[0, 1\)"),
        ({"wall_density": "0.3"}, TypeError, "wall_density must be a number"),
        ({"layout": np.zeros((7, 7))}, ValueError, r"shape \(5, 5\)"),
        ({"layout": "original_9x9"}, ValueError, "layout name must be one of"),
        ({"render_mode": "human"}, ValueError, "render_mode must be None or one of"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        MazeEnv(**kwargs)


def test_even_sizes_work_for_open_and_mixed():
    for family in ("open", "mixed"):
        env = MazeEnv(size=6, family=family)
        obs, info = env.reset(seed=0)
        assert obs.shape == (3, 6, 6) and info["shortest_path"] >= 10
