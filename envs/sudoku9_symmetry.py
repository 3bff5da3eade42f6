"""9x9 Sudoku symmetries: the maps of boards, observations and actions that keep the rules.

A symmetry relabels the digits 1-9 (0 stays blank), permutes the three bands and the rows
within each band, the three stacks and the columns within each, and may transpose. It maps
puzzles to puzzles with as many solutions and the same grade (the rules, and so the
singles, are invariant under it), so one generated puzzle yields about 1.2e12
distinct-looking ones for microseconds each (:func:`random_symmetry`), and a policy can be
asked about one board through several of its images
(:class:`~trm_rl.agents.symmetry.SymmetryEnsemble`).

A :class:`Symmetry` maps an *original* board to its *image*; image cell ``v`` shows the
original cell ``cells[v]``, and image digit ``j + 1`` is the original digit
``digits[j] + 1``. Actions ``9 * cell + digit - 1`` map with their cell and digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trm_rl.envs.sudoku9_puzzles import BOX, N_CELLS, SIZE

__all__ = ["Symmetry", "random_symmetry"]


def _line_order(rng: np.random.Generator) -> np.ndarray:
    """A random order of the 9 rows (or columns) that keeps the 3-line bands together."""
    bands = rng.permutation(BOX)
    return np.concatenate([band * BOX + rng.permutation(BOX) for band in bands])


@dataclass(frozen=True, eq=False)
class Symmetry:
    """One symmetry of the 9x9 board (see the module docstring).

    Attributes:
        cells: int ``(81,)``, a permutation: image cell ``v`` shows original cell ``cells[v]``.
        digits: int ``(9,)``, a permutation of 0-8: image digit ``j + 1`` is original digit
            ``digits[j] + 1``.
    """

    cells: np.ndarray
    digits: np.ndarray

    @classmethod
    def identity(cls) -> Symmetry:
        """The symmetry that changes nothing."""
        return cls(np.arange(N_CELLS), np.arange(SIZE))

    @classmethod
    def random(cls, rng: np.random.Generator) -> Symmetry:
        """A uniformly random symmetry drawn from ``rng`` (digits, rows, columns, then
        whether to transpose, in that order)."""
        relabel = rng.permutation(SIZE)
        rows, columns = _line_order(rng), _line_order(rng)
        transpose = bool(rng.integers(2))
        row, column = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
        if transpose:
            row, column = column, row
        return cls((rows[row] * SIZE + columns[column]).ravel(), np.argsort(relabel))

    def _relabelled(self, grids: np.ndarray) -> np.ndarray:
        """``grids`` (any shape, entries 0-9) with each digit replaced by its image digit."""
        return np.concatenate([[0], np.argsort(self.digits) + 1])[grids]

    def grid(self, grid: Any) -> np.ndarray:
        """The image of a ``(9, 9)`` or ``(81,)`` grid (0 blank, 1-9 digits), int64 ``(81,)``."""
        return self._relabelled(np.asarray(grid, dtype=np.int64).reshape(N_CELLS)[self.cells])

    def observations(self, observations: np.ndarray) -> np.ndarray:
        """The images of a batch of :class:`~trm_rl.envs.sudoku9.Sudoku9Env` observations:
        ``"digits"`` ``[B, 81]`` or ``"candidates"`` ``[B, 18, 9, 9]``, same shape and dtype."""
        if observations.shape[1:] == (N_CELLS,):
            return self._relabelled(observations[:, self.cells]).astype(observations.dtype)
        planes = observations.reshape(len(observations), -1, N_CELLS)
        channels = np.concatenate([self.digits, SIZE + self.digits])
        return planes[:, channels][:, :, self.cells].reshape(observations.shape)

    def to_image_actions(self, values: np.ndarray) -> np.ndarray:
        """Per-action values of the original board ``[B, 729]`` (e.g. action masks) as the
        image's: entry ``9 * v + j`` of the result is the original action of cell
        ``cells[v]`` and digit ``digits[j] + 1``."""
        grid = values.reshape(len(values), N_CELLS, SIZE)
        return grid[:, self.cells][:, :, self.digits].reshape(len(values), -1)

    def to_original_actions(self, values: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_image_actions`: per-action values of the image
        ``[B, 729]`` (e.g. log-probabilities) as the original board's."""
        original = np.empty((len(values), N_CELLS, SIZE), dtype=values.dtype)
        original[:, self.cells[:, None], self.digits[None, :]] = values.reshape(
            len(values), N_CELLS, SIZE
        )
        return original.reshape(len(values), -1)


def random_symmetry(rng: np.random.Generator, *grids: Any) -> tuple[np.ndarray, ...]:
    """Apply one random Sudoku symmetry (:meth:`Symmetry.random`) to each of ``grids``
    (e.g. a puzzle and its solution). A puzzle keeps its number of solutions and its
    :func:`~trm_rl.envs.sudoku9_puzzles.grade`, and a solution of it maps to a solution of
    the image.

    Args:
        rng: the generator to draw the symmetry from.
        grids: ``(9, 9)`` or ``(81,)`` integer arrays, 0-9.

    Returns:
        The images, int64 ``(81,)`` arrays, in the order given.
    """
    symmetry = Symmetry.random(rng)
    return tuple(symmetry.grid(grid) for grid in grids)
