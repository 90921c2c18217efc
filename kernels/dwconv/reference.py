"""Depthwise conv1d + SiLU over channel-last tokens in PyTorch: the reference of the fused kernel
and the path off the GPU.

    pre[b, l, c] = bias[c] + sum_k w[c, k] x[b, l + k - left, c]      (zero outside 0..L-1)
    y[b, l, c]   = SiLU(pre[b, l, c]) for c < silu_channels, else pre[b, l, c]

with left = K // 2 ("same" length, odd K) or K - 1 (causal: token l sees tokens <= l).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["depthwise_conv1d_silu_reference"]


def depthwise_conv1d_silu_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, causal: bool,
                                    silu_channels: int) -> torch.Tensor:
    """Args: x (B, L, C); weight (C, 1, K); bias (C,) or None, cast to x's dtype as autocast does.
    Returns: (B, L, C) in x's dtype."""
    C, _, K = weight.shape
    bias = None if bias is None else bias.to(x.dtype)
    y = F.conv1d(x.transpose(1, 2), weight.to(x.dtype), bias, padding=K - 1 if causal else K // 2, groups=C)
    y = y[..., : x.shape[1]].transpose(1, 2)
    if silu_channels >= C:
        return F.silu(y)
    act, rest = y.split([silu_channels, C - silu_channels], dim=-1)
    return torch.cat([F.silu(act), rest], dim=-1)
