"""9x9 Sudoku: a bitmask solver, a technique grader and unique-puzzle generation.

A grid is a ``[9, 9]`` integer array (row-major when flattened to 81 cells), 0 for a
blank and 1-9 for a digit; rows, columns and the nine 3x3 boxes must each hold 1-9
exactly once. Functions accept a grid of shape ``(9, 9)`` or ``(81,)``.

- Solver (:func:`count_solutions`, :func:`solve`): depth-first search in plain Python on
  9-bit candidate masks; before each branch it fills every naked and hidden single, then
  branches on the cell with the fewest candidates. Counting up to 2 answers "unique or not".
- Grader (:func:`grade`): the techniques a puzzle needs, by a solver that only fills
  singles: ``"naked"`` (solvable by naked singles alone: a blank with one digit left by its
  row, column and box), ``"hidden"`` (needs hidden singles too: a digit with one place left
  in a row, column or box), ``"hard"`` (singles get stuck; more than both is needed).
  In a puzzle with a solution, filling singles is order-independent (each placement only
  removes candidates, so a single stays a single until filled), so a puzzle's grade does
  not depend on the order the grader fills them in.
- Generator (:func:`generate_puzzle`): a random full grid (random digits in three diagonal
  boxes, the rest by the solver in a random digit order), then clues removed in a random
  order while the puzzle keeps its property: for ``"naked"`` (``"hidden"``) while it stays
  solvable by naked (naked and hidden) singles, which implies a unique solution; for
  ``"hard"`` while the solution stays unique (removing a clue keeps it unique exactly when
  no other digit in that cell completes the grid). A ``"hidden"`` result still solvable by
  naked singles alone, or a ``"hard"`` one solvable by singles, is discarded and drawn
  again. A puzzle takes 6-27 ms of CPU time (see :func:`generate_puzzle`), so the env
  generates every puzzle at reset; no pool is needed.

Symmetries of the board (relabelled digits, permuted lines, transpose) are in
:mod:`~trm_rl.envs.sudoku9_symmetry`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trm_rl.config import require_int
from trm_rl.envs.sudoku_puzzles import sudoku_peers, validate_grid

__all__ = [
    "BOX",
    "DIFFICULTIES",
    "N_CELLS",
    "PEERS",
    "SIZE",
    "UNITS",
    "count_solutions",
    "generate_puzzle",
    "grade",
    "solve",
    "validate_puzzle",
]

BOX = 3
"""Side of a box."""
SIZE = BOX * BOX
"""Side of the grid; digits are 1..SIZE."""
N_CELLS = SIZE * SIZE
"""Cells of the grid, numbered row-major: ``cell = 9 * row + col``."""
DIFFICULTIES = ("naked", "hidden", "hard")
"""Technique grades, easiest first (see :func:`grade`)."""

PEERS: tuple[tuple[int, ...], ...] = sudoku_peers(BOX)
"""The 20 cells sharing a row, column or box with each cell."""

_ALL = (1 << SIZE) - 1
_ROW = tuple(cell // SIZE for cell in range(N_CELLS))
_COL = tuple(cell % SIZE for cell in range(N_CELLS))
_BOX = tuple(_ROW[cell] // BOX * BOX + _COL[cell] // BOX for cell in range(N_CELLS))
UNITS = (
    tuple(tuple(range(SIZE * row, SIZE * row + SIZE)) for row in range(SIZE))
    + tuple(tuple(range(col, N_CELLS, SIZE)) for col in range(SIZE))
    + tuple(tuple(cell for cell in range(N_CELLS) if _BOX[cell] == box) for box in range(SIZE))
)
"""The 27 units (rows, columns, boxes) as tuples of 9 cells, rows first, then columns, then
boxes in row-major box order."""
_DIGIT = {1 << (digit - 1): digit for digit in range(1, SIZE + 1)}
_BIT_COUNT = tuple(bin(mask).count("1") for mask in range(_ALL + 1))


class _Grid:
    """A partly filled grid: digits per cell and the digits used per row, column, box."""

    __slots__ = ("boxes", "cells", "cols", "rows")

    def __init__(self, cells: list[int]) -> None:
        self.cells = cells
        self.rows = [0] * SIZE
        self.cols = [0] * SIZE
        self.boxes = [0] * SIZE
        for cell, digit in enumerate(cells):
            if digit:
                bit = 1 << (digit - 1)
                self.rows[_ROW[cell]] |= bit
                self.cols[_COL[cell]] |= bit
                self.boxes[_BOX[cell]] |= bit

    def copy(self) -> _Grid:
        other = _Grid.__new__(_Grid)
        other.cells, other.rows = self.cells[:], self.rows[:]
        other.cols, other.boxes = self.cols[:], self.boxes[:]
        return other

    def candidates(self, cell: int) -> int:
        return _ALL & ~(self.rows[_ROW[cell]] | self.cols[_COL[cell]] | self.boxes[_BOX[cell]])

    def place(self, cell: int, bit: int) -> None:
        self.cells[cell] = _DIGIT[bit]
        self.rows[_ROW[cell]] |= bit
        self.cols[_COL[cell]] |= bit
        self.boxes[_BOX[cell]] |= bit

    def fill_singles(self, hidden: bool) -> bool:
        """Fill naked singles (and hidden singles with ``hidden``) until none is left.

        Returns:
            False when the grid is found contradictory (a blank without candidates, a
            digit without a place in a unit, a cell that two digits need), else True.
        """
        cells, rows, cols, boxes = self.cells, self.rows, self.cols, self.boxes
        blanks = [cell for cell in range(N_CELLS) if not cells[cell]]
        while True:
            progress = False
            for cell in blanks:
                if not cells[cell]:
                    row, col, box = _ROW[cell], _COL[cell], _BOX[cell]
                    mask = _ALL & ~(rows[row] | cols[col] | boxes[box])
                    if not mask:
                        return False
                    if not mask & (mask - 1):
                        cells[cell] = _DIGIT[mask]
                        rows[row] |= mask
                        cols[col] |= mask
                        boxes[box] |= mask
                        progress = True
            if progress:
                blanks = [cell for cell in blanks if not cells[cell]]
                continue
            if not hidden or not blanks:
                return True
            for unit in UNITS:
                once = twice = placed = 0
                for cell in unit:
                    if cells[cell]:
                        placed |= 1 << (cells[cell] - 1)
                    else:
                        mask = _ALL & ~(rows[_ROW[cell]] | cols[_COL[cell]] | boxes[_BOX[cell]])
                        twice |= once & mask
                        once |= mask
                if once | placed != _ALL:
                    return False
                single = once & ~twice
                if single:
                    for cell in unit:
                        if not cells[cell]:
                            bit = self.candidates(cell) & single
                            if bit:
                                if bit & (bit - 1):
                                    return False
                                self.place(cell, bit)
                    progress = True
            if not progress:
                return True
            blanks = [cell for cell in blanks if not cells[cell]]


def _search(
    grid: _Grid, found: list[list[int]], limit: int, rng: np.random.Generator | None
) -> None:
    """Append completions of ``grid`` to ``found`` until it holds ``limit`` of them;
    branch on the digits in a random order drawn from ``rng`` (ascending when None)."""
    if not grid.fill_singles(hidden=True):
        return
    best, best_mask, best_count = -1, 0, SIZE + 1
    for cell in range(N_CELLS):
        if not grid.cells[cell]:
            mask = grid.candidates(cell)
            count = _BIT_COUNT[mask]
            if count < best_count:
                best, best_mask, best_count = cell, mask, count
                if count == 2:
                    break
    if best < 0:
        found.append(grid.cells)
        return
    bits = [1 << k for k in range(SIZE) if best_mask >> k & 1]
    if rng is not None:
        bits = [bits[k] for k in rng.permutation(len(bits))]
    for bit in bits:
        branch = grid.copy()
        branch.place(best, bit)
        _search(branch, found, limit, rng)
        if len(found) >= limit:
            return


def validate_puzzle(puzzle: Any) -> np.ndarray:
    """Check a 9x9 puzzle's shape, digits and clues; return it flat.

    Args:
        puzzle: array-like of shape ``(9, 9)`` or ``(81,)``, integers 0-9 (0 = blank).

    Returns:
        int64 array of shape ``(81,)`` (a copy).

    Raises:
        ValueError: wrong shape, non-integer dtype, a digit outside 0-9, or two equal
            clues in one row, column or box (the message names the cells). Whether the
            puzzle has a solution is not checked here (see :func:`count_solutions`).
    """
    return validate_grid(puzzle, BOX)


def _solutions(puzzle: Any, limit: int) -> list[list[int]]:
    found: list[list[int]] = []
    _search(_Grid(validate_puzzle(puzzle).tolist()), found, limit, None)
    return found


def count_solutions(puzzle: Any, limit: int = 2) -> int:
    """Count a puzzle's solutions, stopping at ``limit``.

    Args:
        puzzle: ``(9, 9)`` or ``(81,)`` integers 0-9 (0 = blank).
        limit: stop counting here (2, the default, answers "unique or not").

    Returns:
        ``min(number of solutions, limit)``.

    Raises:
        TypeError, ValueError: ``limit`` is not an int >= 1.
    """
    require_int("limit", limit, 1)
    return len(_solutions(puzzle, limit))


def solve(puzzle: Any) -> np.ndarray | None:
    """Solve a puzzle exactly.

    Args:
        puzzle: ``(9, 9)`` or ``(81,)`` integers 0-9 (0 = blank).

    Returns:
        A solution as an int64 ``(9, 9)`` array (the first found when there are several),
        or None when the puzzle has no solution.
    """
    found = _solutions(puzzle, 1)
    return np.array(found[0], dtype=np.int64).reshape(SIZE, SIZE) if found else None


def _solved_by_singles(cells: list[int], hidden: bool) -> bool:
    grid = _Grid(cells[:])
    return grid.fill_singles(hidden) and all(grid.cells)


def grade(puzzle: Any) -> str:
    """The technique a puzzle needs: ``"naked"``, ``"hidden"`` or ``"hard"``.

    ``"naked"``: filling naked singles (a blank whose row, column and box leave one digit)
    solves it. ``"hidden"``: naked singles get stuck, and adding hidden singles (a digit
    that fits only one blank of a row, column or box) solves it. ``"hard"``: both get
    stuck. The grade assumes a unique solution (check it with :func:`count_solutions`); a
    contradictory puzzle grades ``"hard"``.

    Args:
        puzzle: ``(9, 9)`` or ``(81,)`` integers 0-9 (0 = blank).
    """
    cells = validate_puzzle(puzzle).tolist()
    if _solved_by_singles(cells, hidden=False):
        return "naked"
    if _solved_by_singles(cells, hidden=True):
        return "hidden"
    return "hard"


def _random_grid(rng: np.random.Generator) -> list[int]:
    cells = [0] * N_CELLS
    for box in (0, 4, 8):
        members = [cell for cell in range(N_CELLS) if _BOX[cell] == box]
        for cell, digit in zip(members, rng.permutation(SIZE) + 1, strict=True):
            cells[cell] = int(digit)
    found: list[list[int]] = []
    _search(_Grid(cells), found, 1, rng)
    return found[0]


def _dig(
    cells: list[int], rng: np.random.Generator, keeps: Callable[[list[int], int, int], bool]
) -> None:
    """Blank the cells of ``cells`` in a random order, each only if ``keeps(cells, cell,
    digit)`` holds once ``cell`` (which held ``digit``) is blank."""
    for cell in rng.permutation(N_CELLS).tolist():
        digit = cells[cell]
        cells[cell] = 0
        if not keeps(cells, cell, digit):
            cells[cell] = digit


def _still_unique(cells: list[int], cell: int, digit: int) -> bool:
    """Whether a puzzle whose unique solution had ``digit`` at the blank ``cell`` still has
    only that solution: no other digit at ``cell`` completes."""
    grid = _Grid(cells[:])
    others = grid.candidates(cell) & ~(1 << (digit - 1))
    for bit in (1 << k for k in range(SIZE) if others >> k & 1):
        branch = grid.copy()
        branch.place(cell, bit)
        found: list[list[int]] = []
        _search(branch, found, 1, None)
        if found:
            return False
    return True


def generate_puzzle(rng: np.random.Generator, difficulty: str) -> tuple[np.ndarray, np.ndarray]:
    """Draw a unique-solution puzzle of a technique grade (see :func:`grade`).

    Clues are removed from a random full grid while the property of the grade holds, so
    the puzzle is minimal for it (no clue can go without losing it). Measured over 40-50
    puzzles each (seed 0): ``"naked"`` puzzles keep 24-30 clues (mean 26), ``"hidden"``
    22-28 (24.5), ``"hard"`` 22-26 (24.3), and take about 6, 11 and 27 ms of CPU time each
    on one core (about 2/3 of the unique-minimal puzzles the ``"hard"`` digging reaches are
    hard; the rest are drawn again).

    Args:
        rng: the generator to draw from (an env's ``np_random``).
        difficulty: one of :data:`DIFFICULTIES`.

    Returns:
        ``(puzzle, solution)``: int64 ``(9, 9)`` arrays; ``puzzle`` has 0 for blanks.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    hidden = difficulty == "hidden"

    def singles_solve(cells: list[int], *_: int) -> bool:
        return _solved_by_singles(cells, hidden)

    keeps = _still_unique if difficulty == "hard" else singles_solve
    while True:
        solution = _random_grid(rng)
        cells = solution[:]
        _dig(cells, rng, keeps)
        if grade(cells) == difficulty:
            shape = (SIZE, SIZE)
            return (
                np.array(cells, dtype=np.int64).reshape(shape),
                np.array(solution, dtype=np.int64).reshape(shape),
            )
