"""Low-rank matrix mixer (paper Table 2, "Low-rank"), data dependent or not.

Per group g (shared by its H / G heads), rank N = d_state, plus the per-head skip D:

    S = q k^T / sqrt(N L)        q, k: (L, N)

data_dependent: q = SiLU(conv features), k likewise (per token: linear attention without the
normalisation); otherwise q, k are learned (max_seq_len, G, N) tables, init N(0, 1), of which
the first L rows are used (L_ref = max_seq_len in the scale). Applied as q (k^T x): O(L N P).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import GroupMatrixMixer, check_seq_len, compute_dtype, need_max_seq_len

__all__ = ["LowRank"]


class LowRank(GroupMatrixMixer):
    """`low_rank_dd` / `low_rank_di`: S = q k^T / sqrt(N L) of rank <= N, y = S x + D x.

    Args:
        dim: model width.
        data_dependent: q, k from the tokens (True) or learned per position (False).
        d_state: N, the rank.
        d_conv: kernel of the depthwise conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing q and k.
        max_seq_len: the largest number of tokens (needed when not data dependent).
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    def __init__(
        self,
        dim: int,
        data_dependent: bool = True,
        d_state: int = 64,
        d_conv: int = 7,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        max_seq_len: Optional[int] = None,
        bias: bool = False,
        conv_bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            dim, expand=expand, headdim=headdim, ngroups=ngroups, d_conv=d_conv,
            conv_features=2 * ngroups * d_state if data_dependent else 0, bias=bias, conv_bias=conv_bias,
            device=device, dtype=dtype)
        dd = {"device": device, "dtype": dtype}
        self.d_state = d_state
        self.data_dependent = data_dependent
        self.max_seq_len = None if data_dependent else need_max_seq_len(max_seq_len, "low_rank_di")
        self.q = None if data_dependent else nn.Parameter(torch.empty(self.max_seq_len, ngroups, d_state, **dd))
        self.k = None if data_dependent else nn.Parameter(torch.empty(self.max_seq_len, ngroups, d_state, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """D = 1; the learned q, k ~ N(0, 1)."""
        super().reset_parameters()
        if not self.data_dependent:
            nn.init.normal_(self.q)
            nn.init.normal_(self.k)

    def factors(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """q * scale, k: (B or 1, L, G, N) in fp32 (fp64 for fp64 inputs)."""
        if self.data_dependent:
            q, k = (F.silu(t).unflatten(-1, (self.ngroups, self.d_state)) for t in f.chunk(2, dim=-1))
            L_ref = L
        else:
            check_seq_len(L, self.max_seq_len, "low_rank_di")
            q, k, L_ref = self.q[None, :L], self.k[None, :L], self.max_seq_len
        dtype = compute_dtype(f)
        return q.to(dtype) / math.sqrt(self.d_state * L_ref), k.to(dtype)

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        q, k = self.factors(f, x.shape[1])
        kx = torch.einsum("bjgn,bjgc->bgnc", k.expand(x.shape[0], -1, -1, -1), x.to(k.dtype))
        return torch.einsum("bign,bgnc->bigc", q.expand(x.shape[0], -1, -1, -1), kx).to(x.dtype)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        q, k = self.factors(f, L)
        return torch.einsum("bign,bjgn->bgij", q, k)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, rank={self.d_state}, data_dependent={self.data_dependent}, "
                f"max_seq_len={self.max_seq_len}")
