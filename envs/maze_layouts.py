"""Maze layouts: generation, validation and the BFS exact solver.

A maze is a dict ``{"grid": int8 array [n, n] (1 wall, 0 free), "start": (r, c),
"goal": (r, c)}``, the form :class:`~trm_rl.envs.maze.MazeEnv` accepts in
``reset(options={"maze": ...})`` and exposes as ``env.unwrapped.maze``.

Moves are the env's actions: 0 up (row - 1), 1 down (row + 1), 2 left (col - 1),
3 right (col + 1).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

import numpy as np

ACTION_DELTAS: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""(row, col) displacement of actions 0 up, 1 down, 2 left, 3 right."""

FAMILIES = ("open", "perfect", "mixed")

ORIGINAL_5X5_LAYOUT: np.ndarray = np.zeros((5, 5), dtype=np.int8)
"""The original RL write-up's 5x5 task (``ImprovedMazeEnv`` in
``trm_rl_paper_implementation.py``): an open 5x5 grid with no interior walls, start
(0, 0), goal (4, 4). Its "-0.5 for hitting walls" penalty applies to the border only."""
ORIGINAL_5X5_LAYOUT.flags.writeable = False

NAMED_LAYOUTS: dict[str, np.ndarray] = {"original_5x5": ORIGINAL_5X5_LAYOUT}
"""Layouts ``MazeEnv(layout=...)`` accepts by name (JSON-friendly registration kwargs)."""

Cell = tuple[int, int]


def _neighbours(size: int, row: int, col: int):
    for action, (dr, dc) in enumerate(ACTION_DELTAS):
        r, c = row + dr, col + dc
        if 0 <= r < size and 0 <= c < size:
            yield action, r, c


def shortest_path(grid: np.ndarray, start: Cell, goal: Cell) -> list[int] | None:
    """Breadth-first search from ``start`` to ``goal``.

    Args:
        grid: ``[n, n]`` array, nonzero = wall.
        start: ``(row, col)`` of the first cell.
        goal: ``(row, col)`` of the target cell.

    Returns:
        A shortest list of actions (0 up, 1 down, 2 left, 3 right) leading from ``start``
        to ``goal`` (empty when they coincide), or ``None`` when the goal is unreachable.
        Ties are broken in action order, so the result is deterministic.
    """
    size = len(grid)
    walls = np.asarray(grid).astype(bool).tolist()
    start, goal = (int(start[0]), int(start[1])), (int(goal[0]), int(goal[1]))
    parent: dict[Cell, tuple[Cell, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            actions = []
            while parent[cell] is not None:
                cell, action = parent[cell]
                actions.append(action)
            return actions[::-1]
        for action, r, c in _neighbours(size, *cell):
            if not walls[r][c] and (r, c) not in parent:
                parent[(r, c)] = (cell, action)
                queue.append((r, c))
    return None


def goal_distances(grid: np.ndarray, goal: Cell) -> np.ndarray:
    """BFS distance (moves) from every cell to ``goal``.

    Args:
        grid: ``[n, n]`` array, nonzero = wall.
        goal: ``(row, col)``.

    Returns:
        int64 ``[n, n]``: the distance of each free cell that can reach ``goal``, -1 for
        walls and cells that cannot.
    """
    size = len(grid)
    walls = np.asarray(grid).astype(bool).tolist()
    distances = np.full((size, size), -1, dtype=np.int64)
    goal = (int(goal[0]), int(goal[1]))
    distances[goal] = 0
    queue = deque([goal])
    while queue:
        row, col = queue.popleft()
        for _, r, c in _neighbours(size, row, col):
            if not walls[r][c] and distances[r, c] < 0:
                distances[r, c] = distances[row, col] + 1
                queue.append((r, c))
    return distances


def _reachable(walls: list[list[int]], start: Cell) -> set[Cell]:
    size = len(walls)
    seen = {start}
    stack = [start]
    while stack:
        for _, r, c in _neighbours(size, *stack.pop()):
            if not walls[r][c] and (r, c) not in seen:
                seen.add((r, c))
                stack.append((r, c))
    return seen


def _fewest_walls_path(walls: list[list[int]], rng: np.random.Generator) -> list[Cell]:
    """Cells of a path from (0, 0) to the far corner crossing the fewest walls.

    Dijkstra with cost 1 per wall cell entered, plus a random jitter (summing to < 1
    over any path) so that ties are broken at random rather than by move order.
    """
    size = len(walls)
    goal = (size - 1, size - 1)
    jitter = (rng.random((size, size)) / (size * size)).tolist()
    cost = {(0, 0): 0.0}
    parent: dict[Cell, Cell] = {}
    heap = [(0.0, (0, 0))]
    while heap:
        distance, cell = heapq.heappop(heap)
        if cell == goal:
            break
        if distance > cost[cell]:
            continue
        for _, r, c in _neighbours(size, *cell):
            candidate = distance + walls[r][c] + jitter[r][c]
            if candidate < cost.get((r, c), float("inf")):
                cost[(r, c)] = candidate
                parent[(r, c)] = cell
                heapq.heappush(heap, (candidate, (r, c)))
    path = [goal]
    while path[-1] != (0, 0):
        path.append(parent[path[-1]])
    return path


def open_grid(rng: np.random.Generator, size: int, wall_density: float) -> np.ndarray:
    """A random solvable open maze from (0, 0) to (size - 1, size - 1).

    Every cell but the start and the goal is a wall with probability ``wall_density``
    (i.i.d.). If the goal is then unreachable, the draw is repaired rather than rejected:
    the walls on a start-goal path crossing the fewest walls (ties broken at random) are
    opened, so a repair removes as few walls as possible and dense draws stay dense.

    Returns:
        int8 array ``[size, size]``, 1 wall, 0 free.
    """
    walls = (rng.random((size, size)) < wall_density).astype(np.int8)
    walls[0, 0] = walls[-1, -1] = 0
    rows = walls.tolist()
    if (size - 1, size - 1) not in _reachable(rows, (0, 0)):
        for r, c in _fewest_walls_path(rows, rng):
            rows[r][c] = 0
    return np.array(rows, dtype=np.int8)


def perfect_grid(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random perfect maze (exactly one path between any two free cells) on an odd grid.

    Cells sit at even (row, col); the odd rows/columns between them are walls, and a
    randomised depth-first search (recursive backtracker) from (0, 0) knocks down the
    wall between each cell and the unvisited neighbour it moves to. Start (0, 0) and goal
    (size - 1, size - 1) are both cells, hence connected.

    Returns:
        int8 array ``[size, size]``, 1 wall, 0 free.

    Raises:
        ValueError: if ``size`` is even or < 3.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"perfect mazes need an odd size >= 3, got size={size}")
    rows = [[1] * size for _ in range(size)]
    rows[0][0] = 0
    stack = [(0, 0)]
    while stack:
        row, col = stack[-1]
        options = []
        for dr, dc in ACTION_DELTAS:
            r, c = row + 2 * dr, col + 2 * dc
            if 0 <= r < size and 0 <= c < size and rows[r][c]:
                options.append((r, c))
        if not options:
            stack.pop()
            continue
        r, c = options[rng.integers(len(options))]
        rows[(row + r) // 2][(col + c) // 2] = 0
        rows[r][c] = 0
        stack.append((r, c))
    return np.array(rows, dtype=np.int8)


def generate_maze(
    rng: np.random.Generator, size: int, family: str = "open", wall_density: float = 0.3
) -> dict[str, Any]:
    """Draw one solvable maze from (0, 0) to (size - 1, size - 1).

    Args:
        rng: the only source of randomness (e.g. an env's ``np_random``).
        size: grid side n >= 3.
        family: ``"open"`` (:func:`open_grid`), ``"perfect"`` (:func:`perfect_grid`, odd
            sizes only) or ``"mixed"`` (open or perfect with probability 1/2 each; always
            open on even sizes, where perfect mazes do not exist).
        wall_density: wall probability of the open family, in [0, 1).

    Returns:
        The maze dict ``{"grid", "start", "goal"}``.
    """
    if family == "mixed":
        family = "perfect" if size % 2 and rng.random() < 0.5 else "open"
    if family == "open":
        grid = open_grid(rng, size, wall_density)
    elif family == "perfect":
        grid = perfect_grid(rng, size)
    else:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return {"grid": grid, "start": (0, 0), "goal": (size - 1, size - 1)}


def _cell(name: str, value: Any, size: int) -> Cell:
    array = np.asarray(value)
    if array.shape != (2,) or array.dtype.kind not in "iu":
        raise ValueError(f"maze {name!r} must be two integers [row, col], got {value!r}")
    row, col = int(array[0]), int(array[1])
    if not (0 <= row < size and 0 <= col < size):
        raise ValueError(
            f"maze {name!r} {[row, col]} is outside the grid: row and col must be in "
            f"[0, {size - 1}]"
        )
    return row, col


def validate_maze(maze: Any, size: int) -> tuple[np.ndarray, Cell, Cell, list[int]]:
    """Check a maze dict and return ``(grid, start, goal, shortest action path)``.

    Args:
        maze: ``{"grid": [size, size] array of 0/1 (1 wall), "start": [r, c],
            "goal": [r, c]}``; ``start`` defaults to (0, 0) and ``goal`` to
            (size - 1, size - 1).
        size: the side the grid must have.

    Returns:
        A read-only int8 copy of the grid, the start and goal cells, and a BFS path.

    Raises:
        ValueError: naming the problem (unknown key, shape, values, start/goal outside the
            grid, on a wall or equal, or no path from start to goal).
        TypeError: if ``maze`` is not a dict.
    """
    if not isinstance(maze, dict):
        raise TypeError(
            f'maze must be a dict {{"grid", "start", "goal"}}, got {type(maze).__name__}'
        )
    unknown = set(maze) - {"grid", "start", "goal"}
    if unknown:
        raise ValueError(f"unknown maze keys {sorted(unknown)}; allowed: grid, start, goal")
    if "grid" not in maze:
        raise ValueError('maze needs a "grid": a [size, size] array of 0 (free) and 1 (wall)')
    grid = np.asarray(maze["grid"])
    if grid.shape != (size, size):
        raise ValueError(f"maze grid must have shape ({size}, {size}), got {grid.shape}")
    if grid.dtype.kind not in "biuf" or not np.isin(grid, (0, 1)).all():
        raise ValueError("maze grid must contain only 0 (free) and 1 (wall)")
    grid = grid.astype(np.int8)
    grid.flags.writeable = False
    start = _cell("start", maze.get("start", (0, 0)), size)
    goal = _cell("goal", maze.get("goal", (size - 1, size - 1)), size)
    for name, (row, col) in (("start", start), ("goal", goal)):
        if grid[row, col]:
            raise ValueError(f"maze {name!r} {[row, col]} is on a wall; it must be a free cell")
    if start == goal:
        raise ValueError(f"maze start and goal must differ, both are {list(start)}")
    path = shortest_path(grid, start, goal)
    if path is None:
        raise ValueError(
            f"maze is unsolvable: no path from start {list(start)} to goal {list(goal)}"
        )
    return grid, start, goal, path
