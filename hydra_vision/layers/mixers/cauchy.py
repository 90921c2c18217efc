"""Cauchy matrix mixer (paper Table 2, "Cauchy"), data dependent or not.

Per group g (shared by its H / G heads), N = d_state terms, plus the per-head skip D:

    S[i, j] = sum_n 1 / (lambda[i, n] + mu[j, n]) / sqrt(N L_ref)
    lambda = softplus(q) + 1/2,   mu = softplus(k) + 1/2

Each term is a Cauchy matrix 1 / (x_i - y_j) with nodes x = lambda > 0 and y = -mu < 0, so no
denominator comes closer to 0 than 1. q, k (L, G, N) are conv features per token (L_ref = L) or
learned tables, init N(0, 1) (L_ref = max_seq_len); see `PairMixer`. Built as an L x L matrix:
O(L^2 N) per group.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .pair_mixer import PairMixer

__all__ = ["Cauchy"]


class Cauchy(PairMixer):
    """`cauchy_dd` / `cauchy_di`: a sum of N Cauchy matrices with positive nodes, y = S x + D x.
    Arguments as `PairMixer` (d_state: N, Cauchy terms per group)."""

    family = "cauchy"
    offset = 0.5

    def nodes(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """lambda, mu: (B or 1, L, G, N) in fp32 (fp64 for fp64 inputs), and L_ref."""
        q, k, L_ref = self.pair(f, L)
        return F.softplus(q) + self.offset, F.softplus(k) + self.offset, L_ref

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        lam, mu, L_ref = self.nodes(f, L)
        S = (1 / (lam.transpose(1, 2)[:, :, :, None] + mu.transpose(1, 2)[:, :, None])).sum(dim=-1)
        return S / math.sqrt(self.d_state * L_ref)
