"""Exact log-space segment sums, the decays of every form of the mix.

    S[i, j] = sum_{k=j+1}^{i} a[k]    for i >= j,    -inf for i < j

so exp(S) is the causal decay matrix (1 on the diagonal, 0 above it).
"""
from __future__ import annotations

import math

import torch

__all__ = ["segment_sums"]


def segment_sums(a: torch.Tensor) -> torch.Tensor:
    """S as above for a: (..., T) -> (..., T, T).

    Each entry is a masked running sum, not a difference of two long cumsums (which
    loses the small exponents next to the diagonal once the cumsum is large). With
    a <= 0 every kept entry is <= 0; the mask is applied before any exp.
    """
    T = a.shape[-1]
    below = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    sums = torch.where(below, a[..., :, None], 0.0).cumsum(-2)
    return sums.masked_fill(~torch.ones_like(below).tril(), -math.inf)
