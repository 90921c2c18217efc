"""Cauchy matrix mixer (paper Table 2, "Cauchy"), data dependent or not.

Per group g (shared by its H / G heads), N = d_state terms, plus the per-head skip D:

    S[i, j] = sum_n 1 / (lambda[i, n] + mu[j, n]) / sqrt(N L_ref)
    lambda = softplus(q) + 1/2,   mu = softplus(k) + 1/2

Each term is a Cauchy matrix 1 / (x_i - y_j) with nodes x = lambda > 0 and y = -mu < 0, so no
denominator comes closer to 0 than 1. data_dependent: q, k are conv features per token (L_ref = L);
otherwise learned (max_seq_len, G, N) tables, init N(0, 1) (L_ref = max_seq_len). Built as an
L x L matrix: O(L^2 N) per group.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import GroupMatrixMixer, check_seq_len, compute_dtype, need_max_seq_len

__all__ = ["Cauchy"]


class Cauchy(GroupMatrixMixer):
    """`cauchy_dd` / `cauchy_di`: a sum of N Cauchy matrices with positive nodes, y = S x + D x.

    Args:
        dim: model width.
        data_dependent: nodes from the tokens (True) or learned per position (False).
        d_state: N, Cauchy terms per group.
        d_conv: kernel of the depthwise conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing the nodes.
        max_seq_len: the largest number of tokens (needed when not data dependent).
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    offset = 0.5

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
        self.max_seq_len = None if data_dependent else need_max_seq_len(max_seq_len, "cauchy_di")
        self.q = None if data_dependent else nn.Parameter(torch.empty(self.max_seq_len, ngroups, d_state, **dd))
        self.k = None if data_dependent else nn.Parameter(torch.empty(self.max_seq_len, ngroups, d_state, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """D = 1; the learned q, k ~ N(0, 1)."""
        super().reset_parameters()
        if not self.data_dependent:
            nn.init.normal_(self.q)
            nn.init.normal_(self.k)

    def nodes(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """lambda, mu: (B or 1, L, G, N) in fp32 (fp64 for fp64 inputs), and L_ref."""
        if self.data_dependent:
            q, k = (t.unflatten(-1, (self.ngroups, self.d_state)) for t in f.chunk(2, dim=-1))
            L_ref = L
        else:
            check_seq_len(L, self.max_seq_len, "cauchy_di")
            q, k, L_ref = self.q[None, :L], self.k[None, :L], self.max_seq_len
        dtype = compute_dtype(f)
        return F.softplus(q.to(dtype)) + self.offset, F.softplus(k.to(dtype)) + self.offset, L_ref

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        lam, mu, L_ref = self.nodes(f, L)
        S = (1 / (lam.transpose(1, 2)[:, :, :, None] + mu.transpose(1, 2)[:, :, None])).sum(dim=-1)
        return S / math.sqrt(self.d_state * L_ref)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, terms={self.d_state}, data_dependent={self.data_dependent}, "
                f"max_seq_len={self.max_seq_len}")
