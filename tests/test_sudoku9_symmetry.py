"""Sudoku symmetries: puzzles, observations, masks and actions map together."""

import gymnasium as gym
import numpy as np
import pytest

from trm_rl.envs.sudoku9_puzzles import (
    DIFFICULTIES,
    count_solutions,
    generate_puzzle,
    grade,
    solve,
)
from trm_rl.envs.sudoku9_symmetry import Symmetry, random_symmetry


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_random_symmetry_keeps_grade_uniqueness_and_the_solution(difficulty):
    rng = np.random.default_rng(3)
    puzzle, solution = generate_puzzle(rng, difficulty)
    images = [random_symmetry(rng, puzzle, solution) for _ in range(4)]
    for image, image_solution in images:
        assert grade(image) == difficulty
        assert count_solutions(image) == 1
        np.testing.assert_array_equal(solve(image).ravel(), image_solution)
        assert (image == 0).sum() == (puzzle == 0).sum()
    assert len({image.tobytes() for image, _ in images}) == 4


def test_random_symmetry_is_drawn_by_the_symmetry_class():
    puzzle, _ = generate_puzzle(np.random.default_rng(0), "naked")
    (image,) = random_symmetry(np.random.default_rng(7), puzzle)
    np.testing.assert_array_equal(image, Symmetry.random(np.random.default_rng(7)).grid(puzzle))


def played(puzzle: np.ndarray, observation: str) -> tuple[np.ndarray, np.ndarray]:
    """The first observation and action mask of ``puzzle`` in the env."""
    env = gym.make("TRM-Sudoku-9x9-v0", observation=observation)
    obs, _ = env.reset(options={"puzzle": puzzle})
    return obs, env.unwrapped.action_masks()


@pytest.mark.parametrize("observation", ["digits", "candidates"])
def test_an_image_observation_and_mask_are_those_of_the_image_board(observation):
    rng = np.random.default_rng(1)
    puzzle, _ = generate_puzzle(rng, "hidden")
    obs, masks = played(puzzle, observation)
    for symmetry in [Symmetry.identity()] + [Symmetry.random(rng) for _ in range(3)]:
        image_obs, image_masks = played(symmetry.grid(puzzle).reshape(9, 9), observation)
        np.testing.assert_array_equal(symmetry.observations(obs[None])[0], image_obs)
        assert symmetry.observations(obs[None]).dtype == obs.dtype
        np.testing.assert_array_equal(symmetry.to_image_actions(masks[None])[0], image_masks)


def test_right_placements_map_to_right_placements_and_back():
    rng = np.random.default_rng(2)
    puzzle, solution = generate_puzzle(rng, "hidden")
    symmetry = Symmetry.random(rng)
    image_solution = symmetry.grid(solution)
    right = np.zeros((1, 729), bool)
    for cell in np.flatnonzero(puzzle.ravel() == 0):
        right[0, 9 * cell + solution.ravel()[cell] - 1] = True
    image_right = symmetry.to_image_actions(right)[0]
    cells, digits = np.divmod(np.flatnonzero(image_right), 9)
    np.testing.assert_array_equal(image_solution[cells], digits + 1)
    assert image_right.sum() == right.sum()
    values = rng.normal(size=(2, 729))
    np.testing.assert_array_equal(
        symmetry.to_original_actions(symmetry.to_image_actions(values)), values
    )


def test_the_identity_changes_nothing():
    puzzle, _ = generate_puzzle(np.random.default_rng(4), "naked")
    obs, masks = played(puzzle, "candidates")
    identity = Symmetry.identity()
    np.testing.assert_array_equal(identity.grid(puzzle), puzzle.ravel())
    np.testing.assert_array_equal(identity.observations(obs[None])[0], obs)
    np.testing.assert_array_equal(identity.to_image_actions(masks[None])[0], masks)
