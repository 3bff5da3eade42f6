"""IPOPT on the Van der Pol problems: the reference solver for the control benchmark's
planning times (needs the ``ipopt`` extra: ``pip install "trm-rl[ipopt]"``, CasADi).

The problem of :mod:`trm_rl.envs.dynamics` as a direct multiple-shooting NLP: variables
``u_0 .. u_{T-1}`` (bounds ``[-2, 2]``) and ``s_1 .. s_T``, equality constraints
``s_{t+1} = RK4(s_t, u_t)`` (the same step as the simulator, ``dt = 0.05``), objective the
tracking cost ``J``; the initial state and the target are NLP parameters, so the problem is
built once and each solve is one call. IPOPT (CasADi's, exact Hessians by automatic
differentiation, ``tol`` 1e-8) starts from the LQR teacher's controls and their simulated
states, the standard warm start for this problem.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from trm_rl.agents.control.data import lqr_controls
from trm_rl.envs.dynamics import (
    DT,
    HORIZON,
    MU,
    Q_DEFAULT,
    Q_FINAL_SCALE,
    R_DEFAULT,
    U_MAX,
    rk4_step,
    simulate,
)
from trm_rl.optional import require

TOLERANCE = 1e-8
"""IPOPT's convergence tolerance (its default)."""


@dataclass(frozen=True)
class IpoptResult:
    """Solutions of a batch of problems, solved one after the other."""

    controls: np.ndarray
    """``[N, T]`` float64 controls in ``[-2, 2]``."""
    seconds_per_problem: float
    """Mean wall time of one solve (the NLP is built once, before timing)."""
    iterations: np.ndarray
    """``[N]`` IPOPT iterations per problem."""
    converged: np.ndarray
    """``[N]`` bool, IPOPT reported success."""


class IpoptSolver:
    """Solves Van der Pol problems with IPOPT; see the module docstring."""

    def __init__(self, tolerance: float = TOLERANCE) -> None:
        casadi = require("casadi", "IPOPT in the control benchmark")
        controls = casadi.SX.sym("u", HORIZON)
        states = casadi.SX.sym("s", 2, HORIZON)
        problem = casadi.SX.sym("p", 4)
        start, target = problem[:2], problem[2:]
        q, q_final = Q_DEFAULT, Q_FINAL_SCALE * Q_DEFAULT

        def stage(state, weights):
            error = state - target
            return casadi.mtimes([error.T, casadi.DM(weights), error])

        cost, gaps, previous = 0, [], start
        for t in range(HORIZON):
            cost += stage(previous, q) + R_DEFAULT * controls[t] ** 2
            x, v = rk4_step(previous[0], previous[1], controls[t], DT, MU)
            gaps.append(states[:, t] - casadi.vertcat(x, v))
            previous = states[:, t]
        cost += stage(previous, q_final)
        variables = casadi.vertcat(controls, casadi.vec(states))
        self._solver = casadi.nlpsol(
            "vanderpol",
            "ipopt",
            {"x": variables, "p": problem, "f": cost, "g": casadi.vertcat(*gaps)},
            {"ipopt.print_level": 0, "ipopt.sb": "yes", "ipopt.tol": tolerance, "print_time": 0},
        )
        self._lower = np.concatenate([np.full(HORIZON, -U_MAX), np.full(2 * HORIZON, -np.inf)])
        self._upper = -self._lower

    def solve(self, states: np.ndarray, targets: np.ndarray | None = None) -> IpoptResult:
        """Solve each problem from its LQR warm start: ``[N, 2]`` states (and targets)."""
        states = np.asarray(states, dtype=np.float64)
        targets = np.zeros_like(states) if targets is None else np.asarray(targets, np.float64)
        initial = lqr_controls(states, targets)
        solutions, iterations, converged, seconds = [], [], [], 0.0
        for state, target, guess in zip(states, targets, initial, strict=True):
            trajectory = simulate(state, guess)[1:]
            start = np.concatenate([guess, trajectory.ravel()])
            clock = time.perf_counter()
            answer = self._solver(
                x0=start,
                p=np.concatenate([state, target]),
                lbx=self._lower,
                ubx=self._upper,
                lbg=0.0,
                ubg=0.0,
            )
            seconds += time.perf_counter() - clock
            stats = self._solver.stats()
            solutions.append(np.clip(np.asarray(answer["x"]).ravel()[:HORIZON], -U_MAX, U_MAX))
            iterations.append(stats["iter_count"])
            converged.append(bool(stats["success"]))
        return IpoptResult(
            controls=np.stack(solutions),
            seconds_per_problem=seconds / len(states),
            iterations=np.array(iterations),
            converged=np.array(converged),
        )
