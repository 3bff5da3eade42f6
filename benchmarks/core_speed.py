"""Parameter count and forward/backward time of the recursive core.

Run: ``python -m trm_rl.benchmarks.core_speed [--seed 0] [--batch 64]`` (or ``trm-rl demo``).
Prints one line per mixer and writes ``benchmarks/results/core_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from trm_rl.config import MIXERS, TRMConfig
from trm_rl.core import RecursiveCore

RESULTS = Path(__file__).resolve().parent / "results" / "core_speed.json"


def measure(config: TRMConfig, n_tokens: int, batch: int, repeats: int) -> dict:
    """Median forward (no grad) and forward+backward seconds for tokens ``[batch, n_tokens, D]``."""
    core = RecursiveCore(config, n_tokens=n_tokens)
    x = torch.randn(batch, n_tokens, config.hidden_dim)
    forward, backward = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            core(x)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        core(x).states.square().mean().backward()
        backward.append(time.perf_counter() - start)
    return {
        "mixer": config.mixer,
        "n_tokens": n_tokens,
        "batch": batch,
        "params": sum(p.numel() for p in core.parameters()),
        "forward_ms": 1e3 * sorted(forward)[repeats // 2],
        "forward_backward_ms": 1e3 * sorted(backward)[repeats // 2],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by this script and ``trm-rl demo``."""
    parser.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--tokens", type=int, default=25, help="tokens, e.g. 25 = a 5x5 grid")
    parser.add_argument("--repeats", type=int, default=20, help="timed repetitions (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON output (default {RESULTS})")


def run(args: argparse.Namespace) -> int:
    """Measure the default config with every mixer, print a table, write JSON. ``"none"``
    runs on one token and ``"peers"`` on a 4x4 Sudoku grid (16 tokens); the others on
    ``--tokens``."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"default TRMConfig, batch {args.batch}, {args.threads} thread(s), seed {args.seed}")
    print(f"{'mixer':<10} {'tokens':>6} {'params':>8} {'forward ms':>11} {'fwd+bwd ms':>11}")
    for mixer in MIXERS:
        n_tokens = {"none": 1, "peers": 16}.get(mixer, args.tokens)
        row = measure(TRMConfig(mixer=mixer), n_tokens, args.batch, args.repeats)
        rows.append(row)
        print(
            f"{mixer:<10} {n_tokens:>6} {row['params']:>8} {row['forward_ms']:>11.2f} "
            f"{row['forward_backward_ms']:>11.2f}"
        )
    out = args.out or RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "seed": args.seed,
        "config": TRMConfig().to_dict(),
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(cli)
    raise SystemExit(run(cli.parse_args()))
