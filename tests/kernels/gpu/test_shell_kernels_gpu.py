"""The compiled kernels around the mix at Hydra-ViT-B's size (128 x 197 tokens; skipped without
CUDA): gated RMSNorm over 1,536 channels, the depthwise conv + SiLU over 1,792 and the block's
LayerNorm over 768 (also with its shortcut), y and every gradient within twice the PyTorch reference's own
error against fp64, plus one rounding; the per-token diagonal's backward likewise against torch's products."""
from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

from hydra_vision.kernels.dwconv import depthwise_conv1d_silu_reference  # noqa: E402
from hydra_vision.kernels.dwconv.triton_conv import depthwise_conv1d_silu_triton  # noqa: E402
from hydra_vision.kernels.gated_rmsnorm import gated_rmsnorm_reference  # noqa: E402
from hydra_vision.kernels.gated_rmsnorm.triton_norm import gated_rmsnorm_triton  # noqa: E402
from hydra_vision.kernels.layernorm import layer_norm_reference  # noqa: E402
from hydra_vision.kernels.layernorm.triton_layernorm import (  # noqa: E402
    layer_norm_triton, layer_norm_with_shortcut_triton)
from hydra_vision.kernels.token_diagonal import token_diagonal_backward_into  # noqa: E402

pytestmark = pytest.mark.gpu
DTYPES = [torch.bfloat16, torch.float16, torch.float32]


def _check(kernel, reference, inputs: list, extra: tuple, dy: torch.Tensor, dtype: torch.dtype) -> None:
    def run(fn, tensors):
        leaves = [t.detach().requires_grad_() for t in tensors]
        y = fn(*leaves, *extra)
        return [y.detach().double(), *(t.double() for t in torch.autograd.grad(y, leaves, dy.to(y.dtype)))]

    exact = run(reference, [t.double() for t in inputs])
    out, ref = run(kernel, inputs), run(reference, inputs)
    for i, (o, r, e) in enumerate(zip(out, ref, exact)):
        assert torch.isfinite(o).all(), i
        bound = 2 * (r - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        assert (o - e).abs().max().item() <= bound, f"output {i}: {(o - e).abs().max().item():.3g} > {bound:.3g}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gated_rmsnorm_at_real_size(dtype):
    g = torch.Generator("cuda").manual_seed(0)
    x = (3 * torch.randn(128, 197, 1536, device="cuda", generator=g)).to(dtype)
    z = torch.randn(128, 197, 3376, device="cuda", generator=g).to(dtype)[..., :1536]  # a slice of in_proj's output
    w = 1 + 0.5 * torch.randn(1536, device="cuda", generator=g)
    dy = torch.randn(128, 197, 1536, device="cuda", generator=g).to(dtype)
    _check(gated_rmsnorm_triton, gated_rmsnorm_reference, [x, z, w], (1e-5,), dy, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_depthwise_conv_at_real_size(dtype):
    g = torch.Generator("cuda").manual_seed(1)
    x = torch.randn(128, 197, 3376, device="cuda", generator=g).to(dtype)[..., 1536:3328]  # in_proj's xBC slice
    w = 0.3 * torch.randn(1792, 1, 7, device="cuda", generator=g)
    b = 0.1 * torch.randn(1792, device="cuda", generator=g)
    dy = torch.randn(128, 197, 1792, device="cuda", generator=g).to(dtype)
    _check(depthwise_conv1d_silu_triton, depthwise_conv1d_silu_reference, [x, w, b], (False, 1792), dy, dtype)


def _layer_norm_inputs(dtype: torch.dtype) -> tuple[list, torch.Tensor]:
    """Hydra-ViT-B's block norm: 128 x 196 tokens of 768 channels, rows read from a wider strided view."""
    g = torch.Generator("cuda").manual_seed(2)
    x = (2 + 3 * torch.randn(128, 196, 800, device="cuda", generator=g)).to(dtype)[..., :768]
    w = 1 + 0.5 * torch.randn(768, device="cuda", generator=g)
    b = 0.1 * torch.randn(768, device="cuda", generator=g)
    return [x, w, b], torch.randn(128, 196, 768, device="cuda", generator=g).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_norm_at_real_size(dtype):
    inputs, dy = _layer_norm_inputs(dtype)
    _check(lambda *t: layer_norm_triton(*t, 1e-6, t[0].dtype), lambda *t: layer_norm_reference(*t, 1e-6, t[0].dtype),
           inputs, (), dy, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_norm_with_shortcut_at_real_size(dtype):
    """y + x / 2 from the norm's node with its shortcut: x's gradient is dres = dy / 2 plus the norm's, added in
    the backward kernel; the reference takes autograd's addition."""
    def kernel(*t):
        y, shortcut = layer_norm_with_shortcut_triton(*t, 1e-6, t[0].dtype)
        return y + 0.5 * shortcut

    inputs, dy = _layer_norm_inputs(dtype)
    _check(kernel, lambda *t: layer_norm_reference(*t, 1e-6, t[0].dtype) + 0.5 * t[0], inputs, (), dy, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_token_diagonal_backward_at_real_size(dtype):
    """dx += g w, dw = g^T x, dD = sum of g over 128 x 197 tokens of x's 1,536 channels (views of xbc's 1,792-wide
    rows) and 24 heads. The first call autotunes the in-place kernel: dx must still be updated exactly once; a
    second call on the same inputs gives the same bits."""
    gen = torch.Generator("cuda").manual_seed(3)
    dx_rows, x_rows = (torch.randn(128 * 197, 1792, device="cuda", generator=gen).to(dtype) for _ in range(2))
    g = torch.randn(128 * 197, 24, device="cuda", generator=gen).to(dtype)
    w = torch.randn(24, 1536, device="cuda", generator=gen) / 1536**0.5
    dx0, x = dx_rows[:, :1536].clone(), x_rows[:, :1536]
    exact = [dx0.double() + g.double() @ w.to(dtype).double(), g.double().t() @ x.double(), g.double().sum(0)]
    torch_out = [torch.addmm(dx0, g, w.to(dtype)), g.t() @ x, g.float().sum(0)]
    runs = []
    for _ in range(2):
        dx_rows[:, :1536] = dx0
        dw, dD = token_diagonal_backward_into(dx_rows[:, :1536], x, g, w)
        runs.append([dx_rows[:, :1536].clone(), dw, dD])
    for i, (o, r, e) in enumerate(zip(runs[0], torch_out, exact)):
        bound = 2 * (r.double() - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        err = (o.double() - e).abs().max().item()
        assert err <= bound, f"output {i}: {err:.3g} > {bound:.3g}"
    assert all(torch.equal(a, b) for a, b in zip(*runs))
