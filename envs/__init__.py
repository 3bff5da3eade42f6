"""Gymnasium environments of trm-rl, registered on ``import trm_rl``.

Registered ids (``gym.make("trm_rl:ID")`` imports the package first):

- ``TRM-Maze-v0``: 5x5 random solvable mazes (open family).
- ``TRM-Maze-7x7-v0``, ``TRM-Maze-9x9-v0``: larger mazes, mixed open/perfect family.
- ``TRM-Maze-Fixed-v0``: the original write-up's fixed 5x5 task (``ORIGINAL_5X5_LAYOUT``).
- ``TRM-Sudoku-v0``: 4x4 Sudoku with action masks.
- ``TRM-Sudoku-9x9-v0``: 9x9 Sudoku with action masks, puzzles graded by technique
  (``difficulty``: naked singles / hidden singles / harder, or a mix).
- ``TRM-VanDerPol-v0``: goal-conditioned control of a Van der Pol oscillator.
"""

if __name__ != "trm_rl.envs":
    raise ImportError("import trm_rl.envs, not envs")

from gymnasium.envs.registration import register, registry


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in registry:
        register(id=env_id, entry_point=entry_point, **kwargs)


_register(
    "TRM-Maze-v0",
    "trm_rl.envs.maze:MazeEnv",
    max_episode_steps=100,
    kwargs={"size": 5, "family": "open"},
)
_register(
    "TRM-Maze-7x7-v0",
    "trm_rl.envs.maze:MazeEnv",
    max_episode_steps=196,
    kwargs={"size": 7, "family": "mixed"},
)
_register(
    "TRM-Maze-9x9-v0",
    "trm_rl.envs.maze:MazeEnv",
    max_episode_steps=324,
    kwargs={"size": 9, "family": "mixed"},
)
_register(
    "TRM-Maze-Fixed-v0",
    "trm_rl.envs.maze:MazeEnv",
    max_episode_steps=100,
    kwargs={"size": 5, "layout": "original_5x5"},
)
_register("TRM-Sudoku-v0", "trm_rl.envs.sudoku:SudokuEnv", max_episode_steps=32)
_register("TRM-Sudoku-9x9-v0", "trm_rl.envs.sudoku9:Sudoku9Env", max_episode_steps=162)
_register("TRM-VanDerPol-v0", "trm_rl.envs.vanderpol:VanDerPolEnv")
