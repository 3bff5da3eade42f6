"""Run one benchmark job and return its results row.

Run a single job from a job file (e.g. on a cluster node)::

    python -m trm_rl.benchmarks.runner JOBS.json INDEX ROW.json [--out DIR]

Learners are trained with the recommended settings of their env
(:mod:`trm_rl.agents.sb3.hyperparams`), then evaluated with deterministic actions on held-out
episodes (:func:`trm_rl.agents.evaluation.evaluate`, evaluation seed 0; for PPO, layouts or
puzzles seen in training are skipped, except on envs with one pinned layout, such as
``TRM-Maze-Fixed-v0``). References are evaluated only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from trm_rl.agents.evaluation import EvaluationResult, evaluate
from trm_rl.agents.loading import SB3Agent, load_agent
from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.training import TrainConfig, make_env, make_model, matched_mlp_config
from trm_rl.benchmarks.held_out import HeldOutCurve, TrainingStarts, fingerprint
from trm_rl.benchmarks.jobs import LEARNERS, Job, read_jobs
from trm_rl.benchmarks.references import reference_agent

EVAL_SEED = 0
"""Every job is evaluated on the same held-out episodes (evaluation seed 0)."""
CURVE_EPISODES = 50
"""Held-out episodes per learning-curve point (at most ``Job.eval_episodes``)."""


def _row(job: Job, result: EvaluationResult, **extra: Any) -> dict[str, Any]:
    return {
        "agent": job.agent,
        "env": job.env_id,
        "algo": job.algo,
        "seed": job.seed,
        "success": result.success_rate,
        "mean_return": result.mean_return,
        "path_ratio": result.path_ratio,
        "eval_episodes": result.episodes,
        "timesteps": job.timesteps,
        **extra,
    }


def run_reference(job: Job) -> dict[str, Any]:
    """Evaluate the ``random`` or ``solver`` reference of ``job``."""
    env = gym.make(job.env_id)
    agent = reference_agent(job.agent, env.observation_space, env.action_space, job.seed)
    env.close()
    result = evaluate(agent, job.env_id, job.eval_episodes, EVAL_SEED)
    return _row(job, result, params=0, steps_per_s=None, train_seconds=0.0, curve=None)


def run_sb3(job: Job, out_dir: Path | None) -> dict[str, Any]:
    """Train a PPO/MaskablePPO learner with a held-out learning curve, then evaluate it."""
    h_cycles = LEARNERS[job.agent]
    trm_config = TrainConfig(job.env_id, job.algo, "trm", job.timesteps, job.seed)
    if h_cycles is None:
        config = matched_mlp_config(trm_config)
    else:
        config = TrainConfig(
            job.env_id,
            job.algo,
            "trm",
            job.timesteps,
            job.seed,
            policy_kwargs={"h_cycles": h_cycles},
        )
    env = TrainingStarts(make_env(config))
    tensorboard = None if out_dir is None else out_dir / "tb" / job.name
    model = make_model(config, env, tensorboard)
    agent = SB3Agent(model)

    pinned = "layout" in gym.spec(job.env_id).kwargs
    skip = None if pinned else (lambda obs: fingerprint(obs) in env.seen)

    def held_out(episodes: int) -> EvaluationResult:
        return evaluate(agent, job.env_id, episodes, EVAL_SEED, skip=skip)

    def curve_point() -> dict[str, Any]:
        return held_out(min(CURVE_EPISODES, job.eval_episodes)).to_dict()

    every = max(1, job.timesteps // job.curve_points) if job.curve_points else job.timesteps + 1
    curve = HeldOutCurve(every, curve_point, job.name)
    model.learn(job.timesteps, callback=curve)
    final = held_out(job.eval_episodes)
    if out_dir is not None:
        (out_dir / "models").mkdir(parents=True, exist_ok=True)
        model.save(out_dir / "models" / f"{job.name}.zip")
    return _row(
        job,
        final,
        params=parameter_count(model.policy),
        steps_per_s=job.timesteps / curve.train_seconds,
        train_seconds=curve.train_seconds,
        curve=[[p["timesteps"], p["success_rate"]] for p in curve.points],
    )


def run_reinforce(job: Job, out_dir: Path | None) -> dict[str, Any]:
    """Train a REINFORCE learner with deep supervision exactly as ``trm-rl train --algo
    reinforce`` does (the env's recipe, the default ``ReinforceConfig``); the learning curve
    comes from resuming the run budget by budget (identical to one uninterrupted run)."""
    from trm_rl.agents.reinforce.trainer import resume
    from trm_rl.cli import build_parser
    from trm_rl.cli.reinforce_flags import run as train_from_args

    run_dir = (out_dir or Path(tempfile.mkdtemp())) / "reinforce" / job.name
    h_cycles = LEARNERS[job.agent]
    points = max(1, job.curve_points)
    budgets = [round(job.timesteps * (i + 1) / points) for i in range(points)]
    argv = [
        "train",
        "--env",
        job.env_id,
        "--algo",
        "reinforce",
        "--seed",
        str(job.seed),
        "--timesteps",
        str(budgets[0]),
        "--out",
        str(run_dir),
        "--no-progress",
        "--policy",
        "mlp" if h_cycles is None else "trm",
    ]
    if h_cycles is not None:
        argv += ["--h-cycles", str(h_cycles)]
    curve, train_seconds = [], 0.0
    for index, budget in enumerate(budgets):
        start = time.perf_counter()
        if index == 0:
            train_from_args(build_parser("train").parse_args(argv))
        else:
            resume(run_dir, timesteps=budget)
        train_seconds += time.perf_counter() - start
        agent = load_agent(run_dir)
        result = evaluate(agent, job.env_id, min(CURVE_EPISODES, job.eval_episodes), EVAL_SEED)
        curve.append([budget, result.success_rate])
    final = evaluate(agent, job.env_id, job.eval_episodes, EVAL_SEED)
    return _row(
        job,
        final,
        params=parameter_count(agent.policy),
        steps_per_s=job.timesteps / train_seconds,
        train_seconds=train_seconds,
        curve=curve,
    )


def run_job(job: Job, out_dir: Path | None = None) -> dict[str, Any]:
    """Train and/or evaluate ``job``; returns its results row (see
    :data:`trm_rl.benchmarks.report.ROW_FIELDS`)."""
    torch.set_num_threads(1)
    torch.manual_seed(job.seed)
    np.random.seed(job.seed)
    start = time.perf_counter()
    if job.algo == "none":
        row = run_reference(job)
    elif job.algo == "reinforce":
        row = run_reinforce(job, out_dir)
    else:
        row = run_sb3(job, out_dir)
    row["wall_seconds"] = time.perf_counter() - start
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one job of a benchmark job file.")
    parser.add_argument("jobs", type=Path, help="job list written by `trm-rl bench --write-jobs`")
    parser.add_argument("index", type=int, help="index of the job in the list")
    parser.add_argument("row", type=Path, help="where to write the results row (JSON)")
    parser.add_argument("--out", type=Path, default=None, help="directory for models and logs")
    args = parser.parse_args(argv)
    jobs = read_jobs(args.jobs)
    if not 0 <= args.index < len(jobs):
        parser.error(f"index must be in [0, {len(jobs) - 1}], got {args.index}")
    args.row.write_text(json.dumps(run_job(jobs[args.index], args.out), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
