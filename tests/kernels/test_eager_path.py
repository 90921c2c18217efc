"""The eager fast path: outside compilation and dispatch modes the fused ops run as plain
autograd.Functions, with the custom ops' results and gradients exactly."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hydra_vision.kernels.dwconv.triton_conv import depthwise_conv1d_silu_triton
from hydra_vision.kernels.eager_path import FusedOp, dispatcher_needed
from hydra_vision.kernels.gated_rmsnorm.triton_norm import gated_rmsnorm_triton
from hydra_vision.kernels.quasiseparable.triton_mix import quasiseparable_mix_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MIX_LEAVES = ("x", "dt_fwd", "dt_bwd", "A", "B_fwd", "C_fwd", "B_bwd", "C_bwd", "D", "dt_bias")


def _run(fn, leaves: list[torch.Tensor], seed: int) -> tuple[str, list[torch.Tensor]]:
    """(name of y's grad_fn, [y, gradients of the leaves]) for a fixed upstream gradient."""
    y = fn()
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)).to(y)
    return type(y.grad_fn).__name__, [y.detach(), *torch.autograd.grad(y, leaves, dy)]


def _cases(mix_inputs, cast_inputs):
    kw = cast_inputs(mix_inputs(2, 20, 2, 8, 1, 8, dtype=torch.bfloat16, device=DEVICE), requires_grad=True)
    mix_leaves = [kw[n] for n in MIX_LEAVES]
    x = torch.randn(2, 9, 16, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(16, 1, 5, device=DEVICE, requires_grad=True)
    b = torch.randn(16, device=DEVICE, requires_grad=True)
    z = torch.randn(2, 9, 16, device=DEVICE, dtype=torch.bfloat16, requires_grad=True)
    nw = torch.randn(16, device=DEVICE, requires_grad=True)
    return {
        "ssd_mix": (lambda: quasiseparable_mix_triton(**kw, chunk_size=16), mix_leaves),
        "dwconv1d_silu": (lambda: depthwise_conv1d_silu_triton(x, w, b, False, 16), [x, w, b]),
        "gated_rmsnorm": (lambda: gated_rmsnorm_triton(x, z, nw, 1e-5), [x, z, nw]),
    }


@pytest.mark.parametrize("op", ["ssd_mix", "dwconv1d_silu", "gated_rmsnorm"])
def test_eager_path_equals_the_custom_op(mix_inputs, cast_inputs, operator_log, op):
    fn, leaves = _cases(mix_inputs, cast_inputs)[op]
    eager_node, eager = _run(fn, leaves, seed=1)
    with operator_log() as log:
        op_node, through_op = _run(fn, leaves, seed=1)
    assert f"hydra_vision::{op}" in log.names and f"hydra_vision::{op}_backward" in log.names
    assert "Function" in eager_node and "Function" not in op_node, (eager_node, op_node)
    for a, b in zip(eager, through_op):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dispatcher_needed_where_something_watches_the_operators():
    from torch._subclasses.fake_tensor import FakeTensorMode

    x = torch.randn(2, 3)
    assert not dispatcher_needed(x)
    assert dispatcher_needed(x.to("meta"))
    with FlopCounterMode(display=False):
        assert dispatcher_needed(x)
    with FakeTensorMode():
        assert dispatcher_needed(x)
    seen = []

    @torch.compile(backend="eager", fullgraph=True)
    def traced(t):
        seen.append(dispatcher_needed(t))
        return t + 1

    traced(x)
    assert seen == [True]


def test_jit_trace_records_the_custom_op():
    x, z = (torch.randn(2, 3, 16, device=DEVICE) for _ in range(2))
    w = torch.randn(16, device=DEVICE)
    traced = torch.jit.trace(lambda x, z: gated_rmsnorm_triton(x, z, w, 1e-5), (x, z))
    assert "hydra_vision::gated_rmsnorm" in str(traced.graph)
    torch.testing.assert_close(traced(x, z), gated_rmsnorm_triton(x, z, w, 1e-5), rtol=0, atol=0)


def test_double_backward_raises_as_through_the_custom_op(mix_inputs, cast_inputs):
    x = torch.randn(2, 9, 16, device=DEVICE, requires_grad=True)
    z = torch.randn(2, 9, 16, device=DEVICE)
    w = torch.randn(16, device=DEVICE)
    (gx,) = torch.autograd.grad(gated_rmsnorm_triton(x, z, w, 1e-5).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate"):
        gx.sum().backward()


def test_statistics_gradients_reach_the_formula_as_none():
    """The eager Function hands the gradients of the statistics outputs over as None: autograd would
    otherwise fill a zero tensor for each in every backward (for the mix, two (2, B, H, L) fp32 tensors)."""
    received = []

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 2 * x, x.sum(-1)

    def backward(dy: torch.Tensor) -> torch.Tensor:
        return 2 * dy

    def gradients(backward_fn, ctx, dy, dstat):
        received.append(dstat)
        return (backward_fn(dy),)

    op = FusedOp("test_statistics_gradient", forward, backward, lambda ctx, inputs, output: None, gradients)
    x = torch.randn(3, 4, requires_grad=True)
    y, stat = op(x)
    assert type(y.grad_fn).__name__ == "test_statistics_gradientFunctionBackward" and not stat.requires_grad
    y.sum().backward()
    assert received == [None]
    torch.testing.assert_close(x.grad, torch.full((3, 4), 2.0))
