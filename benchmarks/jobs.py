"""The benchmark's job list: one independent, JSON-serialisable job per
agent x env x algorithm x seed.

Each job trains (or, for the ``random`` and ``solver`` references, only evaluates) one agent
and returns one results row, so any executor can run the list: ``concurrent.futures``
locally (``trm-rl bench``), or Ray / a cluster scheduler through ``trm-rl bench
--write-jobs jobs.json`` and ``python -m trm_rl.benchmarks.runner JOB.json OUT.json``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

LEARNERS = {"trm-k3": 3, "trm-k5": 5, "mlp": None}
"""Trained agents and their H-cycles (``None``: SB3's MlpPolicy, parameter-matched)."""
REFERENCES = ("random", "solver")
"""Untrained floor and ceiling: uniform random valid actions, and an exact solver (BFS for
mazes, backtracking for Sudoku)."""
ALGOS = ("ppo", "reinforce")
EVAL_SEED_OFFSET = 1_000_000
"""Evaluation episodes use reset seeds from here on, disjoint from every training seed."""


@dataclass(frozen=True)
class Job:
    """One benchmark run."""

    agent: str
    """One of ``LEARNERS`` or ``REFERENCES``."""
    env_id: str
    """Registered Gymnasium id."""
    algo: str
    """"ppo", "maskable-ppo", "reinforce", or "none" for the references."""
    seed: int
    """Training seed (network init, env layouts)."""
    timesteps: int
    """Env-step budget (the same for every learner on an env)."""
    eval_episodes: int
    """Held-out evaluation episodes (reset seeds ``EVAL_SEED_OFFSET + i``)."""
    curve_points: int = 5
    """Evaluations during training, for the learning curve (0: only the final one)."""

    @property
    def name(self) -> str:
        return f"{self.env_id}__{self.algo}__{self.agent}__s{self.seed}"

    @property
    def relative_cost(self) -> float:
        """A rough CPU cost, for scheduling the longest jobs first: env steps times H-cycles
        for TRM learners, a tenth of the steps for the MLP, nothing for the references."""
        if self.agent in REFERENCES:
            return 0.0
        h_cycles = LEARNERS[self.agent]
        return self.timesteps * (0.1 if h_cycles is None else h_cycles)


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
) -> list[Job]:
    """Every learner x env x algorithm x seed, and every reference x env x seed.

    Args:
        agents: names from ``LEARNERS`` and ``REFERENCES``.
        env_budgets: env id -> env-step budget.
        algos: names from ``ALGOS``.
        seeds: training seeds.
        eval_episodes: held-out evaluation episodes per job.
        curve_points: evaluations during training.
    """
    agents, algos, seeds = list(agents), list(algos), list(seeds)
    unknown = [a for a in agents if a not in LEARNERS and a not in REFERENCES]
    if unknown:
        raise ValueError(f"agents must be among {[*LEARNERS, *REFERENCES]}, got {unknown}")
    bad_algos = [a for a in algos if a not in ALGOS]
    if bad_algos:
        raise ValueError(f"algos must be among {ALGOS}, got {bad_algos}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    jobs = []
    for env_id, seed, agent in itertools.product(env_budgets, seeds, agents):
        if agent in REFERENCES:
            jobs.append(Job(agent, env_id, "none", seed, 0, eval_episodes, 0))
            continue
        for algo in algos:
            jobs.append(
                Job(
                    agent,
                    env_id,
                    algo_for(env_id, algo),
                    seed,
                    env_budgets[env_id],
                    eval_episodes,
                    curve_points,
                )
            )
    return jobs


def write_jobs(jobs: Iterable[Job], path: Path) -> None:
    """Save a job list as JSON (one object per job)."""
    path.write_text(json.dumps([asdict(job) for job in jobs], indent=1) + "\n")


def read_jobs(path: Path) -> list[Job]:
    """Load a job list written by :func:`write_jobs`."""
    return [Job(**fields) for fields in json.loads(path.read_text())]
