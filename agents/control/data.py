"""Teachers and datasets for supervised control of the Van der Pol oscillator.

Two teachers map an initial state ``s_0`` and a target ``s*`` to a control sequence
``u_0 .. u_{T-1}`` (``T = 100``, ``|u| <= 2``) for the problem of
:mod:`trm_rl.envs.dynamics` (its cost ``J``):

- ``"lqr"``: finite-horizon discrete LQR on the RK4 step linearised at the origin, run in
  closed loop on the nonlinear system with saturated controls (the TinyRecursiveControl
  teacher).
- ``"optimal"``: direct single shooting, ``min_u J(u)`` subject to ``|u| <= 2``, by
  ``scipy.optimize.minimize(method="L-BFGS-B")`` with gradients from the torch simulator
  (float64 autograd), warm-started from LQR. Problems are optimised in chunks: the chunk's
  costs are summed into one separable objective, which shares the per-call overhead of the
  simulator between problems and converges to each problem's optimum.

A :class:`ControlDataset` stores initial states, targets, the teacher's controls and
costs, and the LQR costs, as ``.npz``.
"""

from __future__ import annotations

import multiprocessing
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import torch
from tqdm.auto import tqdm

from trm_rl.atomic import atomic_path
from trm_rl.config import require_choice, require_int, require_number
from trm_rl.envs.dynamics import (
    DT,
    HORIZON,
    MU,
    Q_DEFAULT,
    Q_FINAL_SCALE,
    R_DEFAULT,
    U_MAX,
    rk4_step,
    rollout,
    trajectory_cost,
)
from trm_rl.envs.vanderpol import START_RANGE, STATE_LIMIT, TARGET_LIMIT

TEACHERS = ("lqr", "optimal")
COST_TOLERANCE = 1e-6
"""Relative tolerance between a dataset's stored costs and the costs simulated from its
controls."""


def linearization(mu: float = MU, dt: float = DT) -> tuple[np.ndarray, np.ndarray]:
    """Jacobians ``A [2, 2]``, ``B [2, 1]`` of the RK4 step at ``s = 0, u = 0``."""

    def step(state: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
        return torch.stack(rk4_step(state[0], state[1], control[0], dt, mu))

    zero = torch.zeros(2, dtype=torch.float64)
    A, B = torch.autograd.functional.jacobian(step, (zero, zero[:1]))
    return A.numpy(), B.numpy()


def lqr_gains(
    A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, Q_final: np.ndarray, horizon: int
) -> np.ndarray:
    """Finite-horizon discrete LQR by the backward Riccati recursion.

    For ``s_{t+1} = A s_t + B u_t`` and cost ``sum_t (s_t' Q s_t + u_t' R u_t) + s_T' Q_final
    s_T``, the optimal controls are ``u_t = -K_t s_t``.

    Args:
        A: ``[n, n]``; B: ``[n, m]``; Q, Q_final: ``[n, n]``; R: ``[m, m]``.
        horizon: T.

    Returns:
        ``[T, m, n]`` gains ``K_0 .. K_{T-1}``.
    """
    P = Q_final
    gains = []
    for _ in range(horizon):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
        gains.append(K)
    return np.stack(gains[::-1])


def lqr_controls(states: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """The LQR teacher's controls, ``[N, 2]`` states (and targets) -> ``[N, T]``.

    The closed loop ``u_t = clip(x* - K_t (s_t - s*), -2, 2)`` runs on the nonlinear
    dynamics; ``x*`` is the control that holds the oscillator at rest at ``(x*, 0)``, so
    the teacher is exact in the linear regime only for targets with ``v* = 0``.
    """
    A, B = linearization()
    gains = lqr_gains(A, B, Q_DEFAULT, np.array([[R_DEFAULT]]), Q_FINAL_SCALE * Q_DEFAULT, HORIZON)[
        :, 0, :
    ]
    targets = np.zeros_like(states) if targets is None else targets
    x, v = states[:, 0].astype(np.float64), states[:, 1].astype(np.float64)
    controls = []
    for k_x, k_v in gains:
        u = np.clip(
            targets[:, 0] - k_x * (x - targets[:, 0]) - k_v * (v - targets[:, 1]), -U_MAX, U_MAX
        )
        controls.append(u)
        x, v = rk4_step(x, v, u, DT, MU)
    return np.stack(controls, axis=1)


def problem_costs(
    states: np.ndarray, controls: np.ndarray, targets: np.ndarray | None = None
) -> np.ndarray:
    """Cost ``J`` of each problem, simulated in float64: ``[N, 2]``, ``[N, T]`` -> ``[N]``."""
    states64 = torch.as_tensor(states, dtype=torch.float64)
    controls64 = torch.as_tensor(controls, dtype=torch.float64)
    targets64 = None if targets is None else torch.as_tensor(targets, dtype=torch.float64)
    with torch.no_grad():
        return trajectory_cost(rollout(states64, controls64), controls64, targets64).numpy()


def optimal_controls(
    states: np.ndarray,
    targets: np.ndarray | None = None,
    initial: np.ndarray | None = None,
    max_iterations: int = 5000,
) -> np.ndarray:
    """Locally optimal controls by direct shooting with L-BFGS-B, ``[N, 2] -> [N, T]``.

    Args:
        states: ``[N, 2]`` initial states.
        targets: ``[N, 2]`` targets, ``None`` for the origin.
        initial: ``[N, T]`` starting guess; ``None`` for the LQR teacher's controls.
        max_iterations: L-BFGS-B iteration cap (it normally stops earlier, when the summed
            cost stops decreasing at float64 precision).
    """
    initial = lqr_controls(states, targets) if initial is None else initial
    batch = len(states)
    states64 = torch.as_tensor(states, dtype=torch.float64)
    targets64 = None if targets is None else torch.as_tensor(targets, dtype=torch.float64)

    def cost_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        controls = torch.tensor(flat.reshape(batch, -1), requires_grad=True)
        cost = trajectory_cost(rollout(states64, controls), controls, targets64).sum()
        cost.backward()
        return cost.item(), controls.grad.numpy().ravel()

    result = scipy.optimize.minimize(
        cost_and_gradient,
        np.asarray(initial, dtype=np.float64).ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(-U_MAX, U_MAX),
        options={
            "maxiter": max_iterations,
            "maxfun": 2 * max_iterations,
            "maxcor": 20,
            "ftol": 1e-15,
            "gtol": 1e-9,
        },
    )
    return result.x.reshape(batch, -1)


@dataclass(frozen=True)
class ControlDataset:
    """Problems with a teacher's solutions, validated on construction.

    Attributes:
        states: ``[N, 2]`` float64 initial states, ``N >= 1``, ``|x|, |v| <= 4``.
        targets: ``[N, 2]`` float64 targets, ``|x|, |v| <= 3``.
        controls: ``[N, T]`` float64 teacher controls in ``[-2, 2]``, ``T = 100``.
        costs: ``[N]`` cost ``J`` of the teacher's controls: positive, and equal (to a
            relative ``1e-6``) to the cost simulated from ``states``, ``controls`` and
            ``targets``.
        lqr_costs: ``[N]`` cost of the LQR teacher's controls (equal to ``costs`` for
            it), positive.
        teacher: ``"lqr"`` or ``"optimal"``.
        seed: seed of the problem generator.

    Raises:
        ValueError: naming the field and the problem (shape, a non-finite value, a cost
            <= 0 or not that of the controls, a control out of bounds).
    """

    states: np.ndarray
    targets: np.ndarray
    controls: np.ndarray
    costs: np.ndarray
    lqr_costs: np.ndarray
    teacher: str
    seed: int

    def __post_init__(self) -> None:
        require_choice("teacher", self.teacher, TEACHERS)
        require_int("seed", self.seed, 0)
        for name in ("states", "targets", "controls", "costs", "lqr_costs"):
            object.__setattr__(self, name, _float_array(name, getattr(self, name)))
        n = len(self.states)
        if n == 0:
            raise ValueError("a control dataset needs at least one problem; states is empty")
        expected = {
            "states": (n, 2),
            "targets": (n, 2),
            "controls": (n, HORIZON),
            "costs": (n,),
            "lqr_costs": (n,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape} (N = {n} problems from states [N, 2], "
                    f"T = {HORIZON} steps), got {getattr(self, name).shape}"
                )
            _require_finite(name, getattr(self, name))
        for name, limit in (("states", STATE_LIMIT), ("targets", TARGET_LIMIT)):
            outside = np.abs(getattr(self, name)).max(1) > limit
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                raise ValueError(
                    f"{name} must satisfy |x|, |v| <= {limit} (the limits of TRM-VanDerPol-v0 "
                    f"and of RecursiveController.plan); problem {row} has "
                    f"{getattr(self, name)[row].tolist()}"
                )
        if np.abs(self.controls).max() > U_MAX:
            row = int(np.abs(self.controls).max(1).argmax())
            raise ValueError(f"controls must lie in [-{U_MAX}, {U_MAX}]; problem {row} does not")
        for name in ("costs", "lqr_costs"):
            values = getattr(self, name)
            if (values <= 0.0).any():
                row = int(np.flatnonzero(values <= 0.0)[0])
                raise ValueError(
                    f"{name} must be > 0 (training divides by them), got {values[row]} at "
                    f"problem {row}"
                )
        simulated = problem_costs(self.states, self.controls, self.targets)
        wrong = ~np.isclose(self.costs, simulated, rtol=COST_TOLERANCE, atol=0.0)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise ValueError(
                f"costs must be the simulated cost of the controls; {int(wrong.sum())} are "
                f"not (problem {row}: stored {self.costs[row]:.6g}, simulated "
                f"{simulated[row]:.6g})"
            )

    def __len__(self) -> int:
        return len(self.states)

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` atomically (a temporary file moved over ``path``, so
        an interrupted save never leaves a truncated file); returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = asdict(self)
        fields["teacher"] = np.array(self.teacher)
        fields["seed"] = np.array(self.seed)
        with atomic_path(path) as temporary, temporary.open("wb") as file:
            np.savez_compressed(file, **fields)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ControlDataset:
        """Read and validate a dataset written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a readable ``.npz`` (truncated, corrupt, another
                format), lacks a field, or fails the checks of the class; the message names
                the file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no control dataset at {path} (make one with `trm-rl control generate`)"
            )
        try:
            with np.load(path) as data:
                missing = set(cls.__dataclass_fields__) - set(data.files)
                if missing:
                    raise ValueError(f"not a control dataset: missing {sorted(missing)}")
                fields: dict[str, Any] = {name: data[name] for name in cls.__dataclass_fields__}
            fields["teacher"] = str(fields["teacher"])
            fields["seed"] = int(fields["seed"])
            return cls(**fields)
        except PermissionError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            reason = str(error) or type(error).__name__
            raise ValueError(
                f"{path} is not a readable control dataset (.npz, truncated or corrupt?): {reason}"
            ) from error
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: {error}") from error


def _float_array(name: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers, got {value!r:.80}") from error


def _require_finite(name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} must be finite; problem {row} has {array[row].ravel()[:4]}")


def _solve_chunk(chunk: tuple[np.ndarray, np.ndarray, str]) -> tuple[np.ndarray, np.ndarray]:
    """Teacher controls and LQR controls of one chunk of problems."""
    torch.set_num_threads(1)
    states, targets, teacher = chunk
    lqr = lqr_controls(states, targets)
    solved = lqr if teacher == "lqr" else optimal_controls(states, targets, initial=lqr)
    return solved, lqr


def generate_dataset(
    n: int,
    teacher: str = "optimal",
    seed: int = 0,
    target_range: float = 0.0,
    workers: int = 1,
    chunk_size: int = 256,
    progress: bool = True,
) -> ControlDataset:
    """Draw ``n`` problems from ``seed`` and solve them with the teacher.

    Args:
        n: number of problems, >= 1.
        teacher: ``"lqr"`` or ``"optimal"``.
        seed: seed of the initial states (uniform in ``[-2, 2]^2``) and targets.
        target_range: targets uniform in ``[-target_range, target_range]^2`` (0: origin).
        workers: processes solving chunks in parallel (1: in this process).
        chunk_size: problems per joint L-BFGS-B solve; larger chunks share more overhead.
        progress: show a tqdm progress bar (problems solved).
    """
    for name, value in (("n", n), ("workers", workers), ("chunk_size", chunk_size)):
        require_int(name, value, 1)
    require_int("seed", seed, 0)
    require_choice("teacher", teacher, TEACHERS)
    require_number("target_range", target_range, 0.0, START_RANGE)
    rng = np.random.default_rng(seed)
    states = rng.uniform(-START_RANGE, START_RANGE, (n, 2))
    targets = rng.uniform(-target_range, target_range, (n, 2))
    starts = range(0, n, chunk_size)
    chunks = [(states[i : i + chunk_size], targets[i : i + chunk_size], teacher) for i in starts]
    bar = tqdm(total=n, desc=f"{teacher} teacher", unit="problem", disable=not progress)
    results = []
    if workers == 1:
        for chunk in chunks:
            results.append(_solve_chunk(chunk))
            bar.update(len(chunk[0]))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            for chunk, result in zip(chunks, pool.map(_solve_chunk, chunks), strict=True):
                results.append(result)
                bar.update(len(chunk[0]))
    bar.close()
    controls = np.concatenate([solved for solved, _ in results])
    lqr = np.concatenate([lqr for _, lqr in results])
    return ControlDataset(
        states=states,
        targets=targets,
        controls=controls,
        costs=problem_costs(states, controls, targets),
        lqr_costs=problem_costs(states, lqr, targets),
        teacher=teacher,
        seed=seed,
    )
