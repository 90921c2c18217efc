"""Triton stage 2: the (P, N) state that enters every chunk, for both directions in one launch.

One program per (head, batch, direction, block of P, and of N when a config sets N_SPLIT) walks
the chunks in order (the forward scan rightwards, the backward scan leftwards) and keeps its
state in registers:

    S_in[c] = sum of the contributions of the chunks already passed,
    S <- exp(T_c) S + sum_{t in c} w_t u_t K_t^T,     T_c = sum_{t in c} a_t

With u = x, K = B, w = dt * (decay from t to the chunk's exit) these are the scan
states of the forward pass. With u = dy, K = the (shifted) C rows, w = decay from the
chunk's entry to t, and the walking order reversed, they are the adjoint states
dL/dS of the backward pass (triton_mix.py). Decays use the chunk-local prefix sums p:

    forward, x:   exp(T - p_t) dt_t          backward, x:   exp(p_t - a_t) dt_t
    forward, dy:  exp(p_t - shift a_t)       backward, dy:  exp(T - p_t + (1 - shift) a_t)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..host_math import cdiv, next_power_of_2
from ..launcher import cached_launch
from .triton_config import dot_precision, interpreting, mma_split
from .triton_dt import token_rows

__all__ = ["chunk_states"]


def _configs() -> list[triton.Config]:
    blocks = [(32, 4), (64, 4)] if not interpreting() else [(64, 4)]
    return [triton.Config({"BLOCK_P": p}, num_warps=w) for p, w in blocks]


@cached_launch
@triton.autotune(configs=_configs(), key=["L", "Q", "P", "N", "ADJOINT", "NDIR"])
@triton.jit
def _states_kernel(
    u, s_ub, s_ul, s_uh, s_up, K0, K1, s_kb, s_kl, s_kg, s_kn,
    dta, cum, A, out,
    L, LS, H, G, P, N, nchunks, BHL,
    Q: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    NDIR: tl.constexpr, ADJOINT: tl.constexpr, SHIFT: tl.constexpr, DOT_PREC: tl.constexpr,
    N_SPLIT: tl.constexpr = 1,
):
    BN: tl.constexpr = BLOCK_N // N_SPLIT  # a program's columns of the state (N_SPLIT programs share a row block)
    pid_p, pid_n = tl.program_id(0) // N_SPLIT, tl.program_id(0) % N_SPLIT
    bh, d = tl.program_id(1), tl.program_id(2)
    b = (bh // H).to(tl.int64)
    h = bh % H
    g = h // (H // G)
    ps = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    ns = pid_n * BN + tl.arange(0, BN)
    A_h = tl.load(A + h).to(tl.float32)
    base = d * BHL + b * H * LS + h * LS
    # direction-dependent walking order, K row offset and decay coefficient (module docstring)
    if ADJOINT:
        rightward = d == 1
        coef = SHIFT - d
        koff = SHIFT * (2 * d - 1)
    else:
        rightward = d == 0
        coef = d
        koff = 0
    kp = K0
    if d == 1:
        kp = K1
    u_base = u + b * s_ub + h * s_uh + ps[None, :] * s_up
    k_base = kp + b * s_kb + g * s_kg + ns[None, :] * s_kn
    out_base = out + (base // LS) * nchunks * P * N + ps[:, None] * N + ns[None, :]
    out_mask = (ps < P)[:, None] & (ns < N)[None, :]
    state = tl.zeros([BLOCK_P, BN], tl.float32)
    for i in range(nchunks):
        c = tl.where(rightward, i, nchunks - 1 - i)
        tl.store(out_base + c * P * N, state.to(out.dtype.element_ty), mask=out_mask)
        c0 = c * Q
        T = tl.load(cum + base + tl.minimum(c0 + Q, L) - 1)
        contrib = tl.zeros([BLOCK_P, BN], tl.float32)
        for t0 in range(0, Q, BLOCK_T):
            t = c0 + t0 + tl.arange(0, BLOCK_T)
            tm = t < L
            p = tl.load(cum + base + t, mask=tm, other=0.0)
            dt = tl.load(dta + base + t, mask=tm, other=0.0)
            a = dt * A_h
            w = tl.exp(tl.where(rightward, T - p, p) - coef * a)
            if not ADJOINT:
                w = w * dt
            w = tl.where(tm, w, 0.0)
            uu = tl.load(u_base + t[:, None] * s_ul, mask=tm[:, None] & (ps < P)[None, :], other=0.0)
            kr = t + koff
            km = tm & (kr >= 0) & (kr < L)
            kk = tl.load(k_base + kr[:, None] * s_kl, mask=km[:, None] & (ns < N)[None, :], other=0.0)
            kw = kk.to(tl.float32) * w[:, None]
            contrib = mma_split(tl.trans(uu), kw, contrib, DOT_PREC)
        state = state * tl.exp(T) + contrib


def chunk_states(
    u: torch.Tensor, K0: torch.Tensor, K1: torch.Tensor | None, dta: torch.Tensor, cum: torch.Tensor, A: torch.Tensor,
    Q: int, adjoint: bool, shift: bool, dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The state entering each chunk, per direction, walked in fp32 and stored in `dtype` (rounded once).

    Args:
        u: (batch, L, H, P) x (adjoint=False) or dy (adjoint=True).
        K0, K1: (batch, L, G, N) B_f, B_b (or C_f, C_b when adjoint), same strides; K1 None when causal.
        dta, cum: (NDIR, batch, H, padded L) final dt and chunk-local prefix sums of dt A.
        Q: chunk length.
        dtype: storage type (`triton_config.forward_state_dtype`: bf16 in a bf16 forward).

    Returns:
        (NDIR, batch, H, nchunks, P, N) in `dtype`: entry c is what chunk c reads.
    """
    batch, L, H, P = u.shape
    G, N = K0.shape[2:]
    ndir = dta.shape[0]
    nchunks = cdiv(L, Q)
    out = torch.empty(ndir, batch, H, nchunks, P, N, device=u.device, dtype=dtype)

    def grid(meta):
        return (cdiv(P, meta["BLOCK_P"]) * meta.get("N_SPLIT", 1), batch * H, ndir)

    LS, BHL = token_rows(dta)
    _states_kernel[grid](
        u, *u.stride(), K0, K0 if K1 is None else K1, *K0.stride(),
        dta, cum, A, out,
        L, LS, H, G, P, N, nchunks, BHL,
        Q=Q, BLOCK_T=min(Q, 64), BLOCK_N=max(16, next_power_of_2(N)),
        NDIR=ndir, ADJOINT=adjoint, SHIFT=int(shift), DOT_PREC=dot_precision(u.dtype),
    )
    return out
