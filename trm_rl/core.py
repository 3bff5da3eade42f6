"""The recursive core: one small weight-shared block stack applied in H/L cycles.

Knows nothing of RL, environments or SB3; policies and trainers import it.

References:
    A. Jolicoeur-Martineau, "Less is More: Recursive Reasoning with Tiny Networks" (2025).
    SamsungSAILMontreal/TinyRecursiveModels, ``models/recursive_reasoning/trm.py``.

The update, for input tokens ``x [B, T, D]``::

    repeat h_cycles:                       # first h_cycles-1 under no_grad if grad_mode="last"
        repeat l_cycles: z_L = f(z_L + z_H + x)
        z_H = f(z_H + z_L)                 # one state per cycle, for deep supervision
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from trm_rl.config import GRID_MIXERS, TRMConfig, require_int

RMS_EPS = 1e-5


def _mean_of_product(a: Tensor, b: Tensor) -> Tensor:
    """``mean(a * b)`` over the last axis, kept as a size-1 axis (one fused dot product)."""
    return torch.linalg.vecdot(a, b).unsqueeze(-1).div_(a.shape[-1])


class _RMSNorm(torch.autograd.Function):
    """``y = x / sqrt(mean(x ** 2) + eps)`` over the last axis, with the backward written
    out as four tensor ops: ``dx = (g - y * mean(g * y)) / sqrt(mean(x ** 2) + eps)``.
    Autograd's backward of ``F.rms_norm`` chains several more pow/mul/div/sum ops on CPU,
    and the core normalises after every token and channel mix."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        inverse_rms = _mean_of_product(x, x).add_(RMS_EPS).rsqrt_()
        y = x * inverse_rms
        ctx.save_for_backward(y, inverse_rms)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        y, inverse_rms = ctx.saved_tensors
        return torch.addcmul(grad, y, _mean_of_product(grad, y), value=-1.0).mul_(inverse_rms)


def rms_norm(x: Tensor) -> Tensor:
    """Parameter-free RMSNorm over the last axis (as TRM's post-norm); the same values and
    gradients as ``F.rms_norm(x, (D,), eps=RMS_EPS)``, first-order gradients only."""
    return _RMSNorm.apply(x)


def _init_linear(layer: nn.Linear) -> None:
    nn.init.trunc_normal_(layer.weight, std=1.0 / math.sqrt(layer.in_features))


SWIGLU_MULTIPLE = 8
"""SwiGLU inner widths are rounded up to a multiple of this (TRM rounds to 256): CPU matrix
products with widths that are not multiples of 8 run up to 2x slower."""


def swiglu_inner(width: int, expansion: float) -> int:
    """Inner width of a SwiGLU: ``round(expansion * width * 2 / 3)`` rounded up to a multiple
    of :data:`SWIGLU_MULTIPLE`."""
    inner = max(1, round(expansion * width * 2 / 3))
    return -(-inner // SWIGLU_MULTIPLE) * SWIGLU_MULTIPLE


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` over the last axis, no biases."""

    def __init__(self, width: int, expansion: float) -> None:
        super().__init__()
        inner = swiglu_inner(width, expansion)
        self.gate_up = nn.Linear(width, 2 * inner, bias=False)
        self.down = nn.Linear(inner, width, bias=False)
        _init_linear(self.gate_up)
        _init_linear(self.down)

    def forward(self, x: Tensor) -> Tensor:
        # Two products on the weight's halves, not one product then ``chunk``: the chunks
        # would be strided views, on which CPU silu and mul run several times slower.
        inner = self.down.in_features
        gate = F.linear(x, self.gate_up.weight[:inner])
        up = F.linear(x, self.gate_up.weight[inner:])
        return self.down(F.silu(gate) * up)


class SelfAttention(nn.Module):
    """Multi-head self-attention without biases or positional encoding (positions, if
    they matter, are part of the input tokens)."""

    def __init__(self, width: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)
        _init_linear(self.qkv)
        _init_linear(self.out)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.n_heads, width // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, width))


class GridConv(nn.Module):
    """Depthwise 3x3 convolution over a grid of cell tokens, zero-padded, no bias.

    Tokens ``[B, H*W, D]`` (cells in row-major order) -> ``[B, H*W, D]``. The tokens are
    viewed as a channels-last image, which CPU convolutions handle without a copy.
    """

    def __init__(self, width: int, grid_shape: tuple[int, int]) -> None:
        super().__init__()
        self.grid_shape = grid_shape
        self.weight = nn.Parameter(torch.empty(width, 1, 3, 3))
        nn.init.trunc_normal_(self.weight, std=1.0 / 3.0)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        image = x.view(batch, *self.grid_shape, width).permute(0, 3, 1, 2)
        mixed = F.conv2d(image, self.weight, padding=1, groups=width)
        return mixed.permute(0, 2, 3, 1).reshape(batch, tokens, width)


PEER_RELATIONS = ("row", "column", "box")
"""The relations of ``mixer="peers"``, in the order of :class:`PeerMix`'s weight blocks."""


class PeerMix(nn.Module):
    """Token mixing over Sudoku's constraint graph: each cell token reads the sums of its
    row, column and box peers' states, combined by one ``Linear(3 D, D)`` (no bias) over
    their concatenation in :data:`PEER_RELATIONS` order.

    Tokens ``[B, T, D]`` (the cells of a ``side x side`` grid in row-major order, ``side``
    a perfect square) -> ``[B, T, D]``. A cell's output depends only on its peers (7 on a
    4x4 grid, 20 on 9x9), the cells a Sudoku rule relates it to.

    Computed without the ``T x T`` graph: a cell's row peers sum to its row's sum minus the
    cell, and the linear map is applied to the ``side`` unit sums per relation, so one
    call costs ``O(B T D^2)`` instead of ``O(B T^2 D)``.
    """

    def __init__(self, width: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.box = math.isqrt(side)
        self.combine = nn.Linear(len(PEER_RELATIONS) * width, width, bias=False)
        _init_linear(self.combine)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        side, box = self.side, self.box
        grid = x.view(batch, side, side, width)
        row_weight, column_weight, box_weight = self.combine.weight.split(width, dim=1)
        rows = F.linear(grid.sum(2, keepdim=True), row_weight)
        columns = F.linear(grid.sum(1, keepdim=True), column_weight)
        cells_by_box = grid.view(batch, box, box, box, box, width)
        boxes = F.linear(cells_by_box.sum((2, 4), keepdim=True), box_weight)
        units = (rows + columns).view(batch, box, box, box, box, width) + boxes
        selves = F.linear(grid, row_weight + column_weight + box_weight)
        return (units.view(batch, side, side, width) - selves).view(batch, tokens, width)


class Block(nn.Module):
    """Post-norm residual block: optional token mixing, then a channel SwiGLU."""

    def __init__(
        self, config: TRMConfig, n_tokens: int | None, grid_shape: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.mixer = config.mixer
        if config.mixer == "mlp":
            assert n_tokens is not None
            self.token_mix: nn.Module | None = SwiGLU(n_tokens, config.expansion)
        elif config.mixer == "attention":
            self.token_mix = SelfAttention(config.hidden_dim, config.n_heads)
        elif config.mixer == "conv":
            assert grid_shape is not None
            self.token_mix = GridConv(config.hidden_dim, grid_shape)
        elif config.mixer == "peers":
            assert grid_shape is not None
            self.token_mix = PeerMix(config.hidden_dim, grid_shape[0])
        else:
            self.token_mix = None
        self.channel_mix = SwiGLU(config.hidden_dim, config.expansion)

    def forward(self, h: Tensor) -> Tensor:
        if self.mixer == "mlp":
            h = rms_norm(h + self.token_mix(h.transpose(1, 2)).transpose(1, 2))
        elif self.token_mix is not None:
            h = rms_norm(h + self.token_mix(h))
        return rms_norm(h + self.channel_mix(h))


def _mixer_grid(
    mixer: str, n_tokens: int | None, grid_shape: tuple[int, int] | None
) -> tuple[int, int]:
    """The grid of ``mixer="conv"`` or ``"peers"``: ``grid_shape`` if given, else a square of
    ``n_tokens``; ``"peers"`` also needs a square grid whose side is a perfect square >= 4."""
    if grid_shape is None:
        side = math.isqrt(n_tokens or 0)
        if n_tokens is None or side * side != n_tokens:
            raise ValueError(
                f'mixer="{mixer}" needs grid_shape=(H, W), or n_tokens a perfect square; got '
                f"n_tokens={n_tokens!r}"
            )
        grid_shape = (side, side)
    if (
        not isinstance(grid_shape, tuple | list)
        or len(grid_shape) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in grid_shape)
    ):
        raise ValueError(f"grid_shape must be two ints >= 1 (H, W), got {grid_shape!r}")
    if n_tokens is not None and grid_shape[0] * grid_shape[1] != n_tokens:
        raise ValueError(f"grid_shape {tuple(grid_shape)} must hold n_tokens={n_tokens} cells")
    height, width = int(grid_shape[0]), int(grid_shape[1])
    if mixer == "peers" and not (height == width >= 4 and math.isqrt(height) ** 2 == height):
        raise ValueError(
            'mixer="peers" needs a square Sudoku grid whose side is a perfect square >= 4 '
            f"(4x4, 9x9, ...), got grid_shape {(height, width)}"
        )
    return height, width


@dataclass
class Carry:
    """Recurrent state between forward calls (TRM's carry).

    Attributes:
        z_H: ``[B, T, D]`` high-level state (the answer).
        z_L: ``[B, T, D]`` low-level state (the reasoning latent).
        steps: ``[B]`` int64, forward calls since the sequence (re)started.
        halted: ``[B]`` bool; a halted sequence restarts from the initial state on the
            next forward call. Only the halting head (q_halt > 0) or ``halt_max_steps``
            set it; without ``config.halting`` a carry never halts.
    """

    z_H: Tensor
    z_L: Tensor
    steps: Tensor
    halted: Tensor


@dataclass
class CoreOutput:
    """What one forward call returns.

    Attributes:
        states: ``[H, B, T, D]``, z_H after every outer cycle (``states[-1]`` is the final
            answer). With ``grad_mode="last"`` only ``states[-1]`` carries gradients.
        carry: the final state, detached, for the next call.
        halt_logits: ``[B, 2]`` (halt, continue) Q logits, or ``None`` without halting.
    """

    states: Tensor
    carry: Carry
    halt_logits: Tensor | None


class RecursiveCore(nn.Module):
    """TRM's recursion around one shared block stack (or, as an ablation, one stack per
    application: ``config.shared_weights=False``).

    Args:
        config: widths, cycles, mixer, gradient mode, halting.
        n_tokens: token count T; required by ``mixer="mlp"`` (its weights span the token
            axis), optional otherwise.
        grid_shape: ``(H, W)`` with ``H * W = T`` for ``mixer="conv"`` or ``"peers"`` (tokens
            are the cells of that grid in row-major order); defaults to a square grid of
            ``n_tokens``.

    Shapes: input tokens ``x [B, T, D]`` with ``D = config.hidden_dim``; see
    :class:`CoreOutput` for the outputs. With shared weights (the default) the parameter
    count does not depend on ``h_cycles`` or ``l_cycles``; with ``shared_weights=False``
    ``blocks`` holds ``config.applications`` stacks of ``n_layers`` blocks, in order.
    """

    def __init__(
        self,
        config: TRMConfig,
        n_tokens: int | None = None,
        grid_shape: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, TRMConfig):
            raise TypeError(f"config must be a TRMConfig, got {type(config).__name__}")
        if config.mixer == "mlp" and n_tokens is None:
            raise ValueError('n_tokens is required with mixer="mlp" (the token-mixing MLP)')
        require_int("n_tokens", n_tokens, 1, allow_none=True)
        if config.mixer in GRID_MIXERS:
            grid_shape = _mixer_grid(config.mixer, n_tokens, grid_shape)
            n_tokens = grid_shape[0] * grid_shape[1]
        self.config = config
        self.n_tokens = n_tokens
        self.grid_shape = grid_shape
        stacks = 1 if config.shared_weights else config.applications
        self.blocks = nn.ModuleList(
            Block(config, n_tokens, grid_shape) for _ in range(stacks * config.n_layers)
        )
        init = torch.nn.init.trunc_normal_(torch.empty(2, config.hidden_dim), std=1.0)
        if config.learned_init:
            self.init_states = nn.Parameter(init)
        else:
            self.register_buffer("init_states", init)
        if config.halting:
            self.q_head = nn.Linear(config.hidden_dim, 2)
            nn.init.zeros_(self.q_head.weight)
            nn.init.constant_(self.q_head.bias, -5.0)
        else:
            self.q_head = None

    def f(self, h: Tensor, application: int = 0) -> Tensor:
        """The block stack, ``[B, T, D] -> [B, T, D]``: the shared one, or with
        ``shared_weights=False`` the stack of ``application`` (0-based, in the order the
        recursion applies them)."""
        n_layers = self.config.n_layers
        start = 0 if self.config.shared_weights else application * n_layers
        for block in self.blocks[start : start + n_layers]:
            h = block(h)
        return h

    def initial_carry(self, batch: int, n_tokens: int) -> Carry:
        """A carry whose every sequence is marked halted, so it starts from the init states."""
        device = self.init_states.device
        shape = (batch, n_tokens, self.config.hidden_dim)
        z_H = self.init_states[0].detach().expand(shape)
        z_L = self.init_states[1].detach().expand(shape)
        steps = torch.zeros(batch, dtype=torch.long, device=device)
        halted = torch.ones(batch, dtype=torch.bool, device=device)
        return Carry(z_H, z_L, steps, halted)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor [B, T, D], got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.config.hidden_dim:
            raise ValueError(
                f"x must have shape [B, T, {self.config.hidden_dim}], got {tuple(x.shape)}"
            )
        if self.n_tokens is not None and x.shape[1] != self.n_tokens:
            raise ValueError(f"x must have {self.n_tokens} tokens, got {x.shape[1]}")

    def forward(self, x: Tensor, carry: Carry | None = None) -> CoreOutput:
        """Run ``h_cycles`` outer cycles on tokens ``x [B, T, D]``.

        Sequences marked halted in ``carry`` (all of them when ``carry`` is None) restart
        from the initial states; the others continue from their carry.
        """
        self._check_input(x)
        batch, n_tokens, _ = x.shape
        if carry is None:
            carry = self.initial_carry(batch, n_tokens)
        restart = carry.halted.view(batch, 1, 1)
        z_H = torch.where(restart, self.init_states[0], carry.z_H)
        z_L = torch.where(restart, self.init_states[1], carry.z_L)

        states = []
        last = self.config.h_cycles - 1
        application = 0
        for cycle in range(self.config.h_cycles):
            tracked = self.config.grad_mode == "full" or cycle == last
            with torch.set_grad_enabled(tracked and torch.is_grad_enabled()):
                for _ in range(self.config.l_cycles):
                    z_L = self.f(z_L + z_H + x, application)
                    application += 1
                z_H = self.f(z_H + z_L, application)
                application += 1
            states.append(z_H)

        steps = torch.where(carry.halted, 0, carry.steps) + 1
        halt_logits = None
        if self.q_head is None:
            halted = torch.zeros_like(carry.halted)
        else:
            halt_logits = self.q_head(z_H.mean(dim=1)).float()
            halted = (steps >= self.config.halt_max_steps) | (halt_logits[:, 0] > 0)
        new_carry = Carry(z_H.detach(), z_L.detach(), steps, halted.detach())
        return CoreOutput(torch.stack(states), new_carry, halt_logits)
