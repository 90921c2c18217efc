"""Triton stage 3 (backward), part 3: per group, dC and dB from dS, and the finished R.

One program per (tile t of positions and direction d, group, batch), with dS from `triton_bwd_pairs`:

    dCs_d[i] = sum_j dS_d[i, j] B_d[j] + sum_h decay_in[i] dy_h[i] S_in,h      (i in t)
    dB_d[j]  = sum_i dS_d[i, j] Cs_d[i] + sum_h dt_h[j] w_h[j] x_h[j] dS_h      (j in t)
    R_h,d[i] = (its slots from `triton_bwd_pairs`) + decay_in[i] dy_h[i] . (S_in,h Cs_d[i])
    dC_f[i - shift] = dCs_f[i],  dC_b[i + shift] = dCs_b[i]  (C rows the shift skips get 0)

where S_in / dS are the forward / adjoint states (`triton_states`) and w the decay from token j
to where its chunk's state leaves. R feeds `triton_dt.dt_backward`. Only dy and x are read by both
directions, so each direction is a program of its own: two [BLOCK, N] accumulators a program instead of
four, and twice the programs. The two programs of a tile are neighbours in the grid, so the second finds
dy and x in L2.
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


@triton.jit
def _direction(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, B_d, C_d, s_bl, s_bn, ds_d, Rs, R, states_d,
               dstates_d, dta, cum, A, dB_d, dC_d, s_ol, s_on, L, LS, H, hpg, g, b, P, N, nchunks, slot_stride,
               SLOT_BLOCK, c, c0, c_end, t0, idx, im, ps, ns, pm, off0,
               BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, Q: tl.constexpr, FORWARD: tl.constexpr,
               SHIFT: tl.constexpr, STATES: tl.constexpr, DOT_PREC: tl.constexpr):
    """dC_d, dB_d of the tile idx and R_h,d of its heads for one direction (formulas above). off0 is the
    direction's offset into the (direction, batch, H, LS) arrays, B_d / C_d / dB_d / dC_d point at the
    (batch, group) slice. Forward: triangle j <= i, the state enters a chunk from the left and leaves to
    the right; backward: j >= i and the other way."""
    nm = ns < N
    cs = load_cs(C_d, idx, im, ns, s_bl, s_bn, N, L, FORWARD, SHIFT)
    dc = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    db = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    if FORWARD:  # dC: the columns of the tile's rows in the triangle; dB: the rows of its columns
        c_lo, c_hi, r_lo, r_hi = c0, t0 + BLOCK, t0, c_end
    else:
        c_lo, c_hi, r_lo, r_hi = t0, c_end, c0, t0 + BLOCK
    for j0 in range(c_lo, c_hi, BLOCK):
        cols = j0 + tl.arange(0, BLOCK)
        bj = load_bc(B_d, cols, cols < L, ns, s_bl, s_bn, N)
        dc = mma(_ds_tile(ds_d, idx, cols, Q, c0, L, FORWARD).to(bj.dtype), bj, dc, DOT_PREC)
    for i0 in range(r_lo, r_hi, BLOCK):
        rows = i0 + tl.arange(0, BLOCK)
        ci = load_cs(C_d, rows, rows < L, ns, s_bl, s_bn, N, L, FORWARD, SHIFT)
        db = mma(tl.trans(_ds_tile(ds_d, rows, idx, Q, c0, L, FORWARD).to(ci.dtype)), ci, db, DOT_PREC)
    for hh in range(hpg):
        h = g * hpg + hh
        off = off0 + h * LS
        rs = slot_sum(Rs, slot_stride, off, idx, im, c0, c_end, SLOT_BLOCK, FORWARD)
        if STATES:  # compiled out when L fits one chunk
            A_h = tl.load(A + h).to(tl.float32)
            dyi = tl.load(dy_b + h * s_yh + idx[:, None] * s_yl + ps[None, :] * s_yp,
                          mask=im[:, None] & pm[None, :], other=0.0)
            xj = tl.load(x_b + h * s_xh + idx[:, None] * s_xl + ps[None, :] * s_xp,
                         mask=im[:, None] & pm[None, :], other=0.0)
            st = (b * H + h) * nchunks * P * N + c * P * N + ps[:, None] * N + ns[None, :]
            st_mask = pm[:, None] & nm[None, :]
            r, _ = prefix_values(cum, dta, off, idx, LS, A_h, SHIFT if FORWARD else 1 - SHIFT)
            q, dt = prefix_values(cum, dta, off, idx, LS, A_h, 0 if FORWARD else 1)
            if c > 0 if FORWARD else c < nchunks - 1:  # a state enters this chunk
                decay_in = tl.exp(r) if FORWARD else tl.exp(tl.load(cum + off + c_end - 1) - r)
                dci = decay_in[:, None] * mma_split(dyi, tl.load(states_d + st, mask=st_mask, other=0.0), None,
                                                    DOT_PREC)
                dc += dci
                rs += tl.sum(cs.to(tl.float32) * dci, axis=1)
            if c < nchunks - 1 if FORWARD else c > 0:  # and leaves it
                w = (tl.exp(tl.load(cum + off + c_end - 1) - q) if FORWARD else tl.exp(q)) * dt
                db += w[:, None] * mma_split(xj, tl.load(dstates_d + st, mask=st_mask, other=0.0), None, DOT_PREC)
        tl.store(R + off + idx, rs, mask=im)
    t = idx - SHIFT if FORWARD else idx + SHIFT  # dC_f[i - shift] = dCs_f[i], dC_b[i + shift] = dCs_b[i]
    ns_out = ns[None, :] * s_on
    tl.store(dC_d + t[:, None] * s_ol + ns_out, dc, mask=(im & (t >= 0) & (t < L))[:, None] & nm[None, :])
    tl.store(dB_d + idx[:, None] * s_ol + ns_out, db, mask=im[:, None] & nm[None, :])
    if SHIFT:  # the C row the shift skips (C_f[L - 1], C_b[0]) never enters: its gradient is zero
        skipped = L - 1 if FORWARD else 0
        here = t0 + BLOCK >= L if FORWARD else t0 == 0
        tl.store(dC_d + skipped * s_ol + ns_out, tl.zeros([1, BLOCK_N], tl.float32), mask=nm[None, :] & here)


# (BLOCK, warps, stages, maxnreg) beside `chunk_configs` (H100, RESULTS.md session 42): 80 registers fit six 4-warp
# programs an SM where 32 / 4 / 3 takes 96 (128 x 197 tokens: 0.087 against 0.091 ms a launch).
_REGISTER_CAPS = ((32, 4, 3, 80),)


def _configs() -> list[triton.Config]:
    """`chunk_configs` at 4 warps. At BLOCK 64 and 8 warps, Triton 3.6 on sm_90 gets d_state 16 wrong (2 x 577
    tokens, headdim 32, 4 groups, no shift): before the split into directions, B_bwd's gradient came out 83%
    off; after it, the launch faults with an illegal memory access (benchmarks/RESULTS.md, session 29). Every
    4-warp config matched the reference there (so did 32 / 8 / 1, dropped with the others untimed), and the
    autotuner picked 64 / 4 / 3 at the model's sizes anyway. Plus `_REGISTER_CAPS`."""
    return [c for c in chunk_configs(_REGISTER_CAPS) if c.num_warps == 4]


@cached_launch
@triton.autotune(configs=_configs(), key=["L", "Q", "P", "N", "BIDIR", "SHIFT"],
                 prune_configs_by={"early_config_prune": prune_blocks})
@triton.jit
def chunk_bwd_bc_kernel(
    x, s_xb, s_xl, s_xh, s_xp, dy, s_yb, s_yl, s_yh, s_yp, Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn,
    dta, cum, A, states, dstates, dS, s_sd, s_sb, s_sg, Rs, R, dBf, dCf, dBb, dCb, s_ob, s_ol, s_og, s_on,
    L, LS, H, G, P, N, BHL, nchunks, SLOT_BLOCK,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, STATES: tl.constexpr, DOT_PREC: tl.constexpr,
):
    tile, d = tl.program_id(0) // (1 + BIDIR), tl.program_id(0) % (1 + BIDIR)
    g, b = tl.program_id(1), tl.program_id(2).to(tl.int64)
    c, c0, c_end, idx, im, ps, ns, pm = chunk_tile(tile, L, P, Q, BLOCK, BLOCK_P, BLOCK_N)
    t0 = tile * BLOCK
    bc = b * s_bb + g * s_bg
    out = b * s_ob + g * s_og
    off_f = b * H * LS
    ds_f = dS + b * s_sb + g * s_sg
    back = BHL // LS * nchunks * P * N  # the backward direction's states follow the forward ones
    x_b, dy_b = x + b * s_xb, dy + b * s_yb
    hpg, slot_stride = H // G, (1 + BIDIR) * BHL
    if d == 0:
        _direction(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Bf + bc, Cf + bc, s_bl, s_bn, ds_f, Rs, R, states,
                   dstates, dta, cum, A, dBf + out, dCf + out, s_ol, s_on, L, LS, H, hpg, g, b, P, N, nchunks,
                   slot_stride, SLOT_BLOCK, c, c0, c_end, t0, idx, im, ps, ns, pm, off_f,
                   BLOCK, BLOCK_N, Q, True, SHIFT, STATES, DOT_PREC)
    if BIDIR:
        if d == 1:
            _direction(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Bb + bc, Cb + bc, s_bl, s_bn, ds_f + s_sd, Rs,
                       R, states + back, dstates + back, dta, cum, A, dBb + out, dCb + out, s_ol, s_on, L, LS, H,
                       hpg, g, b, P, N, nchunks, slot_stride, SLOT_BLOCK, c, c0, c_end, t0, idx, im, ps, ns, pm,
                       BHL + off_f, BLOCK, BLOCK_N, Q, False, SHIFT, STATES, DOT_PREC)
