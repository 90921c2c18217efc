"""MatmulInputLayerNorm: timm's LayerNorm values, returned in the dtype the next matmul takes, with
LayerNorm's parameters; the blocks of hydra_vit_* use it, the final norm stays timm's LayerNorm."""
from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import LayerNorm

from hydra_vision.layers import MatmulInputLayerNorm

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _pair(dim: int, backend: str, seed: int = 0) -> tuple[MatmulInputLayerNorm, LayerNorm]:
    torch.manual_seed(seed)
    plain = LayerNorm(dim).to(DEVICE)
    with torch.no_grad():
        plain.weight.normal_(1, 0.5)
        plain.bias.normal_(0, 0.1)
    fused = MatmulInputLayerNorm(dim, backend=backend).to(DEVICE)
    fused.load_state_dict(plain.state_dict())
    return fused, plain


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_without_autocast_it_is_layernorm(backend):
    fused, plain = _pair(48, backend)
    x = (1 + 2 * torch.randn(2, 9, 48, device=DEVICE)).requires_grad_()
    y, ref = fused(x), plain(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref, rtol=2e-5, atol=2e-5)
    dy = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, (x, fused.weight, fused.bias), dy),
                    torch.autograd.grad(ref, (x, plain.weight, plain.bias), dy)):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * b.abs().max().item())


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_under_autocast_it_gives_what_the_linear_takes(backend):
    """On CUDA LayerNorm returns fp32 under autocast and the Linear casts it to bf16 (on CPU autocast runs
    it in bf16); this layer returns that bf16 tensor (to one rounding) itself, and the Linear after it
    gives the same result."""
    fused, plain = _pair(64, backend, seed=1)
    linear = torch.nn.Linear(64, 32).to(DEVICE)
    x = (1 + 2 * torch.randn(3, 5, 64, device=DEVICE)).to(torch.bfloat16)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        y, ref = fused(x), plain(x)
        out, out_ref = linear(y), linear(ref)
    assert y.dtype == torch.bfloat16
    eps = torch.finfo(torch.bfloat16).eps
    torch.testing.assert_close(y.float(), ref.to(torch.bfloat16).float(), rtol=0, atol=eps * ref.abs().max().item())
    torch.testing.assert_close(out.float(), out_ref.float(), rtol=0, atol=4 * eps * out_ref.abs().max().item())


def test_state_dict_is_layernorms():
    fused, plain = _pair(16, "reference")
    assert fused.state_dict().keys() == plain.state_dict().keys()
    assert MatmulInputLayerNorm(16).eps == LayerNorm(16).eps


def test_hydra_vit_blocks_use_it_and_a_given_norm_layer_replaces_it():
    model = timm.create_model("hydra_vit_tiny", depth=2)
    assert all(type(block.norm1) is MatmulInputLayerNorm for block in model.blocks)
    assert type(model.norm) is LayerNorm
    custom = timm.create_model("hydra_vit_tiny", depth=2, norm_layer="rmsnorm")
    assert all(type(block.norm1) is type(custom.norm) for block in custom.blocks)
    assert type(custom.norm) is not LayerNorm
