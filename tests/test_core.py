"""The recursive core: shapes, weight sharing, gradient modes, carry, halting, config."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from trm_rl import RecursiveCore, TRMConfig
from trm_rl.core import RMS_EPS, PeerMix, SwiGLU, rms_norm
from trm_rl.envs.sudoku_puzzles import sudoku_peers

SMALL = dict(hidden_dim=16, n_layers=1, h_cycles=3, l_cycles=2, n_heads=2)
TOKENS = 9


def make_core(seed: int = 0, **overrides) -> RecursiveCore:
    torch.manual_seed(seed)
    config = TRMConfig(**{**SMALL, **overrides})
    n_tokens = {"none": 1, "peers": 16}.get(config.mixer, TOKENS)
    return RecursiveCore(config, n_tokens=n_tokens)


def tokens_for(core: RecursiveCore, batch: int = 4, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, core.n_tokens, core.config.hidden_dim, generator=generator)


@pytest.mark.parametrize("mixer", ["mlp", "attention", "conv", "peers", "none"])
def test_output_shapes(mixer):
    core = make_core(mixer=mixer)
    x = tokens_for(core)
    out = core(x)
    assert out.states.shape == (3, 4, core.n_tokens, 16)
    assert out.carry.z_H.shape == out.carry.z_L.shape == x.shape
    assert out.halt_logits is None
    assert torch.equal(out.states[-1], out.carry.z_H)


@pytest.mark.parametrize("mixer", ["mlp", "attention", "conv", "peers", "none"])
def test_parameter_count_does_not_depend_on_cycles(mixer):
    counts = {
        sum(p.numel() for p in make_core(mixer=mixer, h_cycles=h, l_cycles=inner).parameters())
        for h, inner in [(1, 1), (3, 4), (6, 2)]
    }
    assert len(counts) == 1


@pytest.mark.parametrize("mixer", ["mlp", "conv", "none"])
@pytest.mark.parametrize(("n_layers", "h", "inner"), [(1, 3, 2), (2, 2, 1)])
def test_unshared_core_has_one_stack_per_application(mixer, n_layers, h, inner):
    shape = dict(mixer=mixer, n_layers=n_layers, h_cycles=h, l_cycles=inner)
    shared, unshared = make_core(**shape), make_core(**shape, shared_weights=False)
    applications = h * (inner + 1)
    assert unshared.config.applications == applications
    assert len(unshared.blocks) == applications * n_layers
    block_params = sum(p.numel() for p in shared.blocks.parameters())
    extra = sum(p.numel() for p in unshared.parameters()) - sum(
        p.numel() for p in shared.parameters()
    )
    assert extra == (applications - 1) * block_params
    pointers = {p.data_ptr() for p in unshared.blocks.parameters()}
    assert len(pointers) == len(list(unshared.blocks.parameters()))


def test_unshared_core_with_copied_stacks_computes_the_shared_recursion():
    shared = make_core(mixer="conv", n_layers=2)
    unshared = make_core(mixer="conv", n_layers=2, shared_weights=False)
    unshared.init_states.copy_(shared.init_states)
    for index, block in enumerate(unshared.blocks):
        block.load_state_dict(shared.blocks[index % 2].state_dict())
    x = tokens_for(shared)
    torch.testing.assert_close(unshared(x).states, shared(x).states)
    unshared.blocks[-1].channel_mix.down.weight.data.mul_(2.0)
    assert torch.allclose(unshared(x).states[:-1], shared(x).states[:-1])
    assert not torch.allclose(unshared(x).states[-1], shared(x).states[-1])


@pytest.mark.parametrize("grad_mode", ["full", "last"])
def test_unshared_core_gradients_reach_every_stack_it_tracks(grad_mode):
    core = make_core(mixer="conv", shared_weights=False, grad_mode=grad_mode)
    core(tokens_for(core)).states[-1].square().mean().backward()
    per_cycle = core.config.l_cycles + 1
    for index, block in enumerate(core.blocks):
        tracked = grad_mode == "full" or index >= (core.config.h_cycles - 1) * per_cycle
        reached = all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
        assert reached == tracked, index


def test_more_cycles_change_the_answer():
    short, long = make_core(h_cycles=1), make_core(h_cycles=3)
    x = tokens_for(short)
    assert torch.allclose(short(x).states[0], long(x).states[0])
    assert not torch.allclose(long(x).states[0], long(x).states[-1])


def detached_reference_grads(core: RecursiveCore, x: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the same loss when the first h_cycles-1 cycles are detached by hand."""
    z_H = core.init_states[0].expand_as(x)
    z_L = core.init_states[1].expand_as(x)
    for cycle in range(core.config.h_cycles):
        if cycle == core.config.h_cycles - 1:
            z_H, z_L = z_H.detach(), z_L.detach()
        for _ in range(core.config.l_cycles):
            z_L = core.f(z_L + z_H + x)
        z_H = core.f(z_H + z_L)
    core.zero_grad()
    z_H.square().mean().backward()
    return [p.grad.clone() for p in core.parameters()]


def grads_of(core: RecursiveCore, x: torch.Tensor) -> list[torch.Tensor]:
    core.zero_grad()
    core(x).states[-1].square().mean().backward()
    return [p.grad.clone() for p in core.parameters()]


def test_grad_mode_last_equals_detaching_the_first_cycles():
    last = make_core(grad_mode="last")
    x = tokens_for(last)
    reference = detached_reference_grads(last, x)
    for got, want in zip(grads_of(last, x), reference, strict=True):
        torch.testing.assert_close(got, want)

    full = make_core(grad_mode="full")
    full_grads = grads_of(full, x)
    assert any(not torch.allclose(g, r) for g, r in zip(full_grads, reference, strict=True))


@pytest.mark.parametrize(("grad_mode", "reaches"), [("last", False), ("full", True)])
def test_early_cycle_losses_reach_parameters_only_in_full_mode(grad_mode, reaches):
    core = make_core(grad_mode=grad_mode)
    core(tokens_for(core)).states[:-1].square().sum().backward()
    grads = [p.grad for p in core.parameters()]
    reached = any(g is not None and g.abs().sum() > 0 for g in grads)
    assert reached == reaches


def test_carry_is_detached_and_continues():
    core = make_core()
    x = tokens_for(core).requires_grad_()
    first = core(x)
    assert not first.carry.z_H.requires_grad and not first.carry.z_L.requires_grad
    assert not first.carry.halted.any()
    assert first.carry.steps.tolist() == [1, 1, 1, 1]
    second = core(x, first.carry)
    assert second.carry.steps.tolist() == [2, 2, 2, 2]
    assert not torch.allclose(second.states[-1], first.states[-1])


def test_halted_rows_restart_from_the_initial_state():
    core = make_core()
    x = tokens_for(core)
    fresh = core(x)
    carry = core(x).carry
    carry.halted = torch.tensor([True, False, True, False])
    resumed = core(x, carry)
    torch.testing.assert_close(resumed.states[:, 0], fresh.states[:, 0])
    assert not torch.allclose(resumed.states[:, 1], fresh.states[:, 1])
    assert resumed.carry.steps.tolist() == [1, 2, 1, 2]


def test_halting_head_starts_biased_to_continue_and_stops_at_max_steps():
    core = make_core(halting=True, halt_max_steps=2)
    x = tokens_for(core)
    out = core(x)
    assert out.halt_logits.shape == (4, 2)
    torch.testing.assert_close(out.halt_logits, torch.full((4, 2), -5.0))
    assert not out.carry.halted.any()
    assert core(x, out.carry).carry.halted.all()


def test_halting_head_gets_gradients():
    core = make_core(halting=True)
    core(tokens_for(core)).halt_logits.sum().backward()
    assert core.q_head.bias.grad is not None and core.q_head.bias.grad.abs().sum() > 0


def test_same_seed_same_outputs_and_other_seed_differs():
    x = tokens_for(make_core())
    torch.testing.assert_close(make_core(seed=3)(x).states, make_core(seed=3)(x).states)
    assert not torch.allclose(make_core(seed=3)(x).states, make_core(seed=4)(x).states)


def test_learned_init_is_a_parameter_and_fixed_init_is_not():
    assert "init_states" in dict(make_core(learned_init=True).named_parameters())
    assert "init_states" not in dict(make_core().named_parameters())
    assert "init_states" in dict(make_core().named_buffers())


def test_no_biases_anywhere_but_the_halting_head():
    core = make_core(halting=True, mixer="attention")
    biases = [name for name, _ in core.named_parameters() if name.endswith("bias")]
    assert biases == ["q_head.bias"]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("hidden_dim", 0, ValueError),
        ("hidden_dim", 8.0, TypeError),
        ("n_layers", 0, ValueError),
        ("h_cycles", 0, ValueError),
        ("l_cycles", -1, ValueError),
        ("n_heads", 0, ValueError),
        ("halt_max_steps", 0, ValueError),
        ("mixer", "lstm", ValueError),
        ("grad_mode", "none", ValueError),
        ("expansion", 0.0, ValueError),
        ("expansion", "4", TypeError),
        ("halting", 1, TypeError),
        ("learned_init", "yes", TypeError),
        ("shared_weights", 0, TypeError),
    ],
)
def test_bad_config_field_raises_naming_it(field, value, error):
    with pytest.raises(error, match=field):
        TRMConfig(**{field: value})


def test_attention_width_must_divide_into_heads():
    with pytest.raises(ValueError, match="n_heads"):
        TRMConfig(hidden_dim=10, n_heads=4, mixer="attention")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TRMConfig().h_cycles = 5


def test_mlp_mixer_needs_token_count_and_checks_input():
    with pytest.raises(ValueError, match="n_tokens"):
        RecursiveCore(TRMConfig(mixer="mlp"))
    core = make_core()
    with pytest.raises(ValueError, match="tokens"):
        core(torch.randn(2, TOKENS + 1, 16))
    with pytest.raises(ValueError, match="shape"):
        core(torch.randn(2, TOKENS, 15))


def test_conv_mixer_is_local_on_the_grid():
    core = make_core(mixer="conv", n_layers=1)
    h = torch.zeros(1, TOKENS, 16)
    bumped = h.clone()
    bumped[0, 0] = 1.0
    changed = (core.f(bumped) - core.f(h)).abs().sum(-1)[0] > 1e-6
    neighbours_of_corner = [0, 1, 3, 4]
    assert changed.nonzero().flatten().tolist() == neighbours_of_corner


def dense_peer_mix(mix: PeerMix, x: torch.Tensor, box: int) -> torch.Tensor:
    """The reference formulation: sums over a [3, T, T] 0/1 graph (row, column, box peers,
    built from the env's peer lists), then the combining linear map."""
    side = box * box
    cells = torch.arange(side * side)
    units = [cells // side, cells % side, (cells // side // box) * box + cells % side // box]
    graph = torch.stack([u[:, None] == u[None, :] for u in units]) & (cells[:, None] != cells)
    peers = [set(row.nonzero().flatten().tolist()) for row in graph.any(0)]
    assert peers == [set(cell_peers) for cell_peers in sudoku_peers(box)]
    sums = torch.einsum("rts,bsd->btrd", graph.double(), x)
    return F.linear(sums.flatten(-2), mix.combine.weight.double())


@pytest.mark.parametrize("box", [2, 3])
def test_peer_mixer_equals_the_dense_graph_formulation_with_its_gradients(box):
    torch.manual_seed(0)
    width = 8
    mix = PeerMix(width, box * box).double()
    x = torch.randn(3, box**4, width, dtype=torch.double, requires_grad=True)
    fast, reference = mix(x), dense_peer_mix(mix, x, box)
    torch.testing.assert_close(fast, reference)
    fast_grads = torch.autograd.grad(fast.square().sum(), (x, mix.combine.weight))
    reference_grads = torch.autograd.grad(reference.square().sum(), (x, mix.combine.weight))
    for got, want in zip(fast_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want)


def test_peer_mixer_reads_only_a_cells_peers():
    torch.manual_seed(0)
    core = RecursiveCore(TRMConfig(**{**SMALL, "mixer": "peers"}), n_tokens=16)
    assert core.grid_shape == (4, 4)
    h = torch.zeros(1, 16, 16)
    bumped = h.clone()
    bumped[0, 5] = 1.0
    changed = (core.f(bumped) - core.f(h)).abs().sum(-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [0, 1, 4, 5, 6, 7, 9, 13]


@pytest.mark.parametrize(
    ("n_tokens", "grid_shape"), [(9, None), (25, None), (None, (4, 2)), (36, (6, 6))]
)
def test_peer_mixer_needs_a_sudoku_grid(n_tokens, grid_shape):
    with pytest.raises(ValueError, match="peers"):
        RecursiveCore(TRMConfig(**{**SMALL, "mixer": "peers"}), n_tokens, grid_shape)


def test_conv_grid_shape_defaults_to_square_and_is_checked():
    config = TRMConfig(**{**SMALL, "mixer": "conv"})
    assert RecursiveCore(config, n_tokens=9).grid_shape == (3, 3)
    assert RecursiveCore(config, grid_shape=(2, 3)).n_tokens == 6
    with pytest.raises(ValueError, match="grid_shape"):
        RecursiveCore(config, n_tokens=6)
    with pytest.raises(ValueError, match="grid_shape"):
        RecursiveCore(config, n_tokens=6, grid_shape=(2, 2))


def test_rms_norm_matches_torch_in_values_and_gradients():
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(3, 5, 8, dtype=torch.float64)
    ours = torch.autograd.grad(rms_norm(x), x, grad)[0]
    reference = torch.autograd.grad(F.rms_norm(x, (8,), eps=RMS_EPS), x, grad)[0]
    assert torch.allclose(rms_norm(x), F.rms_norm(x, (8,), eps=RMS_EPS))
    assert torch.allclose(ours, reference)
    assert torch.autograd.gradcheck(rms_norm, (x[:1, :2],))


def test_rms_norm_refuses_second_order_gradients():
    x = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(rms_norm(x).pow(3).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_swiglu_is_silu_gate_times_up_of_the_fused_projection():
    torch.manual_seed(0)
    swiglu = SwiGLU(width=8, expansion=2.0)
    x = torch.randn(2, 3, 8)
    gate, up = swiglu.gate_up(x).chunk(2, dim=-1)
    assert torch.allclose(swiglu(x), swiglu.down(F.silu(gate) * up), atol=1e-6)
