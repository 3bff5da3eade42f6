"""TRM-Sudoku-v0: the 288 grids, unique puzzle generation, rewards, the action mask, the
solver helpers, reset options and rendering. (Registry-wide checks such as check_env and
pickling are in test_env_registry.py.)"""

import copy
from itertools import combinations, permutations, product

import gymnasium as gym
import numpy as np
import pytest

from trm_rl.envs.sudoku import PLACED_INK, SudokuEnv
from trm_rl.envs.sudoku_puzzles import (
    MAX_BLANKS,
    all_grids,
    count_solutions,
    generate_puzzle,
    solution_bits,
    solve,
)

UNSOLVABLE = [  # no two equal clues share a unit, yet cell (0, 0) has no candidate
    [0, 1, 2, 0],
    [3, 0, 0, 0],
    [4, 0, 0, 0],
    [0, 0, 0, 0],
]


def units(grid: np.ndarray) -> list[np.ndarray]:
    """The 12 rows, columns and boxes of a (4, 4) grid."""
    boxes = [grid[r : r + 2, c : c + 2].ravel() for r in (0, 2) for c in (0, 2)]
    return [*grid, *grid.T, *boxes]


def is_valid_grid(grid: np.ndarray) -> bool:
    return all(sorted(unit.tolist()) == [1, 2, 3, 4] for unit in units(grid))


def legal_mask(obs: np.ndarray) -> np.ndarray:
    """Brute-force mask: blank cell and digit absent from its row, column and box."""
    grid = obs.reshape(4, 4)
    mask = np.zeros(64, dtype=bool)
    for action in range(64):
        (row, col), digit = divmod(action // 4, 4), action % 4 + 1
        box = grid[row // 2 * 2 : row // 2 * 2 + 2, col // 2 * 2 : col // 2 * 2 + 2]
        seen = {*grid[row].tolist(), *grid[:, col].tolist(), *box.ravel().tolist()}
        mask[action] = grid[row, col] == 0 and digit not in seen
    return mask


def solution_action(obs: np.ndarray, solution: np.ndarray, cell: int) -> int:
    return 4 * cell + int(solution[cell]) - 1


def test_there_are_exactly_288_grids_and_all_are_valid():
    grids = all_grids()
    assert grids.shape == (288, 4, 4) and grids.dtype == np.int64
    assert len({grid.tobytes() for grid in grids}) == 288
    assert all(is_valid_grid(grid) for grid in grids)
    assert not grids.flags.writeable


@pytest.mark.slow
def test_all_grids_agrees_with_an_independent_enumeration():
    rows = np.array(list(permutations([1, 2, 3, 4])))
    stacked = rows[np.array(list(product(range(24), repeat=4)))]  # (24**4, 4, 4)
    columns_ok = (np.sort(stacked, axis=1) == np.arange(1, 5)[:, None]).all(axis=(1, 2))
    boxes = stacked.reshape(-1, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 4)
    boxes_ok = (np.sort(boxes, axis=2) == np.arange(1, 5)).all(axis=(1, 2))
    brute = stacked[columns_ok & boxes_ok]
    assert {grid.tobytes() for grid in brute} == {grid.tobytes() for grid in all_grids()}


def test_twelve_blanks_is_the_most_a_unique_puzzle_allows():
    grids = all_grids().reshape(288, 16)

    def some_clue_set_is_unique(n_clues: int) -> bool:
        for cells in combinations(range(16), n_clues):
            _, counts = np.unique(grids[:, cells], axis=0, return_counts=True)
            if (counts == 1).any():
                return True
        return False

    assert not some_clue_set_is_unique(3)
    assert some_clue_set_is_unique(4)
    assert MAX_BLANKS == 12


@pytest.mark.parametrize("blanks", range(1, 13))
def test_generated_puzzles_are_unique_with_the_requested_blanks(blanks):
    env = SudokuEnv(blanks=blanks)
    env.reset(seed=blanks)
    for _ in range(40):
        obs, info = env.reset()
        assert obs.shape == (16,) and obs.dtype == np.int64
        assert (obs == 0).sum() == blanks == info["blanks"]
        assert count_solutions(obs) == 1
        assert not info["is_success"]


def test_default_difficulty_covers_4_to_12_blanks():
    env = SudokuEnv()
    env.reset(seed=0)
    seen = {int((env.reset()[0] == 0).sum()) for _ in range(300)}
    assert seen == set(range(4, 13))


def test_generate_puzzle_returns_the_unique_solution():
    rng = np.random.default_rng(0)
    for blanks in (0, 6, 12):
        puzzle, solution = generate_puzzle(rng, blanks)
        assert is_valid_grid(solution) and (puzzle == 0).sum() == blanks
        np.testing.assert_array_equal(solve(puzzle), solution)


def test_same_seed_same_puzzles():
    def puzzles(seed: int) -> list[np.ndarray]:
        env = SudokuEnv()
        return [env.reset(seed=seed)[0]] + [env.reset()[0] for _ in range(20)]

    first, again, other = puzzles(5), puzzles(5), puzzles(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_playing_the_solution_in_any_order_earns_one_per_digit_plus_ten(seed):
    env = SudokuEnv(blanks=(1, 12))
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(10):
        obs, info = env.reset()
        solution = solve(obs).reshape(16)
        order = rng.permutation(np.flatnonzero(obs == 0))
        total = 0.0
        for i, cell in enumerate(order):
            action = solution_action(obs, solution, cell)
            assert info["action_mask"][action]
            obs, reward, terminated, truncated, info = env.step(np.int64(action))
            last = i == len(order) - 1
            assert reward == (11.0 if last else 1.0)
            assert (terminated, truncated, info["is_success"]) == (last, False, last)
            assert info["blanks"] == len(order) - 1 - i
            total += reward
        np.testing.assert_array_equal(obs, solution)
        assert total == len(order) + 10
        assert not info["action_mask"].any()


def test_illegal_placements_cost_one_and_change_nothing():
    env = SudokuEnv(blanks=8)
    obs, info = env.reset(seed=0)
    grid = obs.reshape(4, 4)
    clue_cell = int(np.flatnonzero(obs)[0])
    blank_cell = int(np.flatnonzero(obs == 0)[0])
    row_digits = [d for d in grid[blank_cell // 4] if d]
    column_digits = [d for d in grid[:, blank_cell % 4] if d]
    conflicting = (row_digits or column_digits)[0]
    for action in (4 * clue_cell, 4 * clue_cell + 3, 4 * blank_cell + conflicting - 1):
        after, reward, terminated, truncated, after_info = env.step(action)
        assert (reward, terminated, truncated) == (-1.0, False, False)
        np.testing.assert_array_equal(after, obs)
        np.testing.assert_array_equal(after_info["action_mask"], info["action_mask"])
        assert after_info["blanks"] == 8 and not after_info["is_success"]


def test_a_legal_but_wrong_digit_is_a_dead_end():
    env = SudokuEnv(blanks=12)
    obs, _ = env.reset(seed=0)
    solution = solve(obs).reshape(16)
    mask = env.action_masks()
    wrong = [a for a in np.flatnonzero(mask) if a % 4 + 1 != solution[a // 4]]
    assert wrong, "a 12-blank puzzle has legal but wrong placements"
    obs, reward, terminated, truncated, info = env.step(wrong[0])
    assert (reward, terminated, truncated, info["is_success"]) == (0.0, True, False, False)
    assert obs[wrong[0] // 4] == wrong[0] % 4 + 1
    assert count_solutions(obs) == 0


def test_step_after_the_episode_ends_raises():
    env = SudokuEnv(blanks=12)
    obs, _ = env.reset(seed=0)
    solution = solve(obs).reshape(16)
    wrong = [a for a in np.flatnonzero(env.action_masks()) if a % 4 + 1 != solution[a // 4]]
    legal = [a for a in np.flatnonzero(env.action_masks()) if a not in wrong]
    assert env.step(wrong[0])[2]
    with pytest.raises(gym.error.ResetNeeded, match=r"dead end\): call reset"):
        env.step(legal[0])
    obs, _ = env.reset(seed=0)
    for cell in np.flatnonzero(obs == 0):
        *_, terminated, _, info = env.step(4 * cell + solution[cell] - 1)
    assert terminated and info["is_success"]
    with pytest.raises(RuntimeError, match=r"grid complete\): call reset"):
        env.step(0)


def test_mask_matches_the_rules_and_is_never_empty_while_running():
    env = SudokuEnv(blanks=(1, 12))
    rng = np.random.default_rng(0)
    checked = 0
    for episode in range(150):
        obs, info = env.reset(seed=episode)
        solution = solve(obs).reshape(16)
        terminated = False
        while not terminated:
            expected = legal_mask(obs)
            np.testing.assert_array_equal(info["action_mask"], expected)
            np.testing.assert_array_equal(env.action_masks(), expected)
            assert expected.any()
            draw = rng.random()
            if draw < 0.3:
                action = int(rng.integers(64))
            elif draw < 0.9:
                cell = int(rng.choice(np.flatnonzero(obs == 0)))
                action = solution_action(obs, solution, cell)
            else:
                action = int(rng.choice(np.flatnonzero(expected)))
            obs, reward, terminated, _, info = env.step(action)
            assert (reward == -1.0) == (not expected[action])
            checked += 1
    assert checked > 1000


def test_filling_naked_singles_solves_every_generated_puzzle():
    # The difficulty a policy faces: every position has a cell with one legal digit, and
    # that digit is right, so the task is to find such a cell (in any order of the cells).
    env = SudokuEnv()
    for episode in range(300):
        env.reset(seed=episode)
        terminated = False
        while not terminated:
            candidates = env.action_masks().reshape(16, 4)
            singles = np.flatnonzero(candidates.sum(axis=1) == 1)
            assert singles.size > 0
            cell = int(singles[episode % singles.size])
            _, reward, terminated, _, info = env.step(4 * cell + int(candidates[cell].argmax()))
            assert reward >= 1.0
        assert info["is_success"]


def test_masked_out_actions_are_exactly_the_illegal_ones():
    env = SudokuEnv(blanks=(6, 12))
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        solution = solve(obs).reshape(16)
        for cell in np.flatnonzero(obs == 0)[:3]:
            obs = env.step(solution_action(obs, solution, cell))[0]
        mask = env.action_masks()
        for action in range(64):
            clone = copy.deepcopy(env)
            after, reward, *_ = clone.step(action)
            assert (reward == -1.0) == (not mask[action]), action
            if not mask[action]:
                np.testing.assert_array_equal(after, obs)


def test_returned_arrays_are_copies():
    env = SudokuEnv()
    obs, info = env.reset(seed=0)
    before, mask = obs.copy(), info["action_mask"].copy()
    obs[:] = 4
    info["action_mask"][:] = False
    env.action_masks()[:] = False
    clue_cell = int(np.flatnonzero(before)[0])
    np.testing.assert_array_equal(env.step(4 * clue_cell)[0], before)
    np.testing.assert_array_equal(env.action_masks(), mask)
    np.testing.assert_array_equal(env.puzzle.ravel(), before)


@pytest.mark.parametrize("action", [5, np.int64(5), np.int32(5), np.array(5)])
def test_integer_actions_of_every_kind_are_accepted(action):
    env = SudokuEnv()
    env.reset(seed=0)
    assert env.step(action)[1] in (-1.0, 0.0, 1.0)


@pytest.mark.parametrize("action", [64, -1, 1.5, "3", True, np.array([3]), np.float32(2)])
def test_out_of_space_actions_raise(action):
    env = SudokuEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be .*\[0, 63\]"):
        env.step(action)


def test_step_before_reset_raises():
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        SudokuEnv().step(0)


def test_puzzle_option_replays_a_recorded_puzzle():
    source, target = SudokuEnv(), SudokuEnv()
    source.reset(seed=3)
    puzzle = source.puzzle
    assert puzzle.shape == (4, 4)
    for given in (puzzle, puzzle.ravel(), puzzle.tolist()):
        obs, info = target.reset(options={"puzzle": given})
        np.testing.assert_array_equal(obs, puzzle.ravel())
        np.testing.assert_array_equal(info["action_mask"], legal_mask(obs))


def test_a_puzzle_with_several_solutions_is_accepted_and_any_solution_wins():
    grids = all_grids()
    puzzle = grids[0].copy()
    puzzle[0, :] = 0
    puzzle[1, :] = 0
    assert count_solutions(puzzle, limit=None) >= 2
    env = SudokuEnv()
    for solution in [grids[0], *(g for g in grids[1:] if (g[2:] == grids[0][2:]).all())]:
        obs, _ = env.reset(options={"puzzle": puzzle})
        for cell in np.flatnonzero(obs == 0):
            obs, reward, terminated, _, info = env.step(4 * cell + solution.ravel()[cell] - 1)
        assert terminated and info["is_success"] and reward == 11.0


def full_grid() -> np.ndarray:
    return all_grids()[0].copy()


@pytest.mark.parametrize(
    ("puzzle", "match"),
    [
        (np.zeros((3, 4), dtype=int), "shape"),
        (np.zeros(15, dtype=int), "shape"),
        (np.zeros((4, 4)), "integers"),
        ([["a"] * 4] * 4, "integers"),
        (np.full((4, 4), 5), "0-4"),
        (np.full((4, 4), -1), "0-4"),
        ([[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4], "conflicting clues"),
        ([[2, 0, 0, 0], [0] * 4, [2, 0, 0, 0], [0] * 4], "conflicting clues"),
        ([[3, 0, 0, 0], [0, 3, 0, 0], [0] * 4, [0] * 4], "conflicting clues"),
        (UNSOLVABLE, "no solution"),
        (full_grid(), "no blank"),
    ],
)
def test_bad_puzzles_raise(puzzle, match):
    with pytest.raises(ValueError, match=match):
        SudokuEnv().reset(options={"puzzle": puzzle})


def test_bad_options_raise():
    env = SudokuEnv()
    with pytest.raises(ValueError, match="blanks_left"):
        env.reset(options={"blanks_left": 3})
    with pytest.raises(TypeError, match="options must be a dict"):
        env.reset(options=[("puzzle", UNSOLVABLE)])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"blanks": 0}, ValueError),
        ({"blanks": 13}, ValueError),
        ({"blanks": (5, 4)}, ValueError),
        ({"blanks": (1, 13)}, ValueError),
        ({"blanks": "easy"}, TypeError),
        ({"blanks": True}, TypeError),
        ({"blanks": 2.5}, TypeError),
        ({"blanks": (1, 2, 3)}, TypeError),
        ({"render_mode": "human"}, ValueError),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        SudokuEnv(**kwargs)


def test_solver_helpers():
    empty = np.zeros((4, 4), dtype=int)
    assert count_solutions(empty, limit=None) == 288
    assert count_solutions(empty) == 2 and count_solutions(empty, limit=5) == 5
    assert solve(UNSOLVABLE) is None and count_solutions(UNSOLVABLE) == 0
    assert is_valid_grid(solve(empty))
    with pytest.raises(ValueError, match="limit"):
        count_solutions(empty, limit=0)
    with pytest.raises(ValueError, match="blanks"):
        generate_puzzle(np.random.default_rng(0), 13)


def test_the_bitmask_and_backtracking_solvers_agree():
    rng = np.random.default_rng(1)
    counts = []
    for _ in range(200):
        grid = all_grids()[rng.integers(288)].ravel().copy()
        grid[rng.random(16) < 0.7] = 0
        legal = np.flatnonzero(legal_mask(grid))
        if legal.size:  # one random legal digit, which often leaves no solution
            action = rng.choice(legal)
            grid[action // 4] = action % 4 + 1
        counts.append(count_solutions(grid, limit=None))
        assert solution_bits(grid).bit_count() == counts[-1]
    assert 0 in counts and 1 in counts and max(counts) > 1


def test_ansi_render_marks_placed_digits():
    env = SudokuEnv(blanks=6, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    cell = int(np.flatnonzero(obs == 0)[0])
    env.step(solution_action(obs, solve(obs).reshape(16), cell))
    text = env.render()
    lines = text.splitlines()
    assert len(lines) == 7 and lines[0] == lines[3] == lines[6] == "+------+------+"
    assert text.count("[") == 1 and text.count(".") == 5
    assert sum(ch.isdigit() for ch in text) == 11


def test_rgb_render_draws_clues_and_placed_digits_in_different_colours():
    env = SudokuEnv(blanks=6, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    image = env.render()
    assert image.shape == (163, 163, 3) and image.dtype == np.uint8
    assert not (image == PLACED_INK).all(axis=2).any()
    cell = int(np.flatnonzero(obs == 0)[0])
    env.step(solution_action(obs, solve(obs).reshape(16), cell))
    placed = env.render()
    np.testing.assert_array_equal(placed, env.render())
    assert (placed == PLACED_INK).all(axis=2).any()
    assert (placed != image).any(axis=2).sum() > 50


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array"])
def test_render_before_reset_raises(render_mode):
    with pytest.raises(gym.error.ResetNeeded, match=r"reset\(\) before render"):
        SudokuEnv(render_mode=render_mode).render()


def test_render_without_mode_returns_none():
    env = SudokuEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None
