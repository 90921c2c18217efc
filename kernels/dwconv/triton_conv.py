"""The `triton` backend of the depthwise conv1d + SiLU, on channel-last tokens (no transposes).

Each program walks a run of tokens of BLOCK_C channels of one batch element, token by token, in fp32,
keeping the K rows of its window in registers (a rolling tuple: each token loads one new row, loaded
FORWARD_AHEAD tokens ahead in the forward and one token ahead in the backward):

    forward:  pre[l] = bias + sum_k w[k] x[l + k - left],  y[l] = SiLU(pre[l]) on the first silu_channels
    backward: one kernel, per SEGMENT of tokens: recompute pre[m] and dpre[m] = dy[m] SiLU'(pre[m]) (dy
              elsewhere), SiLU'(p) = s (1 + p (1 - s)); keep the last K dpre rows and write
              dx[m - left] = sum_k w[k] dpre[m - k] one row behind; sum dw[k] = sum_m dpre[m] x[m + k - left]
              and db = sum_m dpre[m] in registers over the segment's own tokens, stored once per segment
              (added by torch: no atomics, deterministic). The K - 1 halo rows of dpre that dx needs from the
              neighbouring segments are recomputed, so dpre never goes to memory.

The forward's loop takes K tokens a step, unrolled, so its window never moves between registers; its runs
are STEPS * K tokens, autotuned with the channel tile. The backward's loop takes BACKWARD_UNROLL = 2 tokens a
step, so its rolling tuples move between registers once per two tokens (152 registers, 13-15% faster than one
token a step); three tokens, K tokens and loading rows ahead all ran slower (RESULTS.md, sessions 21, 36, 37).
Its segment is fixed, so that the partial sums have cdiv(L, SEGMENT) rows per batch element whichever channel
tile ran.

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
from ..host_math import cdiv
from ..launcher import cached_launch
from ..layouts import dense, unit_channel_stride
from ..quasiseparable.triton_config import first_config_when_interpreting

__all__ = ["backward_configs", "conv_backward_into", "depthwise_conv1d_silu_triton", "forward_configs"]

SEGMENT = 64  # tokens per backward program, which walks SEGMENT + K - 1 of them (the halo of dx)
FORWARD_AHEAD = 3  # rows of x the forward loads ahead of the token it computes
BACKWARD_UNROLL = 2  # tokens a step of the backward's loop


def forward_configs() -> list[triton.Config]:
    """Runs of STEPS * K tokens x BLOCK_C channels (4 or 2 channels a thread) and warps, timed by the autotuner."""
    tiles = [(128, 1), (256, 2), (256, 1)]
    return [triton.Config({"STEPS": steps, "BLOCK_C": bc}, num_warps=w) for steps in (5, 9) for bc, w in tiles]


def backward_configs() -> list[triton.Config]:
    """Channel tiles of the backward, 4 channels a thread (8 would spill: the window, the dpre rows, the taps and
    the weight sums are 4 K + 1 registers a channel)."""
    return [triton.Config({"BLOCK_C": bc}, num_warps=w) for bc, w in [(128, 1), (256, 2), (512, 4)]]


def _autotune(configs: Callable[[], list[triton.Config]], key: tuple[str, ...]):
    """`triton.autotune` over `configs()`, per `key` and the tensors' dtypes (added by Triton)."""
    return triton.autotune(configs=configs(), key=list(key),
                           prune_configs_by={"early_config_prune": first_config_when_interpreting})


@triton.jit
def _row(ptr, l, stride, L, cs, cm):
    """Row l of a tile of channels cs (mask cm): [BLOCK_C] in fp32, zero outside 0 <= l < L."""
    return tl.load(ptr + l * stride + cs, mask=cm & (l >= 0) & (l < L), other=0.0).to(tl.float32)


@triton.jit
def _window(ptr, first, stride, L, cs, cm, N: tl.constexpr):
    """Rows first .. first + N - 1 (`_row`), a tuple of N."""
    rows = ()
    for i in tl.static_range(N):
        rows = rows + (_row(ptr, first + i, stride, L, cs, cm),)
    return rows


@triton.jit
def _taps(w, cs, cm, K: tl.constexpr):
    """The weight's K columns w[c, k] of weight (C, 1, K), a tuple of [BLOCK_C] in fp32."""
    ws = ()
    for k in tl.static_range(K):
        ws = ws + (tl.load(w + cs * K + k, mask=cm, other=0.0).to(tl.float32),)
    return ws


@triton.jit
def _bias(bias, cs, cm, HAS_BIAS: tl.constexpr, BLOCK_C: tl.constexpr):
    """[BLOCK_C] fp32 bias, zero without one."""
    b0 = tl.zeros([BLOCK_C], tl.float32)
    if HAS_BIAS:
        b0 += tl.load(bias + cs, mask=cm, other=0.0).to(tl.float32)
    return b0


@triton.jit
def _zeros(N: tl.constexpr, BLOCK_C: tl.constexpr):
    """A tuple of N [BLOCK_C] fp32 zeros."""
    rows = ()
    for _ in tl.static_range(N):
        rows = rows + (tl.zeros([BLOCK_C], tl.float32),)
    return rows


@triton.jit
def _dot(acc, ws, vs, N: tl.constexpr, REVERSED: tl.constexpr):
    """acc + sum_i ws[i] vs[i], or ws[i] vs[N - 1 - i] when REVERSED."""
    for i in tl.static_range(N):
        if REVERSED:
            acc += ws[i] * vs[N - 1 - i]
        else:
            acc += ws[i] * vs[i]
    return acc


@triton.jit
def _accumulate(sums, g, rows, N: tl.constexpr):
    """(sums[i] + g rows[i] for i < N)."""
    out = ()
    for i in tl.static_range(N):
        out = out + (sums[i] + g * rows[i],)
    return out


@cached_launch
@_autotune(forward_configs, ("L", "C", "K"))
@triton.jit
def _conv_fwd_kernel(x, s_xb, s_xl, w, bias, y, L, C, SILU_C, K: tl.constexpr, LEFT: tl.constexpr,
                     HAS_BIAS: tl.constexpr, AHEAD: tl.constexpr, STEPS: tl.constexpr, BLOCK_C: tl.constexpr):
    run, pc, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    x_b, y_b = x + b * s_xb, y + b * L * C
    ws = _taps(w, cs, cm, K)
    b0 = _bias(bias, cs, cm, HAS_BIAS, BLOCK_C)
    silu = cs < SILU_C
    start = run * (STEPS * K)
    xs = _window(x_b, start - LEFT, s_xl, L, cs, cm, K - 1)  # token start's window but its last row
    ahead = _window(x_b, start - LEFT + K - 1, s_xl, L, cs, cm, AHEAD)  # rows l - LEFT + K - 1 + i
    for l0 in range(start, tl.minimum(start + STEPS * K, L), K):
        for j in tl.static_range(K):
            window = xs + ahead[:1]  # rows l - LEFT .. l - LEFT + K - 1 of token l = l0 + j
            ahead = ahead[1:] + (_row(x_b, l0 + j + K - LEFT + AHEAD - 1, s_xl, L, cs, cm),)
            pre = _dot(b0, ws, window, K, False)
            out = tl.where(silu, pre * tl.sigmoid(pre), pre)
            tl.store(y_b + (l0 + j) * C + cs, out.to(y.dtype.element_ty), mask=cm & (l0 + j < L))
            xs = window[1:]


@cached_launch
@_autotune(backward_configs, ("L", "C", "K", "SEGMENT"))
@triton.jit
def _conv_bwd_kernel(x, s_xb, s_xl, w, bias, dy, s_yb, s_yl, dx, s_dxb, s_dxl, parts, L, C, SILU_C,
                     K: tl.constexpr, LEFT: tl.constexpr, HAS_BIAS: tl.constexpr, SEGMENT: tl.constexpr,
                     UNROLL: tl.constexpr, BLOCK_C: tl.constexpr):
    seg, pc, b = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = cs < C
    x_b, dy_b, dx_b = x + b * s_xb, dy + b * s_yb, dx + b * s_dxb
    ws = _taps(w, cs, cm, K)
    b0 = _bias(bias, cs, cm, HAS_BIAS, BLOCK_C)
    silu = cs < SILU_C
    start = seg * SEGMENT
    end = tl.minimum(start + SEGMENT, L)
    first = start + LEFT - (K - 1)  # the first dpre row that dx[start] reads
    xs = _window(x_b, first - LEFT, s_xl, L, cs, cm, K - 1)
    x_ahead = _row(x_b, first - LEFT + K - 1, s_xl, L, cs, cm)
    g_ahead = _row(dy_b, first, s_yl, L, cs, cm)
    gs = _zeros(K - 1, BLOCK_C)  # dpre rows m - K + 1 .. m - 1; those before `first` reach no stored dx
    dws = _zeros(K, BLOCK_C)
    db = tl.zeros([BLOCK_C], tl.float32)
    for m0 in range(first, end + LEFT, UNROLL):  # the last step may run past end + LEFT: masked
        for j in tl.static_range(UNROLL):
            m = m0 + j
            window = xs + (x_ahead,)  # rows m - LEFT .. m - LEFT + K - 1
            x_ahead = _row(x_b, m + K - LEFT, s_xl, L, cs, cm)
            g = g_ahead
            g_ahead = _row(dy_b, m + 1, s_yl, L, cs, cm)
            pre = _dot(b0, ws, window, K, False)
            s = tl.sigmoid(pre)
            g = tl.where(silu, g * s * (1.0 + pre * (1.0 - s)), g)  # dpre[m]
            own = tl.where((m >= start) & (m < end), g, 0.0)  # the segment's own tokens
            dws = _accumulate(dws, own, window, K)
            db += own
            gs = gs + (g,)  # dpre[m - K + 1 .. m]: dx[m - LEFT] = sum_k w[k] dpre[m - k]
            dxv = _dot(ws[0] * gs[K - 1], ws[1:], gs[:K - 1], K - 1, True)
            l = m - LEFT
            tl.store(dx_b + l * s_dxl + cs, dxv.to(dx.dtype.element_ty), mask=cm & (l >= start) & (l < end))
            gs = gs[1:]
            xs = window[1:]
    row = (b * tl.num_programs(0) + seg) * (K + 1)
    for k in tl.static_range(K):
        tl.store(parts + (row + k) * C + cs, dws[k], mask=cm)
    tl.store(parts + (row + K) * C + cs, db, mask=cm)


def _left(K: int, causal: bool) -> int:
    return K - 1 if causal else K // 2


def _conv_forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], causal: bool,
                  silu_channels: int) -> torch.Tensor:
    x, (weight, bias) = unit_channel_stride(x), dense(weight, bias)
    B, L, C = x.shape
    K = weight.shape[-1]
    y = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
    if y.numel():
        _conv_fwd_kernel[lambda meta: (cdiv(L, meta["STEPS"] * K), cdiv(C, meta["BLOCK_C"]), B)](
            x, x.stride(0), x.stride(1), weight, bias if bias is not None else weight, y, L, C, silu_channels, K=K,
            LEFT=_left(K, causal), HAS_BIAS=bias is not None, AHEAD=FORWARD_AHEAD)
    return y


def _conv_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   causal: bool, silu_channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return conv_backward_into(dy, x, weight, bias, causal, silu_channels, dx)


def _partial_sums(rows: int, K: int, C: int, device: torch.device) -> torch.Tensor:
    """(rows, K + 1, C) fp32 for the backward's per-segment dw (K rows) and db; every launch writes all of it."""
    return torch.empty((rows, K + 1, C), dtype=torch.float32, device=device)


def conv_backward_into(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                       causal: bool, silu_channels: int,
                       dx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dw, db) of the conv, dx written into the given (B, L, C) tensor (unit channel stride; the fused
    layer passes a view of in_proj's gradient)."""
    x, dy, (weight, bias) = unit_channel_stride(x), unit_channel_stride(dy), dense(weight, bias)
    B, L, C = x.shape
    K = weight.shape[-1]
    segments = cdiv(L, SEGMENT)
    parts = _partial_sums(B * segments, K, C, x.device)
    if dx.numel():
        _conv_bwd_kernel[lambda meta: (segments, cdiv(C, meta["BLOCK_C"]), B)](
            x, x.stride(0), x.stride(1), weight, bias if bias is not None else weight, dy, dy.stride(0), dy.stride(1),
            dx, dx.stride(0), dx.stride(1), parts, L, C, silu_channels, K=K, LEFT=_left(K, causal),
            HAS_BIAS=bias is not None, SEGMENT=SEGMENT, UNROLL=BACKWARD_UNROLL)
    sums = parts.sum(0)  # (K + 1, C): one reduction for dw and db
    dw = sums[:K].t().contiguous().view(weight.shape).to(weight.dtype)  # contiguous, as the fake
    db = sums[K].to(bias.dtype, copy=True) if bias is not None else weight.new_empty(0)  # storage of its own
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
    return _CONV(x, weight, bias, causal, int(silu_channels))
