"""Monarch matrix mixer (Dao et al. 2022, "Monarch"; the sequence mixer of Fu et al. 2023,
"Monarch Mixer", arXiv 2310.12109): a data-independent product of two block-diagonal factors
with permutations, one per group.

With b = ceil(sqrt(max_seq_len)) and n = b^2, tokens are padded with zeros to n and indexed
t = t1 * b + t2. Per group, with left blocks Lb (b, b, b) and right blocks Rb (b, b, b):

    M = P Bd(Lb) P^T Bd(Rb),    M[(i1, i2), (j1, j2)] = Lb[i2, i1, j1] * Rb[j1, i2, j2]

where Bd is block-diagonal with b blocks of b x b and P the transpose permutation of the (b, b)
grid: every (i2, j1) block of M over (i1, j2) is an outer product, i.e. has rank <= 1. The first
L rows and columns act on L tokens; plus the per-head skip D. O(n sqrt(n)) per channel. The
blocks start N(0, 1 / b), so M's entries have variance about 1 / n.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hydra_vision.kernels.quasiseparable.checks import compute_dtype

from .base import check_seq_len
from .learned_mixer import LearnedMixer

__all__ = ["Monarch"]


class Monarch(LearnedMixer):
    """`monarch`: M = P Bd(Lb) P^T Bd(Rb) per group (order-2 Monarch), y = M x + D x. Arguments as
    `LearnedMixer`; the blocks are b = ceil(sqrt(max_seq_len)) wide."""

    family = "monarch"

    @property
    def block(self) -> int:
        """b = ceil(sqrt(max_seq_len))."""
        return math.isqrt(self.max_seq_len - 1) + 1

    def tables(self) -> dict[str, tuple[int, ...]]:
        """Left and right blocks: (G, b, b, b) each."""
        b = self.block
        return {"left": (self.ngroups, b, b, b), "right": (self.ngroups, b, b, b)}

    def init_table(self, table: torch.Tensor) -> None:
        """The blocks ~ N(0, 1 / b)."""
        nn.init.normal_(table, std=self.block ** -0.5)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.left.to(compute_dtype(self.left)), self.right.to(compute_dtype(self.right))

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B, L, G, C = x.shape
        check_seq_len(L, self.max_seq_len, self.family)
        b = self.block
        left, right = self.factors()
        xp = F.pad(x.to(left.dtype), (0, 0, 0, 0, 0, b * b - L)).view(B, b, b, G, C)  # [B, j1, j2, G, C]
        t = torch.einsum("gakj,bajgc->bakgc", right, xp)  # Bd(Rb): [B, j1, i2, G, C]
        y = torch.einsum("gkia,bakgc->bikgc", left, t)  # P^T, Bd(Lb), P: [B, i1, i2, G, C]
        return y.reshape(B, b * b, G, C)[:, :L].to(x.dtype)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        check_seq_len(L, self.max_seq_len, self.family)
        b = self.block
        left, right = self.factors()
        M = torch.einsum("gkia,gakj->gikaj", left, right).reshape(self.ngroups, b * b, b * b)
        return M[None, :, :L, :L]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, block={self.block}"
