"""Hyperparameters of REINFORCE with deep supervision, and the per-cycle loss weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from trm_rl.config import require_bool, require_choice, require_int, require_number

BASELINES = ("value", "mean")
WEIGHTINGS = ("linear", "exponential")
CYCLE_LOSSES = ("imitate", "importance", "positive")


@dataclass(frozen=True)
class ReinforceConfig:
    """REINFORCE with a policy-gradient loss at every recursive cycle (deep supervision).

    Environment, seed, number of parallel envs, timestep budget and the core's shape are
    the ``trm-rl train`` common flags; every field here is a REINFORCE-only flag
    (``--field-name``).
    """

    episodes: int | None = None
    """Stop after this many training episodes (None: only the timestep budget counts)."""
    gamma: float = 0.95
    """Discount of the Monte-Carlo returns ``G_t = r_t + gamma G_{t+1}``."""
    learning_rate: float = 1e-3
    """Adam step size after warm-up."""
    warmup_updates: int = 10
    """Updates over which the step size rises linearly from ``learning_rate / warmup_updates``."""
    max_grad_norm: float = 1.0
    """Clip the policy's gradient norm (and, separately, the value head's) to this value."""
    ent_coef: float = 0.01
    """Entropy bonus, applied at every supervised cycle with that cycle's weight."""
    baseline: str = "value"
    """"value": a value head on the last cycle's detached features, fitted to the returns
    by MSE (state-dependent, never shapes the core); "mean": a running mean of the returns."""
    baseline_momentum: float = 0.99
    """EMA momentum of the running-mean baseline (``baseline="mean"`` only)."""
    normalize_advantages: bool = True
    """Scale the batch's advantages to zero mean and unit variance."""
    deep_supervision: bool = True
    """Apply the policy-gradient loss to every supervised cycle's logits (else only to the
    acting cycle's). Needs ``grad_mode="full"`` in the core."""
    cycle_loss: str = "importance"
    """How an earlier cycle ``k`` learns from the acting cycle's actions: "importance"
    (weighted by the truncated ratio ``min(importance_clip, pi_k(a_t) / pi_act(a_t))``, an
    estimate of cycle ``k``'s own policy gradient), "positive" (``max(A_t, 0) log pi_k(a_t)``:
    imitate the actions that beat the baseline) or "imitate" (the original write-up's
    ``A_t log pi_k(a_t)``, which also pushes away from the other actions). The acting cycle's
    term is the plain policy gradient in all three. Evidence for the default and how the
    three compare: ``benchmarks/RESULTS.md``, section 4."""
    importance_clip: float = 1.0
    """Truncation of the importance ratios (V-trace's rho bar; ``cycle_loss="importance"``)."""
    weighting: str = "linear"
    """Per-cycle weights: "linear" (``1 + 0.1 k``, the original) or "exponential"
    (``weight_base ** k``); both normalised to sum to 1."""
    weight_base: float = 5.0
    """Base of the exponential weights (the refinement guide's profiles: 3, 5, 10)."""
    improvement_scale: float = 0.0
    """Scale of the improvement bonus (:func:`trm_rl.agents.reinforce.improvement_bonus`);
    > 0 needs deep supervision."""
    curriculum_start: int = 1
    """Supervised cycles at the start of the curriculum (``curriculum_updates > 0`` only)."""
    curriculum_updates: int = 0
    """Updates over which the supervised cycles grow from ``curriculum_start`` to all of
    them, in equal stages; the agent acts from the last supervised cycle. 0: no curriculum."""
    checkpoint_every: int = 50
    """Write ``checkpoint.pt`` (and the agent files) every this many updates."""
    device: str = "auto"
    """Torch device: "auto" (CUDA when available, as SB3), "cpu", "cuda", "cuda:1", ..."""

    def __post_init__(self) -> None:
        require_int("episodes", self.episodes, 1, allow_none=True)
        require_number("gamma", self.gamma, 0.0, 1.0)
        require_number("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        require_int("warmup_updates", self.warmup_updates, 1)
        require_number("max_grad_norm", self.max_grad_norm, 0.0, low_open=True)
        require_number("ent_coef", self.ent_coef, 0.0)
        require_choice("baseline", self.baseline, BASELINES)
        require_number("baseline_momentum", self.baseline_momentum, 0.0, 1.0)
        require_choice("weighting", self.weighting, WEIGHTINGS)
        require_choice("cycle_loss", self.cycle_loss, CYCLE_LOSSES)
        require_number("importance_clip", self.importance_clip, 0.0, low_open=True)
        require_number("weight_base", self.weight_base, 0.0, low_open=True)
        require_number("improvement_scale", self.improvement_scale, 0.0)
        require_int("curriculum_start", self.curriculum_start, 1)
        require_int("curriculum_updates", self.curriculum_updates, 0)
        require_int("checkpoint_every", self.checkpoint_every, 1)
        require_bool("normalize_advantages", self.normalize_advantages)
        require_bool("deep_supervision", self.deep_supervision)
        if self.improvement_scale > 0 and not self.deep_supervision:
            raise ValueError(
                "improvement_scale > 0 trains every cycle, i.e. needs deep_supervision=True; "
                f"got improvement_scale={self.improvement_scale} with deep_supervision=False"
            )
        if not isinstance(self.device, str):
            raise TypeError(f'device must be a str such as "auto" or "cpu", got {self.device!r}')

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return asdict(self)

    def supervised_cycles(self, update: int, h_cycles: int) -> int:
        """How many cycles (the first ``n``) are trained at ``update`` (0-based).

        Without a curriculum, all ``h_cycles``. With one, ``curriculum_start`` rising in equal
        stages to ``h_cycles`` over ``curriculum_updates`` updates (the refinement guide's
        2 -> 3 -> 4 schedule is ``curriculum_start=2`` with ``h_cycles=4``).
        """
        start = min(self.curriculum_start, h_cycles)
        if self.curriculum_updates == 0:
            return h_cycles
        stages = h_cycles - start + 1
        return min(h_cycles, start + stages * update // self.curriculum_updates)

    def cycle_weights(self, n_cycles: int) -> torch.Tensor:
        """Loss weight of each supervised cycle, ``[n_cycles]``, summing to 1.

        With deep supervision, ``w_k ∝ 1 + 0.1 k`` ("linear") or ``w_k ∝ weight_base ** k``
        ("exponential"), ``k = 0 .. n_cycles - 1``; without, ``w = (0, ..., 0, 1)`` (only the
        acting cycle). Normalising keeps the loss scale, and the entropy bonus's share of
        it, independent of the number of cycles; the original's unnormalised ``1 + 0.1 k``
        differs from it by a constant factor only.
        """
        require_int("n_cycles", n_cycles, 1)
        k = torch.arange(n_cycles, dtype=torch.float64)
        if not self.deep_supervision:
            weights = (k == n_cycles - 1).double()
        elif self.weighting == "linear":
            weights = 1.0 + 0.1 * k
        else:
            weights = torch.as_tensor(float(self.weight_base), dtype=torch.float64) ** k
        return (weights / weights.sum()).float()
