"""Untrained reference agents for the benchmark table: a floor and a ceiling.

- ``random``: a uniformly random valid action (from the action mask when one is given).
- ``solver``: an exact solver that reads only the observation: BFS on a maze
  observation ``(3, n, n)`` (walls, agent, goal), backtracking on a 4x4 Sudoku grid.

Both have SB3's ``predict`` signature, so :func:`trm_rl.agents.evaluation.evaluate` plays
them like trained agents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from trm_rl.envs.maze_layouts import shortest_path
from trm_rl.envs.sudoku_puzzles import SIZE, solve


class RandomAgent:
    """Uniformly random valid actions."""

    def __init__(self, action_space: spaces.Space, seed: int) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        batch = observation.shape[0]
        if action_masks is not None:
            actions = [self.rng.choice(np.flatnonzero(mask)) for mask in action_masks]
            return np.asarray(actions), None
        if isinstance(self.action_space, spaces.Discrete):
            return self.rng.integers(self.action_space.n, size=batch), None
        low, high = self.action_space.low, self.action_space.high
        return self.rng.uniform(low, high, size=(batch, *low.shape)).astype(low.dtype), None


class MazeSolver:
    """The first move of a BFS shortest path, read from ``(3, n, n)`` maze observations."""

    def predict(
        self, observation: np.ndarray, *args: Any, **kwargs: Any
    ) -> tuple[np.ndarray, None]:
        actions = []
        for obs in observation:
            agent = np.unravel_index(int(np.argmax(obs[1])), obs[1].shape)
            goal = np.unravel_index(int(np.argmax(obs[2])), obs[2].shape)
            path = shortest_path(
                obs[0].astype(np.int64), tuple(map(int, agent)), tuple(map(int, goal))
            )
            actions.append(path[0] if path else 0)
        return np.asarray(actions), None


class SudokuSolver:
    """Fills the first blank cell with its digit in the backtracking solution."""

    def predict(
        self, observation: np.ndarray, *args: Any, **kwargs: Any
    ) -> tuple[np.ndarray, None]:
        actions = []
        for grid in observation:
            solution = solve(np.asarray(grid).reshape(SIZE, SIZE))
            cell = int(np.flatnonzero(np.asarray(grid) == 0)[0])
            digit = int(solution.reshape(-1)[cell]) if solution is not None else 1
            actions.append(SIZE * cell + digit - 1)
        return np.asarray(actions), None


def reference_agent(
    name: str, observation_space: spaces.Space, action_space: spaces.Space, seed: int
) -> Any:
    """The ``random`` or ``solver`` agent for an env with these spaces."""
    if name == "random":
        return RandomAgent(action_space, seed)
    if name != "solver":
        raise ValueError(f"reference agent must be 'random' or 'solver', got {name!r}")
    if isinstance(observation_space, spaces.MultiDiscrete) and observation_space.shape == (16,):
        return SudokuSolver()
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3:
        return MazeSolver()
    raise ValueError(f"no exact solver for observation space {observation_space}")
