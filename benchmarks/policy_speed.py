"""PPO training speed of TRMPolicy against MlpPolicy, in the same run, and where time goes.

Every variant trains ``PPO`` on the same env with the env's recipe
(:mod:`trm_rl.agents.sb3.hyperparams`) unless the variant says otherwise, for ``--timesteps``
steps after a one-rollout warm-up, on one thread. Reported per variant: steps per second of
wall time and of this process's CPU time (the CPU figure is the robust one on a shared
machine), and the CPU-time split between rollout collection and the PPO update. With
``--profile``, the top operators of one PPO update of the default TRM policy.

Run: ``python -m trm_rl.benchmarks.policy_speed [--env TRM-Maze-7x7-v0] [--timesteps 8192]
[--seed 0] [--profile]`` -> ``benchmarks/results/policy_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback

from trm_rl.agents.network import parameter_count
from trm_rl.agents.sb3.training import TrainConfig, make_model

RESULTS = Path(__file__).resolve().parent / "results" / "policy_speed.json"

PROTOTYPE = {"hidden_dim": 32, "h_cycles": 3, "l_cycles": 3, "mixer": "mlp", "grad_mode": "full"}
"""The first prototype of the issue (token-mixing MLP, gradients through every cycle)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "mlp-sb3": {"policy": "mlp"},
    "trm-k3": {},
    "trm-k3-last-grad": {"policy_kwargs": {"grad_mode": "last"}},
    "trm-k3-last-grad-batch-512": {
        "policy_kwargs": {"grad_mode": "last"},
        "algo_kwargs": {"batch_size": 512},
    },
    "trm-k3-2-epochs": {"algo_kwargs": {"n_epochs": 2}},
    "trm-k3-last-grad-2-epochs": {
        "policy_kwargs": {"grad_mode": "last"},
        "algo_kwargs": {"n_epochs": 2},
    },
    "trm-k3-mlp-mixer": {"policy_kwargs": {"mixer": "mlp"}},
    "trm-k3-compiled": {"compile": True},
    "trm-prototype": {
        "policy_kwargs": {**PROTOTYPE, "expansion": 4.0},
        "algo_kwargs": {"n_epochs": 10, "batch_size": 256},
    },
}
"""Name -> ``TrainConfig`` overrides, and ``"compile": True`` to run the core through
``torch.compile`` (compiled during the warm-up, so its compile time is not in the rates).
``trm-k3`` is the recommended TRM policy (H=3, full gradients, PPO batch 128);
``trm-prototype`` is the issue's first prototype."""


class PhaseClock(BaseCallback):
    """CPU time spent collecting rollouts; the rest of ``learn`` is the PPO update."""

    def __init__(self) -> None:
        super().__init__()
        self.rollout_cpu = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.process_time()

    def _on_rollout_end(self) -> None:
        self.rollout_cpu += time.process_time() - self._start

    def _on_step(self) -> bool:
        return True


def measure(config: TrainConfig, timesteps: int, compile_core: bool = False) -> dict[str, Any]:
    """Steps/s (wall and CPU) of ``timesteps`` PPO steps after a one-rollout warm-up, and
    the warm-up's wall time (``torch.compile``'s compilation with ``compile_core``)."""
    model = make_model(config)
    if compile_core:
        model.policy.network.core.compile()
    rollout = model.n_steps * model.n_envs
    warm_up = time.perf_counter()
    model.learn(rollout)
    warm_up = time.perf_counter() - warm_up
    clock = PhaseClock()
    wall, cpu = time.perf_counter(), time.process_time()
    model.learn(timesteps, callback=clock, reset_num_timesteps=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "params": parameter_count(model.policy),
        "trm": None if config.policy == "mlp" else model.policy.trm_config.to_dict(),
        "algo_kwargs": config.resolved_algo_kwargs(),
        "steps_per_s_wall": timesteps / wall,
        "steps_per_s_cpu": timesteps / cpu,
        "rollout_cpu_fraction": clock.rollout_cpu / cpu,
        "warm_up_s_wall": warm_up,
    }


def profile_update(config: TrainConfig, rows: int) -> list[dict[str, Any]]:
    """The ``rows`` operators with the most self CPU time in one PPO update."""
    from torch.profiler import ProfilerActivity, profile

    model = make_model(config)
    model.learn(model.n_steps * model.n_envs)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "self_cpu_ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:rows]
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="TRM-Maze-7x7-v0", help="env id (TRM-Maze-7x7-v0)")
    parser.add_argument("--timesteps", type=int, default=8192, help="timed steps per variant")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="what to run"
    )
    parser.add_argument("--profile", action="store_true", help="profile one trm-k3 update")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for name in args.variants:
        overrides = dict(VARIANTS[name])
        compile_core = overrides.pop("compile", False)
        config = TrainConfig(args.env, seed=args.seed, device="cpu", **overrides)
        rows[name] = measure(config, args.timesteps, compile_core)
        row = rows[name]
        print(
            f"{name:18s} {row['params']:>7d} params  {row['steps_per_s_cpu']:7.0f} steps/s (CPU) "
            f"{row['steps_per_s_wall']:7.0f} (wall)  rollout {row['rollout_cpu_fraction']:.0%}",
            flush=True,
        )
    report: dict[str, Any] = {
        "meta": {
            "env": args.env,
            "timesteps": args.timesteps,
            "seed": args.seed,
            "threads": 1,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
        },
        "variants": rows,
    }
    if "trm-k3" in rows and "mlp-sb3" in rows:
        ratio = rows["trm-k3"]["steps_per_s_cpu"] / rows["mlp-sb3"]["steps_per_s_cpu"]
        report["trm_k3_over_mlp_cpu"] = ratio
        print(f"TRM (K=3) / MLP steps/s (CPU): {ratio:.3f}")
    if args.profile:
        report["profile_trm_k3_update"] = profile_update(
            TrainConfig(args.env, seed=args.seed, device="cpu"), rows=12
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
