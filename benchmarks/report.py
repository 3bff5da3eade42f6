"""Benchmark report: the markdown tables and the plots, reported as RL papers now do
(:mod:`trm_rl.benchmarks.stats`).

Per env and algorithm, per agent: success IQM with its 95% bootstrap interval over seeds,
the mean with its interval, the probability that ``trm-k3`` beats the agent (with interval),
mean return, path length / BFS, parameters, training speed, and the training wall time to
reach 90% of the best agent's final success. Across envs: the IQM with a stratified bootstrap
interval and a performance profile. Plots: learning curves with 95% bands, and the aggregate
(IQM with intervals, performance profile) per algorithm.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from trm_rl.benchmarks.jobs import AGENTS, REFERENCES
from trm_rl.benchmarks.stats import (
    Estimate,
    Summary,
    bootstrap_interval,
    iqm_interval,
    performance_profile,
    probability_of_improvement,
    summarize,
)

ROW_FIELDS = (
    "agent", "env", "algo", "seed", "success", "mean_return", "path_ratio", "params",
    "steps_per_s", "train_seconds", "timesteps",
)  # fmt: skip
"""Fields every results row carries (``path_ratio`` is None off mazes; references have
``params`` 0 and ``steps_per_s`` None). Learners also carry ``curve``: ``[timesteps,
success, training seconds so far, process CPU seconds so far with the evaluations]`` per
held-out evaluation during training."""
BASELINE = "trm-k3"
"""The agent whose probability of beating each other agent the table reports."""
THRESHOLD_FRACTION = 0.9
"""Wall-clock to threshold: training time to reach this fraction of the best learner's
mean final success on the env."""
PROFILE_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def _order(agent: str) -> int:
    return AGENTS.index(agent) if agent in AGENTS else len(AGENTS)


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


def _percent(estimate: Estimate | Summary, value: float) -> str:
    if math.isnan(value):
        return "–"
    text = f"{100 * value:.0f}%"
    if estimate.low == estimate.high:
        return text
    return f"{text} [{100 * estimate.low:.0f}, {100 * estimate.high:.0f}]"


def _number(summary: Summary, digits: int = 2) -> str:
    if summary.n == 0:
        return "–"
    text = f"{summary.mean:.{digits}f}"
    if summary.n == 1 or summary.low == summary.high:
        return text
    return f"{text} [{summary.low:.{digits}f}, {summary.high:.{digits}f}]"


def _median(rows: Sequence[dict], field: str) -> float | None:
    values = [r[field] for r in rows if r.get(field) is not None]
    return float(np.median(values)) if values else None


def _successes(rows: Sequence[dict]) -> list[float]:
    return [r["success"] for r in rows]


def seconds_to_reach(row: dict, level: float) -> float | None:
    """Training seconds until the row's learning curve first reaches ``level`` success (the
    curve point's recorded time, or the run's time prorated by steps for two-field points),
    or None if it never does."""
    for point in row.get("curve") or []:
        if point[1] >= level:
            if len(point) > 2:
                return float(point[2])
            return float(row["train_seconds"]) * point[0] / max(1, row["timesteps"])
    return None


def threshold_times(by_agent: dict[str, list[dict]]) -> tuple[float, dict[str, list[float | None]]]:
    """The threshold (:data:`THRESHOLD_FRACTION` of the best learner's mean final success)
    and, per learner, each seed's training seconds to reach it (None: not reached); NaN and
    no times when no learner succeeded."""
    learners = {a: rs for a, rs in by_agent.items() if a not in REFERENCES}
    if not learners:
        return float("nan"), {}
    best = max(float(np.mean(_successes(rs))) for rs in learners.values())
    if best == 0.0:
        return float("nan"), {}
    level = THRESHOLD_FRACTION * best
    return level, {a: [seconds_to_reach(r, level) for r in rs] for a, rs in learners.items()}


def late_gain(row: dict) -> float | None:
    """The change in the row's curve success over the last third of its budget: the final
    point's minus that of the last point at or before 2/3 of the steps (None without two
    such points). Near zero says the budget was long enough."""
    curve = row.get("curve") or []
    earlier = [point for point in curve[:-1] if point[0] <= 2 * row["timesteps"] / 3]
    if not earlier:
        return None
    return float(curve[-1][1] - earlier[-1][1])


def _gain_cell(rows: Sequence[dict]) -> str:
    gains = [gain for gain in map(late_gain, rows) if gain is not None]
    return f"{100 * np.median(gains):+.0f} pts" if gains else "–"


def _time_cell(times: list[float | None]) -> str:
    reached = [t for t in times if t is not None]
    if not reached:
        return f"not reached (0/{len(times)})"
    text = f"{np.median(reached):.0f} s"
    return text if len(reached) == len(times) else f"{text} ({len(reached)}/{len(times)})"


def _level(level: float) -> str:
    return "90% of best (no success)" if math.isnan(level) else f"{100 * level:.0f}%"


def env_table(env: str, algo: str, by_agent: dict[str, list[dict]]) -> list[str]:
    """The markdown lines of one (env, algorithm) table."""
    level, times = threshold_times(by_agent)
    baseline = _successes(by_agent.get(BASELINE, []))
    lines = [
        f"### {env} · {algo}",
        "",
        f"| agent | seeds | success IQM (95% CI) | success mean (95% CI) | P({BASELINE} > agent) "
        f"| mean return | path / BFS | params | steps/s | last-third gain "
        f"| time to {_level(level)} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for agent in sorted(by_agent, key=_order):
        agent_rows = by_agent[agent]
        successes = _successes(agent_rows)
        mean = summarize(successes)
        middle = iqm_interval([successes])
        improvement = "–"
        if baseline and agent != BASELINE:
            estimate = probability_of_improvement(baseline, successes)
            improvement = f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]"
        speed = _median(agent_rows, "steps_per_s")
        params = _median(agent_rows, "params")
        lines.append(
            f"| {agent} | {len(agent_rows)} | {_percent(middle, middle.value)} "
            f"| {_percent(mean, mean.mean)} | {improvement} "
            f"| {_number(summarize([r['mean_return'] for r in agent_rows]))} "
            f"| {_number(summarize([r['path_ratio'] for r in agent_rows]), 3)} "
            f"| {int(params) if params else '–'} | {f'{speed:.0f}' if speed else '–'} "
            f"| {_gain_cell(agent_rows) if agent not in REFERENCES else '–'} "
            f"| {_time_cell(times[agent]) if agent in times else '–'} |"
        )
    return [*lines, ""]


def aggregate(rows: Iterable[dict]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """algo -> agent -> env -> final successes (references excluded)."""
    result: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for row in rows:
        if row["agent"] not in REFERENCES:
            result[row["algo"]][row["agent"]][row["env"]].append(row["success"])
    return result


def aggregate_table(rows: Iterable[dict]) -> list[str]:
    """Per algorithm, across envs: success IQM with a stratified bootstrap interval (seeds
    resampled within each env), and ``P(trm-k3 > agent)`` averaged over the envs both ran."""
    lines = []
    for algo, by_agent in sorted(aggregate(rows).items()):
        if len({env for envs in by_agent.values() for env in envs}) < 2:
            continue
        baseline = by_agent.get(BASELINE, {})
        lines += [
            f"### All envs · {algo}",
            "",
            "| agent | envs | runs | success IQM (95% stratified CI) "
            f"| mean P({BASELINE} > agent) |",
            "|---|---|---|---|---|",
        ]
        for agent in sorted(by_agent, key=_order):
            envs = by_agent[agent]
            middle = iqm_interval(list(envs.values()))
            shared = [env for env in envs if env in baseline]
            improvement = "–"
            if agent != BASELINE and shared:
                values = [probability_of_improvement(baseline[e], envs[e]).value for e in shared]
                improvement = f"{np.mean(values):.2f} ({len(shared)} envs)"
            runs = sum(len(v) for v in envs.values())
            lines.append(
                f"| {agent} | {len(envs)} | {runs} | {_percent(middle, middle.value)} "
                f"| {improvement} |"
            )
        lines.append("")
    return lines


def markdown_table(rows: Iterable[dict]) -> str:
    """One table per (env, algorithm), then the across-env aggregate per algorithm."""
    rows = list(rows)
    lines = []
    for (env, algo), by_agent in sorted(_group(rows).items()):
        lines += env_table(env, algo, by_agent)
    lines += aggregate_table(rows)
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(rows: Iterable[dict], out_dir: Path) -> list[Path]:
    """One PNG per (env, algorithm): held-out success vs env steps, the mean over seeds
    with its 95% bootstrap band; references as dashed lines. Returns the written paths."""
    plt = _pyplot()
    paths = []
    for (env, algo), by_agent in sorted(_group(rows).items()):
        curves = {a: [r["curve"] for r in rs if r.get("curve")] for a, rs in by_agent.items()}
        curves = {a: c for a, c in curves.items() if c}
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for agent in sorted(curves, key=_order):
            agent_curves = curves[agent]
            length = min(len(c) for c in agent_curves)
            steps = np.array([point[0] for point in agent_curves[0][:length]])
            success = np.array([[c[i][1] for i in range(length)] for c in agent_curves])
            band = np.array([bootstrap_interval(success[:, i]) for i in range(length)])
            ax.plot(steps, 100 * success.mean(0), marker="o", label=f"{agent} (n={len(success)})")
            ax.fill_between(steps, 100 * band[:, 0], 100 * band[:, 1], alpha=0.2)
        for agent in REFERENCES:
            if agent in by_agent:
                level = 100 * float(np.mean(_successes(by_agent[agent])))
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


def plot_aggregate(rows: Iterable[dict], out_dir: Path) -> list[Path]:
    """One PNG per algorithm: the success IQM of each learner across envs with its
    stratified 95% interval, and the performance profile (fraction of runs above each
    success level). Returns the written paths."""
    plt = _pyplot()
    paths = []
    for algo, by_agent in sorted(aggregate(rows).items()):
        agents = sorted(by_agent, key=_order)
        fig, (bars, profile) = plt.subplots(1, 2, figsize=(10, 4))
        for index, agent in enumerate(agents):
            middle = iqm_interval(list(by_agent[agent].values()))
            error = [[100 * (middle.value - middle.low)], [100 * (middle.high - middle.value)]]
            bars.errorbar(100 * middle.value, index, xerr=error, fmt="o", capsize=4)
            runs = [s for env in by_agent[agent].values() for s in env]
            fractions = performance_profile(runs, PROFILE_THRESHOLDS)
            profile.plot(100 * PROFILE_THRESHOLDS, fractions, label=agent)
        bars.set_yticks(range(len(agents)), agents)
        bars.set(xlabel="success IQM (%), 95% stratified CI", xlim=(-2, 102))
        profile.set(xlabel="success level τ (%)", ylabel="fraction of runs with success > τ")
        profile.legend(fontsize=8)
        fig.suptitle(f"All envs · {algo}")
        fig.tight_layout()
        path = out_dir / f"aggregate_{algo}.png"
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
