"""The Hydra layer's fused path (conv, mix and gated norm as one autograd node, eager or as one custom op in a
compiled graph, `hydra_vision.kernels.fused_layer`) against the same layer run as separate ops: equal outputs and
gradients, no concatenated gradients, the conv output not stored, and the cases that must not fuse.
Triton's CPU interpreter without CUDA (tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import pytest
import torch

from hydra_vision.layers import Hydra

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _layer(seed: int = 0, **kwargs) -> Hydra:
    torch.manual_seed(seed)
    layer = Hydra(32, d_state=8, headdim=8, **{"backend": "triton", "chunk_size": 16, **kwargs}).to(DEVICE)
    with torch.no_grad():  # non-trivial values for the parameters the init sets to constants
        layer.A_log.uniform_(-1, 1)
        layer.D.normal_()
        layer.norm.weight.normal_(1, 0.3)
    return layer


def _run(layer: Hydra, u: torch.Tensor, fused: bool, autocast: bool = False) -> list[torch.Tensor]:
    layer.fuse_layer = fused
    u = u.detach().requires_grad_()
    with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=autocast):
        assert layer.fuses_layer(u) == fused
        out = layer(u)
    grads = torch.autograd.grad(out.float().square().sum(), [u, *layer.parameters()])
    return [out.detach().float(), *(g.float() for g in grads)]


@pytest.mark.parametrize("L", [19, 7, 1], ids=["two_chunks", "one_chunk", "one_token"])
def test_fp32_equals_the_separate_ops(L):
    layer = _layer()
    u = torch.randn(2, L, 32, device=DEVICE)
    names = ["out", "u", *(n for n, _ in layer.named_parameters())]
    for name, a, b in zip(names, _run(layer, u, True), _run(layer, u, False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item() + 1e-7, msg=name)


def test_bf16_autocast_within_a_few_roundings_of_the_separate_ops():
    """Same launchers; dx += dD w_D is one fused multiply-add here (two roundings there) and D's gradient is
    summed in fp32 (in bf16 there)."""
    layer = _layer(seed=1)
    u = torch.randn(2, 19, 32, device=DEVICE)
    names = ["out", "u", *(n for n, _ in layer.named_parameters())]
    eps = torch.finfo(torch.bfloat16).eps
    for name, a, b in zip(names, _run(layer, u, True, True), _run(layer, u, False, True), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=8 * eps * b.abs().max().item(), msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_a_low_precision_layer_gets_gradients_in_its_dtype_close_to_the_separate_ops(dtype):
    """Parameters in bf16 or fp16 (model.to(dtype), no autocast): every gradient in its parameter's dtype."""
    layer = _layer(seed=3).to(dtype)
    u = torch.randn(2, 19, 32, device=DEVICE, dtype=dtype)
    fused, plain = _run(layer, u, True), _run(layer, u, False)
    layer.fuse_layer = True
    out = layer(u.detach().requires_grad_())
    grads = torch.autograd.grad(out.float().square().sum(), list(layer.parameters()))
    assert all(g.dtype == dtype for g in grads)
    eps = torch.finfo(dtype).eps
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=8 * eps * b.abs().max().item())


def _backward_cats_and_saved_bytes(layer: Hydra, u: torch.Tensor, fused: bool) -> tuple[int, int]:
    """(aten::cat calls in backward, bytes of the storages the layer's forward saves for backward)."""
    layer.fuse_layer = fused
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = layer(u.detach().requires_grad_())
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in saved}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out.sum().backward()
    cats = sum(e.count for e in prof.key_averages() if e.key == "aten::cat")
    return cats, sum(storages.values())


def test_backward_concatenates_nothing_and_the_conv_output_is_not_stored():
    layer = _layer(seed=2)
    u = torch.randn(2, 19, 32, device=DEVICE)
    cats_fused, bytes_fused = _backward_cats_and_saved_bytes(layer, u, True)
    cats_plain, bytes_plain = _backward_cats_and_saved_bytes(layer, u, False)
    conv_output = u.shape[0] * u.shape[1] * layer.conv1d.out_channels * u.element_size()
    assert cats_fused == 0 < cats_plain
    assert bytes_fused <= bytes_plain - conv_output


@pytest.mark.parametrize("case", ["reference_backend", "switched_off", "selective_recompute", "tuned_chunk",
                                  "no_grad_mode_still_fuses"])
def test_when_it_fuses(case):
    layer = _layer(**({"backend": "reference"} if case == "reference_backend" else {}),
                   **({"chunk_size": None} if case == "tuned_chunk" else {}))
    u = torch.randn(1, 5, 32, device=DEVICE)
    layer.fuse_layer = case != "switched_off"
    layer.selective_recompute = case == "selective_recompute"
    with torch.set_grad_enabled(case != "no_grad_mode_still_fuses"):
        assert layer.fuses_layer(u) == (case in ("selective_recompute", "no_grad_mode_still_fuses"))


def _graph_saved_bytes(out: torch.Tensor) -> int:
    """Bytes of the storages the autograd graph behind `out` holds for backward (read from its nodes, since
    saved-tensor hooks would switch selective recompute off)."""
    storages, seen, nodes = {}, set(), [out.grad_fn]
    while nodes:
        node = nodes.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        tensors = list(getattr(node, "saved_tensors", None) or ())
        for name in dir(node):
            value = getattr(node, name) if name.startswith("_saved_") else None
            tensors += [v for v in (value if isinstance(value, (tuple, list)) else [value])
                        if isinstance(v, torch.Tensor)]
        storages.update({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                         for t in tensors if t is not None})
        nodes.extend(fn for fn, _ in node.next_functions)
    return sum(storages.values())


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16_autocast"])
def test_selective_recompute_ends_the_node_with_out_proj_and_stores_no_norm_output(autocast):
    """With selective recompute the fused node runs out_proj too and recomputes the gated norm's output in
    backward: the same output and gradients as the fused layer followed by out_proj (fp32: to rounding; bf16
    autocast: within a few bf16 roundings) and one norm output fewer stored."""
    layer = _layer(seed=4, bias=True)
    u = torch.randn(2, 19, 32, device=DEVICE)
    runs, saved = [], []
    for recompute in (False, True):
        layer.selective_recompute = recompute
        runs.append(_run(layer, u, True, autocast))
        saved.append(_graph_saved_bytes(layer(u.detach().requires_grad_())))
    names = ["out", "u", *(n for n, _ in layer.named_parameters())]
    scale = 8 * torch.finfo(torch.bfloat16).eps if autocast else 1e-5
    for name, a, b in zip(names, runs[1], runs[0], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=scale * b.abs().max().item() + 1e-7, msg=name)
    norm_output = u.shape[0] * u.shape[1] * layer.d_inner * u.element_size()
    assert saved[1] <= saved[0] - norm_output


def _compiled(layer: Hydra) -> tuple[torch.nn.Module, list[torch.fx.GraphModule]]:
    """torch.compile(layer, fullgraph=True) through AOTAutograd (eager kernels), keeping Dynamo's graphs."""
    torch._dynamo.reset()
    graphs, aot_eager = [], torch._dynamo.lookup_backend("aot_eager")

    def backend(gm: torch.fx.GraphModule, example_inputs):
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    return torch.compile(layer, backend=backend, fullgraph=True), graphs


def _custom_ops(graphs: list[torch.fx.GraphModule]) -> list[torch.fx.Node]:
    return [n for g in graphs for n in g.graph.nodes
            if n.op == "call_function" and "hydra_vision" in str(getattr(n.target, "namespace", ""))]


@pytest.mark.parametrize("recompute", [False, True], ids=["default", "selective_recompute"])
def test_torch_compile_traces_the_layer_as_one_custom_op(recompute):
    """Compiled, the fused layer is one `hydra_vision::hydra_layer` node (ending with out_proj under selective
    recompute), with the eager fused path's output and gradients; switched off, the graph holds the separate
    conv, mix and norm ops instead."""
    layer = _layer(seed=5)
    layer.selective_recompute = recompute
    u = torch.randn(2, 19, 32, device=DEVICE)
    eager = _run(layer, u, True)
    compiled, graphs = _compiled(layer)
    u_c = u.detach().requires_grad_()
    out = compiled(u_c)
    grads = torch.autograd.grad(out.float().square().sum(), [u_c, *layer.parameters()])
    names = ["out", "u", *(n for n, _ in layer.named_parameters())]
    for name, a, b in zip(names, [out.detach(), *grads], eager, strict=True):
        torch.testing.assert_close(a.float(), b, rtol=1e-5, atol=1e-5 * b.abs().max().item() + 1e-7, msg=name)
    ops = _custom_ops(graphs)
    assert [str(n.target) for n in ops] == ["hydra_vision.hydra_layer.default"]
    out_weight = ops[0].args[8]
    assert (out_weight is not None) == recompute

    layer.fuse_layer = False
    compiled, graphs = _compiled(layer)
    compiled(u)
    assert sorted(str(n.target).split(".")[1] for n in _custom_ops(graphs)) == [
        "dwconv1d_silu", "gated_rmsnorm", "ssd_mix"]


def _op_spec(layer: Hydra) -> tuple:
    """The scalar arguments of `hydra_vision::hydra_layer` for `_layer`'s layer (chunks of 16, dt unlimited)."""
    return (layer.d_inner, layer.headdim, layer.ngroups, layer.d_state, layer.causal_conv, 0.0, float("inf"),
            layer.shift, 16, layer.norm.eps)


@pytest.mark.parametrize("project", [False, True], ids=["to_the_norm", "to_out_proj"])
def test_the_layer_op_passes_torch_library_opcheck(project):
    """Schema, fake tensors (forward and backward op), autograd registration and AOT dispatch of the custom op
    (`torch.library.opcheck`), with the Hydra layer's parameters."""
    from hydra_vision.kernels.fused_layer import _LAYER

    layer = _layer(seed=6, bias=project)
    zxr = torch.randn(2, 7, layer.in_proj.out_features, device=DEVICE, requires_grad=True)
    spec = _op_spec(layer)
    out_proj = (layer.out_proj.weight, layer.out_proj.bias) if project else (None, None)
    args = (zxr, layer.conv1d.weight, layer.conv1d.bias, layer.fc_D.weight, layer.D, layer.A_log, layer.dt_bias,
            layer.norm.weight, *out_proj, *spec)
    torch.library.opcheck(_LAYER.op, args)
