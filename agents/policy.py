"""``TRMPolicy``: the recursive core as a Stable-Baselines3 actor-critic policy.

The core enters SB3 as a features extractor (SB3's custom-policy guide): observations go
through SB3's ``preprocess_obs``, then :class:`~trm_rl.agents.network.TRMNetwork`
(tokens -> recursive core -> pooled final z_H), and the action and value heads read those
features directly (``net_arch=[]``). The trunk is shared, so SB3 runs it once per
``forward``/``evaluate_actions`` for both actor and critic.

Usage::

    from stable_baselines3 import PPO
    from trm_rl import TRMPolicy

    model = PPO(TRMPolicy, "TRM-Maze-v0", policy_kwargs={"h_cycles": 3, "hidden_dim": 32})

``MaskableTRMPolicy`` is the same for ``sb3_contrib.MaskablePPO`` (action masks, e.g. Sudoku).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor

from trm_rl.agents.network import TRMNetwork
from trm_rl.config import TRMConfig

POLICY_DEFAULTS: dict[str, Any] = {
    "hidden_dim": 32,
    "n_layers": 1,
    "h_cycles": 3,
    "l_cycles": 2,
    "mixer": "auto",
    "n_heads": 4,
    "expansion": 2.0,
    "grad_mode": "last",
    "learned_init": False,
}
"""The policy's defaults for the core (smaller and faster than :class:`TRMConfig`'s)."""

TRM_FIELDS = tuple(POLICY_DEFAULTS)
"""The ``TRMConfig`` fields a policy accepts as ``policy_kwargs`` (not the halting head: a
policy makes one forward call per environment step and keeps no carry)."""


def resolve_mixer(observation_space: spaces.Space, mixer: str, vector_tokens: str) -> str:
    """``mixer="auto"``: ``"conv"`` for image-like Box grids, ``"mlp"`` for other multi-token
    observations (MultiDiscrete, per-feature vectors), ``"none"`` for a single token."""
    if mixer != "auto":
        return mixer
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) in (2, 3):
        return "conv"
    if isinstance(observation_space, spaces.MultiDiscrete) and observation_space.nvec.size > 1:
        return "mlp"
    if vector_tokens == "per_feature" and int(spaces.flatdim(observation_space)) > 1:
        return "mlp"
    return "none"


class TRMFeaturesExtractor(BaseFeaturesExtractor):
    """Observations ``[B, ...]`` (SB3-preprocessed) -> final-cycle features ``[B, F]``.

    Args:
        observation_space: the environment's observation space.
        trm: :class:`TRMConfig` fields as a dict (``mixer`` already resolved).
        vector_tokens: ``"single"`` or ``"per_feature"`` tokens for vector observations.
        focus_channel: grid channel whose marked cells the readout pools (see
            :class:`~trm_rl.agents.network.TRMNetwork`), or ``None``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        trm: dict[str, Any],
        vector_tokens: str = "single",
        focus_channel: int | None = None,
    ) -> None:
        network = TRMNetwork(observation_space, TRMConfig(**trm), vector_tokens, focus_channel)
        super().__init__(observation_space, network.features_dim)
        self.network = network

    def forward(self, observations: Tensor) -> Tensor:
        return self.network(observations)


class _TRMPolicyMixin:
    """Builds the TRM features extractor and passes everything else to the SB3 policy.

    Keyword Args:
        hidden_dim: width D of tokens and states (default 32).
        n_layers: blocks in the shared stack (default 1).
        h_cycles: outer cycles H (default 3).
        l_cycles: inner z_L updates per outer cycle (default 2).
        mixer: ``"auto"`` (default: ``"conv"`` on grids, ``"mlp"`` on other multi-token
            observations, ``"none"`` on vectors), ``"mlp"``, ``"attention"``, ``"conv"``,
            ``"none"``.
        n_heads: attention heads (``mixer="attention"``; default 4).
        expansion: SwiGLU expansion (default 2.0).
        grad_mode: ``"last"`` (default; TRM's one-step gradient: the first H-1 cycles run
            without autograd) or ``"full"``.
        learned_init: learn the initial z_H, z_L (default False).
        vector_tokens: ``"single"`` (default) or ``"per_feature"``.
        focus_channel: for ``(C, H, W)`` grids, the channel marking the cell(s) the readout
            pools, e.g. 1 (the agent) in a maze; ``None`` (default) learns the pool.
        **kwargs: SB3's ``ActorCriticPolicy`` arguments. Defaults that differ from SB3's:
            ``net_arch=[]`` (heads read the TRM features directly) and ``ortho_init=False``
            (keeps the core's own init; the action head still starts at gain 0.01 and the
            value head at gain 1, as SB3 does).

    Raises:
        ValueError: a bad TRM setting, naming it (from :class:`TRMConfig`).
        TypeError: ``features_extractor_class``/``features_extractor_kwargs`` given (the
            policy owns its extractor; pass the TRM settings above instead).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule,
        *,
        vector_tokens: str = "single",
        focus_channel: int | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {name: kwargs.pop(name, POLICY_DEFAULTS[name]) for name in TRM_FIELDS}
        for name in ("features_extractor_class", "features_extractor_kwargs"):
            if name in kwargs:
                raise TypeError(
                    f"{type(self).__name__} builds its own features extractor; remove {name} "
                    f"and pass the TRM settings {TRM_FIELDS} as policy_kwargs"
                )
        fields["mixer"] = resolve_mixer(observation_space, fields["mixer"], vector_tokens)
        self.trm_config = TRMConfig(**fields)
        self.vector_tokens = vector_tokens
        self.focus_channel = focus_channel
        kwargs.setdefault("net_arch", [])
        kwargs.setdefault("ortho_init", False)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=TRMFeaturesExtractor,
            features_extractor_kwargs={
                "trm": self.trm_config.to_dict(),
                "vector_tokens": vector_tokens,
                "focus_channel": focus_channel,
            },
            **kwargs,
        )

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        if not self.ortho_init:
            self.action_net.apply(partial(self.init_weights, gain=0.01))
            self.value_net.apply(partial(self.init_weights, gain=1.0))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        del data["features_extractor_class"], data["features_extractor_kwargs"]
        data.update(self.trm_config.to_dict())
        del data["halting"], data["halt_max_steps"]
        data.update(vector_tokens=self.vector_tokens, focus_channel=self.focus_channel)
        return data

    @property
    def network(self) -> TRMNetwork:
        """The tokeniser + core + readout (for diagnostics and analysis)."""
        return self.features_extractor.network


class TRMPolicy(_TRMPolicyMixin, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` (PPO, A2C) on the recursive core; the keyword arguments
    are those of :class:`_TRMPolicyMixin` (the TRM settings) plus SB3's."""


class MaskableTRMPolicy(_TRMPolicyMixin, MaskableActorCriticPolicy):
    """sb3-contrib ``MaskableActorCriticPolicy`` (``MaskablePPO``) on the recursive core; the
    keyword arguments are those of :class:`_TRMPolicyMixin` plus SB3's."""
