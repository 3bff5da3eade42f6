"""``trm-rl control {generate,train,analyze}``: supervised recursive control of Van der Pol."""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import fields
from pathlib import Path

from trm_rl.agents.control.data import TEACHERS, ControlDataset, generate_dataset
from trm_rl.agents.control.model import MODES, TOKEN_MIXERS, ControlModelConfig
from trm_rl.agents.control.train import OBJECTIVES, ControlTrainConfig
from trm_rl.atomic import atomic_write_text
from trm_rl.cli.dataclass_flags import add_dataclass_flags

CHOICES = {"mode": MODES, "mixer": TOKEN_MIXERS, "objective": OBJECTIVES}


def _writable_file(path: Path, overwrite: bool) -> None:
    """Check, before any work, that ``path`` can be written: not an existing file unless
    ``overwrite``, not a directory, its folder creatable and writable."""
    if path.is_dir():
        raise FileExistsError(f"--out {path} is a directory; name the .npz file to write")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"--out {path} exists; pass --overwrite to replace it, or choose another --out"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path.parent):
        pass


def _generate(args: argparse.Namespace) -> int:
    _writable_file(Path(args.out), args.overwrite)
    dataset = generate_dataset(
        args.n,
        teacher=args.teacher,
        seed=args.seed,
        target_range=args.target_range,
        workers=args.workers,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
    )
    path = dataset.save(args.out)
    gap = dataset.lqr_costs.mean() / dataset.costs.mean() - 1.0
    print(
        f"saved {path}: {len(dataset)} problems, teacher {dataset.teacher}, "
        f"mean cost {dataset.costs.mean():.3f}, LQR {100 * gap:+.3f}% vs teacher"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    from trm_rl.agents.control.train import train

    model = ControlModelConfig(
        **{f.name: getattr(args, f.name) for f in fields(ControlModelConfig)}
    )
    config = ControlTrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(ControlTrainConfig)}
    )
    train(model, config, overwrite=args.overwrite)
    print(f"saved {config.out}/model.pt, config.json and metrics.json")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from trm_rl.agents.control.analysis import plot_refinement, refinement_metrics
    from trm_rl.agents.control.controller import RecursiveController

    controller = RecursiveController.load(args.directory)
    if args.data:
        dataset = ControlDataset.load(args.data)
    else:
        dataset = generate_dataset(args.n, "optimal", seed=args.seed, progress=not args.no_progress)
    metrics = refinement_metrics(controller, dataset)
    out = Path(args.out or Path(args.directory) / "analysis")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "refinement.json", json.dumps(metrics, indent=2) + "\n")
    plot_refinement(metrics, out / "refinement.png", title=Path(args.directory).name)
    print(
        f"{metrics['problems']} problems: gap to {metrics['teacher']} {100 * metrics['gap']:+.3f}% "
        f"(LQR {100 * metrics['lqr_gap']:+.3f}%), success {100 * metrics['success_rate']:.1f}%, "
        f"monotone {100 * metrics['monotone_fraction']:.1f}%, cost per iteration "
        + " ".join(f"{c:.2f}" for c in metrics["mean_cost"])
        + f"; wrote {out}/refinement.json and refinement.png"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Attach ``control`` and its ``generate``, ``train`` and ``analyze`` subcommands."""
    control = subparsers.add_parser(
        "control", help="supervised recursive control of the Van der Pol oscillator"
    )
    commands = control.add_subparsers(dest="control_command", required=True, metavar="ACTION")

    generate = commands.add_parser("generate", help="solve random problems with a teacher")
    generate.add_argument("--n", type=int, required=True, help="number of problems")
    generate.add_argument(
        "--teacher", choices=TEACHERS, default="optimal", help="(default: optimal)"
    )
    generate.add_argument("--seed", type=int, default=0, help="problem seed (default: 0)")
    generate.add_argument(
        "--target-range",
        type=float,
        default=0.0,
        help="targets uniform in [-r, r]^2 (default: 0, the origin)",
    )
    generate.add_argument("--workers", type=int, default=1, help="processes (default: 1)")
    generate.add_argument(
        "--chunk-size",
        type=int,
        default=256,
        help="problems per joint L-BFGS-B solve (default: 256)",
    )
    generate.add_argument("--out", required=True, help="output .npz file")
    generate.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    generate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    generate.set_defaults(func=_generate)

    train = commands.add_parser("train", help="train a recursive controller on a dataset")
    for cls, title in ((ControlTrainConfig, "training"), (ControlModelConfig, "model")):
        add_dataclass_flags(train.add_argument_group(title), cls, CHOICES)
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in a non-empty --out (its model.pt, config.json, metrics.json, "
        "tb/ and analysis/)",
    )
    train.set_defaults(func=_train)

    analyze = commands.add_parser("analyze", help="refinement analysis on held-out problems")
    analyze.add_argument("directory", help="a `control train` output directory")
    analyze.add_argument(
        "--data", default="", help="held-out dataset (.npz); default: generate one"
    )
    analyze.add_argument("--n", type=int, default=256, help="problems to generate (default: 256)")
    analyze.add_argument(
        "--seed", type=int, default=12345, help="seed of the generated problems (default: 12345)"
    )
    analyze.add_argument("--out", default="", help="output directory (default: DIRECTORY/analysis)")
    analyze.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    analyze.set_defaults(func=_analyze)
