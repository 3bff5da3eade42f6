"""Supervised training of the recursive controller on a Van der Pol dataset.

TRM's deep supervision: for every minibatch, the model runs its ``K + 1`` iterations one
at a time from the detached carry, and each iteration ``k`` gets its own loss, backward
pass and optimiser update (``K + 1`` updates per minibatch). With the teacher's controls
``u*`` and cost ``J*``, iteration ``k``'s controls ``u_k`` and their cost ``J_k`` from the
differentiable simulator (costs are scaled by the minibatch's mean teacher cost, written
``/ J*`` below: the batch mean of ``J_k / J*`` is then the ratio of mean costs the
benchmark reports, whereas per-problem ratios would let problems near the target, whose
``J*`` is tiny, dominate), the objectives are:

- ``"bc"`` (behaviour cloning): ``MSE(u_k, u*)``.
- ``"process"`` (the write-up's process supervision): ``MSE(u_k, u*) - lambda (J_{k-1} -
  J_k) / J*``, rewarding the cost improvement.
- ``"cost"`` (direct cost objective): ``J_k / J* + monotone_weight relu(J_k - J_{k-1}) / J*
  + teacher_weight MSE(u_k, u*)``, the last an optional warm-start term. It can beat its
  teacher.

``J_{k-1}`` (detached) is the cost of the plan that iteration ``k`` refines: the last
accepted plan with the model's safeguard, the zero plan for ``k = 0``.

With a value head, ``value_weight * MSE(value_k, log(1 + J_k))`` is added. AdamW with
linear warm-up and cosine decay, gradient-norm clipping, and an exponential moving average
of the weights (the saved and evaluated model); TensorBoard scalars under ``OUT/tb``.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from trm_rl.agents.control.controller import RecursiveController
from trm_rl.agents.control.data import ControlDataset
from trm_rl.agents.control.model import (
    ControlModelConfig,
    IterationOutput,
    RecursiveControlModel,
)
from trm_rl.atomic import atomic_write_text
from trm_rl.config import require_bool, require_choice, require_int, require_number
from trm_rl.envs.dynamics import trajectory_cost

OBJECTIVES = ("bc", "process", "cost")
SUCCESS_TOLERANCE = 0.1
"""A plan succeeds when its final state is within this distance of the target."""
RUN_FILES = ("model.pt", "config.json", "metrics.json", "tb", "analysis")
"""What :func:`train` (and ``trm-rl control analyze``, in ``analysis/``) writes into a run
directory: what ``overwrite`` removes before a new run."""


class TrainingDiverged(ValueError):
    """A loss, a gradient norm or a weight became NaN or infinite during training (the data
    or the hyperparameters, typically too high a learning rate, drive it there); nothing
    is saved."""


def prepare_output(out: str | Path, overwrite: bool = False) -> Path:
    """Create ``out`` and check it can be written, before any work.

    An existing non-empty ``out`` is refused unless ``overwrite``; with it, the files a
    previous run wrote there (:data:`RUN_FILES`) are removed and anything else is left.

    Raises:
        FileExistsError: ``out`` is a file, or a non-empty directory without ``overwrite``.
        PermissionError: ``out`` cannot be created or written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"--out {out} already holds files (a previous run?); pass --overwrite "
                "(overwrite=True) to replace its run, or choose another --out"
            )
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out):
        pass
    return out


def _require_finite(value: float, what: str, batch: int, iteration: int) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"training diverged: {what} is {value} at batch {batch}, iteration {iteration}; "
            "nothing was saved (lower --learning-rate or check the dataset)"
        )


@dataclass(frozen=True)
class ControlTrainConfig:
    """Training of a :class:`RecursiveControlModel` (every field is a ``--flag``)."""

    data: str = ""
    """Training dataset (``.npz`` from ``trm-rl control generate``)."""
    out: str = "runs/control"
    """Output directory: model.pt, config.json, metrics.json, tb/."""
    val_data: str = ""
    """Validation dataset (another seed), evaluated every ``eval_every`` batches; "" for none."""
    objective: str = "cost"
    """"bc", "process" or "cost" (see the module docstring)."""
    batches: int = 600
    """Minibatches; each makes one optimiser update per iteration (K + 1)."""
    batch_size: int = 256
    """Problems per minibatch, sampled with replacement."""
    learning_rate: float = 2e-3
    """AdamW peak step size."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_updates: int = 100
    """Updates of linear warm-up; then cosine decay to 10% of the peak."""
    max_grad_norm: float = 1.0
    """Clip the gradient norm to this value."""
    ema_decay: float = 0.998
    """Decay (per update) of the weights' exponential moving average (0: no averaging)."""
    process_weight: float = 0.1
    """lambda of the process-supervision improvement term."""
    monotone_weight: float = 3.0
    """Weight of the penalty on cost increases between iterations ("cost")."""
    teacher_weight: float = 10.0
    """Weight of the warm-start term MSE(u_k, u*) ("cost")."""
    value_weight: float = 0.01
    """Weight of the value head's loss (models with a value head)."""
    eval_every: int = 50
    """Minibatches between validation evaluations."""
    seed: int = 0
    """Seed of the initial weights and the minibatches."""
    tensorboard: bool = True
    """Write TensorBoard scalars to OUT/tb."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        require_choice("objective", self.objective, OBJECTIVES)
        for name in ("batches", "batch_size", "eval_every"):
            require_int(name, getattr(self, name), 1)
        require_int("warmup_updates", self.warmup_updates, 0)
        require_number("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        require_number("ema_decay", self.ema_decay, 0.0, 0.99999)
        for name in (
            "weight_decay",
            "max_grad_norm",
            "process_weight",
            "monotone_weight",
            "teacher_weight",
            "value_weight",
        ):
            require_number(name, getattr(self, name), 0.0)
        require_bool("tensorboard", self.tensorboard)
        require_bool("progress", self.progress)
        if not self.data:
            raise ValueError("data must name a training dataset (.npz from `control generate`)")


@dataclass(frozen=True)
class Batch:
    """Problems as float32 tensors: states, targets ``[B, 2]``, teacher controls ``[B, T]``
    and teacher costs ``[B]``."""

    states: Tensor
    targets: Tensor
    controls: Tensor
    costs: Tensor

    @classmethod
    def from_dataset(cls, dataset: ControlDataset) -> Batch:
        arrays = (dataset.states, dataset.targets, dataset.controls, dataset.costs)
        return cls(*(torch.as_tensor(a, dtype=torch.float32) for a in arrays))

    def __getitem__(self, index: Tensor) -> Batch:
        return Batch(
            self.states[index], self.targets[index], self.controls[index], self.costs[index]
        )


def iteration_loss(
    config: ControlTrainConfig,
    batch: Batch,
    output: IterationOutput,
    previous: Tensor,
) -> tuple[Tensor, dict[str, float]]:
    """Loss of one iteration's proposal (see the module docstring).

    Args:
        batch: the problems and their teacher.
        output: the iteration's proposal (controls, cost, value, with gradients).
        previous: ``[B]`` cost of the plan it refines (detached).

    Returns:
        (loss, logged parts).
    """
    scale = batch.costs.mean()
    relative = output.cost / scale
    change = relative - previous / scale
    imitation = (output.controls - batch.controls).square().mean()
    if config.objective == "bc":
        loss = imitation
    elif config.objective == "process":
        loss = imitation + config.process_weight * change.mean()
    else:
        loss = (
            relative.mean()
            + config.monotone_weight * torch.relu(change).mean()
            + config.teacher_weight * imitation
        )
    parts = {
        "relative_cost": relative.mean().item(),
        "imitation": imitation.item(),
        "accepted": output.accepted.float().mean().item(),
    }
    if output.value is not None:
        value_loss = (output.value - torch.log1p(output.cost.detach())).square().mean()
        loss = loss + config.value_weight * value_loss
        parts["value_loss"] = value_loss.item()
    return loss, parts


def evaluate(model: RecursiveControlModel, problems: Batch) -> dict[str, float]:
    """Quick float32 metrics of the final iteration on a dataset of problems."""
    model.eval()
    with torch.no_grad():
        output = model(problems.states, problems.targets)
    model.train()
    iterations = output.controls.shape[0]
    costs = trajectory_cost(
        output.trajectories.flatten(0, 1),
        output.controls.flatten(0, 1),
        problems.targets.repeat(iterations, 1),
    ).view(iterations, -1)
    final = output.trajectories[-1, :, -1] - problems.targets
    return {
        "gap": (costs[-1].sum() / problems.costs.sum()).item() - 1.0,
        "success": (final.norm(dim=1) < SUCCESS_TOLERANCE).float().mean().item(),
        "monotone": (costs[1:] <= costs[:-1]).all(0).float().mean().item(),
    }


def _schedule(config: ControlTrainConfig, total_updates: int):
    def factor(update: int) -> float:
        if update < config.warmup_updates:
            return (update + 1) / config.warmup_updates
        progress = (update - config.warmup_updates) / max(1, total_updates - config.warmup_updates)
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(
    model_config: ControlModelConfig, config: ControlTrainConfig, overwrite: bool = False
) -> RecursiveController:
    """Train, save ``config.out`` (see :class:`RecursiveController`) and return the
    controller with the averaged weights.

    ``config.out`` is checked first (:func:`prepare_output`): a non-empty directory is
    refused unless ``overwrite``. The datasets are validated on loading
    (:meth:`ControlDataset.load`).

    Raises:
        TrainingDiverged: a loss, gradient norm or weight became non-finite; the message
            names the batch (1-based), the iteration and the value; nothing is saved.
    """
    require_bool("overwrite", overwrite)
    out = prepare_output(config.out, overwrite)
    torch.manual_seed(config.seed)
    data = Batch.from_dataset(ControlDataset.load(config.data))
    val = Batch.from_dataset(ControlDataset.load(config.val_data)) if config.val_data else None
    model = RecursiveControlModel(model_config)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    iterations = model_config.iterations + 1
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _schedule(config, config.batches * iterations)
    )
    generator = torch.Generator().manual_seed(config.seed)
    writer = SummaryWriter(out / "tb") if config.tensorboard else None
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    bar = tqdm(
        range(config.batches), desc=f"control {config.objective}", disable=not config.progress
    )
    try:
        for step in bar:
            batch = data[torch.randint(len(data.states), (config.batch_size,), generator=generator)]
            targets, state = model.start(batch.states, batch.targets)
            for k in range(iterations):
                output = model.iterate(batch.states, targets, state)
                loss, parts = iteration_loss(config, batch, output, state.cost)
                _require_finite(loss.item(), "the loss", step + 1, k)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                _require_finite(grad_norm.item(), "the gradient norm", step + 1, k)
                optimizer.step()
                scheduler.step()
                ema.update_parameters(model)
                state = output.state
                weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
                _require_finite(weights.abs().max().item(), "the largest weight", step + 1, k)
                if writer is not None:
                    writer.add_scalar("train/grad_norm", grad_norm.item(), step * iterations + k)
                    for name, value in {"loss": loss.item(), **parts}.items():
                        writer.add_scalar(f"train/{name}_{k}", value, step)
            if writer is not None:
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
            if val is not None and (
                (step + 1) % config.eval_every == 0 or step + 1 == config.batches
            ):
                history.append({"batch": step + 1, **evaluate(ema.module, val)})
                bar.set_postfix(
                    gap=f"{history[-1]['gap']:.4f}", success=f"{history[-1]['success']:.3f}"
                )
                if writer is not None:
                    for name in ("gap", "success", "monotone"):
                        writer.add_scalar(f"val/{name}", history[-1][name], step + 1)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - start
    controller = RecursiveController(ema.module)
    parameters = sum(p.numel() for p in ema.module.parameters())
    metadata = {"train": asdict(config), "parameters": parameters, "train_seconds": seconds}
    controller.save(out, metadata)
    atomic_write_text(
        out / "metrics.json", json.dumps({**metadata, "val": history}, indent=2) + "\n"
    )
    return controller
