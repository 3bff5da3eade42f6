"""Configuration of the recursive core."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MIXERS = ("mlp", "attention", "conv", "peers", "none")
GRID_MIXERS = ("conv", "peers")
"""The mixers whose tokens are the cells of a grid (they need its shape)."""
GRAD_MODES = ("full", "last")


def require_int(name: str, value: Any, low: int, allow_none: bool = False) -> None:
    """Raise naming ``name`` unless ``value`` is an int >= ``low`` (or None if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {low}, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def require_number(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise naming ``name`` unless ``value`` is a real number in ``[low, high]`` (the
    bound excluded with ``low_open`` / ``high_open``): ``TypeError`` for a non-number
    (bools included), else ``ValueError``."""
    bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number in {bounds}, got {value!r}")
    above_low = value > low if low_open else value >= low
    below_high = value < high if high_open else value <= high
    if not (above_low and below_high):
        raise ValueError(f"{name} must be in {bounds}, got {value}")


def require_bool(name: str, value: Any) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def require_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class TRMConfig:
    """Shape and schedule of a :class:`~trm_rl.RecursiveCore`. Its defaults are the
    policies' defaults (``TRMPolicy``, the REINFORCE agent); the per-env recipes
    (:mod:`trm_rl.agents.sb3.hyperparams`) override single fields.

    The core applies one shared block stack ``f`` as
    ``h_cycles x (l_cycles x [z_L = f(z_L + z_H + x)], then z_H = f(z_H + z_L))``
    (with ``shared_weights=False``, a separate stack at each of these applications).
    """

    hidden_dim: int = 32
    """Width D of every token, of z_H and of z_L."""
    n_layers: int = 1
    """Residual blocks in the shared stack ``f``."""
    h_cycles: int = 3
    """Outer cycles H; one z_H (one deep-supervision target) per cycle."""
    l_cycles: int = 2
    """Inner z_L updates per outer cycle."""
    mixer: str = "mlp"
    """Token mixing: "mlp" (TRM's mlp_t, a SwiGLU across a fixed token axis), "attention",
    "conv" (a depthwise 3x3 convolution over a grid of cell tokens: each cell reads its 8
    neighbours, cheap and local, for mazes), "peers" (each cell of a Sudoku grid reads its
    row, column and box peers: the constraint graph, for Sudoku), or "none" (tokens processed
    independently, e.g. a single vector token)."""
    n_heads: int = 4
    """Attention heads (mixer "attention" only); must divide ``hidden_dim``."""
    expansion: float = 2.0
    """SwiGLU expansion: inner width is ``round(expansion * width * 2 / 3)``, rounded up to a
    multiple of 8 (fast CPU matrix products)."""
    grad_mode: str = "full"
    """"full": backpropagate through every cycle; "last": run the first ``h_cycles - 1``
    cycles under ``torch.no_grad()`` (TRM's one-step gradient)."""
    halting: bool = False
    """Add TRM's Q head (two logits: halt, continue) for adaptive computation."""
    halt_max_steps: int = 8
    """Forward calls after which a sequence always halts (with ``halting``)."""
    learned_init: bool = False
    """Learn the initial z_H and z_L (else fixed random buffers, as TRM)."""
    shared_weights: bool = True
    """One block stack ``f`` applied at every step of the recursion (TRM). False: an
    ablation with the same schedule and compute, where each of the
    ``h_cycles * (l_cycles + 1)`` applications has its own stack (an ordinary deep network,
    ``h_cycles * (l_cycles + 1)`` times the block parameters)."""

    def __post_init__(self) -> None:
        require_int("hidden_dim", self.hidden_dim, 1)
        require_int("n_layers", self.n_layers, 1)
        require_int("h_cycles", self.h_cycles, 1)
        require_int("l_cycles", self.l_cycles, 1)
        require_int("n_heads", self.n_heads, 1)
        require_int("halt_max_steps", self.halt_max_steps, 1)
        require_choice("mixer", self.mixer, MIXERS)
        require_choice("grad_mode", self.grad_mode, GRAD_MODES)
        require_number("expansion", self.expansion, 0.0, low_open=True)
        require_bool("halting", self.halting)
        require_bool("learned_init", self.learned_init)
        require_bool("shared_weights", self.shared_weights)
        if self.mixer == "attention" and self.hidden_dim % self.n_heads:
            raise ValueError(
                f"hidden_dim ({self.hidden_dim}) must be divisible by n_heads ({self.n_heads}) "
                'with mixer="attention"'
            )

    @property
    def applications(self) -> int:
        """Block-stack applications per forward call: ``h_cycles * (l_cycles + 1)``."""
        return self.h_cycles * (self.l_cycles + 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return asdict(self)
