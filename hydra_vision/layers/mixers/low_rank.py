"""Low-rank matrix mixer (paper Table 2, "Low-rank"), data dependent or not.

Per group g (shared by its H / G heads), rank N = d_state, plus the per-head skip D:

    S = q k^T / sqrt(N L_ref)        q, k: (L, N)

data_dependent: q = SiLU(conv features), k likewise (per token: linear attention without the
normalisation; L_ref = L); otherwise q, k are learned (max_seq_len, G, N) tables, init N(0, 1), of
which the first L rows are used (L_ref = max_seq_len); see `PairMixer`. Applied as q (k^T x):
O(L N P).
"""
from __future__ import annotations

import math

import torch

from .pair_mixer import PairMixer

__all__ = ["LowRank"]


class LowRank(PairMixer):
    """`low_rank_dd` / `low_rank_di`: S = q k^T / sqrt(N L_ref) of rank <= N, y = S x + D x.
    Arguments as `PairMixer` (d_state: N, the rank)."""

    family = "low_rank"
    silu_features = True

    def factors(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """q * scale, k: (B or 1, L, G, N) in fp32 (fp64 for fp64 inputs)."""
        q, k, L_ref = self.pair(f, L)
        return q / math.sqrt(self.d_state * L_ref), k

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        q, k = self.factors(f, x.shape[1])
        kx = torch.einsum("bjgn,bjgc->bgnc", k.expand(x.shape[0], -1, -1, -1), x.to(k.dtype))
        return torch.einsum("bign,bgnc->bigc", q.expand(x.shape[0], -1, -1, -1), kx).to(x.dtype)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        q, k = self.factors(f, L)
        return torch.einsum("bign,bjgn->bgij", q, k)
