"""The SSD mixers on the fused Triton kernels equal their reference path: output and gradients.

Without CUDA the kernels run in Triton's CPU interpreter, which must be chosen before the kernel
modules are first imported (they are imported lazily, on the first triton-backend call), so this
module sets TRITON_INTERPRET at import, as tests/kernels/test_quasiseparable_triton.py does.
"""
import os

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"

from hydra_vision.layers.mixers import create_mixer  # noqa: E402

SSD = ["quasiseparable", "add", "add_shift", "add_diag", "mult", "concat", "causal"]


def _run(name: str, backend: str) -> list[torch.Tensor]:
    torch.manual_seed(0)
    mixer = create_mixer(name, 32, d_state=8, headdim=16, ngroups=1, d_conv=3, chunk_size=8, backend=backend,
                         device=DEVICE)
    with torch.no_grad():
        mixer.in_proj.weight.normal_(std=0.3)
    u = torch.randn(2, 20, 32, generator=torch.Generator().manual_seed(1)).to(DEVICE).requires_grad_()
    y = mixer(u)
    y.square().sum().backward()
    return [y.detach(), u.grad] + [p.grad for p in mixer.parameters()]


@pytest.mark.parametrize("name", SSD)
def test_triton_backend_matches_the_reference(name):
    for out, ref in zip(_run(name, "triton"), _run(name, "reference")):
        scale = ref.abs().max().item()
        assert (out - ref).abs().max().item() <= 2e-5 * max(scale, 1e-3)
