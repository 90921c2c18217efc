"""Triton stage 3 (backward): the chunk-local gradients, in two kernels that need no atomics.

With G[i, j] = dy_i . x_j and the matrix tiles of `triton_chunk_fwd` (M = S o decay o dt):

rows kernel, one program per (row tile, batch, group), heads of the group in turn:
    dCs[i] = sum_h sum_j (G o decay o dt)[i, j] B[j] + decay_in[i] dy_i S_in   per direction
    R[i]   = sum_j (S o decay o dt o G)[i, j] + decay_in[i] dy_i . (S_in Cs[i])  (= dy_i . y_d[i]) per head
    dC[i - shift] = dCs_f[i],  dC_b[i + shift] likewise (C rows the shift skips get 0)

cols kernel, one program per (column tile, batch, group):
    dx[j]  = sum_d dt_d[j] (sum_i (S o decay)[i, j] dy_i + w_d[j] B_d[j] dS_d)  + D[j] dy_j
    dB[j]  = sum_h dt[j] (sum_i (G o decay)[i, j] Cs[i] + w_d[j] x_j dS_d)
    K'[j]  = sum_i (S o decay o G)[i, j] + w_d[j] x_j . (B_d[j] dS_d)   per head,   dD[j] = dy_j . x_j

where S_in / dS are the forward / adjoint states (`triton_states`) and w_d the decay
from token j to where its chunk's state leaves. R and K' feed `triton_dt.dt_backward`.
"""
from __future__ import annotations

import triton
import triton.language as tl

from .triton_chunk_fwd import (
    chunk_configs, chunk_tile, load_bc, load_d, prefix_values, prune_blocks, triangle_mask,
)
from .triton_config import mma, mma_split

__all__ = ["chunk_bwd_cols_kernel", "chunk_bwd_rows_kernel"]


@triton.jit
def _rows_tile(gm, cs, r, Bp, cum, dta, off, A_h, rows, rm, cols, cm, ns, s_bl, s_bn, N, dch, rs,
               FORWARD: tl.constexpr, DIAG: tl.constexpr, SHIFT: tl.constexpr, DOT_PREC: tl.constexpr):
    """dCs += dS B and R += rowsum(S o dS) for one triangle of one tile; dS = G o decay o dt."""
    q, dt = prefix_values(cum, dta, off, cols, cm, A_h, 0 if FORWARD else 1)
    bj = load_bc(Bp, cols, cm, ns, s_bl, s_bn, N)
    expo = r[:, None] - q[None, :] if FORWARD else q[None, :] - r[:, None]
    valid = triangle_mask(rows, cols, rm, cm, FORWARD, DIAG, SHIFT)
    ds = gm * tl.exp(tl.where(valid, expo, float("-inf"))) * dt[None, :]
    rs += tl.sum(ds * mma(cs, tl.trans(bj), None, DOT_PREC), axis=1)
    return mma(ds.to(bj.dtype), bj, dch, DOT_PREC), rs


@triton.autotune(configs=chunk_configs(), key=["L", "Q", "P", "N", "BIDIR", "SHIFT"],
                 prune_configs_by={"early_config_prune": prune_blocks})
@triton.jit
def chunk_bwd_rows_kernel(
    x, s_xb, s_xl, s_xh, s_xp, dy, s_yb, s_yl, s_yh, s_yp, Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn,
    dta, cum, A, states, dCf, dCb, s_ob, s_ol, s_og, s_on, R,
    L, H, G, P, N, BHL, nchunks,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, STATES: tl.constexpr, DOT_PREC: tl.constexpr,
):
    tile, b, g = tl.program_id(0), tl.program_id(1).to(tl.int64), tl.program_id(2)
    c, c0, c_end, rows, rm, ps, ns, pm = chunk_tile(tile, L, P, Q, BLOCK, BLOCK_P, BLOCK_N)
    r0 = tile * BLOCK
    bc = b * s_bb + g * s_bg
    cs_f = load_bc(Cf + bc, rows - SHIFT, rm & (rows >= SHIFT), ns, s_bl, s_bn, N)
    dc_f = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    if BIDIR:
        cs_b = load_bc(Cb + bc, rows + SHIFT, rows + SHIFT < L, ns, s_bl, s_bn, N)
        dc_b = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    st_mask = pm[:, None] & (ns < N)[None, :]
    hpg = H // G
    for hh in range(hpg):
        h = g * hpg + hh
        A_h = tl.load(A + h).to(tl.float32)
        off_f = b * H * L + h * L
        off_b = BHL + off_f
        x_bh = x + b * s_xb + h * s_xh + ps[None, :] * s_xp
        dyi = tl.load(dy + b * s_yb + h * s_yh + rows[:, None] * s_yl + ps[None, :] * s_yp,
                      mask=rm[:, None] & pm[None, :], other=0.0)
        r_f, _ = prefix_values(cum, dta, off_f, rows, rm, A_h, SHIFT)
        rs_f = tl.zeros([BLOCK], tl.float32)
        if BIDIR:
            r_b, _ = prefix_values(cum, dta, off_b, rows, rm, A_h, 1 - SHIFT)
            rs_b = tl.zeros([BLOCK], tl.float32)
        for j0 in range(c0, r0, BLOCK):  # forward triangle only
            cols = j0 + tl.arange(0, BLOCK)
            xj = tl.load(x_bh + cols[:, None] * s_xl, mask=pm[None, :], other=0.0)
            gm = mma(dyi, tl.trans(xj), None, DOT_PREC)  # [BLOCK rows, BLOCK cols]
            dc_f, rs_f = _rows_tile(gm, cs_f, r_f, Bf + bc, cum, dta, off_f, A_h, rows, rm, cols, cols < L, ns,
                                     s_bl, s_bn, N, dc_f, rs_f, True, False, SHIFT, DOT_PREC)
        xi = tl.load(x_bh + rows[:, None] * s_xl, mask=rm[:, None] & pm[None, :], other=0.0)
        gm = mma(dyi, tl.trans(xi), None, DOT_PREC)
        dc_f, rs_f = _rows_tile(gm, cs_f, r_f, Bf + bc, cum, dta, off_f, A_h, rows, rm, rows, rm, ns,
                                 s_bl, s_bn, N, dc_f, rs_f, True, True, SHIFT, DOT_PREC)
        if BIDIR:
            dc_b, rs_b = _rows_tile(gm, cs_b, r_b, Bb + bc, cum, dta, off_b, A_h, rows, rm, rows, rm, ns,
                                     s_bl, s_bn, N, dc_b, rs_b, False, True, SHIFT, DOT_PREC)
            for j0 in range(r0 + BLOCK, c_end, BLOCK):  # backward triangle only
                cols = j0 + tl.arange(0, BLOCK)
                cm = cols < c_end
                xj = tl.load(x_bh + cols[:, None] * s_xl, mask=cm[:, None] & pm[None, :], other=0.0)
                gm = mma(dyi, tl.trans(xj), None, DOT_PREC)
                dc_b, rs_b = _rows_tile(gm, cs_b, r_b, Bb + bc, cum, dta, off_b, A_h, rows, rm, cols, cm, ns,
                                         s_bl, s_bn, N, dc_b, rs_b, False, False, SHIFT, DOT_PREC)
        if STATES:  # compiled out when L fits one chunk
            st = states + (b * H + h) * nchunks * P * N + ps[:, None] * N + ns[None, :]
            if c > 0:
                s_in = tl.load(st + c * P * N, mask=st_mask, other=0.0)
                dci = tl.exp(r_f)[:, None] * mma_split(dyi, s_in, None, DOT_PREC)
                dc_f += dci
                rs_f += tl.sum(cs_f.to(tl.float32) * dci, axis=1)
        tl.store(R + off_f + rows, rs_f, mask=rm)
        if BIDIR:
            if STATES:
                if c < nchunks - 1:
                    T_b = tl.load(cum + off_b + c_end - 1)
                    s_in = tl.load(st + BHL // L * nchunks * P * N + c * P * N, mask=st_mask, other=0.0)
                    dci = tl.exp(T_b - r_b)[:, None] * mma_split(dyi, s_in, None, DOT_PREC)
                    dc_b += dci
                    rs_b += tl.sum(cs_b.to(tl.float32) * dci, axis=1)
            tl.store(R + off_b + rows, rs_b, mask=rm)
    nm = (ns < N)[None, :]
    out = b * s_ob + g * s_og + ns[None, :] * s_on
    t_f = rows - SHIFT
    tl.store(dCf + out + t_f[:, None] * s_ol, dc_f, mask=(rm & (t_f >= 0))[:, None] & nm)
    if SHIFT:  # C_f[L-1] never enters: its gradient is zero
        tl.store(dCf + out + (L - 1) * s_ol, tl.zeros([1, BLOCK_N], tl.float32), mask=nm & (r0 + BLOCK >= L))
    if BIDIR:
        t_b = rows + SHIFT
        tl.store(dCb + out + t_b[:, None] * s_ol, dc_b, mask=(t_b < L)[:, None] & nm)
        if SHIFT:  # C_b[0] never enters
            tl.store(dCb + out, tl.zeros([1, BLOCK_N], tl.float32), mask=nm & (r0 == 0))


@triton.jit
def _cols_tile(gt, dyi, bt, q, dt, Cp, cum, dta, off, A_h, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, dx, db, ks,
               FORWARD: tl.constexpr, DIAG: tl.constexpr, SHIFT: tl.constexpr, DOT_PREC: tl.constexpr):
    """One triangle of one tile: dx += (S o decay o dt)^T dy, dB += (G o decay o dt)^T Cs (summed over
    heads in place) and K' += rowsum of (S o decay o G)^T (fp32)."""
    if FORWARD:
        r, _ = prefix_values(cum, dta, off, rows, rm, A_h, SHIFT)
        cs = load_bc(Cp, rows - SHIFT, rm & (rows >= SHIFT), ns, s_bl, s_bn, N)
        expo = r[None, :] - q[:, None]
    else:
        r, _ = prefix_values(cum, dta, off, rows, rm, A_h, 1 - SHIFT)
        cs = load_bc(Cp, rows + SHIFT, rm & (rows + SHIFT < L), ns, s_bl, s_bn, N)
        expo = q[:, None] - r[None, :]
    valid = tl.trans(triangle_mask(rows, cols, rm, cm, FORWARD, DIAG, SHIFT))  # [cols, rows]
    decay = tl.exp(tl.where(valid, expo, float("-inf")))
    mt = mma(bt, tl.trans(cs), None, DOT_PREC) * decay
    ks += tl.sum(mt * gt, axis=1)
    dx = mma((mt * dt[:, None]).to(dyi.dtype), dyi, dx, DOT_PREC)
    db = mma((gt * decay * dt[:, None]).to(dyi.dtype), cs, db, DOT_PREC)
    return dx, db, ks


@triton.autotune(configs=chunk_configs(), key=["L", "Q", "P", "N", "BIDIR", "SHIFT"],
                 prune_configs_by={"early_config_prune": prune_blocks})
@triton.jit
def chunk_bwd_cols_kernel(
    x, s_xb, s_xl, s_xh, s_xp, dy, s_yb, s_yl, s_yh, s_yp, Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn,
    Dp, s_db, s_dl, s_dh, dta, cum, A, dstates, dx, dBf, dBb, s_ob, s_ol, s_og, s_on, Kp, dD,
    L, H, G, P, N, BHL, nchunks,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, STATES: tl.constexpr, D_MODE: tl.constexpr, DOT_PREC: tl.constexpr,
):
    tile, b, g = tl.program_id(0), tl.program_id(1).to(tl.int64), tl.program_id(2)
    c, c0, c_end, cols, cm, ps, ns, pm = chunk_tile(tile, L, P, Q, BLOCK, BLOCK_P, BLOCK_N)
    j0 = tile * BLOCK
    nm = ns < N
    bc = b * s_bb + g * s_bg
    b_f = load_bc(Bf + bc, cols, cm, ns, s_bl, s_bn, N)
    db_f = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    if BIDIR:
        b_b = load_bc(Bb + bc, cols, cm, ns, s_bl, s_bn, N)
        db_b = tl.zeros([BLOCK, BLOCK_N], tl.float32)
    st_mask = pm[:, None] & nm[None, :]
    st_mask_t = nm[:, None] & pm[None, :]
    hpg = H // G
    for hh in range(hpg):
        h = g * hpg + hh
        A_h = tl.load(A + h).to(tl.float32)
        off_f = b * H * L + h * L
        off_b = BHL + off_f
        xj = tl.load(x + b * s_xb + h * s_xh + cols[:, None] * s_xl + ps[None, :] * s_xp,
                     mask=cm[:, None] & pm[None, :], other=0.0)
        dy_bh = dy + b * s_yb + h * s_yh + ps[None, :] * s_yp
        dyj = tl.load(dy_bh + cols[:, None] * s_yl, mask=cm[:, None] & pm[None, :], other=0.0)
        q_f, dt_f = prefix_values(cum, dta, off_f, cols, cm, A_h, 0)
        dxj = tl.zeros([BLOCK, BLOCK_P], tl.float32)
        ks_f = tl.zeros([BLOCK], tl.float32)
        # the diagonal tile first, both directions, so that neither its G nor dy_j stays live across the loops
        g_diag = mma(xj, tl.trans(dyj), None, DOT_PREC)  # [BLOCK cols, BLOCK rows]
        dxj, db_f, ks_f = _cols_tile(g_diag, dyj, b_f, q_f, dt_f, Cf + bc, cum, dta, off_f, A_h, cols, cm, cols, cm,
                                     ns, s_bl, s_bn, N, L, dxj, db_f, ks_f, True, True, SHIFT, DOT_PREC)
        if BIDIR:
            q_b, dt_b = prefix_values(cum, dta, off_b, cols, cm, A_h, 1)
            ks_b = tl.zeros([BLOCK], tl.float32)
            dxj, db_b, ks_b = _cols_tile(g_diag, dyj, b_b, q_b, dt_b, Cb + bc, cum, dta, off_b, A_h, cols, cm, cols,
                                         cm, ns, s_bl, s_bn, N, L, dxj, db_b, ks_b, False, True, SHIFT, DOT_PREC)
        if D_MODE > 0:
            dxj += load_d(Dp, b, cols, cm, h, s_db, s_dl, s_dh, D_MODE) * dyj.to(tl.float32)
            tl.store(dD + (b * L + cols) * H + h, tl.sum(dyj.to(tl.float32) * xj.to(tl.float32), axis=1), mask=cm)
        for i0 in range(j0 + BLOCK, c_end, BLOCK):  # rows below: forward triangle only
            rows = i0 + tl.arange(0, BLOCK)
            rm = rows < c_end
            dyi = tl.load(dy_bh + rows[:, None] * s_yl, mask=rm[:, None] & pm[None, :], other=0.0)
            gt = mma(xj, tl.trans(dyi), None, DOT_PREC)
            dxj, db_f, ks_f = _cols_tile(gt, dyi, b_f, q_f, dt_f, Cf + bc, cum, dta, off_f, A_h, rows, rm, cols, cm,
                                         ns, s_bl, s_bn, N, L, dxj, db_f, ks_f, True, False, SHIFT, DOT_PREC)
        if STATES:  # compiled out when L fits one chunk
            st = dstates + (b * H + h) * nchunks * P * N
            st_pn = st + ps[:, None] * N + ns[None, :]  # [BLOCK_P, BLOCK_N]
            st_np = st + ps[None, :] * N + ns[:, None]  # [BLOCK_N, BLOCK_P]
            if c < nchunks - 1:
                w = tl.exp(tl.load(cum + off_f + c_end - 1) - q_f)
                ds_np = tl.load(st_np + c * P * N, mask=st_mask_t, other=0.0)
                dxi = w[:, None] * mma_split(b_f, ds_np, None, DOT_PREC)
                ks_f += tl.sum(xj.to(tl.float32) * dxi, axis=1)
                dxj += dt_f[:, None] * dxi
                ds_pn = tl.load(st_pn + c * P * N, mask=st_mask, other=0.0)
                db_f += (w * dt_f)[:, None] * mma_split(xj, ds_pn, None, DOT_PREC)
        tl.store(Kp + off_f + cols, ks_f, mask=cm)
        if BIDIR:
            for i0 in range(c0, j0, BLOCK):  # rows above: backward triangle only
                rows = i0 + tl.arange(0, BLOCK)
                dyi = tl.load(dy_bh + rows[:, None] * s_yl, mask=pm[None, :], other=0.0)
                gt = mma(xj, tl.trans(dyi), None, DOT_PREC)
                dxj, db_b, ks_b = _cols_tile(gt, dyi, b_b, q_b, dt_b, Cb + bc, cum, dta, off_b, A_h, rows, rows < L,
                                             cols, cm, ns, s_bl, s_bn, N, L, dxj, db_b, ks_b, False, False, SHIFT,
                                             DOT_PREC)
            if STATES:
                if c > 0:
                    w = tl.exp(q_b)
                    off = BHL // L * nchunks * P * N + c * P * N
                    ds_np = tl.load(st_np + off, mask=st_mask_t, other=0.0)
                    dxi = w[:, None] * mma_split(b_b, ds_np, None, DOT_PREC)
                    ks_b += tl.sum(xj.to(tl.float32) * dxi, axis=1)
                    dxj += dt_b[:, None] * dxi
                    ds_pn = tl.load(st_pn + off, mask=st_mask, other=0.0)
                    db_b += (w * dt_b)[:, None] * mma_split(xj, ds_pn, None, DOT_PREC)
            tl.store(Kp + off_b + cols, ks_b, mask=cm)
        tl.store(dx + ((b * L + cols[:, None]) * H + h) * P + ps[None, :], dxj, mask=cm[:, None] & pm[None, :])
    out = b * s_ob + g * s_og + cols[:, None] * s_ol + ns[None, :] * s_on
    tl.store(dBf + out, db_f, mask=cm[:, None] & nm[None, :])
    if BIDIR:
        tl.store(dBb + out, db_b, mask=cm[:, None] & nm[None, :])
