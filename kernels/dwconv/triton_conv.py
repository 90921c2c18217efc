"""The `triton` backend of the depthwise conv1d + SiLU, on channel-last tokens (no transposes).

In fp32 registers, with w taken taps first (K, C) so that one tap of a channel block is one load:

    forward:    pre = bias + sum_k w[k] x[l + k - left],  y = SiLU(pre) on the first silu_channels
    backward 1: recompute pre, dpre = dy SiLU'(pre) (dy elsewhere), SiLU'(p) = s (1 + p (1 - s));
                store dpre in x's dtype (as PyTorch's autograd keeps that gradient) and accumulate
                dw[k] = sum_l dpre[l] x[l + k - left], db = sum_l dpre[l]
    backward 2: dx[l] = sum_k w[k] dpre[l - k + left]

Forward and backward 2 run one BLOCK_L x BLOCK_C tile per program (2,048 elements, 8 warps).
Backward 1 runs one program per (batch, span of L, channel block) and loops over the span's tiles:
one [K_POW2, BLOCK_L, BLOCK_C] load of the K shifted windows of x serves both pre and dw, and dw/db
stay per-thread partial sums in registers, reduced over l once per program (no shuffles or barriers
in the loop). The span is the whole sequence when batch x channel blocks fill the GPU, else L is
split so that about BWD_PROGRAMS programs run (batch 1 at L = 65,536 too); torch sums the
(programs, K + 1, C) fp32 partials in a fixed order: deterministic, no atomics.

DRAM bytes per element of the backward (Hydra-ViT-B: B = 128, L = 197, C = 1,664, K = 7, bf16):
x 2 + dy 2 + dpre 2 (kernel 1), dpre 2 + dx 2 (kernel 2), (K + 1) 4 / L = 0.16 of partials written
and summed -> 10.3 B, 433 MB. The previous design wrote dpre in fp32 and one partial row per 32-token tile
(zeroed, written, summed: 3 x 1.14 B): 17.4 B, 731 MB, and reduced every tile across threads.

Registered as `hydra_vision::dwconv1d_silu` / `dwconv1d_silu_backward` with fake implementations,
so torch.compile captures it without graph breaks.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ..backend import TRITON_DTYPES

__all__ = ["depthwise_conv1d_silu_triton"]

TILE, TILE_WARPS = 2048, 8  # forward and dx: BLOCK_L x BLOCK_C = 2048 elements, 8 per thread
BWD_TILE, BWD_WARPS = 1024, 4  # dpre + dw/db: 8 elements per thread, each with K_POW2 fp32 partials of dw
BWD_PROGRAMS = 1024  # backward programs to aim for: several per SM of an H100 (132 SMs)


@triton.jit
def _conv_fwd_kernel(x, s_xb, s_xl, w, bias, y, L, C, SILU_C, K: tl.constexpr, LEFT: tl.constexpr,
                     HAS_BIAS: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    pid, pc = tl.program_id(0), tl.program_id(1)
    n_tiles = tl.cdiv(L, BLOCK_L)
    b = (pid // n_tiles).to(tl.int64)
    ls = (pid % n_tiles) * BLOCK_L + tl.arange(0, BLOCK_L)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    pre = tl.zeros([BLOCK_L, BLOCK_C], tl.float32)
    for k in tl.static_range(K):
        src = ls + (k - LEFT)
        m = ((src >= 0) & (src < L))[:, None] & cm[None, :]
        xv = tl.load(x + b * s_xb + src[:, None] * s_xl + cs[None, :], mask=m, other=0.0).to(tl.float32)
        pre += xv * tl.load(w + k * C + cs, mask=cm, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        pre += tl.load(bias + cs, mask=cm, other=0.0).to(tl.float32)[None, :]
    out = tl.where((cs < SILU_C)[None, :], pre * tl.sigmoid(pre), pre)
    tl.store(y + b * L * C + ls[:, None] * C + cs[None, :], out.to(y.dtype.element_ty),
             mask=(ls < L)[:, None] & cm[None, :])


@triton.jit
def _conv_bwd_pre_kernel(x, s_xb, s_xl, w, bias, dy, s_yb, s_yl, dpre, parts, L, C, SILU_C, SPAN,
                         K: tl.constexpr, K_POW2: tl.constexpr, LEFT: tl.constexpr, HAS_BIAS: tl.constexpr,
                         BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    pid, pc = tl.program_id(0), tl.program_id(1)
    n_spans = tl.cdiv(L, SPAN)
    b = (pid // n_spans).to(tl.int64)
    start = (pid % n_spans) * SPAN
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    ks = tl.arange(0, K_POW2)
    x_b = x + b * s_xb
    wk = tl.load(w + ks[:, None] * C + cs[None, :], mask=(ks < K)[:, None] & cm[None, :], other=0.0).to(tl.float32)
    bk = tl.zeros([BLOCK_C], tl.float32)
    if HAS_BIAS:
        bk = tl.load(bias + cs, mask=cm, other=0.0).to(tl.float32)
    dw = tl.zeros([K_POW2, BLOCK_L, BLOCK_C], tl.float32)  # per-thread partial sums: reduced over l once, at the end
    db = tl.zeros([BLOCK_L, BLOCK_C], tl.float32)
    for l0 in range(start, tl.minimum(start + SPAN, L), BLOCK_L):
        ls = l0 + tl.arange(0, BLOCK_L)
        tile_m = (ls < L)[:, None] & cm[None, :]
        src = ls[None, :] + ks[:, None] - LEFT  # [K_POW2, BLOCK_L]
        m = ((src >= 0) & (src < L) & (ks < K)[:, None])[:, :, None] & cm[None, None, :]
        xw = tl.load(x_b + src[:, :, None] * s_xl + cs[None, None, :], mask=m, other=0.0).to(tl.float32)
        pre = tl.sum(xw * wk[:, None, :], axis=0) + bk[None, :]  # [BLOCK_L, BLOCK_C]
        g = tl.load(dy + b * s_yb + ls[:, None] * s_yl + cs[None, :], mask=tile_m, other=0.0).to(tl.float32)
        s = tl.sigmoid(pre)
        g = tl.where((cs < SILU_C)[None, :], g * s * (1.0 + pre * (1.0 - s)), g)
        tl.store(dpre + b * L * C + ls[:, None] * C + cs[None, :], g.to(dpre.dtype.element_ty), mask=tile_m)
        dw += xw * g[None, :, :]
        db += g
    part = parts + pid.to(tl.int64) * (K + 1) * C
    tl.store(part + ks[:, None] * C + cs[None, :], tl.sum(dw, axis=1), mask=(ks < K)[:, None] & cm[None, :])
    tl.store(part + K * C + cs, tl.sum(db, axis=0), mask=cm)


@triton.jit
def _conv_bwd_dx_kernel(dpre, w, dx, L, C, K: tl.constexpr, LEFT: tl.constexpr, BLOCK_L: tl.constexpr,
                        BLOCK_C: tl.constexpr):
    pid, pc = tl.program_id(0), tl.program_id(1)
    n_tiles = tl.cdiv(L, BLOCK_L)
    b = (pid // n_tiles).to(tl.int64)
    ls = (pid % n_tiles) * BLOCK_L + tl.arange(0, BLOCK_L)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    acc = tl.zeros([BLOCK_L, BLOCK_C], tl.float32)
    for k in tl.static_range(K):
        src = ls - (k - LEFT)
        m = ((src >= 0) & (src < L))[:, None] & cm[None, :]
        g = tl.load(dpre + b * L * C + src[:, None] * C + cs[None, :], mask=m, other=0.0).to(tl.float32)
        acc += g * tl.load(w + k * C + cs, mask=cm, other=0.0).to(tl.float32)[None, :]
    tl.store(dx + b * L * C + ls[:, None] * C + cs[None, :], acc.to(dx.dtype.element_ty),
             mask=(ls < L)[:, None] & cm[None, :])


def _block_c(C: int) -> int:
    """The widest channel block (128 or 64) that pads C by at most 1/8, else 32 or less for narrow C."""
    for block_c in (128, 64):
        if triton.cdiv(C, block_c) * block_c * 8 <= 9 * C:
            return block_c
    return max(16, min(32, triton.next_power_of_2(C)))


def _span(B: int, L: int, n_c: int, block_l: int) -> int:
    """Tokens per backward program (a multiple of block_l): the whole sequence when B x n_c programs
    fill the GPU, else split so that about BWD_PROGRAMS run (long L at batch 1 spreads over the SMs)."""
    n_tiles = triton.cdiv(L, block_l)
    n_spans = min(n_tiles, triton.cdiv(BWD_PROGRAMS, B * n_c))
    return triton.cdiv(n_tiles, n_spans) * block_l


def _taps_first(weight: torch.Tensor) -> torch.Tensor:
    """(C, 1, K) -> (K, C), so that one tap of a channel block is one contiguous load."""
    return weight.reshape(weight.shape[0], -1).t().contiguous()


def _left(K: int, causal: bool) -> int:
    return K - 1 if causal else K // 2


@torch.library.custom_op("hydra_vision::dwconv1d_silu", mutates_args=())
def _conv_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], causal: bool,
             silu_channels: int) -> torch.Tensor:
    B, L, C = x.shape
    K = weight.shape[-1]
    y = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
    if y.numel():
        block_c = _block_c(C)
        block_l = TILE // block_c
        _conv_fwd_kernel[(B * triton.cdiv(L, block_l), triton.cdiv(C, block_c))](
            x, x.stride(0), x.stride(1), _taps_first(weight), bias if bias is not None else weight, y, L, C,
            silu_channels, K=K, LEFT=_left(K, causal), HAS_BIAS=bias is not None, BLOCK_L=block_l, BLOCK_C=block_c,
            num_warps=TILE_WARPS)
    return y


@_conv_op.register_fake
def _conv_fake(x, weight, bias, causal, silu_channels):
    return x.new_empty(x.shape)


@torch.library.custom_op("hydra_vision::dwconv1d_silu_backward", mutates_args=())
def _conv_backward_op(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                      causal: bool, silu_channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, L, C = x.shape
    K = weight.shape[-1]
    dy = dy if dy.stride(-1) == 1 else dy.contiguous()
    dx = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
    if dx.numel():
        w_kc = _taps_first(weight)
        block_c = _block_c(C)
        n_c = triton.cdiv(C, block_c)
        block_l = BWD_TILE // block_c
        span = _span(B, L, n_c, block_l)
        dpre = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
        parts = torch.empty((B * triton.cdiv(L, span), K + 1, C), dtype=torch.float32, device=x.device)
        _conv_bwd_pre_kernel[(parts.shape[0], n_c)](
            x, x.stride(0), x.stride(1), w_kc, bias if bias is not None else weight, dy, dy.stride(0), dy.stride(1),
            dpre, parts, L, C, silu_channels, span, K=K, K_POW2=triton.next_power_of_2(K), LEFT=_left(K, causal),
            HAS_BIAS=bias is not None, BLOCK_L=block_l, BLOCK_C=block_c, num_warps=BWD_WARPS)
        block_l = TILE // block_c
        _conv_bwd_dx_kernel[(B * triton.cdiv(L, block_l), n_c)](
            dpre, w_kc, dx, L, C, K=K, LEFT=_left(K, causal), BLOCK_L=block_l, BLOCK_C=block_c, num_warps=TILE_WARPS)
    else:
        parts = torch.zeros((1, K + 1, C), dtype=torch.float32, device=x.device)
    dw = parts[:, :K].sum(0).t().reshape(weight.shape).to(weight.dtype)
    db = parts[:, K].sum(0).to(bias.dtype) if bias is not None else weight.new_empty(0)
    return dx, dw, db


@_conv_backward_op.register_fake
def _conv_backward_fake(dy, x, weight, bias, causal, silu_channels):
    return x.new_empty(x.shape), weight.new_empty(weight.shape), weight.new_empty(0 if bias is None else bias.shape)


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, causal, silu_channels = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.options = (causal, silu_channels)


def _conv_autograd(ctx, dy):
    x, weight, bias = ctx.saved_tensors
    dx, dw, db = _conv_backward_op(dy, x, weight, bias, *ctx.options)
    return dx, dw, None if bias is None else db, None, None


_conv_op.register_autograd(_conv_autograd, setup_context=_setup_context)


def depthwise_conv1d_silu_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], causal: bool,
                                 silu_channels: int) -> torch.Tensor:
    """The fused kernels; arguments and math as `depthwise_conv1d_silu_reference` (x in fp16/bf16/fp32,
    any batch and token strides; the channels are made unit-stride if they are not)."""
    if x.dtype not in TRITON_DTYPES:
        raise TypeError(f"the triton depthwise conv takes float16, bfloat16 or float32, got {x.dtype}")
    if x.stride(-1) != 1:
        x = x.contiguous()
    return torch.ops.hydra_vision.dwconv1d_silu(x, weight.contiguous(), bias, causal, int(silu_channels))
