"""GatedRMSNorm against its formula: normalise, scale by weight, then gate with SiLU(z)."""
import pytest
import torch

from hydra_vision.layers import GatedRMSNorm


def _formula(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x, z, weight = x.double(), z.double(), weight.double()
    rms = (x.pow(2).sum(-1, keepdim=True) / x.shape[-1] + eps).sqrt()
    return x / rms * weight * (z / (1 + torch.exp(-z)))


def _norm(dim: int, dtype: torch.dtype = torch.float32) -> GatedRMSNorm:
    norm = GatedRMSNorm(dim, dtype=dtype)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.5 * torch.randn(dim))
    return norm


def test_matches_formula_fp32():
    torch.manual_seed(0)
    x, z = torch.randn(2, 5, 24) * 3, torch.randn(2, 5, 24)
    norm = _norm(24)
    out = norm(x, z)
    torch.testing.assert_close(out.double(), _formula(x, z, norm.weight, 1e-5), rtol=1e-5, atol=1e-6)
    assert norm.eps == 1e-5 and torch.equal(GatedRMSNorm(24).weight, torch.ones(24))


def test_normalises_before_the_gate():
    torch.manual_seed(0)
    x, z = torch.randn(3, 16), torch.randn(3, 16)
    norm = GatedRMSNorm(16)
    gated_first = _formula(x * torch.nn.functional.silu(z), torch.full_like(z, 1e4), norm.weight, 1e-5)
    out = norm(x, z).double()
    assert (out - _formula(x, z, norm.weight, 1e-5)).abs().max() < 1e-6
    assert (out - gated_first).abs().max() > 1e-2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_computes_in_fp32(dtype):
    torch.manual_seed(0)
    x, z = (torch.randn(4, 7, 64) * 8).to(dtype), torch.randn(4, 7, 64).to(dtype)
    norm = _norm(64, dtype)
    out = norm(x, z)
    assert out.dtype == dtype
    exact = _formula(x, z, norm.weight, 1e-5)
    # one rounding of the fp32 result to the low dtype: relative error <= 2^-(mantissa bits)
    rel = torch.finfo(dtype).eps
    assert ((out.double() - exact).abs() <= rel * exact.abs() + 1e-6).all()


def test_gradients_reach_x_z_and_weight():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    norm = GatedRMSNorm(8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: norm(a, b), (x, z))
    norm(x, z).sum().backward()
    assert norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0
