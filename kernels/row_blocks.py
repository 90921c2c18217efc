"""Row views, warps per row and backward program counts shared by the row-wise norm kernels (LayerNorm, gated
RMSNorm), and the device's SM count they and the diagonal's backward size their grids by."""
from __future__ import annotations

import functools

import torch

from .layouts import unit_channel_stride
from .quasiseparable.triton_config import interpreting

__all__ = ["as_rows", "backward_programs", "row_warps", "sm_count"]


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device, asked once per device: torch's query ran about twice a block and
    training step, 2.7% of the backward thread's host samples in a compiled step (py-spy, RESULTS.md session 47)."""
    return _sm_count(torch.cuda.current_device() if device.index is None else device.index)


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """(..., D) -> (M, D) with unit stride along D (a view when possible)."""
    return unit_channel_stride(t.reshape(-1, t.shape[-1]))


def row_warps(D: int) -> int:
    """Warps of a program that holds one row of D values."""
    return 4 if D <= 2048 else 8


def backward_programs(M: int, device: torch.device) -> int:
    """Backward programs: 8 per SM, each looping over a block of rows and keeping one row of weight partial
    sums (up to 4 in the interpreter); at least 1. On an H200 at hydra_vit_base's shapes 8 per SM beat 4, 16
    and 32 (gated norm 184 -> 146 us, LayerNorm 82 -> 60 us against 4: benchmarks/RESULTS.md, session 16)."""
    if interpreting() or device.type != "cuda":
        return max(min(M, 4), 1)
    return max(min(M, 8 * sm_count(device)), 1)
