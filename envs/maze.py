"""Grid maze navigation: reach the goal of a fresh random solvable maze each episode."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trm_rl.envs.maze_layouts import (
    ACTION_DELTAS,
    FAMILIES,
    NAMED_LAYOUTS,
    ORIGINAL_5X5_LAYOUT,
    generate_maze,
    shortest_path,
    validate_maze,
)
from trm_rl.envs.options import ResetNeeded, checked_int, checked_number, checked_options

__all__ = ["ORIGINAL_5X5_LAYOUT", "MazeEnv"]

GOAL_REWARD = 10.0
SHAPING = 0.2
STEP_PENALTY = -0.01
BUMP_PENALTY = -0.5
CELL_PX = 16
PALETTE = np.array(
    [
        [235, 235, 235],  # free
        [40, 40, 48],  # wall
        [30, 180, 60],  # goal
        [40, 90, 220],  # agent
    ],
    dtype=np.uint8,
)
GRID_LINE = np.array([180, 180, 180], dtype=np.uint8)


class MazeEnv(gym.Env[np.ndarray, np.int64]):
    """Navigate an ``n x n`` grid maze from the start to the goal.

    ## Description
    Every episode (unless a layout is pinned) draws a fresh random maze from the env's
    seeded ``np_random``, always solvable from the start (0, 0) to the goal
    (n - 1, n - 1). Solving unseen layouts needs planning rather than memorising one route,
    which is what the recursive (TRM) policies are meant to show. The maze generators and
    the BFS solver live in :mod:`trm_rl.envs.maze_layouts`.

    Layout families (``family``):

    - ``"open"``: each cell but start and goal is a wall with probability
      ``wall_density``; unsolvable draws are repaired by opening walls at the edge of the
      start's region (see :func:`~trm_rl.envs.maze_layouts.open_grid`).
    - ``"perfect"``: a carved perfect maze (one path between any two free cells), odd
      ``size`` only.
    - ``"mixed"``: each episode is open or perfect with probability 1/2. On even sizes,
      where perfect mazes do not exist, every episode is open.

    ## Action Space
    ``Discrete(4)``: 0 up (row - 1), 1 down (row + 1), 2 left (col - 1), 3 right
    (col + 1). Python ints, numpy integer scalars and 0-d integer arrays are accepted;
    anything else (4, -1, 1.5, an array of shape (1,), a bool) raises ``ValueError``.

    ## Observation Space
    ``Box(0, 1, (3, n, n), float32)``, one-hot planes:

    | channel | meaning          | min | max |
    |---------|------------------|-----|-----|
    | 0       | wall (1) / free  | 0   | 1   |
    | 1       | agent position   | 0   | 1   |
    | 2       | goal position    | 0   | 1   |

    ## Rewards
    Per step (from the original RL write-up's ``ImprovedMazeEnv``)::

        r = -0.01                                   # every step
            - 0.5      if the move hits a wall or the border (the agent stays put)
            + 0.2 * (d_before - d_after)            # d: Manhattan distance to the goal
            + 10       on reaching the goal

    Shaping telescopes, so an episode that reaches the goal in ``T`` steps with ``b``
    bumps returns ``10 + 0.2 * d_start - 0.01 * T - 0.5 * b``; the BFS path gives the
    maximum. (The original replaced the step penalty by the bump penalty, -0.5 in all;
    here the two add up to -0.51.)

    ## Starting State
    The agent stands on the maze's start cell: (0, 0) for generated mazes.

    ## Episode End
    - Termination: the agent reaches the goal (``info["is_success"]`` is then True).
    - Truncation: ``max_episode_steps`` at registration (``TRM-Maze-v0``: 100;
      ``TRM-Maze-7x7-v0``/``9x9``: ``4 * n**2``; ``TRM-Maze-Fixed-v0``: 100).
    - ``step`` after termination (or before the first ``reset``) raises
      :class:`~trm_rl.envs.options.ResetNeeded` (a ``gymnasium.error.ResetNeeded`` and a
      ``RuntimeError``): call ``reset()``. Gymnasium leaves stepping a terminated env
      undefined; refusing it keeps the goal reward from being paid twice.

    ## Info
    On reset and every step: ``"shortest_path"`` (BFS length, in moves, from the start
    to the goal of the current maze), ``"distance"`` (current Manhattan distance to the
    goal), ``"is_success"`` (True exactly when the agent is on the goal).

    ## Reset options
    ``reset(options={"maze": {"grid": [n, n] array of 0/1 (1 wall), "start": [r, c],
    "goal": [r, c]}})`` plays exactly that maze for this episode (``start`` and ``goal``
    default to the corners); a malformed or unsolvable maze raises ``ValueError``. The
    next reset without options draws again. ``env.unwrapped.maze`` returns the current
    maze in the same form, so held-out sets can be recorded and replayed.

    ## Arguments
    - ``size`` (int >= 3, default 5): grid side ``n``.
    - ``family`` (``"open"``, ``"perfect"``, ``"mixed"``; default ``"open"``).
    - ``wall_density`` (float in [0, 1), default 0.3): wall probability of open mazes.
    - ``layout`` (optional): pin one maze for every episode, either an ``[n, n]`` 0/1
      array (start and goal at the corners), the maze dict above, or a name from
      ``NAMED_LAYOUTS``; overrides ``family``. ``"original_5x5"``
      (``ORIGINAL_5X5_LAYOUT``) is the original write-up's task, used by
      ``TRM-Maze-Fixed-v0``: it had no interior walls, only the border.
    - ``render_mode``: ``"ansi"`` (text: ``#`` wall, ``A`` agent, ``G`` goal, ``.`` free)
      or ``"rgb_array"`` (uint8 ``[16 n, 16 n, 3]``: walls dark, agent blue, goal green).
      ``render()`` before the first ``reset`` raises ``ResetNeeded`` (as Gymnasium's
      ``OrderEnforcing`` wrapper does); without a ``render_mode`` it warns and returns
      None. After the episode ends it still draws the final state.

    ## Version History
    - v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        size: int = 5,
        family: str = "open",
        wall_density: float = 0.3,
        layout: np.ndarray | dict[str, Any] | str | None = None,
        render_mode: str | None = None,
    ) -> None:
        size = checked_int("size", size, 3)
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        if family == "perfect" and size % 2 == 0:
            raise ValueError(
                f'family="perfect" needs an odd size, got size={size}; use "open" or "mixed"'
            )
        wall_density = checked_number("wall_density", wall_density, 0, 1, high_open=True)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.size = size
        self.family = family
        self.wall_density = wall_density
        self.render_mode = render_mode
        self._layout = None
        if isinstance(layout, str):
            if layout not in NAMED_LAYOUTS:
                raise ValueError(
                    f"layout name must be one of {sorted(NAMED_LAYOUTS)}, got {layout!r}"
                )
            layout = NAMED_LAYOUTS[layout]
        if layout is not None:
            pinned = layout if isinstance(layout, dict) else {"grid": layout}
            self._layout = validate_maze(pinned, self.size)

        n = self.size
        self.observation_space = spaces.Box(0.0, 1.0, (3, n, n), np.float32)
        self.action_space = spaces.Discrete(4)
        self._pos: int | None = None
        self._over = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = checked_options(options, ("maze",))
        if "maze" in options:
            grid, start, goal, path = validate_maze(options["maze"], self.size)
        elif self._layout is not None:
            grid, start, goal, path = self._layout
        else:
            maze = generate_maze(self.np_random, self.size, self.family, self.wall_density)
            grid, start, goal = maze["grid"], maze["start"], maze["goal"]
            path = shortest_path(grid, start, goal)
        self._load(grid, start, goal, len(path))
        return self._observation(), self._info(False)

    def _load(
        self, grid: np.ndarray, start: tuple[int, int], goal: tuple[int, int], path_length: int
    ) -> None:
        """Precompute everything ``step`` needs: move table, distances, base planes."""
        n = self.size
        free = (grid == 0).ravel().tolist()
        self._moves = []
        for cell in range(n * n):
            row, col = divmod(cell, n)
            targets = []
            for dr, dc in ACTION_DELTAS:
                r, c = row + dr, col + dc
                inside = 0 <= r < n and 0 <= c < n and free[r * n + c]
                targets.append(r * n + c if inside else cell)
            self._moves.append(targets)
        self._dist = [abs(cell // n - goal[0]) + abs(cell % n - goal[1]) for cell in range(n * n)]
        self._agent_index = [(1, cell // n, cell % n) for cell in range(n * n)]
        self._base = np.zeros((3, n, n), dtype=np.float32)
        self._base[0] = grid
        self._base[2, goal[0], goal[1]] = 1.0
        self._grid = grid
        self._start, self._goal = start, goal
        self._goal_cell = goal[0] * n + goal[1]
        self._pos = start[0] * n + start[1]
        self._shortest = path_length
        self._over = False

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if type(action) is not int:
            action = self._as_action(action)
        if not 0 <= action < 4:
            raise ValueError(f"action must be in {{0, 1, 2, 3}}, got {action}")
        if self._over:
            if self._pos is None:
                raise ResetNeeded("call reset() before step()")
            raise ResetNeeded("the episode ended when the goal was reached: call reset()")
        cell = self._pos
        target = self._moves[cell][action]
        reward = STEP_PENALTY
        if target == cell:
            reward += BUMP_PENALTY
        else:
            reward += SHAPING * (self._dist[cell] - self._dist[target])
            self._pos = target
        terminated = target == self._goal_cell
        if terminated:
            reward += GOAL_REWARD
            self._over = True
        return self._observation(), reward, terminated, False, self._info(terminated)

    @staticmethod
    def _as_action(action: Any) -> int:
        if isinstance(action, np.integer) or (
            isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
        ):
            return int(action)
        raise ValueError(
            f"action must be an integer in {{0, 1, 2, 3}}, got {action!r} ({type(action).__name__})"
        )

    def _observation(self) -> np.ndarray:
        obs = self._base.copy()
        obs[self._agent_index[self._pos]] = 1.0
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        return {
            "shortest_path": self._shortest,
            "distance": self._dist[self._pos],
            "is_success": success,
        }

    @property
    def maze(self) -> dict[str, Any]:
        """The current maze as ``{"grid": int8 [n, n] copy, "start": (r, c), "goal": (r, c)}``,
        the form ``reset(options={"maze": ...})`` accepts."""
        if self._pos is None:
            raise ResetNeeded("call reset() before reading the maze")
        return {"grid": self._grid.copy(), "start": self._start, "goal": self._goal}

    @property
    def agent_pos(self) -> tuple[int, int]:
        """The agent's current ``(row, col)``."""
        if self._pos is None:
            raise ResetNeeded("call reset() before reading the agent position")
        return divmod(self._pos, self.size)

    def _codes(self) -> np.ndarray:
        """``[n, n]`` palette indices: 0 free, 1 wall, 2 goal, 3 agent."""
        codes = self._grid.astype(np.intp)
        codes[self._goal] = 2
        codes[self.agent_pos] = 3
        return codes

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without render_mode; pass render_mode='ansi' or "
                "'rgb_array' to MazeEnv or gym.make"
            )
            return None
        if self._pos is None:
            raise ResetNeeded("call reset() before render()")
        codes = self._codes()
        if self.render_mode == "ansi":
            return "\n".join("".join(".#GA"[code] for code in row) for row in codes) + "\n"
        image = PALETTE[codes].repeat(CELL_PX, axis=0).repeat(CELL_PX, axis=1)
        image[::CELL_PX] = GRID_LINE
        image[:, ::CELL_PX] = GRID_LINE
        return image
