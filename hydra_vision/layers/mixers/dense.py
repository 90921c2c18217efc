"""Dense matrix mixer (paper Table 2, "Dense"; MLP-Mixer's token mixing without its MLP):
one free, data-independent L x L matrix per group.

    S = W[:L, :L] / sqrt(max_seq_len)        W: (G, max_seq_len, max_seq_len), init N(0, 1)

plus the per-head skip D (which only reparameterises S's free diagonal). O(L^2) per channel.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .base import GroupMatrixMixer, check_seq_len, compute_dtype, need_max_seq_len

__all__ = ["Dense"]


class Dense(GroupMatrixMixer):
    """`dense`: a learned L x L matrix per group, y = S x + D x.

    Args:
        dim: model width.
        max_seq_len: the largest number of tokens (required).
        d_conv: kernel of the depthwise conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing the matrix.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    def __init__(
        self,
        dim: int,
        max_seq_len: Optional[int] = None,
        d_conv: int = 7,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        bias: bool = False,
        conv_bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            dim, expand=expand, headdim=headdim, ngroups=ngroups, d_conv=d_conv, conv_features=0,
            bias=bias, conv_bias=conv_bias, device=device, dtype=dtype)
        self.max_seq_len = need_max_seq_len(max_seq_len, "dense")
        self.weight = nn.Parameter(torch.empty(ngroups, self.max_seq_len, self.max_seq_len, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """D = 1; W ~ N(0, 1)."""
        super().reset_parameters()
        nn.init.normal_(self.weight)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        check_seq_len(L, self.max_seq_len, "dense")
        W = self.weight[None, :, :L, :L]
        return W.to(compute_dtype(W)) / math.sqrt(self.max_seq_len)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_seq_len={self.max_seq_len}"
