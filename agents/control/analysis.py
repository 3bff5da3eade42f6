"""Refinement analysis of a recursive controller on held-out problems.

For every iteration ``k`` (the initial guess ``k = 0`` and each refinement), the plans are
simulated in float64 and compared with the dataset's teacher (normally the numerical
optimum): cost per iteration, improvement per iteration, the fraction of problems whose
cost never rises from one iteration to the next, control MSE to the teacher, the gap of
the final plan to the teacher, and the success rate (final state within 0.1 of the
target). The fraction that never rises and the final gap are also given for the same
weights without the safeguard (every proposal accepted), the learned refinement alone.
:func:`plot_refinement` draws the write-up's 4-panel figure.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_rl.agents.control.controller import RecursiveController
from trm_rl.agents.control.data import ControlDataset
from trm_rl.agents.control.model import RecursiveControlModel
from trm_rl.atomic import atomic_path
from trm_rl.envs.dynamics import rollout, trajectory_cost

SUCCESS_TOLERANCE = 0.1
"""Success: ``||s_N - s*|| < SUCCESS_TOLERANCE``."""
EXAMPLES = 8
"""Problems whose per-iteration costs are kept for the plot."""


def simulate_plans(
    states: np.ndarray, targets: np.ndarray, plans: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 costs and final distances of plans: ``[N, 2]``, ``[N, 2]``, ``[..., N, T]``
    -> (``[..., N]`` costs, ``[..., N]`` distances ``||s_N - s*||``)."""
    leading = plans.shape[:-2]
    plans = torch.as_tensor(plans, dtype=torch.float64).reshape(-1, *plans.shape[-2:])
    repeats = len(plans)
    states64 = torch.as_tensor(states, dtype=torch.float64).repeat(repeats, 1)
    targets64 = torch.as_tensor(targets, dtype=torch.float64).repeat(repeats, 1)
    controls = plans.flatten(0, 1)
    with torch.no_grad():
        trajectory = rollout(states64, controls)
        costs = trajectory_cost(trajectory, controls, targets64)
        distances = (trajectory[:, -1] - targets64).norm(dim=1)
    shape = (*leading, states.shape[0])
    return costs.numpy().reshape(shape), distances.numpy().reshape(shape)


def refinement_metrics(controller: RecursiveController, dataset: ControlDataset) -> dict[str, Any]:
    """Evaluate ``controller`` on every problem of ``dataset`` (see the module docstring).

    Returns a JSON-serialisable dict; per-iteration entries are lists of length ``K + 1``.
    """
    start = time.perf_counter()
    plans = controller.plan(dataset.states, dataset.targets, return_all=True)
    plan_seconds = time.perf_counter() - start
    costs, distances = simulate_plans(dataset.states, dataset.targets, plans)
    unguarded = RecursiveController(
        RecursiveControlModel(replace(controller.config, safeguard=False))
    )
    unguarded.model.load_state_dict(controller.model.state_dict())
    raw_plans = unguarded.plan(dataset.states, dataset.targets, return_all=True)
    raw_costs, _ = simulate_plans(dataset.states, dataset.targets, raw_plans)
    optimum = dataset.costs
    final = costs[-1]
    total_improvement = costs[0] - final
    return {
        "problems": len(dataset),
        "teacher": dataset.teacher,
        "iterations": len(costs) - 1,
        "mean_cost": costs.mean(1).tolist(),
        "gap_per_iteration": (costs.mean(1) / optimum.mean() - 1.0).tolist(),
        "mean_improvement": (costs[:-1] - costs[1:]).mean(1).tolist(),
        "control_mse": ((plans - dataset.controls) ** 2).mean((1, 2)).tolist(),
        "monotone_fraction": float(np.all(costs[1:] <= costs[:-1], axis=0).mean()),
        "monotone_fraction_without_safeguard": float(
            np.all(raw_costs[1:] <= raw_costs[:-1], axis=0).mean()
        ),
        "gap_without_safeguard": float(raw_costs[-1].mean() / optimum.mean() - 1.0),
        "changed_per_iteration": np.any(plans[1:] != plans[:-1], axis=2).mean(1).tolist(),
        "teacher_mean_cost": float(optimum.mean()),
        "gap": float(final.mean() / optimum.mean() - 1.0),
        "gap_per_problem_mean": float((final / optimum - 1.0).mean()),
        "gap_per_problem_max": float((final / optimum - 1.0).max()),
        "lqr_gap": float(dataset.lqr_costs.mean() / optimum.mean() - 1.0),
        "success_rate": float((distances[-1] < SUCCESS_TOLERANCE).mean()),
        "success_rate_per_iteration": (distances < SUCCESS_TOLERANCE).mean(1).tolist(),
        "plan_seconds": plan_seconds,
        "plan_seconds_per_problem": plan_seconds / len(dataset),
        "total_improvement": total_improvement.tolist(),
        "example_gaps": (costs[:, :EXAMPLES] / optimum[:EXAMPLES] - 1.0).T.tolist(),
    }


def plot_refinement(metrics: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """The 4-panel refinement figure as a PNG: gap to the teacher per iteration (of the mean
    cost, and of a few single problems), mean improvement per iteration, control MSE per
    iteration, histogram of the total improvement ``J_0 - J_K``. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = np.arange(metrics["iterations"] + 1)
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    cost_axis, gain_axis, mse_axis, hist_axis = axes.ravel()
    for example in metrics["example_gaps"]:
        cost_axis.plot(iterations, 100 * np.asarray(example), color="0.7", linewidth=0.8)
    gaps = 100 * np.asarray(metrics["gap_per_iteration"])
    cost_axis.plot(iterations, gaps, "o-", color="C0", label="mean cost")
    cost_axis.axhline(100 * metrics["lqr_gap"], color="C3", linestyle="--", label="LQR teacher")
    cost_axis.set_yscale("symlog", linthresh=0.01)
    lowest = min(0.0, 100 * np.min(metrics["example_gaps"]), gaps.min())
    cost_axis.set_ylim(bottom=lowest)
    cost_axis.set(xlabel="iteration", ylabel="gap to optimum (%)", title="Cost per iteration")
    cost_axis.legend()
    gain_axis.bar(iterations[1:], metrics["mean_improvement"], color="C1")
    gain_axis.set(
        xlabel="iteration", ylabel="mean J_{k-1} - J_k", title="Improvement per iteration"
    )
    mse_axis.semilogy(iterations, metrics["control_mse"], "o-", color="C2")
    mse_axis.set(xlabel="iteration", ylabel="MSE to teacher", title="Control MSE per iteration")
    hist_axis.hist(metrics["total_improvement"], bins=40, color="C4")
    hist_axis.set(
        xlabel="J_0 - J_K",
        ylabel="problems",
        title=f"Total improvement (monotone: {100 * metrics['monotone_fraction']:.1f}%)",
    )
    figure.suptitle(
        f"{title} gap to optimum {100 * metrics['gap']:.3f}%, "
        f"success {100 * metrics['success_rate']:.1f}%".strip()
    )
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path
