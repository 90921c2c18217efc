"""PyTorch references of the canvas gather and the rounded scatter (see __init__.py)."""
from __future__ import annotations

import torch


def gather_canvas_reference(data: torch.Tensor, shapes: torch.Tensor, starts: torch.Tensor, channels: int, top: int,
                            wide: int) -> torch.Tensor:
    """canvas[i, y, c, x] = data[starts_i + (c h_i + y) w_i + x] inside image i, else 0: (n, top, C, wide) float32."""
    _, h, w = (v.view(-1, 1, 1, 1) for v in shapes.unbind(1))
    y = torch.arange(top, device=data.device).view(1, -1, 1, 1)
    channel = torch.arange(channels, device=data.device).view(1, 1, -1, 1)
    x = torch.arange(wide, device=data.device).view(1, 1, 1, -1)
    inside = (y < h) & (x < w)
    index = torch.where(inside, starts.view(-1, 1, 1, 1) + (channel * h + y) * w + x, 0)
    return torch.where(inside, data[index], 0).float()


def scatter_rounded_reference(out: torch.Tensor, rows: torch.Tensor, resized: torch.Tensor) -> None:
    """out[rows[i]] = round(clamp(resized[i], 0, 255)) with resized (n, H, C, W) and out (B, C, H, W)."""
    out.index_copy_(0, rows, resized.clamp(0, 255).round_().permute(0, 2, 1, 3))
