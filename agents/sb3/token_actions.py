"""Per-token actions: ``Discrete(T * k)``, choice ``j`` at observation token ``t`` is action
``t * k + j`` (e.g. Sudoku's ``9 * cell + digit - 1``), read from each token's final state.

:class:`TokenLatents` routes the token states to the actor and the pooled features to the
critic, :class:`TokenActionHead` turns token states into action logits, jointly (one logit
per action) or factored (a token, then one of its choices), and
:class:`FactoredTokenDistribution` makes the factored choice respect an action mask.
"""

from __future__ import annotations

import torch
from sb3_contrib.common.maskable.distributions import (
    MaskableCategorical,
    MaskableCategoricalDistribution,
    MaybeMasks,
)
from torch import Tensor, nn

HUGE_NEG = -1e8
"""The logit of an action a mask forbids (sb3-contrib's value)."""


class TokenLatents(nn.Module):
    """SB3's ``mlp_extractor`` for per-token actions: the actor gets the flattened token
    states ``[B, T * D]``, the critic the pooled features ``[B, P]``."""

    def __init__(self, pooled_dim: int, token_dim: int) -> None:
        super().__init__()
        self.latent_dim_pi = token_dim
        self.latent_dim_vf = pooled_dim

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: Tensor) -> Tensor:
        return features[..., self.latent_dim_vf :]

    def forward_critic(self, features: Tensor) -> Tensor:
        return features[..., : self.latent_dim_vf]


class TokenActionHead(nn.Module):
    """Per-token logits: ``[B, T * D] -> [B, T * k]`` through one linear layer shared by all
    tokens (TRM's per-token output head); action ``t * k + j`` is choice ``j`` at token ``t``
    (e.g. Sudoku's ``4 * cell + digit - 1``).

    Joint (default): ``Linear(D, k)`` gives each (token, choice) its own logit, so a token's
    share of the probability grows with its number of legal choices. Factored: ``Linear(D,
    k + 1)`` gives a token logit ``a_t`` and choice logits ``c_tj``, and the action logit is
    ``a_t + log_softmax_j(c_t)[j]``: choose a token, then one of its choices, so
    ``pi(t) ~ exp(a_t)`` whatever its number of choices (under an action mask too, with
    :class:`FactoredTokenDistribution`, which ``MaskableTRMPolicy`` then uses).
    """

    def __init__(self, hidden_dim: int, per_token: int, factored: bool = False) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.factored = factored
        self.linear = nn.Linear(hidden_dim, per_token + int(factored))

    def forward(self, latent: Tensor) -> Tensor:
        logits = self.linear(latent.unflatten(-1, (-1, self.hidden_dim)))
        if self.factored:
            logits = logits[..., :1] + torch.log_softmax(logits[..., 1:], dim=-1)
        return logits.flatten(-2)


class FactoredTokenDistribution(MaskableCategoricalDistribution):
    """sb3-contrib's masked categorical over ``T * k`` actions for the factored
    :class:`TokenActionHead`: under a mask, each token's choices are renormalised over the
    legal ones, so ``pi(t, j) = softmax_t(a)[t] * softmax_{legal j}(c_t)[j]`` over the
    tokens with a legal choice.

    The head's logits ``v_tj = a_t + log_softmax_j(c_t)[j]`` carry the token logit as
    ``a_t = logsumexp_j v_tj``, so the masked logits are ``v_tj - logsumexp_{legal j} v_tj
    + a_t``. Without a mask the distribution is the head's (choices normalised over all
    ``k``).

    Args:
        n_tokens: ``T``.
        per_token: ``k``.
    """

    def __init__(self, n_tokens: int, per_token: int) -> None:
        super().__init__(n_tokens * per_token)
        self.per_token = per_token

    def apply_masking(self, masks: MaybeMasks) -> None:
        if masks is None:
            super().apply_masking(None)
            return
        logits = self.distribution._original_logits.unflatten(-1, (-1, self.per_token))
        legal = torch.as_tensor(masks, dtype=torch.bool, device=logits.device)
        legal = legal.reshape(logits.shape)
        token = torch.logsumexp(logits, dim=-1, keepdim=True)
        allowed = torch.logsumexp(logits.masked_fill(~legal, HUGE_NEG), dim=-1, keepdim=True)
        allowed = torch.where(legal.any(dim=-1, keepdim=True), allowed, token)
        self.distribution = MaskableCategorical(
            logits=(logits - allowed + token).flatten(-2), masks=legal.flatten(-2)
        )
