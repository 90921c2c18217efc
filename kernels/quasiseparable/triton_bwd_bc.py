"""Triton stage 3 (backward), part 3: per group, dC and dB from dS, and the finished R.

One program per (tile t of positions, group, batch), with dS from `triton_bwd_pairs`:

    dCs_d[i] = sum_j dS_d[i, j] B_d[j] + sum_h decay_in[i] dy_h[i] S_in,h      (i in t)
    dB_d[j]  = sum_i dS_d[i, j] Cs_d[i] + sum_h dt_h[j] w_h[j] x_h[j] dS_h      (j in t)
    R_h,d[i] = (its slots from `triton_bwd_pairs`) + decay_in[i] dy_h[i] . (S_in,h Cs_d[i])
    dC_f[i - shift] = dCs_f[i],  dC_b[i + shift] = dCs_b[i]  (C rows the shift skips get 0)

where S_in / dS are the forward / adjoint states (`triton_states`) and w the decay from token j
to where its chunk's state leaves. R feeds `triton_dt.dt_backward`.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..launcher import cached_launch
from .triton_bwd_pairs import slot_sum
from .triton_chunk_fwd import (
    chunk_configs,
    chunk_tile,
    load_bc,
    load_cs,
    prefix_values,
    prune_blocks,
)
from .triton_config import mma, mma_split

__all__ = ["chunk_bwd_bc_kernel"]


@triton.jit
def _ds_tile(ds, rows, cols, Q, c0, L, FORWARD: tl.constexpr):
    """[len(rows), len(cols)] of one direction's dS (fp32), zero outside its triangle (j <= i or j >= i)."""
    ok = (rows < L)[:, None] & (cols < L)[None, :]
    ok &= cols[None, :] <= rows[:, None] if FORWARD else cols[None, :] >= rows[:, None]
    return tl.load(ds + rows[:, None] * Q + (cols - c0)[None, :], mask=ok, other=0.0)


@cached_launch
@triton.autotune(configs=chunk_configs(), key=["L", "Q", "P", "N", "BIDIR", "SHIFT"],
                 prune_configs_by={"early_config_prune": prune_blocks})
@triton.jit
def chunk_bwd_bc_kernel(
    x, s_xb, s_xl, s_xh, s_xp, dy, s_yb, s_yl, s_yh, s_yp, Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn,
    dta, cum, A, states, dstates, dS, s_sd, s_sb, s_sg, Rs, R, dBf, dCf, dBb, dCb, s_ob, s_ol, s_og, s_on,
    L, LS, H, G, P, N, BHL, nchunks, SLOT_BLOCK,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, STATES: tl.constexpr, DOT_PREC: tl.constexpr,
):
    tile, g, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    c, c0, c_end, idx, im, ps, ns, pm = chunk_tile(tile, L, P, Q, BLOCK, BLOCK_P, BLOCK_N)
    t0 = tile * BLOCK
    nm = ns < N
    bc = b * s_bb + g * s_bg
    slot_stride = (1 + BIDIR) * BHL
    ds_f = dS + b * s_sb + g * s_sg
    cs_f = load_cs(Cf + bc, idx, im, ns, s_bl, s_bn, N, L, True, SHIFT)
    dc_f = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    db_f = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    for j0 in range(c0, t0 + BLOCK, BLOCK):  # dC: columns up to the diagonal
        cols = j0 + tl.arange(0, BLOCK)
        bj = load_bc(Bf + bc, cols, cols < L, ns, s_bl, s_bn, N)
        dc_f = mma(_ds_tile(ds_f, idx, cols, Q, c0, L, True).to(bj.dtype), bj, dc_f, DOT_PREC)
    for i0 in range(t0, c_end, BLOCK):  # dB: rows from the diagonal down
        rows = i0 + tl.arange(0, BLOCK)
        ci = load_cs(Cf + bc, rows, rows < L, ns, s_bl, s_bn, N, L, True, SHIFT)
        db_f = mma(tl.trans(_ds_tile(ds_f, rows, idx, Q, c0, L, True).to(ci.dtype)), ci, db_f, DOT_PREC)
    if BIDIR:
        ds_b = ds_f + s_sd
        cs_b = load_cs(Cb + bc, idx, im, ns, s_bl, s_bn, N, L, False, SHIFT)
        dc_b = tl.zeros([BLOCK, BLOCK_N], tl.float32)
        db_b = tl.zeros([BLOCK, BLOCK_N], tl.float32)
        for j0 in range(t0, c_end, BLOCK):  # dC: columns from the diagonal right
            cols = j0 + tl.arange(0, BLOCK)
            bj = load_bc(Bb + bc, cols, cols < L, ns, s_bl, s_bn, N)
            dc_b = mma(_ds_tile(ds_b, idx, cols, Q, c0, L, False).to(bj.dtype), bj, dc_b, DOT_PREC)
        for i0 in range(c0, t0 + BLOCK, BLOCK):  # dB: rows up to the diagonal
            rows = i0 + tl.arange(0, BLOCK)
            ci = load_cs(Cb + bc, rows, rows < L, ns, s_bl, s_bn, N, L, False, SHIFT)
            db_b = mma(tl.trans(_ds_tile(ds_b, rows, idx, Q, c0, L, False).to(ci.dtype)), ci, db_b, DOT_PREC)
    hpg = H // G
    for hh in range(hpg):
        h = g * hpg + hh
        off_f = b * H * LS + h * LS
        off_b = BHL + off_f
        rs_f = slot_sum(Rs, slot_stride, off_f, idx, im, c0, c_end, SLOT_BLOCK, True)
        if BIDIR:
            rs_b = slot_sum(Rs, slot_stride, off_b, idx, im, c0, c_end, SLOT_BLOCK, False)
        if STATES:  # compiled out when L fits one chunk
            A_h = tl.load(A + h).to(tl.float32)
            dyi = tl.load(dy + b * s_yb + h * s_yh + idx[:, None] * s_yl + ps[None, :] * s_yp,
                          mask=im[:, None] & pm[None, :], other=0.0)
            xj = tl.load(x + b * s_xb + h * s_xh + idx[:, None] * s_xl + ps[None, :] * s_xp,
                         mask=im[:, None] & pm[None, :], other=0.0)
            st_pn = ps[:, None] * N + ns[None, :]
            st_mask = pm[:, None] & nm[None, :]
            fwd_states = states + (b * H + h) * nchunks * P * N + c * P * N + st_pn
            fwd_dstates = dstates + (b * H + h) * nchunks * P * N + c * P * N + st_pn
            back = BHL // LS * nchunks * P * N
            r_f, _ = prefix_values(cum, dta, off_f, idx, im, A_h, SHIFT)
            q_f, dt_f = prefix_values(cum, dta, off_f, idx, im, A_h, 0)
            if c > 0:  # the forward state enters this chunk
                dci = tl.exp(r_f)[:, None] * mma_split(dyi, tl.load(fwd_states, mask=st_mask, other=0.0), None,
                                                       DOT_PREC)
                dc_f += dci
                rs_f += tl.sum(cs_f.to(tl.float32) * dci, axis=1)
            if c < nchunks - 1:  # and leaves it
                w = tl.exp(tl.load(cum + off_f + c_end - 1) - q_f) * dt_f
                db_f += w[:, None] * mma_split(xj, tl.load(fwd_dstates, mask=st_mask, other=0.0), None, DOT_PREC)
            if BIDIR:
                r_b, _ = prefix_values(cum, dta, off_b, idx, im, A_h, 1 - SHIFT)
                q_b, dt_b = prefix_values(cum, dta, off_b, idx, im, A_h, 1)
                if c < nchunks - 1:  # the backward state enters this chunk
                    T_b = tl.load(cum + off_b + c_end - 1)
                    s_in = tl.load(fwd_states + back, mask=st_mask, other=0.0)
                    dci = tl.exp(T_b - r_b)[:, None] * mma_split(dyi, s_in, None, DOT_PREC)
                    dc_b += dci
                    rs_b += tl.sum(cs_b.to(tl.float32) * dci, axis=1)
                if c > 0:  # and leaves it
                    w = tl.exp(q_b) * dt_b
                    db_b += w[:, None] * mma_split(xj, tl.load(fwd_dstates + back, mask=st_mask, other=0.0), None,
                                                   DOT_PREC)
        tl.store(R + off_f + idx, rs_f, mask=im)
        if BIDIR:
            tl.store(R + off_b + idx, rs_b, mask=im)
    out = b * s_ob + g * s_og + ns[None, :] * s_on
    t_f = idx - SHIFT
    tl.store(dCf + out + t_f[:, None] * s_ol, dc_f, mask=(im & (t_f >= 0))[:, None] & nm[None, :])
    tl.store(dBf + out + idx[:, None] * s_ol, db_f, mask=im[:, None] & nm[None, :])
    if SHIFT:  # C_f[L-1] never enters: its gradient is zero
        tl.store(dCf + out + (L - 1) * s_ol, tl.zeros([1, BLOCK_N], tl.float32), mask=nm[None, :] & (t0 + BLOCK >= L))
    if BIDIR:
        t_b = idx + SHIFT
        tl.store(dCb + out + t_b[:, None] * s_ol, dc_b, mask=(t_b < L)[:, None] & nm[None, :])
        tl.store(dBb + out + idx[:, None] * s_ol, db_b, mask=im[:, None] & nm[None, :])
        if SHIFT:  # C_b[0] never enters
            tl.store(dCb + out, tl.zeros([1, BLOCK_N], tl.float32), mask=nm[None, :] & (t0 == 0))
