"""Per-cycle diagnostics of a TRM policy, logged through SB3's logger (TensorBoard).

After each rollout, :class:`TRMDiagnosticsCallback` runs the policy's recursion on a sample
of that rollout's observations and records, for every outer cycle ``k = 1 .. H``:

- ``trm/delta_zH_k``: ``mean ||z_H^k - z_H^(k-1)|| / ||z_H^k||`` over tokens (``z_H^0`` is
  the initial state): how much cycle ``k`` still changes the answer;
- ``trm/entropy_k``: the action distribution's mean entropy if the heads read cycle ``k``;
- ``trm/agree_k`` (discrete actions): fraction of greedy actions at cycle ``k`` equal to
  the final cycle's.

Late cycles that still change z_H and the greedy action show that recursion is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.preprocessing import preprocess_obs
from torch import Tensor

from trm_rl.config import require_int


def cycle_statistics(policy, obs: Tensor) -> dict[str, list[float]]:
    """Per-cycle statistics of a TRM ``policy`` on a batch of raw observations.

    Args:
        policy: a ``TRMPolicy`` or ``MaskableTRMPolicy``.
        obs: observations ``[B, ...]`` as SB3's ``obs_to_tensor`` gives (not preprocessed).

    Returns:
        ``{"delta_zH": [H floats], "entropy": [H], "agree": [H] (discrete actions only)}``.
    """
    with torch.no_grad():
        preprocessed = preprocess_obs(obs, policy.observation_space, policy.normalize_images)
        extractor = policy.features_extractor
        x, out = extractor.network.recurse(preprocessed)
        init = extractor.network.core.init_states[0].expand_as(out.states[0])
        previous = torch.cat([init.unsqueeze(0), out.states[:-1]])
        change = (out.states - previous).norm(dim=-1) / out.states.norm(dim=-1).clamp_min(1e-8)
        features = extractor.features(out.states, x, preprocessed)
        stats: dict[str, list[float]] = {"delta_zH": change.mean(dim=(1, 2)).tolist()}
        entropies, greedy = [], []
        for cycle_features in features:
            latent = policy.mlp_extractor.forward_actor(cycle_features)
            distribution = policy._get_action_dist_from_latent(latent)
            entropies.append(float(distribution.entropy().mean()))
            greedy.append(distribution.get_actions(deterministic=True))
        stats["entropy"] = entropies
        if not greedy[-1].is_floating_point():
            stats["agree"] = [float((g == greedy[-1]).float().mean()) for g in greedy]
    return stats


class TRMDiagnosticsCallback(BaseCallback):
    """Log :func:`cycle_statistics` under ``trm/`` after every rollout.

    Args:
        samples: observations drawn (without replacement) from the rollout buffer (>= 1).
        verbose: SB3 verbosity.
    """

    def __init__(self, samples: int = 256, verbose: int = 0) -> None:
        super().__init__(verbose)
        require_int("samples", samples, 1)
        self.samples = samples

    def _on_training_start(self) -> None:
        if not hasattr(self.model.policy, "network"):
            raise TypeError(
                f"TRMDiagnosticsCallback needs a TRM policy, got {type(self.model.policy).__name__}"
            )
        self._rng = np.random.default_rng(self.model.seed)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        observations = self.model.rollout_buffer.observations
        flat = observations.reshape(-1, *observations.shape[2:])
        chosen = self._rng.choice(len(flat), size=min(self.samples, len(flat)), replace=False)
        obs, _ = self.model.policy.obs_to_tensor(flat[chosen])
        for name, values in cycle_statistics(self.model.policy, obs).items():
            for cycle, value in enumerate(values, start=1):
                self.logger.record(f"trm/{name}_{cycle}", value)


class RandomCyclesCallback(BaseCallback):
    """Draw a TRM policy's outer cycle count H uniformly from ``low..high`` for every rollout;
    the update that follows the rollout uses the same H, so PPO's probability ratios compare
    the same network. Training over a range of depths asks for an operator whose answer
    holds as cycles are added (a "progressive" training in the sense of Deep Thinking), the
    property that test-time cycles need. The policy's own H is restored when training ends.

    Each draw comes from a generator seeded with ``(seed, num_timesteps)``, so a resumed run
    draws what an uninterrupted one would.

    Args:
        low, high: the inclusive range of H (1 <= low <= high).
        seed: the run's seed.
    """

    def __init__(self, low: int, high: int, seed: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        require_int("low", low, 1)
        require_int("high", high, low)
        require_int("seed", seed, 0)
        self.low, self.high, self.seed = low, high, seed

    def _on_training_start(self) -> None:
        core = getattr(getattr(self.model.policy, "network", None), "core", None)
        if core is None or not core.config.shared_weights:
            raise TypeError("random cycles need a TRM policy with shared weights")
        self._core = core
        self._trained_config = core.config

    def _on_rollout_start(self) -> None:
        rng = np.random.default_rng([self.seed, self.model.num_timesteps])
        h_cycles = int(rng.integers(self.low, self.high + 1))
        self._core.config = replace(self._trained_config, h_cycles=h_cycles)
        self.logger.record("trm/h_cycles", h_cycles)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._core.config = self._trained_config


class TrainingDiverged(ValueError):
    """A parameter or a logged loss became NaN or infinite during training."""


class FiniteCheckCallback(BaseCallback):
    """Stop training with :class:`TrainingDiverged` (a ``ValueError``) naming the step and
    the loss when, after an update, a logged loss (``train/*loss*``) or a policy parameter
    is NaN or infinite. Checks run before each rollout (i.e. after the previous update) and
    at the end of training, so non-finite weights never act or get saved."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        self._raise_on_problem()

    def _on_training_end(self) -> None:
        self._raise_on_problem()

    def _raise_on_problem(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise TrainingDiverged(problem)

    def problem(self, during_update: bool = False) -> str | None:
        """What is not finite (a message naming the step and the losses), or ``None`` (also
        before training started)."""
        if getattr(self, "model", None) is None:
            return None
        step = self.model.num_timesteps
        losses = {
            key: value
            for key, value in self.logger.name_to_value.items()
            if key.startswith("train/") and "loss" in key
        }
        shown = ", ".join(f"{key}={value:.4g}" for key, value in sorted(losses.items()))
        advice = "start again with a lower learning rate"
        when = "during the update after" if during_update else "at"
        for key, value in sorted(losses.items()):
            if not np.isfinite(value):
                return f"training diverged {when} step {step}: {key} is {value} ({shown}); {advice}"
        for name, parameter in self.model.policy.named_parameters():
            if not torch.isfinite(parameter).all():
                last = f"last logged losses: {shown}" if shown else "no loss logged yet"
                return (
                    f"training diverged {when} step {step}: parameter {name} is not finite "
                    f"({last}); {advice}"
                )
        return None


class RunCheckpointCallback(BaseCallback):
    """Call ``save(trained_steps)`` every ``every`` env steps, at rollout boundaries (after
    an update, before the next rollout), and stop training cleanly once
    :meth:`request_stop` was called (e.g. from a signal handler).

    ``trained_steps`` counts the env steps the current weights were trained on: a rollout
    cut short by a stop is not trained on, so it is not counted (SB3's ``num_timesteps``
    is).

    Args:
        save: writes the checkpoint; gets ``trained_steps``.
        every: env steps between two saves (>= 1).
        trained_steps: env steps the weights were trained on before this ``learn`` call.
    """

    def __init__(
        self,
        save: Callable[[int], None],
        every: int,
        trained_steps: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        require_int("every", every, 1)
        require_int("trained_steps", trained_steps, 0)
        self.save = save
        self.every = every
        self.trained_steps = trained_steps
        self.stop_signal: int | None = None
        self._last_saved = trained_steps
        self._rollout_done = False

    def request_stop(self, signal_number: int) -> None:
        """End training at the next env step, without training on the partial rollout."""
        self.stop_signal = signal_number

    def _on_rollout_start(self) -> None:
        self.trained_steps = self.model.num_timesteps
        self._rollout_done = False
        if self.trained_steps - self._last_saved >= self.every:
            self.save(self.trained_steps)
            self._last_saved = self.trained_steps

    def _on_rollout_end(self) -> None:
        self._rollout_done = True

    def _on_step(self) -> bool:
        return self.stop_signal is None

    def _on_training_end(self) -> None:
        if self._rollout_done:
            self.trained_steps = self.model.num_timesteps
