"""9x9 Sudoku: fill the blanks of a fresh technique-graded puzzle, one digit per step."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from trm_rl.envs.options import checked_int
from trm_rl.envs.sudoku import SudokuBoardEnv, cleared_actions, glyphs
from trm_rl.envs.sudoku9_puzzles import (
    BOX,
    DIFFICULTIES,
    N_CELLS,
    PEERS,
    SIZE,
    count_solutions,
    generate_puzzle,
    grade,
    solve,
    validate_puzzle,
)
from trm_rl.envs.sudoku9_symmetry import random_symmetry

__all__ = ["CANDIDATE_CHANNELS", "DIFFICULTY_MIXES", "N_ACTIONS", "OBSERVATIONS", "Sudoku9Env"]

N_ACTIONS = N_CELLS * SIZE
CANDIDATE_CHANNELS = 2 * SIZE
"""Channels of the ``"candidates"`` observation: digit planes, then candidate planes."""
DIFFICULTY_MIXES = {"mixed": DIFFICULTIES}
"""Names accepted by ``difficulty`` besides the grades themselves."""
OBSERVATIONS = ("digits", "candidates")
"""What ``observation`` accepts."""

# Actions made illegal by placing digit d in cell c (action 9c + d - 1): every digit of c,
# and d in each of c's 20 peers.
_CLEARED = cleared_actions(PEERS)

CELL_PX = 32
GLYPHS = glyphs(4)


def _parse_max_blanks(max_blanks: Any) -> tuple[int, int] | None:
    """``max_blanks`` as an inclusive ``(low, high)`` range of caps, or None."""
    if max_blanks is None:
        return None
    if isinstance(max_blanks, tuple | list):
        if len(max_blanks) != 2:
            raise ValueError(
                f"max_blanks must be an int >= 1, a pair (low, high) with 1 <= low <= high, "
                f"or None, got {max_blanks!r}"
            )
        low = checked_int("max_blanks[0]", max_blanks[0], 1)
        high = checked_int("max_blanks[1]", max_blanks[1], low)
        return low, high
    cap = checked_int("max_blanks", max_blanks, 1)
    return cap, cap


def _parse_difficulty(difficulty: Any) -> tuple[str, ...]:
    """``difficulty`` as the non-empty tuple of grades an episode's grade is drawn from."""
    allowed = f"one of {DIFFICULTIES}, {tuple(DIFFICULTY_MIXES)}, or a tuple of grades"
    if isinstance(difficulty, str):
        if difficulty in DIFFICULTY_MIXES:
            return DIFFICULTY_MIXES[difficulty]
        if difficulty in DIFFICULTIES:
            return (difficulty,)
        raise ValueError(f"difficulty must be {allowed}, got {difficulty!r}")
    if not isinstance(difficulty, tuple | list):
        raise TypeError(f"difficulty must be {allowed}, got {difficulty!r}")
    if not difficulty or any(grade not in DIFFICULTIES for grade in difficulty):
        raise ValueError(f"difficulty must be {allowed}, got {difficulty!r}")
    return tuple(difficulty)


class Sudoku9Env(SudokuBoardEnv):
    """Fill in a 9x9 Sudoku, one digit per step, with an action mask of legal placements.

    ## Description
    Every episode draws a fresh unique-solution puzzle from the env's seeded
    ``np_random``, of a *technique grade* drawn uniformly from ``difficulty``: a random
    full grid, then clues removed in random order while the grade's property holds (see
    :func:`~trm_rl.envs.sudoku9_puzzles.generate_puzzle`):

    - ``"naked"``: solvable by naked singles alone (some blank always has exactly one
      digit left by its row, column and box); 24-30 clues.
    - ``"hidden"``: needs hidden singles (a digit that fits only one blank of a row,
      column or box): solvable by naked and hidden singles, not by naked ones alone;
      22-28 clues.
    - ``"hard"``: singles of both kinds get stuck; more than both is needed; 22-26 clues.

    The grades come from a solver that fills singles (not from clue counts). A generated
    puzzle (6-27 ms of CPU) serves ``variants`` resets, each a fresh random symmetry of it
    (:func:`~trm_rl.envs.sudoku9_symmetry.random_symmetry`: relabelled digits, permuted
    rows, columns, bands and stacks, maybe transposed; same grade, different grid), so
    resets cost well under a millisecond on average; a reset with a ``seed`` always
    generates a new puzzle. The agent places one digit per step; a row, column or 3x3 box
    must never hold a digit twice.

    ## Action Space
    ``Discrete(729)``: ``action = 9 * cell + (digit - 1)`` with ``cell = 9 * row + col``
    in 0-80 and ``digit`` in 1-9. Python ints, numpy integer scalars and 0-d integer
    arrays are accepted; anything else (729, -1, 1.5, an array of shape (1,), a bool)
    raises ``ValueError``.

    ## Observation Space
    ``MultiDiscrete([10] * 81)``, int64, the grid row-major:

    | index             | meaning                                  | min | max |
    |-------------------|------------------------------------------|-----|-----|
    | ``9 * row + col`` | 0 blank, else the digit 1-9 in the cell  | 0   | 9   |

    With ``observation="candidates"``: ``Box(0, 1, (18, 9, 9), float32)``, the grid's
    "pencil marks" as planes over the cells: channel ``d - 1`` is 1 where digit ``d``
    stands, channel ``9 + d - 1`` is 1 where placing ``d`` is legal (the action mask as a
    picture). A naked single is then a blank with one candidate; hidden singles and harder
    steps still need reasoning over rows, columns and boxes.

    ## Action Mask
    ``action_masks()`` (the sb3-contrib ``MaskablePPO`` convention) and
    ``info["action_mask"]`` give a bool ``(729,)`` array, True exactly for the *legal*
    placements: a blank cell and a digit not already in its row, column or box. The mask
    encodes the rules only, never the solution.

    ## Rewards
    - ``-1`` for an illegal action (masked out: a filled cell or a conflicting digit);
      the grid is unchanged and the episode goes on.
    - ``+1`` for a legal placement of the solution's digit; ``+10`` more when it fills the
      last blank.
    - ``0`` for a legal placement of any other digit (a *dead end*: every puzzle here has
      exactly one solution, so a digit that differs from it leaves the grid with no
      completion); the digit stays on the grid and the episode terminates as a failure.

    As in ``TRM-Sudoku-v0``: a legal but wrong digit can never be undone, so ending the
    episode at once, with 0, gives an immediate signal and pays nothing for guessing, and
    the mask is never all-False while the episode runs (the solution's digit is legal in
    every blank). Solving a puzzle with ``b`` blanks returns ``b + 10``, the maximum.

    ## Starting State
    The puzzle's clues, every other cell 0 (at most ``max_blanks`` blanks when set).

    ## Episode End
    - Termination: the last blank is filled (``info["is_success"]`` True), or a dead end
      (``info["is_success"]`` False).
    - Truncation: ``max_episode_steps`` at registration (``TRM-Sudoku-9x9-v0``: 162).
    - ``step`` after termination (or before the first ``reset``) raises
      :class:`~trm_rl.envs.options.ResetNeeded` (a ``gymnasium.error.ResetNeeded`` and a
      ``RuntimeError``): call ``reset()``.

    Dead ends are found in O(1) per step by comparing the digit with the solution, which
    the generator returns (or the solver finds for a ``puzzle`` option) at reset.

    ## Info
    On reset and every step: ``"is_success"`` (True exactly when the grid is complete),
    ``"action_mask"`` (a copy of the mask above), ``"blanks"`` (blank cells left) and
    ``"difficulty"`` (the puzzle's grade: ``"naked"``, ``"hidden"`` or ``"hard"``).

    ## Reset options
    ``reset(options={"puzzle": [9, 9] int array, 0 for blank})`` plays that puzzle (a
    flat ``(81,)`` grid is accepted too). It must have integer digits 0-9, at least one
    blank, no two equal clues in a row/column/box and exactly one solution; otherwise
    ``ValueError`` naming the problem. ``env.unwrapped.puzzle`` returns the current
    puzzle in this form, so held-out sets can be recorded and replayed.

    ## Arguments
    - ``difficulty`` (default ``"mixed"``): a grade (``"naked"``, ``"hidden"``,
      ``"hard"``), ``"mixed"`` (all three), or a non-empty tuple/list of grades; each
      episode's grade is drawn uniformly from its entries (repeat one to weight it).
    - ``max_blanks`` (int >= 1 or None, default None): when set, a generated puzzle with
      more blanks gets random blanks filled with the solution's digits (from
      ``np_random``) until ``max_blanks`` are left: shorter episodes for a curriculum
      (an episode ends at the first wrong digit, so a 55-blank puzzle needs 55 right ones
      in a row). Filling can lower the grade (``info["difficulty"]`` reports the grade of
      the puzzle played); ``"naked"`` puzzles stay ``"naked"``. Puzzles from the
      ``puzzle`` option are played as given.
    - ``render_mode``: ``"ansi"`` (text: clues plain, placed digits in ``[ ]``, blanks
      ``.``, ``|``/``+`` box borders) or ``"rgb_array"`` (uint8 ``[291, 291, 3]``: thin
      grid lines, thick box lines, clues black on grey, placed digits blue on white).
      ``render()`` before the first ``reset`` raises ``ResetNeeded``; without a
      ``render_mode`` it warns and returns None. After the episode ends it still draws
      the final grid.

    Held-out evaluation: :mod:`trm_rl.agents.evaluation` resets with seeds from
    1,000,000,000 up, disjoint from the small seeds training envs use; each seed gives a
    fresh puzzle (grid, removal order and grade draw all come from ``np_random``).

    ## Version History
    - v0: initial version.
    """

    box = BOX
    size = SIZE
    n_actions = N_ACTIONS
    cleared = _CLEARED
    cell_px = CELL_PX
    digit_glyphs = GLYPHS

    def __init__(
        self,
        difficulty: str | tuple[str, ...] = "mixed",
        max_blanks: int | tuple[int, int] | None = None,
        variants: int = 8,
        observation: str = "digits",
        render_mode: str | None = None,
    ) -> None:
        self.difficulty = _parse_difficulty(difficulty)
        self.max_blanks = _parse_max_blanks(max_blanks)
        self.variants = checked_int("variants", variants, 1)
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        self.observation = observation
        super().__init__(render_mode)
        if observation == "candidates":
            self.observation_space = spaces.Box(
                0.0, 1.0, (CANDIDATE_CHANNELS, SIZE, SIZE), np.float32
            )
        self._solution = np.zeros(N_CELLS, dtype=np.int64)
        self._grade = ""
        self._generated_puzzle: tuple[np.ndarray, np.ndarray, str] | None = None
        self._variants_left = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._variants_left = 0
        return super().reset(seed=seed, options=options)

    def _given(self, puzzle: Any) -> np.ndarray:
        grid = self._with_blank(validate_puzzle(puzzle))
        n_solutions = count_solutions(grid)
        if n_solutions == 0:
            raise ValueError("puzzle has no solution: its clues admit no valid 9x9 grid")
        if n_solutions > 1:
            raise ValueError(
                "puzzle has several solutions; TRM-Sudoku-9x9-v0 plays only puzzles with "
                "exactly one (add clues)"
            )
        self._solution = solve(grid).reshape(N_CELLS)
        self._grade = grade(grid)
        return grid

    def _generated(self) -> np.ndarray:
        if self._variants_left == 0 or self._generated_puzzle is None:
            puzzle_grade = self.difficulty[int(self.np_random.integers(len(self.difficulty)))]
            self._generated_puzzle = (*generate_puzzle(self.np_random, puzzle_grade), puzzle_grade)
            self._variants_left = self.variants
        self._variants_left -= 1
        puzzle, solution, puzzle_grade = self._generated_puzzle
        grid, solution = random_symmetry(self.np_random, puzzle, solution)
        blanks = np.flatnonzero(grid == 0)
        if self.max_blanks is not None:
            low, high = self.max_blanks
            cap = low if low == high else int(self.np_random.integers(low, high + 1))
            if blanks.size > cap:
                refill = self.np_random.choice(blanks, blanks.size - cap, False)
                grid[refill] = solution[refill]
                puzzle_grade = grade(grid)
        self._solution = solution
        self._grade = puzzle_grade
        return grid

    def _observation(self) -> np.ndarray:
        """The grid, or with ``observation="candidates"`` its digit and candidate planes."""
        if self.observation == "digits":
            return self._grid.copy()
        planes = np.zeros((CANDIDATE_CHANNELS, N_CELLS), dtype=np.float32)
        placed = np.flatnonzero(self._grid)
        planes[self._grid[placed] - 1, placed] = 1.0
        planes[SIZE:] = self._mask.reshape(N_CELLS, SIZE).T
        return planes.reshape(CANDIDATE_CHANNELS, SIZE, SIZE)

    def _leaves_no_solution(self, action: int) -> bool:
        """A dead end when ``action``'s digit differs from the (unique) solution's."""
        cell, digit = divmod(action, SIZE)
        return bool(self._solution[cell] != digit + 1)

    def _info(self, success: bool) -> dict[str, Any]:
        """The shared ``info`` plus ``"difficulty"``, the puzzle's grade."""
        return {**super()._info(success), "difficulty": self._grade}
