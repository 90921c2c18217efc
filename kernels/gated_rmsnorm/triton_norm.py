"""The `triton` backend of the gated RMSNorm: one pass forward, one pass backward.

Per row (the last dim, D values), in fp32 whatever the input dtype:

    forward:   r = 1 / sqrt(mean(x^2) + eps),  xh = x r,  y = xh w silu(z)          (stores y and r)
    backward:  g = dy w silu(z),  dx = r (g - xh mean(g xh)),
               dz = dy xh w silu'(z),  silu'(z) = s (1 + z (1 - s)),  s = sigmoid(z),
               dw = sum over rows of dy xh silu(z)   (per-program partial sums, added by torch),
               and on request y again (the forward's bits, from the stored r), for a weight gradient
               that needs the output (the fused layer's out_proj)

so the forward keeps only x, z and r for the backward instead of PyTorch's fp32 intermediates.
The backward walks a block of rows per program and loads each next row while it computes the current one.
Registered as `hydra_vision::gated_rmsnorm` / `gated_rmsnorm_backward` with fake implementations,
so torch.compile captures it without graph breaks; plain eager calls take the cheaper autograd.Function
of `eager_path`.
"""
from collections.abc import Callable
from typing import Optional

import torch
import triton
import triton.language as tl

from ..backend import TRITON_DTYPES
from ..eager_path import FusedOp
from ..host_math import cdiv, next_power_of_2
from ..launcher import cached_launch
from ..layouts import dense
from ..row_blocks import as_rows, backward_programs, row_warps

__all__ = ["gated_rmsnorm_triton", "norm_backward_into"]

# ptxas's register cap for the backward that also writes y again (selective recompute): three 4-warp programs an SM
# instead of two, 184 -> 170 us at 128 x 196 tokens of width 1,536 and 241 -> 224 us at 8 x 4,096 (H100, RESULTS.md
# session 43; hydra_vit_base's 224 px step with selective recompute 73.87 -> 73.46 GPU ms, session 44). Without y
# the cap cost 1% there, so that launch stays uncapped.
STORE_Y_MAXNREG = 168


@cached_launch
@triton.jit
def _norm_fwd_kernel(x, s_x, z, s_z, w, y, rstd, M, D, eps, BLOCK_D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)
    cm = cols < D
    xv = tl.load(x + row * s_x + cols, mask=cm, other=0.0).to(tl.float32)
    zv = tl.load(z + row * s_z + cols, mask=cm, other=0.0).to(tl.float32)
    wv = tl.load(w + cols, mask=cm, other=0.0).to(tl.float32)
    r = 1.0 / tl.sqrt(tl.sum(xv * xv, axis=0) / D + eps)
    out = xv * r * wv * (zv * tl.sigmoid(zv))
    tl.store(y + row * D + cols, out.to(y.dtype.element_ty), mask=cm)
    tl.store(rstd + row, r)


@triton.jit
def _load_row(dy, s_dy, x, s_x, z, s_z, rstd, row, end, cols, cm):
    """(dy, x, z, r) of one row: three blocks of BLOCK_D values in their storage dtype (0 past D) and the row's
    rstd; all zeros for row >= end."""
    ok = row < end
    m = cm & ok
    return (tl.load(dy + row * s_dy + cols, mask=m, other=0.0), tl.load(x + row * s_x + cols, mask=m, other=0.0),
            tl.load(z + row * s_z + cols, mask=m, other=0.0), tl.load(rstd + row, mask=ok, other=0.0))


@triton.jit
def _bwd_row(dyv, xv, zv, r, wv, dx_row, dz_row, y_row, mask, D, STORE_Y: tl.constexpr):
    """One row in fp32: stores dx = r (g - xh mean(g xh)) at dx_row and dz = dy xh w silu'(z) at dz_row (pointer
    blocks, under mask), with xh = x r, g = dy w silu(z), and with STORE_Y the forward's y = xh w silu(z) at y_row;
    returns the row's dw term dy xh silu(z) (BLOCK_D values)."""
    dyv, xv, zv = dyv.to(tl.float32), xv.to(tl.float32), zv.to(tl.float32)
    s = tl.sigmoid(zv)
    xh = xv * r
    gate = zv * s
    if STORE_Y:  # the forward's product order, so the same bits
        tl.store(y_row, (xh * wv * gate).to(y_row.dtype.element_ty), mask=mask)
    g = dyv * wv * gate
    dxv = r * (g - xh * (tl.sum(g * xh, axis=0) / D))
    dzv = dyv * xh * wv * s * (1.0 + zv * (1.0 - s))
    tl.store(dx_row, dxv.to(dx_row.dtype.element_ty), mask=mask)
    tl.store(dz_row, dzv.to(dz_row.dtype.element_ty), mask=mask)
    return dyv * xh * gate


@cached_launch
@triton.jit
def _norm_bwd_kernel(dy, s_dy, x, s_x, z, s_z, w, rstd, dx, dz, s_dz, y, dw_part, M, D, ROWS_PER_PROG,
                     BLOCK_D: tl.constexpr, STORE_Y: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)
    cm = cols < D
    wv = tl.load(w + cols, mask=cm, other=0.0).to(tl.float32)
    dw_acc = tl.zeros([BLOCK_D], tl.float32)
    first = pid.to(tl.int64) * ROWS_PER_PROG
    end = tl.minimum(first + ROWS_PER_PROG, M)  # the last program's block may be short (or empty)
    dyv, xv, zv, r = _load_row(dy, s_dy, x, s_x, z, s_z, rstd, first, end, cols, cm)
    for i in range(ROWS_PER_PROG):
        row = first + i
        next_dy, next_x, next_z, next_r = _load_row(dy, s_dy, x, s_x, z, s_z, rstd, row + 1, end, cols, cm)
        dw_acc += _bwd_row(dyv, xv, zv, r, wv, dx + row * D + cols, dz + row * s_dz + cols, y + row * D + cols,
                           cm & (row < end), D, STORE_Y)
        dyv, xv, zv, r = next_dy, next_x, next_z, next_r
    tl.store(dw_part + pid * D + cols, dw_acc, mask=cm)


def _norm_forward(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor,
                  eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    x2, z2, (weight,) = as_rows(x), as_rows(z), dense(weight)
    M, D = x2.shape
    y = torch.empty((M, D), dtype=x.dtype, device=x.device)
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)
    if M:
        _norm_fwd_kernel[(M,)](x2, x2.stride(0), z2, z2.stride(0), weight, y, rstd, M, D, eps,
                               BLOCK_D=next_power_of_2(D), num_warps=row_warps(D))
    return y.view(x.shape), rstd


def _norm_backward(dy: torch.Tensor, x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor,
                   rstd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return norm_backward_into(dy, x, z, weight, rstd, torch.empty(z.shape, dtype=z.dtype, device=z.device))


def norm_backward_into(dy: torch.Tensor, x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, rstd: torch.Tensor,
                       dz: torch.Tensor, y: Optional[torch.Tensor] = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dz, dw) of the gated norm, dz written into the given tensor of z's shape (rows of unit stride that
    can be viewed as (M, D); the fused layer passes a view of in_proj's gradient). With y (contiguous, x's shape
    and dtype) the same pass writes the forward's output into it again, as `_norm_forward` would."""
    dy2, x2, z2, (weight,) = as_rows(dy), as_rows(x), as_rows(z), dense(weight)
    M, D = x2.shape
    dx = torch.empty((M, D), dtype=x.dtype, device=x.device)
    dz2 = dz.view(M, D)
    progs = backward_programs(M, x.device)
    # every program stores its row of partial sums; with no rows there is no launch, and the sum must be 0
    dw_part = (torch.empty if M else torch.zeros)((progs, D), dtype=torch.float32, device=x.device)
    if M:
        _norm_bwd_kernel[(progs,)](dy2, dy2.stride(0), x2, x2.stride(0), z2, z2.stride(0), weight, rstd, dx, dz2,
                                   dz2.stride(0), dx if y is None else y, dw_part, M, D, cdiv(M, progs),
                                   BLOCK_D=next_power_of_2(D), STORE_Y=y is not None, num_warps=row_warps(D),
                                   **({"maxnreg": STORE_Y_MAXNREG} if y is not None else {}))
    return dx.view(x.shape), dz, dw_part.sum(0).to(weight.dtype)


def _setup_context(ctx, inputs, output) -> None:
    x, z, weight, _ = inputs
    ctx.save_for_backward(x, z, weight, output[1])


def _norm_gradients(backward: Callable, ctx, dy, _drstd):
    """The autograd formula around `backward` (the custom op, or `_norm_backward` on the eager path)."""
    x, z, weight, rstd = ctx.saved_tensors
    dx, dz, dw = backward(dy, x, z, weight, rstd)
    return dx, dz, dw, None


_NORM = FusedOp("gated_rmsnorm", _norm_forward, _norm_backward, _setup_context, _norm_gradients)


@_NORM.op.register_fake
def _norm_fake(x, z, weight, eps):
    return x.new_empty(x.shape), x.new_empty(x.shape[:-1].numel(), dtype=torch.float32)


@_NORM.backward_op.register_fake
def _norm_backward_fake(dy, x, z, weight, rstd):
    return x.new_empty(x.shape), z.new_empty(z.shape), weight.new_empty(weight.shape)


def gated_rmsnorm_triton(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The fused kernel; arguments and math as `gated_rmsnorm_reference` (x, z in fp16/bf16/fp32)."""
    if x.dtype not in TRITON_DTYPES:
        raise TypeError(f"the triton gated RMSNorm takes float16, bfloat16 or float32, got {x.dtype}")
    y, _ = _NORM(x, z.to(x.dtype), weight, float(eps))
    return y
