"""Recommended training settings per environment, in one table.

``trm-rl train`` and the benchmarks start from :func:`recipe(env_id) <recipe>`; flags and
arguments override single entries. Envs not in the table get :data:`DEFAULT_RECIPE`.
The TRM entries are ``TRMPolicy`` keyword arguments; the MLP entries are ``MlpPolicy``
keyword arguments (the parameter-matched baseline of the benchmarks sets its own widths).

Maze entries: PPO with 16 envs x 128 steps, batch 128, learning rate 1e-3, 4 epochs on 5x5
and 2 on 7x7 and 9x9; the ``"conv"`` mixer (each cell token mixes with its grid neighbours),
no learned positions (``positions="none"``: the policy's weights fit every maze size),
gradients through every cycle (``grad_mode="full"``) and a readout pooled at the agent's cell
(``focus_channel=1``); L=2 on 5x5, L=3 on 7x7, H=4 and L=3 on 9x9.

``TRM-Sudoku-v0``: MaskablePPO with the ``"peers"`` mixer (each cell reads its row, column and
box), ``gamma=0`` (a wrong digit ends the episode at once, so no credit has to travel), one
cycle (``h_cycles=1, l_cycles=1``) and a learning rate decaying linearly from 1e-3 to 0
(``"lin_1e-3"``).

``TRM-Sudoku-9x9-v0``: :class:`~trm_rl.agents.sb3.outcome.MaskableOutcomeLearner`
(``"maskable-outcome"``) with hindsight labels from solved episodes
(``hindsight="sudoku-solution"``), the peers mixer with width 64, H=2, L=1 and one logit per
(cell, digit); observe the candidates with the env's ``observation="candidates"`` and train
on ``max_blanks`` drawn per episode (a curriculum over the number of blanks). The entry's
constant rate 1e-3 is the first stage; ``pretrained:sudoku-9x9`` continued it with a rate
decaying linearly from 5e-4 to 0 over 800k steps (``"learning_rate": "lin_5e-4"`` with
``init_from``), then from 2e-4 to 0 over 600k steps on full puzzles (``max_blanks=None``).

``TRM-VanDerPol-v0``: PPO with SB3's defaults, H=2, L=2, and a separate core for the critic
(``share_features_extractor=False``): with one shared core the value loss of returns in the
thousands swamps the policy gradient and PPO does not learn (RESULTS.md, section 9).

The benchmark's learners start from these entries.
Evidence for these settings: ``benchmarks/RESULTS.md``, sections 1-3, 9 and 11.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from trm_rl.config import require_int

ALGOS = ("ppo", "a2c", "maskable-ppo", "maskable-outcome")
"""Stable-Baselines3 algorithms the trainer builds (REINFORCE has its own trainer);
``"maskable-outcome"`` is :class:`~trm_rl.agents.sb3.outcome.MaskableOutcomeLearner`."""
MASKABLE_ALGOS = ("maskable-ppo", "maskable-outcome")
"""The algorithms that take action masks (and ``MaskableTRMPolicy``)."""


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
    outcome: MappingProxyType = field(default_factory=_frozen)
    """``MaskableOutcomeLearner`` keyword arguments (its defaults for the rest)."""
    trm: MappingProxyType = field(default_factory=_frozen)
    """``TRMPolicy`` keyword arguments (the policy's defaults for the rest)."""
    mlp: MappingProxyType = field(default_factory=_frozen)
    """``MlpPolicy`` keyword arguments (SB3 defaults for the rest)."""

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        require_int("n_envs", self.n_envs, 1)
        for name in ("ppo", "a2c", "outcome", "trm", "mlp"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def algo_kwargs(self, algo: str) -> dict[str, Any]:
        """Keyword arguments of ``algo`` (a copy)."""
        if algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
        return dict({"a2c": self.a2c, "maskable-outcome": self.outcome}.get(algo, self.ppo))


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

_LARGE_GRID_PPO = {**_GRID_PPO, "n_epochs": 2}

_MAZE_TRM = {"mixer": "conv", "grad_mode": "full", "focus_channel": 1, "positions": "none"}

RECIPES: dict[str, Recipe] = {
    "TRM-Maze-v0": Recipe(n_envs=16, ppo=_GRID_PPO, trm={**_MAZE_TRM, "l_cycles": 2}),
    "TRM-Maze-Fixed-v0": Recipe(n_envs=16, ppo=_GRID_PPO, trm={**_MAZE_TRM, "l_cycles": 2}),
    "TRM-Maze-7x7-v0": Recipe(n_envs=16, ppo=_LARGE_GRID_PPO, trm={**_MAZE_TRM, "l_cycles": 3}),
    "TRM-Maze-9x9-v0": Recipe(
        n_envs=16, ppo=_LARGE_GRID_PPO, trm={**_MAZE_TRM, "h_cycles": 4, "l_cycles": 3}
    ),
    "TRM-Sudoku-v0": Recipe(
        algo="maskable-ppo",
        n_envs=16,
        ppo={**_GRID_PPO, "gamma": 0.0, "learning_rate": "lin_1e-3"},
        trm={"mixer": "peers", "h_cycles": 1, "l_cycles": 1, "token_actions": True},
    ),
    # 9x9: outcome learning with hindsight labels (RESULTS section 11): a calibrated chance
    # of being right per placement, where PPO's policy gradient made every cell look certain.
    # One logit per (cell, digit). --algo maskable-ppo keeps its settings here; it did best
    # with the factored head and confidence selection (factored_actions=True,
    # token_selection="confidence", confidence_power=8).
    "TRM-Sudoku-9x9-v0": Recipe(
        algo="maskable-outcome",
        n_envs=16,
        ppo={**_GRID_PPO, "n_epochs": 2, "gamma": 0.0, "learning_rate": "lin_1e-3"},
        outcome={"hindsight": "sudoku-solution"},
        trm={
            "mixer": "peers",
            "hidden_dim": 64,
            "h_cycles": 2,
            "l_cycles": 1,
            "token_actions": True,
        },
    ),
    # Van der Pol: returns of -100s to -1000s make the value loss dwarf the policy loss in
    # a shared trunk, so the critic gets its own core (SB3's share_features_extractor).
    "TRM-VanDerPol-v0": Recipe(
        n_envs=8, trm={"h_cycles": 2, "l_cycles": 2, "share_features_extractor": False}
    ),
}
"""Recommended settings of the registered TRM environments."""


def recipe(env_id: str) -> Recipe:
    """The recommended :class:`Recipe` for ``env_id`` (``"trm_rl:"`` prefix allowed)."""
    return RECIPES.get(env_id.removeprefix("trm_rl:"), DEFAULT_RECIPE)
