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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import torch
from tqdm.auto import tqdm

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

TEACHERS = ("lqr", "optimal")
START_RANGE = 2.0
"""Initial states are uniform in ``[-START_RANGE, START_RANGE]^2`` (as the environment)."""


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
    """Problems with a teacher's solutions.

    Attributes:
        states: ``[N, 2]`` float64 initial states.
        targets: ``[N, 2]`` float64 targets.
        controls: ``[N, T]`` float64 teacher controls in ``[-2, 2]``.
        costs: ``[N]`` cost ``J`` of the teacher's controls.
        lqr_costs: ``[N]`` cost of the LQR teacher's controls (equal to ``costs`` for it).
        teacher: ``"lqr"`` or ``"optimal"``.
        seed: seed of the problem generator.
    """

    states: np.ndarray
    targets: np.ndarray
    controls: np.ndarray
    costs: np.ndarray
    lqr_costs: np.ndarray
    teacher: str
    seed: int

    def __len__(self) -> int:
        return len(self.states)

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz``; returns its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = asdict(self)
        fields["teacher"] = np.array(self.teacher)
        fields["seed"] = np.array(self.seed)
        with path.open("wb") as file:
            np.savez_compressed(file, **fields)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ControlDataset:
        """Read a dataset written by :meth:`save`."""
        with np.load(path) as data:
            missing = set(cls.__dataclass_fields__) - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a control dataset: missing {sorted(missing)}")
            fields: dict[str, Any] = {name: data[name] for name in cls.__dataclass_fields__}
        fields["teacher"] = str(fields["teacher"])
        fields["seed"] = int(fields["seed"])
        return cls(**fields)


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
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}, got {teacher!r}")
    if not 0.0 <= target_range <= START_RANGE:
        raise ValueError(f"target_range must be in [0, {START_RANGE}], got {target_range}")
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
