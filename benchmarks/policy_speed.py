"""PPO training speed of TRMPolicy against MlpPolicy, in the same run, and where time goes.

Every variant trains ``PPO`` on the same env with the env's recipe
(:mod:`trm_rl.agents.sb3.hyperparams`) unless the variant says otherwise, for ``--timesteps``
steps after a one-rollout warm-up, on one thread. Reported per variant: steps per second of
wall time and of this process's CPU time (the CPU figure is the robust one on a shared
machine), and the CPU-time split between rollout collection and the PPO update.

Against the machine's limit, per variant: the FLOPs one env step costs in the rollout (the
policy's forward on the ``n_envs`` batch, divided by ``n_envs``) and in the update (forward and
backward of ``evaluate_actions`` on one minibatch, per sample, times ``n_epochs``), counted by
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention;
element-wise ops count zero), the FLOP/s each phase achieved, and that as a fraction of the
single-thread fp32 peak of a large ``torch.mm`` measured in the same run. With ``--profile``,
the top operators of one PPO update of the default TRM policy.

Run: ``python -m trm_rl.benchmarks.policy_speed [--env TRM-Maze-7x7-v0] [--timesteps 8192]
[--seed 0] [--device auto] [--profile]`` -> ``benchmarks/results/policy_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import get_device
from torch.utils.flop_counter import FlopCounterMode

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


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a ``size x size`` fp32 ``torch.mm`` on ``device`` (one thread on the CPU):
    the practical peak for dense work, the best of ``repeats`` timed products."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def counted_flops(work: Any) -> int:
    """FLOPs of calling ``work()``, as counted by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        work()
    return int(counter.get_total_flops())


def flops_per_env_step(model: BaseAlgorithm) -> dict[str, float]:
    """Counted FLOPs per env step: ``rollout`` (the policy's forward on one step of the
    ``n_envs`` envs, per env) and ``update`` (forward + backward of ``evaluate_actions`` on
    one minibatch, per sample, times ``n_epochs``), from the model's last rollout buffer."""
    policy, buffer = model.policy, model.rollout_buffer
    batch = next(buffer.get(model.batch_size))
    step = batch.observations[: model.n_envs]
    masks = getattr(batch, "action_masks", None)
    mask_kwargs = {} if masks is None else {"action_masks": masks}

    def rollout() -> None:
        with torch.no_grad():
            policy(step, **({} if masks is None else {"action_masks": masks[: model.n_envs]}))

    def update() -> None:
        values, log_prob, entropy = policy.evaluate_actions(
            batch.observations, batch.actions.long().flatten(), **mask_kwargs
        )
        (values.sum() + log_prob.sum() + entropy.sum()).backward()

    forward = counted_flops(rollout) / model.n_envs
    backward = counted_flops(update) / len(batch.observations) * model.n_epochs
    policy.optimizer.zero_grad()
    return {"rollout": forward, "update": backward}


def measure(config: TrainConfig, timesteps: int, compile_core: bool = False) -> dict[str, Any]:
    """Steps/s (wall and CPU) of ``timesteps`` PPO steps after a one-rollout warm-up, the
    warm-up's wall time (``torch.compile``'s compilation with ``compile_core``), and the
    counted FLOPs per env step with the FLOP/s each phase achieved (CPU time on the CPU,
    wall time on an accelerator)."""
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
    flops = flops_per_env_step(model)
    seconds = cpu if model.device.type == "cpu" else wall
    rollout_seconds = seconds * clock.rollout_cpu / cpu
    return {
        "params": parameter_count(model.policy),
        "trm": None if config.policy == "mlp" else model.policy.trm_config.to_dict(),
        "algo_kwargs": config.resolved_algo_kwargs(),
        "steps_per_s_wall": timesteps / wall,
        "steps_per_s_cpu": timesteps / cpu,
        "rollout_cpu_fraction": clock.rollout_cpu / cpu,
        "warm_up_s_wall": warm_up,
        "flops_per_step": flops,
        "flop_per_s": {
            "rollout": flops["rollout"] * timesteps / rollout_seconds,
            "update": flops["update"] * timesteps / (seconds - rollout_seconds),
        },
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
    parser.add_argument("--device", default="auto", help='torch device ("auto" as in SB3)')
    parser.add_argument("--profile", action="store_true", help="profile one trm-k3 update")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON (default {RESULTS})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    device = get_device(args.device)
    peak = matmul_peak(device)
    print(f"{device} fp32 torch.mm peak: {peak / 1e9:.1f} GFLOP/s (one thread on the CPU)")
    rows = {}
    for name in args.variants:
        overrides = dict(VARIANTS[name])
        compile_core = overrides.pop("compile", False)
        config = TrainConfig(args.env, seed=args.seed, device=str(device), **overrides)
        rows[name] = measure(config, args.timesteps, compile_core)
        row = rows[name]
        row["peak_fraction"] = {phase: rate / peak for phase, rate in row["flop_per_s"].items()}
        flops, fraction = row["flops_per_step"], row["peak_fraction"]
        print(
            f"{name:18s} {row['params']:>7d} params  {row['steps_per_s_cpu']:7.0f} steps/s (CPU) "
            f"{row['steps_per_s_wall']:7.0f} (wall)  rollout {row['rollout_cpu_fraction']:.0%}  "
            f"MFLOP/step {flops['rollout'] / 1e6:.2f} + {flops['update'] / 1e6:.2f}  "
            f"peak {fraction['rollout']:.0%} / {fraction['update']:.0%}",
            flush=True,
        )
    report: dict[str, Any] = {
        "meta": {
            "env": args.env,
            "timesteps": args.timesteps,
            "seed": args.seed,
            "threads": 1,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "matmul_peak_flop_per_s": peak,
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
            TrainConfig(args.env, seed=args.seed, device=str(device)), rows=12
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
