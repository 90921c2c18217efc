"""Vandermonde matrix mixer (paper Table 2, "Vandermonde"), data dependent or not.

A Vandermonde matrix V[i, j] = z_i^j; on the unit circle, z = exp(i theta), its real part is
cos(theta_i j). Per group g (shared by its H / G heads), N = d_state terms, plus the per-head skip D:

    S[i, j] = sum_n ( cos(theta[i, n] j) + cos(phi[j, n] i) ) / sqrt(2 N L_ref)
    theta = pi q / L_ref,   phi = pi k / L_ref

a Vandermonde matrix in the row nodes plus a transposed one in the column nodes (so rows and
columns are both sequence aligned, as in the official mixer). q, k (L, G, N) are conv features per
token (L_ref = L) or learned tables (L_ref = max_seq_len; see `PairMixer`) initialised at the DFT
frequencies q_i = k_i = 2 i (plus noise of std 0.1), where each term is the real DFT matrix
cos(2 pi i j / L_ref). Built as an L x L matrix: O(L^2 N) per group.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .pair_mixer import PairMixer

__all__ = ["Vandermonde"]


class Vandermonde(PairMixer):
    """`vandermonde_dd` / `vandermonde_di`: real parts of Vandermonde matrices on the unit circle.
    Arguments as `PairMixer` (d_state: N, terms per group)."""

    family = "vandermonde"

    def init_table(self, table: torch.Tensor) -> None:
        """The learned frequencies q_i = k_i = 2 i plus noise of std 0.1."""
        nn.init.normal_(table, std=0.1)
        table.add_(2 * torch.arange(table.shape[0], device=table.device, dtype=table.dtype)[:, None, None])

    def angles(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """theta, phi: (B or 1, G, L, N) in fp32 (fp64 for fp64 inputs), and L_ref."""
        q, k, L_ref = self.pair(f, L)
        return math.pi / L_ref * q.transpose(1, 2), math.pi / L_ref * k.transpose(1, 2), L_ref

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        theta, phi, L_ref = self.angles(f, L)
        pos = torch.arange(L, device=theta.device, dtype=theta.dtype)[:, None]
        rows = torch.cos(theta[:, :, :, None] * pos).sum(dim=-1)  # [b, g, i, j] = sum_n cos(theta[i, n] j)
        cols = torch.cos(phi[:, :, :, None] * pos).sum(dim=-1).transpose(-1, -2)
        return (rows + cols) / math.sqrt(2 * self.d_state * L_ref)
