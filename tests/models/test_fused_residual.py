"""HydraBlock's fused residual gradient: x + DropPath(LS(mixer(norm1(x)))) with x's two gradients (the shortcut's
and norm1's) added inside norm1's backward kernel. On the Triton kernels (the interpreter on CPU) in fp32 the
outputs and gradients equal autograd's addition (`fuse_residual = False`) bit for bit: both add two fp32 values.
On a CUDA machine the same tests run the Triton kernels on the GPU, where the output is still compared bit for bit
but the gradients to fp32 rounding: the shortcut's gradient comes out of the LayerNorm kernel in another layout than
autograd's sum, and cuBLAS may then sum the patch embedding's weight gradient in another order (seen on an H100).
A lost or doubled shortcut gradient moves them by O(1), far beyond that bound."""
from unittest import mock

import pytest
import torch

from hydra_vision.kernels.layernorm import triton_layernorm
from hydra_vision.models.hydra_vit import HydraBlock

from ._helpers import DEVICE, create, images

GRAD_TOLERANCE = dict(rtol=0, atol=0) if DEVICE == "cpu" else dict(rtol=1e-5, atol=1e-6)


def _step(model, fuse: bool) -> tuple[torch.Tensor, dict, int]:
    """Output, parameter gradients and the LayerNorm backward launches that added a shortcut gradient, of one
    forward + backward."""
    real_backward = triton_layernorm._ln_backward
    fused = []

    def ln_backward(*args, dres=None):
        fused.append(dres is not None)
        return real_backward(*args, dres=dres)

    torch.manual_seed(3)  # the same DropPath masks in both runs
    with mock.patch.object(HydraBlock, "fuse_residual", fuse), \
            mock.patch.object(triton_layernorm, "_ln_backward", ln_backward):
        model.zero_grad(set_to_none=True)
        out = model(images(size=(32, 32)).to(DEVICE))
        out.square().sum().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}, sum(fused)


# model options -> norm1 backward launches (of 2 blocks) that add the shortcut's gradient
CASES = {"plain": (dict(), 2), "drop_path": (dict(drop_path_rate=0.3), 2), "layer_scale": (dict(init_values=0.1), 2),
         "recompute": (dict(selective_recompute=True), 2)}


@pytest.mark.parametrize("case", CASES)
def test_fused_residual_gradient_equals_autograds_addition(case):
    kwargs, fused_launches = CASES[case]
    model = create("hydra_vit_tiny", backend="triton", img_size=32, chunk_size=16, **kwargs).to(DEVICE).train()
    out, grads, launches = _step(model, True)
    assert launches == fused_launches
    out_separate, grads_separate, launches_separate = _step(model, False)
    assert launches_separate == 0
    torch.testing.assert_close(out, out_separate, rtol=0, atol=0)
    assert grads.keys() == grads_separate.keys()
    for name, grad in grads_separate.items():
        torch.testing.assert_close(grads[name], grad, **GRAD_TOLERANCE, msg=name)


def test_a_forward_hook_on_norm1_keeps_the_separate_path_so_that_it_sees_every_call():
    model = create("hydra_vit_tiny", backend="triton", img_size=32, chunk_size=16).to(DEVICE)
    seen = []
    model.blocks[0].norm1.register_forward_hook(lambda *_: seen.append(1))
    assert _step(model, True)[2] == 1 and seen == [1]  # block 1 still fuses
