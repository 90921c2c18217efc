"""The `triton` backend of the canvas gather and the rounded scatter: one program per (image, row),
looping over channels and column blocks; uint8 in, fp32 out (gather); fp32 in and out (scatter). The
sizes are not specialised on (Triton would compile a variant per canvas width divisible by 16 or not,
in the middle of an extraction: one compilation per kernel and process is enough).

Rounding half to even without libdevice: for 0 <= v <= 255, (v + 1.5 * 2^23) - 1.5 * 2^23 is v rounded
to an integer in round-to-nearest-even fp32 arithmetic (the sum's unit in the last place is 1).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..launcher import cached_launch
from ..layouts import dense

__all__ = ["gather_canvas_triton", "scatter_rounded_triton"]

BLOCK = 128
ROUNDING = 12582912.0  # 1.5 * 2^23


@cached_launch
@triton.jit(do_not_specialize=["C", "wide"])
def _gather_kernel(data, shapes, starts, canvas, C, wide, BLOCK: tl.constexpr):
    i, y = tl.program_id(0).to(tl.int64), tl.program_id(1)
    h, w = tl.load(shapes + 3 * i + 1), tl.load(shapes + 3 * i + 2)
    start = tl.load(starts + i)
    row = canvas + (i * tl.num_programs(1) + y) * C * wide
    for c in range(C):
        source = data + start + (c * h + y) * w
        for x0 in range(0, wide, BLOCK):
            x = x0 + tl.arange(0, BLOCK)
            pixels = tl.load(source + x, mask=(x < w) & (y < h), other=0)
            tl.store(row + c * wide + x, pixels.to(tl.float32), mask=x < wide)


@cached_launch
@triton.jit(do_not_specialize=["C", "H", "W"])
def _scatter_kernel(resized, rows, out, C, H, W, ROUNDING: tl.constexpr, BLOCK: tl.constexpr):
    i, y = tl.program_id(0).to(tl.int64), tl.program_id(1)
    target = out + tl.load(rows + i) * C * H * W + y * W
    source = resized + (i * H + y) * C * W
    for c in range(C):
        for x0 in range(0, W, BLOCK):
            x = x0 + tl.arange(0, BLOCK)
            v = tl.load(source + c * W + x, mask=x < W)
            v = tl.minimum(tl.maximum(v, 0.0), 255.0)
            tl.store(target + c * H * W + x, (v + ROUNDING) - ROUNDING, mask=x < W)


def gather_canvas_triton(data: torch.Tensor, shapes: torch.Tensor, starts: torch.Tensor, channels: int, top: int,
                         wide: int) -> torch.Tensor:
    canvas = torch.empty(len(shapes), top, channels, wide, device=data.device, dtype=torch.float32)
    if canvas.numel():
        _gather_kernel[(len(shapes), top)](*dense(data, shapes, starts), canvas, channels, wide,
                                           BLOCK=BLOCK)
    return canvas


def scatter_rounded_triton(out: torch.Tensor, rows: torch.Tensor, resized: torch.Tensor) -> None:
    if not (out.is_contiguous() and resized.is_contiguous()):
        raise ValueError("scatter_rounded's triton backend needs contiguous out and resized")
    n, H, C, W = resized.shape
    if n and H:
        _scatter_kernel[(n, H)](resized, rows.contiguous(), out, C, H, W, ROUNDING=ROUNDING, BLOCK=BLOCK)
