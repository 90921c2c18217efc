"""Triton stage 2b: the group's products S = Cs B^T of every tile pair of a chunk, stored for the heads.

    S_f[i, j] = Cs_f[i] . B_f[j]  (tile pairs with j's tile <= i's),   S_b[i, j] = Cs_b[i] . B_b[j]  (>=)

in fp32, [ND, batch, G, LS, Q] (column index within the chunk; LS = L padded to a multiple of 16, the
positions past L stored as 0, so that readers mask on LS and load whole vectors). They do not depend on the head,
so the forward kernel, one program per head, loads them (from this kernel) instead of recomputing
them, and so does dx when L fits one chunk (the backward's pair kernel, which computes them anyway,
stores them). With several chunks dx recomputes them: loading them transposed measured slower.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..launcher import cached_launch
from .triton_chunk_fwd import load_bc, load_cs, products_mask
from .triton_config import mma

__all__ = ["chunk_products_kernel", "tile_pair", "tile_products"]


@triton.jit
def tile_pair(Q: tl.constexpr, BLOCK: tl.constexpr, T):
    """For a program of a (tile pair of a chunk, batch, group) grid, T x T tile pairs a chunk: batch, group,
    chunk, the row and column tiles' indices within the chunk and their first positions (possibly past L)."""
    pair, b, g = tl.program_id(0), tl.program_id(1).to(tl.int64), tl.program_id(2)
    c = pair // (T * T)
    ti = (pair // T) % T
    tj = pair % T
    return b, g, c, ti, tj, c * Q + ti * BLOCK, c * Q + tj * BLOCK


@triton.jit
def tile_products(Cp, Bp, rows, rm, cols, cm, ns, s_l, s_n, N, L, FORWARD: tl.constexpr, SHIFT: tl.constexpr,
                  DOT_PREC: tl.constexpr):
    """[len(rows), len(cols)] S = Cs[rows] B[cols]^T of one direction (fp32)."""
    cs = load_cs(Cp, rows, rm, ns, s_l, s_n, N, L, FORWARD, SHIFT)
    return mma(cs, tl.trans(load_bc(Bp, cols, cm, ns, s_l, s_n, N)), None, DOT_PREC)


@cached_launch
@triton.jit
def chunk_products_kernel(
    Bf, Cf, Bb, Cb, s_bb, s_bl, s_bg, s_bn, S, s_sd, s_sb, s_sg, L, LS, N,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, BIDIR: tl.constexpr, SHIFT: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    b, g, c, ti, tj, r0, j0 = tile_pair(Q, BLOCK, Q // BLOCK)
    if (r0 >= L) | (j0 >= L):
        return
    rows = r0 + tl.arange(0, BLOCK)
    cols = j0 + tl.arange(0, BLOCK)
    rm, cm = rows < L, cols < L
    padded = products_mask(rows, cols, LS)  # B, C load as 0 past L: S is 0 there
    ns = tl.arange(0, BLOCK_N)
    bc = b * s_bb + g * s_bg
    out = S + b * s_sb + g * s_sg + rows[:, None] * Q + (cols - c * Q)[None, :]
    if tj <= ti:
        s = tile_products(Cf + bc, Bf + bc, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, True, SHIFT, DOT_PREC)
        tl.store(out, s, mask=padded)
    if BIDIR:
        if tj >= ti:
            s = tile_products(Cb + bc, Bb + bc, rows, rm, cols, cm, ns, s_bl, s_bn, N, L, False, SHIFT, DOT_PREC)
            tl.store(out + s_sd, s, mask=padded)
