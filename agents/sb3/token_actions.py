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
TOKEN_SELECTIONS = ("learned", "confidence")
"""How a factored head chooses its token (see :class:`TokenActionHead`)."""


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
    share of the probability grows with its number of legal choices. Factored: choice logits
    ``c_tj`` and a token logit ``a_t``, and the action logit is ``a_t +
    log_softmax_j(c_t)[j]``: choose a token, then one of its choices, so ``pi(t) ~ exp(a_t)``
    whatever its number of choices (under an action mask too, with
    :class:`FactoredTokenDistribution`, which ``MaskableTRMPolicy`` then uses). The token
    logit is learned (``token_selection="learned"``: ``Linear(D, k + 1)``, ``a_t`` first) or
    the token's confidence (``"confidence"``: ``Linear(D, k)`` and ``a_t = beta * max_j
    log_softmax_j(c_t)[j]``, detached from the graph, so ``pi(t)`` is proportional to the
    probability of the token's best choice to the power ``beta = confidence_power``; under
    a mask the distribution takes the maximum over the legal choices). ``beta`` sets how
    strongly sampling prefers certain tokens; the greedy action does not depend on it.
    """

    def __init__(
        self,
        hidden_dim: int,
        per_token: int,
        factored: bool = False,
        token_selection: str = "learned",
        confidence_power: float = 1.0,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.factored = factored
        self.confidence_power = confidence_power
        self.learned_token = factored and token_selection == "learned"
        self.linear = nn.Linear(hidden_dim, per_token + int(self.learned_token))

    def forward(self, latent: Tensor) -> Tensor:
        logits = self.linear(latent.unflatten(-1, (-1, self.hidden_dim)))
        if self.learned_token:
            logits = logits[..., :1] + torch.log_softmax(logits[..., 1:], dim=-1)
        elif self.factored:
            choice = torch.log_softmax(logits, dim=-1)
            best = choice.amax(dim=-1, keepdim=True).detach()
            logits = choice + self.confidence_power * best
        return logits.flatten(-2)


class FactoredTokenDistribution(MaskableCategoricalDistribution):
    """sb3-contrib's masked categorical over ``T * k`` actions for the factored
    :class:`TokenActionHead`: under a mask, each token's choices are renormalised over the
    legal ones, so ``pi(t, j) = softmax_t(a)[t] * softmax_{legal j}(c_t)[j]`` over the
    tokens with a legal choice.

    The head's logits ``v_tj = a_t + log_softmax_j(c_t)[j]`` carry the token logit as
    ``a_t = logsumexp_j v_tj``, so the masked logits are ``v_tj - logsumexp_{legal j} v_tj
    + a_t``. With ``token_selection="confidence"`` the token logit is ``beta * max_{legal
    j} log pi(j | t)`` instead of the head's ``a_t``, detached from the graph: a token's
    probability is proportional to its best choice's to the power ``beta``, the greedy
    action is the single most certain (token, choice) whatever ``beta``, and only the choice
    logits are trained. Without a mask the distribution is the head's.

    Args:
        n_tokens: ``T``.
        per_token: ``k``.
        token_selection: one of :data:`TOKEN_SELECTIONS`, as the head's.
        confidence_power: ``beta``, as the head's.
    """

    def __init__(
        self,
        n_tokens: int,
        per_token: int,
        token_selection: str = "learned",
        confidence_power: float = 1.0,
    ) -> None:
        super().__init__(n_tokens * per_token)
        self.per_token = per_token
        self.token_selection = token_selection
        self.confidence_power = confidence_power

    def apply_masking(self, masks: MaybeMasks) -> None:
        if masks is None:
            super().apply_masking(None)
            return
        logits = self.distribution._original_logits.unflatten(-1, (-1, self.per_token))
        legal = torch.as_tensor(masks, dtype=torch.bool, device=logits.device)
        legal = legal.reshape(logits.shape)
        any_legal = legal.any(dim=-1, keepdim=True)
        token = torch.logsumexp(logits, dim=-1, keepdim=True)
        allowed = torch.logsumexp(logits.masked_fill(~legal, HUGE_NEG), dim=-1, keepdim=True)
        choice = logits - torch.where(any_legal, allowed, token)
        if self.token_selection == "confidence":
            best = choice.masked_fill(~legal, HUGE_NEG).amax(dim=-1, keepdim=True)
            token = torch.where(any_legal, self.confidence_power * best, 0.0).detach()
        self.distribution = MaskableCategorical(
            logits=(choice + token).flatten(-2), masks=legal.flatten(-2)
        )
