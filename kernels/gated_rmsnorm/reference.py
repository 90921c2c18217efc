"""Gated RMSNorm in PyTorch: the reference of the fused kernel and the path off the GPU.

    y = x / sqrt(mean(x^2) + eps) * weight * SiLU(z)

normalising before the gate (Mamba-2's `norm_before_gate=True`), computed in fp32 (fp64 for fp64
inputs) and returned in x's dtype.
"""
import torch
import torch.nn.functional as F

__all__ = ["gated_rmsnorm_reference"]


def gated_rmsnorm_reference(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Args: x, z (..., D); weight (D,). Returns: (..., D) in x's dtype."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dtype)
    y = xf * torch.rsqrt(xf.square().mean(dim=-1, keepdim=True) + eps) * weight.to(dtype)
    return (y * F.silu(z.to(dtype))).to(x.dtype)
