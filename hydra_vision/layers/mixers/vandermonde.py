"""Vandermonde matrix mixer (paper Table 2, "Vandermonde"), data dependent or not.

A Vandermonde matrix V[i, j] = z_i^j; on the unit circle, z = exp(i theta), its real part is
cos(theta_i j). Per group g (shared by its H / G heads), N = d_state terms, plus the per-head skip D:

    S[i, j] = sum_n ( cos(theta[i, n] j) + cos(phi[j, n] i) ) / sqrt(2 N L_ref)
    theta = pi q / L_ref,   phi = pi k / L_ref

a Vandermonde matrix in the row nodes plus a transposed one in the column nodes (so rows and
columns are both sequence aligned, as in the official mixer). data_dependent: q, k are conv
features per token (L_ref = L); otherwise learned (max_seq_len, G, N) tables (L_ref = max_seq_len)
initialised at the DFT frequencies q_i = k_i = 2 i (plus noise of std 0.1), where each term is the
real DFT matrix cos(2 pi i j / L_ref). Built as an L x L matrix: O(L^2 N) per group.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .base import GroupMatrixMixer, check_seq_len, compute_dtype, need_max_seq_len

__all__ = ["Vandermonde"]


class Vandermonde(GroupMatrixMixer):
    """`vandermonde_dd` / `vandermonde_di`: real parts of Vandermonde matrices on the unit circle.

    Args:
        dim: model width.
        data_dependent: frequencies from the tokens (True) or learned per position (False).
        d_state: N, terms per group.
        d_conv: kernel of the depthwise conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing the frequencies.
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
        self.max_seq_len = None if data_dependent else need_max_seq_len(max_seq_len, "vandermonde_di")
        self.q = None if data_dependent else nn.Parameter(torch.empty(self.max_seq_len, ngroups, d_state, **dd))
        self.k = None if data_dependent else nn.Parameter(torch.empty(self.max_seq_len, ngroups, d_state, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """D = 1; the learned frequencies q_i = k_i = 2 i plus noise of std 0.1."""
        super().reset_parameters()
        if not self.data_dependent:
            with torch.no_grad():
                for t in (self.q, self.k):
                    nn.init.normal_(t, std=0.1)
                    t.add_(2 * torch.arange(self.max_seq_len, device=t.device, dtype=t.dtype)[:, None, None])

    def angles(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """theta, phi: (B or 1, G, L, N) in fp32 (fp64 for fp64 inputs), and L_ref."""
        if self.data_dependent:
            q, k = (t.unflatten(-1, (self.ngroups, self.d_state)) for t in f.chunk(2, dim=-1))
            L_ref = L
        else:
            check_seq_len(L, self.max_seq_len, "vandermonde_di")
            q, k, L_ref = self.q[None, :L], self.k[None, :L], self.max_seq_len
        dtype = compute_dtype(f)
        return (math.pi / L_ref * q.to(dtype).transpose(1, 2), math.pi / L_ref * k.to(dtype).transpose(1, 2), L_ref)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        theta, phi, L_ref = self.angles(f, L)
        pos = torch.arange(L, device=theta.device, dtype=theta.dtype)[:, None]
        rows = torch.cos(theta[:, :, :, None] * pos).sum(dim=-1)  # [b, g, i, j] = sum_n cos(theta[i, n] j)
        cols = torch.cos(phi[:, :, :, None] * pos).sum(dim=-1).transpose(-1, -2)
        return (rows + cols) / math.sqrt(2 * self.d_state * L_ref)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, terms={self.d_state}, data_dependent={self.data_dependent}, "
                f"max_seq_len={self.max_seq_len}")
