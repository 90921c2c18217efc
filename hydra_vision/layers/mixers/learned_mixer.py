"""LearnedMixer: the base of the data-independent mixers whose structure is learned outright
(dense, Monarch): no token features, tables sized by max_seq_len, of which an L-token input uses
the leading part. Only the tables and the map tables -> S_g (L x L per group) differ between them.
"""
from __future__ import annotations

from typing import ClassVar, Optional

from .base import GroupMatrixMixer, need_max_seq_len

__all__ = ["LearnedMixer"]


class LearnedMixer(GroupMatrixMixer):
    """Base of the learned, data-independent mixers; y = S x + D x.

    Args:
        dim: model width.
        max_seq_len: the largest number of tokens (required).
        d_conv: kernel of the depthwise conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing the learned matrix.
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the conv.
    """

    family: ClassVar[str]  # the registry name

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
        self.max_seq_len = need_max_seq_len(max_seq_len, self.family)
        self.create_tables(device=device, dtype=dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_seq_len={self.max_seq_len}"
