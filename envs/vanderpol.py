"""Goal-conditioned control of a Van der Pol oscillator over a fixed horizon."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trm_rl.envs.dynamics import (
    DT,
    HORIZON,
    MU,
    Q_DEFAULT,
    Q_FINAL_SCALE,
    R_DEFAULT,
    U_MAX,
    control_weight,
    cost_matrix,
    rk4_step,
)
from trm_rl.envs.options import ResetNeeded, checked_int, checked_number, checked_options

START_RANGE = 2.0
"""Initial states are drawn uniformly from ``[-START_RANGE, START_RANGE]^2``."""
STATE_LIMIT = 4.0
"""``reset(options={"state": ...})`` accepts ``|x|, |v| <= STATE_LIMIT``."""
TARGET_LIMIT = 3.0
"""Targets (and the observation bounds on them) lie in ``[-TARGET_LIMIT, TARGET_LIMIT]^2``."""
MU_MAX = 2.0
"""Largest accepted mu."""
DT_MAX = 0.1
"""Largest accepted step, seconds."""
STIFFNESS_MAX = 0.1
"""Largest accepted ``mu * dt``: beyond it RK4 can diverge from states with ``|x|`` near
``STATE_LIMIT`` (measured: mu = 2, dt = 0.1 overflows)."""
OPTION_KEYS = ("state", "target")
FLOAT32_MAX = float(np.finfo(np.float32).max)

_RENDER_SIZE = 256
_VIEW_X = 3.0
_VIEW_V = 5.0


def state_bound(mu: float, duration: float) -> float:
    """Bound on ``||s(t)||`` for ``t <= duration`` from ``|x|, |v| <= STATE_LIMIT`` with
    ``|u| <= U_MAX``, by Gronwall's inequality on ``d||s||/dt <= mu ||s|| + U_MAX`` (which
    follows from ``d(||s||^2 / 2)/dt = mu (1 - x^2) v^2 + u v``), with a 1% margin for the
    RK4 discretisation. Loose (about 1.1e3 with the defaults, where adversarial controls
    reach ``|x| = 4.2``, ``|v| = 6.2``) but finite and safe."""
    start = STATE_LIMIT * math.sqrt(2.0)
    if mu == 0.0:
        return 1.01 * (start + U_MAX * duration)
    growth = math.exp(mu * duration)
    return 1.01 * (start * growth + U_MAX * (growth - 1.0) / mu)


def max_horizon(mu: float, dt: float) -> int:
    """Largest ``horizon`` (steps) whose observation bound ``state_bound(mu, horizon * dt)``
    is finite in float32 (the observation dtype): 1733 with the defaults, 866-868 at the
    stiffest setting ``mu * dt = 0.1``. The bound grows like ``exp(mu * horizon * dt)``;
    solving ``1.01 (sqrt(2) STATE_LIMIT + U_MAX / mu) exp(mu * horizon * dt) <= float32
    max`` (which implies the bound) gives the limit."""
    start = STATE_LIMIT * math.sqrt(2.0)
    if mu == 0.0:
        return math.floor((FLOAT32_MAX / 1.01 - start) / (U_MAX * dt))
    growth = math.log(FLOAT32_MAX / (1.01 * (start + U_MAX / mu)))
    return math.floor(growth / (mu * dt))


def _point(name: str, value: Any, limit: float) -> tuple[float, float]:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f'options["{name}"] must be 2 numbers [x, v], got {value!r}') from error
    if array.shape != (2,):
        raise ValueError(f'options["{name}"] must have shape (2,) [x, v], got {array.shape}')
    if not (np.all(np.isfinite(array)) and np.all(np.abs(array) <= limit)):
        raise ValueError(
            f'options["{name}"] must be finite with |x|, |v| <= {limit}, got {array.tolist()}'
        )
    return float(array[0]), float(array[1])


class VanDerPolEnv(gym.Env[np.ndarray, np.ndarray]):
    """
    ## Description

    Steer a Van der Pol oscillator from a random initial state to a target state within a
    fixed horizon, at minimum quadratic cost. The dynamics, with state ``s = (x, v)`` and
    control ``u``, are

    ``x' = v``,  ``v' = mu (1 - x^2) v - x + u``,

    integrated with RK4 over steps of ``dt`` seconds with ``u`` held constant (zero-order
    hold). The defaults (mu = 1, dt = 0.05, 100 steps = 5 s, ``|u| <= 2``, Q = diag(10, 5),
    R = 0.5, Q_final = 20 Q) are the TinyRecursiveControl Van der Pol problem. The same
    vector field and RK4 step, in :mod:`trm_rl.envs.dynamics`, serve a batched
    differentiable torch simulator (``rollout``, ``trajectory_cost``).

    ## Action Space

    `Box(-2, 2, (1,), float32)`: the control ``u``. Actions outside the bounds, non-finite
    or of the wrong shape raise `ValueError` (they are not clipped).

    | Num | Action    | Min  | Max |
    |-----|-----------|------|-----|
    | 0   | control u | -2.0 | 2.0 |

    ## Observation Space

    `Box((5,), float32)`:

    | Num | Observation             | Min  | Max          |
    |-----|-------------------------|------|--------------|
    | 0   | position x              | -B   | B            |
    | 1   | velocity v              | -B   | B            |
    | 2   | target position x*      | -3.0 | 3.0          |
    | 3   | target velocity v*      | -3.0 | 3.0          |
    | 4   | time remaining, seconds | 0.0  | horizon * dt |

    ``B = state_bound(mu, horizon * dt)``, a guaranteed but loose bound (about 1.1e3 with
    the defaults). Admissible controls found by gradient ascent to maximise ``|x|`` or
    ``|v|`` over an episode reached ``|x| = 2.7``, ``|v| = 4.9`` from the random starting
    set, and ``|x| = 4.2``, ``|v| = 6.2`` from the states ``reset`` options accept.

    ## Rewards

    Minus the quadratic cost: each step ``t`` (from state ``s_t``, applying ``u_t``) gives

    ``r_t = -[(s_t - s*)' Q (s_t - s*) + R u_t^2]``,

    and the last step also gives ``-(s_N - s*)' Q_final (s_N - s*)``, so the episode return
    is exactly ``-J`` of :func:`trm_rl.envs.dynamics.trajectory_cost`.

    ## Starting State

    ``(x, v)`` uniform in ``[-2, 2]^2``. The target is the origin, or uniform in
    ``[-target_range, target_range]^2`` when ``target_range > 0``.

    ## Episode End

    The episode is truncated after ``horizon`` steps (a fixed-horizon problem; it never
    terminates). On that step ``info["is_success"]`` is ``||s_N - s*|| < success_tolerance``
    and ``info["final_distance"]`` is ``||s_N - s*||``. Stepping past the horizon, or
    before the first ``reset()``, raises :class:`~trm_rl.envs.options.ResetNeeded` (a
    ``gymnasium.error.ResetNeeded`` and a ``RuntimeError``): call ``reset()``.

    ## Arguments

    - `mu`: damping, in ``[0, 2]`` (default 1.0).
    - `dt`: step in seconds, in ``(0, 0.1]`` (default 0.05), with ``mu * dt <= 0.1``.
    - `horizon`: steps per episode, in ``[1, max_horizon(mu, dt)]`` (default 100; the
      limit is 1733 steps with the default mu and dt): beyond it the observation bound
      ``B`` overflows float32.
    - `Q`, `Q_final`: symmetric PSD 2x2 state weights, or their diagonals (defaults
      diag(10, 5) and 20 Q).
    - `R`: control weight >= 0 (default 0.5).
    - `target_range`: half-width of the random target box, in ``[0, 3]`` (default 0).
    - `success_tolerance`: success radius around the target, > 0 (default 0.1).
    - `render_mode`: ``"ansi"`` (one text line) or ``"rgb_array"`` (a 256x256 phase-plane
      picture: trajectory so far in blue, current state red, target green). ``render()``
      before the first ``reset`` raises ``ResetNeeded`` (as Gymnasium's ``OrderEnforcing``
      wrapper does); without a ``render_mode`` it warns and returns None.

    ``reset(options={"state": [x, v], "target": [x, v]})`` starts from that state (``|x|,
    |v| <= 4``) and/or aims at that target (``|x|, |v| <= 3``); other keys raise
    `ValueError`.

    ## Version History

    * v0: Initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 20}

    def __init__(
        self,
        mu: float = MU,
        dt: float = DT,
        horizon: int = HORIZON,
        Q: Any = Q_DEFAULT,
        R: float = R_DEFAULT,
        Q_final: Any = None,
        target_range: float = 0.0,
        success_tolerance: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        self.mu = checked_number("mu", mu, 0.0, MU_MAX)
        self.dt = checked_number("dt", dt, 0.0, DT_MAX, low_open=True)
        if self.mu * self.dt > STIFFNESS_MAX:
            raise ValueError(
                f"mu * dt must be <= {STIFFNESS_MAX} for a stable RK4 integration, got "
                f"mu={self.mu}, dt={self.dt}; lower one of them"
            )
        self.horizon = checked_int("horizon", horizon, 1)
        longest = max_horizon(self.mu, self.dt)
        if self.horizon > longest:
            raise ValueError(
                f"horizon must be in [1, {longest}] for mu={self.mu}, dt={self.dt}, got "
                f"{self.horizon}: the observation bound on x and v, state_bound(mu, horizon * "
                "dt), grows like exp(mu * horizon * dt) and must stay finite in float32"
            )
        self.Q = cost_matrix("Q", Q)
        self.R = control_weight(R)
        self.Q_final = (
            Q_FINAL_SCALE * self.Q if Q_final is None else cost_matrix("Q_final", Q_final)
        )
        self.target_range = checked_number("target_range", target_range, 0.0, TARGET_LIMIT)
        self.success_tolerance = checked_number(
            "success_tolerance", success_tolerance, 0.0, low_open=True
        )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode

        self.action_space = spaces.Box(-U_MAX, U_MAX, (1,), np.float32)
        duration = self.horizon * self.dt
        bound = state_bound(self.mu, duration)
        high = np.array([bound, bound, TARGET_LIMIT, TARGET_LIMIT, duration], np.float32)
        low = np.array([-bound, -bound, -TARGET_LIMIT, -TARGET_LIMIT, 0.0], np.float32)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        (q11, q12), (_, q22) = self.Q.tolist()
        (f11, f12), (_, f22) = self.Q_final.tolist()
        self._q = (q11, 2.0 * q12, q22)
        self._q_final = (f11, 2.0 * f12, f22)
        self._x = self._v = 0.0
        self._target = (0.0, 0.0)
        self._t = self.horizon
        self._last_u: float | None = None
        self._path: list[tuple[float, float]] = []

    def _obs(self) -> np.ndarray:
        return np.array(
            [self._x, self._v, *self._target, (self.horizon - self._t) * self.dt], np.float32
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = checked_options(options, OPTION_KEYS)
        if "state" in options:
            self._x, self._v = _point("state", options["state"], STATE_LIMIT)
        else:
            self._x, self._v = self.np_random.uniform(-START_RANGE, START_RANGE, 2).tolist()
        if "target" in options:
            self._target = _point("target", options["target"], TARGET_LIMIT)
        elif self.target_range > 0.0:
            low, high = -self.target_range, self.target_range
            self._target = tuple(self.np_random.uniform(low, high, 2).tolist())
        else:
            self._target = (0.0, 0.0)
        self._t = 0
        self._last_u = None
        self._path = [(self._x, self._v)]
        return self._obs(), {}

    def _action(self, action: Any) -> float:
        if isinstance(action, np.ndarray) and action.shape == (1,):
            u = float(action[0])
        else:
            array = np.asarray(action, dtype=np.float64)
            if array.shape != (1,):
                raise ValueError(f"action must have shape (1,), got {array.shape}")
            u = float(array[0])
        if not -U_MAX <= u <= U_MAX:
            raise ValueError(f"action must be a finite control in [{-U_MAX}, {U_MAX}], got {u}")
        return u

    def _weighted(self, weights: tuple[float, float, float], x: float, v: float) -> float:
        dx, dv = x - self._target[0], v - self._target[1]
        return weights[0] * dx * dx + weights[1] * dx * dv + weights[2] * dv * dv

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._t >= self.horizon:
            raise ResetNeeded(
                f"no episode in progress (episodes end after horizon={self.horizon} steps): "
                "call reset() first"
            )
        u = self._action(action)
        cost = self._weighted(self._q, self._x, self._v) + self.R * u * u
        self._x, self._v = rk4_step(self._x, self._v, u, self.dt, self.mu)
        self._t += 1
        self._last_u = u
        self._path.append((self._x, self._v))
        info: dict[str, Any] = {}
        truncated = self._t == self.horizon
        if truncated:
            cost += self._weighted(self._q_final, self._x, self._v)
            distance = math.hypot(self._x - self._target[0], self._v - self._target[1])
            info = {"is_success": distance < self.success_tolerance, "final_distance": distance}
        return self._obs(), -cost, False, truncated, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without render_mode; pass render_mode='ansi' or "
                "'rgb_array' to VanDerPolEnv or gym.make"
            )
            return None
        if not self._path:
            raise ResetNeeded("call reset() before render()")
        if self.render_mode == "ansi":
            u = "   n/a" if self._last_u is None else f"{self._last_u:+.3f}"
            return (
                f"t={self._t:4d}/{self.horizon} x={self._x:+.3f} v={self._v:+.3f} "
                f"target=({self._target[0]:+.3f}, {self._target[1]:+.3f}) u={u}"
            )
        return self._render_phase_plane()

    def _render_phase_plane(self) -> np.ndarray:
        size = _RENDER_SIZE
        image = np.full((size, size, 3), 255, np.uint8)
        centre = _to_pixels(np.zeros((1, 2)))[0]
        image[centre[0], :] = image[:, centre[1]] = (200, 200, 200)
        path = _to_pixels(np.asarray(self._path))
        _draw_polyline(image, path, (40, 90, 220))
        target = _to_pixels(np.asarray([self._target]))[0]
        arm = np.arange(-6, 7)
        _paint(image, np.stack((target[0] + arm, target[1] + arm), 1), (20, 160, 60))
        _paint(image, np.stack((target[0] + arm, target[1] - arm), 1), (20, 160, 60))
        _draw_disc(image, path[-1], 4, (220, 40, 40))
        return image


def _to_pixels(points: np.ndarray) -> np.ndarray:
    """Phase-plane points ``[N, 2]`` (x, v) -> pixel ``(row, col)`` ``[N, 2]``, clipped to
    the view ``|x| <= 3``, ``|v| <= 5`` (v upwards)."""
    last = _RENDER_SIZE - 1
    col = (np.clip(points[:, 0], -_VIEW_X, _VIEW_X) + _VIEW_X) / (2 * _VIEW_X) * last
    row = (_VIEW_V - np.clip(points[:, 1], -_VIEW_V, _VIEW_V)) / (2 * _VIEW_V) * last
    return np.rint(np.stack((row, col), 1)).astype(np.int64)


def _paint(image: np.ndarray, pixels: np.ndarray, colour: tuple[int, int, int]) -> None:
    pixels = np.clip(pixels, 0, image.shape[0] - 1)
    image[pixels[:, 0], pixels[:, 1]] = colour


def _draw_polyline(image: np.ndarray, pixels: np.ndarray, colour: tuple[int, int, int]) -> None:
    if len(pixels) < 2:
        return
    start, end = pixels[:-1], pixels[1:]
    samples = int(np.abs(end - start).max()) + 1
    fraction = np.linspace(0.0, 1.0, samples + 1)[None, :, None]
    points = start[:, None, :] + fraction * (end - start)[:, None, :]
    _paint(image, np.rint(points.reshape(-1, 2)).astype(np.int64), colour)


def _draw_disc(
    image: np.ndarray, centre: np.ndarray, radius: int, colour: tuple[int, int, int]
) -> None:
    offsets = np.arange(-radius, radius + 1)
    rows, cols = np.meshgrid(offsets, offsets, indexing="ij")
    inside = rows**2 + cols**2 <= radius**2
    _paint(image, np.stack((rows[inside], cols[inside]), 1) + centre, colour)
