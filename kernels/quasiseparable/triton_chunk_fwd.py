"""Triton stage 3 (forward): y = QS(x) for one tile of rows, both triangles, the states and D in one store.

A program owns BLOCK rows i of one chunk, HEADS heads of one group and one batch element. Over
the column tiles j of its chunk it builds each head's tile of the quasiseparable matrix

    lower (j < i, or j <= i without shift):  Cs_f[i] . B_f[j] exp(r_f[i] - q_f[j]) dt_f[j]
    upper (j > i, or j >= i without shift):  Cs_b[i] . B_b[j] exp(q_b[j] - r_b[i]) dt_b[j]

and multiplies it into x[j]; the states of earlier / later chunks add
exp(r_f[i]) Cs_f[i] . S_f and exp(T_b - r_b[i]) Cs_b[i] . S_b, and D[i] x[i] the diagonal.
The products Cs . B are loaded from `triton_products`, which computes them once per group; a tile of
them serves every head of a program (a tuple of per-head values and accumulators, HEADS long).
A tile element takes one exp2: exp(r_i - q_j) dt_j = exp2(r_i log2 e - k_j) with the columns'
`column_exponents` k (dt folded in), and likewise for the upper triangle.
Cs_f[i] = C_f[i - shift], Cs_b[i] = C_b[i + shift] (the shift is only an index), and
with p the chunk-local prefix of a = dt A:

    r_f = p_f - shift a_f,   q_f = p_f,   r_b = p_b - (1 - shift) a_b,   q_b = p_b - a_b

Column tiles left of the row tile hold only the forward triangle, those right of it only
the backward one, the diagonal tile both (masked): three branch-free loops, as in flash
attention (Triton 3.6 cannot software-pipeline loads under a runtime `if` in a loop).
A causal scan (BIDIR=False) keeps the lower triangle only.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..launcher import cached_launch
from .triton_config import approx_log2, interpreting, mma, mma_split

__all__ = [
    "LOG2E", "TINY", "chunk_configs", "chunk_fwd_kernel", "chunk_tile", "column_exponents", "head_program", "load_bc",
    "load_cs", "load_exponents", "masked_columns", "prefix_values", "products_mask", "prune_blocks", "row_exponents",
    "triangle_mask",
]


# (BLOCK, warps, stages, maxnreg) beside `chunk_configs` for the forward kernel (H100, RESULTS.md session 42):
# 128 registers fit four 4-warp programs an SM where 32 / 4 / 3 takes 146 (128 x 197 tokens: 0.229 against
# 0.235 ms a launch); 96 fit five where 32 / 4 / 1 takes 128 with chunks of 64 (6 x 4,097 tokens: 0.199 against
# 0.212 ms for the best uncapped config).
_REGISTER_CAPS = ((32, 4, 3, 128), (32, 4, 1, 96))


def chunk_configs(capped: tuple[tuple[int, int, int, int], ...] = ()) -> list[triton.Config]:
    """BLOCK (rows = columns per tile), warps and stages; `prune_blocks` keeps those that fit the chunk.
    The one-stage configs hold fewer tiles in flight: at P = N = 64 the backward kernels compile without
    register spills on sm_90 only with these (benchmarks/kernel_registers.py). `capped` adds a kernel's
    own (BLOCK, warps, stages, maxnreg): ptxas's register cap a thread, which fits more programs an SM
    at the cost of some spills."""
    if interpreting():
        return [triton.Config({"BLOCK": blk}, num_warps=4) for blk in (32, 16)]
    blocks = [(64, 4, 3, None), (64, 8, 3, None), (32, 4, 3, None), (16, 4, 3, None), (32, 4, 1, None),
              (32, 8, 1, None), (16, 4, 1, None), *capped]
    return [triton.Config({"BLOCK": blk}, num_warps=w, num_stages=s, maxnreg=r) for blk, w, s, r in blocks]


def prune_blocks(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Tiles of at most Q rows; 16-row tiles in several stages only when the chunk is that short (the
    one-stage ones are the low-register option); in the interpreter only the first (no timing there)."""
    Q = kwargs["Q"]
    kept = [c for c in configs
            if c.kwargs["BLOCK"] <= Q and (c.kwargs["BLOCK"] > 16 or Q <= 16 or c.num_stages == 1)]
    return kept[:1] if interpreting() else kept


@triton.jit
def chunk_tile(tile, L, P, Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """Tile `tile` of BLOCK positions: (its chunk c, the chunk's start c*Q and end, the positions,
    their mask, the headdim and state index ranges, the headdim mask)."""
    c = tile // (Q // BLOCK)
    idx = tile * BLOCK + tl.arange(0, BLOCK)
    ps = tl.arange(0, BLOCK_P)
    return c, c * Q, tl.minimum(c * Q + Q, L), idx, idx < L, ps, tl.arange(0, BLOCK_N), ps < P


@triton.jit
def head_program(A, L, LS, H, G, P, BHL, Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr,
                 BLOCK_N: tl.constexpr):
    """For a program of a (tile, head, batch) grid: its batch, head and group; its chunk, the chunk's start
    and end and the tile's start; the tile's positions, their mask and the P / N ranges (`chunk_tile`);
    the head's A (fp32) and its offsets into the (direction, batch, H, LS) arrays (rows padded to LS), both
    directions. Heads vary before batch elements, so the programs that read one batch element's group
    data (the stored products S, B, C) run together and find it in L2."""
    tile, h, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    c, c0, c_end, idx, im, ps, ns, pm = chunk_tile(tile, L, P, Q, BLOCK, BLOCK_P, BLOCK_N)
    off_f = b * H * LS + h * LS
    return b, h, h // (H // G), c, c0, c_end, tile * BLOCK, idx, im, ps, ns, pm, tl.load(A + h).to(tl.float32), \
        off_f, BHL + off_f


@triton.jit
def prefix_values(cum, dta, off, idx, LS, A_h, COEF: tl.constexpr):
    """(p - COEF * dt A, dt) at positions idx of one padded row (fp32). Positions in [L, LS) read the row's
    padding (dt 0, p constant: `triton_dt`), finite values that every caller masks where they would count;
    from LS on, zero. A mask on LS, a multiple of 16, leaves the loads vectors where one on L splits them
    into one load an element (at L = 197: 147 scalar loads in the pair kernel, 19 with this mask)."""
    mask = idx < LS
    p = tl.load(cum + off + idx, mask=mask, other=0.0)
    dt = tl.load(dta + off + idx, mask=mask, other=0.0)
    if COEF == 0:  # p - 0 * dt A is p for finite dt, which the compiler may not assume (IEEE: 0 inf = nan)
        return p, dt
    return p - COEF * dt * A_h, dt


LOG2E = tl.constexpr(1.4426950408889634)
TINY = tl.constexpr(1.1754943508222875e-38)  # the smallest normal fp32


@triton.jit
def column_exponents(q, dt, FORWARD: tl.constexpr):
    """The columns' part of a tile's base-2 exponent with dt folded in (fp32):
    exp(r_i - q_j) dt_j = exp2(r_i log2 e - k_j) with k = q log2 e - log2 dt (FORWARD), and
    exp(q_j - r_i) dt_j = exp2(k_j - r_i log2 e) with k = q log2 e + log2 dt. One multiply and one exp2
    a tile element instead of two multiplies, an exp's scaling and the exp. dt under TINY counts as TINY
    (a weight of ~1e-38 x the decay instead of less); dt = 0 past L is masked by the callers."""
    lg = approx_log2(tl.maximum(dt, TINY))
    return q * LOG2E - lg if FORWARD else q * LOG2E + lg


@triton.jit
def load_bc(ptr, idx, valid, ns, s_l, s_n, N):
    """[len(idx), BLOCK_N] rows idx of one (batch, group) slice of B or C; zero where not valid."""
    return tl.load(ptr + idx[:, None] * s_l + ns[None, :] * s_n, mask=valid[:, None] & (ns < N)[None, :], other=0.0)


@triton.jit
def load_cs(Cp, rows, rm, ns, s_l, s_n, N, L, FORWARD: tl.constexpr, SHIFT: tl.constexpr):
    """[len(rows), BLOCK_N] shifted C rows of one (batch, group) slice: Cs_f[i] = C_f[i - shift] (FORWARD)
    or Cs_b[i] = C_b[i + shift]; zero where the row is masked or the shift leaves the sequence."""
    if FORWARD:
        return load_bc(Cp, rows - SHIFT, rm & (rows >= SHIFT), ns, s_l, s_n, N)
    return load_bc(Cp, rows + SHIFT, rm & (rows + SHIFT < L), ns, s_l, s_n, N)


@triton.jit
def load_d(Dp, b, pos, mask, h, s_db, s_dl, s_dh, D_MODE: tl.constexpr):
    """[len(pos), 1] column of the diagonal term of head h: D[h] (D_MODE 1, one value read for every
    position, so that both modes give the compiler one type) or D[b, pos, h] (2)."""
    if D_MODE == 1:
        d = tl.load(Dp + h + 0 * pos, mask=mask, other=0.0)
    else:
        d = tl.load(Dp + b * s_db + pos * s_dl + h * s_dh, mask=mask, other=0.0)
    return d.to(tl.float32)[:, None]


@triton.jit
def triangle_mask(rows, cols, rm, cm, FORWARD: tl.constexpr, DIAG: tl.constexpr, SHIFT: tl.constexpr):
    """[len(rows), len(cols)] pairs of the forward (j < i, or j <= i without shift) or backward
    triangle; off the diagonal tile only the bounds matter."""
    valid = rm[:, None] & cm[None, :]
    if DIAG:
        if FORWARD:
            valid = valid & (rows[:, None] >= cols[None, :] + SHIFT)
        else:
            valid = valid & (rows[:, None] + SHIFT <= cols[None, :])
    return valid


@triton.jit
def products_mask(rows, cols, LS):
    """[len(rows), len(cols)] elements of a tile of the group's products S that `triton_products` writes: both
    positions below LS, L rounded up to 16 (0 past L). Uniform over 16 positions, so loads and stores under it
    stay vectors where a mask on L splits them into one access an element."""
    return (rows < LS)[:, None] & (cols < LS)[None, :]


@triton.jit
def load_exponents(kexp, off, idx, LS, FORWARD: tl.constexpr):
    """The `column_exponents` of positions idx of one padded row, as `triton_dt` stores them; from LS on
    +inf (FORWARD) or -inf, which makes every exponent r2 - k (k - r2) of those columns -inf."""
    return tl.load(kexp + off + idx, mask=idx < LS, other=float("inf") if FORWARD else float("-inf"))


@triton.jit
def masked_columns(k, cm, FORWARD: tl.constexpr):
    """Columns' exponents k where cm, +inf (FORWARD) or -inf on masked columns (the value `load_exponents` gives
    past LS), which makes every exponent r2 - k (k - r2) of those columns -inf."""
    return tl.where(cm, k, float("inf") if FORWARD else float("-inf"))


@triton.jit
def row_exponents(r, rm, FORWARD: tl.constexpr):
    """The rows' part r log2 e of a tile's base-2 exponent; -inf (FORWARD) or +inf on masked rows, which
    makes every exponent r2 - k (k - r2) of those rows -inf."""
    return tl.where(rm, r * LOG2E, float("-inf") if FORWARD else float("inf"))


@triton.jit
def _products_tile(Sp, rows, cols, c0, LS, Q: tl.constexpr):
    """[len(rows), len(cols)] tile of the group's stored products (`triton_products`: written up to LS, so the
    load masks on LS, whole vectors); shared by the heads of a program."""
    return tl.load(Sp + rows[:, None] * Q + (cols - c0)[None, :], mask=products_mask(rows, cols, LS), other=0.0)


@triton.jit
def _mix_tile(s, r2, kexp, off, LS, rows, rm, cols, cm, FORWARD: tl.constexpr, DIAG: tl.constexpr,
              SHIFT: tl.constexpr):
    """[BLOCK rows, BLOCK cols] tile of one triangle of one head's matrix (fp32) from the group's products s
    (`_products_tile`), r2 the rows' `row_exponents` and the columns' stored exponents. Off the diagonal tile
    nothing is masked: rows past L and columns from LS on have exponent -inf, and columns in [L, LS) finite
    ones (their padding) with s 0."""
    k = load_exponents(kexp, off, cols, LS, FORWARD)
    expo = r2[:, None] - k[None, :] if FORWARD else k[None, :] - r2[:, None]
    if DIAG:
        expo = tl.where(triangle_mask(rows, cols, rm, cm, FORWARD, True, SHIFT), expo, float("-inf"))
    return s * tl.exp2(expo)


@triton.jit
def _tile_product(acc, s, r2, kexp, off, x_bh, s_xl, LS, rows, rm, cols, cm, xm, FORWARD: tl.constexpr,
                  SHIFT: tl.constexpr, DOT_PREC: tl.constexpr):
    """acc + (one head's off-diagonal tile, `_mix_tile`) @ x[cols] of that head (rows xm of x loaded)."""
    xj = tl.load(x_bh + cols[:, None] * s_xl, mask=xm, other=0.0)
    mat = _mix_tile(s, r2, kexp, off, LS, rows, rm, cols, cm, FORWARD, False, SHIFT)
    return mma(mat.to(xj.dtype), xj, acc, DOT_PREC)


@triton.jit
def _diagonal_product(acc, s_f, s_b, r2_f, r2_b, kexp, off_f, off_b, xi, LS, rows, rm, BIDIR: tl.constexpr,
                      SHIFT: tl.constexpr, DOT_PREC: tl.constexpr):
    """acc + (one head's diagonal tile) @ x[rows]: with shift both triangles are strict and disjoint, so one
    exponential a element takes both (where a `_mix_tile` per direction takes two); s_f, s_b the group's
    products of the tile (s_b unused without BIDIR)."""
    if BIDIR and SHIFT:
        low = triangle_mask(rows, rows, rm, rm, True, True, 1)
        up = triangle_mask(rows, rows, rm, rm, False, True, 1)
        k_f = load_exponents(kexp, off_f, rows, LS, True)
        k_b = load_exponents(kexp, off_b, rows, LS, False)
        expo = tl.where(low, r2_f[:, None] - k_f[None, :],
                        tl.where(up, k_b[None, :] - r2_b[:, None], float("-inf")))
        mat = tl.where(low, s_f, s_b) * tl.exp2(expo)
    else:
        mat = _mix_tile(s_f, r2_f, kexp, off_f, LS, rows, rm, rows, rm, True, True, SHIFT)
        if BIDIR:
            mat += _mix_tile(s_b, r2_b, kexp, off_b, LS, rows, rm, rows, rm, False, True, SHIFT)
    return mma(mat.to(xi.dtype), xi, acc, DOT_PREC)


@triton.jit
def _head_rows(A, h, b, H, LS, BHL, x, s_xb, s_xh, ps, s_xp, cum, dta, rows, rm, BIDIR: tl.constexpr,
               SHIFT: tl.constexpr):
    """Head h's part of a program: its offsets into the (direction, batch, H, LS) arrays (both directions),
    its x (batch b, the P columns ps), the rows' prefixes r_f, r_b (fp32) and `row_exponents` r2_f, r2_b
    (r_b = r_f without BIDIR)."""
    A_h = tl.load(A + h).to(tl.float32)
    off_f = b * H * LS + h * LS
    off_b = BHL + off_f
    r_f, _ = prefix_values(cum, dta, off_f, rows, LS, A_h, SHIFT)
    if BIDIR:
        r_b, _ = prefix_values(cum, dta, off_b, rows, LS, A_h, 1 - SHIFT)
    else:
        r_b = r_f
    return off_f, off_b, x + b * s_xb + h * s_xh + ps[None, :] * s_xp, r_f, row_exponents(r_f, rm, True), r_b, \
        row_exponents(r_b, rm, False)


@triton.jit
def _finish_head(acc, xi, h, b, c, c_end, r_f, r_b, off_b, cs_f, cs_b, states, cum, Dp, s_db, s_dl, s_dh, y,
                 rows, rm, ps, pm, ns, L, H, P, N, BHL, LS, nchunks, BIDIR: tl.constexpr, STATES: tl.constexpr,
                 D_MODE: tl.constexpr, DOT_PREC: tl.constexpr):
    """Head h's rows of y: acc plus the other chunks' states exp(r_f) Cs_f . S_f + exp(T_b - r_b) Cs_b . S_b
    (STATES) and D x, stored."""
    if STATES:  # compiled out when L fits one chunk
        st = states + (b * H + h) * nchunks * P * N + ps[None, :] * N + ns[:, None]  # [BLOCK_N, BLOCK_P] view of S^T
        st_mask = (ns < N)[:, None] & pm[None, :]
        if c > 0:
            s_in = tl.load(st + c * P * N, mask=st_mask, other=0.0)
            acc += tl.exp(r_f)[:, None] * mma_split(cs_f, s_in, None, DOT_PREC)
        if BIDIR:
            if c < nchunks - 1:
                T_b = tl.load(cum + off_b + c_end - 1)
                s_in = tl.load(st + BHL // LS * nchunks * P * N + c * P * N, mask=st_mask, other=0.0)
                acc += tl.exp(T_b - r_b)[:, None] * mma_split(cs_b, s_in, None, DOT_PREC)
    if D_MODE > 0:
        acc += load_d(Dp, b, rows, rm, h, s_db, s_dl, s_dh, D_MODE) * xi.to(tl.float32)
    tl.store(y + ((b * L + rows[:, None]) * H + h) * P + ps[None, :], acc, mask=rm[:, None] & pm[None, :])


@cached_launch
@triton.autotune(configs=chunk_configs(_REGISTER_CAPS), key=["L", "Q", "P", "N", "BIDIR", "SHIFT", "HEADS"],
                 prune_configs_by={"early_config_prune": prune_blocks})
@triton.jit
def chunk_fwd_kernel(
    x, s_xb, s_xl, s_xh, s_xp, Cf, Cb, s_bb, s_bl, s_bg, s_bn, Dp, s_db, s_dl, s_dh,
    S, s_sd, s_sb, s_sg, dta, cum, kexp, A, states, y,
    L, LS, H, G, P, N, BHL, nchunks,
    Q: tl.constexpr, BLOCK: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    BIDIR: tl.constexpr, SHIFT: tl.constexpr, STATES: tl.constexpr, D_MODE: tl.constexpr, HEADS: tl.constexpr,
    DOT_PREC: tl.constexpr,
):
    tile, b = tl.program_id(0), tl.program_id(2).to(tl.int64)
    h0 = tl.program_id(1) * HEADS  # HEADS heads of one group (`_heads_per_program`): the products' loads are shared
    g = h0 // (H // G)
    c, c0, c_end, rows, rm, ps, ns, pm = chunk_tile(tile, L, P, Q, BLOCK, BLOCK_P, BLOCK_N)
    r0 = tile * BLOCK
    S_f = S + b * s_sb + g * s_sg
    S_b = S_f + s_sd
    heads = ()
    accs = ()
    for i in tl.static_range(HEADS):
        heads = heads + (_head_rows(A, h0 + i, b, H, LS, BHL, x, s_xb, s_xh, ps, s_xp, cum, dta, rows, rm, BIDIR,
                                    SHIFT),)
        accs = accs + (tl.zeros([BLOCK, BLOCK_P], tl.float32),)
    for j0 in range(c0, r0, BLOCK):  # left of the diagonal: forward triangle only
        cols = j0 + tl.arange(0, BLOCK)
        s = _products_tile(S_f, rows, cols, c0, LS, Q)
        stepped = ()
        for i in tl.static_range(HEADS):
            off_f, _, x_h, _, r2_f, _, _ = heads[i]
            stepped = stepped + (_tile_product(accs[i], s, r2_f, kexp, off_f, x_h, s_xl, LS, rows, rm, cols, cols < L,
                                               pm[None, :], True, SHIFT, DOT_PREC),)
        accs = stepped
    s_f = _products_tile(S_f, rows, rows, c0, LS, Q)
    s_b = _products_tile(S_b, rows, rows, c0, LS, Q) if BIDIR else s_f
    xm = rm[:, None] & pm[None, :]
    xis = ()
    stepped = ()
    for i in tl.static_range(HEADS):
        off_f, off_b, x_h, _, r2_f, _, r2_b = heads[i]
        xi = tl.load(x_h + rows[:, None] * s_xl, mask=xm, other=0.0)
        xis = xis + (xi,)
        stepped = stepped + (_diagonal_product(accs[i], s_f, s_b, r2_f, r2_b, kexp, off_f, off_b, xi, LS, rows, rm,
                                               BIDIR, SHIFT, DOT_PREC),)
    accs = stepped
    if BIDIR:
        for j0 in range(r0 + BLOCK, c_end, BLOCK):  # right of the diagonal: backward triangle only
            cols = j0 + tl.arange(0, BLOCK)
            cm = cols < c_end
            s = _products_tile(S_b, rows, cols, c0, LS, Q)
            stepped = ()
            for i in tl.static_range(HEADS):
                _, off_b, x_h, _, _, _, r2_b = heads[i]
                stepped = stepped + (_tile_product(accs[i], s, r2_b, kexp, off_b, x_h, s_xl, LS, rows, rm, cols, cm,
                                                   cm[:, None] & pm[None, :], False, SHIFT, DOT_PREC),)
            accs = stepped
    cs_f = xis[0]  # the shifted C rows of the group, loaded when other chunks' states enter
    cs_b = xis[0]
    if STATES:
        bc = b * s_bb + g * s_bg
        cs_f = load_cs(Cf + bc, rows, rm, ns, s_bl, s_bn, N, L, True, SHIFT)
        if BIDIR:
            cs_b = load_cs(Cb + bc, rows, rm, ns, s_bl, s_bn, N, L, False, SHIFT)
    for i in tl.static_range(HEADS):
        _, off_b, _, r_f, _, r_b, _ = heads[i]
        _finish_head(accs[i], xis[i], h0 + i, b, c, c_end, r_f, r_b, off_b, cs_f, cs_b, states, cum, Dp, s_db, s_dl,
                     s_dh, y, rows, rm, ps, pm, ns, L, H, P, N, BHL, LS, nchunks, BIDIR, STATES, D_MODE, DOT_PREC)
