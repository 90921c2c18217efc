"""The fused depthwise conv1d + SiLU against its PyTorch reference and fp64: y and the gradients of
x, weight and bias (Triton's CPU interpreter without CUDA; tests/conftest.py sets TRITON_INTERPRET)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hydra_vision.kernels.dwconv import depthwise_conv1d_silu, depthwise_conv1d_silu_reference, triton_conv
from hydra_vision.kernels.dwconv.triton_conv import depthwise_conv1d_silu_triton
from hydra_vision.kernels.launcher import triton_kernel

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(B: int, L: int, C: int, K: int, dtype: torch.dtype, *, bias: bool = True, strided: bool = False,
            seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    wide = torch.randn(B, L, C + 5 if strided else C, generator=g).to(DEVICE, dtype)
    x = (wide[..., 2:C + 2] if strided else wide).detach().requires_grad_()
    w = (0.5 * torch.randn(C, 1, K, generator=g)).to(DEVICE).requires_grad_()
    b = (0.1 * torch.randn(C, generator=g)).to(DEVICE).requires_grad_() if bias else None
    dy = torch.randn(B, L, C, generator=g).to(DEVICE, dtype)
    return x, w, b, dy


def _run(fn, x, w, b, dy, causal, silu_channels) -> list[torch.Tensor]:
    y = fn(x, w, b, causal, silu_channels)
    leaves = [t for t in (x, w, b) if t is not None]
    return [y.detach().double(), *(t.double() for t in torch.autograd.grad(y, leaves, dy))]


CASES = [  # B, L, C, K, causal, silu_channels, bias, strided
    (2, 19, 24, 7, False, 24, True, False),  # Hydra's conv: same length, SiLU on every channel
    (2, 70, 80, 7, False, 80, True, True),  # several token and channel tiles, strided tokens
    (1, 9, 16, 4, True, 16, True, False),  # causal, even kernel
    (3, 12, 40, 3, False, 24, False, True),  # SiLU on the values only, no bias
    (2, 3, 8, 7, False, 8, True, False),  # L < K
    (1, 1, 8, 5, True, 4, True, False),  # L = 1
]


def _assert_fp32_matches_reference(x, w, b, dy, causal, silu_channels) -> None:
    out = _run(depthwise_conv1d_silu_triton, x, w, b, dy, causal, silu_channels)
    ref = _run(depthwise_conv1d_silu_reference, x, w, b, dy, causal, silu_channels)
    for name, a, r in zip(("y", "dx", "dw", "db"), out, ref):
        torch.testing.assert_close(a, r, rtol=2e-5, atol=2e-5 * r.abs().max().item(), msg=name)


@pytest.mark.parametrize("B, L, C, K, causal, silu_channels, bias, strided", CASES, ids=str)
def test_fp32_matches_reference(B, L, C, K, causal, silu_channels, bias, strided):
    x, w, b, dy = _inputs(B, L, C, K, torch.float32, bias=bias, strided=strided)
    _assert_fp32_matches_reference(x, w, b, dy, causal, silu_channels)


def _config_id(c) -> str:
    return "_".join(f"{k}{v}" for k, v in c.kwargs.items()) + f"_w{c.num_warps}"


@pytest.mark.parametrize("config", triton_conv.forward_configs(), ids=_config_id)
def test_every_forward_config_matches_reference(monkeypatch, config):
    """Each forward config forced (the interpreter runs only the first): runs of 5 or 9 steps of K tokens
    over L = 70 end ragged, and tiles of 128 or 256 channels over 80 leave masked channels."""
    monkeypatch.setattr(triton_conv._conv_fwd_kernel, "configs", [config])
    _assert_fp32_matches_reference(*_inputs(2, 70, 80, 7, torch.float32, seed=3), False, 80)


@pytest.mark.parametrize("config", triton_conv.backward_configs(), ids=_config_id)
def test_every_backward_config_matches_reference(monkeypatch, config):
    """Each backward channel tile forced, over more channels than the widest tile (600 > 512)."""
    monkeypatch.setattr(triton_conv._conv_bwd_kernel, "configs", [config])
    _assert_fp32_matches_reference(*_inputs(1, 37, 600, 7, torch.float32, seed=4), False, 600)


def test_autotuning_leaves_no_stale_partial_sums(monkeypatch):
    """The timed launches of the 128-channel tile run before the 256-channel tile that wins: the weight and
    bias sums must come from the real launch alone, whichever tile ran first."""
    bwd = triton_kernel(triton_conv._conv_bwd_kernel)  # the autotuner under the cached launcher
    configs = triton_conv.backward_configs()[:2]
    timings = iter([2.0, 1.0])  # one timed launch each; the 256-channel tile wins
    monkeypatch.setattr(bwd, "configs", configs)
    monkeypatch.setattr(bwd, "early_config_prune", None)  # keeps both in the interpreter
    monkeypatch.setattr(bwd, "cache", {})
    monkeypatch.setitem(vars(bwd), "do_bench", lambda call, quantiles: (call(), next(timings))[1])  # a cached_property
    _assert_fp32_matches_reference(*_inputs(2, 70, 300, 7, torch.float32, seed=5), False, 300)
    assert list(bwd.cache.values()) == [configs[1]]


@pytest.mark.parametrize("causal", [False, True], ids=["same", "causal"])
@pytest.mark.parametrize("L", [16, 50], ids=["one_segment", "four_segments"])
def test_segments_recompute_their_halo(monkeypatch, L, causal):
    """Each backward program owns a SEGMENT of tokens and recomputes the K - 1 rows of dpre around it that its
    dx reads; with 16-token segments, L = 50 takes four programs, the last one ragged."""
    monkeypatch.setattr(triton_conv, "SEGMENT", 16)
    K = 4 if causal else 7
    _assert_fp32_matches_reference(*_inputs(2, L, 40, K, torch.float32, seed=L), causal, 40)


def test_every_partial_sum_row_is_written(monkeypatch):
    """The per-segment sums start as NaN: any row the kernel did not write would poison dw or db."""
    monkeypatch.setattr(triton_conv, "SEGMENT", 16)
    monkeypatch.setattr(triton_conv, "_partial_sums", lambda rows, K, C, device: torch.full(
        (rows, K + 1, C), float("nan"), device=device))
    _assert_fp32_matches_reference(*_inputs(3, 41, 24, 7, torch.float32, seed=6), False, 24)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(B=st.integers(1, 2), L=st.integers(1, 70), C=st.integers(1, 130), K=st.integers(1, 9), causal=st.booleans(),
       silu_part=st.floats(0, 1), bias=st.booleans(), strided=st.booleans())
def test_fuzz_fp32_against_reference(B, L, C, K, causal, silu_part, bias, strided):
    K = K if causal else K | 1  # a same-length conv needs an odd kernel
    x, w, b, dy = _inputs(B, L, C, K, torch.float32, bias=bias, strided=strided, seed=L * C)
    silu_channels = round(silu_part * C)
    out = _run(depthwise_conv1d_silu_triton, x, w, b, dy, causal, silu_channels)
    ref = _run(depthwise_conv1d_silu_reference, x, w, b, dy, causal, silu_channels)
    for name, a, r in zip(("y", "dx", "dw", "db"), out, ref):
        torch.testing.assert_close(a, r, rtol=2e-5, atol=2e-5 * max(r.abs().max().item(), 1e-6), msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_within_the_references_own_error(dtype):
    """|kernel - fp64| <= 2 |reference in the same dtype - fp64| + one rounding of the scale."""
    x, w, b, dy = _inputs(2, 33, 48, 7, dtype, seed=1)
    exact = _run(depthwise_conv1d_silu_reference, *(t.detach().double().requires_grad_() for t in (x, w, b)),
                 dy.double(), False, 48)
    out = _run(depthwise_conv1d_silu_triton, x, w, b, dy, False, 48)
    ref = _run(depthwise_conv1d_silu_reference, x, w, b, dy, False, 48)
    for name, o, r, e in zip(("y", "dx", "dw", "db"), out, ref, exact):
        bound = 2 * (r - e).abs().max().item() + torch.finfo(dtype).eps * e.abs().max().item()
        assert (o - e).abs().max().item() <= bound, name


def test_dispatch_only_by_name(operator_log):
    x, w, b, _ = _inputs(2, 6, 8, 3, torch.float32)
    with operator_log() as auto:
        depthwise_conv1d_silu(x, w, b, backend="auto")
    with operator_log() as triton:
        depthwise_conv1d_silu(x, w, b, backend="triton")
    assert "hydra_vision::dwconv1d_silu" not in auto.names and "hydra_vision::dwconv1d_silu" in triton.names
    x64, w64, b64, _ = (t.double() if t is not None else None for t in _inputs(2, 6, 8, 3, torch.float32))
    torch.testing.assert_close(depthwise_conv1d_silu(x64, w64, b64, backend="triton"),
                               depthwise_conv1d_silu_reference(x64, w64, b64, False, 8), rtol=0, atol=0)


def test_compiles_without_graph_breaks():
    x, w, b, _ = _inputs(2, 10, 16, 5, torch.float32, seed=3)

    def block(x, w, b):
        return depthwise_conv1d_silu(x, w, b, backend="triton").square().sum(-1)

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    eager_out, comp_out = block(x, w, b), compiled(x, w, b)
    torch.testing.assert_close(comp_out, eager_out, rtol=0, atol=0)
    for a, e in zip(torch.autograd.grad(comp_out.sum(), (x, w, b)), torch.autograd.grad(eager_out.sum(), (x, w, b))):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


def test_custom_op_fakes_match_the_kernels():
    """The fake implementations give the real outputs' shapes, dtypes and strides (inductor asserts
    them in compiled graphs, CUDA-graph mode included)."""
    x, w, b, dy = _inputs(2, 10, 16, 7, torch.bfloat16, seed=4)
    torch.library.opcheck(torch.ops.hydra_vision.dwconv1d_silu.default, (x, w, b, False, 16),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    torch.library.opcheck(torch.ops.hydra_vision.dwconv1d_silu_backward.default, (dy, x, w, b, False, 16),
                          test_utils=("test_schema", "test_faketensor"))


def test_bad_shapes_name_the_problem():
    x, w, b, _ = _inputs(2, 6, 8, 3, torch.float32)
    with pytest.raises(ValueError, match=r"x \(B, L, C\) and weight \(C, 1, K\)"):
        depthwise_conv1d_silu(x, w[:4], b)
    with pytest.raises(ValueError, match="odd kernel"):
        depthwise_conv1d_silu(x, torch.randn(8, 1, 4), b)
    with pytest.raises(ValueError, match=r"bias must have shape \(8,\)"):
        depthwise_conv1d_silu(x, w, b[:3])
