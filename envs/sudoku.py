"""4x4 Sudoku: fill the blanks of a fresh unique-solution puzzle, one digit per step."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trm_rl.envs.options import ResetNeeded, checked_int, checked_options
from trm_rl.envs.sudoku_puzzles import (
    GRID_BITS,
    MAX_BLANKS,
    N_CELLS,
    PEERS,
    SIZE,
    generate_puzzle,
    solution_bits,
    validate_puzzle,
)

__all__ = ["SudokuEnv"]

N_ACTIONS = N_CELLS * SIZE
VALID_REWARD = 1.0
INVALID_REWARD = -1.0
DEAD_END_REWARD = 0.0
COMPLETION_BONUS = 10.0
DEFAULT_BLANKS = (4, 12)


def cleared_actions(peers: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, ...]:
    """Per action ``n * cell + digit - 1`` of an ``n x n`` Sudoku (``n = len(peers) ** 0.5``),
    the actions it makes illegal: every digit of ``cell``, and ``digit`` in each peer."""
    side = round(len(peers) ** 0.5)
    return tuple(
        np.array(
            [side * cell + k for k in range(side)] + [side * peer + digit for peer in peers[cell]],
            dtype=np.intp,
        )
        for cell in range(len(peers))
        for digit in range(side)
    )


_CLEARED = cleared_actions(PEERS)

CELL_PX = 40
THICK, THIN = 3, 1
WHITE = np.array([255, 255, 255], dtype=np.uint8)
CLUE_BACKGROUND = np.array([225, 225, 225], dtype=np.uint8)
CLUE_INK = np.array([20, 20, 20], dtype=np.uint8)
PLACED_INK = np.array([30, 100, 220], dtype=np.uint8)
THICK_LINE = np.array([0, 0, 0], dtype=np.uint8)
THIN_LINE = np.array([150, 150, 150], dtype=np.uint8)
_GLYPH_ROWS = {
    1: (".#.", "##.", ".#.", ".#.", "###"),
    2: ("##.", "..#", ".#.", "#..", "###"),
    3: ("##.", "..#", ".#.", "..#", "##."),
    4: ("#.#", "#.#", "###", "..#", "..#"),
    5: ("###", "#..", "##.", "..#", "##."),
    6: (".##", "#..", "###", "#.#", "###"),
    7: ("###", "..#", ".#.", ".#.", ".#."),
    8: ("###", "#.#", "###", "#.#", "###"),
    9: ("###", "#.#", "###", "..#", "##."),
}
GLYPH_SCALE = 5


def glyphs(scale: int) -> dict[int, np.ndarray]:
    """Digit bitmaps 1-9, bool ``[5 * scale, 3 * scale]`` (a 3x5 font scaled ``scale``x)."""
    return {
        digit: np.kron(
            np.array([[ch == "#" for ch in row] for row in rows]),
            np.ones((scale, scale), dtype=bool),
        )
        for digit, rows in _GLYPH_ROWS.items()
    }


GLYPHS = glyphs(GLYPH_SCALE)


def _parse_blanks(blanks: Any) -> tuple[int, int]:
    """``blanks`` as an inclusive ``(low, high)`` range within ``[1, MAX_BLANKS]``."""
    allowed = f"an int or a (low, high) pair of ints with 1 <= low <= high <= {MAX_BLANKS}"
    pair = blanks if isinstance(blanks, tuple | list) else (blanks, blanks)
    try:
        if len(pair) != 2:
            raise TypeError("not a pair")
        low, high = (checked_int("blanks", value, 1) for value in pair)
        if not low <= high <= MAX_BLANKS:
            raise ValueError("out of range")
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"blanks must be {allowed} (a unique 4x4 puzzle has at most {MAX_BLANKS} "
            f"blanks), got {blanks!r}"
        ) from error
    return low, high


class SudokuBoardEnv(gym.Env[np.ndarray, np.int64]):
    """What the 4x4 and 9x9 Sudoku envs share: a ``size x size`` grid filled one digit per
    step, a mask of legal placements, dead-end termination and rendering.

    A subclass sets the class attributes below, calls ``super().__init__(render_mode)``
    and implements the hooks: :meth:`_given` and :meth:`_generated` (the episode's puzzle
    and what it records of the solution) and :meth:`_leaves_no_solution` (whether a placed
    digit is a dead end). It may extend :meth:`_info`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    box: ClassVar[int]
    """Side of a box."""
    size: ClassVar[int]
    """Side of the grid (``box**2``), the number of digits."""
    n_actions: ClassVar[int]
    """``size**3``: action ``size * cell + digit - 1`` places ``digit`` in ``cell``."""
    cleared: ClassVar[tuple[np.ndarray, ...]]
    """Per action, the actions it makes illegal (:func:`cleared_actions`)."""
    cell_px: ClassVar[int]
    """Pixels per cell of the ``rgb_array`` rendering."""
    digit_glyphs: ClassVar[dict[int, np.ndarray]]
    """Digit bitmaps (:func:`glyphs`) that fit in ``cell_px``."""

    def __init__(self, render_mode: str | None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        n_cells = self.size * self.size
        self.observation_space = spaces.MultiDiscrete([self.size + 1] * n_cells)
        self.action_space = spaces.Discrete(self.n_actions)
        self._grid: np.ndarray | None = None
        self._clues = np.zeros(n_cells, dtype=bool)
        self._mask = np.zeros(self.n_actions, dtype=bool)
        self._blanks_left = 0
        self._over = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = checked_options(options, ("puzzle",))
        grid = self._given(options["puzzle"]) if "puzzle" in options else self._generated()
        self._load(grid)
        return self._observation(), self._info(False)

    def _observation(self) -> np.ndarray:
        """The observation of the current grid (a copy)."""
        return self._grid.copy()

    def _given(self, puzzle: Any) -> np.ndarray:
        """The ``puzzle`` option as a flat int64 grid, its solution recorded for
        :meth:`_leaves_no_solution`; ``ValueError`` when it cannot be played."""
        raise NotImplementedError

    def _generated(self) -> np.ndarray:
        """A fresh puzzle from ``np_random`` as a flat int64 grid, its solution recorded for
        :meth:`_leaves_no_solution`."""
        raise NotImplementedError

    @staticmethod
    def _with_blank(grid: np.ndarray) -> np.ndarray:
        """``grid``, or ``ValueError`` when it has no blank."""
        if not (grid == 0).any():
            raise ValueError("puzzle has no blank (0) cell: there is nothing to play")
        return grid

    def _load(self, grid: np.ndarray) -> None:
        """Start an episode from ``grid`` (int64 ``(size * size,)``, 0 for blanks): its
        digits become the clues, the mask allows every placement they leave legal."""
        self._grid = grid.copy()
        self._clues = grid != 0
        self._blanks_left = int(grid.size - self._clues.sum())
        self._over = False
        self._mask = np.ones(self.n_actions, dtype=bool)
        for cell in np.flatnonzero(self._clues):
            self._mask[self.cleared[self.size * cell + grid[cell] - 1]] = False

    def _leaves_no_solution(self, action: int) -> bool:
        """Whether the legal placement ``action``, already on the grid, is a dead end (the
        grid has no completion any more)."""
        raise NotImplementedError

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if type(action) is not int:
            action = self._as_action(action)
        if not 0 <= action < self.n_actions:
            raise ValueError(
                f"action must be in [0, {self.n_actions - 1}] "
                f"({self.size} * cell + digit - 1), got {action}"
            )
        self._check_running()
        success = terminated = False
        if not self._mask[action]:
            reward = INVALID_REWARD
        else:
            reward, terminated, success = self._place(action)
            self._over = terminated
        return self._observation(), reward, terminated, False, self._info(success)

    def _check_running(self) -> None:
        """Raise :class:`~trm_rl.envs.options.ResetNeeded` unless an episode is running."""
        if self._over:
            if self._grid is None:
                raise ResetNeeded("call reset() before step()")
            raise ResetNeeded(
                "the episode ended ("
                + ("grid complete" if self._blanks_left == 0 else "dead end")
                + "): call reset()"
            )

    def _place(self, action: int) -> tuple[float, bool, bool]:
        """Put the legal placement ``action`` on the grid; its reward, whether it ends the
        episode and whether it completes the grid."""
        cell, digit = divmod(action, self.size)
        self._grid[cell] = digit + 1
        self._mask[self.cleared[action]] = False
        self._blanks_left -= 1
        if self._leaves_no_solution(action):
            return DEAD_END_REWARD, True, False
        if self._blanks_left == 0:
            return VALID_REWARD + COMPLETION_BONUS, True, True
        return VALID_REWARD, False, False

    def _as_action(self, action: Any) -> int:
        """A numpy integer scalar or 0-d integer array as an int; ``ValueError`` otherwise."""
        if isinstance(action, np.integer) or (
            isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"
        ):
            return int(action)
        raise ValueError(
            f"action must be an integer in [0, {self.n_actions - 1}] "
            f"({self.size} * cell + digit - 1), got {action!r} ({type(action).__name__})"
        )

    def _info(self, success: bool) -> dict[str, Any]:
        """The ``info`` of ``reset`` and ``step``."""
        return {
            "is_success": success,
            "action_mask": self._mask.copy(),
            "blanks": self._blanks_left,
        }

    def action_masks(self) -> np.ndarray:
        """Legal placements: bool ``(n_actions,)``, True where ``action`` fills a blank cell
        with a digit absent from its row, column and box (the ``MaskablePPO`` convention)."""
        return self._mask.copy()

    @property
    def puzzle(self) -> np.ndarray:
        """The current episode's puzzle: int64 ``(size, size)``, 0 for blanks, the form
        ``reset(options={"puzzle": ...})`` accepts."""
        if self._grid is None:
            raise ResetNeeded("call reset() before reading the puzzle")
        return np.where(self._clues, self._grid, 0).reshape(self.size, self.size)

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without render_mode; pass render_mode='ansi' or "
                f"'rgb_array' to {type(self).__name__} or gym.make"
            )
            return None
        if self._grid is None:
            raise ResetNeeded("call reset() before render()")
        if self.render_mode == "ansi":
            return render_text(self._grid, self._clues, self.box)
        return render_image(self._grid, self._clues, self.box, self.cell_px, self.digit_glyphs)


class SudokuEnv(SudokuBoardEnv):
    """Fill in a 4x4 Sudoku, one digit per step, with an action mask of legal placements.

    ## Description
    Every episode draws a fresh puzzle from the env's seeded ``np_random``: a grid drawn
    uniformly from the 288 valid 4x4 grids, then clues removed in random order while the
    solution stays unique, until the episode's number of blanks (drawn uniformly from
    ``blanks``) is reached (see :func:`~trm_rl.envs.sudoku_puzzles.generate_puzzle`). A
    4x4 puzzle with a unique solution has at most 12 blanks (4 clues), so 12 is the
    hardest setting. The agent places one digit per step; a row, column or 2x2 box must
    never hold a digit twice.

    ## Action Space
    ``Discrete(64)``: ``action = 4 * cell + (digit - 1)`` with ``cell = 4 * row + col``
    in 0-15 and ``digit`` in 1-4. Python ints, numpy integer scalars and 0-d integer
    arrays are accepted; anything else (64, -1, 1.5, an array of shape (1,), a bool)
    raises ``ValueError``.

    ## Observation Space
    ``MultiDiscrete([5] * 16)``, int64, the grid row-major:

    | index             | meaning                              | min | max |
    |-------------------|--------------------------------------|-----|-----|
    | ``4 * row + col`` | 0 blank, else the digit 1-4 in the cell | 0   | 4   |

    ## Action Mask
    ``action_masks()`` (the sb3-contrib ``MaskablePPO`` convention) and
    ``info["action_mask"]`` give a bool ``(64,)`` array, True exactly for the *legal*
    placements: a blank cell and a digit not already in its row, column or box. The
    mask encodes the rules only, never the solution: a policy still has to reason out
    which legal digit is the right one.

    ## Rewards
    - ``-1`` for an illegal action (masked out: a filled cell or a conflicting digit);
      the grid is unchanged and the episode goes on.
    - ``+1`` for a legal placement that keeps the grid completable, i.e. agrees with the
      puzzle's unique solution (with a multi-solution puzzle from ``reset`` options: with
      at least one solution still consistent with the grid); ``+10`` more when it fills
      the last blank.
    - ``0`` for a legal placement that makes the grid uncompletable (a *dead end*); the
      episode terminates as a failure.

    Why the +1 needs agreement with the solution: a legal but wrong digit can never be
    undone, so every later step would be wasted; rewarding it +1 would pay for guessing.
    Ending the episode at once, with 0, gives the policy an immediate, unambiguous
    signal, and it guarantees the mask is never all-False while the episode runs (every
    blank of a completable grid has its solution digit legal). Keeping the mask to the
    rules (not the solution) keeps the task from being solved by the mask alone; the
    mask is False exactly on the actions rewarded -1. Solving a puzzle with ``b`` blanks
    returns ``b + 10``, the maximum.

    ## Starting State
    The puzzle's clues, every other cell 0; ``blanks`` blanks.

    ## Episode End
    - Termination: the last blank is filled (``info["is_success"]`` True), or a dead end
      (``info["is_success"]`` False).
    - Truncation: ``max_episode_steps`` at registration (``TRM-Sudoku-v0``: 32).
    - ``step`` after termination (or before the first ``reset``) raises
      :class:`~trm_rl.envs.options.ResetNeeded` (a ``gymnasium.error.ResetNeeded`` and a
      ``RuntimeError``): call ``reset()``. Gymnasium leaves stepping a terminated env
      undefined; refusing it keeps a finished grid from paying -1 per step and a dead end
      from paying +1 for further placements.

    Dead ends are found in O(1) per step by intersecting the puzzle's solutions (a
    bitmask over the 288 grids, computed at reset) with the grids holding the placed
    digit; ``step`` runs no solver.

    ## Info
    On reset and every step: ``"is_success"`` (True exactly when the grid is complete),
    ``"action_mask"`` (a copy of the mask above) and ``"blanks"`` (blank cells left).

    ## Reset options
    ``reset(options={"puzzle": [4, 4] int array, 0 for blank})`` plays that puzzle (a
    flat ``(16,)`` grid is accepted too). It must have integer digits 0-4, at least one
    blank, no two equal clues in a row/column/box and at least one solution; otherwise
    ``ValueError``. A puzzle with several solutions is accepted: the episode succeeds
    when the grid is completed to any of them. ``env.unwrapped.puzzle`` returns the
    current puzzle in this form, so held-out sets can be recorded and replayed.

    ## Arguments
    - ``blanks`` (int or inclusive ``(low, high)`` range within [1, 12]; default
      ``(4, 12)``): blanks per generated puzzle, drawn uniformly per episode. Fewer than
      4 blanks is nearly trivial; 12 is the maximum a unique puzzle allows.
    - ``render_mode``: ``"ansi"`` (text: clues plain, placed digits in ``[ ]``, blanks
      ``.``, ``|``/``+`` box borders) or ``"rgb_array"`` (uint8 ``[163, 163, 3]``: thin
      grid lines, thick box lines, clues black on grey, placed digits blue on white).
      ``render()`` before the first ``reset`` raises ``ResetNeeded`` (as Gymnasium's
      ``OrderEnforcing`` wrapper does); without a ``render_mode`` it warns and returns
      None. After the episode ends it still draws the final grid.

    ## Version History
    - v0: initial version.
    """

    box = 2
    size = SIZE
    n_actions = N_ACTIONS
    cleared = _CLEARED
    cell_px = CELL_PX
    digit_glyphs = GLYPHS

    def __init__(
        self,
        blanks: int | tuple[int, int] = DEFAULT_BLANKS,
        render_mode: str | None = None,
    ) -> None:
        self.blanks = _parse_blanks(blanks)
        super().__init__(render_mode)
        self._solutions = 0

    def _given(self, puzzle: Any) -> np.ndarray:
        grid = self._with_blank(validate_puzzle(puzzle))
        solutions = solution_bits(grid)
        if not solutions:
            raise ValueError("puzzle has no solution: its clues admit no valid 4x4 grid")
        self._solutions = solutions
        return grid

    def _generated(self) -> np.ndarray:
        low, high = self.blanks
        puzzle, _ = generate_puzzle(self.np_random, int(self.np_random.integers(low, high + 1)))
        grid = puzzle.reshape(N_CELLS)
        self._solutions = solution_bits(grid)
        return grid

    def _leaves_no_solution(self, action: int) -> bool:
        """Narrow the puzzle's solutions (a bitmask over the 288 grids) to those holding
        ``action``'s digit; a dead end when none is left."""
        self._solutions &= GRID_BITS[action]
        return not self._solutions


def render_text(grid: np.ndarray, clues: np.ndarray, box: int) -> str:
    """A Sudoku grid as text: clues plain, placed digits in ``[ ]``, blanks ``.``,
    ``|``/``+`` box borders.

    Args:
        grid: int ``(n * n,)`` digits (0 blank), ``n = box**2``, row-major.
        clues: bool ``(n * n,)``, True on the puzzle's clues.
        box: side of a box.
    """
    side = box * box
    border = "+" + ("-" * 3 * box + "+") * box
    lines = [border]
    for row in range(side):
        cells = []
        for cell in range(side * row, side * row + side):
            digit = int(grid[cell])
            cells.append(" . " if digit == 0 else f" {digit} " if clues[cell] else f"[{digit}]")
        lines.append("|" + "|".join("".join(cells[k : k + box]) for k in range(0, side, box)) + "|")
        if row % box == box - 1:
            lines.append(border)
    return "\n".join(lines) + "\n"


def render_image(
    grid: np.ndarray, clues: np.ndarray, box: int, cell_px: int, digit_glyphs: dict
) -> np.ndarray:
    """A Sudoku grid as a uint8 ``[n * cell_px + 3, n * cell_px + 3, 3]`` image: thin grid
    lines, thick box lines, clues black on grey, placed digits blue on white.

    Args:
        grid: int ``(n * n,)`` digits (0 blank), ``n = box**2``, row-major.
        clues: bool ``(n * n,)``, True on the puzzle's clues.
        box: side of a box.
        cell_px: pixels per cell.
        digit_glyphs: :func:`glyphs` of a scale whose bitmaps fit in ``cell_px``.
    """
    side = box * box
    image_px = side * cell_px + THICK
    image = np.empty((image_px, image_px, 3), dtype=np.uint8)
    image[:] = WHITE
    glyph_h, glyph_w = digit_glyphs[1].shape
    for cell in range(side * side):
        row, col = divmod(cell, side)
        top, left = row * cell_px, col * cell_px
        if clues[cell]:
            image[top : top + cell_px, left : left + cell_px] = CLUE_BACKGROUND
        digit = int(grid[cell])
        if digit:
            y = top + (cell_px + THICK - glyph_h) // 2
            x = left + (cell_px + THICK - glyph_w) // 2
            ink = CLUE_INK if clues[cell] else PLACED_INK
            image[y : y + glyph_h, x : x + glyph_w][digit_glyphs[digit]] = ink
    for line in range(1, side):
        if line % box:
            offset = line * cell_px + THICK // 2
            image[offset : offset + THIN] = THIN_LINE
            image[:, offset : offset + THIN] = THIN_LINE
    for line in range(0, side + 1, box):
        offset = line * cell_px
        image[offset : offset + THICK] = THICK_LINE
        image[:, offset : offset + THICK] = THICK_LINE
    return image
