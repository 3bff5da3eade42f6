"""Held-out evaluation during SB3 training, shared by the learning benchmarks and
``trm-rl bench``: which layouts/puzzles training saw, and a learning curve on the others."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper


def fingerprint(obs: np.ndarray) -> bytes:
    """A hash of one observation (identifies a layout/puzzle by its first observation)."""
    return hashlib.blake2b(np.ascontiguousarray(obs).tobytes(), digest_size=16).digest()


class TrainingStarts(VecEnvWrapper):
    """Records the fingerprint of every training episode's first observation."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.seen: set[bytes] = set()

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.seen.update(fingerprint(o) for o in obs)
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.seen.update(fingerprint(obs[i]) for i in np.flatnonzero(dones))
        return obs, rewards, dones, infos


class HeldOutCurve(BaseCallback):
    """Evaluates on held-out episodes every ``every`` steps; keeps the training wall and
    process CPU time (evaluation excluded) for the steps/s figures. Each curve point holds
    ``timesteps``, the training seconds so far (``train_seconds``), the wall and process CPU
    seconds since training started with the evaluations included (``elapsed_seconds``,
    ``elapsed_cpu_seconds``: the time to reach that point, as a user waits for it) and the
    evaluation's fields. ``on_point``, if given, receives the curve so far after every
    evaluation (e.g. to save partial results)."""

    def __init__(
        self,
        every: int,
        evaluate_now: Callable[[], dict[str, Any]],
        label: str,
        on_point: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        super().__init__()
        self.every = every
        self.label = label
        self.evaluate_now = evaluate_now
        self.on_point = on_point
        self.points: list[dict[str, Any]] = []
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0

    def _start_clocks(self) -> None:
        self._clock = time.perf_counter()
        self._cpu_clock = time.process_time()

    def _stop_clocks(self) -> None:
        self.train_seconds += time.perf_counter() - self._clock
        self.train_cpu_seconds += time.process_time() - self._cpu_clock

    def _on_training_start(self) -> None:
        self._next = self.every
        self._started = (time.perf_counter(), time.process_time())
        self._start_clocks()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._stop_clocks()
            point = {
                "timesteps": self.num_timesteps,
                "train_seconds": self.train_seconds,
                **self.evaluate_now(),
                "elapsed_seconds": time.perf_counter() - self._started[0],
                "elapsed_cpu_seconds": time.process_time() - self._started[1],
            }
            self.points.append(point)
            print(
                f"{self.label} @ {self.num_timesteps}: success {point['success_rate']:.3f}, "
                f"path ratio {point['path_ratio']}",
                flush=True,
            )
            if self.on_point is not None:
                self.on_point(self.points)
            self._next += self.every
            self._start_clocks()
        return True

    def _on_training_end(self) -> None:
        self._stop_clocks()
