"""Attention as a matrix mixer: softmax attention (the paper's attention row; the ViT token mixer)
and linear attention, with queries and keys taken from the shared shell's conv features.

Per group g (its H / G heads share q and k, as SSD's heads share C and B), for N = d_state:

    attention           S = softmax(q k^T / sqrt(N))                         (row-wise softmax)
    linear_attention    S = diag(phi(q) phi(k)^T 1 + eps)^-1 phi(q) phi(k)^T,   phi = elu + 1

q and k are the conv outputs without an activation (as the official attention mixer). ngroups = H
gives standard multi-head attention; ngroups = 1 one attention map for all heads (multi-value
attention, SSD's default sharing). No skip term: y = S x. timm's `Attention` is not reused: it
projects q, k, v from the block input itself, without the shell's gate, conv and expand.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hydra_vision.kernels.quasiseparable.checks import compute_dtype

from ..matrix_mixer import feature_groups
from .base import GroupMatrixMixer, expand_groups

__all__ = ["LinearAttention", "SoftmaxAttention"]


class _QKMixer(GroupMatrixMixer):
    """Shared constructor: q and k (each G x N channels) in the conv features, no skip.

    Args:
        dim: model width.
        d_state: N, the query/key size per group.
        d_conv: kernel of the depthwise conv over values, queries and keys.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing q and k.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 64,
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
            dim, skip=False, expand=expand, headdim=headdim, ngroups=ngroups, d_conv=d_conv,
            conv_features=2 * ngroups * d_state, bias=bias, conv_bias=conv_bias, device=device, dtype=dtype)
        self.d_state = d_state
        self.reset_parameters()

    def qk(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k: (B, L, G, N) from the conv features."""
        q, k = feature_groups(f, self.ngroups, self.d_state)
        return q, k


class SoftmaxAttention(_QKMixer):
    """`attention`: y = softmax(q k^T / sqrt(N)) x per head, by F.scaled_dot_product_attention."""

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        q, k = (expand_groups(t.transpose(1, 2), self.nheads, dim=1).to(x.dtype) for t in self.qk(f))
        y = F.scaled_dot_product_attention(q, k, x.transpose(1, 2), scale=1 / math.sqrt(self.d_state))
        return y.transpose(1, 2)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        q, k = (t.to(compute_dtype(t)) for t in self.qk(f))
        return torch.softmax(torch.einsum("bign,bjgn->bgij", q, k) / math.sqrt(self.d_state), dim=-1)


class LinearAttention(_QKMixer):
    """`linear_attention`: y_i = sum_j phi(q_i).phi(k_j) x_j / (sum_j phi(q_i).phi(k_j) + eps), phi = elu + 1,
    computed as phi(q) (phi(k)^T x) in O(L N P) (Katharopoulos et al. 2020); eps = 1e-6."""

    eps = 1e-6

    def _features(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(F.elu(t.to(compute_dtype(t))) + 1 for t in self.qk(f))

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        q, k = self._features(f)
        kv = torch.einsum("bjgn,bjgc->bgnc", k, x.to(k.dtype))
        norm = torch.einsum("bign,bgn->big", q, k.sum(dim=1)) + self.eps
        return (torch.einsum("bign,bgnc->bigc", q, kv) / norm[..., None]).to(x.dtype)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        q, k = self._features(f)
        S = torch.einsum("bign,bjgn->bgij", q, k)
        return S / (S.sum(dim=-1, keepdim=True) + self.eps)
