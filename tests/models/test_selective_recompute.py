"""selective_recompute: conv and gated-norm outputs recomputed in backward, the fused mix kept, results unchanged."""
import gc
import weakref
from unittest import mock

import pytest
import torch

from hydra_vision.kernels.dwconv import triton_conv
from hydra_vision.kernels.gated_rmsnorm import triton_norm
from hydra_vision.kernels.layernorm import triton_layernorm
from hydra_vision.kernels.quasiseparable import triton_mix
from hydra_vision.layers import BidirectionalSSD, MatrixMixer, matrix_mixer

from ._helpers import create, images

KERNELS = {"mix": (triton_mix, "chunk_fwd_kernel"), "conv": (triton_conv, "_conv_fwd_kernel"),
           "norm": (triton_norm, "_norm_fwd_kernel"), "layernorm": (triton_layernorm, "_ln_fwd_kernel")}


class _Counted:
    """A Triton kernel that counts its launches and runs them."""

    def __init__(self, kernel, counts: dict, name: str):
        self.kernel, self.counts, self.name = kernel, counts, name

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.counts[self.name] += 1
            return self.kernel[grid](*args, **kwargs)
        return launch


@pytest.mark.parametrize("recompute", [False, True])
def test_only_the_fused_mix_runs_once(recompute):
    """Forward + backward of 2 blocks on the Triton kernels: the mix and the norm forward run once per block
    either way (with recomputation the norm's backward writes its output again); the conv forward runs again in
    backward either way (the fused layer recomputes it); norm1's LayerNorm runs again only with recomputation,
    and its backward adds the shortcut's gradient either way."""
    model = create("hydra_vit_tiny", backend="triton", img_size=32, chunk_size=16, selective_recompute=recompute)
    counts = dict.fromkeys(KERNELS, 0)
    shortcut_grads = []
    real_ln_backward = triton_layernorm._ln_backward

    def ln_backward(*args, dres=None):
        shortcut_grads.append(dres is not None)
        return real_ln_backward(*args, dres=dres)

    with mock.patch.multiple(triton_mix, chunk_fwd_kernel=_Counted(triton_mix.chunk_fwd_kernel, counts, "mix")), \
            mock.patch.multiple(triton_conv, _conv_fwd_kernel=_Counted(triton_conv._conv_fwd_kernel, counts, "conv")), \
            mock.patch.multiple(triton_norm, _norm_fwd_kernel=_Counted(triton_norm._norm_fwd_kernel, counts, "norm")), \
            mock.patch.multiple(triton_layernorm, _ln_backward=ln_backward,
                                _ln_fwd_kernel=_Counted(triton_layernorm._ln_fwd_kernel, counts, "layernorm")):
        model(images(size=(32, 32))).sum().backward()
    assert counts == {"mix": 2, "conv": 4, "norm": 2, "layernorm": 4 if recompute else 2}
    assert sum(shortcut_grads) == 2


@pytest.mark.parametrize("recompute", [False, True])
def test_conv_and_norm_outputs_are_freed_after_forward_only_with_recompute(recompute):
    """Between forward and backward the graph keeps the first pass's conv and norm outputs alive
    (through the views the mix and out_proj save) only without recomputation."""
    model = create("hydra_vit_tiny", selective_recompute=recompute)
    outputs = []
    real_conv = matrix_mixer.conv_tokens

    def recording_conv(*args):
        out = real_conv(*args)
        outputs.append(weakref.ref(out))
        return out

    hooks = [m.norm.register_forward_hook(lambda mod, args, out: outputs.append(weakref.ref(out)))
             for m in model.modules() if isinstance(m, MatrixMixer)]
    with mock.patch.object(matrix_mixer, "conv_tokens", recording_conv):
        loss = model(images()).sum()
        gc.collect()
        alive = [ref() is not None for ref in outputs]
        loss.backward()
    for h in hooks:
        h.remove()
    assert len(outputs) == (8 if recompute else 4)  # 2 blocks x conv, norm; recomputed once more in backward
    assert alive == [not recompute] * 4


@pytest.mark.parametrize("mixer, backend", [("quasiseparable", "triton"), ("quasiseparable", "reference"),
                                            ("attention", None), ("toeplitz_dd", None)])
def test_same_loss_and_gradients(mixer, backend):
    kwargs = dict(mixer=mixer, backend=backend, img_size=32, chunk_size=16)
    plain, recomputing = (create("hydra_vit_tiny", selective_recompute=r, **kwargs) for r in (False, True))
    recomputing.load_state_dict(plain.state_dict())
    x = images(size=(32, 32))
    losses = [m(x).square().mean() for m in (plain, recomputing)]
    grads = [torch.autograd.grad(loss, list(m.parameters())) for loss, m in zip(losses, (plain, recomputing))]
    torch.testing.assert_close(losses[1], losses[0], rtol=0, atol=0)
    for g_recomputed, g_plain in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_recomputed, g_plain, rtol=1e-6, atol=1e-7)


def test_set_selective_recompute_reaches_every_mixer_and_inference_skips_it():
    model = create("hydra_vit_tiny")
    mixers = [m for m in model.modules() if isinstance(m, MatrixMixer)]
    assert mixers and not any(m.selective_recompute for m in mixers)
    model.set_selective_recompute(True)
    assert all(m.selective_recompute for m in mixers)
    with torch.no_grad():
        torch.testing.assert_close(model(images()), create("hydra_vit_tiny")(images()), rtol=0, atol=0)



def _layernorm_runs_and_grads(device: str, **kwargs) -> list[tuple[int, list[torch.Tensor]]]:
    """For hydra_vit_tiny without and with recomputation (same weights), under bf16 autocast on `device`:
    (LayerNorm forward calls in forward + backward, parameter gradients) of one loss."""
    plain, recomputing = (create("hydra_vit_tiny", selective_recompute=r, img_size=32, **kwargs).to(device)
                          for r in (False, True))
    recomputing.load_state_dict(plain.state_dict())
    x = images(size=(32, 32)).to(device)
    results = []
    for model in (plain, recomputing):
        calls = []
        hooks = [block.norm1.register_forward_hook(lambda *_: calls.append(1)) for block in model.blocks]
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(x).float().square().mean()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((len(calls), grads))
        for h in hooks:
            h.remove()
    return results


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_layernorm_output_is_rerun_not_stored_and_gradients_are_exact_under_autocast(backend, monkeypatch):
    """bf16 autocast, as in training: with recomputation each block's LayerNorm runs again in backward (the
    bf16 copy in_proj saves is dropped), and the gradients equal the stored-activation run's. Both runs take
    the separate ops, so that the gradients compare exactly (the fused layer with recompute ends with
    out_proj and rounds its products differently: tests/layers/test_fused_layer.py)."""
    monkeypatch.setattr(BidirectionalSSD, "fuse_layer", False)
    (calls_plain, grads_plain), (calls_recomputing, grads_recomputing) = _layernorm_runs_and_grads(
        "cpu", backend=backend, chunk_size=16)
    assert (calls_plain, calls_recomputing) == (2, 4)  # 2 blocks; + one rerun each in backward
    for g_recomputed, g_plain in zip(grads_recomputing, grads_plain, strict=True):
        torch.testing.assert_close(g_recomputed, g_plain, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_under_autocast_the_layernorm_copy_is_dropped_and_gradients_are_exact(monkeypatch):
    """On CUDA, where autocast runs timm's LayerNorm in fp32 and in_proj would save its own bf16 copy (the
    case `autocast_input` exists for; the blocks' norm now returns bf16 itself), the norm's output is rerun,
    not stored (benchmarks/gpu_check.sh tests runs this). Both runs take the separate ops, as above."""
    monkeypatch.setattr(BidirectionalSSD, "fuse_layer", False)
    (calls_plain, grads_plain), (calls_recomputing, grads_recomputing) = _layernorm_runs_and_grads("cuda")
    assert (calls_plain, calls_recomputing) == (2, 4)
    for g_recomputed, g_plain in zip(grads_recomputing, grads_plain, strict=True):  # cuBLAS may pick other kernels
        torch.testing.assert_close(g_recomputed, g_plain, rtol=1e-5, atol=1e-7)


def test_grad_checkpointing_keeps_its_memory_saving_with_selective_recompute():
    """With whole-block checkpointing on, selective recomputation steps aside: its hooks would otherwise
    store what the checkpoint drops (each in_proj output). Gradients are unchanged."""
    x = images()
    grads, alive = [], []
    for recompute in (False, True):
        model = create("hydra_vit_tiny", selective_recompute=recompute)
        model.set_grad_checkpointing(True)
        outputs = []
        hooks = [m.in_proj.register_forward_hook(lambda mod, args, out: outputs.append(weakref.ref(out)))
                 for m in model.modules() if isinstance(m, MatrixMixer)]
        loss = model(x).square().mean()
        gc.collect()
        alive.append([ref() is not None for ref in outputs[:2]])
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
        for h in hooks:
            h.remove()
    assert alive == [[False, False], [False, False]]
    for g_recompute, g_plain in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_recompute, g_plain, rtol=0, atol=0)


def test_meta_tensors_and_fake_modes_skip_recomputation():
    model = create("hydra_vit_tiny", selective_recompute=True).to("meta")
    model(images().to("meta")).sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters())
