"""PairMixer: the base of the structured mixers built from two node tables per group (Cauchy,
Vandermonde, low rank), data dependent or not.

Each such mixer builds its structure S_g (L x L) from q, k (L, N) per group g, N = d_state:

    data_dependent:   q, k = the conv features of each token (2 G N channels)   L_ref = L
    otherwise:        q, k = learned (max_seq_len, G, N) tables, rows [0, L)    L_ref = max_seq_len

L_ref is the length the mixers scale by. Only the map (q, k) -> S differs between the subclasses.
"""
from __future__ import annotations

from typing import ClassVar, Optional

import torch

from hydra_vision.kernels.quasiseparable.checks import compute_dtype

from ..matrix_mixer import feature_groups
from .base import GroupMatrixMixer, check_seq_len, need_max_seq_len

__all__ = ["PairMixer"]


class PairMixer(GroupMatrixMixer):
    """Base of the mixers whose structure comes from node tables q, k (L, G, N); y = S x + D x.

    Args:
        dim: model width.
        data_dependent: q, k from the tokens (True) or learned per position (False).
        d_state: N, nodes (terms, rank) per group.
        d_conv: kernel of the depthwise conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing q and k.
        max_seq_len: the largest number of tokens (needed when not data dependent).
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    family: ClassVar[str]  # the registry names are '<family>_dd' and '<family>_di'
    silu_features: ClassVar[bool] = False  # SiLU on the token features q, k

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
            conv_features=2 * ngroups * d_state if data_dependent else 0, silu_features=self.silu_features,
            bias=bias, conv_bias=conv_bias, device=device, dtype=dtype)
        self.d_state = d_state
        self.data_dependent = data_dependent
        self.max_seq_len = None if data_dependent else need_max_seq_len(max_seq_len, f"{self.family}_di")
        self.create_tables(device=device, dtype=dtype)

    def tables(self) -> dict[str, tuple[int, ...]]:
        """q, k: (max_seq_len, G, N) when learned."""
        if self.data_dependent:
            return {}
        return {name: (self.max_seq_len, self.ngroups, self.d_state) for name in ("q", "k")}

    def pair(self, f: torch.Tensor, L: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """q, k: (B or 1, L, G, N) in fp32 (fp64 for fp64 inputs), and L_ref."""
        if self.data_dependent:
            q, k = feature_groups(f, self.ngroups, self.d_state)
            L_ref = L
        else:
            check_seq_len(L, self.max_seq_len, f"{self.family}_di")
            q, k, L_ref = self.q[None, :L], self.k[None, :L], self.max_seq_len
        dtype = compute_dtype(f)
        return q.to(dtype), k.to(dtype), L_ref

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, d_state={self.d_state}, data_dependent={self.data_dependent}, "
                f"max_seq_len={self.max_seq_len}")
