"""The backward of Hydra's per-token diagonal, diag = x w^T + D, as one pass over the tokens.

For rows of x (M, C) (the mix's input, all heads' channels), w (H, C) (fc_D's weight) and the diagonal's
gradient g = d diag (M, H):

    dx += g w              (in place, one rounding to dx's dtype)
    dw  = g^T x            (H, C) fp32
    dD  = sum over rows of g   (H,) fp32

torch runs these as an in-place addmm over dx, a split-K GEMM for dw and a sum. Here a program owns BLOCK_C
channels of one span of rows and walks it BLOCK_M rows a step: both products are tensor-core dots on the
tile, so dx is read and written and x read once. dx's tile feeds the dot's accumulator, which Triton's
pipeliner does not prefetch, so each step loads the next tile's dx before its own dots. Each program stores
its dw and dD partial sums, which torch then adds (no atomics: deterministic). On an H100 at hydra_vit_base's
shapes (RESULTS.md, session 39) the pass takes 106 us against torch's 152 us at 128 x 196 tokens and 145 against
184 us at 8 x 4,096, about 0.67 of a device copy's bandwidth (bf16 configs: 138-204 registers a thread).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .host_math import cdiv, next_power_of_2
from .launcher import cached_launch
from .quasiseparable.triton_config import dot_precision, first_config_when_interpreting, interpreting, mma
from .row_blocks import sm_count

__all__ = ["token_diagonal_backward_into"]

SPAN_ROWS = 128  # a program's span of rows is a multiple of this, so of every config's BLOCK_M
PROGRAMS_PER_SM = 8


def _configs() -> list[triton.Config]:
    """(BLOCK_M rows, BLOCK_C channels, warps, stages): the tiles whose bf16 build needs no spills on sm_90."""
    return [triton.Config({"BLOCK_M": m, "BLOCK_C": c}, num_warps=w, num_stages=s)
            for m, c, w, s in [(32, 128, 4, 4), (64, 64, 4, 3), (64, 128, 8, 3), (32, 64, 4, 4)]]


@cached_launch
@triton.autotune(configs=_configs(), key=["C", "H", "SPAN"], restore_value=["dx"],
                 prune_configs_by={"early_config_prune": first_config_when_interpreting})
@triton.jit
def _diag_bwd_kernel(dx, s_dx, x, s_x, g, s_g, w, parts, M, C, H, SPAN, DOT_PREC: tl.constexpr,
                     BLOCK_H: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    pc, ps = tl.program_id(0), tl.program_id(1)
    cols = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    heads = tl.arange(0, BLOCK_H)
    cm, hm = cols < C, heads < H
    wv = tl.load(w + heads[:, None] * C + cols[None, :], mask=hm[:, None] & cm[None, :], other=0.0)
    wv = wv.to(g.dtype.element_ty)
    dw = tl.zeros([BLOCK_H, BLOCK_C], tl.float32)
    dD = tl.zeros([BLOCK_H], tl.float32)
    first = ps * SPAN
    last = tl.minimum(first + SPAN, M)
    rows = (first + tl.arange(0, BLOCK_M)).to(tl.int64)
    dx_ahead = tl.load(dx + rows[:, None] * s_dx + cols[None, :], mask=(rows < M)[:, None] & cm[None, :], other=0.0)
    for r0 in range(first, last, BLOCK_M):
        rows = (r0 + tl.arange(0, BLOCK_M)).to(tl.int64)
        rm = rows < M
        tile = rm[:, None] & cm[None, :]
        dxv = dx_ahead  # this tile's dx, loaded one step ahead: its load is not an operand Triton prefetches
        ahead = rows + BLOCK_M
        dx_ahead = tl.load(dx + ahead[:, None] * s_dx + cols[None, :], mask=(ahead < last)[:, None] & cm[None, :],
                           other=0.0)
        gv = tl.load(g + rows[:, None] * s_g + heads[None, :], mask=rm[:, None] & hm[None, :], other=0.0)
        xv = tl.load(x + rows[:, None] * s_x + cols[None, :], mask=tile, other=0.0)
        dw = mma(tl.trans(gv), xv, dw, DOT_PREC)
        dxv = mma(gv, wv, dxv.to(tl.float32), DOT_PREC)
        tl.store(dx + rows[:, None] * s_dx + cols[None, :], dxv.to(dx.dtype.element_ty), mask=tile)
        dD += tl.sum(gv.to(tl.float32), axis=0)
    row = parts + ps.to(tl.int64) * (H * C + H)  # a program's partial sums: dw (H, C), then dD (H,)
    tl.store(row + heads[:, None] * C + cols[None, :], dw, mask=hm[:, None] & cm[None, :])
    tl.store(row + H * C + heads, dD, mask=hm & (pc == 0))


def _spans(M: int, C: int, device: torch.device) -> int:
    """Rows a program walks: a multiple of SPAN_ROWS giving about PROGRAMS_PER_SM programs per SM with
    128-channel tiles (a few spans in the interpreter)."""
    if interpreting() or device.type != "cuda":
        return SPAN_ROWS
    sms = sm_count(device)
    spans = max(1, cdiv(PROGRAMS_PER_SM * sms, cdiv(C, 128)))
    return cdiv(cdiv(M, spans), SPAN_ROWS) * SPAN_ROWS


def token_diagonal_backward_into(dx: torch.Tensor, x: torch.Tensor, g: torch.Tensor, weight: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """dx += g w in place; returns (dw (H, C), dD (H,)), both fp32. dx, x (M, C) with unit channel stride (views of
    wider rows are fine), g (M, H) in x's dtype with unit head stride, weight (H, C) (cast to g's dtype for the
    product)."""
    M, C = x.shape
    H = g.shape[1]
    if dx.shape != x.shape or g.shape[0] != M or weight.shape != (H, C):
        raise ValueError(f"token diagonal backward: dx {tuple(dx.shape)}, x {tuple(x.shape)}, g {tuple(g.shape)} and "
                         f"weight {tuple(weight.shape)} do not fit (M, C), (M, C), (M, H), (H, C)")
    if any(t.stride(1) != 1 for t in (dx, x, g)):
        raise ValueError("token diagonal backward: dx, x and g need unit stride along their last dim")
    if M == 0:
        return weight.new_zeros((H, C), dtype=torch.float32), weight.new_zeros((H,), dtype=torch.float32)
    span = _spans(M, C, x.device)
    programs = cdiv(M, span)
    parts = torch.empty((programs, H * C + H), dtype=torch.float32, device=x.device)
    weight = weight.contiguous()
    _diag_bwd_kernel[lambda meta: (cdiv(C, meta["BLOCK_C"]), programs)](
        dx, dx.stride(0), x, x.stride(0), g, g.stride(0), weight, parts, M, C, H, span,
        DOT_PREC=dot_precision(x.dtype), BLOCK_H=max(16, next_power_of_2(H)))
    sums = parts.sum(0)
    return sums[:H * C].view(H, C), sums[H * C:]
