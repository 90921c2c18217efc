"""The layouts the Triton launchers hand their kernels, whatever strides they are given.

The kernels take a stride argument for every dimension of an activation but one (the channels: unit stride, so
that a tile is one contiguous load), one set of strides for tensors read together (dt_f/dt_b; B_f/C_f/B_b/C_b),
and none for parameter vectors (weights, biases, A, D: dense). The launchers pass their inputs through these
helpers, which copy only a layout the kernels cannot read; so every fused op is safe to tag flexible_layout
(torch.compile then hands it Inductor's own strides, e.g. GEMM outputs with padded rows, uncopied).
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["dense", "same_strides", "unit_channel_stride"]


def unit_channel_stride(t: torch.Tensor) -> torch.Tensor:
    """t, copied only where its last dim is not unit-stride (rows of any stride stay as they are)."""
    return t if t.stride(-1) == 1 else t.contiguous()


def dense(*tensors: Optional[torch.Tensor]) -> list[Optional[torch.Tensor]]:
    """Each tensor contiguous (a no-op for the usual parameters), None kept."""
    return [None if t is None else t.contiguous() for t in tensors]


def same_strides(*tensors: Optional[torch.Tensor]) -> list[Optional[torch.Tensor]]:
    """The tensors as they are when they share strides (views of one projection), else contiguous; None kept."""
    present = [t for t in tensors if t is not None]
    if all(t.stride() == present[0].stride() for t in present):
        return list(tensors)
    return dense(*tensors)
