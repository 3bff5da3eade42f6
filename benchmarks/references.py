"""Untrained reference agents for the benchmark table: a floor and a ceiling.

- ``random``: a uniformly random valid action (from the action mask when one is given).
- ``solver``: an exact solver that reads only the observation: BFS on a maze
  observation ``(3, n, n)`` (walls, agent, goal), backtracking on a 4x4 Sudoku grid, and on
  ``TRM-VanDerPol-v0`` the numerical optimum (direct shooting), a ceiling for the return.

Both have SB3's ``predict`` signature, so :func:`trm_rl.agents.evaluation.evaluate` plays
them like trained agents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from trm_rl.envs.dynamics import DT, HORIZON, MU, rk4_step
from trm_rl.envs.maze_layouts import shortest_path
from trm_rl.envs.sudoku_puzzles import SIZE, solve

OPTIMIZER_ITERATIONS = 50
"""L-BFGS-B iterations per plan: on 16 random problems the mean cost is within 0.02% of the
converged optimum's (0.26% with 20, 0.0004% with 100), at a sixth of the time of 300."""
PLAN_TOLERANCE = 1e-4
"""An observed Van der Pol state within this distance of a plan's predicted state (same step
and target) follows that plan."""


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


class VanDerPolOptimal:
    """The optimum of ``TRM-VanDerPol-v0``'s default problem (mu, dt, horizon, Q, R of
    :mod:`trm_rl.envs.dynamics`), played open loop.

    At an episode's first observation ``[x, v, x*, v*, time_remaining]`` it solves the whole
    problem by direct shooting (:func:`trm_rl.agents.control.data.optimal_controls`,
    :data:`OPTIMIZER_ITERATIONS` iterations, all new episodes of a batch at once) and
    predicts the plan's trajectory; later observations follow the plan whose predicted state
    at that step (same target) is within :data:`PLAN_TOLERANCE`. An observation off every
    plan is planned again from there, for
    the remaining steps.
    """

    def __init__(self) -> None:
        self.plans: dict[tuple[int, bytes], list[tuple[np.ndarray, float]]] = {}

    @staticmethod
    def _key(obs: np.ndarray) -> tuple[int, bytes]:
        step = HORIZON - round(float(obs[4]) / DT)
        return step, np.asarray(obs[2:4], np.float32).tobytes()

    def _find(self, obs: np.ndarray) -> float | None:
        for state, control in self.plans.get(self._key(obs), []):
            if np.abs(state - obs[:2]).max() <= PLAN_TOLERANCE:
                return control
        return None

    def _plan(self, observations: np.ndarray) -> None:
        from trm_rl.agents.control.data import optimal_controls

        by_remaining: dict[int, list[np.ndarray]] = {}
        for obs in observations:
            by_remaining.setdefault(round(float(obs[4]) / DT), []).append(obs)
        for remaining, group in by_remaining.items():
            batch = np.asarray(group, dtype=np.float64)
            initial = None if remaining == HORIZON else np.zeros((len(batch), remaining))
            controls = optimal_controls(
                batch[:, :2], batch[:, 2:4], initial, max_iterations=OPTIMIZER_ITERATIONS
            )
            for obs, plan in zip(group, controls.astype(np.float32), strict=True):
                x, v = float(obs[0]), float(obs[1])
                for offset, u in enumerate(plan.tolist()):
                    step = HORIZON - remaining + offset
                    key = (step, np.asarray(obs[2:4], np.float32).tobytes())
                    self.plans.setdefault(key, []).append((np.array([x, v]), u))
                    x, v = rk4_step(x, v, u, DT, MU)

    def predict(
        self, observation: np.ndarray, *args: Any, **kwargs: Any
    ) -> tuple[np.ndarray, None]:
        unplanned = [obs for obs in observation if self._find(obs) is None]
        if unplanned:
            self._plan(np.asarray(unplanned))
        actions = [[self._find(obs)] for obs in observation]
        return np.asarray(actions, dtype=np.float32), None


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
    if isinstance(observation_space, spaces.Box) and observation_space.shape == (5,):
        return VanDerPolOptimal()
    raise ValueError(f"no exact solver for observation space {observation_space}")
