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

__all__ = ["chunk_states", "chunk_states_and_adjoints"]


def _configs() -> list[triton.Config]:
    """Rows of P, state columns split over N_SPLIT programs, warps. A split shrinks a program's state
    (N_SPLIT times the programs a walk), which pays where few programs walk many chunks: at 2 x 16,385
    tokens the forward walk took 0.309 / 0.280 / 0.262 ms whole / in halves / in quarters, the backward's
    two 0.526 / 0.491 / 0.611; at 8 x 4,097 the whole state won (H100, RESULTS.md session 30). With 16-
    or 32-row blocks, and with 8 warps, the splits lost."""
    blocks = [(32, 1, 4), (64, 1, 4), (64, 2, 4), (64, 4, 4)] if not interpreting() else [(64, 1, 4)]
    return [triton.Config({"BLOCK_P": p, "N_SPLIT": n}, num_warps=w) for p, n, w in blocks]


def _prune_splits(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Splits that leave a program at least 16 state columns (tl.dot's smallest operand)."""
    return [c for c in configs if kwargs["BLOCK_N"] // c.kwargs.get("N_SPLIT", 1) >= 16]


@cached_launch
@triton.autotune(configs=_configs(), key=["L", "Q", "P", "N", "ADJOINT", "NDIR", "WALKS"],
                 prune_configs_by={"early_config_prune": _prune_splits})
@triton.jit
def _states_kernel(
    u, s_ub, s_ul, s_uh, s_up, K0, K1, s_kb, s_kl, s_kg, s_kn, out,
    v, s_vb, s_vl, s_vh, s_vp, J0, J1, s_jb, s_jl, s_jg, s_jn, out_adj,
    dta, cum, A,
    L, LS, H, G, P, N, nchunks, BHL,
    Q: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    NDIR: tl.constexpr, ADJOINT: tl.constexpr, WALKS: tl.constexpr, SHIFT: tl.constexpr, DOT_PREC: tl.constexpr,
    N_SPLIT: tl.constexpr = 1,
):
    BN: tl.constexpr = BLOCK_N // N_SPLIT  # a program's columns of the state (N_SPLIT programs share a row block)
    pid_p, pid_n = tl.program_id(0) // N_SPLIT, tl.program_id(0) % N_SPLIT
    bh, pid_w = tl.program_id(1), tl.program_id(2)
    b = (bh // H).to(tl.int64)
    h = bh % H
    g = h // (H // G)
    d = pid_w % NDIR
    ps = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    ns = pid_n * BN + tl.arange(0, BN)
    A_h = tl.load(A + h).to(tl.float32)
    base = d * BHL + b * H * LS + h * LS
    # which walk (WALKS = 2: the states of u, K, then the adjoint states of v, J) and its
    # direction-dependent walking order, K row offset and decay coefficient (module docstring)
    if WALKS == 2:
        second = pid_w >= NDIR
        adjoint = second.to(tl.int32)
    elif ADJOINT:
        second, adjoint = False, 1
    else:
        second, adjoint = False, 0
    rightward = d == adjoint
    coef = adjoint * (SHIFT - d) + (1 - adjoint) * d
    koff = adjoint * SHIFT * (2 * d - 1)
    kp = K0
    jp = J0
    if d == 1:
        kp = K1
        jp = J1
    u_base = tl.where(second, v + b * s_vb + h * s_vh + ps[None, :] * s_vp,
                      u + b * s_ub + h * s_uh + ps[None, :] * s_up)
    k_base = tl.where(second, jp + b * s_jb + g * s_jg + ns[None, :] * s_jn,
                      kp + b * s_kb + g * s_kg + ns[None, :] * s_kn)
    s_tu = tl.where(second, s_vl, s_ul)
    s_tk = tl.where(second, s_jl, s_kl)
    offsets = (base // LS) * nchunks * P * N + ps[:, None] * N + ns[None, :]
    out_base = tl.where(second, out_adj + offsets, out + offsets)
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
            w = tl.where(tm, w * tl.where(adjoint == 1, 1.0, dt), 0.0)  # the states' inputs carry dt
            uu = tl.load(u_base + t[:, None] * s_tu, mask=tm[:, None] & (ps < P)[None, :], other=0.0)
            kr = t + koff
            km = tm & (kr >= 0) & (kr < L)
            kk = tl.load(k_base + kr[:, None] * s_tk, mask=km[:, None] & (ns < N)[None, :], other=0.0)
            kw = kk.to(tl.float32) * w[:, None]
            contrib = mma_split(tl.trans(uu), kw, contrib, DOT_PREC)
        state = state * tl.exp(T) + contrib


def _walk_launch(walks: list[tuple], dta: torch.Tensor, cum: torch.Tensor, A: torch.Tensor, Q: int, adjoint: bool,
                 shift: bool, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """One launch of one walk (its kind `adjoint`) or of both kinds (walks = [(x, B_f, B_b), (dy, C_f, C_b)]),
    their states stored in `dtype`."""
    u, K0, _ = walks[0]
    batch, L, H, P = u.shape
    G, N = K0.shape[2:]
    ndir = dta.shape[0]
    nchunks = cdiv(L, Q)
    outs = [torch.empty(ndir, batch, H, nchunks, P, N, device=u.device, dtype=dtype) for _ in walks]
    args = [(w[0], *w[0].stride(), w[1], w[1] if w[2] is None else w[2], *w[1].stride(), out)
            for w, out in zip(walks, outs)]

    def grid(meta):
        return (cdiv(P, meta["BLOCK_P"]) * meta.get("N_SPLIT", 1), batch * H, ndir * len(walks))

    LS, BHL = token_rows(dta)
    _states_kernel[grid](
        *args[0], *args[-1], dta, cum, A,
        L, LS, H, G, P, N, nchunks, BHL,
        Q=Q, BLOCK_T=min(Q, 64), BLOCK_N=max(16, next_power_of_2(N)),
        NDIR=ndir, ADJOINT=adjoint, WALKS=len(walks), SHIFT=int(shift), DOT_PREC=dot_precision(u.dtype),
    )
    return outs


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
    return _walk_launch([(u, K0, K1)], dta, cum, A, Q, adjoint, shift, dtype)[0]


def chunk_states_and_adjoints(
    x: torch.Tensor, B0: torch.Tensor, B1: torch.Tensor | None, dy: torch.Tensor, C0: torch.Tensor,
    C1: torch.Tensor | None, dta: torch.Tensor, cum: torch.Tensor, A: torch.Tensor, Q: int, shift: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`chunk_states(x, B0, B1, ..., adjoint=False)` and `chunk_states(dy, C0, C1, ..., adjoint=True)`, the
    backward's two walks, in one launch: the walks are independent, and where each one's chain of chunks
    sets its time (few programs, long sequences) they run side by side. Two launches when dy's dtype
    differs from x's (the kernel picks one walk's pointers at run time, which must have one type)."""
    if dy.dtype != x.dtype:
        return (chunk_states(x, B0, B1, dta, cum, A, Q, False, shift),
                chunk_states(dy, C0, C1, dta, cum, A, Q, True, shift))
    states, adjoints = _walk_launch([(x, B0, B1), (dy, C0, C1)], dta, cum, A, Q, False, shift)
    return states, adjoints
