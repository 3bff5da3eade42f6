"""Held-out evaluation of any agent with SB3's ``predict`` on a Gymnasium env.

Episode ``i`` of an evaluation with seed ``s`` resets its env with
``reset(seed=EVAL_SEED_OFFSET + 1_000_000 * s + i)``: the layouts/puzzles/initial states depend
only on ``(s, i)`` (not on batching), and come from seeds far from the small integers that
training envs are seeded with, so they are held out from training streams. (Random layouts
can still coincide by chance with a training layout on small grids; the learning benchmark
measures and excludes those.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

import trm_rl.envs  # noqa: F401  (registers the TRM-* ids)
from trm_rl.config import require_int

EVAL_SEED_OFFSET = 1_000_000_000
"""Evaluation seeds start here; training code seeds its envs with small integers."""
SEED_STRIDE = 1_000_000
"""Evaluation seeds ``s`` and ``s + 1`` use disjoint reset seeds up to this many draws."""
MAX_DRAWS_PER_EPISODE = 100
"""With ``skip``, at most this many resets per requested episode before giving up."""


class Agent(Protocol):
    """What evaluation needs: SB3's ``predict`` signature (``action_masks`` optional)."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]: ...


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of :func:`evaluate` (means over episodes)."""

    episodes: int
    """Episodes played."""
    success_rate: float
    """Fraction of episodes whose final ``info["is_success"]`` is True."""
    mean_return: float
    """Mean undiscounted episode return."""
    mean_length: float
    """Mean episode length (steps)."""
    path_ratio: float | None
    """Mazes: mean over *successful* episodes of steps / BFS shortest path (1.0 is optimal);
    ``None`` for envs without ``info["shortest_path"]`` or without a success."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return asdict(self)


@dataclass
class EpisodeOutcome:
    """One played evaluation episode."""

    reset_seed: int
    """The seed its env was reset with (:func:`evaluation_seed`)."""
    success: bool = False
    """Its final ``info["is_success"]``."""
    total: float = 0.0
    """Undiscounted return."""
    length: int = 0
    """Steps."""
    shortest: int | None = None
    """Mazes: the BFS shortest path from ``info["shortest_path"]``, else ``None``."""


@dataclass
class _Running:
    """An episode being played: its env, latest observation and outcome so far."""

    env: gym.Env
    obs: np.ndarray
    outcome: EpisodeOutcome


def evaluation_seed(seed: int, episode: int) -> int:
    """The reset seed of ``episode`` in an evaluation with ``seed``."""
    return EVAL_SEED_OFFSET + SEED_STRIDE * seed + episode


def play_episodes(
    agent: Agent,
    env_id: str,
    episodes: int = 100,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    deterministic: bool = True,
    batch: int = 16,
    skip: Callable[[np.ndarray], bool] | None = None,
) -> list[EpisodeOutcome]:
    """Play ``episodes`` held-out episodes, ``batch`` envs at a time, batched ``predict``,
    and return each one's outcome in reset-seed order, so that two agents evaluated with the
    same arguments (and no ``skip``) are paired episode by episode.

    Args:
        agent: anything with SB3's ``predict`` (see :class:`Agent`); gets action masks when
            the env has ``action_masks()``.
        env_id: a registered id (``"trm_rl:"`` prefix optional for TRM envs).
        episodes: episodes to play (>= 1).
        seed: evaluation seed (>= 0); see the module docstring.
        env_kwargs: keyword arguments for ``gym.make``.
        deterministic: greedy actions (default) or sampled ones.
        batch: envs stepped together (>= 1).
        skip: called with each episode's first observation; an episode for which it
            returns True is not played nor counted, and the next seed is drawn instead (used
            to exclude layouts seen during training).

    Returns:
        Exactly ``episodes`` :class:`EpisodeOutcome`, sorted by ``reset_seed``.
    """
    for name, value, low in (("episodes", episodes, 1), ("seed", seed, 0), ("batch", batch, 1)):
        require_int(name, value, low)
    seeds = (evaluation_seed(seed, i) for i in range(MAX_DRAWS_PER_EPISODE * episodes))

    def begin(env: gym.Env) -> _Running:
        for episode_seed in seeds:
            obs, info = env.reset(seed=episode_seed)
            if skip is None or not skip(obs):
                return _Running(
                    env, obs, EpisodeOutcome(episode_seed, shortest=info.get("shortest_path"))
                )
        raise RuntimeError(
            f"skip refused almost all of {MAX_DRAWS_PER_EPISODE * episodes} draws; "
            "ask for fewer episodes or skip less"
        )

    envs = [gym.make(env_id, **(env_kwargs or {})) for _ in range(min(batch, episodes))]
    masked = hasattr(envs[0].unwrapped, "action_masks")
    active = [begin(env) for env in envs]
    started = len(active)
    done: list[EpisodeOutcome] = []
    while active:
        observations = np.stack([episode.obs for episode in active])
        masks = np.stack([e.env.unwrapped.action_masks() for e in active]) if masked else None
        actions, _ = agent.predict(observations, deterministic=deterministic, action_masks=masks)
        still_running = []
        for episode, action in zip(active, actions, strict=True):
            episode.obs, reward, terminated, truncated, info = episode.env.step(action)
            episode.outcome.total += float(reward)
            episode.outcome.length += 1
            if not (terminated or truncated):
                still_running.append(episode)
                continue
            episode.outcome.success = bool(info.get("is_success", False))
            done.append(episode.outcome)
            if started < episodes:
                still_running.append(begin(episode.env))
                started += 1
        active = still_running
    for env in envs:
        env.close()
    return sorted(done, key=lambda outcome: outcome.reset_seed)


def evaluate(
    agent: Agent,
    env_id: str,
    episodes: int = 100,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    deterministic: bool = True,
    batch: int = 16,
    skip: Callable[[np.ndarray], bool] | None = None,
) -> EvaluationResult:
    """The means over :func:`play_episodes` (same arguments) as an :class:`EvaluationResult`
    over exactly ``episodes`` episodes."""
    done = play_episodes(agent, env_id, episodes, seed, env_kwargs, deterministic, batch, skip)
    ratios = [e.length / e.shortest for e in done if e.success and e.shortest]
    return EvaluationResult(
        episodes=len(done),
        success_rate=float(np.mean([e.success for e in done])),
        mean_return=float(np.mean([e.total for e in done])),
        mean_length=float(np.mean([e.length for e in done])),
        path_ratio=float(np.mean(ratios)) if ratios else None,
    )
