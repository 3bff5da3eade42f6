"""``trm-rl bench``: does recursion help? TRM (K=3, K=5) against a parameter-matched MLP.

Builds the job list (agents x envs x algorithms x seeds, plus the random and exact-solver
references), runs it in parallel processes (one torch thread each), and writes to
``--out DIR``:

- ``rows/*.json``: one results row per finished job (a run starts by clearing them; with
  ``--resume`` it keeps them and skips those jobs, to finish an interrupted run);
- ``results.json``: every row, plus the versions and settings used;
- ``results.md``: per env and algorithm, success mean with its 95% bootstrap interval and
  IQM over seeds, mean return, path length / BFS, parameters, steps/s and speed vs MLP;
- ``curve_*.png``: held-out success against env steps; ``tb/``: TensorBoard logs.

``--quick`` is the README's main job (small budgets, 2 seeds, 2 envs; minutes on 2 cores).
To run the jobs elsewhere, ``--write-jobs jobs.json`` saves the list and exits; run each
with ``python -m trm_rl.benchmarks.runner jobs.json INDEX rows/INDEX.json`` (e.g. as a Ray
task or an array job), then ``trm-rl bench --out DIR --report-only`` builds the report
from ``DIR/rows``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from trm_rl.benchmarks.jobs import ALGOS, LEARNERS, REFERENCES, Job, build_jobs, write_jobs
from trm_rl.benchmarks.report import (
    check_row,
    control_table,
    markdown_table,
    plot_learning_curves,
)

CONTROL_RESULTS = Path(__file__).resolve().parent / "results" / "control.json"
"""Where :mod:`trm_rl.benchmarks.control_benchmark` writes its results by default."""


@dataclass(frozen=True)
class Preset:
    """Budgets and scope of a benchmark run."""

    env_budgets: dict[str, int]
    """Env id -> env steps per learner."""
    seeds: int
    """Training seeds per agent."""
    algos: tuple[str, ...]
    """Algorithms (PPO is MaskablePPO on Sudoku)."""
    eval_episodes: int
    """Held-out episodes per final evaluation."""
    curve_points: int
    """Held-out evaluations during training."""


PRESETS = {
    "quick": Preset({"TRM-Maze-v0": 50_000, "TRM-Sudoku-v0": 10_000}, 2, ("ppo",), 100, 2),
    "full": Preset(
        {"TRM-Maze-v0": 300_000, "TRM-Maze-7x7-v0": 1_000_000, "TRM-Sudoku-v0": 500_000},
        5,
        ("ppo", "reinforce"),
        500,
        10,
    ),
}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    packages = ("trm-rl", "torch", "gymnasium", "stable-baselines3", "sb3-contrib", "numpy")
    found = {name: version(name) for name in packages}
    found["python"] = platform.python_version()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    found["commit"] = commit
    return found


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_jobs(
    jobs: list[Job], out: Path, workers: int, resume: bool = False
) -> list[dict[str, Any]]:
    """Run ``jobs`` in ``workers`` processes, the most expensive first
    (:attr:`Job.relative_cost`), writing one row per job to ``out/rows``; return all rows.

    Rows already in ``out/rows`` are deleted first, so a report never mixes runs; with
    ``resume`` they are kept and their jobs skipped (an interrupted run of the same jobs).
    """
    from trm_rl.benchmarks.runner import run_job

    rows_dir = out / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        for stale in rows_dir.glob("*.json"):
            stale.unlink()
    pending = [job for job in jobs if not (rows_dir / f"{job.name}.json").exists()]
    pending.sort(key=lambda job: job.relative_cost, reverse=True)
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as pool,
        tqdm(total=len(jobs), initial=len(jobs) - len(pending), unit="job") as bar,
    ):
        futures = {pool.submit(run_job, job, out): job for job in pending}
        for future in as_completed(futures):
            job = futures[future]
            row = future.result()
            check_row(row)
            (rows_dir / f"{job.name}.json").write_text(json.dumps(row, indent=1) + "\n")
            bar.set_postfix_str(f"{job.name}: success {row['success']:.2f}")
            bar.update()
    return read_rows(out)


def read_rows(out: Path) -> list[dict[str, Any]]:
    """Every results row in ``out/rows``."""
    return [json.loads(path.read_text()) for path in sorted((out / "rows").glob("*.json"))]


def write_report(
    rows: list[dict[str, Any]],
    out: Path,
    settings: dict[str, Any],
    control_results: Path | None = None,
) -> str:
    """Write results.json, results.md and the curves; return the markdown table.

    ``control_results``: a ``control.json`` of :mod:`trm_rl.benchmarks.control_benchmark`;
    when the file exists, its Van der Pol rows join the table (they are read, not rerun).
    """
    table = markdown_table(rows)
    if control_results is not None and control_results.is_file():
        control = json.loads(control_results.read_text())
        table += f"\n{control_table(control)}\nFrom `{control_results.name}` "
        table += "(`python -m trm_rl.benchmarks.control_benchmark`, not rerun by `trm-rl bench`).\n"
        settings = {**settings, "control_results": str(control_results)}
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "settings": settings,
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    header = (
        f"# trm-rl benchmark\n\n{meta['date']}, commit {meta['versions']['commit']}, "
        f"settings: `{json.dumps(settings)}`\n\n"
        "Success: held-out episodes, deterministic actions; mean over seeds with a 95% "
        "percentile-bootstrap interval; IQM over seeds. Path / BFS: steps over the BFS "
        "shortest path, successful maze episodes only. steps/s: training env steps per "
        "second (evaluation excluded), one torch thread per process.\n\n"
    )
    (out / "results.md").write_text(header + table + "\n")
    plot_learning_curves(rows, out)
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``trm-rl bench``."""
    parser.add_argument("--quick", action="store_true", help="the small README run (minutes)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default benchmarks/results/bench-quick|full)",
    )
    parser.add_argument("--seed", type=int, default=0, help="first training seed (default 0)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (preset)")
    parser.add_argument("--envs", nargs="+", default=None, help="env ids (preset)")
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="env steps per learner on every env (preset, per env)",
    )
    parser.add_argument(
        "--agents",
        nargs="+",
        default=[*LEARNERS, *REFERENCES],
        choices=[*LEARNERS, *REFERENCES],
        help="agents (default all)",
    )
    parser.add_argument("--algos", nargs="+", default=None, choices=ALGOS, help="(preset)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="(preset)")
    parser.add_argument("--curve-points", type=int, default=None, help="(preset)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel processes (default: CPU count)",
    )
    parser.add_argument(
        "--write-jobs",
        type=Path,
        default=None,
        help="write the job list as JSON and exit (for Ray/cluster runs)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only build the report from OUT/rows"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows in OUT/rows and run only the missing jobs (finish an interrupted "
        "run with the same flags); by default a run clears OUT/rows first",
    )
    parser.add_argument(
        "--control-results",
        type=Path,
        default=CONTROL_RESULTS,
        help="Van der Pol results (control_benchmark's control.json) to include when present "
        "(default benchmarks/results/control.json)",
    )


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the preset, overridden by explicit flags."""
    preset = PRESETS["quick" if args.quick else "full"]
    budgets = dict(preset.env_budgets)
    if args.envs is not None:
        budgets = {env_id: budgets.get(env_id, 300_000) for env_id in args.envs}
    if args.timesteps is not None:
        budgets = dict.fromkeys(budgets, args.timesteps)
    settings = {
        "preset": "quick" if args.quick else "full",
        "env_budgets": budgets,
        "agents": list(args.agents),
        "algos": list(args.algos or preset.algos),
        "seeds": list(range(args.seed, args.seed + (args.seeds or preset.seeds))),
        "eval_episodes": args.eval_episodes or preset.eval_episodes,
        "curve_points": preset.curve_points if args.curve_points is None else args.curve_points,
        "workers": args.workers,
    }
    for name in ("workers", "eval_episodes"):
        if settings[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {settings[name]}")
    if any(budget < 1 for budget in budgets.values()):
        raise ValueError(f"--timesteps must be >= 1, got {args.timesteps}")
    return settings


def run(args: argparse.Namespace) -> int:
    """``trm-rl bench``: build, run and report."""
    settings = settings_from(args)
    out = args.out or Path(__file__).resolve().parent / "results" / f"bench-{settings['preset']}"
    jobs = build_jobs(
        settings["agents"],
        settings["env_budgets"],
        settings["algos"],
        settings["seeds"],
        settings["eval_episodes"],
        settings["curve_points"],
    )
    if args.write_jobs is not None:
        write_jobs(jobs, args.write_jobs)
        print(f"wrote {len(jobs)} jobs to {args.write_jobs}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.report_only:
        rows = read_rows(out)
    else:
        print(f"{len(jobs)} jobs on {settings['workers']} processes -> {out}")
        rows = run_jobs(jobs, out, settings["workers"], resume=args.resume)
    settings["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(write_report(rows, out, settings, args.control_results))
    print(f"wall time {settings['wall_seconds']:.0f} s; report in {out / 'results.md'}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``trm-rl bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="TRM (K=3, K=5) vs MLP on held-out mazes and puzzles",
        description=__doc__.splitlines()[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
