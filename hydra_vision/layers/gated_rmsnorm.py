"""Gated RMSNorm: the normalisation in front of the Hydra mixer's output projection.

    y = x / sqrt(mean(x^2) + eps) * weight * SiLU(z)

normalising before the gate (Mamba-2's `norm_before_gate=True`), computed in fp32 (fp64
for fp64 inputs) and returned in x's dtype.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GatedRMSNorm"]


class GatedRMSNorm(nn.Module):
    """RMS-normalises x over its last dim, scales by `weight`, then gates with SiLU(z)."""

    def __init__(self, dim: int, eps: float = 1e-5, device=None, dtype=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Args: x, z: (..., dim). Returns: (..., dim) in x's dtype."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        xf = x.to(dtype)
        y = xf * torch.rsqrt(xf.square().mean(dim=-1, keepdim=True) + self.eps) * self.weight.to(dtype)
        return (y * F.silu(z.to(dtype))).to(x.dtype)
