"""Run one benchmark job and return its results row; the one train-and-evaluate loop of the
benchmarks (``trm-rl bench`` and :mod:`trm_rl.benchmarks.policy_learning`).

Run a single job from a job file (e.g. on a cluster node)::

    python -m trm_rl.benchmarks.runner JOBS.json INDEX ROW.json [--out DIR]

Learners are trained with the recommended settings of their env
(:mod:`trm_rl.agents.sb3.hyperparams`), then evaluated with deterministic actions on held-out
episodes (:func:`trm_rl.agents.evaluation.evaluate`, evaluation seed 0; layouts or puzzles
seen in training are skipped, except on envs with one pinned layout, such as
``TRM-Maze-Fixed-v0``). References are evaluated only.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from trm_rl.agents.evaluation import EvaluationResult, evaluate
from trm_rl.agents.loading import SB3Agent, load_agent
from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.cnn import GridResNet
from trm_rl.agents.sb3.training import TrainConfig, make_env, make_model, matched_mlp_config
from trm_rl.benchmarks.held_out import HeldOutCurve, TrainingStarts, fingerprint
from trm_rl.benchmarks.jobs import LEARNERS, TRM_SETTINGS, Job, read_jobs
from trm_rl.benchmarks.references import reference_agent

EVAL_SEED = 0
"""Every job is evaluated on the same held-out episodes (evaluation seed 0)."""
CURVE_EPISODES = 50
"""Held-out episodes per learning-curve point (at most ``Job.eval_episodes``)."""


def learner_config(
    agent: str,
    env_id: str,
    timesteps: int,
    seed: int,
    algo: str | None = None,
    algo_kwargs: dict[str, Any] | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """The :class:`TrainConfig` of a benchmark learner (:data:`~trm_rl.benchmarks.jobs.LEARNERS`).

    Every learner starts from ``base`` (default: the env's recipe with ``algo`` and
    ``algo_kwargs``), so all share the algorithm settings; ``mlp`` is matched to the
    ``trm-k3`` policy's parameter count.
    """
    if agent not in LEARNERS:
        raise ValueError(f"agent must be one of {LEARNERS}, got {agent!r}")
    if base is None:
        base = TrainConfig(
            env_id, algo, "trm", timesteps, seed, algo_kwargs=dict(algo_kwargs or {})
        )
    if agent in TRM_SETTINGS:
        return replace(base, policy_kwargs={**base.policy_kwargs, **TRM_SETTINGS[agent]})
    if agent == "mlp":
        trm_k3 = replace(base, policy_kwargs={**base.policy_kwargs, **TRM_SETTINGS["trm-k3"]})
        return matched_mlp_config(trm_k3)
    if agent == "cnn":
        return replace(
            base,
            policy="mlp",
            policy_kwargs={"features_extractor_class": GridResNet, "net_arch": []},
        )
    return replace(base, policy="mlp", policy_kwargs={})


@dataclass
class TrainedRun:
    """What :func:`train_and_evaluate` returns."""

    model: BaseAlgorithm
    params: int
    """Trainable parameters of the policy."""
    train_seconds: float
    """Training wall time, evaluations excluded."""
    steps_per_s: float
    """Training env steps per second of ``train_seconds`` (the steps taken: the budget
    rounded up to whole rollouts)."""
    cpu_steps_per_s: float
    """Training env steps per second of this process's CPU time (robust on a shared
    machine; one torch thread)."""
    training_layouts: int
    """Distinct first observations (layouts/puzzles) the training envs started from."""
    curve: list[dict[str, Any]]
    """Held-out evaluations during training: ``{"timesteps", **EvaluationResult fields}``."""
    final: EvaluationResult
    """The held-out evaluation after training."""


def train_and_evaluate(
    config: TrainConfig,
    label: str,
    eval_episodes: int,
    curve_points: int,
    eval_seed: int = EVAL_SEED,
    curve_episodes: int | None = None,
    tensorboard: Path | None = None,
    on_point: Callable[[list[dict[str, Any]]], None] | None = None,
) -> TrainedRun:
    """Train ``config`` with a held-out learning curve, then evaluate it on held-out episodes.

    Args:
        config: what to train (PPO, A2C or MaskablePPO).
        label: name in the progress lines.
        eval_episodes: episodes of the final evaluation.
        curve_points: evaluations during training, every ``timesteps // curve_points``
            steps (0: none).
        eval_seed: evaluation seed (:func:`trm_rl.agents.evaluation.evaluation_seed`).
        curve_episodes: episodes per curve point (default ``eval_episodes``); when the last
            point falls on the last step with ``eval_episodes`` episodes it is the final
            evaluation.
        tensorboard: TensorBoard log directory, or None.
        on_point: receives the curve so far after every curve point.
    """
    curve_episodes = eval_episodes if curve_episodes is None else curve_episodes
    env = TrainingStarts(make_env(config))
    model = make_model(config, env, tensorboard)
    agent = SB3Agent(model)
    pinned = "layout" in gym.spec(config.env_id).kwargs or "layout" in config.env_kwargs
    skip = None if pinned else (lambda obs: fingerprint(obs) in env.seen)

    def held_out(episodes: int) -> EvaluationResult:
        return evaluate(agent, config.env_id, episodes, eval_seed, config.env_kwargs, skip=skip)

    def curve_point() -> dict[str, Any]:
        return held_out(curve_episodes).to_dict()

    every = max(1, config.timesteps // curve_points) if curve_points else config.timesteps + 1
    curve = HeldOutCurve(every, curve_point, label, on_point)
    model.learn(config.timesteps, callback=curve)
    last = curve.points[-1] if curve.points else None
    if (
        last is not None
        and last["timesteps"] == model.num_timesteps
        and (curve_episodes == eval_episodes)
    ):
        clocks = ("timesteps", "train_seconds", "elapsed_seconds", "elapsed_cpu_seconds")
        fields = {k: v for k, v in last.items() if k not in clocks}
        final = EvaluationResult(**fields)
    else:
        final = held_out(eval_episodes)
    return TrainedRun(
        model=model,
        params=parameter_count(model.policy),
        train_seconds=curve.train_seconds,
        steps_per_s=model.num_timesteps / curve.train_seconds,
        cpu_steps_per_s=model.num_timesteps / curve.train_cpu_seconds,
        training_layouts=len(env.seen),
        curve=curve.points,
        final=final,
    )


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
    config = learner_config(
        job.agent, job.env_id, job.timesteps, job.seed, job.algo, job.algo_kwargs
    )
    run = train_and_evaluate(
        config,
        job.name,
        job.eval_episodes,
        job.curve_points,
        curve_episodes=min(CURVE_EPISODES, job.eval_episodes),
        tensorboard=None if out_dir is None else out_dir / "tb" / job.name,
    )
    if out_dir is not None:
        (out_dir / "models").mkdir(parents=True, exist_ok=True)
        run.model.save(out_dir / "models" / f"{job.name}.zip")
    return _row(
        job,
        run.final,
        params=run.params,
        steps_per_s=run.steps_per_s,
        cpu_steps_per_s=run.cpu_steps_per_s,
        train_seconds=run.train_seconds,
        curve=[
            [p["timesteps"], p["success_rate"], p["train_seconds"], p["elapsed_cpu_seconds"]]
            for p in run.curve
        ],
    )


def run_reinforce(job: Job, out_dir: Path | None) -> dict[str, Any]:
    """Train a REINFORCE learner with deep supervision exactly as ``trm-rl train --algo
    reinforce`` does (the env's recipe, the default ``ReinforceConfig``); the learning curve
    comes from resuming the run budget by budget (identical to one uninterrupted run)."""
    from trm_rl.agents.reinforce.trainer import resume
    from trm_rl.cli import build_parser
    from trm_rl.cli.reinforce_flags import run as train_from_args

    run_dir = (out_dir or Path(tempfile.mkdtemp())) / "reinforce" / job.name
    points = max(1, job.curve_points)
    budgets = [round(job.timesteps * (i + 1) / points) for i in range(points)]
    argv = ["train", "--env", job.env_id, "--algo", "reinforce", "--seed", str(job.seed)]
    argv += ["--timesteps", str(budgets[0]), "--out", str(run_dir), "--no-progress"]
    if job.agent == "mlp":
        argv += ["--policy", "mlp"]
    else:
        argv += ["--policy", "trm"]
        for name, value in TRM_SETTINGS[job.agent].items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
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
        curve.append([budget, result.success_rate, train_seconds])
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
    """Train and/or evaluate ``job`` on one torch thread; returns its results row (see
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


def write_row(row: dict[str, Any], path: Path) -> None:
    """Write a results row as JSON atomically (a temporary file, then a rename), so a killed
    run never leaves a half-written row."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(row, indent=1) + "\n")
    os.replace(temporary, path)


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
    write_row(run_job(jobs[args.index], args.out), args.row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
