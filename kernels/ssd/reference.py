"""The causal SSD by Mamba-2's chunked algorithm in PyTorch: the forward direction of the
quasiseparable reference without the shift (see `__init__.py` for the math)."""
from __future__ import annotations

import math

import torch

from ..quasiseparable.checks import compute_dtype
from ..quasiseparable.dt import activate_dt
from ..quasiseparable.reference import _causal_mix

__all__ = ["ssd_causal_mix_reference"]


def ssd_causal_mix_reference(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    *,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, math.inf),
    chunk_size: int = 256,
) -> torch.Tensor:
    """y = SS(x) + D x by chunks, in fp32 (fp64 for fp64 inputs); differentiable; arguments as in
    `ssd_causal_mix`.

    Returns:
        y: (batch, L, H, P) in x's dtype.
    """
    dtype = compute_dtype(x, dt, A, B, C, D, dt_bias)
    xf = x.to(dtype)
    dt = activate_dt(dt, dt_bias, dt_softplus, dt_limit, dtype)
    y = _causal_mix(xf, dt, A.to(dtype), B.to(dtype), C.to(dtype), False, chunk_size)
    if D is not None:
        y = y + D.to(dtype)[..., None] * xf
    return y.to(x.dtype)
