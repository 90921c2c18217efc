"""Triton stage 3 (backward), part 2: per head, dx = QS^T dy, dD and the finished K'.

One program per (column tile j, head, batch), over the row tiles i of its chunk (the
transposed walk of `triton_chunk_fwd`, with the tiles of the matrix built transposed):

    dx[j]  = sum_d dt_d[j] (sum_i (S o decay)_d[i, j] dy_i + w_d[j] B_d[j] dS_d)  + D[j] dy_j
    K'_d[j] = (its slots from `triton_bwd_pairs`) + w_d[j] x_j . (B_d[j] dS_d),   dD[j] = dy_j . x_j

where dS_d is the adjoint state of the chunk (`triton_states`) and w_d the decay from token j
to where its chunk's state leaves. K' feeds `triton_dt.dt_backward`.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..launcher import cached_launch
from .triton_bwd_pairs import slot_sum
from .triton_chunk_fwd import (
    chunk_configs,
    column_exponents,
    head_program,
    load_bc,
    load_cs,
    load_d,
    masked_columns,
    prefix_values,
    products_mask,
    prune_blocks,
    row_exponents,
    triangle_mask,
)
from .triton_config import mma, mma_split

__all__ = ["chunk_bwd_dx_kernel"]

# (BLOCK, warps, stages, maxnreg) beside `chunk_configs` (H100, RESULTS.md session 42): 168 registers fit three
# 4-warp programs an SM where 64 / 4 / 3 takes ~220 with chunks of 64 (6 x 4,097 tokens: 0.316 against 0.379 ms
# a launch; 0.297 in one stage); 64 fit eight where 32 / 4 / 1 takes 91 at one chunk (128 x 197 tokens: 0.294
# against 0.308 ms).
_REGISTER_CAPS = ((64, 4, 3, 168), (64, 4, 1, 168), (32, 4, 1, 64))


@triton.jit
def _dx_tile(dyi, bt, Cp, Sp, k, cum, dta, off, LS, A_h, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, c0,
             Q: tl.constexpr, dx, FORWARD: tl.constexpr, DIAG: tl.constexpr, SHIFT: tl.constexpr,
             S_STORED: tl.constexpr, DOT_PREC: tl.constexpr):
    """dx += (S o decay o dt)^T dy for one triangle of one tile, the tile built as [cols, rows], k the
    columns' `column_exponents` (`masked_columns`); S loaded
    from the group's products that `triton_bwd_pairs` stored (S_STORED) or computed here. Off the diagonal
    tile nothing is masked: masked rows and columns have exponent -inf (`row_exponents`)."""
    r, _ = prefix_values(cum, dta, off, rows, LS, A_h, SHIFT if FORWARD else 1 - SHIFT)
    r2 = row_exponents(r, rm, FORWARD)
    expo = r2[None, :] - k[:, None] if FORWARD else k[:, None] - r2[None, :]
    if DIAG:
        expo = tl.where(tl.trans(triangle_mask(rows, cols, rm, cm, FORWARD, True, SHIFT)), expo, float("-inf"))
    if S_STORED:
        st = tl.trans(tl.load(Sp + rows[:, None] * Q + (cols - c0)[None, :],
                              mask=products_mask(rows, cols, LS), other=0.0))
    else:
        st = mma(bt, tl.trans(load_cs(Cp, rows, rm, ns, s_bl, s_bn, N, L, FORWARD, SHIFT)), None, DOT_PREC)
    mt = st * tl.exp2(expo)
    return mma(mt.to(dyi.dtype), dyi, dx, DOT_PREC)


@cached_launch
@triton.autotune(configs=chunk_configs(_REGISTER_CAPS), key=["L", "Q", "P", "N", "BIDIR", "SHIFT"],
                 prune_configs_by={"early_config_prune": prune_blocks})
@triton.jit
def chunk_bwd_dx_kernel(
    x, s_xb, s_xl, s_xh, s_xp, dy, s_yb, s_yl, s_yh, s_yp, Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn,
    Dp, s_db, s_dl, s_dh, S, s_sd, s_sb, s_sg, dta, cum, A, dstates, dx, s_dxb, s_dxl, s_dxh, s_dxp, Ks, Kp, dD,
    L, LS, H, G, P, N, BHL, nchunks, SLOT_BLOCK,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, STATES: tl.constexpr, D_MODE: tl.constexpr, DOT_PREC: tl.constexpr,
):
    S_STORED: tl.constexpr = STATES == 0  # one chunk: the pairs kernel stored the group's products
    b, h, g, c, c0, c_end, j0, cols, cm, ps, ns, pm, A_h, off_f, off_b = head_program(
        A, L, LS, H, G, P, BHL, Q, BLOCK, BLOCK_P, BLOCK_N)
    nm = ns < N
    bc = b * s_bb + g * s_bg
    S_f = S + b * s_sb + g * s_sg
    S_b = S_f + s_sd
    slot_stride = (1 + BIDIR) * BHL
    xj = tl.load(x + b * s_xb + h * s_xh + cols[:, None] * s_xl + ps[None, :] * s_xp,
                 mask=cm[:, None] & pm[None, :], other=0.0)
    dy_bh = dy + b * s_yb + h * s_yh + ps[None, :] * s_yp
    dyj = tl.load(dy_bh + cols[:, None] * s_yl, mask=cm[:, None] & pm[None, :], other=0.0)
    b_f = load_bc(Bf + bc, cols, cm, ns, s_bl, s_bn, N)
    q_f, dt_f = prefix_values(cum, dta, off_f, cols, LS, A_h, 0)
    k_f = masked_columns(column_exponents(q_f, dt_f, True), cm, True)
    dxj = _dx_tile(dyj, b_f, Cf + bc, S_f, k_f, cum, dta, off_f, LS, A_h, cols, cm, cols, cm, ns, s_bl, s_bn, N,
                   L, c0, Q, tl.zeros([BLOCK, BLOCK_P], tl.float32), True, True, SHIFT, S_STORED, DOT_PREC)
    if BIDIR:
        b_b = load_bc(Bb + bc, cols, cm, ns, s_bl, s_bn, N)
        q_b, dt_b = prefix_values(cum, dta, off_b, cols, LS, A_h, 1)
        k_b = masked_columns(column_exponents(q_b, dt_b, False), cm, False)
        dxj = _dx_tile(dyj, b_b, Cb + bc, S_b, k_b, cum, dta, off_b, LS, A_h, cols, cm, cols, cm, ns, s_bl, s_bn,
                       N, L, c0, Q, dxj, False, True, SHIFT, S_STORED, DOT_PREC)
    if D_MODE > 0:
        dxj += load_d(Dp, b, cols, cm, h, s_db, s_dl, s_dh, D_MODE) * dyj.to(tl.float32)
        tl.store(dD + (b * L + cols) * H + h, tl.sum(dyj.to(tl.float32) * xj.to(tl.float32), axis=1), mask=cm)
    for i0 in range(j0 + BLOCK, c_end, BLOCK):  # rows below: forward triangle only
        rows = i0 + tl.arange(0, BLOCK)
        rm = rows < c_end
        dyi = tl.load(dy_bh + rows[:, None] * s_yl, mask=rm[:, None] & pm[None, :], other=0.0)
        dxj = _dx_tile(dyi, b_f, Cf + bc, S_f, k_f, cum, dta, off_f, LS, A_h, rows, rm, cols, cm, ns, s_bl, s_bn,
                       N, L, c0, Q, dxj, True, False, SHIFT, S_STORED, DOT_PREC)
    if BIDIR:
        for i0 in range(c0, j0, BLOCK):  # rows above: backward triangle only
            rows = i0 + tl.arange(0, BLOCK)
            dyi = tl.load(dy_bh + rows[:, None] * s_yl, mask=pm[None, :], other=0.0)
            dxj = _dx_tile(dyi, b_b, Cb + bc, S_b, k_b, cum, dta, off_b, LS, A_h, rows, rows < L, cols, cm, ns,
                           s_bl, s_bn, N, L, c0, Q, dxj, False, False, SHIFT, S_STORED, DOT_PREC)
    ks_f = slot_sum(Ks, slot_stride, off_f, cols, cm, c0, c_end, SLOT_BLOCK, False)
    if STATES:  # compiled out when L fits one chunk
        st = dstates + (b * H + h) * nchunks * P * N + ps[None, :] * N + ns[:, None]  # [BLOCK_N, BLOCK_P]
        st_mask = nm[:, None] & pm[None, :]
        if c < nchunks - 1:
            w = tl.exp(tl.load(cum + off_f + c_end - 1) - q_f)
            dxi = w[:, None] * mma_split(b_f, tl.load(st + c * P * N, mask=st_mask, other=0.0), None, DOT_PREC)
            ks_f += tl.sum(xj.to(tl.float32) * dxi, axis=1)
            dxj += dt_f[:, None] * dxi
    tl.store(Kp + off_f + cols, ks_f, mask=cm)
    if BIDIR:
        ks_b = slot_sum(Ks, slot_stride, off_b, cols, cm, c0, c_end, SLOT_BLOCK, True)
        if STATES:
            if c > 0:
                off = BHL // LS * nchunks * P * N + c * P * N
                dxi = tl.exp(q_b)[:, None] * mma_split(b_b, tl.load(st + off, mask=st_mask, other=0.0), None,
                                                       DOT_PREC)
                ks_b += tl.sum(xj.to(tl.float32) * dxi, axis=1)
                dxj += dt_b[:, None] * dxi
        tl.store(Kp + off_b + cols, ks_b, mask=cm)
    tl.store(dx + b * s_dxb + h * s_dxh + cols[:, None] * s_dxl + ps[None, :] * s_dxp, dxj,
             mask=cm[:, None] & pm[None, :])
