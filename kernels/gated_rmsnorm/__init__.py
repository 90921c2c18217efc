"""Gated RMSNorm, the normalisation in front of the Hydra layer's output projection:

    y = x / sqrt(mean(x^2) + eps) * weight * SiLU(z)       (over the last dim, fp32 inside)

Backends: `reference` (PyTorch, every device and dtype) and `triton` (one fused pass forward and
one backward, fp16/bf16/fp32), used whenever the backend resolves to `triton` (`triton`, or `auto`
on CUDA); fp64 stays on the reference.
"""
from __future__ import annotations

import torch

from ..backend import use_triton
from .reference import gated_rmsnorm_reference

__all__ = ["gated_rmsnorm", "gated_rmsnorm_reference"]


def gated_rmsnorm(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float = 1e-5, *,
                  backend: str | None = None) -> torch.Tensor:
    """Args: x, z (..., D); weight (D,); backend as above. Returns: (..., D) in x's dtype."""
    if x.shape != z.shape:
        raise ValueError(f"gated_rmsnorm needs x and z of one shape, got {tuple(x.shape)} and {tuple(z.shape)}")
    if weight.shape != x.shape[-1:]:
        raise ValueError(f"weight must have shape ({x.shape[-1]},) for x of shape {tuple(x.shape)}, "
                         f"got {tuple(weight.shape)}")
    if use_triton(backend, x):
        from .triton_norm import gated_rmsnorm_triton

        return gated_rmsnorm_triton(x, z, weight, eps)
    return gated_rmsnorm_reference(x, z, weight, eps)
