"""The 9x9 Sudoku benchmark: does thinking longer buy harder puzzles? TRM policies with
K = 1, 2, 3 and 6 outer cycles (the same weights, applied K times) and the parameter-matched
MLP, each trained by the recipe of ``TRM-Sudoku-9x9-v0``, reported per difficulty bucket.

::

    python -m trm_rl.benchmarks.sudoku9 train --agent trm-k2 --seed 0 --timesteps 1000000
    python -m trm_rl.benchmarks.sudoku9 train --agent trm-k2 --seed 0 --timesteps 2000000 --resume
    python -m trm_rl.benchmarks.sudoku9 report

``train`` is one :mod:`~trm_rl.benchmarks.long_run` run with the benchmark's pinned settings
(:func:`long_run_argv`): ``algo="maskable-outcome"`` with ``hindsight="sudoku-solution"`` on
hidden-single puzzles with a curriculum over blanks (``max_blanks`` drawn from 1..81), one
logit per (cell, digit), a held-out point every 50k env steps on 100 full naked and 100 full
hidden puzzles, and the best checkpoint on the hidden bucket kept. It writes
``ROOT/outcome-hindsight-<k1|k2|k3|k6|mlp>-hidden-seed<S>`` (``ROOT`` defaults to
``benchmarks/results/sudoku9`` beside this file); a later sitting continues it with
``--resume`` and a larger ``--timesteps``.

``report`` reads every such run under ``ROOT`` and evaluates its best checkpoint (the point of
curve.json's ``best``) on ``--episodes`` full puzzles of each bucket, at the agent's own K,
with evaluation seed ``--eval-seed`` (default 1: puzzles other than those of the curve,
evaluation seed 0, on which the best point was chosen, so the figures are not inflated by
that choice). Results are cached in ``RUN/evals/best-<steps>.json``, so a report evaluates
only new checkpoints. Each figure comes with its 95% Wilson interval over the episodes; an
agent with several seeds also gets the mean over seeds with its 95% bootstrap interval.
Because runs train for different lengths, a second table compares the agents at equal steps:
the hidden success of each curve at 100k, 200k, ..., 500k env steps, the mean over the seeds
that got there (bootstrap interval, number of seeds), and the training CPU-ms per step.
The tables are printed and written to ``ROOT/report.md`` and ``ROOT/report.json``.

``diagnose AGENT --out FILE`` says where an agent loses puzzles: it plays ``--episodes``
held-out full puzzles of ``--bucket`` greedily (through ``--symmetry-views`` images of each
board, default 1) and sorts every position it meets by what the
rules force there (:func:`position_kind`): a *naked* single exists, only *hidden* singles
exist, or *no* single. Per kind: positions met, the rate of playing a single, the rate of a
right digit, and the episodes that ended there with a wrong digit (with the step at which
they did). Written to ``FILE`` (an existing one is refused) and printed.

``compare SOURCE SOURCE ... --out FILE`` plays the same ``--episodes`` held-out puzzles of
``--bucket`` greedily with each agent (``--symmetry-views V ...``, one per agent: play it
through V symmetric images of each board, a
:class:`~trm_rl.agents.symmetry.SymmetryEnsemble`; default 1 each, the agent alone; an
agent may then appear more than once) and compares them puzzle by puzzle: each agent's success
with its Wilson interval, for each pair the puzzles only one of them solved and the exact
McNemar p-value, and the puzzles no agent solved against the count expected if the agents
failed independently (many more means the failures are the puzzles', not the seeds'), and
success by the puzzles' hidden-single load (:func:`singles_path`): the positions with only
hidden singles on a naked-first solve, and the fewest singles at one of them.
Written to ``FILE`` (with each agent's per-puzzle successes; an existing file is refused)
and printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from scipy.stats import binomtest

from trm_rl.agents.evaluation import evaluate, evaluation_seed, play_episodes
from trm_rl.agents.loading import load_agent
from trm_rl.agents.network import parameter_count
from trm_rl.agents.symmetry import SymmetryEnsemble
from trm_rl.atomic import atomic_write_text
from trm_rl.benchmarks import long_run
from trm_rl.benchmarks.stats import paired_comparison, summarize
from trm_rl.benchmarks.sudoku9_probe import singles
from trm_rl.config import require_int
from trm_rl.envs.sudoku9_puzzles import N_CELLS, SIZE

ENV_ID = "TRM-Sudoku-9x9-v0"
ROOT = Path(__file__).resolve().parent / "results" / "sudoku9"
"""Where runs and the report go by default."""
OBSERVATION = "candidates"
TRAINING_ENV = {"difficulty": "hidden", "max_blanks": [1, 81], "observation": OBSERVATION}
BUCKETS = {
    "naked": {"difficulty": "naked", "observation": OBSERVATION},
    "hidden": {"difficulty": "hidden", "observation": OBSERVATION},
    "hard": {"difficulty": "hard", "max_blanks": None, "observation": OBSERVATION},
}
"""Held-out difficulty buckets: full puzzles that naked singles solve, that need hidden
singles, and that singles do not solve."""
CURVE_BUCKETS = ("naked", "hidden")
"""The buckets evaluated along the learning curve; ``hard`` only at the best checkpoint."""
JOINT_HEAD = {"factored_actions": False, "token_selection": "learned", "confidence_power": 1.0}
AGENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "trm-k1": ("trm", {**JOINT_HEAD, "h_cycles": 1}),
    "trm-k2": ("trm", JOINT_HEAD),
    "trm-k3": ("trm", {**JOINT_HEAD, "h_cycles": 3}),
    "trm-k6": ("trm", {**JOINT_HEAD, "h_cycles": 6}),
    "mlp": ("mlp", {"net_arch": {"pi": [10, 10], "vf": [10, 10]}}),
}
"""Agent -> (policy, policy overrides of the recipe). ``trm-k2`` is the recipe's own K; the
MLP's two hidden layers of 10 make its parameter count close to the TRM's."""
SEGMENT = 50_000
EVAL_EPISODES = 100
MILESTONES = tuple(range(100_000, 500_001, 100_000))
"""Env steps at which the equal-steps table compares the agents' curves."""
RUN_NAME = re.compile(r"outcome-hindsight-(k\d+|mlp)-hidden-seed(\d+)")


def run_dir(root: Path, agent: str, seed: int) -> Path:
    """The directory of ``agent``'s run with ``seed`` under ``root``."""
    return root / f"outcome-hindsight-{agent.removeprefix('trm-')}-hidden-seed{seed}"


def long_run_argv(
    agent: str, seed: int, timesteps: int, root: Path, resume: bool = False
) -> list[str]:
    """The :mod:`~trm_rl.benchmarks.long_run` arguments of one benchmark run."""
    policy, overrides = AGENTS[agent]
    evals = [
        flag for name in CURVE_BUCKETS for flag in ("--eval", f"{name}={json.dumps(BUCKETS[name])}")
    ]
    return [
        "--env", ENV_ID, "--algo", "maskable-outcome", "--policy", policy,
        "--env-kwargs", json.dumps(TRAINING_ENV), "--trm-kwargs", json.dumps(overrides),
        "--algo-kwargs", json.dumps({"hindsight": "sudoku-solution"}),
        *evals, "--eval-episodes", str(EVAL_EPISODES), "--eval-at-start",
        "--keep-best", "hidden", "--segment", str(SEGMENT),
        "--timesteps", str(timesteps), "--seed", str(seed),
        "--out", str(run_dir(root, agent, seed)), *(["--resume"] if resume else []),
    ]  # fmt: skip


def wilson(successes: int, episodes: int) -> tuple[float, float]:
    """The 95% Wilson interval of a success rate."""
    interval = binomtest(successes, episodes).proportion_ci(0.95, method="wilson")
    return float(interval.low), float(interval.high)


def bucket_figure(result: dict[str, Any]) -> dict[str, Any]:
    """A held-out result as ``{"success", "episodes", "low", "high"}``."""
    episodes = result["episodes"]
    successes = round(result["success_rate"] * episodes)
    low, high = wilson(successes, episodes)
    return {"success": successes / episodes, "episodes": episodes, "low": low, "high": high}


def best_result(
    directory: Path, agent: Any, steps: int, bucket: str, episodes: int, seed: int
) -> dict[str, Any]:
    """The held-out result of ``agent``, loaded from ``directory/best`` (trained ``steps``),
    on ``bucket``: read from ``directory/evals/best-<steps>.json`` when it holds one for
    ``episodes`` and ``seed``, else evaluated and added there."""
    cache = directory / "evals" / f"best-{steps}.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    key = f"{bucket}-seed{seed}"
    if key in cached and cached[key]["episodes"] == episodes:
        return cached[key]
    result = {
        "env_kwargs": BUCKETS[bucket],
        **evaluate(agent, ENV_ID, episodes, seed, BUCKETS[bucket]).to_dict(),
    }
    cache.parent.mkdir(exist_ok=True)
    atomic_write_text(cache, json.dumps({**cached, key: result}, indent=2) + "\n")
    return result


def curve_hidden(curve: dict[str, Any], steps: int) -> float | None:
    """The hidden success of the curve point within half a segment of ``steps`` (``None``
    if the run has no such point)."""
    for point in curve["points"]:
        if abs(point["timesteps"] - steps) <= SEGMENT // 2:
            return point["evals"]["hidden"]["success_rate"]
    return None


def run_row(directory: Path, episodes: int, eval_seed: int) -> dict[str, Any]:
    """One run's figures at its best point, its curve's hidden success at
    :data:`MILESTONES` and its training CPU-ms per env step."""
    curve = json.loads((directory / long_run.CURVE_FILE).read_text())
    best_steps = curve["best"]["timesteps"]
    best = next(point for point in curve["points"] if point["timesteps"] == best_steps)
    last = curve["points"][-1]
    agent = load_agent(directory / long_run.BEST_DIR, device="cpu")
    results = {
        bucket: best_result(directory, agent, best_steps, bucket, episodes, eval_seed)
        for bucket in BUCKETS
    }
    return {
        "run": directory.name,
        "parameters": parameter_count(agent.model.policy),
        "h_cycles": agent.config["policy_kwargs"].get("h_cycles"),
        "trained_steps": last["timesteps"],
        "best_steps": best_steps,
        "cpu_minutes_to_best": best["train_cpu_seconds"] / 60,
        "cpu_ms_per_step": 1e3 * last["train_cpu_seconds"] / max(last["timesteps"], 1),
        "curve_hidden": {str(steps): curve_hidden(curve, steps) for steps in MILESTONES},
        **{bucket: bucket_figure(result) for bucket, result in results.items()},
    }


def find_runs(root: Path) -> dict[str, list[Path]]:
    """Agent -> its run directories under ``root`` (those with a best checkpoint), by seed."""
    runs: dict[str, list[Path]] = {}
    for directory in sorted(root.iterdir()):
        match = RUN_NAME.fullmatch(directory.name)
        if match is None or not (directory / long_run.BEST_DIR / "model.zip").is_file():
            continue
        name = match.group(1)
        agent = name if name == "mlp" else f"trm-{name}"
        if agent in AGENTS:
            runs.setdefault(agent, []).append(directory)
    return runs


def percent(figure: dict[str, Any], digits: int = 0) -> str:
    """``success [low, high]`` in percent with ``digits`` decimals."""
    return (
        f"{figure['success']:.{digits}%} [{figure['low']:.{digits}%}, {figure['high']:.{digits}%}]"
    )


def report_table(rows: dict[str, list[dict[str, Any]]]) -> str:
    """The markdown table: one line per run, and per agent with several seeds the mean of
    each bucket over seeds with its 95% bootstrap interval."""
    lines = [
        "| agent | run | params | K | trained | best at | CPU-min | naked | hidden | hard |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for agent, agent_rows in rows.items():
        for row in agent_rows:
            buckets = " | ".join(percent(row[name]) for name in BUCKETS)
            lines.append(
                f"| {agent} | {row['run']} | {row['parameters']:,} | {row['h_cycles'] or '-'} "
                f"| {row['trained_steps'] / 1e3:.0f}k | {row['best_steps'] / 1e3:.0f}k "
                f"| {row['cpu_minutes_to_best']:.0f} | {buckets} |"
            )
        if len(agent_rows) > 1:
            means = []
            for name in BUCKETS:
                summary = summarize([row[name]["success"] for row in agent_rows])
                means.append(f"{summary.mean:.0%} [{summary.low:.0%}, {summary.high:.0%}]")
            lines.append(
                f"| {agent} | mean of {len(agent_rows)} seeds | | | | | | {' | '.join(means)} |"
            )
    return "\n".join(lines) + "\n"


def mean_cell(values: list[float]) -> str:
    """``mean [low, high] (n)`` over seeds with a 95% bootstrap interval; one value alone."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0%} (1)"
    summary = summarize(values)
    return f"{summary.mean:.0%} [{summary.low:.0%}, {summary.high:.0%}] ({len(values)})"


def equal_steps_table(rows: dict[str, list[dict[str, Any]]]) -> str:
    """Hidden success on the learning curves (evaluation seed 0) at :data:`MILESTONES`:
    per agent the mean over the seeds that reached each milestone, with its 95% bootstrap
    interval and the number of seeds."""
    header = " | ".join(f"hidden, {steps // 1000}k" for steps in MILESTONES)
    lines = [
        f"| agent | CPU-ms/step | {header} |",
        "|---|---|" + "---|" * len(MILESTONES),
    ]
    for agent, agent_rows in rows.items():
        cells = []
        for steps in MILESTONES:
            values = [row["curve_hidden"][str(steps)] for row in agent_rows]
            cells.append(mean_cell([value for value in values if value is not None]))
        cost = np.mean([row["cpu_ms_per_step"] for row in agent_rows])
        lines.append(f"| {agent} | {cost:.1f} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def report(root: Path, episodes: int, eval_seed: int) -> str:
    """Evaluate what is missing, write ``root/report.md`` and ``root/report.json``, return
    the table."""
    runs = find_runs(root)
    if not runs:
        raise ValueError(f"no benchmark runs with a best checkpoint under {root}")
    rows = {
        agent: [run_row(directory, episodes, eval_seed) for directory in runs[agent]]
        for agent in AGENTS
        if agent in runs
    }
    table = report_table(rows) + "\n" + equal_steps_table(rows)
    record = {"episodes": episodes, "eval_seed": eval_seed, "rows": rows}
    atomic_write_text(root / "report.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(root / "report.md", table)
    return table


POSITION_KINDS = ("naked", "hidden", "none")


def position_kind(mask: np.ndarray) -> str:
    """What the rules force at a position, from its legal-action mask ``[729]``: ``"naked"``
    (a blank with one legal digit), ``"hidden"`` (no naked single, but a digit legal in only
    one blank of a row, column or box) or ``"none"``."""
    if (mask.reshape(N_CELLS, SIZE).sum(1) == 1).any():
        return "naked"
    return "hidden" if singles(mask).any() else "none"


def agent_label(source: str, views: int) -> str:
    """How :func:`diagnose` and :func:`compare` name ``source`` played through ``views``
    symmetric images."""
    return source if views == 1 else f"{source} ({views} views)"


def diagnose(
    source: str, bucket: str, episodes: int, seed: int, symmetry_views: int = 1
) -> dict[str, Any]:
    """Play ``episodes`` held-out ``bucket`` puzzles (those of ``evaluate`` with evaluation
    seed ``seed``) with ``source``'s greedy actions, through ``symmetry_views`` images of
    each board, and count, per :func:`position_kind`, the positions, the singles and right
    digits played, and the failures."""
    agent = load_agent(source, device="cpu")
    if symmetry_views > 1:
        agent = SymmetryEnsemble(agent, symmetry_views)
    env = gym.make(ENV_ID, **BUCKETS[bucket])
    counts = {kind: {"positions": 0, "singles": 0, "right": 0} for kind in POSITION_KINDS}
    failures: dict[str, list[int]] = {kind: [] for kind in POSITION_KINDS}
    solved = 0
    for episode in range(episodes):
        observation, info = env.reset(seed=evaluation_seed(seed, episode))
        for step in itertools.count(1):
            mask = info["action_mask"]
            kind = position_kind(mask)
            action, _ = agent.predict(observation, deterministic=True, action_masks=mask)
            action = int(action)
            observation, reward, terminated, truncated, info = env.step(action)
            counts[kind]["positions"] += 1
            counts[kind]["singles"] += int(singles(mask)[action])
            counts[kind]["right"] += int(reward > 0)
            if terminated or truncated:
                if info["is_success"]:
                    solved += 1
                else:
                    failures[kind].append(step)
                break
    env.close()
    kinds = {
        kind: {
            **counts[kind],
            "single_rate": counts[kind]["singles"] / max(counts[kind]["positions"], 1),
            "right_rate": counts[kind]["right"] / max(counts[kind]["positions"], 1),
            "failures": len(failures[kind]),
            "failure_steps": failures[kind],
        }
        for kind in POSITION_KINDS
    }
    return {
        "agent": agent_label(str(source), symmetry_views),
        "symmetry_views": symmetry_views,
        "bucket": bucket,
        "episodes": episodes,
        "seed": seed,
        "success_rate": solved / episodes,
        "kinds": kinds,
    }


def diagnosis_table(record: dict[str, Any]) -> str:
    """The markdown table of a :func:`diagnose` record."""
    lines = [
        f"{record['agent']}: {record['success_rate']:.0%} of {record['episodes']} "
        f"{record['bucket']} puzzles solved",
        "",
        "| position | positions | single played | right digit | failures | median failing step |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in record["kinds"].items():
        steps = row["failure_steps"]
        median = f"{np.median(steps):.0f}" if steps else "-"
        lines.append(
            f"| {kind} | {row['positions']} | {row['single_rate']:.1%} | {row['right_rate']:.1%} "
            f"| {row['failures']} | {median} |"
        )
    return "\n".join(lines) + "\n"


HIDDEN_NEEDED_BINS = (0, 5, 10, 15, 20)
"""Lower edges of the bins of hidden-only positions in the comparison table."""
FEWEST_SINGLES_BINS = (0, 1, 2, 3, 4, 5)
"""Lower edges of the bins of the fewest singles at a hidden-only position (0: no such
position)."""


def singles_path(env: gym.Env, reset_seed: int) -> tuple[int, int]:
    """Reset ``env`` with ``reset_seed`` and solve the puzzle by singles, a naked single
    whenever one exists. Returns the number of positions on the way that have only hidden
    singles (where a policy has to find one) and the fewest singles available at one of
    them (0 when there is none). A puzzle that singles cannot finish counts the positions met
    before the solve gets stuck."""
    _, info = env.reset(seed=reset_seed)
    hidden_singles_available = []
    while True:
        mask = info["action_mask"]
        legal = mask.reshape(N_CELLS, SIZE)
        forced = (legal & (legal.sum(1) == 1)[:, None]).reshape(-1)
        if not forced.any():
            forced = singles(mask)
            if not forced.any():
                break
            hidden_singles_available.append(int(forced.sum()))
        _, _, terminated, truncated, info = env.step(int(np.flatnonzero(forced)[0]))
        if terminated or truncated:
            break
    return len(hidden_singles_available), min(hidden_singles_available, default=0)


def compare(
    sources: list[str],
    bucket: str,
    episodes: int,
    seed: int,
    symmetry_views: list[int] | None = None,
) -> dict[str, Any]:
    """Play the same ``episodes`` held-out ``bucket`` puzzles (evaluation seed ``seed``)
    greedily with each of ``sources``, each through its ``symmetry_views`` images of the
    board (default 1 each), and compare the agents puzzle by puzzle; agents are keyed by
    :func:`agent_label`."""
    views = symmetry_views or [1] * len(sources)
    env = gym.make(ENV_ID, **BUCKETS[bucket])
    paths = [singles_path(env, evaluation_seed(seed, episode)) for episode in range(episodes)]
    env.close()
    successes = {}
    for source, count in zip(sources, views, strict=True):
        agent = load_agent(source, device="cpu")
        player = agent if count == 1 else SymmetryEnsemble(agent, count)
        played = play_episodes(player, ENV_ID, episodes, seed, BUCKETS[bucket])
        successes[agent_label(source, count)] = np.array([outcome.success for outcome in played])
    solved = np.stack(list(successes.values()))
    failure_rates = 1.0 - solved.mean(axis=1)
    agents = {
        source: {
            **bucket_figure({"episodes": episodes, "success_rate": float(won.mean())}),
            "per_puzzle": "".join("1" if success else "0" for success in won),
        }
        for source, won in successes.items()
    }
    pairs = [
        {
            "first": first,
            "second": second,
            **dataclasses.asdict(paired_comparison(successes[first], successes[second])),
        }
        for first, second in itertools.combinations(successes, 2)
    ]
    return {
        "bucket": bucket,
        "episodes": episodes,
        "seed": seed,
        "agents": agents,
        "pairs": pairs,
        "failed_by_all": int((~solved.any(axis=0)).sum()),
        "failed_by_all_if_independent": float(episodes * np.prod(failure_rates)),
        "hidden_only_positions": [hidden_only for hidden_only, _ in paths],
        "fewest_singles": [fewest for _, fewest in paths],
    }


def success_by_bin(record: dict[str, Any], key: str, edges: tuple[int, ...]) -> list[str]:
    """Table rows: the puzzles whose ``record[key]`` falls in each bin (lower ``edges``, the
    last one open) and each agent's success on them."""
    values = np.array(record[key])
    bins = np.digitize(values, edges) - 1
    solved = [np.array([c == "1" for c in a["per_puzzle"]]) for a in record["agents"].values()]
    rows = []
    for index, (low, high) in enumerate(itertools.pairwise([*edges, None])):
        members = bins == index
        if not members.any():
            continue
        span = f"{low}+" if high is None else str(low) if high == low + 1 else f"{low}-{high - 1}"
        cells = " | ".join(f"{won[members].mean():.0%}" for won in solved)
        rows.append(f"| {span} | {int(members.sum())} | {cells} |")
    return rows


def comparison_table(record: dict[str, Any]) -> str:
    """The markdown tables of a :func:`compare` record."""
    lines = [
        f"{record['episodes']} {record['bucket']} puzzles, evaluation seed {record['seed']}",
        "",
        "| # | agent | solved |",
        "|---|---|---|",
        *(
            f"| {number} | {source} | {percent(figure, 1)} |"
            for number, (source, figure) in enumerate(record["agents"].items(), 1)
        ),
        "",
        "| first | second | first only | second only | McNemar p |",
        "|---|---|---|---|---|",
        *(
            f"| {pair['first']} | {pair['second']} | {pair['first_only']} "
            f"| {pair['second_only']} | {pair['p_value']:.3g} |"
            for pair in record["pairs"]
        ),
        "",
        f"failed by all: {record['failed_by_all']} "
        f"(if the agents failed independently: {record['failed_by_all_if_independent']:.1f})",
    ]
    agents = " | ".join(f"#{number}" for number in range(1, len(record["agents"]) + 1))
    rule = "|---|---|" + "---|" * len(record["agents"])
    for title, key, edges in (
        ("hidden-only positions", "hidden_only_positions", HIDDEN_NEEDED_BINS),
        ("fewest singles at one", "fewest_singles", FEWEST_SINGLES_BINS),
    ):
        lines += ["", f"| {title} | puzzles | {agents} |", rule]
        lines += success_by_bin(record, key, edges)
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help=f"runs directory ({ROOT})")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one agent (a resumable long_run)")
    train.add_argument("--agent", choices=tuple(AGENTS), required=True)
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    train.add_argument("--timesteps", type=int, required=True, help="total env steps")
    train.add_argument("--resume", action="store_true", help="continue the agent's run")
    summary = commands.add_parser("report", help="the per-bucket table of every run")
    summary.add_argument(
        "--episodes", type=int, default=EVAL_EPISODES, help="puzzles per bucket and run (100)"
    )
    summary.add_argument(
        "--eval-seed", type=int, default=1, help="evaluation seed (default 1, not the curve's)"
    )
    where = commands.add_parser("diagnose", help="where an agent's greedy play fails")
    where.add_argument("agent", help="an agent directory or pretrained:<name>")
    where.add_argument("--bucket", choices=tuple(BUCKETS), default="hidden")
    where.add_argument("--episodes", type=int, default=EVAL_EPISODES, help="puzzles (100)")
    where.add_argument(
        "--seed", type=int, default=1, help="evaluation seed (default 1, not the curve's)"
    )
    where.add_argument(
        "--symmetry-views",
        type=int,
        default=1,
        metavar="V",
        help="play through V symmetric images of each board (default 1, the agent alone)",
    )
    where.add_argument("--out", type=Path, required=True, help="JSON file to write")
    paired = commands.add_parser("compare", help="several agents on the same puzzles")
    paired.add_argument("agents", nargs="+", help="agent directories or pretrained:<name>")
    paired.add_argument("--bucket", choices=tuple(BUCKETS), default="hidden")
    paired.add_argument("--episodes", type=int, default=EVAL_EPISODES, help="puzzles (100)")
    paired.add_argument(
        "--seed", type=int, default=1, help="evaluation seed (default 1, not the curve's)"
    )
    paired.add_argument(
        "--symmetry-views",
        type=int,
        nargs="+",
        default=None,
        metavar="V",
        help="per agent, in order: play it through V symmetric images of each board "
        "(default 1 each)",
    )
    paired.add_argument("--out", type=Path, required=True, help="JSON file to write")
    return parser.parse_args(argv)


def check_run_arguments(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for a bad ``--episodes`` or ``--seed``, or an existing ``--out``."""
    require_int("--episodes", args.episodes, 1)
    require_int("--seed", args.seed, 0)
    if args.out.exists():
        raise ValueError(f"--out {args.out} exists; choose another file")


def run_diagnosis(args: argparse.Namespace) -> str:
    check_run_arguments(args)
    require_int("--symmetry-views", args.symmetry_views, 1)
    record = diagnose(args.agent, args.bucket, args.episodes, args.seed, args.symmetry_views)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    return diagnosis_table(record)


def run_comparison(args: argparse.Namespace) -> str:
    check_run_arguments(args)
    if len(args.agents) < 2:
        raise ValueError(f"compare needs at least 2 agents, got {len(args.agents)}")
    views = args.symmetry_views or [1] * len(args.agents)
    if len(views) != len(args.agents):
        raise ValueError(
            f"--symmetry-views needs one count per agent ({len(args.agents)}), got {views}"
        )
    for count in views:
        require_int("--symmetry-views", count, 1)
    labels = [agent_label(source, count) for source, count in zip(args.agents, views, strict=True)]
    if len(set(labels)) != len(labels):
        raise ValueError(f"compare got the same agent twice: {labels}")
    record = compare(args.agents, args.bucket, args.episodes, args.seed, views)
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    return comparison_table(record)


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    args = parse_args(argv)
    if args.command == "train":
        return long_run.main(
            long_run_argv(args.agent, args.seed, args.timesteps, args.root, args.resume)
        )
    try:
        if args.command in ("diagnose", "compare"):
            run = run_diagnosis if args.command == "diagnose" else run_comparison
            print(run(args), end="")
            return 0
        require_int("--episodes", args.episodes, 1)
        require_int("--eval-seed", args.eval_seed, 0)
        if not args.root.is_dir():
            raise ValueError(f"--root {args.root} is not a directory")
        print(report(args.root, args.episodes, args.eval_seed), end="")
    except (ValueError, OSError) as error:
        print(f"sudoku9: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
