"""Triton stage 1 and last: the step sizes (forward) and every gradient that flows through them (backward).

Forward, per direction d (0 forward, 1 backward scan), token t and head h:

    dt[d, t]  = clamp(softplus(dt_raw[t] + dt_bias), lo, hi)        (softplus optional)
    cum[d, t] = sum_{k = chunk start}^{t} dt[d, k] A_h               (chunk-local inclusive prefix)
    k[d, t]   = the mix's column exponent of token t (`column_exponents`; optional)

k depends on the token only, so it is computed here once instead of in every row tile's walk over the
columns (the forward mix kernel reads it).

Backward: every decay is a difference of prefix sums, so the gradient of a_t = dt_t A
follows from per-token row sums R[d, t] = dy_t . y_d[t] and column sums
K'[d, t] = x_t . dx_d[t] / dt[d, t] (computed by the chunk kernels; derivation in triton_mix.py):

    da_f[t] = sum_{s >= t} (R_f - dt_f K'_f)[s] - shift * R_f[t]     (reverse cumsum)
    da_b[t] = sum_{s <= t} (R_b - dt_b K'_b)[s] - shift * R_b[t]     (cumsum)
    ddt[d, t] = A da[d, t] + K'[d, t],   dA = sum_{d, b, t} dt da

then through the clamp and softplus to dt_raw and dt_bias.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..host_math import cdiv, next_power_of_2, padded_length
from ..launcher import cached_launch
from .triton_chunk_fwd import column_exponents

__all__ = ["dt_backward", "dt_forward", "token_rows"]

# Tokens per program of the dt backward. Long sequences run in parallel segments: one launch sums
# v = R - dt K' per segment, and each program of the next adds up the sums of the segments its scan
# passes before its own (the carry).
_SEGMENT = 512


@triton.jit
def _log1p(u):
    """log(1 + u) for u >= 0, accurate for small u (Goldberg's correction)."""
    w = 1.0 + u
    return tl.where(w == 1.0, u, tl.log(w) * (u / (w - 1.0)))


@triton.jit
def _activate(v, lo, hi, SOFTPLUS: tl.constexpr):
    """clamp(softplus(v), lo, hi) and its derivative; softplus is linear above 20, as torch's."""
    if SOFTPLUS:
        pre = tl.where(v > 20.0, v, _log1p(tl.exp(-tl.abs(v))) + tl.maximum(v, 0.0))
        slope = tl.where(v > 20.0, 1.0, tl.sigmoid(v))
    else:
        pre = v
        slope = tl.full(v.shape, 1.0, tl.float32)
    inside = (pre >= lo) & (pre <= hi)
    return tl.minimum(tl.maximum(pre, lo), hi), tl.where(inside, slope, 0.0)


@cached_launch
@triton.jit
def _dt_fwd_kernel(
    dt_f, dt_b, s_b, s_l, s_h, A, bias, dta, cum, kexp,
    L, LS, H, BHL, lo, hi,
    Q: tl.constexpr, BLOCK_H: tl.constexpr, NDIR: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    EXPONENTS: tl.constexpr,
):
    pid_c, b, pid_h = tl.program_id(0), tl.program_id(1).to(tl.int64), tl.program_id(2)
    t = pid_c * Q + tl.arange(0, Q)
    hs = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    mask = (t < L)[:, None] & (hs < H)[None, :]
    A_h = tl.load(A + hs, mask=hs < H, other=0.0).to(tl.float32)
    v0 = tl.zeros([BLOCK_H], tl.float32)
    if HAS_BIAS:
        v0 = tl.load(bias + hs, mask=hs < H, other=0.0).to(tl.float32)
    out = b * H * LS + hs[None, :] * LS + t[:, None]  # [Q, BLOCK_H] into (NDIR, B, H, LS)
    rows = (t < LS)[:, None] & (hs < H)[None, :]  # the padded rows whole (dt 0 past L): vector stores
    for d in tl.static_range(NDIR):
        src = dt_f if d == 0 else dt_b
        raw = tl.load(src + b * s_b + t[:, None] * s_l + hs[None, :] * s_h, mask=mask, other=0.0).to(tl.float32)
        dt, _ = _activate(raw + v0[None, :], lo, hi, SOFTPLUS)
        dt = tl.where(mask, dt, 0.0)
        a = dt * A_h[None, :]
        p = tl.cumsum(a, axis=0)
        tl.store(dta + d * BHL + out, dt, mask=rows)
        tl.store(cum + d * BHL + out, p, mask=rows)
        if EXPONENTS:  # q_f = p_f, q_b = p_b - a_b (`triton_chunk_fwd`)
            tl.store(kexp + d * BHL + out, column_exponents(p if d == 0 else p - a, dt, d == 0), mask=rows)


def token_rows(dta: torch.Tensor) -> tuple[int, int]:
    """(LS, BHL) of the per-token fp32 arrays (NDIR, batch, H, LS) that `dt_forward` lays out: the padded row
    length and the offset of the second direction, batch * H * LS; the kernels take both after L."""
    return dta.shape[-1], dta[0].numel()


def dt_forward(
    dt_f: torch.Tensor, dt_b: torch.Tensor | None, A: torch.Tensor, dt_bias: torch.Tensor | None,
    dt_softplus: bool, lo: float, hi: float, Q: int, exponents: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Final dt, chunk-local prefix sums of dt A and (`exponents`) the mix's column exponents (fp32).

    Args:
        dt_f, dt_b: (batch, L, H) raw step sizes (dt_b None for a causal scan), same strides.
        A, dt_bias: (H,). Q: the chunk length (a power of two).

    Returns:
        dta, cum, k: (NDIR, batch, H, padded_length(L)) fp32; past L, dt is 0 and the prefix sum constant;
        k None unless `exponents`.
    """
    batch, L, H = dt_f.shape
    ndir = 1 if dt_b is None else 2
    LS = padded_length(L)
    dta = torch.empty(ndir, batch, H, LS, device=dt_f.device, dtype=torch.float32)
    cum = torch.empty_like(dta)
    kexp = torch.empty_like(dta) if exponents else None
    BLOCK_H = min(16, next_power_of_2(H))
    grid = (cdiv(L, Q), batch, cdiv(H, BLOCK_H))
    _dt_fwd_kernel[grid](
        dt_f, dt_f if dt_b is None else dt_b, *dt_f.stride(), A, A if dt_bias is None else dt_bias, dta, cum,
        dta if kexp is None else kexp, L, LS, H, batch * H * LS, lo, hi,
        Q=Q, BLOCK_H=BLOCK_H, NDIR=ndir, HAS_BIAS=dt_bias is not None, SOFTPLUS=dt_softplus, EXPONENTS=exponents,
    )
    return dta, cum, kexp


@triton.jit
def _token_block(R, Kp, dta, base, hs, hm, blk, L, LS, BLOCK_L: tl.constexpr):
    """Block `blk` of BLOCK_L tokens of the heads hs (arrays (batch, H, LS) from `base`): the positions,
    the [BLOCK_H, BLOCK_L] mask, R, K', dt and v = R - dt K' (zero where masked). The padded rows are read
    whole (vector loads) and what lies past L is zeroed after the load (R and K' are not written there)."""
    t = blk * BLOCK_L + tl.arange(0, BLOCK_L)
    mask = hm[:, None] & (t < L)[None, :]
    rows = hm[:, None] & (t < LS)[None, :]
    off = base + hs[:, None] * LS + t[None, :]
    r = tl.where(mask, tl.load(R + off, mask=rows, other=0.0), 0.0)
    kp = tl.where(mask, tl.load(Kp + off, mask=rows, other=0.0), 0.0)
    dt = tl.where(mask, tl.load(dta + off, mask=rows, other=0.0), 0.0)
    return t, mask, r, kp, dt, r - dt * kp


@triton.jit
def _segment_blocks(seg, L, BLOCK_L: tl.constexpr, SEGMENT: tl.constexpr):
    """The first and one-past-last BLOCK_L-token block of segment seg."""
    first = seg * (SEGMENT // BLOCK_L)
    return first, tl.minimum(first + SEGMENT // BLOCK_L, tl.cdiv(L, BLOCK_L))


@cached_launch
@triton.jit
def _dt_totals_kernel(
    dta, R, Kp, totals, L, LS, H, BHL,
    BLOCK_L: tl.constexpr, SEGMENT: tl.constexpr, BLOCK_H: tl.constexpr, NDIR: tl.constexpr,
):
    """totals[d, seg, b, h] = sum of v = R - dt K' over the segment's tokens."""
    b, pid_h, seg = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
    hs = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    hm = hs < H
    first, last = _segment_blocks(seg, L, BLOCK_L, SEGMENT)
    for d in tl.static_range(NDIR):
        total = tl.zeros([BLOCK_H], tl.float32)
        for blk in range(first, last):
            total += tl.sum(_token_block(R, Kp, dta, d * BHL + b * H * LS, hs, hm, blk, L, LS, BLOCK_L)[5], axis=1)
        tl.store(totals + ((d * tl.num_programs(2) + seg) * tl.num_programs(0) + b) * H + hs, total, mask=hm)


@cached_launch
@triton.jit
def _dt_bwd_kernel(
    dt_f, dt_b, s_b, s_l, s_h, ddt_f, ddt_b, s_gb, s_gl, s_gh,
    A, bias, dta, R, Kp, totals, dA_part, dbias_part,
    L, LS, H, BHL, lo, hi,
    BLOCK_L: tl.constexpr, SEGMENT: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_S: tl.constexpr, NDIR: tl.constexpr,
    SHIFT: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    b, pid_h, seg = tl.program_id(0).to(tl.int64), tl.program_id(1), tl.program_id(2)
    segs, nsegs = tl.arange(0, BLOCK_S), tl.num_programs(2)
    hs = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    hm = hs < H
    A_h = tl.load(A + hs, mask=hm, other=0.0).to(tl.float32)
    v0 = tl.zeros([BLOCK_H], tl.float32)
    if HAS_BIAS:
        v0 = tl.load(bias + hs, mask=hm, other=0.0).to(tl.float32)
    dA = tl.zeros([BLOCK_H], tl.float32)
    dbias = tl.zeros([BLOCK_H], tl.float32)
    first, last = _segment_blocks(seg, L, BLOCK_L, SEGMENT)
    for d in tl.static_range(NDIR):
        src = dt_f if d == 0 else dt_b
        dst = ddt_f if d == 0 else ddt_b
        # the carry: v summed over the segments the scan passes before this one (those after it, forward)
        passed = (segs > seg) if d == 0 else (segs < seg)
        seg_off = ((d * nsegs + segs[:, None]) * tl.num_programs(0) + b) * H + hs[None, :]
        carry = tl.sum(tl.load(totals + seg_off, mask=(passed & (segs < nsegs))[:, None] & hm[None, :], other=0.0),
                       axis=0)
        for it in range(last - first):
            blk = last - 1 - it if d == 0 else first + it  # forward scan: suffix sums; backward: prefix sums
            t, mask, r, kp, dt, v = _token_block(R, Kp, dta, d * BHL + b * H * LS, hs, hm, blk, L, LS, BLOCK_L)
            total = tl.sum(v, axis=1)
            if d == 0:
                scan = carry[:, None] + total[:, None] - tl.cumsum(v, axis=1) + v
            else:
                scan = carry[:, None] + tl.cumsum(v, axis=1)
            carry += total
            da = scan - SHIFT * r
            dA += tl.sum(tl.where(mask, dt * da, 0.0), axis=1)
            raw_off = b * s_b + t[None, :] * s_l + hs[:, None] * s_h
            raw = tl.load(src + raw_off, mask=mask, other=0.0).to(tl.float32)
            _, slope = _activate(raw + v0[:, None], lo, hi, SOFTPLUS)
            g = tl.where(mask, (A_h[:, None] * da + kp) * slope, 0.0)
            dbias += tl.sum(g, axis=1)
            tl.store(dst + b * s_gb + t[None, :] * s_gl + hs[:, None] * s_gh, g, mask=mask)
    tl.store(dA_part + (seg * tl.num_programs(0) + b) * H + hs, dA, mask=hm)
    tl.store(dbias_part + (seg * tl.num_programs(0) + b) * H + hs, dbias, mask=hm)


def dt_backward(
    dt_f: torch.Tensor, dt_b: torch.Tensor | None, A: torch.Tensor, dt_bias: torch.Tensor | None,
    dt_softplus: bool, lo: float, hi: float, shift: bool,
    dta: torch.Tensor, R: torch.Tensor, Kp: torch.Tensor, out: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Gradients of dt_raw (both directions), A and dt_bias from the per-token sums R, K'.

    Args:
        dt_f, dt_b: (batch, L, H) raw step sizes; A, dt_bias: (H,).
        dta, R, Kp: (NDIR, batch, H, padded_length(L)) fp32: final dt, row sums, column sums / dt.
        out: [ddt_f, ddt_b] (ddt_b only with dt_b) to write into, with one set of strides; None: new tensors.

    Returns:
        ddt_f, ddt_b (in dt's dtype, contiguous (batch, L, H) unless given), dA (H,) and dbias (H,) in fp32.
    """
    batch, L, H = dt_f.shape
    ndir = dta.shape[0]
    if out:
        ddt_f, ddt_b = out[0], out[1] if dt_b is not None else None
    else:
        ddt_f = torch.empty(dt_f.shape, device=dt_f.device, dtype=dt_f.dtype)
        ddt_b = None if dt_b is None else torch.empty(dt_b.shape, device=dt_b.device, dtype=dt_b.dtype)
    segments = cdiv(L, _SEGMENT)
    dA_part = torch.empty(segments, batch, H, device=dt_f.device, dtype=torch.float32)
    dbias_part = torch.empty_like(dA_part)
    totals = dA_part  # not read with one segment (every carry mask is empty)
    BLOCK_H = min(16, next_power_of_2(H))
    LS, BHL = token_rows(dta)
    grid = (batch, cdiv(H, BLOCK_H), segments)
    if segments > 1:
        totals = torch.empty(ndir, segments, batch, H, device=dt_f.device, dtype=torch.float32)
        _dt_totals_kernel[grid](dta, R, Kp, totals, L, LS, H, BHL, BLOCK_L=64, SEGMENT=_SEGMENT, BLOCK_H=BLOCK_H,
                                NDIR=ndir, num_warps=4)
    _dt_bwd_kernel[grid](
        dt_f, dt_f if dt_b is None else dt_b, *dt_f.stride(), ddt_f, ddt_f if ddt_b is None else ddt_b, *ddt_f.stride(),
        A, A if dt_bias is None else dt_bias, dta, R, Kp, totals, dA_part, dbias_part,
        L, LS, H, BHL, lo, hi,
        BLOCK_L=64, SEGMENT=_SEGMENT, BLOCK_H=BLOCK_H, BLOCK_S=next_power_of_2(segments), NDIR=ndir,
        SHIFT=int(shift), HAS_BIAS=dt_bias is not None, SOFTPLUS=dt_softplus,
        num_warps=8,  # 111 registers on sm_90 (Triton 3.8); 128-token blocks in 4 warps spilled (kernel_registers.py)
    )
    return ddt_f, ddt_b, dA_part.sum((0, 1)), dbias_part.sum((0, 1))
