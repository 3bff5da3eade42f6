"""TRM-Sudoku-9x9-v0: the solver, the technique grader (against well-known puzzles and an
independent set-based implementation), generation per difficulty, rewards, the action
mask, reset options and rendering. (Registry-wide checks such as pickling are in
test_env_registry.py.)"""

import copy

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import trm_rl  # noqa: F401  (registers the ids)
from trm_rl.agents.evaluation import EVAL_SEED_OFFSET
from trm_rl.envs.options import ResetNeeded
from trm_rl.envs.sudoku import PLACED_INK
from trm_rl.envs.sudoku9 import Sudoku9Env
from trm_rl.envs.sudoku9_puzzles import (
    DIFFICULTIES,
    count_solutions,
    generate_puzzle,
    grade,
    solve,
)


def parse(text: str) -> np.ndarray:
    return np.array([int(ch) for ch in text], dtype=np.int64).reshape(9, 9)


# Wikipedia's "Sudoku" article example: naked singles alone solve it.
WIKIPEDIA = parse(
    "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
)
# Project Euler problem 96, grid 02: naked singles get stuck; hidden singles finish it.
EULER_02 = parse(
    "200080300060070084030500209000105408000000000402706000301007040720040060004010003"
)
# Arto Inkala's 2012 "world's hardest Sudoku": singles get stuck at once.
INKALA = parse("800000000003600000070090200050007000000045700000100030001000068008500010090000400")
INKALA_SOLUTION = parse(
    "812753649943682175675491283154237896369845721287169534521974368438526917796318452"
)
# No two equal clues share a unit, yet cell (0, 8) has no candidate (9 is in its column).
UNSOLVABLE = np.zeros((9, 9), dtype=np.int64)
UNSOLVABLE[0, :8] = np.arange(1, 9)
UNSOLVABLE[5, 8] = 9


def units(grid: np.ndarray) -> list[np.ndarray]:
    """The 27 rows, columns and boxes of a (9, 9) grid."""
    boxes = [grid[r : r + 3, c : c + 3].ravel() for r in (0, 3, 6) for c in (0, 3, 6)]
    return [*grid, *grid.T, *boxes]


def is_valid_grid(grid: np.ndarray) -> bool:
    return all(sorted(unit.tolist()) == list(range(1, 10)) for unit in units(grid))


def peers(cell: int) -> set[int]:
    row, col = divmod(cell, 9)
    return {
        other
        for other in range(81)
        if other != cell
        and (
            other // 9 == row
            or other % 9 == col
            or (other // 27, other % 9 // 3) == (row // 3, col // 3)
        )
    }


PEERS = [peers(cell) for cell in range(81)]
UNITS = (
    [[9 * r + c for c in range(9)] for r in range(9)]
    + [[9 * r + c for r in range(9)] for c in range(9)]
    + [
        [9 * (3 * br + r) + 3 * bc + c for r in range(3) for c in range(3)]
        for br in range(3)
        for bc in range(3)
    ]
)


def candidates(cells: list[int], cell: int) -> set[int]:
    return set(range(1, 10)) - {cells[peer] for peer in PEERS[cell]}


def naked_single(cells: list[int]) -> tuple[int, int] | None:
    """A (cell, digit) whose cell has one candidate left, or None."""
    for cell in range(81):
        if cells[cell] == 0 and len(options := candidates(cells, cell)) == 1:
            return cell, options.pop()
    return None


def hidden_single(cells: list[int]) -> tuple[int, int] | None:
    """A (cell, digit) whose digit has one place left in some unit, or None."""
    for unit in UNITS:
        for digit in set(range(1, 10)) - {cells[c] for c in unit}:
            places = [c for c in unit if not cells[c] and digit in candidates(cells, c)]
            if len(places) == 1:
                return places[0], digit
    return None


def fill_singles(puzzle: np.ndarray, hidden: bool) -> list[int]:
    """Independent reference: fill one single at a time (sets, no bit tricks) until stuck."""
    cells = puzzle.ravel().tolist()
    while 0 in cells:
        move = naked_single(cells) or (hidden_single(cells) if hidden else None)
        if move is None:
            break
        cells[move[0]] = move[1]
    return cells


def singles_solve(puzzle: np.ndarray, hidden: bool) -> bool:
    return 0 not in fill_singles(puzzle, hidden)


def reference_grade(puzzle: np.ndarray) -> str:
    if singles_solve(puzzle, hidden=False):
        return "naked"
    return "hidden" if singles_solve(puzzle, hidden=True) else "hard"


def legal_mask(obs: np.ndarray) -> np.ndarray:
    """Brute-force mask: blank cell and digit absent from its row, column and box."""
    cells = obs.tolist()
    mask = np.zeros(729, dtype=bool)
    for cell in range(81):
        if cells[cell] == 0:
            for digit in candidates(cells, cell):
                mask[9 * cell + digit - 1] = True
    return mask


@pytest.mark.parametrize(
    ("puzzle", "expected"), [(WIKIPEDIA, "naked"), (EULER_02, "hidden"), (INKALA, "hard")]
)
def test_the_grader_on_well_known_puzzles(puzzle, expected):
    assert grade(puzzle) == expected == reference_grade(puzzle)
    assert grade(puzzle.ravel()) == expected
    assert count_solutions(puzzle) == 1


def test_where_naked_singles_get_stuck_the_hidden_puzzle_has_a_hidden_single():
    stuck = fill_singles(EULER_02, hidden=False)
    assert 0 in stuck and naked_single(stuck) is None
    cell, digit = hidden_single(stuck)
    assert solve(EULER_02).ravel()[cell] == digit


def test_solve_finds_the_known_solution_of_the_hardest_puzzle():
    np.testing.assert_array_equal(solve(INKALA), INKALA_SOLUTION)
    assert is_valid_grid(INKALA_SOLUTION)


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_generated_puzzles_are_unique_and_have_the_requested_grade(difficulty):
    rng = np.random.default_rng(sum(map(ord, difficulty)))
    for _ in range(4):
        puzzle, solution = generate_puzzle(rng, difficulty)
        assert puzzle.shape == solution.shape == (9, 9) and puzzle.dtype == np.int64
        assert is_valid_grid(solution)
        clues = puzzle != 0
        np.testing.assert_array_equal(puzzle[clues], solution[clues])
        assert count_solutions(puzzle, limit=3) == 1
        np.testing.assert_array_equal(solve(puzzle), solution)
        assert grade(puzzle) == difficulty == reference_grade(puzzle)
        for cell in np.flatnonzero(clues)[:6]:  # minimal: no clue can go
            fewer = puzzle.ravel().copy()
            fewer[cell] = 0
            if difficulty == "hard":
                assert count_solutions(fewer) == 2
            else:
                assert not singles_solve(fewer, hidden=difficulty == "hidden")


def test_generate_puzzle_rejects_an_unknown_difficulty():
    with pytest.raises(ValueError, match="difficulty"):
        generate_puzzle(np.random.default_rng(0), "easy")


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_env_episodes_have_the_requested_grade(difficulty):
    env = Sudoku9Env(difficulty=difficulty)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (81,) and obs.dtype == np.int64
        assert info["difficulty"] == difficulty == grade(obs)
        assert info["blanks"] == (obs == 0).sum() and not info["is_success"]
        assert count_solutions(obs) == 1


def test_mixed_difficulty_draws_every_grade():
    env = Sudoku9Env(difficulty="mixed", variants=1)
    env.reset(seed=0)
    seen = [env.reset()[1]["difficulty"] for _ in range(24)]
    assert set(seen) == set(DIFFICULTIES)
    weighted = Sudoku9Env(difficulty=("naked", "naked", "hidden"), variants=1)
    weighted.reset(seed=0)
    assert {weighted.reset()[1]["difficulty"] for _ in range(12)} == {"naked", "hidden"}


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_max_blanks_fills_blanks_from_the_solution(difficulty):
    full, capped = Sudoku9Env(difficulty=difficulty), Sudoku9Env(difficulty, max_blanks=10)
    for seed in range(3):
        obs, info = capped.reset(seed=seed)
        assert (obs == 0).sum() == info["blanks"] == 10
        assert info["difficulty"] == grade(obs)
        assert count_solutions(obs) == 1
        assert (obs[obs != 0] == solve(obs).ravel()[obs != 0]).all()
        np.testing.assert_array_equal(capped.reset(seed=seed)[0], obs)
        original = full.reset(seed=seed)[0]
        assert ((original == obs) | (original == 0)).all()  # only blanks were filled
    _, info = Sudoku9Env("naked", max_blanks=np.int64(5)).reset(seed=0)
    assert info["blanks"] == 5 and info["difficulty"] == "naked"
    _, info = Sudoku9Env("naked", max_blanks=81).reset(seed=0)
    assert info["blanks"] > 40


def test_a_pair_of_max_blanks_draws_the_cap_per_episode():
    env = Sudoku9Env("naked", max_blanks=[3, 12])
    env.reset(seed=0)
    blanks = [env.reset()[1]["blanks"] for _ in range(40)]
    assert min(blanks) >= 3 and max(blanks) <= 12
    assert len(set(blanks)) >= 6


def test_a_generated_puzzle_serves_variants_resets_then_a_new_one_is_drawn():
    def clue_patterns(variants: int) -> list[int]:
        env = Sudoku9Env("hidden", variants=variants)
        env.reset(seed=0)
        return [int((env.reset()[0] != 0).sum()) for _ in range(9)]

    env = Sudoku9Env("hidden", variants=3)
    first, _ = env.reset(seed=0)
    second, _ = env.reset()
    assert not np.array_equal(first, second)
    # Digit counts are a symmetry invariant: sorted counts of each clue digit match.
    counts = [np.sort(np.bincount(grid, minlength=10)[1:]) for grid in (first, second)]
    np.testing.assert_array_equal(*counts)
    np.testing.assert_array_equal(env.reset(seed=0)[0], first)  # a seed regenerates
    clues = clue_patterns(3)
    assert clues[0] == clues[1] and clues[2] == clues[3] == clues[4]  # seed, 2, then 3 each
    assert len(set(clue_patterns(1))) > 1


def test_same_seed_same_puzzles():
    def puzzles(seed: int) -> list[np.ndarray]:
        env = Sudoku9Env()
        return [env.reset(seed=seed)[0]] + [env.reset()[0] for _ in range(4)]

    first, again, other = puzzles(5), puzzles(5), puzzles(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_replaying_the_solution_in_any_order_succeeds(difficulty):
    env = Sudoku9Env(difficulty=difficulty)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=11)
    solution = solve(obs).ravel()
    order = rng.permutation(np.flatnonzero(obs == 0))
    total = 0.0
    for i, cell in enumerate(order):
        action = 9 * int(cell) + int(solution[cell]) - 1
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
    with pytest.raises(ResetNeeded, match="grid complete"):
        env.step(0)


def test_a_legal_but_wrong_digit_is_a_dead_end():
    env = Sudoku9Env(difficulty="hard")
    obs, _ = env.reset(seed=0)
    solution = solve(obs).ravel()
    wrong = [a for a in np.flatnonzero(env.action_masks()) if a % 9 + 1 != solution[a // 9]]
    obs, reward, terminated, truncated, info = env.step(int(wrong[0]))
    assert (reward, terminated, truncated, info["is_success"]) == (0.0, True, False, False)
    assert obs[wrong[0] // 9] == wrong[0] % 9 + 1
    assert count_solutions(obs) == 0
    with pytest.raises(ResetNeeded, match="dead end"):
        env.step(int(wrong[1]))


def test_illegal_placements_cost_one_and_change_nothing():
    env = Sudoku9Env(difficulty="naked")
    obs, info = env.reset(seed=0)
    grid = obs.reshape(9, 9)
    clue_cell = int(np.flatnonzero(obs)[0])
    blank_cell = int(np.flatnonzero(obs == 0)[0])
    conflicting = int(next(d for d in grid[blank_cell // 9] if d))
    for action in (9 * clue_cell, 9 * clue_cell + 8, 9 * blank_cell + conflicting - 1):
        after, reward, terminated, truncated, after_info = env.step(action)
        assert (reward, terminated, truncated) == (-1.0, False, False)
        np.testing.assert_array_equal(after, obs)
        np.testing.assert_array_equal(after_info["action_mask"], info["action_mask"])
        assert after_info["blanks"] == info["blanks"] and not after_info["is_success"]


def test_mask_matches_the_rules_along_random_play():
    env = Sudoku9Env()
    rng = np.random.default_rng(0)
    checked = 0
    for episode in range(8):
        obs, info = env.reset(seed=episode)
        solution = solve(obs).ravel()
        terminated = False
        while not terminated:
            expected = legal_mask(obs)
            np.testing.assert_array_equal(info["action_mask"], expected)
            np.testing.assert_array_equal(env.action_masks(), expected)
            assert expected.any()
            draw = rng.random()
            if draw < 0.2:
                action = int(rng.integers(729))
            elif draw < 0.99:
                cell = int(rng.choice(np.flatnonzero(obs == 0)))
                action = 9 * cell + int(solution[cell]) - 1
            else:
                action = int(rng.choice(np.flatnonzero(expected)))
            obs, reward, terminated, _, info = env.step(action)
            assert (reward == -1.0) == (not expected[action])
            checked += 1
    assert checked > 100


def test_masked_out_actions_are_exactly_the_ones_rewarded_minus_one():
    env = Sudoku9Env(difficulty="hidden")
    obs, _ = env.reset(seed=2)
    mask = env.action_masks()
    for action in range(0, 729, 4):
        clone = copy.deepcopy(env)
        after, reward, *_ = clone.step(action)
        assert (reward == -1.0) == (not mask[action]), action
        if not mask[action]:
            np.testing.assert_array_equal(after, obs)


def test_puzzle_option_replays_a_recorded_puzzle():
    source, target = Sudoku9Env(), Sudoku9Env()
    _, source_info = source.reset(seed=3)
    puzzle = source.puzzle
    assert puzzle.shape == (9, 9)
    for given in (puzzle, puzzle.ravel(), puzzle.tolist()):
        obs, info = target.reset(options={"puzzle": given})
        np.testing.assert_array_equal(obs, puzzle.ravel())
        np.testing.assert_array_equal(info["action_mask"], legal_mask(obs))
        assert info["difficulty"] == source_info["difficulty"]
    obs, info = target.reset(options={"puzzle": INKALA})
    assert info["difficulty"] == "hard"
    for cell in np.flatnonzero(obs == 0):
        obs, reward, terminated, _, info = target.step(
            9 * int(cell) + INKALA_SOLUTION.ravel()[cell] - 1
        )
    assert terminated and info["is_success"] and reward == 11.0


def several_solutions() -> np.ndarray:
    puzzle, _ = generate_puzzle(np.random.default_rng(0), "hard")
    fewer = puzzle.ravel().copy()
    fewer[np.flatnonzero(fewer)[0]] = 0  # a hard puzzle is minimal: no clue can go
    return fewer


@pytest.mark.parametrize(
    ("puzzle", "match"),
    [
        (np.zeros((9, 8), dtype=int), "shape"),
        (np.zeros((4, 4), dtype=int), "shape"),
        (np.zeros((9, 9)), "integers"),
        (np.full((9, 9), 10), "0-9"),
        (np.full((9, 9), -1), "0-9"),
        (np.pad([[5, 5]], ((0, 8), (0, 7))), "conflicting clues"),
        (np.pad([[7], [7]], ((0, 7), (0, 8))), "conflicting clues"),
        (np.pad([[0, 3], [3, 0]], ((0, 7), (0, 7))), "conflicting clues"),
        (UNSOLVABLE, "no solution"),
        (several_solutions(), "several solutions"),
        (INKALA_SOLUTION, "no blank"),
    ],
)
def test_bad_puzzles_raise(puzzle, match):
    with pytest.raises(ValueError, match=match):
        Sudoku9Env().reset(options={"puzzle": puzzle})


def test_bad_options_raise():
    env = Sudoku9Env()
    with pytest.raises(ValueError, match="difficulty"):
        env.reset(options={"difficulty": "hard"})
    with pytest.raises(TypeError, match="options must be a dict"):
        env.reset(options=[("puzzle", INKALA)])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"difficulty": "easy"}, ValueError),
        ({"difficulty": ()}, ValueError),
        ({"difficulty": ("naked", "expert")}, ValueError),
        ({"difficulty": 3}, TypeError),
        ({"difficulty": None}, TypeError),
        ({"max_blanks": 0}, ValueError),
        ({"max_blanks": 2.5}, TypeError),
        ({"max_blanks": True}, TypeError),
        ({"max_blanks": (5, 4)}, ValueError),
        ({"max_blanks": (0, 4)}, ValueError),
        ({"max_blanks": (1, 2, 3)}, ValueError),
        ({"max_blanks": (1, 2.5)}, TypeError),
        ({"variants": 0}, ValueError),
        ({"variants": 1.5}, TypeError),
        ({"render_mode": "human"}, ValueError),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        Sudoku9Env(**kwargs)


@pytest.mark.parametrize("action", [729, -1, 1.5, "3", True, np.array([3]), np.float32(2)])
def test_out_of_space_actions_raise(action):
    env = Sudoku9Env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be .*\[0, 728\]"):
        env.step(action)


def test_step_and_render_before_reset_raise():
    with pytest.raises(ResetNeeded, match="reset"):
        Sudoku9Env().step(0)
    with pytest.raises(ResetNeeded, match="reset"):
        Sudoku9Env(render_mode="ansi").render()


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_both_env_checkers_pass(difficulty):
    gym_check_env(Sudoku9Env(difficulty=difficulty), skip_render_check=True)
    sb3_check_env(gym.make("TRM-Sudoku-9x9-v0", difficulty=difficulty), warn=False)


def test_solver_helpers():
    empty = np.zeros((9, 9), dtype=int)
    assert count_solutions(empty) == 2 and count_solutions(empty, limit=5) == 5
    assert is_valid_grid(solve(empty))
    assert solve(UNSOLVABLE) is None and count_solutions(UNSOLVABLE) == 0
    assert count_solutions(several_solutions(), limit=10) >= 2
    with pytest.raises(ValueError, match="limit"):
        count_solutions(empty, limit=0)
    with pytest.raises(TypeError, match="limit"):
        count_solutions(empty, limit=True)


def test_ansi_render_marks_placed_digits():
    env = Sudoku9Env(render_mode="ansi")
    obs, _ = env.reset(options={"puzzle": WIKIPEDIA})
    env.step(9 * 2 + 4 - 1)  # (0, 2) is 4 in the solution
    lines = env.render().splitlines()
    assert len(lines) == 13
    assert lines[0] == lines[4] == lines[8] == lines[12] == "+---------+---------+---------+"
    assert lines[1] == "| 5  3 [4]| .  7  . | .  .  . |"
    assert env.render().count(".") == int((obs == 0).sum()) - 1


def test_rgb_render_draws_clues_and_placed_digits_in_different_colours():
    env = Sudoku9Env(render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    image = env.render()
    assert image.shape == (291, 291, 3) and image.dtype == np.uint8
    assert not (image == PLACED_INK).all(axis=2).any()
    cell = int(np.flatnonzero(obs == 0)[0])
    env.step(9 * cell + int(solve(obs).ravel()[cell]) - 1)
    placed = env.render()
    assert (placed == PLACED_INK).all(axis=2).any()
    assert (placed != image).any(axis=2).sum() > 30


def test_held_out_evaluation_seeds_give_other_puzzles_than_training_seeds():
    env = Sudoku9Env(difficulty="naked")
    train = {env.reset(seed=seed)[0].tobytes() for seed in range(5)}
    held_out = {env.reset(seed=EVAL_SEED_OFFSET + i)[0].tobytes() for i in range(5)}
    assert len(train) == len(held_out) == 5 and not train & held_out


def test_candidate_observation_is_the_digits_and_the_mask_as_planes():
    env = Sudoku9Env("hidden", observation="candidates")
    digits = Sudoku9Env("hidden")
    planes, info = env.reset(seed=4)
    grid, _ = digits.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(6):
        assert planes.shape == (18, 9, 9) and env.observation_space.contains(planes)
        flat = planes.reshape(18, 81)
        np.testing.assert_array_equal(flat[:9].argmax(0) + flat[:9].any(0), grid)
        np.testing.assert_array_equal(flat[9:].T.reshape(-1), info["action_mask"])
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        planes, _, terminated, _, info = env.step(action)
        grid, *_ = digits.step(action)
        if terminated:
            break
    gym_check_env(Sudoku9Env(observation="candidates"))
    sb3_check_env(gym.make("TRM-Sudoku-9x9-v0", observation="candidates"), warn=False)
    with pytest.raises(ValueError, match="observation"):
        Sudoku9Env(observation="pencil")
