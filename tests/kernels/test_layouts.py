"""Every fused custom op reads any layout of its inputs (`hydra_vision.kernels.layouts`): an input whose channels
are strided, whose rows are padded, or a strided parameter vector gives the dense input's output and gradients
(to within roundings). That is what lets each op carry the flexible_layout tag, under which torch.compile hands it
Inductor's own strides uncopied. Run through the custom ops themselves (compile's path); the eager path calls the
same launchers. Triton's CPU interpreter without CUDA (tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import math
from typing import Callable

import pytest
import torch

from hydra_vision.kernels.dwconv.triton_conv import _CONV
from hydra_vision.kernels.fused_layer import _LAYER
from hydra_vision.kernels.gated_rmsnorm.triton_norm import _NORM
from hydra_vision.kernels.layernorm.triton_layernorm import _LN
from hydra_vision.kernels.quasiseparable.triton_mix import _MIX
from hydra_vision.layers import Hydra

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OPS = {"dwconv1d_silu": _CONV, "gated_rmsnorm": _NORM, "layer_norm": _LN, "ssd_mix": _MIX, "hydra_layer": _LAYER}


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, device=DEVICE)


def _conv_args() -> list:
    return [_randn(2, 11, 24), _randn(24, 1, 4), _randn(24), False, 16]  # x, weight, bias, causal, silu channels


def _norm_args() -> list:
    return [_randn(2, 5, 32), _randn(2, 5, 32), _randn(32) + 1, 1e-5]  # x, z, weight, eps


def _layer_norm_args() -> list:
    return [_randn(2, 5, 32), _randn(32) + 1, _randn(32), 1e-5, torch.float32]  # x, weight, bias, eps, out dtype


def _mix_args() -> list:
    """Two chunks of 8 (states between them), a per-head D, raw dt near -3 (softplus: small steps), C . B ~ N(0, 1)."""
    batch, L, H, P, N = 1, 11, 2, 8, 8
    bias = torch.rand(H, device=DEVICE) - 2
    dt = [torch.rand(batch, L, H, device=DEVICE) - 3 for _ in range(2)]
    bc = [_randn(batch, L, 1, N) * N ** -0.25 for _ in range(4)]
    return [_randn(batch, L, H, P), *dt, -0.5 - 3.5 * torch.rand(H, device=DEVICE), *bc, _randn(H), bias,
            True, 0.0, math.inf, True, 8]  # softplus, dt limits, shift, chunk size


def _layer_args() -> list:
    torch.manual_seed(1)
    layer = Hydra(32, d_state=8, headdim=8, backend="triton", chunk_size=16).to(DEVICE)
    with torch.no_grad():
        layer.A_log.uniform_(-1, 1)
        layer.D.normal_()
        layer.norm.weight.normal_(1, 0.3)
    params = [layer.conv1d.weight, layer.conv1d.bias, layer.fc_D.weight, layer.D, layer.A_log, layer.dt_bias,
              layer.norm.weight]
    spec = (layer.d_inner, layer.headdim, layer.ngroups, layer.d_state, layer.causal_conv, 0.0, math.inf,
            layer.shift, 16, layer.norm.eps)
    return [_randn(2, 7, layer.in_proj.out_features), *(p.detach() for p in params), None, None, *spec]


ARGS: dict[str, tuple[Callable[[], list], tuple[str, ...]]] = {  # op -> its arguments, the tensors' names
    "dwconv1d_silu": (_conv_args, ("x", "weight", "bias")),
    "gated_rmsnorm": (_norm_args, ("x", "z", "weight")),
    "layer_norm": (_layer_norm_args, ("x", "weight", "bias")),
    "ssd_mix": (_mix_args, ("x", "dt_f", "dt_b", "A", "B_f", "C_f", "B_b", "C_b", "D", "dt_bias")),
    "hydra_layer": (_layer_args, ("zxr", "conv_weight", "conv_bias", "fc_D_weight", "D", "A_log", "dt_bias",
                                  "norm_weight")),
}


def _cases() -> list:
    """(op, argument index, layout) for every tensor argument: both layouts for activations and weights, the
    strided one for vectors."""
    cases = []
    for op, (build, names) in ARGS.items():
        for i, (name, arg) in enumerate(zip(names, build())):
            for layout in ("strided_channels",) if arg.dim() == 1 else ("strided_channels", "padded_rows"):
                cases.append(pytest.param(op, i, layout, id=f"{op}-{name}-{layout}"))
    return cases


def _relaid(t: torch.Tensor, layout: str) -> torch.Tensor:
    """t's values in another layout: its last dim of stride 2 (rows strided with it), or unit-stride with each
    row 5 elements longer than its values."""
    if layout == "strided_channels":
        out = t.new_zeros(*t.shape, 2)[..., 0]
    else:
        out = t.new_zeros(*t.shape[:-1], t.shape[-1] + 5)[..., :t.shape[-1]]
    return out.copy_(t)


def _output_and_grads(op: str, args: list, grad_layout: str | None = None) -> list[torch.Tensor]:
    """The op's first output and the gradients of its tensor inputs for the loss sum(output^2), the output's
    gradient 2 output handed to the backward dense or relaid (`grad_layout`)."""
    args = [a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args]
    out = OPS[op].op(*args)
    out = out[0] if isinstance(out, tuple) else out
    inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    grad = 2 * out.detach()
    grad = grad if grad_layout is None else _relaid(grad, grad_layout)
    return [out.detach(), *torch.autograd.grad(out, inputs, grad)]


@pytest.fixture(scope="module")
def dense_results() -> dict:
    """Per op: its arguments (one draw) and the dense run's output and gradients, computed once."""
    cache = {}

    def get(op: str):
        if op not in cache:
            torch.manual_seed(0)
            args = ARGS[op][0]()
            cache[op] = args, _output_and_grads(op, args)
        return cache[op]

    return get


@pytest.mark.parametrize("op", OPS)
def test_every_fused_op_is_tagged_flexible_layout(op):
    for custom_op in (OPS[op].op, OPS[op].backward_op):
        assert torch.Tag.flexible_layout in custom_op._opoverload.tags


def _assert_close_to(results: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    for a, b in zip(results, expected, strict=True):  # within roundings: torch's own GEMMs (the layer's F.linear)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # may sum in another order for another layout


@pytest.mark.parametrize("op, index, layout", _cases())
def test_an_input_in_another_layout_gives_the_dense_result(op, index, layout, dense_results):
    args, expected = dense_results(op)
    relaid = list(args)
    relaid[index] = _relaid(args[index], layout)
    assert relaid[index].stride() != args[index].stride()
    _assert_close_to(_output_and_grads(op, relaid), expected)


@pytest.mark.parametrize("layout", ["strided_channels", "padded_rows"])
@pytest.mark.parametrize("op", OPS)
def test_the_output_gradient_in_another_layout_gives_the_dense_gradients(op, layout, dense_results):
    """What autograd hands the backward op (under compile, a GEMM's padded output, say) in any layout."""
    args, expected = dense_results(op)
    _assert_close_to(_output_and_grads(op, args, layout), expected)
