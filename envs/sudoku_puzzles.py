"""4x4 Sudoku: the 288 solution grids, an exact backtracking solver, unique-puzzle generation.

A grid is a ``[4, 4]`` integer array (row-major when flattened to 16 cells), 0 for a
blank and 1-4 for a digit; rows, columns and the four 2x2 boxes must each hold 1-4
exactly once. Functions accept a grid of shape ``(4, 4)`` or ``(16,)`` and return
``(4, 4)`` arrays of dtype int64.

Two exact solvers live here, each with its own job:

- :func:`solve` / :func:`count_solutions`: backtracking on the cell with the fewest
  candidates (the solver the benchmark uses as a ceiling).
- :data:`GRID_BITS` / :func:`solution_bits`: every 4x4 solution is one of the 288 grids of
  :func:`all_grids`, so the solutions of a puzzle are the grids that agree with all its
  clues; as a Python int bitmask over the 288 grids this costs one AND per clue. The
  generator and :class:`~trm_rl.envs.sudoku.SudokuEnv` use it to test uniqueness and to
  detect dead ends in O(1).

No 3-clue puzzle has a unique solution and some 4-clue ones do (``tests/test_sudoku.py``
checks every clue subset), so a unique puzzle has at most :data:`MAX_BLANKS` = 12 blanks.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from trm_rl.config import require_int

__all__ = [
    "GRID_BITS",
    "MAX_BLANKS",
    "N_CELLS",
    "PEERS",
    "SIZE",
    "all_grids",
    "count_solutions",
    "generate_puzzle",
    "solution_bits",
    "solve",
    "sudoku_peers",
    "validate_grid",
    "validate_puzzle",
]

SIZE = 4
"""Side of the grid; digits are 1..SIZE."""
N_CELLS = SIZE * SIZE
"""Cells of the grid, numbered row-major: ``cell = 4 * row + col``."""
MAX_BLANKS = 12
"""Most blanks a 4x4 puzzle with a unique solution can have (fewest clues: 4)."""
DIGITS = (1, 2, 3, 4)


@functools.cache
def sudoku_peers(box: int) -> tuple[tuple[int, ...], ...]:
    """The peers of every cell of a Sudoku with ``box x box`` boxes (side ``box**2``),
    computed once per ``box``.

    Returns:
        ``peers[cell]``: the cells (ascending, row-major numbering) sharing a row, column or
        box with ``cell``; ``3 * box**2 - 2 * box - 1`` of them (7 for 4x4, 20 for 9x9).
    """
    side = box * box

    def peers(cell: int) -> tuple[int, ...]:
        row, col = divmod(cell, side)
        return tuple(
            other
            for other in range(side * side)
            if other != cell
            and (
                other // side == row
                or other % side == col
                or (other // side // box, other % side // box) == (row // box, col // box)
            )
        )

    return tuple(peers(cell) for cell in range(side * side))


PEERS: tuple[tuple[int, ...], ...] = sudoku_peers(2)
"""The 7 cells sharing a row, column or 2x2 box with each cell."""


def _search(cells: list[int], found: list[tuple[int, ...]], limit: int | None) -> None:
    """Append completions of ``cells`` (16 ints, 0 blank) to ``found``, up to ``limit``."""
    best, best_candidates = -1, DIGITS
    for cell in range(N_CELLS):
        if cells[cell] == 0:
            used = {cells[peer] for peer in PEERS[cell]}
            candidates = tuple(digit for digit in DIGITS if digit not in used)
            if not candidates:
                return
            if best < 0 or len(candidates) < len(best_candidates):
                best, best_candidates = cell, candidates
    if best < 0:
        found.append(tuple(cells))
        return
    for digit in best_candidates:
        cells[best] = digit
        _search(cells, found, limit)
        if limit is not None and len(found) >= limit:
            break
    cells[best] = 0


def _enumerate_grids() -> np.ndarray:
    found: list[tuple[int, ...]] = []
    _search([0] * N_CELLS, found, None)
    grids = np.array(sorted(found), dtype=np.int64).reshape(-1, SIZE, SIZE)
    grids.setflags(write=False)
    return grids


_GRIDS = _enumerate_grids()
_GRID_CELLS = [tuple(grid) for grid in _GRIDS.reshape(-1, N_CELLS).tolist()]


def all_grids() -> np.ndarray:
    """Every valid completed 4x4 grid, in lexicographic order.

    Returns:
        Read-only int64 array of shape ``(288, 4, 4)``.
    """
    return _GRIDS


def _grid_bits() -> tuple[int, ...]:
    bits = [0] * (N_CELLS * SIZE)
    for index, cells in enumerate(_GRID_CELLS):
        for cell, digit in enumerate(cells):
            bits[SIZE * cell + digit - 1] |= 1 << index
    return tuple(bits)


GRID_BITS: tuple[int, ...] = _grid_bits()
"""``GRID_BITS[4 * cell + digit - 1]``: bitmask over :func:`all_grids` (bit ``i`` is grid
``i``) of the grids holding ``digit`` at ``cell``; indexed like the env's actions."""
_ALL_BITS = (1 << len(_GRID_CELLS)) - 1


def validate_grid(puzzle: Any, box: int) -> np.ndarray:
    """Check the shape, digits and clues of a Sudoku puzzle with ``box x box`` boxes.

    Args:
        puzzle: array-like of shape ``(n, n)`` or ``(n * n,)`` with ``n = box**2``,
            integers 0-n (0 = blank).
        box: side of a box (2 for 4x4, 3 for 9x9).

    Returns:
        int64 array of shape ``(n * n,)`` (a copy).

    Raises:
        ValueError: wrong shape, non-integer dtype, a digit outside 0-n, or two equal
            clues in one row, column or box (the message names the cells). Whether the
            puzzle has a solution is not checked here.
    """
    side = box * box
    array = np.asarray(puzzle)
    if array.shape not in ((side, side), (side * side,)):
        raise ValueError(
            f"puzzle must have shape ({side}, {side}) or ({side * side},) (0 = blank, "
            f"1-{side} = digit), got shape {array.shape}"
        )
    if array.dtype.kind not in "iu":
        raise ValueError(f"puzzle must hold integers 0-{side} (0 = blank), got dtype {array.dtype}")
    cells = array.astype(np.int64).reshape(side * side)
    if cells.min() < 0 or cells.max() > side:
        raise ValueError(
            f"puzzle digits must be in 0-{side} (0 = blank), got values {np.unique(cells)}"
        )
    peers = sudoku_peers(box)
    for cell in np.flatnonzero(cells).tolist():
        for peer in peers[cell]:
            if peer > cell and cells[cell] == cells[peer]:
                raise ValueError(
                    f"puzzle has conflicting clues: digit {cells[cell]} at (row, col) "
                    f"{divmod(cell, side)} and {divmod(peer, side)} share a row, column or box"
                )
    return cells


def validate_puzzle(puzzle: Any) -> np.ndarray:
    """Check a 4x4 puzzle's shape, digits and clues; return it flat.

    Args:
        puzzle: array-like of shape ``(4, 4)`` or ``(16,)``, integers 0-4 (0 = blank).

    Returns:
        int64 array of shape ``(16,)`` (a copy).

    Raises:
        ValueError: as :func:`validate_grid`. Whether the puzzle has a solution is not
            checked here (see :func:`solve`).
    """
    return validate_grid(puzzle, 2)


def solution_bits(puzzle: Any) -> int:
    """The puzzle's solutions as a bitmask over :func:`all_grids` (0: no solution).

    Args:
        puzzle: ``(4, 4)`` or ``(16,)`` integers 0-4, validated by :func:`validate_puzzle`.

    Returns:
        int whose bit ``i`` is set when ``all_grids()[i]`` agrees with every clue;
        ``solution_bits(p).bit_count()`` is the number of solutions.
    """
    bits = _ALL_BITS
    for cell, digit in enumerate(validate_puzzle(puzzle).tolist()):
        if digit:
            bits &= GRID_BITS[SIZE * cell + digit - 1]
    return bits


def _solutions(puzzle: Any, limit: int | None) -> list[tuple[int, ...]]:
    found: list[tuple[int, ...]] = []
    _search(validate_puzzle(puzzle).tolist(), found, limit)
    return found


def count_solutions(puzzle: Any, limit: int | None = 2) -> int:
    """Count a puzzle's solutions by backtracking, stopping at ``limit``.

    Args:
        puzzle: ``(4, 4)`` or ``(16,)`` integers 0-4 (0 = blank).
        limit: stop counting here (2 answers "unique or not"); None counts all.

    Returns:
        ``min(number of solutions, limit)``.
    """
    require_int("limit", limit, 1, allow_none=True)
    return len(_solutions(puzzle, limit))


def solve(puzzle: Any) -> np.ndarray | None:
    """Solve a puzzle exactly by backtracking (most-constrained cell first).

    Args:
        puzzle: ``(4, 4)`` or ``(16,)`` integers 0-4 (0 = blank).

    Returns:
        A solution as an int64 ``(4, 4)`` array (the first found when there are several),
        or None when the puzzle has no solution.
    """
    found = _solutions(puzzle, 1)
    return np.array(found[0], dtype=np.int64).reshape(SIZE, SIZE) if found else None


def generate_puzzle(rng: np.random.Generator, blanks: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw a puzzle with exactly ``blanks`` blanks and a unique solution.

    A grid is drawn uniformly from the 288 grids; clues are removed in a random order,
    each only if the solution stays unique, until ``blanks`` cells are blank. A removal
    order can get stuck before 12 blanks (about 1/3 of orders stop at 10 or 11); the draw
    is then repeated with a fresh grid and order, so every ``blanks`` in 0-12 is reached.

    Args:
        rng: the generator to draw from (an env's ``np_random``).
        blanks: number of blank cells, an int in ``[0, 12]``.

    Returns:
        ``(puzzle, solution)``: int64 ``(4, 4)`` arrays; ``puzzle`` has 0 for blanks.
    """
    blanks = int(blanks) if isinstance(blanks, np.integer) else blanks
    require_int("blanks", blanks, 0)
    if blanks > MAX_BLANKS:
        raise ValueError(f"blanks must be in [0, {MAX_BLANKS}], got {blanks}")
    while True:
        index = int(rng.integers(len(_GRID_CELLS)))
        solution = _GRID_CELLS[index]
        clue_bits = [GRID_BITS[SIZE * cell + digit - 1] for cell, digit in enumerate(solution)]
        clues = set(range(N_CELLS))
        for cell in rng.permutation(N_CELLS).tolist():
            if len(clues) == N_CELLS - blanks:
                break
            bits = _ALL_BITS
            for other in clues:
                if other != cell:
                    bits &= clue_bits[other]
            if bits == 1 << index:
                clues.remove(cell)
        if len(clues) == N_CELLS - blanks:
            puzzle = np.zeros(N_CELLS, dtype=np.int64)
            kept = sorted(clues)
            puzzle[kept] = np.array(solution)[kept]
            return puzzle.reshape(SIZE, SIZE), _GRIDS[index].copy()
