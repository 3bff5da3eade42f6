"""Step throughput of every registered ``TRM-*`` env next to Gymnasium's ``CartPole-v1``.

Run: ``python -m trm_rl.benchmarks.env_throughput [--seed 0] [--steps 20000]``.

Three rates per env, each the median of ``--repeats`` runs (envs interleaved per repeat,
so background load hits them alike):

- ``raw``: time spent inside ``env.unwrapped.step`` (no wrappers) only, with pre-drawn
  random actions from the action space; envs with ``action_masks()`` (Sudoku) instead get
  a random valid action from the mask (picked outside the timed call). The env is reset
  after each episode end, untimed; ``reset_us`` gives the mean cost of a reset separately.
- ``sync`` / ``async``: ``gymnasium.vector.SyncVectorEnv`` / ``AsyncVectorEnv`` of
  ``--num-envs`` copies made by ``gym.make`` (default wrappers, autoreset, so resets are
  included), random actions from the batched action space; rates count env steps
  (calls x envs).

Each rate is also given as a ratio to CartPole-v1's rate in the same mode. Ids whose
module cannot be imported yet are skipped with a note. Prints a table and writes
``benchmarks/results/env_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import trm_rl

RESULTS = Path(__file__).resolve().parent / "results" / "env_throughput.json"
REFERENCE = "CartPole-v1"
MODES = ("raw", "sync", "async")


def raw_rate(env_id: str, steps: int, seed: int) -> float:
    """Env steps per second of time spent in the unwrapped env's ``step`` (resets untimed)."""
    env = gym.make(env_id).unwrapped
    env.action_space.seed(seed)
    env.reset(seed=seed)
    if hasattr(env, "action_masks"):
        uniforms = iter(np.random.default_rng(seed).random(steps).tolist())

        def pick() -> int:
            valid = np.flatnonzero(env.action_masks())
            return int(valid[int(next(uniforms) * len(valid))])

    else:
        pick = iter([env.action_space.sample() for _ in range(steps)]).__next__
    clock = time.perf_counter
    elapsed = 0.0
    for _ in range(steps):
        action = pick()
        start = clock()
        _, _, terminated, truncated, _ = env.step(action)
        elapsed += clock() - start
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / elapsed


def reset_us(env_id: str, resets: int, seed: int) -> float:
    """Mean microseconds of one ``reset()`` of the unwrapped env (a fresh layout/puzzle)."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(resets):
        env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return 1e6 * elapsed / resets


def vector_rate(env_id: str, steps: int, seed: int, num_envs: int, asynchronous: bool) -> float:
    """Env steps per second of a Sync/AsyncVectorEnv of ``num_envs`` copies (autoreset)."""
    fns = [lambda: gym.make(env_id) for _ in range(num_envs)]
    envs = gym.vector.AsyncVectorEnv(fns) if asynchronous else gym.vector.SyncVectorEnv(fns)
    envs.action_space.seed(seed)
    envs.reset(seed=seed)
    calls = max(1, steps // num_envs)
    actions = [envs.action_space.sample() for _ in range(calls)]
    start = time.perf_counter()
    for action in actions:
        envs.step(action)
    elapsed = time.perf_counter() - start
    envs.close()
    return calls * num_envs / elapsed


def importable(env_id: str) -> str | None:
    """None when ``gym.make(env_id)`` works, else the reason (e.g. a missing module)."""
    try:
        gym.make(env_id).close()
    except (ImportError, AttributeError, gym.error.Error) as error:
        return f"{type(error).__name__}: {error}"
    return None


def median_rates(ids: list[str], measure: Callable[[str], float], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {env_id: [] for env_id in ids}
    for _ in range(repeats):
        for env_id in ids:
            samples[env_id].append(measure(env_id))
    return {env_id: statistics.median(values) for env_id, values in samples.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="env and action seed (default 0)")
    parser.add_argument(
        "--steps", type=int, default=20000, help="env steps per measurement (default 20000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per rate, median (3)")
    parser.add_argument("--num-envs", type=int, default=8, help="vector env copies (8)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output ({RESULTS})")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "num_envs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    registered = sorted(env_id for env_id in gym.registry if env_id.startswith("TRM-"))
    skipped = {env_id: why for env_id in registered if (why := importable(env_id))}
    ids = [REFERENCE] + [env_id for env_id in registered if env_id not in skipped]
    measures = {
        "raw": lambda env_id: raw_rate(env_id, args.steps, args.seed),
        "sync": lambda env_id: vector_rate(env_id, args.steps, args.seed, args.num_envs, False),
        "async": lambda env_id: vector_rate(env_id, args.steps, args.seed, args.num_envs, True),
    }
    rates = {mode: median_rates(ids, measures[mode], args.repeats) for mode in MODES}
    resets = median_rates(ids, lambda env_id: reset_us(env_id, 1000, args.seed), args.repeats)

    rows = []
    for env_id in ids:
        row: dict[str, object] = {"id": env_id}
        for mode in MODES:
            row[f"{mode}_steps_per_s"] = round(rates[mode][env_id])
            row[f"{mode}_ratio"] = round(rates[mode][env_id] / rates[mode][REFERENCE], 3)
        row["reset_us"] = round(resets[env_id], 1)
        rows.append(row)

    print(
        f"steps/s (ratio to {REFERENCE}); {args.steps} steps, median of {args.repeats}, "
        f"{args.num_envs} vector envs, seed {args.seed}"
    )
    header = f"{'env':<20}" + "".join(f"{mode:>22}" for mode in MODES) + f"{'reset us':>10}"
    print(header)
    for row in rows:
        cells = "".join(
            f"{row[f'{mode}_steps_per_s']:>12,} ({row[f'{mode}_ratio']:>5.2f}x)" for mode in MODES
        )
        print(f"{row['id']:<20}{cells}{row['reset_us']:>10.1f}")
    for env_id, why in skipped.items():
        print(f"skipped {env_id}: {why}")

    meta = {
        "reference": REFERENCE,
        "steps": args.steps,
        "repeats": args.repeats,
        "num_envs": args.num_envs,
        "seed": args.seed,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "trm_rl": trm_rl.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "notes": "raw: time inside unwrapped step() only, random actions (masked envs: random "
        "valid action picked untimed), resets untimed and reported as reset_us; sync/async: "
        "gym.make copies with default wrappers, autoreset timed.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "rows": rows, "skipped": skipped}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
