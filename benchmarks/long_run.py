"""A long SB3 training run in resumable segments, with a held-out learning curve on several
evaluation settings (e.g. 9x9 Sudoku per difficulty, mazes per size).

::

    python -m trm_rl.benchmarks.long_run --env TRM-Sudoku-9x9-v0 \\
        --env-kwargs '{"difficulty": "naked", "max_blanks": [1, 81]}' \\
        --eval naked='{"difficulty": "naked"}' --eval hidden='{"difficulty": "hidden"}' \\
        --timesteps 2000000 --segment 100000 --eval-episodes 200 --seed 0 --out DIR
    python -m trm_rl.benchmarks.long_run ... --out DIR --resume   # a later sitting

The run is one ``trm-rl train`` run (``DIR/run``: ``trm-rl evaluate DIR/run`` and
``load_agent`` read it; learning-rate schedules span ``--timesteps``). Every ``--segment``
env steps, at the next rollout boundary, it is checkpointed and evaluated with
deterministic actions on ``--eval-episodes`` held-out episodes of each ``--eval`` setting
(evaluation seed ``--eval-seed``; a setting's env kwargs replace the training ones).
``DIR/curve.json`` is rewritten atomically after every point (``--eval-at-start`` adds one
at 0 steps): the settings and, per point, ``timesteps``, the training seconds so far
(``train_seconds``, ``train_cpu_seconds``), the seconds so far with the evaluations
included (``elapsed_seconds``, ``elapsed_cpu_seconds``; summed over sittings) and each
setting's evaluation. A killed run loses at most one segment;
``--resume`` continues from the last point with the same settings (only ``--timesteps`` may
grow). ``DIR/run`` holds the latest checkpoint; with ``--keep-best NAME``, ``DIR/best`` also
holds the checkpoint of the point with the highest success on evaluation setting ``NAME``
(the earliest on ties; a loadable run directory, and ``curve.json``'s ``best`` names its
point), so a late collapse of the run loses nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.callbacks import BaseCallback

from trm_rl.agents.evaluation import evaluate
from trm_rl.agents.loading import load_agent
from trm_rl.agents.sb3.hyperparams import ALGOS
from trm_rl.agents.sb3.training import (
    POLICIES,
    TrainConfig,
    TrainingInterrupted,
    save_checkpoint,
    train,
)
from trm_rl.atomic import atomic_path, atomic_write_text
from trm_rl.cli.dataclass_flags import json_object
from trm_rl.config import require_int

CURVE_FILE = "curve.json"
RUN_DIR = "run"
BEST_DIR = "best"
RESUMABLE = ("timesteps",)
"""Settings a resumed run may change."""
LATER_SETTINGS = {
    "init_from": None,
    "keep_best": None,
    "eval_at_start": False,
    "algo": None,
    "policy": "trm",
}
"""Settings added after the first curves were written, with the value they then had."""


def eval_setting(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=JSON`` -> ``(NAME, kwargs)`` (an argparse type)."""
    name, sep, kwargs = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON (e.g. naked='{{}}'), got {text!r}")
    return name, json_object(kwargs)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="training env id")
    parser.add_argument("--env-kwargs", type=json_object, default={}, help="JSON for gym.make")
    parser.add_argument(
        "--algo", choices=ALGOS, default=None, help="algorithm (default: the env's recipe)"
    )
    parser.add_argument("--policy", choices=POLICIES, default="trm", help="network (trm)")
    parser.add_argument(
        "--trm-kwargs", type=json_object, default={}, help="JSON policy overrides (TRM or MLP)"
    )
    parser.add_argument("--algo-kwargs", type=json_object, default={}, help="JSON algo overrides")
    parser.add_argument("--n-envs", type=int, default=None, help="override the recipe's n_envs")
    parser.add_argument(
        "--random-h-cycles",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="draw the TRM policy's H from LOW..HIGH for every rollout and its update",
    )
    parser.add_argument(
        "--init-from",
        metavar="AGENT",
        default=None,
        help="start from this trained agent's policy weights (same network settings)",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--timesteps", type=int, required=True, help="total env steps")
    parser.add_argument(
        "--segment", type=int, required=True, help="env steps between held-out evaluations"
    )
    parser.add_argument(
        "--eval",
        type=eval_setting,
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an evaluation setting: its env kwargs, used instead of the training ones "
        "(repeatable; default: one setting 'train' with the training kwargs)",
    )
    parser.add_argument("--eval-episodes", type=int, default=200, help="per setting (200)")
    parser.add_argument("--eval-seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument(
        "--eval-at-start",
        action="store_true",
        help="also evaluate the policy before training (a point at 0 steps: the untrained "
        "or --init-from policy)",
    )
    parser.add_argument(
        "--keep-best",
        metavar="NAME",
        default=None,
        help="also keep, in OUT/best, the checkpoint with the best success on this --eval setting",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    args = parser.parse_args(argv)
    for name in ("timesteps", "segment", "eval_episodes"):
        require_int(f"--{name.replace('_', '-')}", getattr(args, name), 1)
    require_int("--eval-seed", args.eval_seed, 0)
    names = [name for name, _ in args.eval]
    if len(set(names)) != len(names):
        parser.error(f"--eval names must differ, got {names}")
    known = names or ["train"]
    if args.keep_best is not None and args.keep_best not in known:
        parser.error(
            f"--keep-best must name an --eval setting ({', '.join(known)}), got {args.keep_best!r}"
        )
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a resumed run must repeat (besides :data:`RESUMABLE`)."""
    return {
        "env": args.env,
        "algo": args.algo,
        "policy": args.policy,
        "env_kwargs": args.env_kwargs,
        "trm_kwargs": args.trm_kwargs,
        "algo_kwargs": args.algo_kwargs,
        "n_envs": args.n_envs,
        "random_h_cycles": args.random_h_cycles,
        "init_from": args.init_from,
        "seed": args.seed,
        "timesteps": args.timesteps,
        "segment": args.segment,
        "evals": dict(args.eval) or {"train": args.env_kwargs},
        "eval_episodes": args.eval_episodes,
        "eval_seed": args.eval_seed,
        "keep_best": args.keep_best,
        "eval_at_start": args.eval_at_start,
    }


def prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out`` for a new run: refused if it holds files, unless ``overwrite`` and they
    are a long run's own (``curve.json``, ``run/``, ``best/``; the curve and the best
    checkpoint are deleted here, the run directory by ``train(overwrite=True)``)."""
    present = sorted(path.name for path in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise FileExistsError(
            f"{out} is not empty ({', '.join(present[:4])}); pass --resume to continue the run "
            "in it or --overwrite to replace that run"
        )
    foreign = [name for name in present if name not in (CURVE_FILE, RUN_DIR, BEST_DIR)]
    if foreign:
        raise FileExistsError(
            f"--overwrite deletes only a long run's own files, and {out} also holds {foreign}"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / CURVE_FILE).unlink(missing_ok=True)
    shutil.rmtree(out / BEST_DIR, ignore_errors=True)


def load_curve(out: Path, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    """The points of the run in ``out``; ``ValueError`` when its settings differ."""
    path = out / CURVE_FILE
    if not path.is_file():
        raise ValueError(f"--resume: {path} does not exist; start the run without --resume")
    record = json.loads(path.read_text())
    saved = {**LATER_SETTINGS, **record["settings"]}
    same = json.loads(json.dumps(wanted))
    changed = sorted(
        key
        for key in set(saved) | set(same)
        if key not in RESUMABLE and saved.get(key) != same.get(key)
    )
    if changed:
        raise ValueError(
            f"--resume: the run in {out} has other settings ({', '.join(changed)}); "
            "only --timesteps may change"
        )
    return record["points"]


def evaluate_all(run_dir: Path, env_id: str, run_settings: dict[str, Any]) -> dict[str, Any]:
    """Each evaluation setting's held-out result (a dict of EvaluationResult fields), for
    the checkpoint in ``run_dir`` loaded as a user would (:func:`load_agent`; built for the
    setting's observation space, e.g. another maze size)."""
    results = {}
    for name, kwargs in run_settings["evals"].items():
        env = gym.make(env_id, **kwargs)
        agent = load_agent(run_dir, observation_space=env.observation_space, device="cpu")
        env.close()
        results[name] = evaluate(
            agent, env_id, run_settings["eval_episodes"], run_settings["eval_seed"], kwargs
        ).to_dict()
    return results


def best_point(points: list[dict[str, Any]], setting: str) -> dict[str, Any] | None:
    """The earliest of ``points`` with the highest success on ``setting`` (None if none)."""
    if not points:
        return None
    return max(points, key=lambda point: point["evals"][setting]["success_rate"])


def keep_checkpoint(run_dir: Path, best_dir: Path) -> None:
    """Copy the run directory's ``config.json`` and ``model.zip`` into ``best_dir``, each
    atomically."""
    best_dir.mkdir(exist_ok=True)
    for name in ("config.json", "model.zip"):
        with atomic_path(best_dir / name) as temporary:
            shutil.copyfile(run_dir / name, temporary)


def point_line(point: dict[str, Any]) -> str:
    results = " ".join(f"{name} {r['success_rate']:.1%}" for name, r in point["evals"].items())
    steps = point["timesteps"]
    speed = f"{point['train_cpu_seconds'] / steps * 1e3:6.2f}" if steps else "     -"
    return (
        f"{steps:>9} steps  {point['elapsed_seconds'] / 60:7.1f} min  "
        f"{speed} CPU-ms/step  {results}"
    )


class SegmentCurve(BaseCallback):
    """Every ``segment`` env steps (at the first rollout boundary at or after it), at the
    end of the run and, with ``eval_at_start``, before the first update: save the
    checkpoint, evaluate it (:func:`evaluate_all`), append a point to ``points`` and rewrite
    the curve file. Clocks continue those of the last point."""

    def __init__(
        self, out: Path, env_id: str, run_settings: dict[str, Any], points: list[dict[str, Any]]
    ) -> None:
        super().__init__()
        self.out, self.env_id, self.run_settings, self.points = out, env_id, run_settings, points
        self.segment = run_settings["segment"]
        names = ("train_seconds", "train_cpu_seconds", "elapsed_seconds", "elapsed_cpu_seconds")
        self.clocks = {name: points[-1][name] if points else 0.0 for name in names}

    def _on_training_start(self) -> None:
        self._next = (self.model.num_timesteps // self.segment + 1) * self.segment
        self._since = (time.perf_counter(), time.process_time())
        if self.run_settings["eval_at_start"] and not self.points:
            self._point()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self._next:
            self._point()

    def _on_training_end(self) -> None:
        last = self.points[-1]["timesteps"] if self.points else 0
        if self.model.num_timesteps >= self.run_settings["timesteps"] > last:
            self._point()

    def _point(self) -> None:
        steps = self.model.num_timesteps
        trained = (time.perf_counter(), time.process_time())
        self.clocks["train_seconds"] += trained[0] - self._since[0]
        self.clocks["train_cpu_seconds"] += trained[1] - self._since[1]
        run_dir = self.out / RUN_DIR
        save_checkpoint(self.model, run_dir, steps)
        results = evaluate_all(run_dir, self.env_id, self.run_settings)
        after = (time.perf_counter(), time.process_time())
        self.clocks["elapsed_seconds"] += after[0] - self._since[0]
        self.clocks["elapsed_cpu_seconds"] += after[1] - self._since[1]
        self._since = after
        self._next = (steps // self.segment + 1) * self.segment
        self.points.append({"timesteps": steps, **self.clocks, "evals": results})
        record = {"settings": self.run_settings, "points": self.points}
        setting = self.run_settings["keep_best"]
        if setting is not None:
            best = best_point(self.points, setting)
            if best is self.points[-1]:
                keep_checkpoint(run_dir, self.out / BEST_DIR)
            record["best"] = {"setting": setting, "timesteps": best["timesteps"]}
        atomic_write_text(self.out / CURVE_FILE, json.dumps(record, indent=2) + "\n")
        print(point_line(self.points[-1]), flush=True)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train once over the whole budget (so learning-rate schedules span the run), with a
    held-out point every segment; returns the curve's points."""
    wanted = settings(args)
    if args.resume:
        points = load_curve(args.out, wanted)
    else:
        prepare_out(args.out, args.overwrite)
        points = []
    config = TrainConfig(
        args.env,
        algo=args.algo,
        policy=args.policy,
        timesteps=args.timesteps,
        seed=args.seed,
        env_kwargs=args.env_kwargs,
        n_envs=args.n_envs,
        policy_kwargs=args.trm_kwargs,
        algo_kwargs=args.algo_kwargs,
        random_h_cycles=args.random_h_cycles,
        init_from=args.init_from,
    )
    run_dir = args.out / RUN_DIR
    resume = args.resume and (run_dir / "model.zip").is_file()
    if resume and points and points[-1]["timesteps"] >= args.timesteps:
        return points
    # SegmentCurve saves the checkpoint at every point; train's own checkpoints are then
    # needed only at the end and on SIGINT/SIGTERM.
    train(
        config,
        run_dir,
        resume=resume,
        overwrite=not resume,
        checkpoint_every=args.timesteps,
        callbacks=[SegmentCurve(args.out, args.env, wanted, points)],
    )
    return points


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    args = parse_args(argv)
    try:
        run(args)
    except TrainingInterrupted as stop:
        print(f"long_run: stopped: {stop}; continue with --resume", file=sys.stderr)
        return 128 + stop.signal_number
    except (ValueError, OSError) as error:
        print(f"long_run: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
