"""The compiled gated RMSNorm kernel at Hydra-ViT-B's size (128 x 197 rows of 1,536; skipped
without CUDA): y and the gradients within twice the PyTorch reference's own error against fp64."""
from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

from hydra_vision.kernels.gated_rmsnorm import gated_rmsnorm_reference  # noqa: E402
from hydra_vision.kernels.gated_rmsnorm.triton_norm import gated_rmsnorm_triton  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
def test_real_size_within_the_references_own_error(dtype):
    g = torch.Generator("cuda").manual_seed(0)
    shape = (128, 197, 1536)
    x = (3 * torch.randn(shape, device="cuda", generator=g)).to(dtype)
    zz = torch.randn(128, 197, 3376, device="cuda", generator=g).to(dtype)
    z = zz[..., :1536]  # the gate is a slice of in_proj's output
    w = 1 + 0.5 * torch.randn(1536, device="cuda", generator=g)
    dy = torch.randn(shape, device="cuda", generator=g).to(dtype)

    def run(fn, *inputs):
        leaves = [t.detach().requires_grad_() for t in inputs]
        y = fn(*leaves, 1e-5)
        return [y.detach().double(), *(t.double() for t in torch.autograd.grad(y, leaves, dy.to(y.dtype)))]

    exact = run(gated_rmsnorm_reference, x.double(), z.double(), w.double())
    out, ref = run(gated_rmsnorm_triton, x, z, w), run(gated_rmsnorm_reference, x, z, w)
    for name, o, r, e in zip(("y", "dx", "dz", "dw"), out, ref, exact):
        assert torch.isfinite(o).all(), name
        bound = 2 * (r - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        assert (o - e).abs().max().item() <= bound, f"{name}: {(o - e).abs().max().item():.3g} > {bound:.3g}"
