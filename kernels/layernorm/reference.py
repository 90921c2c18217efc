"""The PyTorch reference of the LayerNorm: F.layer_norm in fp32 (fp64 for fp64 inputs), cast to out_dtype."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..backend import autocast_available

__all__ = ["layer_norm_reference"]


def layer_norm_reference(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
                         out_dtype: torch.dtype) -> torch.Tensor:
    """y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias over the last dim, in out_dtype."""
    compute = torch.promote_types(x.dtype, torch.float32)
    args = (x.to(compute), x.shape[-1:], weight.to(compute), None if bias is None else bias.to(compute), eps)
    if autocast_available(x.device.type):  # CPU autocast would run it in bf16
        with torch.autocast(x.device.type, enabled=False):
            return F.layer_norm(*args).to(out_dtype)
    return F.layer_norm(*args).to(out_dtype)
