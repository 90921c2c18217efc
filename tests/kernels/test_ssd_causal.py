"""The causal SSD mix: naive and reference against the plain recurrence, triton against both.

Without CUDA the Triton kernels run in the interpreter (tests/conftest.py sets TRITON_INTERPRET;
test_quasiseparable_triton.py checks that it took effect).
"""
from __future__ import annotations

import math

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

from hydra_vision.kernels import ssd_causal_mix
from hydra_vision.kernels.quasiseparable.dt import activate_dt
from hydra_vision.kernels.ssd import reference as ssd_reference_module
from hydra_vision.kernels.ssd.naive import ssd_causal_mix_naive
from hydra_vision.kernels.ssd.reference import ssd_causal_mix_reference

GRAD_INPUTS = ("x", "dt", "A", "B", "C", "D", "dt_bias")


def _causal_inputs(mix_inputs, *args, **kwargs) -> dict:
    """The forward-direction arguments of `make_mix_inputs`, renamed for `ssd_causal_mix`."""
    kw = mix_inputs(*args, **kwargs)
    return dict(x=kw["x"], dt=kw["dt_fwd"], A=kw["A"], B=kw["B_fwd"], C=kw["C_fwd"], D=kw["D"],
                dt_bias=kw["dt_bias"], dt_softplus=kw["dt_softplus"], dt_limit=kw["dt_limit"])


def _leaves(kw: dict, dtype: torch.dtype | None = None) -> dict:
    out = dict(kw)
    for name in GRAD_INPUTS:
        if kw[name] is not None:
            t = kw[name].detach().clone()
            if dtype is not None:
                t = t.to(dtype)
            out[name] = t.requires_grad_()
    return out


def _recurrence(x, dt, A, B, C, D, dt_bias, dt_softplus, dt_limit) -> torch.Tensor:
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t + D_t x_t, token by token (fp64)."""
    batch, L, H, P = x.shape
    rep = H // B.shape[2]
    dt = activate_dt(dt, dt_bias, dt_softplus, dt_limit, torch.float64)
    B, C = B.repeat_interleave(rep, 2), C.repeat_interleave(rep, 2)
    h = x.new_zeros(batch, H, P, B.shape[-1])
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t] * A)[..., None, None] * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, :, None]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, C[:, t]))
    y = torch.stack(ys, 1)
    return y if D is None else y + D[..., None] * x


@pytest.mark.parametrize("diag", ["data", "head", None])
@pytest.mark.parametrize("dims, Q", [((2, 1, 2, 3, 1, 4), 8), ((2, 37, 4, 3, 2, 5), 8), ((1, 70, 2, 4, 1, 8), 32)],
                         ids=["L1", "L37_G2", "L70"])
def test_naive_and_reference_match_the_recurrence(mix_inputs, dims, Q, diag):
    kw = _causal_inputs(mix_inputs, *dims, dtype=torch.float64, diag=diag, seed=dims[1])
    expected = _recurrence(**kw)
    tol = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ssd_causal_mix_naive(**kw), expected, **tol)
    torch.testing.assert_close(ssd_causal_mix_reference(**kw, chunk_size=Q), expected, **tol)
    torch.testing.assert_close(ssd_causal_mix(**kw, backend="naive"), expected, **tol)
    torch.testing.assert_close(ssd_causal_mix(**kw, chunk_size=Q, backend="reference"), expected, **tol)


def test_dispatcher_runs_reference_with_short_chunks(mix_inputs, spy_chunk_size):
    """As for `quasiseparable_mix`: the reference runs chunks of `reference_chunk` (32 at L = 196, N = 64)."""
    seen = spy_chunk_size(ssd_reference_module, "ssd_causal_mix_reference")
    kw = _causal_inputs(mix_inputs, 1, 196, 2, 4, 1, 64)
    y = ssd_causal_mix(**kw, chunk_size=256, backend="reference")
    assert seen == [32]
    torch.testing.assert_close(y, ssd_causal_mix_naive(**kw), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims, Q, diag", [((1, 1, 2, 8, 1, 8), 64, "head"), ((2, 30, 4, 8, 2, 16), 64, "data"),
                                           ((1, 45, 2, 8, 1, 8), 16, None), ((1, 70, 2, 4, 1, 4), 128, "data")],
                         ids=["L1", "L30_one_chunk", "L45_chunked", "L70_tail_tile"])
def test_triton_matches_naive(mix_inputs, dims, Q, diag):
    kw = _causal_inputs(mix_inputs, *dims, diag=diag, seed=3, device=DEVICE)
    grad_out = torch.randn(kw["x"].shape, generator=torch.Generator().manual_seed(4)).to(DEVICE)
    results = []
    for fn, dtype, extra in ((ssd_causal_mix, None, dict(chunk_size=Q, backend="triton")),
                             (ssd_causal_mix_naive, torch.float64, {})):
        leaves = _leaves(kw, dtype)
        y = fn(**leaves, **extra)
        names = [n for n in GRAD_INPUTS if leaves[n] is not None]
        grads = torch.autograd.grad(y, [leaves[n] for n in names], grad_out.to(y.dtype))
        results.append({"y": y.float(), **{n: g.float() for n, g in zip(names, grads)}})
    out, ref = results
    assert out.keys() == ref.keys()
    for name, r in ref.items():
        err = (out[name] - r).abs().max().item()
        assert err <= 2e-5 * max(r.abs().max().item(), 1e-3), f"{name}: {err:.3g}"


def test_triton_bf16_within_twice_the_reference_error(mix_inputs):
    kw = _causal_inputs(mix_inputs, 1, 40, 2, 16, 1, 16, dtype=torch.bfloat16, seed=5, device=DEVICE)
    ref32 = ssd_causal_mix_reference(**_leaves(kw, torch.float32), chunk_size=16).float()
    ref_low = ssd_causal_mix_reference(**kw, chunk_size=16).float()
    out = ssd_causal_mix(**kw, chunk_size=16, backend="triton")
    assert out.dtype == torch.bfloat16
    atol = torch.finfo(torch.bfloat16).eps * ref32.abs().max().item()
    assert (out.float() - ref32).abs().max() <= 2 * (ref_low - ref32).abs().max() + atol


def test_bad_inputs(mix_inputs):
    kw = _causal_inputs(mix_inputs, 1, 8, 2, 4, 1, 4)
    with pytest.raises(ValueError, match=r"^C_fwd has shape"):
        ssd_causal_mix(**{**kw, "C": kw["C"][:, :-1]})
    with pytest.raises(ValueError, match="unknown kernel backend"):
        ssd_causal_mix(**kw, backend="cuda")
    with pytest.raises(ValueError, match="dt_limit"):
        ssd_causal_mix(**{**kw, "dt_limit": (1.0, 0.5)})
    assert ssd_causal_mix(**{**kw, "dt_limit": (0.0, math.inf)}).shape == kw["x"].shape
