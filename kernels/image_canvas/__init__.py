"""Moving decoded images of several sizes in and out of the dense batches that the device resize
multiplies (`hydra_vision.features.device_resize`):

    gather:   packed uint8 images (C, h_i, w_i), one after the other
              -> float32 canvas[i, y, c, x] = image_i[c, y, x] (0 past h_i, w_i)     (n, top, C, wide)
    scatter:  resized (n, H, C, W) -> out[rows[i], c, y, x] = round(clamp(resized[i, y, c, x], 0, 255))

(round half to even, as torch.round and a uint8 conversion of PIL's do). Backends: `reference`
(PyTorch indexing, every device) and `triton` (one pass each), used whenever the backend resolves to
`triton` (`triton`, or `auto` on CUDA).
"""
from __future__ import annotations

import torch

from ..backend import resolve_backend
from .reference import gather_canvas_reference, scatter_rounded_reference

__all__ = ["gather_canvas", "gather_canvas_reference", "scatter_rounded", "scatter_rounded_reference"]


def gather_canvas(data: torch.Tensor, shapes: torch.Tensor, starts: torch.Tensor, channels: int, top: int, wide: int,
                  *, backend: str | None = None) -> torch.Tensor:
    """Args: data uint8 (S,); shapes int64 (n, 3) of (C, h_i, w_i) with C = channels for all; starts int64
    (n,), each image's first element in data (the tensors on one device); the canvas extent
    top >= max h_i, wide >= max w_i. Returns: float32 (n, top, C, wide)."""
    if data.dtype != torch.uint8 or shapes.dim() != 2 or shapes.shape[1] != 3 or starts.shape != shapes.shape[:1]:
        raise ValueError(f"gather_canvas needs uint8 data, shapes (n, 3) and starts (n,), got {data.dtype}, "
                         f"{tuple(shapes.shape)} and {tuple(starts.shape)}")
    if resolve_backend(backend, data) == "triton":
        from .triton_canvas import gather_canvas_triton

        return gather_canvas_triton(data, shapes, starts, channels, top, wide)
    return gather_canvas_reference(data, shapes, starts, channels, top, wide)


def scatter_rounded(out: torch.Tensor, rows: torch.Tensor, resized: torch.Tensor, *,
                    backend: str | None = None) -> None:
    """Args: out float32 (B, C, H, W), written in place at the batch rows `rows` int64 (n,); resized
    float32 (n, H, C, W)."""
    n, H, C, W = resized.shape
    if out.shape[1:] != (C, H, W) or rows.shape != (n,) or out.dtype != resized.dtype:
        raise ValueError(f"scatter_rounded needs out (B, {C}, {H}, {W}) of resized's dtype and rows ({n},), got "
                         f"{tuple(out.shape)} {out.dtype} and {tuple(rows.shape)}")
    if resolve_backend(backend, resized) == "triton":
        from .triton_canvas import scatter_rounded_triton

        return scatter_rounded_triton(out, rows, resized)
    return scatter_rounded_reference(out, rows, resized)
