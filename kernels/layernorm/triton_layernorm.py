"""The `triton` backend of the LayerNorm: one pass forward, one pass backward, fp32 inside.

Per row (the last dim, D values), with xh = (x - mu) r, r = 1 / sqrt(var + eps):

    forward:   y = xh w + b in out_dtype                       (stores y, mu and r)
    backward:  g = dy w,  dx = r (g - mean(g) - xh mean(g xh)) [+ dres]  in x's dtype,
               dw = sum over rows of dy xh,  db = sum over rows of dy   (per-program partial sums, added by torch)

dres is the gradient x gets from elsewhere, e.g. a block's residual branch: added in fp32 before dx's one
rounding (`layer_norm_with_shortcut`), it saves the separate addition autograd would launch.

The output dtype is an argument: under autocast the model asks for the autocast dtype, so the block's
input (the bf16 residual stream) is read once and the matmul's bf16 input written once, with no fp32
copies on either side as F.layer_norm under autocast makes; the backward likewise reads the bf16
gradient and writes x's dtype. Registered as `hydra_vision::layer_norm` / `layer_norm_backward` with
fake implementations; plain eager calls take the cheaper autograd.Function of `eager_path`.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from ..backend import TRITON_DTYPES
from ..eager_path import FusedOp
from ..host_math import cdiv, next_power_of_2
from ..launcher import cached_launch
from ..layouts import dense
from ..row_blocks import as_rows, backward_programs, row_warps

__all__ = ["layer_norm_triton", "layer_norm_with_shortcut_triton"]


@cached_launch
@triton.jit
def _ln_fwd_kernel(x, s_x, w, b, y, mean, rstd, M, D, eps, HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)
    cm = cols < D
    xv = tl.load(x + row * s_x + cols, mask=cm, other=0.0).to(tl.float32)
    mu = tl.sum(xv, axis=0) / D
    xc = tl.where(cm, xv - mu, 0.0)
    r = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=0) / D + eps)
    out = xc * r * tl.load(w + cols, mask=cm, other=0.0).to(tl.float32)
    if HAS_BIAS:
        out += tl.load(b + cols, mask=cm, other=0.0).to(tl.float32)
    tl.store(y + row * D + cols, out.to(y.dtype.element_ty), mask=cm)
    tl.store(mean + row, mu)
    tl.store(rstd + row, r)


@cached_launch
@triton.jit
def _ln_bwd_kernel(dy, s_dy, x, s_x, w, mean, rstd, dres, s_dres, dx, dw_part, db_part, M, D, ROWS_PER_PROG,
                   HAS_RES: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)
    cm = cols < D
    wv = tl.load(w + cols, mask=cm, other=0.0).to(tl.float32)
    dw_acc = tl.zeros([BLOCK_D], tl.float32)
    db_acc = tl.zeros([BLOCK_D], tl.float32)
    first = pid.to(tl.int64) * ROWS_PER_PROG
    for i in range(0, ROWS_PER_PROG):
        row = first + i
        ok = row < M
        m = cm & ok
        xv = tl.load(x + row * s_x + cols, mask=m, other=0.0).to(tl.float32)
        dyv = tl.load(dy + row * s_dy + cols, mask=m, other=0.0).to(tl.float32)
        mu = tl.load(mean + row, mask=ok, other=0.0)
        r = tl.load(rstd + row, mask=ok, other=0.0)
        xh = tl.where(m, (xv - mu) * r, 0.0)
        g = dyv * wv
        dxv = r * (g - tl.sum(g, axis=0) / D - xh * (tl.sum(g * xh, axis=0) / D))
        if HAS_RES:
            dxv += tl.load(dres + row * s_dres + cols, mask=m, other=0.0).to(tl.float32)
        dw_acc += dyv * xh
        db_acc += dyv
        tl.store(dx + row * D + cols, dxv.to(dx.dtype.element_ty), mask=m)
    tl.store(dw_part + pid * D + cols, dw_acc, mask=cm)
    tl.store(db_part + pid * D + cols, db_acc, mask=cm)


def _ln_forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
                out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x2, (weight, bias) = as_rows(x), dense(weight, bias)
    M, D = x2.shape
    y = torch.empty((M, D), dtype=out_dtype, device=x.device)
    mean = torch.empty(M, dtype=torch.float32, device=x.device)
    rstd = torch.empty(M, dtype=torch.float32, device=x.device)
    if M:
        _ln_fwd_kernel[(M,)](x2, x2.stride(0), weight, weight if bias is None else bias, y, mean, rstd, M, D, eps,
                             HAS_BIAS=bias is not None, BLOCK_D=next_power_of_2(D), num_warps=row_warps(D))
    return y.view(x.shape), mean, rstd


def _ln_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 mean: torch.Tensor, rstd: torch.Tensor,
                 dres: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dy2, x2, (weight, bias) = as_rows(dy), as_rows(x), dense(weight, bias)
    dres2 = dy2 if dres is None else as_rows(dres)
    M, D = x2.shape
    dx = torch.empty((M, D), dtype=x.dtype, device=x.device)
    progs = backward_programs(M, x.device)
    # every program stores its rows of partial sums; with no rows there is no launch, and the sums must be 0
    dw_part, db_part = (torch.empty if M else torch.zeros)((2, progs, D), dtype=torch.float32, device=x.device)
    if M:
        _ln_bwd_kernel[(progs,)](dy2, dy2.stride(0), x2, x2.stride(0), weight, mean, rstd, dres2, dres2.stride(0), dx,
                                 dw_part, db_part, M, D, cdiv(M, progs), HAS_RES=dres is not None,
                                 BLOCK_D=next_power_of_2(D), num_warps=row_warps(D))
    db = db_part.sum(0).to(bias.dtype) if bias is not None else weight.new_empty(0)
    return dx.view(x.shape), dw_part.sum(0).to(weight.dtype), db


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, _, _ = inputs
    ctx.save_for_backward(x, weight, bias, output[1], output[2])


def _ln_gradients(backward: Callable, ctx, dy, _dmean, _drstd):
    """The autograd formula around `backward` (the custom op, or `_ln_backward` on the eager path)."""
    x, weight, bias, mean, rstd = ctx.saved_tensors
    dx, dw, db = backward(dy, x, weight, bias, mean, rstd)
    return dx, dw, None if bias is None else db, None, None


_LN = FusedOp("layer_norm", _ln_forward, _ln_backward, _setup_context, _ln_gradients)


@_LN.op.register_fake
def _ln_fake(x, weight, bias, eps, out_dtype):
    rows = x.shape[:-1].numel()
    return (x.new_empty(x.shape, dtype=out_dtype), x.new_empty(rows, dtype=torch.float32),
            x.new_empty(rows, dtype=torch.float32))


@_LN.backward_op.register_fake
def _ln_backward_fake(dy, x, weight, bias, mean, rstd, dres=None):
    return x.new_empty(x.shape), weight.new_empty(weight.shape), weight.new_empty(0 if bias is None else bias.shape)


class _LayerNormWithShortcut(torch.autograd.Function):
    """(y, x) = (LayerNorm(x), x) as one node (eager only): x's two gradients meet in the backward kernel,
    dx = LN'(dy) + dres, where autograd would add the shortcut's gradient dres in a pass of its own."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps, out_dtype):
        y, mean, rstd = _ln_forward(x, weight, bias, eps, out_dtype)
        _setup_context(ctx, (x, weight, bias, eps, out_dtype), (y, mean, rstd))
        ctx.set_materialize_grads(False)
        return y, x  # x as returned is a view of the input whose gradient reaches backward as dres

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dres):
        if dy is None:
            return dres, None, None, None, None
        return _ln_gradients(functools.partial(_ln_backward, dres=dres), ctx, dy, None, None)


def _check_dtypes(x: torch.Tensor, out_dtype: torch.dtype) -> None:
    if x.dtype not in TRITON_DTYPES or out_dtype not in TRITON_DTYPES:
        raise TypeError(f"the triton LayerNorm takes and gives float16, bfloat16 or float32, got {x.dtype} -> "
                        f"{out_dtype}")


def layer_norm_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
                      out_dtype: torch.dtype) -> torch.Tensor:
    """The fused kernels; arguments and math as `layer_norm_reference` (x in fp16/bf16/fp32)."""
    _check_dtypes(x, out_dtype)
    y, _, _ = _LN(x, weight, bias, float(eps), out_dtype)
    return y


def layer_norm_with_shortcut_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
                                    out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(`layer_norm_triton`(x, ...), x) as one eager autograd node (`_LayerNormWithShortcut`)."""
    _check_dtypes(x, out_dtype)
    return _LayerNormWithShortcut.apply(x, weight, bias, float(eps), out_dtype)
