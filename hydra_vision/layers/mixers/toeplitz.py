"""Toeplitz matrix mixer (paper Table 2, "Toeplitz"): a long convolution over the tokens,
applied by FFT, data dependent or not.

Per group g (shared by its H / G heads), plus the per-head skip D:

    S[i, j] = h[i - j] / sqrt(L_ref),     h[d] for d = -(L-1) .. L-1

data_dependent: h[d] = a_d for d >= 0 and h[-d] = b_d for d >= 1, where a, b are two conv-feature
channels per group read at token d (the official sequence-aligned Toeplitz; L_ref = L); otherwise
h is a learned (G, 2 max_seq_len - 1) kernel, init N(0, 1), centred at offset 0 (L_ref = max_seq_len).
y = S x by a real FFT of size 2L in fp32: O(L log L) per channel.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from hydra_vision.kernels.quasiseparable.checks import compute_dtype

from .base import GroupMatrixMixer, check_seq_len, need_max_seq_len

__all__ = ["Toeplitz"]


class Toeplitz(GroupMatrixMixer):
    """`toeplitz_dd` / `toeplitz_di`: S[i, j] = h[i - j] / sqrt(L_ref), y = S x + D x.

    Args:
        dim: model width.
        data_dependent: the kernel from the tokens (True) or learned (False).
        d_conv: kernel of the depthwise (short) conv.
        expand: d_inner = expand * dim.
        headdim: P, channels per head.
        ngroups: G, groups of heads sharing the kernel.
        max_seq_len: the largest number of tokens (needed when not data dependent).
        bias: bias of in_proj and out_proj.
        conv_bias: bias of the short conv.
    """

    def __init__(
        self,
        dim: int,
        data_dependent: bool = True,
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
            conv_features=2 * ngroups if data_dependent else 0, bias=bias, conv_bias=conv_bias,
            device=device, dtype=dtype)
        self.data_dependent = data_dependent
        self.max_seq_len = None if data_dependent else need_max_seq_len(max_seq_len, "toeplitz_di")
        self.create_tables(device=device, dtype=dtype)

    def tables(self) -> dict[str, tuple[int, ...]]:
        """The kernel h: (G, 2 max_seq_len - 1) when learned, init N(0, 1)."""
        return {} if self.data_dependent else {"kernel": (self.ngroups, 2 * self.max_seq_len - 1)}

    def taps(self, f: torch.Tensor, L: int) -> torch.Tensor:
        """c (B or 1, G, 2L - 1) with c[m] = h[m - (L - 1)] / sqrt(L_ref), in fp32 (fp64 for fp64)."""
        if self.data_dependent:
            fwd, bwd = f.to(compute_dtype(f)).transpose(1, 2).chunk(2, dim=1)
            c = torch.cat([bwd[..., 1:].flip(-1), fwd], dim=-1)
            return c / math.sqrt(L)
        check_seq_len(L, self.max_seq_len, "toeplitz_di")
        c = self.kernel[None, :, self.max_seq_len - L: self.max_seq_len + L - 1]
        return c.to(compute_dtype(c)) / math.sqrt(self.max_seq_len)

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        L = x.shape[1]
        c = self.taps(f, L)
        n = 2 * L
        xf = torch.fft.rfft(x.to(c.dtype).permute(0, 2, 3, 1), n=n)
        y = torch.fft.irfft(xf * torch.fft.rfft(c, n=n)[:, :, None], n=n)[..., L - 1: 2 * L - 1]
        return y.permute(0, 3, 1, 2).to(x.dtype)

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        c = self.taps(f, L)
        idx = torch.arange(L, device=c.device)
        return c[..., idx[:, None] - idx[None, :] + L - 1]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, data_dependent={self.data_dependent}, max_seq_len={self.max_seq_len}"
