"""Hindsight outcomes of a solved Sudoku episode: which placements would have been right.

A TRM Sudoku puzzle (4x4 or 9x9, generated) has one solution, and an episode that fills the
last blank (reward ``1 + 10``, the completion bonus) ends on it. Then every legal placement
at every position of the episode is known to be right (the solution's digit: reward +1) or
a dead end (reward 0), not only the ones the agent played. The agent sees the final grid,
so these labels come from its own experience; a failed episode teaches only its played
placements. For puzzles with several solutions (``reset`` options of ``TRM-Sudoku-v0``)
the labels would name one solution's digits only.
"""

from __future__ import annotations

import numpy as np

from trm_rl.envs.sudoku import COMPLETION_BONUS

__all__ = ["solved_episode_outcomes"]


def _grid(observation: np.ndarray, size: int) -> np.ndarray:
    """The digits ``[size * size]`` (0 blank) of a ``"digits"`` observation (the flat grid)
    or a ``"candidates"`` one (digit planes first: ``[2 * size, size, size]``)."""
    if observation.ndim == 1:
        return observation.astype(np.int64)
    digits = np.arange(1, size + 1)[:, None, None]
    return (observation[:size] * digits).sum(0).astype(np.int64).reshape(-1)


def solved_episode_outcomes(
    observations: np.ndarray, actions: np.ndarray, rewards: np.ndarray, masks: np.ndarray
) -> np.ndarray | None:
    """Every legal placement's outcome at each position of one episode, if it was solved.

    Args:
        observations: ``[T, ...]`` the episode's observations (``"digits"`` or
            ``"candidates"``), before each step.
        actions: ``[T]`` the placements played (``size * cell + digit - 1``).
        rewards: ``[T]`` their rewards.
        masks: ``[T, size ** 3]`` bool, the legal placements at each position.

    Returns:
        ``[T, size ** 3]`` float: 1 for a legal placement of the solution's digit, 0 for
        any other legal one, NaN for illegal ones; ``None`` when the episode did not end
        by filling the last blank (``rewards[-1] < 1 + COMPLETION_BONUS``).
    """
    if rewards[-1] < 1 + COMPLETION_BONUS:
        return None
    n_actions = masks.shape[1]
    size = round(n_actions ** (1 / 3))
    solution = _grid(observations[-1], size)
    last = int(actions[-1])
    solution[last // size] = last % size + 1
    if (solution == 0).any():
        raise ValueError("a solved episode's final grid has a blank: the episode is not whole")
    right = solution.repeat(size) == np.tile(np.arange(1, size + 1), size * size)
    return np.where(masks, right.astype(np.float32), np.float32(np.nan))
