"""hydra_vit_* through TorchScript, FX feature extraction, torch.jit.trace, torch.export and torch.compile."""
import pytest
import torch
from timm.layers import create_feature_extractor

from ._helpers import DEVICE, create, images


@pytest.fixture(scope="module")
def model():
    return create("hydra_vit_tiny", class_token=True, global_pool="token", pos_embed="learn").eval()


def test_jit_script(model):
    x = images()
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), model(x))


def test_fx_feature_extraction(model):
    x = images()
    extractor = create_feature_extractor(model, return_nodes={"blocks.0": "b0", "norm": "tokens", "head": "logits"})
    out = extractor(x)
    _, inter = model.forward_intermediates(x, indices=[0], output_fmt="NLC")
    torch.testing.assert_close(out["b0"][:, 1:], inter[0])
    torch.testing.assert_close(out["tokens"], model.forward_features(x))
    torch.testing.assert_close(out["logits"], model(x))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace(model):
    traced = torch.jit.trace(model, images())
    x = images(batch=3) * 2
    torch.testing.assert_close(traced(x), model(x))


def test_torch_export_with_dynamic_batch(model):
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (images(),), dynamic_shapes=({0: batch},))
    x = images(batch=5) - 1
    torch.testing.assert_close(program.module()(x), model(x))


def test_compile_fullgraph_no_graph_breaks(model):
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = images()
    torch.testing.assert_close(compiled(x), model(x))


def test_compile_fullgraph_under_autocast(model):
    """Under autocast the blocks ask which dtype their matmuls take (`matmul_dtype`) without a graph break."""
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, ref = compiled(x), model(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)


@pytest.mark.slow
def test_compile_inductor_cpu():
    model = create("hydra_vit_tiny", depth=1, img_size=32).eval()
    compiled = torch.compile(model)
    x = images(size=(32, 32))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("selective_recompute", [False, True])
def test_compile_fullgraph_with_every_triton_kernel(selective_recompute):
    """The training graph of a model on the Triton kernels (what `auto` picks on CUDA; here in Triton's
    interpreter, on a GPU where there is one: each block's conv, mix and gated norm as the fused layer's one custom
    op, ending with out_proj under selective recompute) has no graph breaks, and its gradients equal eager's."""
    model = create("hydra_vit_tiny", depth=1, img_size=32, backend="triton", chunk_size=16,
                   selective_recompute=selective_recompute).to(DEVICE)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = images(size=(32, 32)).to(DEVICE)
    eager_loss, compiled_loss = model(x).square().mean(), compiled(x).square().mean()
    eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
    compiled_grads = torch.autograd.grad(compiled_loss, list(model.parameters()))
    torch.testing.assert_close(compiled_loss, eager_loss)
    for eager, comp in zip(eager_grads, compiled_grads):
        torch.testing.assert_close(comp, eager)
