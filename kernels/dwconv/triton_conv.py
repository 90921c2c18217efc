"""The `triton` backend of the depthwise conv1d + SiLU, on channel-last tokens (no transposes).

Tiles of BLOCK_L tokens x BLOCK_C channels of one batch element; per tile, in fp32:

    forward:    pre = bias + sum_k w[:, k] x[l + k - left],  y = SiLU(pre) on the first silu_channels
    backward 1: recompute pre, dpre = dy SiLU'(pre) (dy elsewhere), SiLU'(p) = s (1 + p (1 - s));
                store dpre in x's dtype (the reference's backward under autocast rounds it so too);
                one program walks the tiles of a SEGMENT of tokens and keeps, from the fp32 dpre,
                dw[k] = sum_l dpre[l] x[l + k - left] and db = sum_l dpre[l] in registers, stored
                once per segment (the segments' sums are added by torch: no atomics, deterministic);
                its tiles span 256 channels per warp, so each thread holds all the tile's tokens of
                its channels and the sums over tokens need no other thread
    backward 2: dx[l] = sum_k w[:, k] dpre[l - k + left]

The tile shape is autotuned per (L, C, K, dtypes) from `conv_configs`; the segment is a multiple of
every tile length, so the partial sums have cdiv(L, SEGMENT) rows per batch element whichever tile ran,
and every launch writes all of them.

Registered as `hydra_vision::dwconv1d_silu` / `dwconv1d_silu_backward` with fake implementations,
so torch.compile captures it without graph breaks; plain eager calls take the cheaper autograd.Function
of `eager_path`.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import triton
import triton.language as tl

from ..backend import TRITON_DTYPES
from ..eager_path import FusedOp
from ..host_math import cdiv, next_power_of_2
from ..launcher import cached_launch
from ..quasiseparable.triton_config import interpreting

__all__ = ["conv_backward_into", "conv_configs", "depthwise_conv1d_silu_triton"]


def conv_configs() -> list[triton.Config]:
    """The tile shapes (BLOCK_L tokens, BLOCK_C channels) and warps the autotuner times."""
    tiles = [(32, 64, 4), (64, 64, 4), (32, 128, 4), (64, 128, 8), (16, 128, 4)]
    return [triton.Config({"BLOCK_L": bl, "BLOCK_C": bc}, num_warps=w) for bl, bc, w in tiles]


def _first_when_interpreting(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Every config on the GPU; in the interpreter only the first (no timing there)."""
    return configs[:1] if interpreting() else configs


def _autotune(configs: Callable[[], list[triton.Config]] = conv_configs, key: tuple[str, ...] = ("L", "C", "K")):
    """`triton.autotune` over `configs()`, per `key` and the tensors' dtypes (added by Triton)."""
    return triton.autotune(configs=configs(), key=list(key),
                           prune_configs_by={"early_config_prune": _first_when_interpreting})


def wgrad_configs() -> list[triton.Config]:
    """The weight-gradient kernel's tiles: BLOCK_C = 256 channels per warp, so that every thread holds all
    BLOCK_L tokens of its channels and the sums over tokens stay in its registers."""
    tiles = [(4, 256, 1, 1), (2, 256, 1, 1), (4, 512, 2, 1), (4, 256, 1, 3), (2, 256, 1, 3), (4, 512, 2, 3)]
    return [triton.Config({"BLOCK_L": bl, "BLOCK_C": bc}, num_warps=w, num_stages=s) for bl, bc, w, s in tiles]


SEGMENT = 512  # tokens per program of the weight-gradient kernel (a multiple of every BLOCK_L)


@triton.jit
def _pre_activation(x_b, s_xl, w, bias, ls, cs, cm, L, K: tl.constexpr, LEFT: tl.constexpr, HAS_BIAS: tl.constexpr,
                    BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    """[BLOCK_L, BLOCK_C] bias + sum_k w[c, k] x[l + k - LEFT, c] in fp32."""
    acc = tl.zeros([BLOCK_L, BLOCK_C], tl.float32)
    for k in tl.static_range(K):
        src = ls + (k - LEFT)
        m = ((src >= 0) & (src < L))[:, None] & cm[None, :]
        xv = tl.load(x_b + src[:, None] * s_xl + cs[None, :], mask=m, other=0.0).to(tl.float32)
        acc += xv * tl.load(w + cs * K + k, mask=cm, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(bias + cs, mask=cm, other=0.0).to(tl.float32)[None, :]
    return acc


@cached_launch
@_autotune()
@triton.jit
def _conv_fwd_kernel(x, s_xb, s_xl, w, bias, y, L, C, SILU_C, K: tl.constexpr, LEFT: tl.constexpr,
                     HAS_BIAS: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    pl, pc, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    ls = pl * BLOCK_L + tl.arange(0, BLOCK_L)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    pre = _pre_activation(x + b * s_xb, s_xl, w, bias, ls, cs, cm, L, K, LEFT, HAS_BIAS, BLOCK_L, BLOCK_C)
    out = tl.where((cs < SILU_C)[None, :], pre * tl.sigmoid(pre), pre)
    tl.store(y + b * L * C + ls[:, None] * C + cs[None, :], out.to(y.dtype.element_ty),
             mask=(ls < L)[:, None] & cm[None, :])


@cached_launch
@_autotune(wgrad_configs, ("L", "C", "K", "SEGMENT"))
@triton.jit
def _conv_bwd_pre_kernel(x, s_xb, s_xl, w, bias, dy, s_yb, s_yl, dpre, parts, L, C, SILU_C,
                         K: tl.constexpr, K_PAD: tl.constexpr, LEFT: tl.constexpr, HAS_BIAS: tl.constexpr,
                         SEGMENT: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr):
    seg, pc, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    x_b = x + b * s_xb
    ks = tl.arange(0, K_PAD)  # rows 0..K-1 of the sums: dw[k]; row K: db
    sums = tl.zeros([K_PAD, BLOCK_C], tl.float32)
    for l0 in range(seg * SEGMENT, tl.minimum(seg * SEGMENT + SEGMENT, L), BLOCK_L):
        ls = l0 + tl.arange(0, BLOCK_L)
        tile_m = (ls < L)[:, None] & cm[None, :]
        pre = _pre_activation(x_b, s_xl, w, bias, ls, cs, cm, L, K, LEFT, HAS_BIAS, BLOCK_L, BLOCK_C)
        g = tl.load(dy + b * s_yb + ls[:, None] * s_yl + cs[None, :], mask=tile_m, other=0.0).to(tl.float32)
        s = tl.sigmoid(pre)
        g = tl.where((cs < SILU_C)[None, :], g * s * (1.0 + pre * (1.0 - s)), g)
        tl.store(dpre + b * L * C + ls[:, None] * C + cs[None, :], g.to(dpre.dtype.element_ty), mask=tile_m)
        for k in tl.static_range(K):
            src = ls + (k - LEFT)
            m = ((src >= 0) & (src < L))[:, None] & cm[None, :]
            xv = tl.load(x_b + src[:, None] * s_xl + cs[None, :], mask=m, other=0.0).to(tl.float32)
            sums += tl.where(ks[:, None] == k, tl.sum(g * xv, axis=0)[None, :], 0.0)
        sums += tl.where(ks[:, None] == K, tl.sum(g, axis=0)[None, :], 0.0)
    row = b * tl.num_programs(0) + seg
    tl.store(parts + (row * (K + 1) + ks[:, None]) * C + cs[None, :], sums, mask=(ks <= K)[:, None] & cm[None, :])


@cached_launch
@_autotune()
@triton.jit
def _conv_bwd_dx_kernel(dpre, w, dx, s_dxb, s_dxl, L, C, K: tl.constexpr, LEFT: tl.constexpr, BLOCK_L: tl.constexpr,
                        BLOCK_C: tl.constexpr):
    pl, pc, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    ls = pl * BLOCK_L + tl.arange(0, BLOCK_L)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    acc = tl.zeros([BLOCK_L, BLOCK_C], tl.float32)
    for k in tl.static_range(K):
        src = ls - (k - LEFT)
        m = ((src >= 0) & (src < L))[:, None] & cm[None, :]
        g = tl.load(dpre + b * L * C + src[:, None] * C + cs[None, :], mask=m, other=0.0).to(tl.float32)
        acc += g * tl.load(w + cs * K + k, mask=cm, other=0.0).to(tl.float32)[None, :]
    tl.store(dx + b * s_dxb + ls[:, None] * s_dxl + cs[None, :], acc.to(dx.dtype.element_ty),
             mask=(ls < L)[:, None] & cm[None, :])


def _grid(x: torch.Tensor) -> Callable[[dict], tuple[int, int, int]]:
    """(token tiles, channel tiles, batch) of the config the autotuner launches."""
    B, L, C = x.shape
    return lambda meta: (cdiv(L, meta["BLOCK_L"]), cdiv(C, meta["BLOCK_C"]), B)


def _left(K: int, causal: bool) -> int:
    return K - 1 if causal else K // 2


def _conv_forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], causal: bool,
                  silu_channels: int) -> torch.Tensor:
    B, L, C = x.shape
    K = weight.shape[-1]
    y = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
    if y.numel():
        _conv_fwd_kernel[_grid(x)](x, x.stride(0), x.stride(1), weight, bias if bias is not None else weight, y, L, C,
                                   silu_channels, K=K, LEFT=_left(K, causal), HAS_BIAS=bias is not None)
    return y


def _conv_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   causal: bool, silu_channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return conv_backward_into(dy, x, weight, bias, causal, silu_channels, dx)


def conv_backward_into(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                       causal: bool, silu_channels: int,
                       dx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dw, db) of the conv, dx written into the given (B, L, C) tensor (unit channel stride; the fused
    layer passes a view of in_proj's gradient)."""
    B, L, C = x.shape
    K = weight.shape[-1]
    dy = dy if dy.stride(-1) == 1 else dy.contiguous()
    dpre = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
    segments = cdiv(L, SEGMENT)
    parts = torch.empty((B * segments, K + 1, C), dtype=torch.float32, device=x.device)  # all written
    if dx.numel():
        _conv_bwd_pre_kernel[lambda meta: (segments, cdiv(C, meta["BLOCK_C"]), B)](
            x, x.stride(0), x.stride(1), weight, bias if bias is not None else weight, dy, dy.stride(0),
            dy.stride(1), dpre, parts, L, C, silu_channels, K=K, K_PAD=next_power_of_2(K + 1),
            LEFT=_left(K, causal), HAS_BIAS=bias is not None, SEGMENT=SEGMENT)
        _conv_bwd_dx_kernel[_grid(x)](dpre, weight, dx, dx.stride(0), dx.stride(1), L, C, K=K, LEFT=_left(K, causal))
    dw = parts[:, :K].sum(0).t().contiguous().view(weight.shape).to(weight.dtype)  # contiguous, as the fake
    db = parts[:, K].sum(0).to(bias.dtype) if bias is not None else weight.new_empty(0)
    return dx, dw, db


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, causal, silu_channels = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.options = (causal, silu_channels)


def _conv_gradients(backward: Callable, ctx, dy):
    """The autograd formula around `backward` (the custom op, or `_conv_backward` on the eager path)."""
    x, weight, bias = ctx.saved_tensors
    dx, dw, db = backward(dy, x, weight, bias, *ctx.options)
    return dx, dw, None if bias is None else db, None, None


_CONV = FusedOp("dwconv1d_silu", _conv_forward, _conv_backward, _setup_context, _conv_gradients)


@_CONV.op.register_fake
def _conv_fake(x, weight, bias, causal, silu_channels):
    return x.new_empty(x.shape)


@_CONV.backward_op.register_fake
def _conv_backward_fake(dy, x, weight, bias, causal, silu_channels):
    return x.new_empty(x.shape), weight.new_empty(weight.shape), weight.new_empty(0 if bias is None else bias.shape)


def depthwise_conv1d_silu_triton(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], causal: bool,
                                 silu_channels: int) -> torch.Tensor:
    """The fused kernels; arguments and math as `depthwise_conv1d_silu_reference` (x in fp16/bf16/fp32,
    any batch and token strides; the channels are made unit-stride if they are not)."""
    if x.dtype not in TRITON_DTYPES:
        raise TypeError(f"the triton depthwise conv takes float16, bfloat16 or float32, got {x.dtype}")
    if x.stride(-1) != 1:
        x = x.contiguous()
    return _CONV(x, weight.contiguous(), bias, causal, int(silu_channels))
