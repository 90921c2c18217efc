"""The step-size activation shared by every backend of the quasiseparable mix.

    dt = clamp(softplus(dt_raw + dt_bias), dt_min, dt_max)    (dt_softplus=True)
    dt = clamp(dt_raw + dt_bias, dt_min, dt_max)              (dt_softplus=False)

softplus is torch's (linear above 20), as in Mamba-2; a missing dt_bias adds 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["activate_dt"]


def activate_dt(
    dt: torch.Tensor,
    dt_bias: torch.Tensor | None,
    dt_softplus: bool,
    dt_limit: tuple[float, float],
    dtype: torch.dtype,
) -> torch.Tensor:
    """The final step sizes, computed in `dtype` (the accumulation dtype).

    Args:
        dt: (batch, L, H) raw step sizes.
        dt_bias: (H,) or None.
        dt_softplus: apply softplus after the bias.
        dt_limit: (min, max) clamp of the result.
        dtype: the dtype the result is computed and returned in (fp32 or fp64).

    Returns:
        (batch, L, H) in `dtype`.
    """
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    if dt_softplus:
        dt = F.softplus(dt)
    return dt.clamp(min=dt_limit[0], max=dt_limit[1])
