"""The per-token diagonal's backward kernel (dx += g w, dw = g^T x, dD = sum of g) against fp64 products
(Triton's CPU interpreter without CUDA; tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import pytest
import torch

from hydra_vision.kernels.token_diagonal import SPAN_ROWS, token_diagonal_backward_into

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(M: int, C: int, H: int, dtype: torch.dtype, seed: int = 0, width: int = 0):
    """dx and x as the first C columns of rows `width` wide (as the layer's views of xbc), g (M, H), w (H, C) fp32."""
    gen = torch.Generator().manual_seed(seed)
    rows = max(width, C)
    dx_rows, x_rows = (torch.randn(M, rows, generator=gen).to(DEVICE, dtype) for _ in range(2))
    g = torch.randn(M, H, generator=gen).to(DEVICE, dtype)
    w = (torch.randn(H, C, generator=gen) / C**0.5).to(DEVICE)
    return dx_rows, x_rows, g, w


def _fp64(dx: torch.Tensor, x: torch.Tensor, g: torch.Tensor, w: torch.Tensor):
    """dx + g w (w rounded to g's dtype, as the kernel takes it), g^T x and sum of g, in fp64."""
    g64, w64 = g.double(), w.to(g.dtype).double()
    return dx.double() + g64 @ w64, g64.t() @ x.double(), g64.sum(0)


def _run(dx_rows, x_rows, g, w, C):
    dx = dx_rows[:, :C]
    dw, dD = token_diagonal_backward_into(dx, x_rows[:, :C], g, w)
    return dx, dw, dD


@pytest.mark.parametrize("M, C, H", [(1, 8, 1), (37, 40, 3), (3 * SPAN_ROWS + 5, 200, 20), (SPAN_ROWS, 16, 24)],
                         ids=str)
def test_fp32_equals_fp64_products(M, C, H) -> None:
    """Ragged on purpose: rows past several spans of a program, channels past one tile, heads below 16."""
    dx_rows, x_rows, g, w = _inputs(M, C, H, torch.float32, width=C + 9)
    want_dx, want_dw, want_dD = _fp64(dx_rows[:, :C], x_rows[:, :C], g, w)
    right_columns = dx_rows[:, C:].clone()
    dx, dw, dD = _run(dx_rows, x_rows, g, w, C)
    assert dw.dtype == dD.dtype == torch.float32 and dw.shape == (H, C) and dD.shape == (H,)
    for got, want in [(dx, want_dx), (dw, want_dw), (dD, want_dD)]:
        # fp32 sums of M (or H) products: within a few units of M eps of the sum of |terms|
        torch.testing.assert_close(got.double(), want, rtol=0, atol=4 * M * 1.2e-7 * want.abs().max().item() + 1e-6)
    assert torch.equal(dx_rows[:, C:], right_columns)  # the rest of each wider row is left alone


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_within_the_error_of_torchs_own_products(dtype) -> None:
    """dx is rounded once (fp32 accumulation); torch's addmm in the same dtype is the yardstick for it, and
    torch's dw (a 16-bit GEMM output) for dw, both against fp64."""
    M, C, H = 2 * SPAN_ROWS + 31, 72, 6
    dx_rows, x_rows, g, w = _inputs(M, C, H, dtype, seed=1)
    want_dx, want_dw, want_dD = _fp64(dx_rows, x_rows, g, w)
    torch_dx = torch.addmm(dx_rows, g, w.to(dtype)).double()
    torch_dw = (g.t() @ x_rows).double()
    dx, dw, dD = _run(dx_rows, x_rows, g, w, C)
    eps = torch.finfo(dtype).eps
    assert (dx.double() - want_dx).abs().max() <= 2 * (torch_dx - want_dx).abs().max() + eps
    assert (dw.double() - want_dw).abs().max() <= 2 * (torch_dw - want_dw).abs().max() + eps
    torch.testing.assert_close(dD.double(), want_dD, rtol=0, atol=M * 1.2e-7 * g.double().abs().sum(0).max().item())


def test_bad_shapes_are_named() -> None:
    dx_rows, x_rows, g, w = _inputs(10, 16, 2, torch.float32)
    with pytest.raises(ValueError, match=r"g \(9, 2\)"):
        token_diagonal_backward_into(dx_rows, x_rows, g[:9], w)
    with pytest.raises(ValueError, match="unit stride"):
        token_diagonal_backward_into(dx_rows.t().contiguous().t(), x_rows, g, w)
