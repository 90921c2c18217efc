"""The fused gated RMSNorm against its PyTorch reference and an fp64 formula: y and the gradients
of x, z and weight (Triton's CPU interpreter without CUDA; tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_vision.kernels.gated_rmsnorm import gated_rmsnorm, gated_rmsnorm_reference
from hydra_vision.kernels.gated_rmsnorm import triton_norm
from hydra_vision.kernels.gated_rmsnorm.triton_norm import gated_rmsnorm_triton
from hydra_vision.layers import GatedRMSNorm

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EPS = 1e-5


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0, z_strided: bool = False):
    g = torch.Generator().manual_seed(seed)
    D = shape[-1]
    x = (3 * torch.randn(shape, generator=g)).to(DEVICE, dtype).requires_grad_()
    zz = torch.randn(*shape[:-1], 2 * D + 3, generator=g).to(DEVICE, dtype)
    z = (zz[..., 3:D + 3] if z_strided else zz[..., :D].contiguous()).detach().requires_grad_()
    w = (1 + 0.5 * torch.randn(D, generator=g)).to(DEVICE, torch.float32).requires_grad_()
    dy = torch.randn(shape, generator=g).to(DEVICE, dtype)
    return x, z, w, dy


def _run(fn, x, z, w, dy) -> list[torch.Tensor]:
    y = fn(x, z, w, EPS)
    return [y.detach().double(), *(t.double() for t in torch.autograd.grad(y, (x, z, w), dy))]


def _fp64(x, z, w, dy) -> list[torch.Tensor]:
    leaves = [t.detach().double().requires_grad_() for t in (x, z, w)]
    return _run(gated_rmsnorm_reference, *leaves, dy.double())


@pytest.mark.parametrize("shape, z_strided", [((2, 5, 24), False), ((3, 40), True), ((1, 1, 7), False),
                                              ((4, 6, 96), True)], ids=str)
def test_fp32_matches_reference(shape, z_strided):
    x, z, w, dy = _inputs(shape, torch.float32, z_strided=z_strided)
    out, ref = _run(gated_rmsnorm_triton, x, z, w, dy), _run(gated_rmsnorm_reference, x, z, w, dy)
    for name, a, b in zip(("y", "dx", "dz", "dw"), out, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * b.abs().max().item(), msg=name)


def test_no_rows_gives_empty_outputs_and_zero_weight_gradient():
    """With no rows nothing is launched: the weight's partial sums must be zeros, not an empty buffer."""
    x, z, w, dy = _inputs((0, 24), torch.float32)
    y, dx, dz, dw = _run(gated_rmsnorm_triton, x, z, w, dy)
    assert y.shape == dx.shape == dz.shape == (0, 24)
    assert torch.equal(dw, torch.zeros(24, dtype=torch.float64))


@settings(max_examples=12, deadline=None, derandomize=True)
@given(rows=st.integers(1, 9), D=st.integers(1, 300), z_strided=st.booleans())
def test_fuzz_fp32_against_reference(rows, D, z_strided):
    """Includes D = 1, where dx is exactly 0 and both sides hold only rounding (hence the absolute floor)."""
    x, z, w, dy = _inputs((rows, D), torch.float32, seed=rows * D, z_strided=z_strided)
    out, ref = _run(gated_rmsnorm_triton, x, z, w, dy), _run(gated_rmsnorm_reference, x, z, w, dy)
    for name, a, b in zip(("y", "dx", "dz", "dw"), out, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * b.abs().max().item() + 1e-6, msg=name)


def test_programs_of_several_rows_with_a_short_last_block(monkeypatch):
    """3 backward programs over 10 rows, 4 + 4 + 2: each program prefetches its next row, and the last one must
    stop at row 10. x, z and dy are the first 10 of 12 rows, so reading the 2 rows past M would change dw."""
    monkeypatch.setattr("hydra_vision.kernels.gated_rmsnorm.triton_norm.backward_programs", lambda M, device: 3)
    x, z, w, dy = _inputs((12, 40), torch.float32, seed=4, z_strided=True)
    rows = (x[:10], z[:10], w, dy[:10])
    out, ref = _run(gated_rmsnorm_triton, *rows), _run(gated_rmsnorm_reference, *rows)
    for name, a, b in zip(("dx", "dz", "dw"), out[1:], ref[1:]):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * b.abs().max().item(), msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_backward_writes_the_forwards_output_again_bit_for_bit(dtype, monkeypatch):
    """norm_backward_into with y: the forward's output from the stored rstd, the same bits as `_norm_forward`
    (the fused layer's out_proj weight gradient uses it), and dx, dz, dw as without it. Three programs over
    10 of 12 rows: a program that writes past its rows would change the two rows left as NaN."""
    monkeypatch.setattr("hydra_vision.kernels.gated_rmsnorm.triton_norm.backward_programs", lambda M, device: 3)
    x, z, w, dy = (t.detach() for t in _inputs((12, 40), dtype, seed=5, z_strided=True))
    y_fwd, rstd = triton_norm._norm_forward(x[:10], z[:10], w, EPS)
    y = torch.full((12, 40), float("nan"), dtype=dtype, device=DEVICE)
    with_y = triton_norm.norm_backward_into(dy[:10], x[:10], z[:10], w, rstd, torch.empty_like(z[:10]), y[:10])
    without = triton_norm.norm_backward_into(dy[:10], x[:10], z[:10], w, rstd, torch.empty_like(z[:10]))
    assert torch.equal(y[:10], y_fwd) and y[10:].isnan().all()
    for name, a, b in zip(("dx", "dz", "dw"), with_y, without):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_within_the_references_own_error(dtype):
    """|kernel - fp64| <= 2 |reference in the same dtype - fp64| + one rounding of the scale."""
    x, z, w, dy = _inputs((3, 7, 64), dtype, seed=1)
    exact = _fp64(x, z, w, dy)
    out, ref = _run(gated_rmsnorm_triton, x, z, w, dy), _run(gated_rmsnorm_reference, x, z, w, dy)
    for name, o, r, e in zip(("y", "dx", "dz", "dw"), out, ref, exact):
        bound = 2 * (r - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        assert (o - e).abs().max().item() <= bound, name


def test_dispatch_only_by_name_and_fp64_stays_in_pytorch(operator_log):
    x, z, w, _ = _inputs((2, 3, 16), torch.float64)
    torch.testing.assert_close(gated_rmsnorm(x, z, w, EPS, backend="triton"), gated_rmsnorm_reference(x, z, w, EPS),
                               rtol=0, atol=0)
    x32, z32, w32, _ = _inputs((2, 3, 16), torch.float32)
    with operator_log() as auto:
        gated_rmsnorm(x32, z32, w32, EPS, backend="auto")
    with operator_log() as triton:
        gated_rmsnorm(x32, z32, w32, EPS, backend="triton")
    assert "hydra_vision::gated_rmsnorm" not in auto.names and "hydra_vision::gated_rmsnorm" in triton.names


def test_layer_with_triton_backend_equals_reference_layer():
    x, z, w, _ = _inputs((2, 9, 48), torch.float32, seed=2)
    fused, plain = GatedRMSNorm(48, backend="triton").to(DEVICE), GatedRMSNorm(48).to(DEVICE)
    with torch.no_grad():
        fused.weight.copy_(w)
        plain.weight.copy_(w)
    torch.testing.assert_close(fused(x, z), plain(x, z), rtol=2e-5, atol=2e-5)


def test_compiles_without_graph_breaks():
    x, z, w, _ = _inputs((2, 4, 32), torch.float32, seed=3)

    def block(x, z, w):
        return F.silu(gated_rmsnorm(x, z, w, EPS, backend="triton")).sum(-1)

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    eager_out, comp_out = block(x, z, w), compiled(x, z, w)
    torch.testing.assert_close(comp_out, eager_out, rtol=0, atol=0)
    g_eager = torch.autograd.grad(eager_out.square().sum(), (x, z, w))
    g_comp = torch.autograd.grad(comp_out.square().sum(), (x, z, w))
    for a, b in zip(g_comp, g_eager):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_custom_op_fakes_match_the_kernels():
    """The fake implementations give the real outputs' shapes, dtypes and strides."""
    x, z, w, dy = _inputs((2, 5, 24), torch.bfloat16, seed=5, z_strided=True)
    torch.library.opcheck(torch.ops.hydra_vision.gated_rmsnorm.default, (x, z, w, EPS),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    _, rstd = torch.ops.hydra_vision.gated_rmsnorm(x, z, w, EPS)
    torch.library.opcheck(torch.ops.hydra_vision.gated_rmsnorm_backward.default, (dy, x, z, w, rstd),
                          test_utils=("test_schema", "test_faketensor"))


def test_shape_errors_name_the_problem():
    x, z, w, _ = _inputs((2, 3, 16), torch.float32)
    with pytest.raises(ValueError, match="x and z of one shape"):
        gated_rmsnorm(x, z[..., :8], w, EPS)
    with pytest.raises(ValueError, match=r"weight must have shape \(16,\)"):
        gated_rmsnorm(x, z, w[:8], EPS)
