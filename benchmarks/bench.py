"""``trm-rl bench``: does recursion itself help? TRM with 1, 3 and 5 cycles against the same
schedule without weight sharing, a ResNet CNN and MLPs, on held-out mazes and puzzles.

Builds the job list (agents x envs x algorithms x seeds, plus the random and exact-solver
references; :mod:`trm_rl.benchmarks.jobs`), runs it on a process pool (default, one torch
thread per process) or as Ray tasks (``--executor ray``), and writes to ``--out DIR``
(default ``./bench-runs/<preset>``, under the working directory):

- ``settings.json``: the run's settings (the job list's inputs);
- ``rows/*.json``: one results row per finished job, written atomically as it finishes;
- ``results.json``: every row, plus the versions and settings used;
- ``results.md``: the tables of :mod:`trm_rl.benchmarks.report` (IQM and mean with 95%
  bootstrap intervals, probability that ``trm-k3`` beats each agent, wall-clock to 90% of
  the best agent's success, the across-env aggregate);
- ``curve_<env>_<algo>.png`` (learning curves with 95% bands), ``aggregate_<algo>.png``
  (IQM and performance profile); ``tb/`` TensorBoard logs, ``models/`` the trained agents.

An existing non-empty ``--out`` is refused unless ``--resume`` (keep its rows, run the missing
jobs; the settings must be the same) or ``--overwrite`` (delete what a bench run writes
there, then start again).

Presets (``--preset``): ``quick`` (the README's main job, ``make bench``), ``standard`` (every
agent on four envs, 3 seeds, hours on a 2-core machine, in sittings with ``--resume``),
``full`` (5 seeds, PPO and REINFORCE, for a cluster). ``--dry-run`` prints the job list's
estimated cost. To run jobs elsewhere, ``--write-jobs jobs.json`` saves the list; run each
with ``python -m trm_rl.benchmarks.runner jobs.json INDEX OUT/rows/NAME.json``, then
``trm-rl bench --out OUT --report-only`` builds the report.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trm_rl.benchmarks.jobs import (
    AGENTS,
    ALGOS,
    Job,
    build_jobs,
    write_jobs,
)

CONTROL_RESULTS = Path(__file__).resolve().parent / "results" / "control.json"
"""Where :mod:`trm_rl.benchmarks.control_benchmark` writes its results by default."""
DEFAULT_OUT = Path("bench-runs")
"""Default parent of ``--out`` (relative to the working directory): ``bench-runs/<preset>``."""
EXECUTORS = ("process", "ray")
RUN_SETTINGS = (
    "preset", "env_budgets", "env_algo_kwargs", "agents", "algos", "seeds", "eval_episodes",
    "curve_points",
)  # fmt: skip
"""The settings that define a run's jobs; ``--resume`` refuses a run that differs in any."""
WRITTEN = ("settings.json", "rows", "results.json", "results.md", "tb", "models", "reinforce")
"""What a bench run writes in ``--out`` (with the ``*.png`` plots): what ``--overwrite``
deletes."""


@dataclass(frozen=True)
class Preset:
    """Budgets and scope of a benchmark run."""

    env_budgets: dict[str, int]
    """Env id -> env steps per learner."""
    seeds: int
    """Training seeds per agent."""
    agents: tuple[str, ...]
    """Learners and references."""
    algos: tuple[str, ...]
    """Algorithms (PPO is MaskablePPO on Sudoku)."""
    eval_episodes: int
    """Held-out episodes per final evaluation."""
    curve_points: int
    """Held-out evaluations during training."""
    env_algo_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Env id -> PPO settings overriding the env's recipe, for every learner on it."""


STANDARD_BUDGETS = {
    "TRM-Maze-v0": 300_000,
    "TRM-Maze-7x7-v0": 600_000,
    "TRM-Sudoku-v0": 300_000,
    "TRM-VanDerPol-v0": 200_000,
}
"""The standard run's budgets. 5x5 maze: the target's 300k (TRM plateaus at 98-99% from
150-200k; the matched MLP still rises, 34-39% at 300k). 7x7: 600k instead of 1M: the
position-free TRM (the recipe, 2 PPO epochs) reaches 90% at 350k and 96% at 400k, with learned
positions 89-95% by 500-600k; the MLP stays at 0-5% through 1M. Sudoku: 300k instead of 500k:
one-cycle TRM is at 98-99% from 250k, H=3 at 98% from 300k (the matched MLP: 80% at 300k, 86%
at 500k). Van der Pol: 200k (one token; cheap). Evidence:
``benchmarks/results/policy_learning_TRM-Maze-v0.json``, ``..._seed2.json``,
``policy_learning_TRM-Maze-7x7-v0*.json`` (``..._posfree-e2-seed0.json``),
``policy_learning_TRM-Sudoku-v0_peers*.json``."""
PRESETS = {
    "quick": Preset(
        {"TRM-Maze-v0": 100_000},
        2,
        ("trm-k3", "trm-k1", "cnn", "mlp", "random", "solver"),
        ("ppo",),
        200,
        4,
    ),
    "standard": Preset(STANDARD_BUDGETS, 3, AGENTS, ("ppo",), 500, 10),
    "full": Preset(
        {**STANDARD_BUDGETS, "TRM-Maze-7x7-v0": 1_000_000, "TRM-Sudoku-v0": 500_000},
        5,
        AGENTS,
        ("ppo", "reinforce"),
        500,
        10,
    ),
}
"""``quick``: 5x5 mazes, 100k steps, 2 seeds, trm-k3, trm-k1, cnn, mlp and the
references. Known 5x5 data at 100k steps (``policy_learning_TRM-Maze-v0*.json``): TRM K=3
83-96% held-out, the matched MLP 17-20%, the random agent 39%. Estimated from single-job CPU
timings (:data:`~trm_rl.benchmarks.jobs.MEASURED_STEPS_PER_S`): ~11 CPU-minutes of training
plus evaluation, ~6-7 minutes on 2 idle cores."""


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


class BenchStopped(Exception):
    """SIGINT or SIGTERM reached ``trm-rl bench``; the rows written so far stay."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def _raise_stopped(signal_number: int) -> None:
    raise BenchStopped(signal_number)


def _worker_init() -> None:
    # The parent decides when to stop: a Ctrl-C reaches the whole process group, and the
    # parent then terminates its workers (their unfinished jobs rerun on --resume).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def _process_pool(jobs: list[Job], out: Path, workers: int) -> Iterator[tuple[Job, dict]]:
    """Run ``jobs`` in ``workers`` spawned processes; yield (job, row) as each finishes."""
    from trm_rl.benchmarks.runner import run_job

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)
    try:
        futures = {pool.submit(run_job, job, out): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        for process in list((pool._processes or {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _ray_tasks(jobs: list[Job], out: Path, address: str | None) -> Iterator[tuple[Job, dict]]:
    """Run ``jobs`` as Ray tasks of one CPU each (on the cluster at ``address``, or a local
    Ray when None and none is running); yield (job, row) as each finishes."""
    from trm_rl.optional import require

    ray = require("ray", "--executor ray")
    from trm_rl.benchmarks.runner import run_job

    if not ray.is_initialized():
        ray.init(address=address)
    task = ray.remote(num_cpus=1)(run_job)
    pending = {task.remote(job, out): job for job in jobs}
    while pending:
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        yield pending.pop(ready), ray.get(ready)


def run_jobs(
    jobs: list[Job],
    out: Path,
    workers: int = 1,
    executor: str = "process",
    ray_address: str | None = None,
    shortest_first: bool = False,
) -> list[dict[str, Any]]:
    """Run the jobs of ``jobs`` that have no row in ``out/rows`` yet, the most expensive first
    (:attr:`Job.estimated_seconds`; the cheapest first with ``shortest_first``), writing each
    row atomically as its job finishes; return every row in ``out/rows``.

    Args:
        jobs: the job list.
        out: the run's directory.
        workers: processes of the process pool.
        executor: ``"process"`` (a local process pool) or ``"ray"`` (Ray tasks).
        ray_address: the Ray cluster to connect to (``executor="ray"``); None starts a
            local Ray unless one is running.
        shortest_first: run the cheapest jobs first, so that a sitting shorter than the
            longest job still finishes rows (an interrupted job starts again on resume).
    """
    from tqdm.auto import tqdm

    from trm_rl.benchmarks.report import check_row
    from trm_rl.benchmarks.runner import write_row

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    rows_dir = out / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)
    pending = [job for job in jobs if not (rows_dir / f"{job.name}.json").exists()]
    pending.sort(key=lambda job: job.estimated_seconds, reverse=not shortest_first)
    if pending:
        finished: Iterator[tuple[Job, dict]] = (
            _ray_tasks(pending, out, ray_address)
            if executor == "ray"
            else _process_pool(pending, out, workers)
        )
        with tqdm(total=len(jobs), initial=len(jobs) - len(pending), unit="job") as bar:
            for job, row in finished:
                check_row(row)
                write_row(row, rows_dir / f"{job.name}.json")
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
    """Write results.json, results.md and the plots; return the markdown tables.

    ``control_results``: a ``control.json`` of :mod:`trm_rl.benchmarks.control_benchmark`;
    when the file exists, its Van der Pol rows join the table (they are read, not rerun).
    """
    from trm_rl.benchmarks.report import (
        control_table,
        markdown_table,
        plot_aggregate,
        plot_learning_curves,
    )

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
        "Success: held-out episodes, deterministic actions. IQM: interquartile mean over "
        "seeds; intervals: 95% percentile bootstrap over seeds (stratified by env across "
        "envs). P(trm-k3 > agent): probability that a trm-k3 run beats a run of the agent "
        "(ties count a half). Path / BFS: steps over the BFS shortest path, successful maze "
        "episodes only. steps/s: training env steps per second (evaluation excluded), one "
        "torch thread per process. Time to X%: median training seconds over the seeds that "
        "reached X% held-out success (90% of the best agent's mean), from the learning "
        "curve's evaluation points.\n\n"
    )
    (out / "results.md").write_text(header + table + "\n")
    plot_learning_curves(rows, out)
    plot_aggregate(rows, out)
    return table


def estimate_lines(jobs: list[Job], workers: int) -> list[str]:
    """The job list's estimated cost from measured speeds (:attr:`Job.estimated_seconds`):
    CPU hours per env and in all, and the wall time on ``workers`` processes (longest
    job first)."""
    by_env: dict[str, float] = {}
    for job in jobs:
        by_env[job.env_id] = by_env.get(job.env_id, 0.0) + job.estimated_seconds
    loads = [0.0] * workers
    for job in sorted(jobs, key=lambda j: j.estimated_seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + job.estimated_seconds)
    lines = [
        f"  {env}: {sum(1 for j in jobs if j.env_id == env)} jobs, {seconds / 3600:.1f} CPU-h"
        for env, seconds in by_env.items()
    ]
    total = sum(by_env.values())
    longest = max((job.estimated_seconds for job in jobs), default=0.0)
    return [
        f"{len(jobs)} jobs, estimated {total / 3600:.1f} CPU-hours of training "
        "(measured steps/s, evaluation not counted):",
        *lines,
        f"  wall on {workers} processes: ~{max(loads) / 3600:.1f} h (longest job "
        f"{longest / 3600:.1f} h)",
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``trm-rl bench``."""
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="quick", help="scope (default quick)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output directory (default {DEFAULT_OUT}/<preset> in the working directory)",
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
    parser.add_argument("--agents", nargs="+", default=None, choices=AGENTS, help="agents (preset)")
    parser.add_argument("--algos", nargs="+", default=None, choices=ALGOS, help="(preset)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="(preset)")
    parser.add_argument("--curve-points", type=int, default=None, help="(preset)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes of the process pool (default: CPU count)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="process",
        help='"process" (default: a local process pool) or "ray" (one Ray task per job, '
        'needs pip install "trm-rl[cluster]")',
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster address for --executor ray (default: a local Ray)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the job list's estimated cost and exit"
    )
    parser.add_argument(
        "--shortest-first",
        action="store_true",
        help="run the cheapest jobs first (for a long run in sittings: rows land early; "
        "default: the most expensive first, the shortest total time)",
    )
    parser.add_argument(
        "--write-jobs",
        type=Path,
        default=None,
        help="write the job list as JSON and exit (to run jobs with another scheduler)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only build the report from OUT/rows (with OUT/settings.json's settings)",
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in a non-empty OUT: keep its rows, run the missing jobs (the "
        "settings must be the same)",
    )
    runs.add_argument(
        "--overwrite",
        action="store_true",
        help="delete a previous run's files in OUT and start again",
    )
    parser.add_argument(
        "--control-results",
        type=Path,
        default=CONTROL_RESULTS,
        help="Van der Pol results (control_benchmark's control.json) to include when present "
        "(default: the package's benchmarks/results/control.json)",
    )


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the preset, overridden by explicit flags."""
    preset = PRESETS[args.preset]
    budgets = dict(preset.env_budgets)
    if args.envs is not None:
        budgets = {env_id: budgets.get(env_id, 300_000) for env_id in args.envs}
    if args.timesteps is not None:
        budgets = dict.fromkeys(budgets, args.timesteps)
    settings = {
        "preset": args.preset,
        "env_budgets": budgets,
        "env_algo_kwargs": {e: k for e, k in preset.env_algo_kwargs.items() if e in budgets},
        "agents": list(args.agents or preset.agents),
        "algos": list(args.algos or preset.algos),
        "seeds": list(range(args.seed, args.seed + (args.seeds or preset.seeds))),
        "eval_episodes": args.eval_episodes or preset.eval_episodes,
        "curve_points": preset.curve_points if args.curve_points is None else args.curve_points,
        "workers": args.workers,
    }
    for name in ("workers", "eval_episodes"):
        if settings[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {settings[name]}")
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    if settings["curve_points"] < 0:
        raise ValueError(f"--curve-points must be >= 0, got {settings['curve_points']}")
    if any(budget < 1 for budget in budgets.values()):
        raise ValueError(f"--timesteps must be >= 1, got {args.timesteps}")
    return settings


def prepare_out(out: Path, settings: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Make ``out`` ready for a run with ``settings``.

    An empty or missing ``out`` is created; a non-empty one is refused
    (``FileExistsError``) unless ``resume`` (its ``settings.json`` must hold the same
    :data:`RUN_SETTINGS`, else ``ValueError`` naming the differences) or ``overwrite`` (the
    files of :data:`WRITTEN` and the plots are deleted first).
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a directory")
    existing = sorted(out.iterdir()) if out.is_dir() else []
    if existing and overwrite:
        for name in WRITTEN:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for plot in [*out.glob("curve_*.png"), *out.glob("aggregate_*.png")]:
            plot.unlink()
    elif existing and resume:
        saved_path = out / "settings.json"
        if not saved_path.is_file():
            raise FileNotFoundError(
                f"--resume: {saved_path} is missing, so {out} is not a bench run to continue; "
                "pass --overwrite to start a new run there, or another --out"
            )
        saved = json.loads(saved_path.read_text())
        differ = [
            f"{name}: {saved.get(name)!r} there, {settings[name]!r} now"
            for name in RUN_SETTINGS
            if saved.get(name) != settings[name]
        ]
        if differ:
            raise ValueError(
                f"--resume: {out} holds a run with other settings ({'; '.join(differ)}); "
                "pass the same flags, or --overwrite, or another --out"
            )
    elif existing:
        rows = len(list((out / "rows").glob("*.json")))
        raise FileExistsError(
            f"--out {out} is not empty ({rows} finished rows); pass --resume to continue that "
            "run, --overwrite to replace it, or another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    run_settings = {name: settings[name] for name in RUN_SETTINGS}
    (out / "settings.json").write_text(json.dumps(run_settings, indent=1) + "\n")


def run(args: argparse.Namespace) -> int:
    """``trm-rl bench``: build, run and report."""
    settings = settings_from(args)
    out = args.out or DEFAULT_OUT / settings["preset"]
    if args.executor == "ray" and not (args.write_jobs or args.dry_run or args.report_only):
        from trm_rl.optional import require

        require("ray", "--executor ray")
    jobs = build_jobs(
        settings["agents"],
        settings["env_budgets"],
        settings["algos"],
        settings["seeds"],
        settings["eval_episodes"],
        settings["curve_points"],
        settings["env_algo_kwargs"],
    )
    if args.dry_run or args.write_jobs is not None:
        print("\n".join(estimate_lines(jobs, settings["workers"])))
        if args.write_jobs is not None:
            write_jobs(jobs, args.write_jobs)
            print(f"wrote {len(jobs)} jobs to {args.write_jobs}")
        return 0
    start = time.perf_counter()
    if args.report_only:
        if not (out / "rows").is_dir():
            raise FileNotFoundError(f"--report-only: no rows in {out / 'rows'}")
        if (out / "settings.json").is_file():
            settings.update(json.loads((out / "settings.json").read_text()))
        rows = read_rows(out)
    else:
        prepare_out(out, settings, args.resume, args.overwrite)
        where = (
            f"Ray ({args.ray_address or 'local'})"
            if args.executor == "ray"
            else (f"{settings['workers']} processes")
        )
        print(f"{len(jobs)} jobs on {where} -> {out}")
        from trm_rl.agents.sb3.training import stop_on_signals

        try:
            with stop_on_signals(_raise_stopped):
                rows = run_jobs(
                    jobs,
                    out,
                    settings["workers"],
                    args.executor,
                    args.ray_address,
                    args.shortest_first,
                )
        except BenchStopped as stop:
            done = len(list((out / "rows").glob("*.json")))
            print(
                f"trm-rl bench: stopped by {stop}; {done} of {len(jobs)} rows are in "
                f"{out / 'rows'}; run the same command with --resume to finish",
                file=sys.stderr,
            )
            return 128 + stop.signal_number
    settings["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(write_report(rows, out, settings, args.control_results))
    plots = sorted(p.name for p in [*out.glob("curve_*.png"), *out.glob("aggregate_*.png")])
    print(f"wall time {settings['wall_seconds']:.0f} s; report in {out / 'results.md'}")
    print(f"plots in {out}: {', '.join(plots)}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``trm-rl bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="TRM (K=1, 3, 5) against unshared, CNN and MLP agents on held-out mazes, puzzles",
        description=__doc__.splitlines()[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
