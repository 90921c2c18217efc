"""Depthwise conv1d + SiLU over channel-last tokens (B, L, C): the conv in front of every mixer of
the shell (Hydra's x, B, C come out of it):

    y[b, l, c] = SiLU(bias[c] + sum_k w[c, k] x[b, l + k - left, c])   (SiLU on the first silu_channels)

with left = K // 2 (odd K, same length) or K - 1 (causal). Backends: `reference` (PyTorch's conv1d
on the transposed tokens, every device and dtype) and `triton` (channel-last kernels, forward and
backward, fp16/bf16/fp32), used whenever the backend resolves to `triton` (`triton`, or `auto` on
CUDA); fp64 stays on the reference.
"""
from __future__ import annotations

import torch

from ..backend import use_triton
from .reference import depthwise_conv1d_silu_reference

__all__ = ["depthwise_conv1d_silu", "depthwise_conv1d_silu_reference"]


def depthwise_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                          causal: bool = False, silu_channels: int | None = None,
                          backend: str | None = None) -> torch.Tensor:
    """Args: x (B, L, C); weight (C, 1, K) (nn.Conv1d's with groups=C); bias (C,) or None; SiLU on
    channels below silu_channels (None: all). Returns: (B, L, C) in x's dtype."""
    if x.dim() != 3 or weight.dim() != 3 or weight.shape[0] != x.shape[-1] or weight.shape[1] != 1:
        raise ValueError(f"depthwise_conv1d_silu needs x (B, L, C) and weight (C, 1, K), got {tuple(x.shape)} "
                         f"and {tuple(weight.shape)}")
    if not causal and weight.shape[-1] % 2 != 1:
        raise ValueError(f"a same-length conv needs an odd kernel, got K = {weight.shape[-1]}")
    if bias is not None and bias.shape != (x.shape[-1],):
        raise ValueError(f"bias must have shape ({x.shape[-1]},), got {tuple(bias.shape)}")
    silu_channels = x.shape[-1] if silu_channels is None else silu_channels
    if use_triton(backend, x):
        from .triton_conv import depthwise_conv1d_silu_triton

        return depthwise_conv1d_silu_triton(x, weight, bias, causal, silu_channels)
    return depthwise_conv1d_silu_reference(x, weight, bias, causal, silu_channels)
