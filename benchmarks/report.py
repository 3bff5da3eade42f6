"""Benchmark report: the markdown table and the learning-curve plots."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from trm_rl.benchmarks.stats import Summary, summarize

ROW_FIELDS = (
    "agent", "env", "algo", "seed", "success", "mean_return", "path_ratio", "params",
    "steps_per_s", "train_seconds", "timesteps",
)  # fmt: skip
"""Fields every results row carries (``path_ratio`` is None off mazes; references have
``params`` 0 and ``steps_per_s`` None)."""
AGENT_ORDER = ("trm-k3", "trm-k5", "mlp", "random", "solver")


def _group(rows: Iterable[dict]) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """(env, algo) -> agent -> rows; references (algo "none") join every algo of their env."""
    rows = list(rows)
    tables: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    algos_by_env = defaultdict(set)
    for row in rows:
        if row["algo"] != "none":
            algos_by_env[row["env"]].add(row["algo"])
    for row in rows:
        algos = algos_by_env[row["env"]] if row["algo"] == "none" else {row["algo"]}
        for algo in algos or {"none"}:
            tables[(row["env"], algo)][row["agent"]].append(row)
    return tables


def _cell(summary: Summary, percent: bool = False, digits: int = 2) -> str:
    if summary.n == 0:
        return "–"
    scale = 100.0 if percent else 1.0
    unit = "%" if percent else ""
    fmt = f"{{:.{0 if percent else digits}f}}"
    mean = fmt.format(scale * summary.mean) + unit
    if summary.n == 1 or summary.low == summary.high:
        return mean
    return f"{mean} [{fmt.format(scale * summary.low)}, {fmt.format(scale * summary.high)}]"


def _median(rows: Sequence[dict], field: str) -> float | None:
    values = [r[field] for r in rows if r.get(field) is not None]
    return float(np.median(values)) if values else None


def markdown_table(rows: Iterable[dict]) -> str:
    """One table per (env, algorithm): success (mean [95% CI]) and its IQM over seeds, mean
    return, path-length ratio to BFS, parameters, training speed and its ratio to the MLP
    trained in the same run."""
    lines = []
    for (env, algo), by_agent in sorted(_group(rows).items()):
        mlp_speed = _median(by_agent.get("mlp", []), "steps_per_s")
        lines += [
            f"### {env} · {algo}",
            "",
            "| agent | seeds | success (95% CI) | success IQM | mean return | path / BFS "
            "| params | steps/s | speed vs MLP |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ordered = sorted(by_agent, key=lambda a: AGENT_ORDER.index(a) if a in AGENT_ORDER else 99)
        for agent in ordered:
            agent_rows = by_agent[agent]
            success = summarize([r["success"] for r in agent_rows])
            speed = _median(agent_rows, "steps_per_s")
            ratio = f"{speed / mlp_speed:.2f}x" if speed and mlp_speed else "–"
            params = _median(agent_rows, "params")
            lines.append(
                f"| {agent} | {success.n} | {_cell(success, percent=True)} "
                f"| {100 * success.iqm:.0f}% "
                f"| {_cell(summarize([r['mean_return'] for r in agent_rows]))} "
                f"| {_cell(summarize([r['path_ratio'] for r in agent_rows]), digits=3)} "
                f"| {int(params) if params else '–'} "
                f"| {f'{speed:.0f}' if speed else '–'} | {ratio} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_learning_curves(rows: Iterable[dict], out_dir: Path) -> list[Path]:
    """One PNG per (env, algorithm): held-out success vs env steps, mean and min-max band
    across seeds. Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for (env, algo), by_agent in sorted(_group(rows).items()):
        curves = {a: [r["curve"] for r in rs if r.get("curve")] for a, rs in by_agent.items()}
        curves = {a: c for a, c in curves.items() if c}
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for agent, agent_curves in sorted(curves.items()):
            length = min(len(c) for c in agent_curves)
            steps = np.array([point[0] for point in agent_curves[0][:length]])
            success = np.array([[c[i][1] for i in range(length)] for c in agent_curves])
            ax.plot(steps, 100 * success.mean(0), marker="o", label=f"{agent} (n={len(success)})")
            ax.fill_between(steps, 100 * success.min(0), 100 * success.max(0), alpha=0.2)
        for agent in ("random", "solver"):
            if agent in by_agent:
                level = 100 * float(np.mean([r["success"] for r in by_agent[agent]]))
                ax.axhline(level, linestyle="--", linewidth=1, color="grey")
                ax.annotate(agent, (0, level), fontsize=8, color="grey")
        ax.set(xlabel="env steps", ylabel="held-out success (%)", title=f"{env} · {algo}")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"curve_{env}_{algo}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def control_table(result: dict) -> str:
    """The Van der Pol rows of a control benchmark result (``control.json`` of
    :mod:`trm_rl.benchmarks.control_benchmark`): gap of each controller's mean cost to the
    numerical optimum, success and planning time, on the same held-out problems."""
    lines = [
        f"### TRM-VanDerPol-v0 · supervised recursive control ({result['problems']} held-out "
        f"problems, seed {result['seed']})",
        "",
        "| controller | objective | params | gap to optimum | success | plan time / problem "
        "| speed-up vs optimizer |",
        "|---|---|---|---|---|---|---|",
        f"| LQR teacher | - | - | {100 * result['lqr']['gap']:+.3f}% | "
        f"{100 * result['lqr']['success_rate']:.1f}% | - | - |",
    ]
    for row in result["controllers"]:
        lines.append(
            f"| {row['run']} | {row['objective']} | {row['parameters']:,} | "
            f"{100 * row['gap']:+.3f}% | {100 * row['success_rate']:.1f}% | "
            f"{1e3 * row['plan_seconds_per_problem']:.2f} ms | "
            f"{row['speedup_vs_optimizer']:.0f}x |"
        )
    optimizer_ms = 1e3 * result["optimizer_seconds_per_problem"]
    lines += ["", f"Optimizer (direct shooting, L-BFGS-B): {optimizer_ms:.0f} ms per problem."]
    return "\n".join(lines) + "\n"


def check_row(row: dict) -> None:
    """Raise ``ValueError`` naming the missing fields of a results row."""
    missing = [field for field in ROW_FIELDS if field not in row]
    if missing:
        raise ValueError(f"results row is missing fields {missing}")
    if not (0.0 <= row["success"] <= 1.0) or math.isnan(row["success"]):
        raise ValueError(f"success must be in [0, 1], got {row['success']}")
