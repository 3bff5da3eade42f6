"""A recursive controller: plans a whole Van der Pol control sequence and refines it.

From the TinyRecursiveControl write-ups, on the shared :class:`~trm_rl.RecursiveCore`::

    a_{-1} = 0, u_{-1} = 0
    for k = 0 .. K:                                   # K = iterations
        e_k   = rollout(s_0, u_{k-1}) - s*            # simulated trajectory error [B, T+1, 2]
        x_k   = embed(s_0, s*, u_{k-1}, e_k, e_k[T])  # one token, or tokens over time chunks
        z_k   = reason(x_k, carry)                    # see below
        a_k   = a_{k-1} + decoder(z_k)                # residual refinement (pre-activation)
        u_k   = 2 tanh(a_k)                           # bounded to [-2, 2]

``u_0`` is the initial guess, ``u_1 .. u_K`` its refinements. ``reason`` is, per
iteration, ``h_cycles`` cycles of the core: "two_level" runs the core's own recursion
(``l_cycles`` updates of z_L, then one of z_H, carried in the core's ``Carry``);
"single_latent" applies the core's shared block stack ``f`` to a single latent,
``z = f(z + x)``, ``l_cycles + 1`` times per cycle (the same number of ``f`` calls).

Between iterations, the plan (``a_k``, ``e_{k+1}``, its cost) and the latent are carried
detached, like TRM's carry between supervision steps: each iteration is a separate step
(:meth:`RecursiveControlModel.iterate`) that a trainer can supervise and update on its own.

With ``safeguard`` (an acceptance test, as in trust-region methods), a problem keeps its
current plan when the proposed refinement's simulated cost is higher; the latent still
advances, so the next iteration proposes afresh. The proposals are what training
supervises; the accepted plans are what the model answers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trm_rl.config import TRMConfig, require_bool, require_choice, require_int
from trm_rl.core import Carry, RecursiveCore
from trm_rl.envs.dynamics import HORIZON, U_MAX, rollout, trajectory_cost

MODES = ("two_level", "single_latent")
TOKEN_MIXERS = ("mlp", "attention")
ERROR_SCALE = 2.0
"""Trajectory errors are divided by this before embedding (states lie within a few units)."""
TERMINAL_SCALE = 0.1
"""The final state's error is also given to every token divided by this (the success
radius), so that the small terminal errors left in late iterations stand out."""


@dataclass(frozen=True)
class ControlModelConfig:
    """Shape of a :class:`RecursiveControlModel`."""

    mode: str = "single_latent"
    """"two_level": the core's z_H/z_L recursion; "single_latent": one latent updated by the
    core's shared block stack."""
    iterations: int = 6
    """Refinement iterations K after the initial guess (outputs: K + 1 control sequences)."""
    h_cycles: int = 1
    """Core cycles per iteration."""
    l_cycles: int = 2
    """z_L updates per core cycle ("two_level"; "single_latent" makes ``l_cycles + 1``
    updates of its latent per cycle)."""
    hidden_dim: int = 64
    """Width of the tokens and latents."""
    n_layers: int = 2
    """Residual blocks in the core's shared stack."""
    expansion: float = 4.0
    """SwiGLU expansion of the core's blocks."""
    tokens: int = 1
    """Tokens per iteration: 1 (the whole sequence in one token, no token mixing), or a
    divisor of the horizon (tokens over equal time chunks, mixed by ``mixer``)."""
    mixer: str = "mlp"
    """Token mixing when ``tokens > 1``: "mlp" or "attention"."""
    truncate_gradients: bool = False
    """Run the first ``h_cycles - 1`` cycles of each iteration under ``torch.no_grad()``
    (TRM's one-step gradient; the core's ``grad_mode="last"``)."""
    value_head: bool = False
    """Add a head predicting ``log(1 + J(u_k))`` from each iteration's latent."""
    safeguard: bool = True
    """Keep the current plan where a refinement's simulated cost is higher (see above)."""

    def __post_init__(self) -> None:
        require_choice("mode", self.mode, MODES)
        require_choice("mixer", self.mixer, TOKEN_MIXERS)
        require_int("iterations", self.iterations, 0)
        require_int("tokens", self.tokens, 1)
        if HORIZON % self.tokens:
            raise ValueError(f"tokens must divide the horizon {HORIZON}, got {self.tokens}")
        for name in ("truncate_gradients", "value_head", "safeguard"):
            require_bool(name, getattr(self, name))
        self.core_config()

    def core_config(self) -> TRMConfig:
        """The core's configuration (it validates the shared fields)."""
        return TRMConfig(
            hidden_dim=self.hidden_dim,
            n_layers=self.n_layers,
            h_cycles=self.h_cycles,
            l_cycles=self.l_cycles,
            mixer="none" if self.tokens == 1 else self.mixer,
            expansion=self.expansion,
            grad_mode="last" if self.truncate_gradients else "full",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return asdict(self)


@dataclass
class PlanState:
    """What one iteration hands to the next (all detached).

    Attributes:
        logits: ``[B, T]`` pre-activation controls ``a`` of the current plan (``u = 2 tanh(a)``).
        error: ``[B, T + 1, 2]`` simulated trajectory error ``s_t - s*`` of ``u``.
        cost: ``[B]`` cost ``J(u)``.
        latent: the core's :class:`~trm_rl.core.Carry` ("two_level"), the latent
            ``[B, tokens, D]`` ("single_latent"), or ``None`` before the first iteration.
    """

    logits: Tensor
    error: Tensor
    cost: Tensor
    latent: Carry | Tensor | None


@dataclass
class IterationOutput:
    """One iteration's proposal and the resulting plan.

    Attributes:
        controls: ``[B, T]`` proposed controls in ``[-2, 2]``, with gradients.
        trajectory: ``[B, T + 1, 2]`` their simulated states, with gradients (``None`` when
            not simulated: ``simulate=False`` without ``safeguard``).
        cost: ``[B]`` their cost ``J``, with gradients (``None`` when not simulated).
        value: ``[B]`` predicted ``log(1 + J)``, or ``None`` without a value head.
        accepted: ``[B]`` bool, where the proposal became the plan.
        state: the detached carry for the next iteration (the plan after this iteration).
    """

    controls: Tensor
    trajectory: Tensor | None
    cost: Tensor | None
    value: Tensor | None
    accepted: Tensor
    state: PlanState


@dataclass
class ControlOutput:
    """Every iteration of one forward call.

    Attributes:
        controls: ``[K + 1, B, T]`` the plans ``u_0 .. u_K`` after each iteration, in
            ``[-2, 2]``.
        trajectories: ``[K + 1, B, T + 1, 2]`` their simulated states (detached), or
            ``None`` when the forward call was made with ``simulate=False``.
        values: ``[K + 1, B]`` predicted ``log(1 + J)`` of each proposal, or ``None``
            without a value head.
        accepted: ``[K + 1, B]`` bool, where each iteration's proposal was accepted.
    """

    controls: Tensor
    trajectories: Tensor | None
    values: Tensor | None
    accepted: Tensor


class RecursiveControlModel(nn.Module):
    """Maps initial states and targets to refined control sequences (see module docstring).

    Args:
        config: the model's shape.

    Shapes: ``states [B, 2]``, ``targets [B, 2]`` -> :class:`ControlOutput`.
    """

    def __init__(self, config: ControlModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ControlModelConfig):
            raise TypeError(f"config must be a ControlModelConfig, got {type(config).__name__}")
        self.config = config
        tokens = config.tokens
        self.chunk = HORIZON // tokens
        self.core = RecursiveCore(config.core_config(), n_tokens=tokens)
        self.embed = nn.Linear(6 + 3 * self.chunk, config.hidden_dim, bias=False)
        self.positions = nn.Parameter(torch.zeros(tokens, config.hidden_dim))
        self.decoder = nn.Linear(config.hidden_dim, self.chunk)
        nn.init.zeros_(self.decoder.weight)
        nn.init.zeros_(self.decoder.bias)
        self.value = nn.Linear(config.hidden_dim, 1) if config.value_head else None

    def _tokens(self, states: Tensor, targets: Tensor, plan: PlanState) -> Tensor:
        """Features of the current plan -> tokens ``[B, tokens, D]``."""
        batch, tokens = states.shape[0], self.config.tokens
        terminal = plan.error[:, -1] / TERMINAL_SCALE
        problem = torch.cat((states, targets, terminal), 1).unsqueeze(1).expand(batch, tokens, 6)
        controls = (torch.tanh(plan.logits)).view(batch, tokens, self.chunk)
        error = (plan.error[:, 1:] / ERROR_SCALE).reshape(batch, tokens, 2 * self.chunk)
        return self.embed(torch.cat((problem, controls, error), 2)) + self.positions

    def _reason(self, x: Tensor, latent: Carry | Tensor | None) -> tuple[Tensor, Any]:
        """One iteration of latent reasoning: ``x [B, T, D]`` -> (answer ``[B, T, D]``, carry)."""
        if self.config.mode == "two_level":
            output = self.core(x, latent)
            return output.states[-1], output.carry
        z = self.core.init_states[0].expand_as(x) if latent is None else latent
        last = self.config.h_cycles - 1
        for cycle in range(self.config.h_cycles):
            tracked = not self.config.truncate_gradients or cycle == last
            with torch.set_grad_enabled(tracked and torch.is_grad_enabled()):
                for _ in range(self.config.l_cycles + 1):
                    z = self.core.f(z + x)
        return z, z.detach()

    def start(self, states: Tensor, targets: Tensor | None = None) -> tuple[Tensor, PlanState]:
        """Check the problems and build the carry of the zero plan (``u = 0``, its free
        trajectory). Returns ``(targets, state)``, targets ``[B, 2]`` (zeros for ``None``)."""
        if not isinstance(states, Tensor) or states.dim() != 2 or states.shape[1] != 2:
            raise ValueError(f"states must be a tensor of shape [B, 2], got {states!r:.80}")
        targets = torch.zeros_like(states) if targets is None else targets
        if targets.shape != states.shape:
            raise ValueError(
                f"targets must have the shape of states {tuple(states.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        logits = states.new_zeros(states.shape[0], HORIZON)
        with torch.no_grad():
            trajectory = rollout(states, logits)
            cost = trajectory_cost(trajectory, logits, targets)
        return targets, PlanState(logits, trajectory - targets.unsqueeze(1), cost, None)

    def iterate(
        self, states: Tensor, targets: Tensor, state: PlanState, simulate: bool = True
    ) -> IterationOutput:
        """One refinement iteration from the carry ``state`` (``targets`` as from
        :meth:`start`). ``simulate=False`` skips the rollout of the proposal where the
        safeguard does not need it (the next state's error and cost are then stale)."""
        batch = states.shape[0]
        x = self._tokens(states, targets, state)
        z, latent = self._reason(x, state.latent)
        logits = state.logits + self.decoder(z).reshape(batch, HORIZON)
        controls = U_MAX * torch.tanh(logits)
        value = None if self.value is None else self.value(z.mean(1)).squeeze(1)
        accepted = torch.ones(batch, dtype=torch.bool, device=states.device)
        if not (simulate or self.config.safeguard):
            plan = PlanState(logits.detach(), state.error, state.cost, latent)
            return IterationOutput(controls, None, None, value, accepted, plan)
        trajectory = rollout(states, controls)
        cost = trajectory_cost(trajectory, controls, targets)
        if self.config.safeguard:
            accepted = cost.detach() <= state.cost
        keep = accepted.unsqueeze(1)
        plan = PlanState(
            logits=torch.where(keep, logits.detach(), state.logits),
            error=torch.where(
                keep.unsqueeze(2), trajectory.detach() - targets.unsqueeze(1), state.error
            ),
            cost=torch.where(accepted, cost.detach(), state.cost),
            latent=latent,
        )
        return IterationOutput(controls, trajectory, cost, value, accepted, plan)

    def forward(
        self, states: Tensor, targets: Tensor | None = None, simulate: bool = True
    ) -> ControlOutput:
        """Plan for ``states [B, 2]`` towards ``targets [B, 2]`` (``None``: the origin).

        With ``simulate=False`` the final plan is not simulated unless the safeguard needs
        it (planning needs only the controls) and ``trajectories`` is ``None``.
        """
        targets, state = self.start(states, targets)
        plans, trajectories, values, accepted = [], [], [], []
        for iteration in range(self.config.iterations + 1):
            last = iteration == self.config.iterations
            output = self.iterate(states, targets, state, simulate=simulate or not last)
            state = output.state
            plans.append(U_MAX * torch.tanh(state.logits))
            trajectories.append(state.error + targets.unsqueeze(1))
            values.append(output.value)
            accepted.append(output.accepted)
        return ControlOutput(
            controls=torch.stack(plans),
            trajectories=torch.stack(trajectories) if simulate else None,
            values=None if self.value is None else torch.stack(values),
            accepted=torch.stack(accepted),
        )
