"""Test-time symmetry ensembles: ask a 9x9 Sudoku policy about several images of the board.

A Sudoku symmetry (:class:`~trm_rl.envs.sudoku9_symmetry.Symmetry`) keeps the rules, so
the right placements of an image are the images of the right placements. A network with
learned cell positions and digit embeddings is not invariant to it: each image is a
different question with the same answer, and its mistakes on one image are partly
independent of those on another. :class:`SymmetryEnsemble` plays the action that is most
likely under all of them together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from trm_rl.agents.loading import SB3Agent, check_action_masks, check_observation
from trm_rl.config import require_int
from trm_rl.envs.sudoku9 import CANDIDATE_CHANNELS, N_ACTIONS
from trm_rl.envs.sudoku9_puzzles import N_CELLS, SIZE
from trm_rl.envs.sudoku9_symmetry import Symmetry

__all__ = ["SymmetryEnsemble"]

OBSERVATION_SPACES = (
    spaces.MultiDiscrete([SIZE + 1] * N_CELLS),
    spaces.Box(0, 1, (CANDIDATE_CHANNELS, SIZE, SIZE), np.float32),
)
"""The :class:`~trm_rl.envs.sudoku9.Sudoku9Env` observation spaces (``"digits"``,
``"candidates"``) an ensemble accepts."""


class SymmetryEnsemble:
    """A 9x9 Sudoku SB3 agent that plays through ``views`` symmetric images of each board.

    For a board ``s`` with legal actions ``L``, the ensemble's action distribution is
    ``pi(a | s) ∝ prod_k pi_agent(g_k(a) | g_k(s))`` over ``a`` in ``L``: the agent's
    probabilities on the images ``g_k(s)`` (masks mapped alongside), multiplied (their
    log-probabilities summed). The first view is the board itself; the others are drawn
    once, at construction, from ``seed``, and then used for every board. Greedy play
    (``deterministic=True``) takes the action with the highest summed log-probability;
    sampling draws from the normalised product. With ``views=1`` it plays as the agent.
    Each step costs ``views`` forward passes.

    Args:
        agent: an :class:`~trm_rl.agents.loading.SB3Agent` for ``TRM-Sudoku-9x9-v0``:
            observation space one of :data:`OBSERVATION_SPACES`, action space
            ``Discrete(729)``, a categorical policy (e.g. ``load_agent(
            "pretrained:sudoku-9x9")``).
        views: images per board (>= 1).
        seed: seed of the drawn symmetries (>= 0).

    Raises:
        TypeError: ``agent`` is not an ``SB3Agent``.
        ValueError: its spaces are not 9x9 Sudoku's; ``views`` or ``seed`` out of range.
    """

    def __init__(self, agent: SB3Agent, views: int, seed: int = 0) -> None:
        if not isinstance(agent, SB3Agent):
            raise TypeError(
                f"agent must be an SB3Agent (load_agent of an SB3 run), got {type(agent).__name__}"
            )
        if agent.observation_space not in OBSERVATION_SPACES or agent.action_space != (
            spaces.Discrete(N_ACTIONS)
        ):
            raise ValueError(
                "symmetry views need a 9x9 Sudoku agent (observation MultiDiscrete([10] * 81) "
                "or Box(0, 1, (18, 9, 9)), action Discrete(729)), got "
                f"{agent.observation_space} and {agent.action_space}"
            )
        require_int("views", views, 1)
        require_int("seed", seed, 0)
        rng = np.random.default_rng(seed)
        self.agent = agent
        self.symmetries = [Symmetry.identity()] + [Symmetry.random(rng) for _ in range(views - 1)]
        self.observation_space = agent.observation_space
        self.action_space = agent.action_space
        self.config = agent.config

    @property
    def views(self) -> int:
        """Images per board."""
        return len(self.symmetries)

    def log_probabilities(self, observations: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Summed log-probabilities ``[B, 729]`` of a batch of boards over the views,
        ``-inf`` where ``masks`` (bool ``[B, 729]``) forbids the action."""
        policy = self.agent.policy
        total = np.zeros(masks.shape, dtype=np.float64)
        for symmetry in self.symmetries:
            image, _ = policy.obs_to_tensor(symmetry.observations(observations))
            image_masks = symmetry.to_image_actions(masks)
            with torch.no_grad():
                if self.agent.masked:
                    distribution = policy.get_distribution(image, action_masks=image_masks)
                else:
                    distribution = policy.get_distribution(image)
                log_probs = distribution.distribution.logits.cpu().numpy()
            total += symmetry.to_original_actions(log_probs)
        return np.where(masks, total, -np.inf)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """SB3's ``predict`` for one observation or a batch ``[B, ...]``.

        Args:
            observation: one observation of ``observation_space`` or a batch.
            state, episode_start: SB3's (ignored: the policy is feed-forward).
            deterministic: the action with the highest summed log-probability instead of a
                sample from their normalised product.
            action_masks: bool ``[729]`` or ``[B, 729]``, True where a placement is legal
                (``env.action_masks()``); required.

        Raises:
            ValueError: no ``action_masks``, masks of the wrong shape or allowing no
                action, or an observation outside ``observation_space``.
        """
        array, vectorized = check_observation(observation, self.observation_space)
        batch = len(array) if vectorized else None
        masks = check_action_masks(action_masks, self.action_space, batch)
        if masks is None:
            raise ValueError(
                "a symmetry ensemble needs action_masks (e.g. env.action_masks()): the legal "
                "placements are part of the board it maps"
            )
        boards = array if vectorized else array[None]
        total = self.log_probabilities(boards, masks.reshape(len(boards), N_ACTIONS))
        if deterministic:
            actions = total.argmax(axis=1)
        else:
            actions = torch.distributions.Categorical(logits=torch.as_tensor(total)).sample()
            actions = actions.numpy()
        return (actions if vectorized else actions[0]), None
