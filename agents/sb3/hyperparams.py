"""Recommended training settings per environment, in one table.

``trm-rl train`` and the benchmarks start from :func:`recipe(env_id) <recipe>`; flags and
arguments override single entries. Envs not in the table get :data:`DEFAULT_RECIPE`.
The TRM entries are ``TRMPolicy`` keyword arguments; the MLP entries are ``MlpPolicy``
keyword arguments (the parameter-matched baseline of the benchmarks sets its own widths).

Evidence for the maze entries (``TRM-Maze-v0``, one seed each, PPO 16 envs x 128 steps, held-out
success after 300k steps; ``benchmarks/results/policy_learning_TRM-Maze-v0*.json``):

=======================================  ========
TRM (conv mixer, agent-cell readout)     success
=======================================  ========
``grad_mode="last"``, batch 512           67.7%
``grad_mode="last"``, batch 128           95.7%
``grad_mode="full"``, batch 512           98.7%
``grad_mode="full"``, batch 128 (table)   98.8%, 99.0%, 99.0% (seeds 0-2)
=======================================  ========

``TRM-Maze-7x7-v0`` with the table's entry (L=3): 93.0%, 97.3% and 96.0% held-out after 1M
steps, seeds 0-2 (``benchmarks/results/policy_learning_TRM-Maze-7x7-v0.json``,
``..._seed1-trm.json``, ``..._seed2-trm.json``). With ``n_epochs=2`` instead of 4 (seed 0,
``..._fast-full-e2-seed0.json``): 95.3% at 600k and 94.3% at 1M at ~1.5x the speed, not yet
the table's entry for want of more seeds.

``TRM-Sudoku-v0``: the ``"peers"`` mixer (each cell reads its row, column and box),
``gamma=0``, one cycle (``h_cycles=1, l_cycles=1``) and a learning rate decaying linearly
from 1e-3 to 0 (``"lin_1e-3"``). With the ``"mlp"`` mixer no variant tried passed 65%
held-out (best: ``gamma=0.5``, 150k steps,
``benchmarks/results/policy_learning_TRM-Sudoku-v0_gamma0.5.json``). ``gamma=0`` because a
Sudoku move's outcome is immediate: a wrong digit ends the episode at once and every right
one keeps the puzzle solvable, so no credit has to travel and PPO becomes a contextual bandit
with lower-variance advantages. Held-out puzzles solved after 500k steps (seeds 0-2):

======================================================  =====================================
TRM, ``"peers"`` mixer, ``gamma=0``                      solved
======================================================  =====================================
H=3, L=2, constant rate (500 puzzles)                    98.6%, 98.8%, 98.8%
H=1, L=1, constant rate (500 puzzles)                    99.6%, 98.6%, 98.8%
H=1, L=1, constant rate (2000 puzzles)                   98.9%, 95.9%, 98.7%
H=1, L=1, ``"lin_1e-3"`` (2000 puzzles; the table)       99.2%, 99.7%, 99.4% (99.1%, seed 3)
======================================================  =====================================

(``benchmarks/results/policy_learning_TRM-Sudoku-v0_peers-seed*.json``,
``..._peers-k1-seed*.json``, ``..._peers-k1-seed*-eval2000.json``,
``..._peers-k1-lindecay-seed*-eval2000.json``; the matched MLP with the H=3 settings: 85.8%,
83.2%, 86.0%.) One cycle trained ~4x faster than H=3, L=2 (under different machine loads,
so roughly) and solves as many: every move of a 4x4 puzzle needs one hop of the constraint
graph. The benchmarks' K=3 / K=5 agents take L=1 and the PPO settings from here.

Full gradients cost ~1.5x the CPU time of ``"last"`` per PPO step on 7x7 mazes (186 vs 286
steps/s, ``benchmarks/results/policy_speed.json``) but need about half the samples; batch 128
gives 4x more gradient steps per rollout at the same cost per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

ALGOS = ("ppo", "a2c", "maskable-ppo")
"""Stable-Baselines3 algorithms the trainer builds (REINFORCE has its own trainer)."""


def _frozen(mapping: dict[str, Any] | None = None) -> MappingProxyType:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Recipe:
    """Recommended settings for one environment."""

    algo: str = "ppo"
    """Default algorithm, one of :data:`ALGOS`."""
    n_envs: int = 8
    """Parallel environments (a ``DummyVecEnv``)."""
    ppo: MappingProxyType = field(default_factory=_frozen)
    """``PPO``/``MaskablePPO`` keyword arguments (SB3 defaults for the rest)."""
    a2c: MappingProxyType = field(default_factory=_frozen)
    """``A2C`` keyword arguments (SB3 defaults for the rest)."""
    trm: MappingProxyType = field(default_factory=_frozen)
    """``TRMPolicy`` keyword arguments (the policy's defaults for the rest)."""
    mlp: MappingProxyType = field(default_factory=_frozen)
    """``MlpPolicy`` keyword arguments (SB3 defaults for the rest)."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if isinstance(self.n_envs, bool) or not isinstance(self.n_envs, int) or self.n_envs < 1:
            raise ValueError(f"n_envs must be an int >= 1, got {self.n_envs!r}")
        for name in ("ppo", "a2c", "trm", "mlp"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def algo_kwargs(self, algo: str) -> dict[str, Any]:
        """Keyword arguments of ``algo`` (a copy)."""
        if algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
        return dict(self.a2c if algo == "a2c" else self.ppo)


_GRID_PPO = {
    "n_steps": 128,
    "batch_size": 128,
    "n_epochs": 4,
    "learning_rate": 1e-3,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.01,
}

DEFAULT_RECIPE = Recipe()
"""SB3's defaults with 8 envs; the policy's own TRM defaults."""

_MAZE_TRM = {"mixer": "conv", "grad_mode": "full", "focus_channel": 1}

RECIPES: dict[str, Recipe] = {
    "TRM-Maze-v0": Recipe(n_envs=16, ppo=_GRID_PPO, trm={**_MAZE_TRM, "l_cycles": 2}),
    "TRM-Maze-Fixed-v0": Recipe(n_envs=16, ppo=_GRID_PPO, trm={**_MAZE_TRM, "l_cycles": 2}),
    "TRM-Maze-7x7-v0": Recipe(n_envs=16, ppo=_GRID_PPO, trm={**_MAZE_TRM, "l_cycles": 3}),
    "TRM-Maze-9x9-v0": Recipe(
        n_envs=16, ppo=_GRID_PPO, trm={**_MAZE_TRM, "h_cycles": 4, "l_cycles": 3}
    ),
    "TRM-Sudoku-v0": Recipe(
        algo="maskable-ppo",
        n_envs=16,
        ppo={**_GRID_PPO, "gamma": 0.0, "learning_rate": "lin_1e-3"},
        trm={"mixer": "peers", "h_cycles": 1, "l_cycles": 1, "token_actions": True},
    ),
    "TRM-VanDerPol-v0": Recipe(n_envs=8, trm={"h_cycles": 2, "l_cycles": 2}),
}
"""Recommended settings of the registered TRM environments."""


def recipe(env_id: str) -> Recipe:
    """The recommended :class:`Recipe` for ``env_id`` (``"trm_rl:"`` prefix allowed)."""
    return RECIPES.get(env_id.removeprefix("trm_rl:"), DEFAULT_RECIPE)
