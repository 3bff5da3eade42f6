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

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor

from trm_rl.agents.network import POSITIONS, TRMNetwork
from trm_rl.agents.sb3.token_actions import (
    TOKEN_SELECTIONS,
    FactoredTokenDistribution,
    TokenActionHead,
    TokenLatents,
)
from trm_rl.config import TRMConfig, require_bool, require_choice, require_number

TRM_FIELDS = (
    "hidden_dim",
    "n_layers",
    "h_cycles",
    "l_cycles",
    "mixer",
    "n_heads",
    "expansion",
    "grad_mode",
    "learned_init",
    "shared_weights",
)
"""The ``TRMConfig`` fields a policy accepts as ``policy_kwargs`` (not the halting head: a
policy makes one forward call per environment step and keeps no carry)."""
POLICY_DEFAULTS: dict[str, Any] = {
    **{name: getattr(TRMConfig(), name) for name in TRM_FIELDS},
    "mixer": "auto",
}
"""The policy's defaults for the core: :class:`TRMConfig`'s, with ``mixer="auto"`` (chosen
from the observation space, :func:`resolve_mixer`)."""


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

    ``F`` is the readout's pooled width, plus ``T * D`` (every token's final z_H, flattened)
    with ``token_features``.

    Args:
        observation_space: the environment's observation space.
        trm: :class:`TRMConfig` fields as a dict (``mixer`` already resolved).
        vector_tokens: ``"single"`` or ``"per_feature"`` tokens for vector observations.
        focus_channel: grid channel whose marked cells the readout pools (see
            :class:`~trm_rl.agents.network.TRMNetwork`), or ``None``.
        token_features: append the flattened token states (for per-token action heads).
        positions: ``"learned"`` or ``"none"`` token positions (see
            :data:`~trm_rl.agents.network.POSITIONS`).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        trm: dict[str, Any],
        vector_tokens: str = "single",
        focus_channel: int | None = None,
        token_features: bool = False,
        positions: str = "learned",
    ) -> None:
        network = TRMNetwork(
            observation_space, TRMConfig(**trm), vector_tokens, focus_channel, positions
        )
        self.pooled_dim = network.features_dim
        self.token_dim = network.tokenizer.n_tokens * network.tokenizer.hidden_dim
        super().__init__(
            observation_space, self.pooled_dim + (self.token_dim if token_features else 0)
        )
        self.network = network
        self.token_features = token_features

    def forward(self, observations: Tensor) -> Tensor:
        x, out = self.network.recurse(observations)
        return self.features(out.states[-1], x, observations)

    def features(self, states: Tensor, x: Tensor, observations: Tensor) -> Tensor:
        """Features ``[..., B, F]`` of token states ``[..., B, T, D]`` (any cycle's)."""
        pooled = self.network.read(states, x, observations)
        if not self.token_features:
            return pooled
        return torch.cat([pooled, states.flatten(-2)], dim=-1)


class TRMPolicyMixin:
    """Builds the TRM features extractor and passes everything else to the SB3 policy.

    Keyword Args:
        hidden_dim: width D of tokens and states (default 32).
        n_layers: blocks in the shared stack (default 1).
        h_cycles: outer cycles H (default 3).
        l_cycles: inner z_L updates per outer cycle (default 2).
        mixer: ``"auto"`` (default: ``"conv"`` on grids, ``"mlp"`` on other multi-token
            observations, ``"none"`` on vectors), ``"mlp"``, ``"attention"``, ``"conv"``,
            ``"peers"`` (Sudoku's row/column/box graph; square grids of side 4, 9, ...),
            ``"none"``.
        n_heads: attention heads (``mixer="attention"``; default 4).
        expansion: SwiGLU expansion (default 2.0).
        grad_mode: ``"full"`` (default: backpropagate through every cycle) or ``"last"``
            (TRM's one-step gradient: the first H-1 cycles run without autograd, so updates
            are cheaper; how it trades speed for samples: ``benchmarks/RESULTS.md``,
            section 2).
        learned_init: learn the initial z_H, z_L (default False).
        shared_weights: one block stack for every step of the recursion (default True);
            False gives each application its own stack (the benchmark's ``unshared-k3``
            ablation: same compute, ``h_cycles * (l_cycles + 1)`` times the block weights).
        vector_tokens: ``"single"`` (default) or ``"per_feature"``.
        focus_channel: for ``(C, H, W)`` grids, the channel marking the cell(s) the readout
            pools, e.g. 1 (the agent) in a maze; ``None`` (default) learns the pool.
        positions: ``"learned"`` (default: a learned vector added to each token, ``[T, D]``)
            or ``"none"`` (no position; on grids the conv mixer's zero padding gives
            locality and a walls channel the border). With ``"none"`` on a ``(C, H, W)`` grid
            and a mixer other than ``"mlp"``, no parameter depends on ``H, W``: the policy
            built for a ``(C, n, n)`` space loads the weights of one trained on ``(C, m, m)``
            (``trm_rl.load_agent(..., observation_space=...)``). Saved with the policy.
        token_actions: read ``Discrete(T * k)`` actions per token, ``k`` logits from each
            token's final z_H through one shared head (:class:`TokenActionHead`), e.g.
            Sudoku's 16 cells x 4 digits; the value still reads the pooled features.
            Default False (actions from the pooled features).
        factored_actions: with ``token_actions``, choose a token, then one of its ``k``
            choices (:class:`TokenActionHead`, factored): a token's probability does not
            grow with its number of legal choices. Default False (one logit per action).
        token_selection: with ``factored_actions``, how the token is chosen: ``"learned"``
            (default: its own logit) or ``"confidence"`` (the token whose most probable legal
            choice is the most probable; only the choice logits are trained; greedy then
            plays the single most certain move). See :class:`FactoredTokenDistribution`.
        confidence_power: with ``token_selection="confidence"``, ``beta > 0``: a token is
            sampled with probability proportional to its best choice's probability to the
            power ``beta`` (default 1; larger samples the certain moves more often, e.g. a
            Sudoku cell with one legal digit over a guess between two). Greedy actions do
            not depend on it.
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
        token_actions: bool = False,
        factored_actions: bool = False,
        token_selection: str = "learned",
        confidence_power: float = 1.0,
        positions: str = "learned",
        **kwargs: Any,
    ) -> None:
        fields = {name: kwargs.pop(name, POLICY_DEFAULTS[name]) for name in TRM_FIELDS}
        for name in ("features_extractor_class", "features_extractor_kwargs"):
            if name in kwargs:
                raise TypeError(
                    f"{type(self).__name__} builds its own features extractor; remove {name} "
                    f"and pass the TRM settings {TRM_FIELDS} as policy_kwargs"
                )
        require_choice("positions", positions, POSITIONS)
        fields["mixer"] = resolve_mixer(observation_space, fields["mixer"], vector_tokens)
        self.trm_config = TRMConfig(**fields)
        self.vector_tokens = vector_tokens
        self.positions = positions
        self.focus_channel = focus_channel
        self.token_actions = token_actions
        require_bool("token_actions", token_actions)
        require_bool("factored_actions", factored_actions)
        if factored_actions and not token_actions:
            raise ValueError("factored_actions=True needs token_actions=True (per-token actions)")
        self.factored_actions = factored_actions
        require_choice("token_selection", token_selection, TOKEN_SELECTIONS)
        if token_selection != "learned" and not factored_actions:
            raise ValueError(
                f"token_selection={token_selection!r} needs factored_actions=True "
                "(a token, then one of its choices)"
            )
        self.token_selection = token_selection
        require_number("confidence_power", confidence_power, 0.0, low_open=True)
        if confidence_power != 1.0 and token_selection != "confidence":
            raise ValueError(
                f"confidence_power={confidence_power} needs token_selection='confidence'"
            )
        self.confidence_power = float(confidence_power)
        if token_actions and kwargs.get("net_arch"):
            raise ValueError("token_actions=True reads the token states directly; drop net_arch")
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
                "token_features": token_actions,
                "positions": positions,
            },
            **kwargs,
        )

    def _build_mlp_extractor(self) -> None:
        if not self.token_actions:
            super()._build_mlp_extractor()
            return
        extractor = self.features_extractor
        n_tokens = extractor.network.tokenizer.n_tokens
        if not (
            isinstance(self.action_space, spaces.Discrete)
            and n_tokens > 1
            and self.action_space.n % n_tokens == 0
        ):
            raise ValueError(
                f"token_actions needs a Discrete(T * k) action space with T = {n_tokens} "
                f"observation tokens, got {self.action_space}; use token_actions=False"
            )
        self.mlp_extractor = TokenLatents(extractor.pooled_dim, extractor.token_dim)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        if self.token_actions:
            n_tokens = self.features_extractor.network.tokenizer.n_tokens
            per_token = int(self.action_space.n) // n_tokens
            self.action_net = TokenActionHead(
                self.trm_config.hidden_dim,
                per_token,
                self.factored_actions,
                self.token_selection,
                self.confidence_power,
            )
            if self.factored_actions and isinstance(
                self.action_dist, MaskableCategoricalDistribution
            ):
                self.action_dist = FactoredTokenDistribution(
                    n_tokens, per_token, self.token_selection, self.confidence_power
                )
        if not self.ortho_init:
            self.action_net.apply(partial(self.init_weights, gain=0.01))
            self.value_net.apply(partial(self.init_weights, gain=1.0))
        if self.token_actions:
            self.optimizer = self.optimizer_class(
                self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        del data["features_extractor_class"], data["features_extractor_kwargs"]
        data.update(self.trm_config.to_dict())
        del data["halting"], data["halt_max_steps"]
        data.update(
            vector_tokens=self.vector_tokens,
            focus_channel=self.focus_channel,
            token_actions=self.token_actions,
            factored_actions=self.factored_actions,
            token_selection=self.token_selection,
            confidence_power=self.confidence_power,
            positions=self.positions,
        )
        return data

    @property
    def network(self) -> TRMNetwork:
        """The tokeniser + core + readout (for diagnostics and analysis)."""
        return self.features_extractor.network


class TRMPolicy(TRMPolicyMixin, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` (PPO, A2C) on the recursive core; the keyword arguments
    are those of :class:`TRMPolicyMixin` (the TRM settings) plus SB3's."""


class MaskableTRMPolicy(TRMPolicyMixin, MaskableActorCriticPolicy):
    """sb3-contrib ``MaskableActorCriticPolicy`` (``MaskablePPO``) on the recursive core; the
    keyword arguments are those of :class:`TRMPolicyMixin` plus SB3's."""
