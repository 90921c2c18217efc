"""The fused LayerNorm against its PyTorch reference and an fp64 formula: y (in the requested dtype) and
the gradients of x, weight and bias; `layer_norm_with_shortcut` (LayerNorm(x), x), whose backward kernel adds the
shortcut's gradient, against the reference pair whose gradients autograd adds (Triton's CPU interpreter without
CUDA; tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_vision.kernels.layernorm import layer_norm, layer_norm_reference, layer_norm_with_shortcut
from hydra_vision.kernels.layernorm.triton_layernorm import layer_norm_triton

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
EPS = 1e-6


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0, strided: bool = False, bias: bool = True):
    """x with an offset mean (so that centring matters), optionally rows of a wider tensor."""
    g = torch.Generator().manual_seed(seed)
    D = shape[-1]
    wide = (2 + 3 * torch.randn(*shape[:-1], D + 5, generator=g)).to(DEVICE, dtype)
    x = (wide[..., 5:] if strided else wide[..., :D].contiguous()).detach().requires_grad_()
    w = (1 + 0.5 * torch.randn(D, generator=g)).to(DEVICE, torch.float32).requires_grad_()
    b = (0.1 * torch.randn(D, generator=g)).to(DEVICE, torch.float32).requires_grad_() if bias else None
    dy = torch.randn(shape, generator=g).to(DEVICE, dtype)
    return x, w, b, dy


def _run(fn, x, w, b, dy, out_dtype=None) -> list[torch.Tensor]:
    y = fn(x, w, b, EPS, out_dtype or x.dtype)
    leaves = [t for t in (x, w, b) if t is not None]
    return [y.detach().double(), *(t.double() for t in torch.autograd.grad(y, leaves, dy.to(y.dtype)))]


def _formula(x: torch.Tensor, w: torch.Tensor, b, eps: float, out_dtype) -> torch.Tensor:
    """(x - mean) / sqrt(mean((x - mean)^2) + eps) w + b, written out (fp64 in the tests)."""
    xc = x - x.mean(-1, keepdim=True)
    y = xc / torch.sqrt(xc.square().mean(-1, keepdim=True) + eps) * w
    return (y if b is None else y + b).to(out_dtype)


def _fp64(x, w, b, dy) -> list[torch.Tensor]:
    leaves = [None if t is None else t.detach().double().requires_grad_() for t in (x, w, b)]
    return _run(_formula, *leaves, dy.double())


def test_reference_is_the_formula_in_fp64():
    x, w, b, dy = _inputs((3, 4, 40), torch.float64)
    for a, e in zip(_run(layer_norm_reference, x, w, b, dy), _run(_formula, x, w, b, dy)):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, strided, bias", [((2, 5, 24), False, True), ((3, 40), True, True),
                                                  ((1, 1, 7), False, False), ((4, 6, 96), True, False)], ids=str)
def test_fp32_matches_reference(shape, strided, bias):
    x, w, b, dy = _inputs(shape, torch.float32, strided=strided, bias=bias)
    out, ref = _run(layer_norm_triton, x, w, b, dy), _run(layer_norm_reference, x, w, b, dy)
    for name, a, r in zip(("y", "dx", "dw", "db"), out, ref):
        torch.testing.assert_close(a, r, rtol=2e-5, atol=2e-5 * r.abs().max().item(), msg=name)


def test_no_rows_gives_empty_outputs_and_zero_parameter_gradients():
    x, w, b, dy = _inputs((0, 24), torch.float32)
    y, dx, dw, db = _run(layer_norm_triton, x, w, b, dy)
    assert y.shape == dx.shape == (0, 24)
    zeros = torch.zeros(24, dtype=torch.float64, device=DEVICE)
    assert torch.equal(dw, zeros) and torch.equal(db, zeros)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(rows=st.integers(1, 9), D=st.integers(1, 300), strided=st.booleans())
def test_fuzz_fp32_against_reference(rows, D, strided):
    """Against fp64, within the reference's own fp32 error or 2e-5 of the scale: at D = 1 the exact dw is 0
    and PyTorch's is rounding noise amplified by 1 / sqrt(eps)."""
    x, w, b, dy = _inputs((rows, D), torch.float32, seed=rows * D, strided=strided)
    exact = _fp64(x, w, b, dy)
    out, ref = _run(layer_norm_triton, x, w, b, dy), _run(layer_norm_reference, x, w, b, dy)
    for name, o, r, e in zip(("y", "dx", "dw", "db"), out, ref, exact):
        bound = 2 * (r - e).abs().max().item() + 2e-5 * e.abs().max().item() + 1e-6
        assert (o - e).abs().max().item() <= bound, name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_within_the_references_own_error(dtype):
    """|kernel - fp64| <= 2 |reference in the same dtype - fp64| + one rounding of the scale."""
    x, w, b, dy = _inputs((3, 7, 64), dtype, seed=1)
    exact = _fp64(x, w, b, dy)
    out, ref = _run(layer_norm_triton, x, w, b, dy), _run(layer_norm_reference, x, w, b, dy)
    for name, o, r, e in zip(("y", "dx", "dw", "db"), out, ref, exact):
        bound = 2 * (r - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        assert (o - e).abs().max().item() <= bound, name


@pytest.mark.parametrize("x_dtype, out_dtype", [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16)],
                         ids=str)
def test_output_dtype_is_the_requested_one_and_rounds_the_fp32_result(x_dtype, out_dtype):
    """y in out_dtype equals the fp32 result rounded once (to within fp32's own error of a few ulps, as the GPU sums
    in another order); dx comes back in x's dtype."""
    x, w, b, dy = _inputs((4, 5, 48), x_dtype, seed=4)
    y = layer_norm_triton(x, w, b, EPS, out_dtype)
    assert y.dtype == out_dtype
    fp32 = layer_norm_reference(x.float(), w, b, EPS, torch.float32)
    rounding = torch.finfo(out_dtype).eps + 4 * torch.finfo(torch.float32).eps
    torch.testing.assert_close(y.float(), fp32.to(out_dtype).float(), rtol=0, atol=rounding * fp32.abs().max().item())
    (dx,) = torch.autograd.grad(y, x, dy.to(out_dtype))
    assert dx.dtype == x_dtype


def test_dispatch_only_by_name_and_fp64_stays_in_pytorch(operator_log):
    x, w, b, _ = _inputs((2, 3, 16), torch.float64)
    torch.testing.assert_close(layer_norm(x, w, b, EPS, backend="triton"), _formula(x, w, b, EPS, torch.float64),
                               rtol=1e-12, atol=1e-12)
    x32, w32, b32, _ = _inputs((2, 3, 16), torch.float32)
    with operator_log() as auto:
        layer_norm(x32, w32, b32, EPS, backend="auto")
    with operator_log() as triton:
        layer_norm(x32, w32, b32, EPS, backend="triton")
    assert ("hydra_vision::layer_norm" in auto.names) == (DEVICE == "cuda")  # auto: Triton on CUDA only
    assert "hydra_vision::layer_norm" in triton.names


def test_compiles_without_graph_breaks():
    x, w, b, _ = _inputs((2, 4, 32), torch.float32, seed=3)

    def block(x, w, b):
        return layer_norm(x, w, b, EPS, out_dtype=torch.float32, backend="triton").tanh().sum(-1)

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    eager_out, comp_out = block(x, w, b), compiled(x, w, b)
    torch.testing.assert_close(comp_out, eager_out, rtol=0, atol=0)
    g_eager = torch.autograd.grad(eager_out.square().sum(), (x, w, b))
    g_comp = torch.autograd.grad(comp_out.square().sum(), (x, w, b))
    for a, e in zip(g_comp, g_eager):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_custom_op_fakes_match_the_kernels(bias):
    """The fake implementations give the real outputs' shapes, dtypes and strides."""
    x, w, b, dy = _inputs((2, 5, 24), torch.bfloat16, seed=5, strided=True, bias=bias)
    torch.library.opcheck(torch.ops.hydra_vision.layer_norm.default, (x, w, b, EPS, torch.float32),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    _, mean, rstd = torch.ops.hydra_vision.layer_norm(x, w, b, EPS, torch.bfloat16)
    torch.library.opcheck(torch.ops.hydra_vision.layer_norm_backward.default, (dy, x, w, b, mean, rstd),
                          test_utils=("test_schema", "test_faketensor"))


def test_shape_errors_name_the_problem():
    x, w, b, _ = _inputs((2, 3, 16), torch.float32)
    with pytest.raises(ValueError, match=r"weight must have shape \(16,\)"):
        layer_norm(x, w[:8], b, EPS)
    with pytest.raises(ValueError, match=r"bias must have shape \(16,\)"):
        layer_norm(x, w, b[:8], EPS)

def _grads(pair, x, w, b, dy, dres, out_dtype) -> list[torch.Tensor]:
    """y and the gradients of x, w, b of <y, dy> + <shortcut, dres> (None: that output unused), in fp64."""
    y, shortcut = pair(x, w, b, out_dtype)
    terms = [(t * g.to(t.dtype)).sum() for t, g in ((y, dy), (shortcut, dres)) if g is not None]
    leaves = [t for t in (x, w, b) if t is not None]
    grads = torch.autograd.grad(sum(terms), leaves, allow_unused=True)
    return [y.detach().double(), *(torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads))]


def _triton(x, w, b, out_dtype):
    return layer_norm_with_shortcut(x, w, b, EPS, out_dtype=out_dtype, backend="triton")


def _reference(x, w, b, out_dtype):
    return layer_norm_reference(x, w, b, EPS, out_dtype), x


def _fp64(x, w, b, out_dtype):
    return _formula(x, w, b, EPS, torch.float64), x


def _fp64_leaves(x, w, b):
    return [None if t is None else t.detach().double().requires_grad_() for t in (x, w, b)]


def test_the_shortcut_is_x_and_its_gradient_is_added_once():
    x, w, b, _ = _inputs((2, 3, 32), torch.float32)
    y, shortcut = _triton(x, w, b, torch.float32)
    assert torch.equal(shortcut, x) and shortcut.grad_fn is not None  # one node for both outputs
    dres = torch.randn_like(x)
    (dx,) = torch.autograd.grad((shortcut * dres).sum(), x)  # the norm's output unused: dx is dres
    torch.testing.assert_close(dx, dres, rtol=0, atol=0)


@pytest.mark.parametrize("shape, strided, bias", [((2, 5, 24), False, True), ((3, 40), True, False)], ids=str)
@pytest.mark.parametrize("used", ["both", "norm"])
def test_fp32_matches_the_reference_pair(shape, strided, bias, used):
    x, w, b, dy = _inputs(shape, torch.float32, strided=strided, bias=bias)
    dres = torch.randn(shape).to(DEVICE) if used == "both" else None
    out = _grads(_triton, x, w, b, dy, dres, torch.float32)
    ref = _grads(_reference, x, w, b, dy, dres, torch.float32)
    for name, a, r in zip(("y", "dx", "dw", "db"), out, ref):
        torch.testing.assert_close(a.double(), r.double(), rtol=2e-5, atol=2e-5 * r.abs().max().item(), msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_within_the_reference_pairs_own_error(dtype):
    """|kernel - fp64| <= 2 |reference pair in the same dtype - fp64| + one rounding of the scale: the kernel
    rounds dx once, the reference pair twice (the norm's dx, then the sum)."""
    x, w, b, dy = _inputs((3, 7, 64), dtype, seed=2)
    dres = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE, dtype)
    exact = _grads(_fp64, *_fp64_leaves(x, w, b), dy.double(), dres.double(), torch.float64)
    out = _grads(_triton, x, w, b, dy, dres, dtype)
    ref = _grads(_reference, x, w, b, dy, dres, dtype)
    for name, o, r, e in zip(("y", "dx", "dw", "db"), out, ref, exact):
        o, r, e = o.double(), r.double(), e.double()
        bound = 2 * (r - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        assert (o - e).abs().max().item() <= bound, name


def test_elsewhere_the_pair_is_the_norm_and_x_itself():
    x, w, b, _ = _inputs((2, 3, 16), torch.float64)
    y, shortcut = layer_norm_with_shortcut(x, w, b, EPS, backend="triton")  # fp64 stays on the reference
    assert shortcut is x
    torch.testing.assert_close(y, layer_norm_reference(x, w, b, EPS, torch.float64))


def test_wrong_weight_shape_is_named():
    x, w, b, _ = _inputs((2, 3, 16), torch.float32)
    with pytest.raises(ValueError, match="weight must have shape"):
        layer_norm_with_shortcut(x, w[:8], b, EPS, backend="triton")
