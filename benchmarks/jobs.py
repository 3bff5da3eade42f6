"""The benchmark's job list: one independent, JSON-serialisable job per
agent x env x algorithm x seed.

Each job trains (or, for the ``random`` and ``solver`` references, only evaluates) one agent
and returns one results row, so any executor can run the list: a process pool or Ray
(``trm-rl bench --executor process|ray``), or a cluster scheduler through ``trm-rl bench
--write-jobs jobs.json`` and ``python -m trm_rl.benchmarks.runner jobs.json INDEX ROW.json``.
Held-out evaluation uses the reset seeds of :func:`trm_rl.agents.evaluation.evaluation_seed`
(disjoint from every training seed).

The learners, all trained with the env's recipe (:mod:`trm_rl.agents.sb3.hyperparams`) and the
same algorithm settings:

===============  ==============================================================================
``trm-k1``       TRMPolicy, one cycle (H=1, L=1): the same parameters as ``trm-k3``, a
                 fraction of its compute (the value of recursion)
``trm-k3``       TRMPolicy, H=3 and the recipe's L
``trm-k5``       TRMPolicy, H=5 and the recipe's L
``unshared-k3``  ``trm-k3``'s schedule with a separate block stack at each of its
                 ``H * (L + 1)`` applications (same compute, no weight sharing)
``cnn``          SB3 policy on :class:`~trm_rl.agents.sb3.cnn.GridResNet`, a small ResNet
                 (grid envs only; Sudoku as a one-hot board image)
``mlp``          MlpPolicy, two hidden layers per head, the smallest width with at least
                 ``trm-k3``'s parameters
``mlp-sb3``      SB3's default MlpPolicy (64, 64)
===============  ==============================================================================
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

LEARNERS = ("trm-k1", "trm-k3", "trm-k5", "unshared-k3", "cnn", "mlp", "mlp-sb3")
"""Trained agents (see the module docstring)."""
REFERENCES = ("random", "solver")
"""Untrained floor and ceiling: uniform random valid actions, and an exact solver (BFS for
mazes, backtracking for Sudoku)."""
AGENTS = (*LEARNERS, *REFERENCES)
ALGOS = ("ppo", "reinforce")
TRM_SETTINGS: dict[str, dict[str, Any]] = {
    "trm-k1": {"h_cycles": 1, "l_cycles": 1},
    "trm-k3": {"h_cycles": 3},
    "trm-k5": {"h_cycles": 5},
    "unshared-k3": {"h_cycles": 3, "shared_weights": False},
}
"""TRMPolicy overrides of the env recipe's settings, per TRM learner."""
REINFORCE_AGENTS = ("trm-k1", "trm-k3", "trm-k5", "mlp")
"""The learners the REINFORCE trainer builds (it has no unshared, CNN or SB3-default policy)."""

MEASURED_STEPS_PER_S: dict[str, dict[str, float]] = {
    "TRM-Maze-v0": {
        "trm-k1": 1608, "trm-k3": 516, "trm-k5": 318, "unshared-k3": 527, "cnn": 2475,
        "mlp": 4943, "mlp-sb3": 5793,
    },
    "TRM-Maze-7x7-v0": {
        "trm-k1": 1834, "trm-k3": 420, "trm-k5": 265, "unshared-k3": 370, "cnn": 2840,
        "mlp": 6713, "mlp-sb3": 8491,
    },
    "TRM-Sudoku-v0": {
        "trm-k1": 1335, "trm-k3": 680, "trm-k5": 543, "unshared-k3": 723, "cnn": 1919,
        "mlp": 3359, "mlp-sb3": 2824,
    },
    "TRM-VanDerPol-v0": {
        "trm-k1": 1051, "trm-k3": 526, "trm-k5": 444, "unshared-k3": 526, "mlp": 1968,
        "mlp-sb3": 2063,
    },
}  # fmt: skip
"""PPO training env steps per CPU second (one torch thread), per env and learner, with the
``standard`` preset's settings: the rows' ``cpu_steps_per_s`` of ``trm-rl bench --preset
standard --seeds 1 --timesteps 8192 --eval-episodes 10 --curve-points 1 --workers 1``. Wall
time on an idle core is about the same; on a shared machine it is longer."""
DEFAULT_STEPS_PER_S = 300.0
"""Assumed speed of a learner on an env missing from :data:`MEASURED_STEPS_PER_S`."""
REFERENCE_SECONDS_PER_EPISODE = 0.01
"""Assumed evaluation cost of a reference agent per episode."""
SOLVER_SECONDS_PER_EPISODE = {"TRM-VanDerPol-v0": 1.0}
"""The exact solver's cost per episode where it is not negligible (the Van der Pol optimum
solves each episode by direct shooting, ~0.6 s per problem in batches of 16)."""


@dataclass(frozen=True)
class Job:
    """One benchmark run."""

    agent: str
    """One of :data:`AGENTS`."""
    env_id: str
    """Registered Gymnasium id."""
    algo: str
    """"ppo", "maskable-ppo", "reinforce", or "none" for the references."""
    seed: int
    """Training seed (network init, env layouts)."""
    timesteps: int
    """Env-step budget (the same for every learner on an env)."""
    eval_episodes: int
    """Held-out evaluation episodes (evaluation seed 0)."""
    curve_points: int = 5
    """Evaluations during training, for the learning curve (0: only the final one)."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the env recipe's algorithm settings, the same for every learner on the
    env (e.g. ``{"n_epochs": 2}``)."""

    @property
    def name(self) -> str:
        return f"{self.env_id}__{self.algo}__{self.agent}__s{self.seed}"

    @property
    def estimated_seconds(self) -> float:
        """Estimated single-thread CPU seconds: training steps over :func:`steps_per_s`
        (evaluation not counted for learners); for references, the evaluation episodes."""
        if self.agent in REFERENCES:
            solver = SOLVER_SECONDS_PER_EPISODE.get(self.env_id, REFERENCE_SECONDS_PER_EPISODE)
            per_episode = solver if self.agent == "solver" else REFERENCE_SECONDS_PER_EPISODE
            return self.eval_episodes * per_episode
        return self.timesteps / steps_per_s(self.env_id, self.agent)


def steps_per_s(env_id: str, agent: str) -> float:
    """Measured training speed of ``agent`` on ``env_id`` (:data:`MEASURED_STEPS_PER_S`), or
    :data:`DEFAULT_STEPS_PER_S`."""
    return MEASURED_STEPS_PER_S.get(env_id, {}).get(agent, DEFAULT_STEPS_PER_S)


@cache
def _env_kinds(env_id: str) -> tuple[bool, bool]:
    """(grid observations, Discrete actions) of ``env_id``."""
    import gymnasium as gym
    from gymnasium import spaces

    import trm_rl.envs  # noqa: F401  (registers the TRM-* ids)
    from trm_rl.agents.sb3.cnn import grid_image_shape

    env = gym.make(env_id)
    try:
        grid_image_shape(env.observation_space)
        grid = True
    except TypeError:
        grid = False
    discrete = isinstance(env.action_space, spaces.Discrete)
    env.close()
    return grid, discrete


def applies(agent: str, env_id: str, algo: str) -> bool:
    """Whether ``agent`` runs on ``env_id`` with ``algo``: ``cnn`` needs grid observations,
    the exact ``solver`` exists for mazes, Sudoku and Van der Pol only, REINFORCE builds only
    :data:`REINFORCE_AGENTS` and needs Discrete actions."""
    grid, discrete = _env_kinds(env_id)
    if agent == "cnn" and not grid:
        return False
    if agent == "solver" and not any(name in env_id for name in ("Maze", "Sudoku", "VanDerPol")):
        return False
    return not (algo == "reinforce" and (agent not in REINFORCE_AGENTS or not discrete))


def algo_for(env_id: str, algo: str) -> str:
    """PPO on an env with action masks (Sudoku) is MaskablePPO."""
    return "maskable-ppo" if algo == "ppo" and "Sudoku" in env_id else algo


def build_jobs(
    agents: Iterable[str],
    env_budgets: Mapping[str, int],
    algos: Iterable[str],
    seeds: Iterable[int],
    eval_episodes: int,
    curve_points: int = 5,
    env_algo_kwargs: Mapping[str, dict[str, Any]] | None = None,
) -> list[Job]:
    """Every learner x env x algorithm x seed, and every reference x env x seed, leaving out
    the pairs that do not apply (:func:`applies`).

    Args:
        agents: names from :data:`AGENTS`.
        env_budgets: env id -> env-step budget.
        algos: names from :data:`ALGOS`.
        seeds: training seeds.
        eval_episodes: held-out evaluation episodes per job.
        curve_points: evaluations during training.
        env_algo_kwargs: env id -> algorithm overrides for every PPO learner on that env.
    """
    agents, algos, seeds = list(agents), list(algos), list(seeds)
    unknown = [a for a in agents if a not in AGENTS]
    if unknown:
        raise ValueError(f"agents must be among {list(AGENTS)}, got {unknown}")
    bad_algos = [a for a in algos if a not in ALGOS]
    if bad_algos:
        raise ValueError(f"algos must be among {ALGOS}, got {bad_algos}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    overrides = dict(env_algo_kwargs or {})
    jobs = []
    for env_id, seed, agent in itertools.product(env_budgets, seeds, agents):
        if agent in REFERENCES:
            if applies(agent, env_id, "none"):
                jobs.append(Job(agent, env_id, "none", seed, 0, eval_episodes, 0))
            continue
        for algo in algos:
            if not applies(agent, env_id, algo):
                continue
            kwargs = dict(overrides.get(env_id, {})) if algo == "ppo" else {}
            jobs.append(
                Job(
                    agent,
                    env_id,
                    algo_for(env_id, algo),
                    seed,
                    env_budgets[env_id],
                    eval_episodes,
                    curve_points,
                    kwargs,
                )
            )
    return jobs


def write_jobs(jobs: Iterable[Job], path: Path) -> None:
    """Save a job list as JSON (one object per job)."""
    path.write_text(json.dumps([asdict(job) for job in jobs], indent=1) + "\n")


def read_jobs(path: Path) -> list[Job]:
    """Load a job list written by :func:`write_jobs`."""
    return [Job(**fields) for fields in json.loads(path.read_text())]
