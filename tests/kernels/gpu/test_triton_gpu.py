"""The compiled Triton kernels on a CUDA device at real sizes (skipped without CUDA).

Run on the device machine through benchmarks/gpu_check.sh. Tolerances follow STYLE.md:
the kernel's error against the fp32 reference is within twice the reference's own error
when it is fed the same low-precision inputs, plus one rounding at the output's magnitude.
"""
from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device", allow_module_level=True)

from hydra_vision.kernels import quasiseparable_mix, ssd_causal_mix  # noqa: E402
from hydra_vision.kernels.launcher import triton_kernel  # noqa: E402
from hydra_vision.kernels.quasiseparable import (  # noqa: E402
    triton_bwd_bc,
    triton_bwd_dx,
    triton_bwd_pairs,
    triton_chunk_fwd,
    triton_states,
)
from hydra_vision.kernels.quasiseparable.reference import quasiseparable_mix_reference  # noqa: E402
from hydra_vision.kernels.quasiseparable.triton_mix import quasiseparable_mix_triton  # noqa: E402
from hydra_vision.kernels.ssd.reference import ssd_causal_mix_reference  # noqa: E402

pytestmark = pytest.mark.gpu
GRAD_INPUTS = ("x", "dt_fwd", "dt_bwd", "A", "B_fwd", "C_fwd", "B_bwd", "C_bwd", "D", "dt_bias")


def _grads(fn, kw: dict, grad_out: torch.Tensor, **extra) -> dict:
    y = fn(**kw, **extra)
    names = [n for n in GRAD_INPUTS if kw.get(n) is not None]
    grads = torch.autograd.grad(y, [kw[n] for n in names], grad_out.to(y.dtype))
    for n, g in zip(names, grads):
        assert g.dtype == kw[n].dtype, n
    return {"y": y.detach().float(), **{n: g.float() for n, g in zip(names, grads)}}


def _check_low_precision(cast_inputs, base: dict, dtype: torch.dtype, Q: int) -> None:
    grad_out = torch.randn(base["x"].shape, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    out = _grads(quasiseparable_mix_triton, cast_inputs(base, requires_grad=True), grad_out, chunk_size=Q)
    out_ref = _grads(quasiseparable_mix_reference, cast_inputs(base, dtype=torch.float32, requires_grad=True),
                     grad_out, chunk_size=Q)
    out_pt = _grads(quasiseparable_mix_reference, cast_inputs(base, requires_grad=True), grad_out, chunk_size=Q)
    for name, ref in out_ref.items():
        assert torch.isfinite(out[name]).all(), name
        err = (out[name] - ref).abs().max().item()
        pt_err = (out_pt[name] - ref).abs().max().item()
        atol = torch.finfo(dtype).eps * ref.abs().max().item() + torch.finfo(torch.float32).eps  # floor: exact zeros
        assert err <= 2 * pt_err + atol, f"{name}: {err:.3g} > 2 * {pt_err:.3g} + {atol:.3g}"


def _shape(batch, L, H, P, G, N, Q, dtype, diag="data", shift=True):
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    return pytest.param(dict(batch=batch, L=L, H=H, P=P, G=G, N=N), Q, dtype, diag, shift,
                        id=f"B{batch}_L{L}_H{H}_P{P}_G{G}_N{N}_Q{Q}_{name}_D{diag}_{'shift' if shift else 'noshift'}")


@pytest.mark.parametrize(
    "dims, Q, dtype, diag, shift",
    [
        _shape(8, 197, 24, 64, 1, 64, 256, torch.bfloat16),  # Hydra-ViT-B at 224 px, one chunk
        _shape(4, 196, 24, 64, 1, 64, 256, torch.float16, diag="head"),
        _shape(4, 197, 6, 64, 2, 64, 256, torch.bfloat16),  # three heads a group: one head a forward program
        _shape(2, 1025, 8, 64, 1, 64, 256, torch.bfloat16),  # 512 px, five chunks, ragged
        _shape(1, 2049, 4, 128, 2, 128, 128, torch.float16),  # headdim 128, d_state 128
        _shape(2, 577, 8, 32, 4, 16, 64, torch.bfloat16, diag="head", shift=False),  # headdim 32, d_state 16
        _shape(1, 16384, 4, 64, 1, 64, 256, torch.bfloat16),  # long: no overflow or NaN
        pytest.param(*_shape(1, 65536, 2, 64, 1, 64, 256, torch.bfloat16, diag=None).values,
                     marks=pytest.mark.slow, id="B1_L65536_H2_P64_G1_N64_Q256_bf16_DNone_shift"),
    ],
)
def test_low_precision_at_real_sizes(mix_inputs, cast_inputs, dims, Q, dtype, diag, shift):
    base = mix_inputs(**dims, dtype=dtype, diag=diag, shift=shift, seed=dims["L"], device="cuda")
    _check_low_precision(cast_inputs, base, dtype, Q)


MIX_LAUNCHERS = {
    "fwd": triton_chunk_fwd.chunk_fwd_kernel,
    "states": triton_states._states_kernel,
    "pairs": triton_bwd_pairs.chunk_bwd_pairs_kernel,
    "dx": triton_bwd_dx.chunk_bwd_dx_kernel,
    "bc": triton_bwd_bc.chunk_bwd_bc_kernel,
}


@pytest.mark.parametrize("name, index", [
    pytest.param(name, i, id=f"{name}-{i}") for name, launcher in MIX_LAUNCHERS.items()
    for i in range(len(triton_kernel(launcher).configs))
])
def test_every_autotune_config_is_exact(monkeypatch, mix_inputs, cast_inputs, name, index):
    """Each config of each mix kernel, pinned alone, passes the low-precision check at headdim 32 / d_state 16
    over 10 chunks: the autotuner picks by time only, so a config that compiles to wrong code must not be on
    the list (session 29: BLOCK 64 at 8 warps gave the bc kernel an 83% error in B_bwd's gradient here).
    A state walk split over N_SPLIT programs runs at the smallest d_state it is kept for (16 columns each)."""
    Q = 64
    launcher = MIX_LAUNCHERS[name]
    autotuner = triton_kernel(launcher)
    config = autotuner.configs[index]
    if "BLOCK" in config.kwargs and not triton_chunk_fwd.prune_blocks([config], {}, Q=Q):
        pytest.skip(f"{config} is pruned at chunks of {Q}")
    monkeypatch.setattr(autotuner, "configs", [config])
    monkeypatch.setattr(autotuner, "cache", {})  # the choice made for this key with the whole list
    monkeypatch.setattr(launcher, "entries", {})  # and the compiled kernel the launcher kept for it
    N = 16 * config.kwargs.get("N_SPLIT", 1)
    base = mix_inputs(2, 577, 8, 32, 4, N, dtype=torch.bfloat16, diag="head", shift=False, seed=577, device="cuda")
    _check_low_precision(cast_inputs, base, torch.bfloat16, Q)
    assert autotuner.best_config is config  # the pinned config is the one that ran
    if name == "pairs" and triton_bwd_pairs.prune_tail_configs([config], {}, TAIL=triton_bwd_pairs.TAIL_MAX):
        # and at one chunk whose last tile holds 5 positions: the tail programs' launch too, where it takes config
        base = mix_inputs(2, 197, 8, 32, 4, N, dtype=torch.bfloat16, diag="head", seed=197, device="cuda")
        _check_low_precision(cast_inputs, base, torch.bfloat16, 256)


@pytest.mark.parametrize("L, Q", [(600, 128), (197, 256)], ids=["chunks", "one_chunk_tail"])
def test_fp32_matches_fp64_reference(mix_inputs, cast_inputs, L, Q):
    base = mix_inputs(2, L, 8, 64, 2, 64, seed=1, device="cuda")
    grad_out = torch.randn(base["x"].shape, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    out = _grads(quasiseparable_mix_triton, cast_inputs(base, requires_grad=True), grad_out, chunk_size=Q)
    ref = _grads(quasiseparable_mix_reference, cast_inputs(base, dtype=torch.float64, requires_grad=True), grad_out,
                 chunk_size=Q)
    for name, r in ref.items():
        err = (out[name] - r).abs().max().item()
        assert err <= 1e-4 * r.abs().max().item(), f"{name}: {err:.3g}"


@pytest.mark.parametrize("L, Q, dtype", [(196, 256, torch.bfloat16), (600, 128, torch.float32)],
                         ids=["one_chunk_bf16", "chunks_fp32"])
def test_no_kernel_reads_memory_no_kernel_wrote_at_real_size(mix_inputs, cast_inputs, poison_allocations, L, Q, dtype):
    """Every float buffer the launchers allocate starts as NaN: y and the gradients are bit-identical to a run
    on fresh memory (the CPU test's check, here with the compiled kernels and their vector accesses)."""
    kw = mix_inputs(2, L, 24, 64, 1, 64, dtype=dtype, seed=5, device="cuda")
    grad_out = torch.randn(kw["x"].shape, device="cuda", generator=torch.Generator("cuda").manual_seed(5))
    plain = _grads(quasiseparable_mix_triton, cast_inputs(kw, requires_grad=True), grad_out, chunk_size=Q)
    poison_allocations()
    poisoned = _grads(quasiseparable_mix_triton, cast_inputs(kw, requires_grad=True), grad_out, chunk_size=Q)
    for name, g in plain.items():
        torch.testing.assert_close(poisoned[name], g, rtol=0, atol=0, msg=name)


def test_strided_views_at_real_size(mix_inputs, cast_inputs):
    """The mixer's layout (x, B, C column slices of one tensor; dt slices) equals contiguous inputs."""
    batch, L, H, P, G, N = 4, 197, 24, 64, 1, 64
    kw = mix_inputs(batch, L, H, P, G, N, dtype=torch.bfloat16, seed=2, device="cuda")
    names = ("B_fwd", "C_fwd", "B_bwd", "C_bwd")
    xbc = torch.cat([kw["x"].flatten(2)] + [kw[n].flatten(2) for n in names], -1)
    parts = xbc.split([H * P] + [G * N] * 4, dim=-1)
    dt = torch.cat([kw["dt_fwd"], kw["dt_bwd"]], -1)
    views = {**kw, "x": parts[0].unflatten(-1, (H, P)), "dt_fwd": dt[..., :H], "dt_bwd": dt[..., H:],
             **{n: t.unflatten(-1, (G, N)) for n, t in zip(names, parts[1:])}}
    grad_out = torch.randn(kw["x"].shape, device="cuda", dtype=torch.bfloat16)
    strided = _grads(quasiseparable_mix_triton, cast_inputs(views, requires_grad=True), grad_out)
    dense = _grads(quasiseparable_mix_triton, cast_inputs(kw, requires_grad=True), grad_out)
    for name, g in dense.items():
        torch.testing.assert_close(strided[name], g, rtol=0, atol=0, msg=name)


def test_torch_compile_fullgraph(mix_inputs):
    """A block around the mix compiles with inductor as one graph (fullgraph=True raises on any
    break) and gives eager's output and gradients (fp32: exact dots on both paths)."""
    H, P, G, N = 8, 64, 1, 64
    kw = mix_inputs(2, 197, H, P, G, N, seed=3, device="cuda")

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(H * P, H * P, device="cuda")
            self.A = torch.nn.Parameter(kw["A"].clone())
            self.dt_bias = torch.nn.Parameter(kw["dt_bias"].clone())

        def forward(self, x, dt_f, dt_b, B_f, C_f, B_b, C_b, D):
            u = self.proj(x.flatten(2)).unflatten(-1, (H, P))
            y = quasiseparable_mix(u, dt_f, dt_b, self.A, B_f, C_f, B_b, C_b, D, dt_bias=self.dt_bias,
                                   dt_softplus=True, backend="triton")
            return torch.nn.functional.silu(y).sum(-1)

    block = Block()
    args = [kw[n].clone().requires_grad_() for n in ("x", "dt_fwd", "dt_bwd", "B_fwd", "C_fwd", "B_bwd", "C_bwd", "D")]
    compiled = torch.compile(block, fullgraph=True)
    results = []
    for fn in (block, compiled):
        out = fn(*args)
        grads = torch.autograd.grad(out.square().sum(), args + list(block.parameters()))
        results.append([out, *grads])
    for eager, comp in zip(*results):
        assert (comp - eager).abs().max() <= 1e-4 * eager.abs().max()


def test_causal_ssd_at_real_size(mix_inputs):
    kw = mix_inputs(4, 1025, 8, 64, 1, 64, dtype=torch.bfloat16, seed=4, device="cuda")
    args = dict(x=kw["x"], dt=kw["dt_fwd"], A=kw["A"], B=kw["B_fwd"], C=kw["C_fwd"], D=kw["D"],
                dt_bias=kw["dt_bias"], dt_softplus=True)
    out = ssd_causal_mix(**args, backend="triton").float()
    ref32 = ssd_causal_mix_reference(**{k: v.float() if k in ("x", "dt", "B", "C", "D") else v
                                        for k, v in args.items()}).float()
    ref_low = ssd_causal_mix_reference(**args).float()
    atol = torch.finfo(torch.bfloat16).eps * ref32.abs().max().item()
    assert (out - ref32).abs().max() <= 2 * (ref_low - ref32).abs().max() + atol
