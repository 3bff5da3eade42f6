"""Held-out learning benchmark: ``PPO(TRMPolicy)`` against a parameter-matched MLP.

Both are trained in the same run, with the same budget, env settings and algorithm
hyperparameters (the env's recipe in :mod:`trm_rl.agents.sb3.hyperparams`), over several seeds.
Every ``timesteps / curve_points`` steps the agent plays ``--eval-episodes`` held-out
episodes (reset seeds from :mod:`trm_rl.agents.evaluation`, deterministic actions); layouts
whose first observation also started a training episode are skipped, so every evaluated
maze/puzzle is unseen. The loop is the benchmark's
(:func:`trm_rl.benchmarks.runner.train_and_evaluate`).

Run: ``python -m trm_rl.benchmarks.policy_learning --env TRM-Maze-v0 --timesteps 300000
--seed 0 --n-seeds 3`` -> ``benchmarks/results/policy_learning_<env>.json`` (rewritten after
every run, and after every held-out evaluation with the unfinished run's curve under
``"running"``, so an interrupted run leaves its partial results).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.training import TrainConfig, config_record, make_model, matched_mlp_config
from trm_rl.benchmarks.runner import train_and_evaluate
from trm_rl.benchmarks.stats import summarize
from trm_rl.config import require_number

RESULTS = Path(__file__).resolve().parent / "results"
POLICIES = ("trm", "mlp", "mlp-sb3")
"""``trm``: TRMPolicy; ``mlp``: MlpPolicy with two hidden layers per head, the smallest width
with at least the TRM policy's parameter count (:func:`matched_mlp_config`); ``mlp-sb3``: SB3's
default MlpPolicy (64, 64)."""


def run_one(
    config: TrainConfig,
    policy: str,
    args: argparse.Namespace,
    on_point: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` (the agent ``policy``) with the held-out curve
    (:func:`trm_rl.benchmarks.runner.train_and_evaluate`); its results row. ``on_point``
    receives a partial row (``"partial": True``, the curve so far) after every held-out
    evaluation."""

    def partial(points: list[dict[str, Any]]) -> None:
        if on_point is not None:
            on_point({"policy": policy, "seed": config.seed, "partial": True, "curve": points})

    run = train_and_evaluate(
        config,
        f"{policy} seed {config.seed}",
        args.eval_episodes,
        args.curve_points,
        eval_seed=args.eval_seed,
        on_point=partial,
    )
    if args.save_models is not None:
        directory = args.save_models / f"{policy}-seed{config.seed}"
        directory.mkdir(parents=True, exist_ok=False)
        run.model.save(directory / "model.zip")
        record = {**config_record(config, run.model), "command": args.command}
        (directory / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    final = run.final.to_dict()
    row = {
        "policy": policy,
        "seed": config.seed,
        "params": run.params,
        "policy_kwargs": {k: str(v) for k, v in config.resolved_policy_kwargs().items()},
        "steps_per_s": run.steps_per_s,
        "training_layouts": run.training_layouts,
        "curve": run.curve,
        "final": final,
        "time_to_threshold": time_to(run.curve, args.threshold),
    }
    reached = row["time_to_threshold"]
    print(
        f"{policy:8s} seed {config.seed}: success {final['success_rate']:.3f}, path ratio "
        f"{final['path_ratio']}, {row['steps_per_s']:.0f} steps/s, {row['params']} params, "
        + (
            f"{args.threshold:.0%} at {reached['timesteps']} steps after "
            f"{reached['cpu_seconds']:.0f} CPU s ({reached['seconds']:.0f} s wall)"
            if reached
            else f"{args.threshold:.0%} not reached"
        ),
        flush=True,
    )
    return row


def time_to(curve: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first curve point at or above ``threshold`` held-out success: its env steps and
    the wall and process CPU seconds since training started, evaluations included; ``None``
    when no point reaches it."""
    for point in curve:
        if point["success_rate"] >= threshold:
            return {
                "threshold": threshold,
                "timesteps": point["timesteps"],
                "seconds": point["elapsed_seconds"],
                "cpu_seconds": point["elapsed_cpu_seconds"],
            }
    return None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and 95% bootstrap interval over seeds of the final metrics, per policy."""
    out = {}
    for policy in sorted({row["policy"] for row in rows}):
        mine = [row for row in rows if row["policy"] == policy]
        out[policy] = {
            metric: vars(summarize([row["final"][metric] for row in mine]))
            for metric in ("success_rate", "path_ratio", "mean_return")
        }
        out[policy]["steps_per_s"] = vars(summarize([row["steps_per_s"] for row in mine]))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TRM-Maze-v0", help="env id (default TRM-Maze-v0)")
    parser.add_argument("--timesteps", type=int, default=300_000, help="budget per agent")
    parser.add_argument("--seed", type=int, default=0, help="first training seed (default 0)")
    parser.add_argument("--n-seeds", type=int, default=3, help="seeds seed..seed+n-1 (3)")
    parser.add_argument(
        "--policies", nargs="+", choices=POLICIES, default=["trm", "mlp"], help="agents"
    )
    parser.add_argument("--eval-episodes", type=int, default=500, help="held-out episodes")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--curve-points", type=int, default=5, help="evaluations per run")
    parser.add_argument("--n-envs", type=int, default=None, help="override the recipe's n_envs")
    parser.add_argument("--env-kwargs", type=json.loads, default={}, help="JSON for gym.make")
    parser.add_argument("--trm-kwargs", type=json.loads, default={}, help="JSON TRM overrides")
    parser.add_argument("--algo-kwargs", type=json.loads, default={}, help="JSON algo overrides")
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    parser.add_argument(
        "--save-models", type=Path, default=None, help="also save each agent to DIR/POLICY-seedS"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.9,
        help="held-out success whose time to reach is reported (default 0.9)",
    )
    args = parser.parse_args(argv)
    args.command = "python -m trm_rl.benchmarks.policy_learning " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_number("--threshold", args.threshold, 0.0, 1.0, low_open=True)
    torch.set_num_threads(1)
    base = TrainConfig(
        env_id=args.env,
        timesteps=args.timesteps,
        env_kwargs=args.env_kwargs,
        n_envs=args.n_envs,
        policy_kwargs=args.trm_kwargs,
        algo_kwargs=args.algo_kwargs,
        device="cpu",
    )
    name = args.env.removeprefix("trm_rl:") + (f"_{args.tag}" if args.tag else "")
    out = args.out or RESULTS / f"policy_learning_{name}.json"
    if out.exists() and not args.overwrite:
        raise FileExistsError(
            f"{out} exists; choose another --tag or --out, or pass --overwrite to replace it"
        )
    trm_params = parameter_count(make_model(base).policy)
    configs = {"trm": base, "mlp-sb3": replace(base, policy="mlp", policy_kwargs={})}
    if "mlp" in args.policies:
        configs["mlp"] = matched_mlp_config(base)
    meta = {
        "env": args.env,
        "env_kwargs": args.env_kwargs,
        "timesteps": args.timesteps,
        "seeds": list(range(args.seed, args.seed + args.n_seeds)),
        "algo": base.resolved_algo,
        "n_envs": base.resolved_n_envs,
        "algo_kwargs": base.resolved_algo_kwargs(),
        "trm_policy_kwargs": base.resolved_policy_kwargs(),
        "trm_params": trm_params,
        "mlp_net_arch": configs["mlp"].policy_kwargs["net_arch"] if "mlp" in configs else None,
        "eval": {"episodes": args.eval_episodes, "seed": args.eval_seed, "deterministic": True},
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "command": args.command,
    }
    rows: list[dict[str, Any]] = []

    def write(running: dict[str, Any] | None = None) -> None:
        report = {"meta": meta, "summary": summary(rows), "runs": rows}
        if running is not None:
            report["running"] = running
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    for seed in meta["seeds"]:
        for policy in args.policies:
            rows.append(run_one(replace(configs[policy], seed=seed), policy, args, write))
            write()
    print(json.dumps(summary(rows), indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
