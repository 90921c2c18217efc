"""Dense matrix mixer (paper Table 2, "Dense"; MLP-Mixer's token mixing without its MLP):
one free, data-independent L x L matrix per group.

    S = W[:L, :L] / sqrt(max_seq_len)        W: (G, max_seq_len, max_seq_len), init N(0, 1)

plus the per-head skip D (which only reparameterises S's free diagonal). O(L^2) per channel.
"""
from __future__ import annotations

import math

import torch

from hydra_vision.kernels.quasiseparable.checks import compute_dtype

from .base import check_seq_len
from .learned_mixer import LearnedMixer

__all__ = ["Dense"]


class Dense(LearnedMixer):
    """`dense`: a learned L x L matrix per group, y = S x + D x. Arguments as `LearnedMixer`."""

    family = "dense"

    def tables(self) -> dict[str, tuple[int, ...]]:
        """W: (G, max_seq_len, max_seq_len)."""
        return {"weight": (self.ngroups, self.max_seq_len, self.max_seq_len)}

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        check_seq_len(L, self.max_seq_len, self.family)
        W = self.weight[None, :, :L, :L]
        return W.to(compute_dtype(W)) / math.sqrt(self.max_seq_len)
