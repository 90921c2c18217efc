"""Triton stage 3 (backward), part 1: per tile pair of a chunk, the group's dS and the heads' R / K' parts.

With G_h[i, j] = dy_h[i] . x_h[j] and, per direction, S = Cs B^T and the decays of `triton_chunk_fwd`:

    dS[i, j]              = sum_h G_h[i, j] decay_h[i, j] dt_h[j]         fp32, [ND, batch, G, L, Q]
    R_h[i]  (slot tile j) = sum_{j in tile} S[i, j] decay_h[i, j] dt_h[j] G_h[i, j]
    K'_h[j] (slot tile i) = sum_{i in tile} S[i, j] decay_h[i, j] G_h[i, j]

One program per (tile pair of a chunk, batch, group) takes the heads of the group in turn, so S
is one product per group and the only per-head product is G; the other gradients are products
with dS per group (`triton_bwd_bc`: dC, dB, and R summed over its slots) or per head
(`triton_bwd_dx`: dx, dD, and K' summed over its slots). The slots [NSLOT, ND, batch, H, L]
hold one partial sum per tile of the other index, so no two programs write the same element.

A tile pair costs about the same whether its tiles are full or not (the per-head loads, products and
exponentials of the whole tile). At one chunk whose last tile holds 1 .. TAIL_MAX positions (Hydra-ViT's
197 tokens: three tiles of 64, then 5) the T x T full pairs run as above and a second launch of two
programs per (batch, group) takes the rest (`tail_tile`): the last tile's rows against every column in
one [16, SPAN] tile that crosses the diagonal (`_row_tail`), and every earlier row against its columns in
one [SPAN, 16] tile (`_column_tail`): 9 + 2 programs instead of 16 at 197 tokens.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..launcher import cached_launch
from .triton_chunk_fwd import LOG2E, masked_columns, prefix_values, products_mask, row_exponents, triangle_mask
from .triton_config import interpreting, mma
from .triton_products import tile_pair, tile_products

__all__ = ["chunk_bwd_pairs_kernel", "pair_block", "prune_tail_configs", "slot_sum", "tail_tile"]

TAIL_MAX = 16  # the longest last tile whose pairs the tail programs take


def pair_block(Q: int) -> int:
    """Tile length of the pair kernel (fixed per launch: the slot count Q // block sizes the buffers)."""
    return min(Q, 64)


def tail_tile(L: int, Q: int, block: int) -> int:
    """The pair kernel's TAIL: TAIL_MAX when L fits one chunk of Q and ends in a tile of 1 .. TAIL_MAX positions
    after at least one full one, else 0 (every tile pair its own program)."""
    return TAIL_MAX if L <= Q and L > block and 0 < L % block <= TAIL_MAX else 0


def _configs() -> list[triton.Config]:
    if interpreting():
        return [triton.Config({}, num_warps=4)]
    return [triton.Config({}, num_warps=w, num_stages=s) for w in (4, 8) for s in (1, 2)]


def prune_tail_configs(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Every config for the full pairs; for the tail launch (TAIL > 0) all but 4 warps in one stage, which
    faulted there (an illegal memory access) at headdim 32, d_state 16 and 4 groups on an H100 (Triton's sm_90
    code: an interpreter run with every load and store bounds-checked is clean; RESULTS.md, session 35)."""
    if kwargs.get("TAIL", 0) == 0 or interpreting():
        return configs
    return [c for c in configs if (c.num_warps, c.num_stages) != (4, 1)]


@triton.jit
def slot_sum(slots, slot_stride, off, pos, mask, c0, c_end, SLOT_BLOCK, LOWER: tl.constexpr):
    """sum over the slots s of slots[s, off + pos] whose tile pair exists: s <= tile(pos) (LOWER)
    or tile(pos) <= s < the chunk's tile count, with tile(pos) = (pos - c0) // SLOT_BLOCK (fp32)."""
    t = (pos - c0) // SLOT_BLOCK
    acc = tl.zeros(pos.shape, tl.float32)
    for s in range(tl.cdiv(c_end - c0, SLOT_BLOCK)):
        ok = mask & (s <= t) if LOWER else mask & (s >= t)
        acc += tl.load(slots + s * slot_stride + off + pos, mask=ok, other=0.0)
    return acc


@triton.jit
def _pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, s, cum, dta, A, off0, g, hpg, LS,
          rows, rm, cols, cm, ps, pm, Rs, Ks, slot_stride, ti, tj, ds_ptr, s_ptr, s_rows,
          FORWARD: tl.constexpr, SHIFT: tl.constexpr, STORE_S: tl.constexpr, DIAG: tl.constexpr,
          DOT_PREC: tl.constexpr):
    """One direction of one tile pair with its products s: dS (stored), s (stored for the dx kernel when
    STORE_S, on its rows below s_rows and up to the padded length LS as `triton_products` stores it) and the
    R / K' parts of every head of the group in slots tj / ti. DIAG: the pair may cross the diagonal, so its
    triangle is masked; off it nothing is, as masked rows and columns have exponent -inf (`row_exponents`,
    `masked_columns`)."""
    if STORE_S:
        tl.store(s_ptr, s, mask=products_mask(rows, cols, LS) & (rows < s_rows)[:, None])
    if DIAG:
        valid = triangle_mask(rows, cols, rm, cm, FORWARD, True, SHIFT)
    acc = tl.zeros_like(s)
    for hh in range(hpg):
        h = g * hpg + hh
        A_h = tl.load(A + h).to(tl.float32)
        off = off0 + h * LS
        r, _ = prefix_values(cum, dta, off, rows, LS, A_h, SHIFT if FORWARD else 1 - SHIFT)
        q, dt = prefix_values(cum, dta, off, cols, LS, A_h, 0 if FORWARD else 1)
        dyi = tl.load(dy_b + h * s_yh + rows[:, None] * s_yl + ps[None, :] * s_yp,
                      mask=rm[:, None] & pm[None, :], other=0.0)
        xj = tl.load(x_b + h * s_xh + cols[:, None] * s_xl + ps[None, :] * s_xp,
                     mask=cm[:, None] & pm[None, :], other=0.0)
        gm = mma(dyi, tl.trans(xj), None, DOT_PREC)
        r2, q2 = row_exponents(r, rm, FORWARD), masked_columns(q * LOG2E, cm, FORWARD)
        expo = r2[:, None] - q2[None, :] if FORWARD else q2[None, :] - r2[:, None]
        if DIAG:
            expo = tl.where(valid, expo, float("-inf"))
        f = gm * tl.exp2(expo)
        acc += f * dt[None, :]
        sf = s * f
        tl.store(Rs + tj * slot_stride + off + rows, tl.sum(sf * dt[None, :], axis=1), mask=rm)
        tl.store(Ks + ti * slot_stride + off + cols, tl.sum(sf, axis=0), mask=cm)
    tl.store(ds_ptr, acc, mask=rm[:, None] & cm[None, :])


@triton.jit
def _diagonal_pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, s_f, s_b, cum, dta, A, off0, BHL, g, hpg, LS,
                   rows, rm, cols, cm, ps, pm, Rs, Ks, slot_stride, t, ds_ptr, s_ptr, s_sd, t_sd,
                   STORE_S: tl.constexpr, DOT_PREC: tl.constexpr):
    """A diagonal tile pair of the shifted bidirectional mix, both directions in one pass over the heads:
    their triangles (strictly lower: forward, strictly upper: backward) are disjoint, and G_h = dy_h x_h^T
    does not depend on the direction, so each head takes one product and one exponential over the tile
    where `_pair`, once per direction, takes two. Stores what `_pair` stores for each direction."""
    both = rm[:, None] & cm[None, :]
    if STORE_S:
        padded = products_mask(rows, cols, LS)
        tl.store(s_ptr, s_f, mask=padded)
        tl.store(s_ptr + t_sd, s_b, mask=padded)
    low = triangle_mask(rows, cols, rm, cm, True, True, 1)
    up = triangle_mask(rows, cols, rm, cm, False, True, 1)
    s_low, s_up = tl.where(low, s_f, 0.0), tl.where(up, s_b, 0.0)
    acc = tl.zeros_like(s_f)
    for hh in range(hpg):
        h = g * hpg + hh
        A_h = tl.load(A + h).to(tl.float32)
        off_f = off0 + h * LS
        off_b = BHL + off_f
        r_f, _ = prefix_values(cum, dta, off_f, rows, LS, A_h, 1)
        q_f, dt_f = prefix_values(cum, dta, off_f, cols, LS, A_h, 0)
        r_b, _ = prefix_values(cum, dta, off_b, rows, LS, A_h, 0)
        q_b, dt_b = prefix_values(cum, dta, off_b, cols, LS, A_h, 1)
        dyi = tl.load(dy_b + h * s_yh + rows[:, None] * s_yl + ps[None, :] * s_yp,
                      mask=rm[:, None] & pm[None, :], other=0.0)
        xj = tl.load(x_b + h * s_xh + cols[:, None] * s_xl + ps[None, :] * s_xp,
                     mask=cm[:, None] & pm[None, :], other=0.0)
        gm = mma(dyi, tl.trans(xj), None, DOT_PREC)
        expo = tl.where(low, (r_f * LOG2E)[:, None] - (q_f * LOG2E)[None, :],
                        tl.where(up, (q_b * LOG2E)[None, :] - (r_b * LOG2E)[:, None], float("-inf")))
        f = gm * tl.exp2(expo)
        acc += f * tl.where(low, dt_f[None, :], dt_b[None, :])
        sf_f, sf_b = s_low * f, s_up * f
        tl.store(Rs + t * slot_stride + off_f + rows, tl.sum(sf_f * dt_f[None, :], axis=1), mask=rm)
        tl.store(Rs + t * slot_stride + off_b + rows, tl.sum(sf_b * dt_b[None, :], axis=1), mask=rm)
        tl.store(Ks + t * slot_stride + off_f + cols, tl.sum(sf_f, axis=0), mask=cm)
        tl.store(Ks + t * slot_stride + off_b + cols, tl.sum(sf_b, axis=0), mask=cm)
    tl.store(ds_ptr, tl.where(low, acc, 0.0), mask=both)
    tl.store(ds_ptr + s_sd, tl.where(up, acc, 0.0), mask=both)


@triton.jit
def _zero_slots(slots, slot_stride, off0, g, hpg, LS, pos, mask, s_start, s_end):
    """slots[s, head, pos] = 0 for the heads of group g and s_start <= s < s_end (fp32): the slots of tile
    pairs whose sums a tail program stores in one slot (`_row_tail`, `_column_tail`)."""
    zero = tl.zeros(pos.shape, tl.float32)
    for hh in range(hpg):
        off = off0 + (g * hpg + hh) * LS
        for t in range(s_start, s_end):
            tl.store(slots + t * slot_stride + off + pos, zero, mask=mask)


@triton.jit
def _row_tail(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf, Bf, Cb, Bb, s_bl, s_bn, cum, dta, A, b, g, hpg, H,
              L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, T, ds_bg, prod_bg, s_sd, t_sd,
              BLOCK: tl.constexpr, TAIL: tl.constexpr, SPAN: tl.constexpr, Q: tl.constexpr, BIDIR: tl.constexpr,
              SHIFT: tl.constexpr, DOT_PREC: tl.constexpr):
    """The last tile's rows (T BLOCK .. L - 1, at most TAIL) against every column of the chunk: one [TAIL, SPAN]
    tile across the diagonal, as the diagonal tile pair (T, T), whose slot T then holds R_f of these rows over
    every column tile (its slots before T are zeroed)."""
    rows = T * BLOCK + tl.arange(0, TAIL)
    cols = tl.arange(0, SPAN)
    _tile_pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf, Bf, Cb, Bb, s_bl, s_bn, cum, dta, A, b, g, 0, T, T,
               rows, rows < L, cols, cols < L, LS, hpg, H, L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, ds_bg,
               prod_bg, s_sd, t_sd, Q, BIDIR, SHIFT, True, DOT_PREC)
    _zero_slots(Rs, slot_stride, b * H * LS, g, hpg, LS, rows, rows < L, 0, T)


@triton.jit
def _column_tail(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf, Bf, Cb, Bb, s_bl, s_bn, cum, dta, A, b, g, hpg, H,
                 L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, T, ds_bg, prod_bg, s_sd, t_sd,
                 BLOCK: tl.constexpr, TAIL: tl.constexpr, SPAN: tl.constexpr, Q: tl.constexpr, BIDIR: tl.constexpr,
                 SHIFT: tl.constexpr, DOT_PREC: tl.constexpr):
    """Every row before the last tile against the last tile's columns: one [SPAN, TAIL] tile of the backward
    triangle, as the tile pair (0, T), whose slot 0 then holds K'_b of these columns over every row tile before
    T (slots 1 .. T - 1 are zeroed; slot T is `_row_tail`'s). S is stored for those rows only."""
    t0 = T * BLOCK
    rows = tl.arange(0, SPAN)
    cols = t0 + tl.arange(0, TAIL)
    _tile_pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf, Bf, Cb, Bb, s_bl, s_bn, cum, dta, A, b, g, 0, 0, T,
               rows, rows < t0, cols, cols < L, t0, hpg, H, L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, ds_bg,
               prod_bg, s_sd, t_sd, Q, BIDIR, SHIFT, True, DOT_PREC)
    _zero_slots(Ks, slot_stride, BHL + b * H * LS, g, hpg, LS, cols, cols < L, 1, T)


@triton.jit
def _tile_pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf, Bf, Cb, Bb, s_bl, s_bn, cum, dta, A, b, g, c, ti, tj,
               rows, rm, cols, cm, s_rows, hpg, H, L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, ds_bg, prod_bg,
               s_sd, t_sd, Q: tl.constexpr, BIDIR: tl.constexpr, SHIFT: tl.constexpr, STORE_S: tl.constexpr,
               DOT_PREC: tl.constexpr):
    """The pairs rows x cols of chunk c as the tile pair (ti, tj) (the slots its R and K' parts go to): the
    forward triangle's part where tj <= ti, the backward's where tj >= ti; a diagonal pair of the shifted
    bidirectional mix in one pass (`_diagonal_pair`). S is stored for rows below s_rows."""
    tile = rows[:, None] * Q + (cols - c * Q)[None, :]  # S has LS rows, dS L
    off0 = b * H * LS
    merged_diagonals: tl.constexpr = BIDIR and SHIFT
    if merged_diagonals:  # the two triangles of a diagonal tile are disjoint: one pass (`_diagonal_pair`)
        merged = ti == tj
    else:
        merged = False
    if merged:
        s_f = tile_products(Cf, Bf, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, True, SHIFT, DOT_PREC)
        s_b = tile_products(Cb, Bb, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, False, SHIFT, DOT_PREC)
        _diagonal_pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, s_f, s_b, cum, dta, A, off0, BHL, g, hpg, LS,
                       rows, rm, cols, cm, ps, pm, Rs, Ks, slot_stride, ti, ds_bg + tile, prod_bg + tile, s_sd, t_sd,
                       STORE_S, DOT_PREC)
    else:
        # off the diagonal tile every pair lies in one triangle, so the diagonal tile's mask serves all
        if tj <= ti:
            s = tile_products(Cf, Bf, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, True, SHIFT, DOT_PREC)
            _pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, s, cum, dta, A, off0, g, hpg, LS, rows, rm, cols, cm,
                  ps, pm, Rs, Ks, slot_stride, ti, tj, ds_bg + tile, prod_bg + tile, s_rows, True, SHIFT, STORE_S,
                  not merged_diagonals, DOT_PREC)
        if BIDIR:
            if tj >= ti:
                s = tile_products(Cb, Bb, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, False, SHIFT, DOT_PREC)
                _pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, s, cum, dta, A, BHL + off0, g, hpg, LS, rows, rm,
                      cols, cm, ps, pm, Rs, Ks, slot_stride, ti, tj, ds_bg + s_sd + tile, prod_bg + t_sd + tile,
                      s_rows, False, SHIFT, STORE_S, not merged_diagonals, DOT_PREC)


@cached_launch
@triton.autotune(configs=_configs(), key=["L", "Q", "P", "N", "BIDIR", "SHIFT", "BLOCK", "TAIL"],
                 prune_configs_by={"early_config_prune": prune_tail_configs})
@triton.jit
def chunk_bwd_pairs_kernel(
    x, s_xb, s_xl, s_xh, s_xp, dy, s_yb, s_yl, s_yh, s_yp, Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn,
    dta, cum, A, dS, S, s_sd, s_sb, s_sg, t_sd, t_sb, t_sg, Rs, Ks,
    L, LS, H, G, P, N, BHL, T,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, DOT_PREC: tl.constexpr, STORE_S: tl.constexpr,
    TAIL: tl.constexpr, SPAN: tl.constexpr,
):
    # TAIL == 0: the T x T tile pairs of each chunk, a program each. TAIL > 0: the tail programs of one chunk
    # whose last tile holds at most TAIL positions after T full ones (`_row_tail`, `_column_tail`; SPAN >= L
    # columns or rows), a launch of their own after the T x T full pairs, so each launch compiles one path
    b, g, c, ti, tj, r0, j0 = tile_pair(Q, BLOCK, T)  # the tile indices are unused by the tail programs
    ps, ns = tl.arange(0, BLOCK_P), tl.arange(0, BLOCK_N)
    pm = ps < P
    hpg = H // G
    bc = b * s_bb + g * s_bg
    slot_stride = (1 + BIDIR) * BHL
    x_b, dy_b = x + b * s_xb, dy + b * s_yb
    ds_bg, prod_bg = dS + b * s_sb + g * s_sg, S + b * t_sb + g * t_sg
    if TAIL > 0:
        if tl.program_id(0) == 0:
            _row_tail(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf + bc, Bf + bc, Cb + bc, Bb + bc, s_bl, s_bn,
                      cum, dta, A, b, g, hpg, H, L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, T, ds_bg, prod_bg,
                      s_sd, t_sd, BLOCK, TAIL, SPAN, Q, BIDIR, SHIFT, DOT_PREC)
        else:
            _column_tail(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf + bc, Bf + bc, Cb + bc, Bb + bc, s_bl,
                         s_bn, cum, dta, A, b, g, hpg, H, L, LS, N, BHL, ps, pm, ns, Rs, Ks, slot_stride, T, ds_bg,
                         prod_bg, s_sd, t_sd, BLOCK, TAIL, SPAN, Q, BIDIR, SHIFT, DOT_PREC)
    elif (r0 < L) & (j0 < L):
        rows = r0 + tl.arange(0, BLOCK)
        cols = j0 + tl.arange(0, BLOCK)
        _tile_pair(x_b, s_xl, s_xh, s_xp, dy_b, s_yl, s_yh, s_yp, Cf + bc, Bf + bc, Cb + bc, Bb + bc, s_bl, s_bn,
                   cum, dta, A, b, g, c, ti, tj, rows, rows < L, cols, cols < L, LS, hpg, H, L, LS, N, BHL, ps, pm,
                   ns, Rs, Ks, slot_stride, ds_bg, prod_bg, s_sd, t_sd, Q, BIDIR, SHIFT, STORE_S, DOT_PREC)
