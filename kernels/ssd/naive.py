"""The causal SSD with its L x L matrix materialised (tests only; see `__init__.py` for the math)."""
from __future__ import annotations

import math

import torch

from ..quasiseparable.checks import compute_dtype
from ..quasiseparable.dt import activate_dt
from ..quasiseparable.naive import semiseparable_matrix

__all__ = ["ssd_causal_mix_naive"]


def ssd_causal_mix_naive(
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
) -> torch.Tensor:
    """y = SS @ x + D x per head, in fp32 (fp64 for fp64 inputs); arguments as in `ssd_causal_mix`.

    Returns:
        y: (batch, L, H, P) in x's dtype.
    """
    dtype = compute_dtype(x, dt, A, B, C, D, dt_bias)
    dt = activate_dt(dt, dt_bias, dt_softplus, dt_limit, dtype)
    ss = semiseparable_matrix(dt, A.to(dtype), B.to(dtype), C.to(dtype))
    xf = x.to(dtype)
    y = torch.einsum("bhij,bjhp->bihp", ss, xf)
    if D is not None:
        y = y + D.to(dtype)[..., None] * xf
    return y.to(x.dtype)
