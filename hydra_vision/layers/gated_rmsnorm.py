"""Gated RMSNorm: the normalisation in front of the Hydra mixer's output projection.

    y = x / sqrt(mean(x^2) + eps) * weight * SiLU(z)

normalising before the gate (Mamba-2's `norm_before_gate=True`), computed in fp32 (fp64
for fp64 inputs) and returned in x's dtype, by `hydra_vision.kernels.gated_rmsnorm` (the fused
Triton kernel on CUDA, else PyTorch).
"""
from typing import Optional

import torch
from timm.layers import register_notrace_function
from torch import nn

from hydra_vision.kernels.gated_rmsnorm import gated_rmsnorm

__all__ = ["GatedRMSNorm", "normalize_gated"]


@register_notrace_function
@torch.jit.ignore
def normalize_gated(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float,
                    backend: Optional[str]) -> torch.Tensor:
    """`gated_rmsnorm`, kept opaque to TorchScript and FX (a leaf in every FX trace)."""
    return gated_rmsnorm(x, z, weight, eps, backend=backend)


torch.fx.wrap("normalize_gated")


class GatedRMSNorm(nn.Module):
    """RMS-normalises x over its last dim, scales by `weight`, then gates with SiLU(z).

    Args:
        dim: the normalised width.
        eps: added to the mean square.
        backend: kernel backend (see `hydra_vision.kernels.gated_rmsnorm`); None: the process default.
    """

    def __init__(self, dim: int, eps: float = 1e-5, backend: Optional[str] = None, device=None, dtype=None) -> None:
        super().__init__()
        self.eps = eps
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Args: x, z: (..., dim). Returns: (..., dim) in x's dtype."""
        return normalize_gated(x, z, self.weight, self.eps, self.backend)
