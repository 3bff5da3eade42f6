"""Recursive controllers against the numerical optimum on held-out Van der Pol problems.

Run: ``python -m trm_rl.benchmarks.control_benchmark RUN_DIR [RUN_DIR ...] [--n 256]
[--seed 1000] [--ipopt] [--plan-batches 1 256 1024]``, with ``RUN_DIR`` the output
directories of ``trm-rl control train``.

In one run: draw ``--n`` held-out problems from ``--seed`` (a seed no training set uses),
solve them with the optimizer (direct shooting, L-BFGS-B, warm-started from LQR; its wall
time per problem is reported) and, with ``--ipopt`` (the ``ipopt`` extra), with IPOPT
(:mod:`trm_rl.benchmarks.control_ipopt`; its time per problem and its cost against
L-BFGS-B's), then for the LQR teacher and each controller report the gap of the mean cost
to the optimum, the success rate (``||s_N|| < 0.1``), the fraction of problems whose cost
never rises over the refinement iterations, the batched planning time per problem and its
speed-up over the optimizer (and over IPOPT), the parameter count and the training time
(from the run's ``metrics.json``). Planning is also timed per problem at each of
``--plan-batches`` (problems drawn like the held-out ones), so the speed-up is stated with
its batch size. Writes ``benchmarks/results/control.json``,
``control.md`` and, for the first run, ``control_refinement.png`` (``--out DIR`` elsewhere);
existing results there are refused unless ``--overwrite``, and the runs and ``--out`` are
checked before any solving.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_rl.agents.control.analysis import plot_refinement, refinement_metrics, simulate_plans
from trm_rl.agents.control.controller import RecursiveController
from trm_rl.agents.control.data import generate_dataset, lqr_controls, problem_costs
from trm_rl.agents.control.model import ControlModelConfig
from trm_rl.agents.control.train import ControlTrainConfig
from trm_rl.atomic import atomic_write_text
from trm_rl.envs.vanderpol import START_RANGE
from trm_rl.optional import MissingExtraError, require

RESULTS = Path(__file__).resolve().parent / "results"
PLAN_REPEATS = 3
"""Planning is timed as the best of this many batched calls."""
OUTPUTS = ("control.json", "control.md", "control_refinement.png")
"""What a run writes into ``--out``."""
PLAN_BATCHES = (1, 256, 1024)
"""Default batch sizes at which planning is timed."""


def plan_seconds(controller: RecursiveController, states: np.ndarray) -> float:
    """Wall seconds per problem of one batched ``plan`` call (best of :data:`PLAN_REPEATS`)."""
    return min(_timed(lambda: controller.plan(states)) for _ in range(PLAN_REPEATS)) / len(states)


def controller_row(
    directory: Path,
    dataset,
    optimizer_seconds: float,
    ipopt_seconds: float | None,
    batch_states: dict[int, np.ndarray],
) -> dict[str, Any]:
    """Metrics of one trained controller on the held-out problems."""
    controller = RecursiveController.load(directory)
    metrics = refinement_metrics(controller, dataset)
    saved = json.loads((directory / "metrics.json").read_text())
    per_problem = plan_seconds(controller, dataset.states)
    by_batch = {batch: plan_seconds(controller, states) for batch, states in batch_states.items()}
    return {
        "run": directory.name,
        "objective": saved["train"]["objective"],
        "mode": controller.config.mode,
        "iterations": controller.config.iterations,
        "parameters": saved["parameters"],
        "train_seconds": saved["train_seconds"],
        "train_batches": saved["train"]["batches"],
        "gap": metrics["gap"],
        "success_rate": metrics["success_rate"],
        "monotone_fraction": metrics["monotone_fraction"],
        "monotone_fraction_without_safeguard": metrics["monotone_fraction_without_safeguard"],
        "gap_without_safeguard": metrics["gap_without_safeguard"],
        "mean_cost_per_iteration": metrics["mean_cost"],
        "plan_seconds_per_problem": per_problem,
        "speedup_vs_optimizer": optimizer_seconds / per_problem,
        "plan_seconds_per_problem_by_batch": by_batch,
        "speedup_vs_ipopt_by_batch": None
        if ipopt_seconds is None
        else {batch: ipopt_seconds / seconds for batch, seconds in by_batch.items()},
        "model": controller.config.to_dict(),
        "train": saved["train"],
        "analysis": metrics,
    }


def train_command(row: dict[str, Any]) -> str:
    """The ``trm-rl control train`` call that reproduces a run (flags off their defaults)."""
    flags = []
    for values, cls in ((row["train"], ControlTrainConfig), (row["model"], ControlModelConfig)):
        for field in fields(cls):
            value = values[field.name]
            if field.name in ("data", "val_data", "out") or value == field.default:
                continue
            flag = "--" + field.name.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag if value else "--no-" + flag[2:])
            else:
                flags.append(f"{flag} {value}")
    return " ".join(["trm-rl control train --data TRAIN.npz --val-data VAL.npz", *flags])


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def markdown(result: dict[str, Any]) -> str:
    """The results table."""
    lines = [
        "# Supervised recursive control on Van der Pol",
        "",
        f"{result['problems']} held-out problems (seed {result['seed']}), optimum by direct "
        f"shooting + L-BFGS-B in the same run: {result['optimizer_seconds_per_problem']:.3f} "
        f"s per problem (batched, 1 CPU thread), mean optimal cost "
        f"{result['optimum_mean_cost']:.2f}. Gap: mean cost / optimal mean cost - 1. "
        "Monotone: cost never rises over the iterations. The safeguard keeps a plan whose "
        "refinement would cost more; the columns in brackets are the same weights without "
        "it (every refinement accepted: the learned refinement alone).",
        "",
        "| controller | objective | mode | params | train time | gap to optimum "
        "(no safeguard) | success | monotone (no safeguard) | plan time / problem | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| LQR teacher | - | - | - | - | {100 * result['lqr']['gap']:+.3f}% | "
        f"{100 * result['lqr']['success_rate']:.1f}% | - | - | - |",
    ]
    for row in result["controllers"]:
        lines.append(
            f"| {row['run']} | {row['objective']} | {row['mode']} | {row['parameters']:,} | "
            f"{row['train_seconds'] / 60:.1f} min ({row['train_batches']} batches) | "
            f"{100 * row['gap']:+.3f}% ({100 * row['gap_without_safeguard']:+.3f}%) | "
            f"{100 * row['success_rate']:.1f}% | {100 * row['monotone_fraction']:.1f}% "
            f"({100 * row['monotone_fraction_without_safeguard']:.1f}%) | "
            f"{1e3 * row['plan_seconds_per_problem']:.3f} ms | "
            f"{row['speedup_vs_optimizer']:.0f}x |"
        )
    lines += ["", *speed_table(result)]
    lines += ["", "Training commands:", ""]
    lines += [f"- {row['run']}: `{train_command(row)}`" for row in result["controllers"]]
    lines += ["", f"Machine: {result['machine']}.", ""]
    return "\n".join(lines)


def speed_table(result: dict[str, Any]) -> list[str]:
    """Planning time per problem by batch size, and the speed-up over IPOPT."""
    ipopt = result["ipopt"]
    lines = []
    if ipopt is not None:
        lines += [
            f"IPOPT (CasADi, multiple shooting, exact Hessians, LQR warm start, one problem per "
            f"call): {1e3 * ipopt['seconds_per_problem']:.2f} ms per problem, "
            f"{ipopt['mean_iterations']:.1f} iterations on average, "
            f"{100 * ipopt['converged']:.1f}% converged, mean cost "
            f"{100 * ipopt['gap']:+.4f}% against L-BFGS-B's.",
            "",
        ]
    batches = result["plan_batches"]
    lines += [
        "| controller | "
        + " | ".join(f"plan / problem, batch {batch}" for batch in batches)
        + (" | " + " | ".join(f"vs IPOPT, batch {b}" for b in batches) if ipopt else "")
        + " |",
        "|---|" + "---|" * (len(batches) * (2 if ipopt else 1)),
    ]
    for row in result["controllers"]:
        cells = [f"{1e3 * row['plan_seconds_per_problem_by_batch'][b]:.3f} ms" for b in batches]
        if ipopt:
            cells += [f"{row['speedup_vs_ipopt_by_batch'][b]:.0f}x" for b in batches]
        lines.append(f"| {row['run']} | " + " | ".join(cells) + " |")
    return lines


def solve_with_ipopt(dataset) -> dict[str, Any]:
    """IPOPT on the held-out problems: time per problem, iterations, cost against L-BFGS-B."""
    from trm_rl.benchmarks.control_ipopt import IpoptSolver

    solved = IpoptSolver().solve(dataset.states, dataset.targets)
    costs = problem_costs(dataset.states, solved.controls, dataset.targets)
    return {
        "seconds_per_problem": solved.seconds_per_problem,
        "mean_iterations": float(solved.iterations.mean()),
        "converged": float(solved.converged.mean()),
        "gap": float(costs.mean() / dataset.costs.mean() - 1.0),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="`trm-rl control train` directories")
    parser.add_argument("--n", type=int, default=256, help="held-out problems (default: 256)")
    parser.add_argument("--seed", type=int, default=1000, help="problem seed (default: 1000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results")
    parser.add_argument(
        "--ipopt", action="store_true", help='also time IPOPT (pip install "trm-rl[ipopt]")'
    )
    parser.add_argument(
        "--plan-batches",
        type=int,
        nargs="+",
        default=list(PLAN_BATCHES),
        help=f"batch sizes at which planning is timed (default {' '.join(map(str, PLAN_BATCHES))})",
    )
    args = parser.parse_args(argv)
    if min(args.plan_batches) < 1:
        parser.error(f"--plan-batches must be >= 1, got {args.plan_batches}")
    if args.ipopt:
        try:
            require("casadi", "--ipopt")
        except MissingExtraError as error:
            parser.error(str(error))
    existing = [name for name in OUTPUTS if (args.out / name).exists()]
    if existing and not args.overwrite:
        parser.error(f"{args.out} already holds {', '.join(existing)}; pass --overwrite")
    try:
        for run in args.runs:
            RecursiveController.load(run)
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except (OSError, ValueError) as error:
        parser.error(str(error))
    torch.set_num_threads(1)

    start = time.perf_counter()
    dataset = generate_dataset(args.n, "optimal", seed=args.seed, chunk_size=args.n)
    optimizer_seconds = (time.perf_counter() - start) / args.n
    lqr_costs, lqr_distances = simulate_plans(
        dataset.states, dataset.targets, lqr_controls(dataset.states, dataset.targets)
    )
    result: dict[str, Any] = {
        "problems": args.n,
        "seed": args.seed,
        "optimizer_seconds_per_problem": optimizer_seconds,
        "optimum_mean_cost": float(dataset.costs.mean()),
        "lqr": {
            "gap": float(lqr_costs.mean() / dataset.costs.mean() - 1.0),
            "success_rate": float((lqr_distances < 0.1).mean()),
        },
        "ipopt": solve_with_ipopt(dataset) if args.ipopt else None,
        "plan_batches": args.plan_batches,
    }
    ipopt_seconds = result["ipopt"]["seconds_per_problem"] if args.ipopt else None
    rng = np.random.default_rng(args.seed)
    batch_states = {
        batch: rng.uniform(-START_RANGE, START_RANGE, (batch, 2)).astype(np.float32)
        for batch in args.plan_batches
    }
    result |= {
        "controllers": [
            controller_row(run, dataset, optimizer_seconds, ipopt_seconds, batch_states)
            for run in args.runs
        ],
        "machine": f"{platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, 1 thread",
    }
    atomic_write_text(args.out / "control.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "control.md", markdown(result))
    first = result["controllers"][0]
    plot_refinement(first["analysis"], args.out / "control_refinement.png", title=first["run"])
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
