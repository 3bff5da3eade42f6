"""Van der Pol oscillator: one vector field and one RK4 step for floats and torch tensors.

The controlled oscillator, with state ``s = (x, v)`` and control ``u``::

    x' = v
    v' = mu (1 - x^2) v - x + u

is integrated with the classical fourth-order Runge-Kutta method and a zero-order hold
on ``u`` over each step of ``dt`` seconds. :func:`vector_field` and :func:`rk4_step` use
arithmetic only, so the same code runs on Python floats (the environment's fast path) and
on torch tensors of any shape and dtype (the batched, differentiable simulator
:func:`rollout`).

The quadratic tracking cost of a trajectory ``s_0 .. s_N`` under controls ``u_0 .. u_{N-1}``
towards a target ``s*`` (no ``dt`` factor)::

    J = sum_{t<N} [(s_t - s*)' Q (s_t - s*) + R u_t^2] + (s_N - s*)' Q_f (s_N - s*)

with defaults ``Q = diag(10, 5)``, ``R = 0.5``, ``Q_f = 20 Q`` (the TinyRecursiveControl
Van der Pol problem).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from trm_rl.envs.options import checked_number

MU = 1.0
"""Damping parameter mu."""
DT = 0.05
"""Integration (and control hold) step, seconds."""
HORIZON = 100
"""Control steps per problem (5 s)."""
U_MAX = 2.0
"""Control bound: ``|u| <= U_MAX``."""
Q_DEFAULT = np.diag([10.0, 5.0])
"""Default state weight Q."""
R_DEFAULT = 0.5
"""Default control weight R."""
Q_FINAL_SCALE = 20.0
"""Default terminal weight: ``Q_f = Q_FINAL_SCALE * Q``."""

Number = TypeVar("Number", float, Tensor)


def vector_field(x: Number, v: Number, u: Number, mu: float) -> tuple[Number, Number]:
    """Time derivative ``(x', v')`` of the controlled Van der Pol oscillator.

    Args:
        x, v: position and velocity (floats, or tensors of one shape).
        u: control, same kind and shape as ``x``.
        mu: damping parameter.
    """
    return v, mu * (1.0 - x * x) * v - x + u


def rk4_step(x: Number, v: Number, u: Number, dt: float, mu: float) -> tuple[Number, Number]:
    """One RK4 step of ``dt`` seconds with ``u`` held constant; returns the next ``(x, v)``."""
    half = 0.5 * dt
    k1x, k1v = vector_field(x, v, u, mu)
    k2x, k2v = vector_field(x + half * k1x, v + half * k1v, u, mu)
    k3x, k3v = vector_field(x + half * k2x, v + half * k2v, u, mu)
    k4x, k4v = vector_field(x + dt * k3x, v + dt * k3v, u, mu)
    sixth = dt / 6.0
    return (
        x + sixth * (k1x + 2.0 * k2x + 2.0 * k3x + k4x),
        v + sixth * (k1v + 2.0 * k2v + 2.0 * k3v + k4v),
    )


def simulate(
    state: tuple[float, float], controls: np.ndarray, mu: float = MU, dt: float = DT
) -> np.ndarray:
    """Scalar (float) rollout of one problem.

    Args:
        state: initial ``(x, v)``.
        controls: ``[T]`` controls, one per step.
        mu, dt: damping and step (seconds).

    Returns:
        ``[T + 1, 2]`` float64 states ``s_0 .. s_T``.
    """
    x, v = float(state[0]), float(state[1])
    trajectory = [(x, v)]
    for u in np.asarray(controls, dtype=np.float64).ravel().tolist():
        x, v = rk4_step(x, v, u, dt, mu)
        trajectory.append((x, v))
    return np.asarray(trajectory)


def rollout(states: Tensor, controls: Tensor, mu: float = MU, dt: float = DT) -> Tensor:
    """Batched differentiable rollout of whole control sequences.

    Args:
        states: ``[B, 2]`` initial states ``(x, v)``, floating dtype.
        controls: ``[B, T]`` controls, same dtype and device.
        mu, dt: damping and step (seconds).

    Returns:
        ``[B, T + 1, 2]`` states ``s_0 .. s_T``; gradients flow to ``states`` and
        ``controls``. Without gradients to track, CPU tensors are integrated in numpy
        (identical numbers, a fraction of the time).
    """
    if not isinstance(states, Tensor) or not isinstance(controls, Tensor):
        raise TypeError(
            f"states and controls must be torch.Tensors, got {type(states).__name__} and "
            f"{type(controls).__name__}"
        )
    if states.dim() != 2 or states.shape[1] != 2:
        raise ValueError(f"states must have shape [B, 2], got {tuple(states.shape)}")
    if controls.dim() != 2 or controls.shape[0] != states.shape[0]:
        raise ValueError(
            f"controls must have shape [B, T] with B = {states.shape[0]}, "
            f"got {tuple(controls.shape)}"
        )
    tracked = torch.is_grad_enabled() and (states.requires_grad or controls.requires_grad)
    if not tracked and states.device.type == "cpu" and controls.device.type == "cpu":
        arrays = states.detach().numpy(), controls.detach().numpy()
        return torch.from_numpy(_rollout_arrays(*arrays, mu, dt))
    x, v = states.unbind(1)
    xs, vs = [x], [v]
    for u in controls.unbind(1):
        x, v = rk4_step(x, v, u, dt, mu)
        xs.append(x)
        vs.append(v)
    return torch.stack((torch.stack(xs, 1), torch.stack(vs, 1)), dim=2)


def _rollout_arrays(states: np.ndarray, controls: np.ndarray, mu: float, dt: float) -> np.ndarray:
    """:func:`rollout` on numpy arrays: the same float operations in the same order (equal
    results), without autograd's per-operation cost (about 4x faster on a CPU)."""
    trajectory = np.empty((states.shape[0], controls.shape[1] + 1, 2), dtype=states.dtype)
    trajectory[:, 0] = states
    x, v = states[:, 0], states[:, 1]
    for t in range(controls.shape[1]):
        x, v = rk4_step(x, v, controls[:, t], dt, mu)
        trajectory[:, t + 1, 0] = x
        trajectory[:, t + 1, 1] = v
    return trajectory


def cost_matrix(name: str, value: object) -> np.ndarray:
    """Validate a cost weight: a symmetric positive semi-definite ``2 x 2`` matrix, or its
    diagonal as 2 numbers. Returns a ``[2, 2]`` float64 array."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a 2x2 matrix or 2 numbers, got {value!r}") from error
    if matrix.shape == (2,):
        matrix = np.diag(matrix)
    if matrix.shape != (2, 2):
        raise ValueError(f"{name} must be a 2x2 matrix or 2 numbers, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite, got {matrix.tolist()}")
    if not np.allclose(matrix, matrix.T):
        raise ValueError(f"{name} must be symmetric, got {matrix.tolist()}")
    if np.linalg.eigvalsh(matrix).min() < 0.0:
        raise ValueError(f"{name} must be positive semi-definite, got {matrix.tolist()}")
    return matrix


def control_weight(value: object) -> float:
    """Validate the control weight R: a finite number >= 0."""
    return checked_number("R", value, 0.0)


def trajectory_cost(
    trajectory: Tensor,
    controls: Tensor,
    targets: Tensor | None = None,
    Q: object = Q_DEFAULT,
    R: float = R_DEFAULT,
    Q_final: object | None = None,
) -> Tensor:
    """Quadratic tracking cost ``J`` of batched trajectories (see the module docstring).

    Args:
        trajectory: ``[B, T + 1, 2]`` states ``s_0 .. s_T`` (as from :func:`rollout`).
        controls: ``[B, T]`` controls ``u_0 .. u_{T-1}``.
        targets: ``[B, 2]`` targets ``s*``; ``None`` for the origin.
        Q: state weight (2x2 symmetric PSD, or its diagonal).
        R: control weight, >= 0.
        Q_final: terminal weight; ``None`` for ``Q_FINAL_SCALE * Q``.

    Returns:
        ``[B]`` costs, differentiable in ``trajectory``, ``controls`` and ``targets``.
    """
    if trajectory.dim() != 3 or trajectory.shape[2] != 2:
        raise ValueError(f"trajectory must have shape [B, T + 1, 2], got {tuple(trajectory.shape)}")
    batch, steps = trajectory.shape[0], trajectory.shape[1] - 1
    if tuple(controls.shape) != (batch, steps):
        raise ValueError(
            f"controls must have shape [{batch}, {steps}] to match the trajectory, "
            f"got {tuple(controls.shape)}"
        )
    Q = cost_matrix("Q", Q)
    Q_final = Q_FINAL_SCALE * Q if Q_final is None else cost_matrix("Q_final", Q_final)
    R = control_weight(R)
    error = trajectory
    if targets is not None:
        if tuple(targets.shape) != (batch, 2):
            raise ValueError(f"targets must have shape [{batch}, 2], got {tuple(targets.shape)}")
        error = trajectory - targets.unsqueeze(1)
    weights = torch.as_tensor(np.stack((Q, Q_final)), dtype=error.dtype, device=error.device)
    stage = torch.einsum("bti,ij,btj->b", error[:, :-1], weights[0], error[:, :-1])
    final = torch.einsum("bi,ij,bj->b", error[:, -1], weights[1], error[:, -1])
    return stage + R * controls.square().sum(1) + final
